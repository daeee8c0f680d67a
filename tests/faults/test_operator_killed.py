"""The operator SIGKILLed in the middle of provisioning a new cluster, as the end of its container
would (every process of it at once, the reconcile under way included), right after the credentials
Secret appears and right after the StatefulSet appears: a new operator process finishes the
cluster, and every Secret the first one generated is kept byte for byte (no password, certificate
or backup passphrase generated again)."""

from __future__ import annotations

import contextlib
import time

import pytest

from tests.e2e import helpers as e2e
from tests.faults import faults

REPLICAS = 3
# Where the first operator is killed: as soon as this object of the new cluster exists.
KILL_POINTS = {"after-credentials-secret": ("secret", "{}-credentials"), "after-statefulset": ("statefulset", "{}")}
# A repository with encryption: its passphrase is generated too, and must be kept as well.
BACKUP = {"repository": {"volume": {"size": "1Gi"}}, "encryption": True}

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def first(control_plane):
    proc = e2e.Operator(name="faults-operator-first")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def takeover(namespace, first):
    """Starts the operator that takes over when called. At the end it deletes the cluster (one is
    started for that when the test ended before calling it): nothing is left Terminating."""
    with contextlib.ExitStack() as stack:
        started = []

        def start():
            first.stop()
            started.append(stack.enter_context(faults.operator(namespace, name="faults-operator-second")))
            return started[-1]
        yield start
        if not started:
            start()


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_new_operator_finishes_a_cluster_whose_reconcile_was_killed(namespace, first, takeover, point, summary):
    cluster = f"killed-{list(KILL_POINTS).index(point)}"
    kind, name = KILL_POINTS[point][0], KILL_POINTS[point][1].format(cluster)
    e2e.apply(e2e.postgres_cluster(cluster, replicas=REPLICAS, backup=BACKUP), namespace)
    e2e.wait_for(lambda: e2e.get(kind, name, namespace), 60, f"{kind} {name} did not appear", interval=0.05)
    first.kill()

    # The kill landed in the middle of the first reconcile: none had finished, nothing is Running.
    assert not first.recaps(cluster, namespace), "a reconcile finished before the kill:\n" + first.log_tail(40)
    assert faults.phase(cluster, namespace) != "Running"
    generated = faults.cluster_secrets(cluster, namespace)
    assert f"{cluster}-credentials" in generated
    statefulset_existed = e2e.get("statefulset", cluster, namespace) is not None

    started = time.monotonic()
    takeover()
    e2e.wait_for_phase(cluster, namespace, "Running", ready=REPLICAS, timeout=120)
    recovered = time.monotonic() - started

    now = faults.cluster_secrets(cluster, namespace)
    changed = sorted(secret for secret, data in generated.items() if now.get(secret) != data)
    assert not changed, f"Secrets generated again after the kill: {changed}"
    summary.append(f"operator SIGKILLed mid-reconcile {point} ({len(generated)} Secret(s), StatefulSet "
                   f"{'present' if statefulset_existed else 'absent'}): Running {recovered:.1f} s after a new "
                   f"operator started; {len(generated)} Secret(s) byte-identical")
