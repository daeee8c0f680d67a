"""Domain helpers of the fault-injection tests: the faults themselves (the API server stopped and
started again), a stopwatch over the e2e helpers' deadlines, and what the operator generated."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import yaml

from tests.e2e import helpers as e2e
from tests.faults import netns

# The first operator's ports (health probe, metrics: Operator's defaults) and a second replica's
# beside it; the second one's health port is also relayed to the host (own_network).
FIRST_PORTS = {"health_port": 6789, "metrics_port": 8443}
SECOND_PORTS = {"health_port": 6790, "metrics_port": 8444}
# What no flag moves: the runtime's own API, and its proxy as its playbooks' kubeconfig names it.
FIXED_PORTS = (5050, 8888)
CLUSTER_LABEL = "postgres.example.com/cluster"


def busy_operator_ports():
    """The ports of the operators something listens on."""
    busy = []
    for port in (*FIRST_PORTS.values(), *SECOND_PORTS.values(), *FIXED_PORTS):
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


def apiserver(action):
    """hack/apiserver.sh stop|start: only the kube-apiserver process of the local control plane."""
    proc = subprocess.run([str(e2e.HACK / "apiserver.sh"), action], env=e2e.env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"hack/apiserver.sh {action} failed:\n{proc.stdout}{proc.stderr}"


def api_serving():
    return subprocess.run(["kubectl", "get", "--raw", "/readyz"], env=e2e.env(), capture_output=True,
                          timeout=10).returncode == 0


def timed(predicate, timeout, message, since=None):
    """e2e.wait_for, and the seconds it took since ``since`` (a time.monotonic(); else since the call)."""
    start = time.monotonic() if since is None else since
    result = e2e.wait_for(predicate, timeout, message, interval=0.2)
    return result, time.monotonic() - start


def recreated(kind, name, namespace, old):
    """The object named as ``old`` once it exists again (another uid), else None."""
    obj = e2e.get(kind, name, namespace)
    return obj if obj and obj["metadata"]["uid"] != old["metadata"]["uid"] else None


def cluster_secrets(cluster, namespace):
    """The decoded data of every Secret of the cluster (its label), by name: passwords, the CA and
    the certificates it signed, the backup passphrase."""
    items = e2e.kubectl_json("get", "secrets", "-n", namespace, "-l", f"{CLUSTER_LABEL}={cluster}")["items"]
    return {s["metadata"]["name"]: {k: base64.b64decode(v) for k, v in (s.get("data") or {}).items()} for s in items}


def phase(cluster, namespace):
    return ((e2e.get("pgc", cluster, namespace) or {}).get("status") or {}).get("phase")


@contextlib.contextmanager
def operator(namespace, **options):
    """e2e.running_operator (``options``: e2e.Operator's) that deletes the clusters of ``namespace``
    before it stops, so that it runs their finalizer: nothing is left Terminating."""
    with e2e.running_operator(**options) as proc:
        try:
            yield proc
        finally:
            e2e.kubectl("delete", "pgc", "--all", "-n", namespace, "--wait=false", check=False)


@contextlib.contextmanager
def own_network(health_port):
    """The command prefix that runs a process in a network namespace of its own (netns.py), as a
    second pod: the API server's address reaches the API server, and ``health_port`` on the host
    reaches the same port in the namespace. Root only (unshare --net)."""
    assert os.geteuid() == 0, "a network namespace of its own (unshare --net) needs root: run the tests as root"
    with open(e2e.kubeconfig()) as f:
        server = urllib.parse.urlsplit(yaml.safe_load(f)["clusters"][0]["cluster"]["server"])
    api = f"{server.hostname}:{server.port}"
    workdir = tempfile.mkdtemp(prefix="pgc-netns-")
    api_socket, health_socket = f"{workdir}/api.sock", f"{workdir}/health.sock"
    relays = [netns.relay(api_socket, api), netns.relay(f"127.0.0.1:{health_port}", health_socket)]
    try:
        yield ["unshare", "--net", "--", sys.executable, str(Path(netns.__file__)),
               "--out", f"{api}={api_socket}", "--in", f"{health_socket}=127.0.0.1:{health_port}", "--"]
    finally:
        for listener in relays:
            listener.close()
        shutil.rmtree(workdir, ignore_errors=True)
