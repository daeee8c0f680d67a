"""Objects a Running cluster owns, deleted by hand one after the other: the operator recreates each,
owned by the cluster and labelled as before, and the cluster is Running again. A StatefulSet deleted
with propagationPolicy Orphan leaves its pods, which the new one adopts without restarting them.

The ConfigMap <name>-patroni is not watched (the operator reads ConfigMaps past the runtime's cache,
which would hold every ConfigMap of the Kubernetes cluster; watches.yaml), and a member pod's restart
does not wake the operator either (the runtime ignores changes of an owned object's status): it
comes back at the next reconcile of the cluster, here brought by an annotation, otherwise by any
change of the cluster or at the latest after the reconcile period (1 h). The summary says how long it
stayed missing before that.

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
    """Delete the object of the Running cluster, once nothing is written any more (no reconcile is
    under way or due); the object and the monotonic time it was gone."""
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=REPLICAS, timeout=60)
    e2e.stable_resource_versions(namespace)
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
    line = f"deleted {kind} {name} {' '.join(options)}".rstrip() + f": recreated in {recreated:.1f} s"
    if kind == "statefulset":
        # The members are the new StatefulSet's and Ready: adopted (orphan) or started again.
        new_uid = e2e.get(kind, name, namespace)["metadata"]["uid"]
        _, ready = faults.timed(lambda: _members_of(namespace, new_uid), 60,
                                "the pods are not the new StatefulSet's and Ready", since=deleted)
        kept = set(_pods(namespace).values()) & set(pods.values())
        line += f", {REPLICAS} members Ready under it after {ready:.1f} s ({len(kept)} of the pods kept)"
        if options == ("--cascade=orphan",):
            assert _pods(namespace) == pods, "the orphaned pods were replaced instead of adopted"
        else:
            assert not kept, "pods of the deleted StatefulSet outlived it"
    e2e.stable_resource_versions(namespace)
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=REPLICAS, timeout=60)
    summary.append(line)


def _members_of(namespace, statefulset_uid):
    """The cluster's pods when there are REPLICAS of them, all Ready and controlled by that StatefulSet."""
    items = e2e.kubectl_json("get", "pods", "-n", namespace, "-l", f"{faults.CLUSTER_LABEL}={CLUSTER}")["items"]
    ours = [p for p in items if not p["metadata"].get("deletionTimestamp")
            and [r["uid"] for r in p["metadata"].get("ownerReferences", []) if r.get("controller")] == [statefulset_uid]
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))]
    return len(ours) == REPLICAS == len(items) and ours


def _missing_for(seconds, before):
    """Poll for ``seconds`` whether the object of ``before`` is back; True when it stayed missing."""
    kind, name, namespace = before["kind"], before["metadata"]["name"], before["metadata"]["namespace"]
    try:
        e2e.wait_for(lambda: faults.recreated(kind, name, namespace, before), seconds, f"{kind} {name} is not back",
                 interval=0.5)
    except AssertionError:
        return True
    return False


def test_a_deleted_patroni_configmap_is_recreated_by_the_next_reconcile(namespace, operator, cluster, summary):
    name = f"{CLUSTER}-patroni"
    before, deleted = _delete("configmap", name, namespace)
    seen = [f"deleted configmap {name}:"]
    if _missing_for(UNWATCHED_SECONDS, before):
        seen.append(f"still missing after {UNWATCHED_SECONDS} s (not watched);")
        # A member pod restarts (a new pod would need the ConfigMap to start).
        pod = f"{CLUSTER}-1"
        old_pod = e2e.get("pod", pod, namespace)
        e2e.kubectl("delete", "pod", pod, "-n", namespace)
        e2e.wait_for(lambda: faults.recreated("pod", pod, namespace, old_pod), 60, f"{pod} was not recreated")
        e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=REPLICAS, timeout=60)
        if _missing_for(UNWATCHED_SECONDS, before):
            seen.append(f"still missing {UNWATCHED_SECONDS} s after member pod {pod} was recreated;")
            e2e.kubectl("annotate", "--overwrite", "pgc", CLUSTER, "-n", namespace,
                        f"example.com/nudge={time.time()}")
            nudged = time.monotonic()
            seen.append(f"recreated {_recreated(before, nudged):.1f} s after the next reconcile was asked for")
        else:
            seen.append(f"recreated {time.monotonic() - deleted:.1f} s after the deletion, after a member pod restart")
    else:
        seen.append(f"recreated in {_recreated(before, deleted):.1f} s")
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=REPLICAS, timeout=60)
    summary.append(" ".join(seen))
