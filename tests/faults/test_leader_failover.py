"""Two operator replicas with leader election, as the Deployment runs them (--leader-elect, the Lease
pgc-operator in pgc-system): only the leader reconciles; SIGKILL of the leader (it cannot release
the Lease) hands the Lease to the other replica once the Lease has expired, and a change made
afterwards is reconciled by it.

The second replica has health probe and metrics ports of its own and, as a second pod would, a
network namespace of its own (faults.own_network): ansible-operator serves its runtime's API on
localhost:5050, which no flag moves, and its playbooks reach the runtime's proxy at localhost:8888
whatever --proxy-port says; on one loopback a second replica exits at once, or its playbooks talk to
the first replica's proxy.
"""

from __future__ import annotations

import datetime
import time

import pytest

from tests.e2e import helpers as e2e
from tests.faults import faults

CLUSTER = "leader"
ACQUIRED = "successfully acquired lease"
# A candidate tries to take the Lease every RetryPeriod (controller-runtime's 2 s, which
# ansible-operator does not expose) plus up to 1.2 times that (client-go's jitter). It sees the
# dead leader's last renewal at its next try, and takes the Lease at its first try once the Lease
# duration has passed since: within the duration plus two of its longest intervals of the kill.
RETRY_PERIOD, JITTER = 2, 1.2
LONGEST_TRY_INTERVAL = RETRY_PERIOD * (1 + JITTER)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def replica_a(control_plane, namespace):
    """The first replica; once both are gone, their Lease goes too (the runtime does not release it)."""
    with faults.operator(namespace, name="faults-operator-a", leader_elect=True, **faults.FIRST_PORTS) as proc:
        yield proc
    name, lease_namespace = e2e.Operator.LEASE
    e2e.kubectl("delete", "lease", name, "-n", lease_namespace, "--ignore-not-found")


@pytest.fixture
def replica_b(replica_a, namespace):
    """Started after the first; it stops first, while the first (or, when the first was killed, it)
    finishes the deletions."""
    with faults.own_network(faults.SECOND_PORTS["health_port"]) as wrapper, \
            faults.operator(namespace, name="faults-operator-b", leader_elect=True, cluster_metrics=False,
                            wrapper=wrapper, **faults.SECOND_PORTS) as proc:
        yield proc


def _lease():
    name, namespace = e2e.Operator.LEASE
    obj = e2e.get("lease", name, namespace)
    return obj and obj["spec"]


def _leaders(replicas):
    return [r for r in replicas if r.proc.poll() is None and ACQUIRED in r.log()]


def test_the_other_replica_takes_the_lease_and_reconciles(namespace, replica_a, replica_b, summary):
    replicas = (replica_a, replica_b)
    (leader,) = e2e.wait_for(lambda: _leaders(replicas), 60, "no replica acquired the Lease")
    (follower,) = [r for r in replicas if r is not leader]
    e2e.apply(e2e.postgres_cluster(CLUSTER, replicas=2), namespace)
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=2, timeout=120)
    assert not follower.recaps(CLUSTER, namespace), "the replica without the Lease reconciled too"
    holder = _lease()["holderIdentity"]
    duration = _lease()["leaseDurationSeconds"]

    killed = datetime.datetime.now(datetime.timezone.utc)
    leader.kill()
    bound = duration + 2 * LONGEST_TRY_INTERVAL
    lease = e2e.wait_for(lambda: _leaders(replicas) == [follower] and _lease()["holderIdentity"] != holder and _lease(),
                         bound + 30, "the other replica did not take the Lease")
    acquired = datetime.datetime.fromisoformat(lease["acquireTime"].replace("Z", "+00:00"))
    takeover = (acquired - killed).total_seconds()
    assert takeover <= bound, f"the Lease moved {takeover:.1f} s after the kill, its duration is {duration} s"

    e2e.kubectl("patch", "pgc", CLUSTER, "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":3}}')
    changed = time.monotonic()
    cluster = e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=3, timeout=120)
    reconciled = time.monotonic() - changed
    # The only operator left alive did it.
    assert cluster["status"]["observedGeneration"] == cluster["metadata"]["generation"]
    # Its log has the run's recap once the run ends, which is after the status write.
    e2e.wait_for(lambda: follower.recaps(CLUSTER, namespace), 30, "no reconcile of the new leader ended")
    summary.append(f"leader replica SIGKILLed: Lease ({duration} s) taken by the other replica {takeover:.1f} s "
                   f"after the kill; a change after it reconciled by the new leader in {reconciled:.1f} s")
