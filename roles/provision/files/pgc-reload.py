#!/usr/bin/env python3
"""Reload a server when the files it was started with change.

Run as `pgc-reload.py PID PATH...`. Every few seconds it reads the files under each PATH (a file
or a directory, such as a mounted Secret); when their content changes it sends SIGHUP to PID. It
exits when PID is gone. The kubelet replaces a mounted Secret or ConfigMap in place when it
changes (a certificate renewed, patroni.yml rewritten): Patroni then re-reads its configuration
and has PostgreSQL reload its certificates and pg_hba; pgBackRest's server reloads its own.

Started by the container's shell before it execs the server, PID is that shell's own, which the
server then is. Only the Python standard library is used.

Beside Patroni it also watches PostgreSQL: with PGC_POSTMASTER_PID (the data directory's
postmaster.pid) and PGC_WAKE_CONFIGMAP (Patroni's <scope>-config) set, a postmaster that died
without removing its pid file (a crash; a shutdown removes it) makes it rewrite that ConfigMap's
annotation `config` spelt differently. Patroni wakes every member when that text changes, and this
member's Patroni starts PostgreSQL again at once instead of at its next loop (loop_wait). The
rewrite carries the resourceVersion it read, and changes nothing else: Patroni compares the parsed
configuration (plugins/module_utils/patroni.py, wakeup_config, does the same for a switchover).
"""

import hashlib
import json
import os
import signal
import ssl
import sys
import time
import urllib.request

INTERVAL = float(os.environ.get("PGC_RELOAD_INTERVAL", "10"))
# How often the postmaster is looked at: a crash costs at most this before Patroni is woken.
POSTMASTER_INTERVAL = 0.5
SERVICEACCOUNT = os.environ.get("PGC_SERVICEACCOUNT_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")
COMPACT, SPACED = (",", ":"), (", ", ": ")


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


def postmaster(pid_file):
    """The pid a postmaster.pid names, or None when there is none (or it cannot be read)."""
    try:
        with open(pid_file) as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


def _read(name):
    with open(os.path.join(SERVICEACCOUNT, name)) as f:
        return f.read().strip()


def _api(method, path, body=None):
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    host = "[%s]" % host if ":" in host else host
    request = urllib.request.Request(
        "https://%s:%s%s" % (host, os.environ.get("KUBERNETES_SERVICE_PORT", "443"), path),
        data=json.dumps(body).encode() if body is not None else None, method=method,
        headers={"Authorization": "Bearer " + _read("token"), "Content-Type": "application/merge-patch+json"})
    context = ssl.create_default_context(cafile=os.path.join(SERVICEACCOUNT, "ca.crt"))
    with urllib.request.urlopen(request, context=context, timeout=5) as response:
        return json.load(response)


def wake_patroni(configmap):
    """Rewrite Patroni's configuration annotation spelt the other way (see the module's text)."""
    path = "/api/v1/namespaces/%s/configmaps/%s" % (_read("namespace"), configmap)
    meta = _api("GET", path)["metadata"]
    text = (meta.get("annotations") or {}).get("config")
    value = json.loads(text) if text else None
    if not isinstance(value, dict):
        return
    spelling = SPACED if text == json.dumps(value, separators=COMPACT, sort_keys=True) else COMPACT
    _api("PATCH", path, {"metadata": {"resourceVersion": meta["resourceVersion"],
                                      "annotations": {"config": json.dumps(value, separators=spelling, sort_keys=True)}}})


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: pgc-reload.py PID [PATH...]\n")
        return 2
    pid, paths = int(argv[1]), argv[2:]
    pid_file, configmap = os.environ.get("PGC_POSTMASTER_PID"), os.environ.get("PGC_WAKE_CONFIGMAP")
    watch_postmaster = bool(pid_file and configmap)
    seen = digest(paths)
    sys.stderr.write("pgc-reload: watching %s for process %d%s\n" % (
        " ".join(paths) or "nothing", pid, ", and the postmaster of %s" % pid_file if watch_postmaster else ""))
    sys.stderr.flush()
    running, next_digest = None, time.monotonic() + INTERVAL
    while alive(pid):
        time.sleep(POSTMASTER_INTERVAL if watch_postmaster else INTERVAL)
        if watch_postmaster:
            named = postmaster(pid_file)
            if named is not None and alive(named):
                if named != running:
                    sys.stderr.write("pgc-reload: postmaster %d running\n" % named)
                running = named
            elif running is not None and named == running:
                sys.stderr.write("pgc-reload: the postmaster %d died, waking Patroni\n" % running)
                running = None
                try:
                    wake_patroni(configmap)
                except Exception as e:  # noqa: BLE001 - Patroni still sees it at its next loop
                    sys.stderr.write("pgc-reload: could not wake Patroni: %s\n" % e)
            sys.stderr.flush()
        if time.monotonic() < next_digest:
            continue
        next_digest = time.monotonic() + INTERVAL
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
