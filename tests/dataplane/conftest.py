"""Fixtures of the data-plane tests: the local control plane, a `dp-` namespace holding what the
operator would render for a 3-member PostgresCluster, and the real Patroni members on loopback.

Until the operator renders the ConfigMap `<cluster>-patroni` and the Secret `<cluster>-credentials`,
the fixture creates them (from fixtures/patroni.yml) together with a volume-less StatefulSet, whose
kwok pods are the members' pods, and the read-write Service. The harness reads them back from the
API server, as it will read the operator's.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.dataplane import harness
from tests.dataplane.harness import CLUSTER_LABEL, POD_DATA_MOUNT, DataPlane, Kube, wait_for
from tests.reporting import summary_section

FIXTURES = Path(__file__).parent / "fixtures"
CLUSTER = "pgdemo"
REPLICAS = 3


@pytest.fixture(scope="session")
def kube():
    """The local control plane, with the repository's CRD (hack/cluster-up.sh, idempotent)."""
    kubeconfig = harness.hack("PGC_KUBECONFIG")
    env = {**os.environ, "PATH": harness.hack("PATH")}
    proc = subprocess.run([str(harness.HACK / "cluster-up.sh")], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail("the local control plane did not start (hack/cluster-up.sh):\n" + proc.stdout + proc.stderr,
                    pytrace=False)
    return Kube(kubeconfig)


@pytest.fixture(scope="session")
def dataplane_deps():
    """PostgreSQL 15 and Patroni are installed: otherwise the layer fails (it never skips)."""
    try:
        harness.check_prerequisites()
        problem = None
    except harness.MissingDependency as e:
        problem = str(e)
    if problem:
        pytest.fail(problem, pytrace=False)


OWNER_LABEL = "dataplane.postgres.example.com/owner-pid"


def _delete_orphaned_namespaces(kube):
    """Namespaces of earlier runs whose test process died before deleting them."""
    for ns in kube.json("get", "namespaces", "-l", OWNER_LABEL)["items"]:
        name, pid = ns["metadata"]["name"], ns["metadata"]["labels"].get(OWNER_LABEL, "")
        if name.startswith("dp-") and (not pid.isdigit() or not harness._alive(int(pid))):
            kube.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def namespace(kube):
    """A `dp-` namespace of the module's own, deleted afterwards with everything in it."""
    _delete_orphaned_namespaces(kube)
    name = f"dp-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", name)
    kube.run("label", "namespace", name, f"{OWNER_LABEL}={os.getpid()}")
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


def patroni_config() -> str:
    return (FIXTURES / "patroni.yml").read_text()


def cluster_objects(cluster: str, config_text: str) -> list[dict]:
    """What the operator renders for the data plane, reduced to what the harness reads: the server
    certificate included, which the operator's configuration (ssl, hostssl) needs."""
    import tests.unit.conftest  # noqa: F401 - makes ansible_collections.postgres.cluster importable
    from ansible_collections.postgres.cluster.plugins.module_utils import tls
    labels = {CLUSTER_LABEL: cluster}
    # The operator's server and superuser certificates, of one CA (module_utils/tls.py).
    ca = tls.new_ca(tls.SERVER_CA_NAME, f"dp/{cluster}")
    server_crt, server_key = tls.sign(ca, cluster, tls.pgc_server_names({"name": cluster, "namespace": "dp"}))
    superuser_crt, superuser_key = tls.sign(ca, "postgres", server=False, client=True)
    secret = {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": f"{cluster}-credentials", "labels": labels},
        "stringData": {
            "superuser-username": "postgres", "superuser-password": secrets.token_urlsafe(18),
            "replication-username": "replicator", "replication-password": secrets.token_urlsafe(18),
            "app-username": "app", "app-password": secrets.token_urlsafe(18), "app-database": "app",
        },
    }
    certificates = [{
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": f"{cluster}-{suffix}", "labels": labels},
        "stringData": {"ca.crt": ca["tls.crt"], "tls.crt": crt, "tls.key": key},
    } for suffix, crt, key in (("tls", server_crt, server_key), ("superuser-tls", superuser_crt, superuser_key))]
    configmap = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"{cluster}-patroni", "labels": labels},
        "data": {"patroni.yml": config_text},
    }
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": cluster, "labels": labels},
        "spec": {
            "replicas": REPLICAS,
            "serviceName": f"{cluster}-headless",
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                # Mounted beside the data directory, where the harness writes them for each member.
                "spec": {"containers": [{"name": "postgres", "image": "postgres:15",
                                         "ports": [{"name": "postgres", "containerPort": 5432}],
                                         "volumeMounts": [{"name": name, "mountPath": f"{POD_DATA_MOUNT}/{name}"}
                                                          for name in ("tls", "superuser-tls")]}],
                         "volumes": [{"name": name, "secret": {"secretName": f"{cluster}-{name}", "items": [
                             {"key": key, "path": key} for key in tls.SERVER_TLS_KEYS]}}
                             for name in ("tls", "superuser-tls")]},
            },
        },
    }
    service_rw = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": cluster, "labels": labels},
        "spec": {"selector": {**labels, "role": "primary"},
                 "ports": [{"name": "postgres", "port": 5432, "targetPort": "postgres"}]},
    }
    return [secret, *certificates, configmap, statefulset, service_rw]


def pods_running(kube, namespace, cluster, n):
    pods = kube.json("get", "pods", "-n", namespace, "-l", f"{CLUSTER_LABEL}={cluster}")["items"]
    ready = [p for p in pods if p.get("status", {}).get("phase") == "Running"
             and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
    return len(ready) == n and pods


@pytest.fixture(scope="module")
def cluster_objects_applied(kube, namespace):
    """The ConfigMap, Secret, StatefulSet and read-write Service of `pgdemo`, its pods Running."""
    objs = {"apiVersion": "v1", "kind": "List", "items": cluster_objects(CLUSTER, patroni_config())}
    kube.run("apply", "--server-side", "--field-manager=dataplane-test", "-n", namespace, "-f", "-",
             input=json.dumps(objs))
    wait_for(lambda: pods_running(kube, namespace, CLUSTER, REPLICAS), 60,
             f"the {REPLICAS} kwok pods of {CLUSTER} did not become Running/Ready")
    return CLUSTER


@pytest.fixture(scope="module")
def dataplane(kube, dataplane_deps, namespace, cluster_objects_applied):
    """The real members, started from the ConfigMap and Secret; always stopped and removed."""
    with DataPlane(namespace, cluster_objects_applied, kube=kube).started() as plane:
        yield plane


@pytest.fixture(scope="module")
def timings():
    """ttl, loop_wait and retry_timeout of the fixture configuration (bootstrap.dcs)."""
    dcs = yaml.safe_load(patroni_config())["bootstrap"]["dcs"]
    return {k: int(dcs[k]) for k in ("ttl", "loop_wait", "retry_timeout")}


# Lines printed at the end of the run (failover time and the like).
summary, pytest_terminal_summary = summary_section("data plane")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when in ("setup", "call") and report.failed:
        plane = item.funcargs.get("dataplane")
        ns = item.funcargs.get("namespace")
        kube = item.funcargs.get("kube")
        if kube and ns:
            report.sections.append(("pods", kube.run("get", "pods,configmaps,endpointslices", "-n", ns,
                                                     "-o", "wide", "--show-labels", check=False)))
        if plane:
            report.sections.append(("patroni members (log tails)", plane.logs(80)))
