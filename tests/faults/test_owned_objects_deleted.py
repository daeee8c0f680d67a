"""Objects a Running cluster owns, deleted by hand one after the other: the operator recreates each,
owned by the cluster and labelled as before, and the cluster is Running again. A StatefulSet deleted
with propagationPolicy Orphan leaves its pods, which the new one adopts without restarting them.

One cluster and one operator for the module: each test starts from the Running cluster the one
before left."""

from __future__ import annotations

import time

import pytest

from tests.e2e import helpers as e2e
from tests.faults import faults

CLUSTER = "owned"
REPLICAS = 3
RECREATE_TIMEOUT = 60

pytestmark = pytest.mark.timeout(180)

# (kind, name, kubectl delete options): what the operator renders for the cluster.
DELETIONS = {
    "service-rw": ("service", CLUSTER, ()),
    "service-ro": ("service", f"{CLUSTER}-ro", ()),
    "service-pods": ("service", f"{CLUSTER}-pods", ()),
    "configmap-patroni": ("configmap", f"{CLUSTER}-patroni", ()),
    "poddisruptionbudget": ("poddisruptionbudget", CLUSTER, ()),
    "networkpolicy": ("networkpolicy", CLUSTER, ()),
    "statefulset-orphan": ("statefulset", CLUSTER, ("--cascade=orphan",)),
    "statefulset-background": ("statefulset", CLUSTER, ("--cascade=background",)),
}


@pytest.fixture(scope="module")
def operator(control_plane, namespace):
    with faults.operator(namespace, name="faults-operator-owned") as proc:
        yield proc


@pytest.fixture(scope="module")
def cluster(namespace, operator):
    e2e.apply(e2e.postgres_cluster(CLUSTER, replicas=REPLICAS), namespace)
    return e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=REPLICAS, timeout=120)


def _pods(namespace):
    items = e2e.kubectl_json("get", "pods", "-n", namespace, "-l", f"{faults.CLUSTER_LABEL}={CLUSTER}")["items"]
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in items}


@pytest.mark.parametrize("what", list(DELETIONS))
def test_a_deleted_owned_object_is_recreated(namespace, operator, cluster, what, summary):
    kind, name, options = DELETIONS[what]
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=REPLICAS, timeout=60)
    before = e2e.get(kind, name, namespace)
    assert before, f"{kind} {name} was not rendered"
    pods = _pods(namespace)

    e2e.kubectl("delete", kind, name, "-n", namespace, *options)
    deleted = time.monotonic()
    again, recreated = faults.timed(lambda: faults.recreated(kind, name, namespace, before),
                                    RECREATE_TIMEOUT, f"{kind} {name} was not recreated", since=deleted)
    assert again["metadata"]["labels"] == before["metadata"]["labels"]
    assert again["metadata"]["ownerReferences"] == before["metadata"]["ownerReferences"]
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=REPLICAS, timeout=60)
    running = time.monotonic() - deleted
    if options == ("--cascade=orphan",):
        assert _pods(namespace) == pods, "the orphaned pods were replaced instead of adopted"
    summary.append(f"deleted {kind} {name} {' '.join(options)}".rstrip()
                   + f": recreated in {recreated:.1f} s, Running {REPLICAS}/{REPLICAS} after {running:.1f} s")
