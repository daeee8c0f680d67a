"""The kube-apiserver stopped for 20 s (hack/apiserver.sh: SIGKILL of that one process, then started
again with the same flags).

* While the operator provisions a new cluster: the operator process lives through it, the
  interrupted cluster reaches Running once the API is back, and a spec change made afterwards is
  reconciled by the same process, which no requeue would look at again (a Running cluster is
  requeued hourly): its watches resumed.
* Under a synchronous cluster rendered by the operator, its members real Patroni and PostgreSQL
  (the data-plane harness), the API server being Patroni's store, while a client commits rows: the
  primary goes on committing through the outage (Patroni's failsafe_mode, which the operator sets:
  every member answers it over the REST API), and no acknowledged commit is lost.
"""

from __future__ import annotations

import time

import pytest

from tests.dataplane.harness import DataPlane, hold
from tests.dataplane.test_failover import _logs_on_failure, _one_sync_standby, _Writer
from tests.e2e import helpers as e2e
from tests.faults import faults

CLUSTER = "outage"
DATABASE_CLUSTER = "outagedb"
OUTAGE_SECONDS = 20
# Commits acknowledged before the outage begins.
COMMITS_BEFORE = 100
DEMOTED = "demoting self because DCS is not accessible and I was a leader"

pytestmark = pytest.mark.timeout(360)


@pytest.fixture(scope="module")
def operator(control_plane, namespace):
    with faults.operator(namespace, name="faults-operator-outage") as proc:
        yield proc


@pytest.fixture
def outage(control_plane):
    """Stops the API server when called; it is served again afterwards, whatever the test did."""
    yield lambda: faults.apiserver("stop")
    if not faults.api_serving():
        faults.apiserver("start")


def _outage(stop, check):
    """Stop the API server for OUTAGE_SECONDS, calling ``check`` every half second meanwhile (it
    returns True, or what is wrong), then start it again; the monotonic times it stopped and was back."""
    stop()
    stopped = time.monotonic()
    hold(OUTAGE_SECONDS, check, "during the API server's outage")
    faults.apiserver("start")
    return stopped, time.monotonic()


def test_the_same_operator_reconciles_after_an_api_server_outage(namespace, operator, outage, summary):
    e2e.apply(e2e.postgres_cluster(CLUSTER, replicas=2), namespace)
    # At work: the first reconcile of the new cluster has begun (its credentials Secret exists).
    e2e.wait_for(lambda: e2e.get("secret", f"{CLUSTER}-credentials", namespace), 60,
                 f"the first reconcile of {CLUSTER} did not begin", interval=0.05)
    stopped, back = _outage(outage, lambda: operator.proc.poll() is None or operator.log_tail(60))

    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=2, timeout=180)
    converged = time.monotonic() - back

    # A spec change after the outage, on a Running cluster: only a watch brings it to the operator.
    e2e.kubectl("patch", "pgc", CLUSTER, "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":3}}')
    changed = time.monotonic()
    cluster = e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=3, timeout=180)
    reconciled = time.monotonic() - changed
    assert cluster["status"]["observedGeneration"] == cluster["metadata"]["generation"]
    assert e2e.get("statefulset", CLUSTER, namespace)["spec"]["replicas"] == 3
    assert operator.proc.poll() is None, "the operator is not the same process"
    summary.append(f"API server down {back - stopped:.1f} s mid-provisioning: the interrupted cluster Running "
                   f"{converged:.1f} s after the API was back; a spec change (replicas 2 -> 3) reconciled by the "
                   f"same operator process in {reconciled:.1f} s")


@pytest.fixture(scope="module")
def plane(kube, dataplane_deps, namespace, operator):
    """The members of a synchronous 3-member cluster the operator rendered."""
    e2e.apply(e2e.postgres_cluster(DATABASE_CLUSTER, replicas=3, synchronous=True), namespace)
    e2e.wait_for_phase(DATABASE_CLUSTER, namespace, "Running", ready=3, timeout=120)
    with DataPlane(namespace, DATABASE_CLUSTER, kube=kube).started() as members:
        members.follow_pods()
        yield members


def test_an_api_server_outage_loses_no_acknowledged_commit(plane, outage, summary):
    with _logs_on_failure(plane):
        table = "outage_rows"
        leader = plane.wait_streaming(timeout=120)
        plane.execute(leader, f"CREATE TABLE {table} (v bigint PRIMARY KEY)")
        e2e.wait_for(lambda: _one_sync_standby(plane, leader), 60, f"{leader} has no synchronous standby")
        writer = _Writer(plane, leader, table)
        writer.start()
        e2e.wait_for(lambda: len(writer.acked) >= COMMITS_BEFORE or writer.error, 60, "the writer does not commit")
        assert writer.error is None, f"the writer failed before the outage: {writer.error!r}"

        progress = {"count": 0, "at": time.monotonic()}

        def committing():
            if len(writer.acked) != progress["count"]:
                progress.update(count=len(writer.acked), at=time.monotonic())
            return True
        stopped, back = _outage(outage, committing)
        committing()
        writer.halt.set()
        writer.join(15)
        assert not writer.is_alive(), "the writer is stuck in a commit"
        acked = list(writer.acked)

        new, writable = faults.timed(lambda: _writable(plane, table), 120, "no member takes writes after the outage",
                                     since=back)
        present = {r[0] for r in plane.execute(new, f"SELECT v FROM {table} WHERE v > 0")}
        lost = sorted(set(acked) - present)
        assert not lost, f"{len(lost)} acknowledged commits are missing on {new}: {lost[:20]}"
        # At most the INSERT in flight when the writes stopped made it without its acknowledgement.
        unacked = sorted(present - set(acked))
        assert all(v == len(acked) + 1 for v in unacked), f"rows present that were never committed: {unacked[:20]}"
        stalled = progress["at"] - stopped
        # failsafe_mode: the primary stays one while every member answers it, whatever the DCS does.
        assert stalled >= OUTAGE_SECONDS - 1, f"commits stopped {stalled:.1f} s into the outage: {writer.error!r}"
        # Patroni's own words when it gives up the leader role without its store.
        demoted = DEMOTED in plane.member(leader).log()
        commits = ("went on through the outage" if stalled >= OUTAGE_SECONDS - 1 else
                   "stopped %.1f s into it (%s%s)" % (stalled, writer.error.__class__.__name__ if writer.error else "stuck",
                                                     f"; Patroni: {DEMOTED}" if demoted else ""))
        summary.append(f"API server down {back - stopped:.1f} s under synchronous {DATABASE_CLUSTER}: commits on {leader} "
                       f"{commits}; {new} took writes {writable:.1f} s after the API was back "
                       f"({back + writable - progress['at']:.1f} s without writes); {len(acked)} acknowledged "
                       f"commits, 0 lost")


def _writable(plane, table):
    """The leader, once it accepts a write."""
    try:
        leader = plane.leader()
        return leader and plane.execute(leader, f"INSERT INTO {table} VALUES (0) ON CONFLICT DO NOTHING",
                                        timeout=2) is None and leader
    except Exception:  # noqa: BLE001 - not writable yet
        return None
