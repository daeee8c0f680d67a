"""Objects a Running cluster owns, deleted by hand one after the other: the operator recreates each,
owned by the cluster and labelled as before, and the cluster is Running again. A StatefulSet deleted
with propagationPolicy Orphan leaves its pods, which the new one adopts without restarting them.

The ConfigMap <name>-patroni is not watched (the operator reads ConfigMaps past the runtime's cache,
which would hold every ConfigMap of the Kubernetes cluster; watches.yaml): it comes back at the next
reconcile, which a member pod's restart brings (the StatefulSet's status changes) -- the moment a
pod needs it to start.

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
# How long the deleted ConfigMap <name>-patroni is watched for before a member restarts.
UNWATCHED_SECONDS = 10

pytestmark = pytest.mark.timeout(180)

# (kind, name, kubectl delete options): what the operator renders for the cluster.
DELETIONS = {
    "service-rw": ("service", CLUSTER, ()),
    "service-ro": ("service", f"{CLUSTER}-ro", ()),
    "service-pods": ("service", f"{CLUSTER}-pods", ()),
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


def _delete(kind, name, namespace, *options):
    """Delete the object of the Running cluster; the object and the monotonic time it was gone."""
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=REPLICAS, timeout=60)
    before = e2e.get(kind, name, namespace)
    assert before, f"{kind} {name} was not rendered"
    e2e.kubectl("delete", kind, name, "-n", namespace, *options)
    return before, time.monotonic()


def _recreated(before, since):
    """Once the operator made the object again as it was: the seconds since ``since``."""
    kind, name, namespace = before["kind"], before["metadata"]["name"], before["metadata"]["namespace"]
    again, seconds = faults.timed(lambda: faults.recreated(kind, name, namespace, before),
                                  RECREATE_TIMEOUT, f"{kind} {name} was not recreated", since=since)
    assert again["metadata"]["labels"] == before["metadata"]["labels"]
    assert again["metadata"]["ownerReferences"] == before["metadata"]["ownerReferences"]
    return seconds


@pytest.mark.parametrize("what", list(DELETIONS))
def test_a_deleted_owned_object_is_recreated(namespace, operator, cluster, what, summary):
    kind, name, options = DELETIONS[what]
    pods = _pods(namespace)
    before, deleted = _delete(kind, name, namespace, *options)
    recreated = _recreated(before, deleted)
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=REPLICAS, timeout=60)
    running = time.monotonic() - deleted
    if options == ("--cascade=orphan",):
        assert _pods(namespace) == pods, "the orphaned pods were replaced instead of adopted"
    summary.append(f"deleted {kind} {name} {' '.join(options)}".rstrip()
                   + f": recreated in {recreated:.1f} s, Running {REPLICAS}/{REPLICAS} after {running:.1f} s")


def test_a_deleted_patroni_configmap_is_recreated_when_a_member_restarts(namespace, operator, cluster, summary):
    name = f"{CLUSTER}-patroni"
    before, deleted = _delete("configmap", name, namespace)
    unwatched = time.monotonic() + UNWATCHED_SECONDS
    while time.monotonic() < unwatched and not faults.recreated("configmap", name, namespace, before):
        time.sleep(0.5)
    back_unprompted = faults.recreated("configmap", name, namespace, before) is not None
    if back_unprompted:
        seconds = _recreated(before, deleted)
        how = f"recreated in {seconds:.1f} s"
    else:
        e2e.kubectl("delete", "pod", f"{CLUSTER}-1", "-n", namespace, "--wait=false")
        seconds = _recreated(before, time.monotonic())
        how = (f"not recreated within {UNWATCHED_SECONDS} s (not watched); recreated {seconds:.1f} s after a member "
               "pod was deleted")
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=REPLICAS, timeout=60)
    summary.append(f"deleted configmap {name}: {how}")
