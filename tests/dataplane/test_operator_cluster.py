"""A PostgresCluster rendered by the real operator, its members run by the harness from the very
ConfigMap and Secret the operator wrote: one leader, streaming replicas, the read-write Service
on the leader, and the switchover playbook moving the leader through Patroni's Kubernetes DCS.
"""

from __future__ import annotations

import time

import pytest

from tests.dataplane.harness import DataPlane, has_marker, rw_service_targets, wait_for, write_marker
from tests.e2e import helpers as e2e

CLUSTER = "opdb"
pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def operator(kube):
    proc = e2e.Operator()
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def rendered(kube, namespace, operator):
    """The cluster as the operator makes it: its kwok pods Running, its ConfigMap and Secret written."""
    e2e.apply(e2e.postgres_cluster(CLUSTER, replicas=3), namespace)
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=3, timeout=120)
    return CLUSTER


@pytest.fixture(scope="module")
def plane(kube, dataplane_deps, namespace, rendered):
    with DataPlane(namespace, rendered, kube=kube).started() as members:
        yield members


def test_operator_rendered_cluster_elects_one_leader_and_streams(kube, namespace, plane):
    leader = plane.wait_for_leader(timeout=90)
    assert plane.labelled_primaries() == [leader]
    plane.wait_streaming(leader, timeout=120)
    value = write_marker(plane, leader)
    for replica in plane.replicas(leader):
        wait_for(lambda r=replica: has_marker(plane, r, value), 30, f"{replica} did not receive the row")
    wait_for(lambda: rw_service_targets(kube, namespace, CLUSTER) == [leader], 30, "the read-write Service does not select the leader alone")


def test_switchover_playbook_moves_the_leader(kube, namespace, plane, summary):
    leader = plane.wait_for_leader(timeout=60)
    plane.wait_streaming(leader, timeout=60)
    candidate = sorted(plane.replicas(leader))[-1]
    started = time.monotonic()
    out = _switchover(namespace, candidate)
    assert f"primary {leader} -> {candidate}" in out
    value = wait_for(lambda: _trywrite_marker(plane, candidate), 30, f"{candidate} did not accept writes")
    elapsed = time.monotonic() - started
    dcs = plane.config["bootstrap"]["dcs"]
    summary.append(f"switchover {leader} -> {candidate}: writable after {elapsed:.1f} s "
                   f"(ttl {dcs['ttl']}, loop_wait {dcs['loop_wait']})")
    assert plane.labelled_primaries() == [candidate]
    wait_for(lambda: rw_service_targets(kube, namespace, CLUSTER) == [candidate], 30, "the read-write Service did not follow")
    wait_for(lambda: has_marker(plane, leader, value), 60, f"the former leader {leader} does not follow the new one")


def _trywrite_marker(plane, pod):
    try:
        return write_marker(plane, pod)
    except Exception:  # noqa: BLE001 - still read-only or restarting: try again
        return None


def _switchover(namespace, candidate):
    return e2e.run_playbook("switchover", "-e", f"cluster={CLUSTER}", "-e", f"namespace={namespace}",
                            "-e", f"candidate={candidate}")


def test_scale_down_moves_the_primary_off_the_removed_member_first(kube, namespace, plane, operator):
    """With the primary on the highest ordinal, replicas 3 -> 2 switches over to a remaining
    member before the StatefulSet removes it; the cluster stays writable and keeps its data."""
    leader = plane.wait_for_leader(timeout=60)
    last = f"{CLUSTER}-2"
    if leader != last:
        plane.wait_streaming(leader, timeout=60)
        _switchover(namespace, last)
        wait_for(lambda: plane.labelled_primaries() == [last], 30, f"{last} did not become the primary")
    value = wait_for(lambda: _trywrite_marker(plane, last), 30, f"{last} did not accept writes")
    plane.wait_streaming(last, timeout=60)

    e2e.kubectl("patch", "pgc", CLUSTER, "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":2}}')
    new_leader = wait_for(lambda: (lambda p: p[0] if len(p) == 1 and p[0] != last else None)(plane.labelled_primaries()),
                          90, "the primary did not move off the member being removed")
    assert new_leader in (f"{CLUSTER}-0", f"{CLUSTER}-1")
    wait_for(lambda: e2e.get("statefulset", CLUSTER, namespace)["spec"]["replicas"] == 2, 60,
             "the StatefulSet was not scaled down")
    assert has_marker(plane, new_leader, value), "a row written before the scale-down is gone"
    wait_for(lambda: _trywrite_marker(plane, new_leader), 30, f"{new_leader} did not accept writes")
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=2, timeout=90)
