"""A 3-member Patroni cluster on the local control plane: election, replication, failover, rejoin.

Real Patroni 4 and PostgreSQL 15 processes on loopback, one per kwok pod, with the local
kube-apiserver as the Kubernetes DCS. The tests of this module share one cluster and run in
order: the failover test crashes the leader, the rejoin test brings it back.
"""

from __future__ import annotations

import time

import pytest

from tests.dataplane.harness import CLUSTER_LABEL, has_marker, rw_service_targets, wait_for, write_marker

# Seconds allowed beyond ttl + loop_wait for the promotion itself and the first write.
FAILOVER_MARGIN = 10

pytestmark = pytest.mark.timeout(240)


def _crash_leader_and_fail_over(plane, timings, summary):
    """kill -9 the leader's Patroni and PostgreSQL; return (old, new, seconds until a write succeeded)."""
    old = plane.wait_streaming()
    survivors = [p for p in plane.members if p != old]
    started = time.monotonic()
    plane.kill_member(old)
    deadline = started + timings["ttl"] + timings["loop_wait"] + FAILOVER_MARGIN
    new = None
    while time.monotonic() < deadline and new is None:
        for pod in survivors:
            try:
                plane.execute(pod, "CREATE TABLE IF NOT EXISTS dp_failover (at timestamptz)", timeout=1)
                plane.execute(pod, "INSERT INTO dp_failover VALUES (now())", timeout=1)
            except Exception:  # noqa: BLE001 - a replica refuses writes until it is promoted
                continue
            new = pod
            break
        else:
            time.sleep(0.2)
    elapsed = time.monotonic() - started
    assert new, (f"no replica accepted a write within ttl {timings['ttl']} + loop_wait {timings['loop_wait']} "
                 f"+ {FAILOVER_MARGIN}s after {old} was killed")
    plane.crashed = old
    plane.failover = {"old": old, "new": new, "seconds": elapsed}
    summary.append(f"failover {old} -> {new}: {elapsed:.1f}s from kill -9 of the leader until a write succeeded "
                   f"on the new one (ttl={timings['ttl']} loop_wait={timings['loop_wait']} "
                   f"retry_timeout={timings['retry_timeout']})")
    return old, new, elapsed


def test_one_leader_labelled_primary_and_replicas_stream(dataplane, kube, namespace):
    """Exactly one member leads; the pods' role labels say so; the others stream from it."""
    leader = dataplane.wait_for_leader(timeout=60)
    dataplane.wait_streaming(leader, timeout=60)
    labels = dataplane.labels()
    assert [p for p, l in labels.items() if l.get("role") == "primary"] == [leader], labels
    assert sorted(p for p, l in labels.items() if l.get("role") == "replica") == dataplane.replicas(leader), labels
    view = dataplane.cluster_view()
    assert [m["name"] for m in view["members"] if m["role"] == "leader"] == [leader], view
    wait_for(lambda: rw_service_targets(kube, namespace, dataplane.cluster) == [leader], 15,
             "the read-write Service does not point at the leader alone")


def test_kwok_pod_status_coexists_with_patroni_metadata(dataplane, kube, namespace):
    """Patroni's labels and annotations and kwok's pod status live side by side on the same pods."""
    dataplane.wait_for_leader(timeout=60)
    time.sleep(3)  # a few Patroni loops, and whatever kwok does meanwhile
    for pod in kube.json("get", "pods", "-n", namespace, "-l", f"{CLUSTER_LABEL}={dataplane.cluster}")["items"]:
        meta, status = pod["metadata"], pod["status"]
        assert meta["labels"].get("role") in ("primary", "replica"), meta["labels"]
        assert "status" in (meta.get("annotations") or {}), f"{meta['name']}: no Patroni status annotation"
        assert status.get("phase") == "Running", status
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])), status


def test_row_written_on_leader_is_read_on_each_replica(dataplane):
    """A committed row on the leader shows up on every replica."""
    leader = dataplane.wait_streaming(timeout=60)
    value = write_marker(dataplane, leader)
    for replica in dataplane.replicas(leader):
        wait_for(lambda r=replica: has_marker(dataplane, r, value), 15, f"the row did not reach {replica}")
        with pytest.raises(Exception, match="read-only"):
            dataplane.execute(replica, "INSERT INTO dp_marker VALUES ('on-a-replica')")


def test_leader_crash_promotes_a_replica_within_ttl(dataplane, timings, kube, namespace, summary):
    """kill -9 of the leader: a replica is promoted within ttl + loop_wait (+ margin), labelled
    role=primary, and it accepts writes."""
    before = dataplane.wait_streaming(timeout=60)
    value = write_marker(dataplane, before)
    for replica in dataplane.replicas(before):
        wait_for(lambda r=replica: has_marker(dataplane, r, value), 15, f"the row did not reach {replica}")
    old, new, elapsed = _crash_leader_and_fail_over(dataplane, timings, summary)
    assert elapsed <= timings["ttl"] + timings["loop_wait"] + FAILOVER_MARGIN
    assert dataplane.wait_for_leader(timeout=15, exclude=(old,)) == new
    wait_for(lambda: kube.json("get", "pod", new, "-n", namespace)["metadata"]["labels"].get("role") == "primary",
             10, f"{new} is not labelled role=primary")
    assert has_marker(dataplane, new, value), "a row committed before the crash is lost on the new leader"
    survivor = [p for p in dataplane.members if p not in (old, new)]
    dataplane.wait_streaming(new, survivor, timeout=30)
    # The dead pod keeps its role=primary label until its Patroni runs again (kwok keeps it Ready too).
    wait_for(lambda: new in rw_service_targets(kube, namespace, dataplane.cluster), 15,
             f"the read-write Service does not reach the new leader {new}")


def test_crashed_leader_rejoins_as_replica_and_streams(dataplane, timings, kube, namespace, summary):
    """The crashed former leader, started again, rewinds if it must, follows the new leader and streams."""
    if not getattr(dataplane, "crashed", None):
        _crash_leader_and_fail_over(dataplane, timings, summary)
    old, new = dataplane.crashed, dataplane.failover["new"]
    value = write_marker(dataplane, new)  # written on the new timeline, while the old leader is down
    dataplane.restart_member(old)
    dataplane.wait_streaming(new, dataplane.replicas(new), timeout=60)
    wait_for(lambda: has_marker(dataplane, old, value), 15, f"{old} did not receive rows of the new timeline")
    assert kube.json("get", "pod", old, "-n", namespace)["metadata"]["labels"].get("role") == "replica"
    assert dataplane.leader() == new
    wait_for(lambda: rw_service_targets(kube, namespace, dataplane.cluster) == [new], 15,
             "the read-write Service does not point at the new leader alone")
    # A crashed primary is ahead of the promoted replica's fork point (at least by the checkpoint of
    # its crash recovery): Patroni must have rewound it rather than cloned it anew.
    since_restart = dataplane.member(old).log().rsplit("----- harness: starting", 1)[-1]
    assert "running pg_rewind from" in since_restart and "pg_rewind exit code=0" in since_restart, \
        f"{old} did not rejoin through a successful pg_rewind"
    assert "trying to bootstrap from" not in since_restart, f"{old} was cloned anew instead of rewound"
    summary.append(f"rejoin: {old} rewound (pg_rewind) and streams from {new}")
