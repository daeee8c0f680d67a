"""Domain helpers of the fault-injection tests: the faults themselves (the API server stopped and
started again), a stopwatch over the e2e helpers' deadlines, and what the operator generated."""

from __future__ import annotations

import base64
import contextlib
import socket
import subprocess
import time

from tests.e2e import helpers as e2e

# The first operator's ports (health probe, metrics, the runtime's proxy: Operator's defaults) and a
# second replica's beside it.
FIRST_PORTS = {"health_port": 6789, "metrics_port": 8443, "proxy_port": 8888}
SECOND_PORTS = {"health_port": 6790, "metrics_port": 8444, "proxy_port": 8889}
CLUSTER_LABEL = "postgres.example.com/cluster"


def busy_operator_ports():
    """The ports of FIRST_PORTS and SECOND_PORTS something listens on."""
    busy = []
    for port in (*FIRST_PORTS.values(), *SECOND_PORTS.values()):
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
