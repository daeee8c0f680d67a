"""A process in a network namespace of its own, as a pod's container is, with relays to the host.

ansible-operator serves its runtime's API on localhost:5050, a port no flag changes: two replicas
cannot run in one network namespace. The second replica of the tests runs, like a second pod, in a
namespace of its own (``unshare --net``, root), where this script, run inside it, brings loopback
up, relays ports out of it and into it through unix sockets (the filesystem is shared), and runs
the command:

    unshare --net -- python3 netns.py --out 127.0.0.1:32764=/run/api.sock \\
        --in /run/health.sock=127.0.0.1:6790 -- ansible-operator run ...

The host side of each relay runs in the test process (``relay``): a unix socket that connects to
the API server's host port, and a host port that reaches the replica's health probe.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading


def _address(text):
    """``host:port`` (TCP) or a path (a unix socket): (family, address)."""
    if text.startswith("/"):
        return socket.AF_UNIX, text
    host, _, port = text.rpartition(":")
    return socket.AF_INET, (host, int(port))


def _pipe(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((target, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def _serve(conn, connect_to):
    family, address = _address(connect_to)
    try:
        upstream = socket.socket(family, socket.SOCK_STREAM)
        upstream.connect(address)
    except OSError:
        conn.close()
        return
    back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
    back.start()
    _pipe(conn, upstream)
    back.join()
    conn.close()
    upstream.close()


def relay(listen_on, connect_to):
    """Accept connections on ``listen_on`` and pipe each to a new connection to ``connect_to``, in
    daemon threads; the listening socket (close it to stop accepting)."""
    family, address = _address(listen_on)
    if family == socket.AF_UNIX and os.path.exists(address):
        os.unlink(address)
    server = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(address)
    server.listen(64)

    def accept():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_serve, args=(conn, connect_to), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", action="append", default=[], metavar="HOST:PORT=PATH",
                        help="listen on HOST:PORT in the namespace, connect to the unix socket PATH")
    parser.add_argument("--in", dest="into", action="append", default=[], metavar="PATH=HOST:PORT",
                        help="listen on the unix socket PATH, connect to HOST:PORT in the namespace")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for spec in args.out + args.into:
        listen_on, _, connect_to = spec.partition("=")
        relay(listen_on, connect_to)
    child = subprocess.Popen(command)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: child.send_signal(signum))
    sys.exit(child.wait())


if __name__ == "__main__":
    main()
