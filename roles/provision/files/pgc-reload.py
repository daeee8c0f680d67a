#!/usr/bin/env python3
"""Reload a server when the files it was started with change.

Run as `pgc-reload.py PID PATH...`. Every few seconds it reads the files under each PATH (a file
or a directory, such as a mounted Secret); when their content changes it sends SIGHUP to PID. It
exits when PID is gone. The kubelet replaces a mounted Secret or ConfigMap in place when it
changes (a certificate renewed, patroni.yml rewritten): Patroni then re-reads its configuration
and has PostgreSQL reload its certificates and pg_hba; pgBackRest's server reloads its own.

Started by the container's shell before it execs the server, PID is that shell's own, which the
server then is. Only the Python standard library is used.
"""

import hashlib
import os
import signal
import sys
import time

INTERVAL = float(os.environ.get("PGC_RELOAD_INTERVAL", "10"))


def digest(paths):
    """A digest of every file under paths (content, not time: the kubelet swaps whole directories)."""
    h = hashlib.sha256()
    for path in paths:
        files = [path]
        if os.path.isdir(path):
            files = []
            for root, dirs, names in os.walk(path, followlinks=True):
                # The kubelet's own ..data and ..<time> directories: their files are also the visible ones.
                dirs[:] = [d for d in dirs if not d.startswith("..")]
                files += [os.path.join(root, name) for name in names if not name.startswith("..")]
            files.sort()
        for name in files:
            h.update(name.encode() + b"\0")
            try:
                with open(name, "rb") as f:
                    h.update(f.read())
            except OSError:
                h.update(b"\0missing")
    return h.hexdigest()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: pgc-reload.py PID PATH...\n")
        return 2
    pid, paths = int(argv[1]), argv[2:]
    seen = digest(paths)
    sys.stderr.write("pgc-reload: watching %s for process %d\n" % (" ".join(paths), pid))
    sys.stderr.flush()
    while alive(pid):
        time.sleep(INTERVAL)
        now = digest(paths)
        if now != seen:
            seen = now
            sys.stderr.write("pgc-reload: %s changed, reloading process %d\n" % (" ".join(paths), pid))
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
