from __future__ import annotations

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils.plans import pgc_steps_with_work
from ansible_collections.postgres.cluster.plugins.module_utils.scaling import replicas_floor, scale_target
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize
from ansible_collections.postgres.cluster.plugins.module_utils.status import pgc_status, pgc_status_transitions
from tests.unit.plugins.module_utils.samples import cluster, observed, statefulset


def test_replicas_floor_is_a_primary_and_a_synchronous_standby_with_synchronous_mode():
    assert replicas_floor({"synchronous": True}) == 2
    assert replicas_floor({"synchronous": False}) == 1
    assert replicas_floor({}) == 1


@pytest.mark.parametrize("requested, current, runs", [
    (1, 4, 2),  # a HorizontalPodAutoscaler's minReplicas 1: stops at the quorum
    (1, 2, 2),
    (3, 4, 3),  # above the quorum: as asked
    (4, 2, 4),  # scale-ups are never held
    (1, 1, 1),  # made with one member, as its user asked: left so
    (1, 0, 1),  # a new cluster
    (1, None, 1),
])
def test_scale_target_holds_a_synchronous_scale_down_at_the_quorum(requested, current, runs):
    target = scale_target({"replicas": requested, "synchronous": True}, current)
    assert target["replicas"] == runs and target["requested"] == requested and target["floor"] == 2
    assert target["held"] is (runs > requested)
    assert bool(target["message"]) is target["held"]


def test_scale_target_without_synchronous_mode_goes_where_asked():
    target = scale_target({"replicas": 1, "synchronous": False}, 4)
    assert (target["replicas"], target["held"], target["message"]) == (1, False, "")


def test_scale_target_leaves_a_replicas_value_that_is_not_a_count_to_the_validation():
    assert scale_target({"replicas": "two", "synchronous": True}, 3)["replicas"] == "two"
    assert scale_target({"replicas": True, "synchronous": True}, 3)["held"] is False


def test_the_normalized_fact_runs_the_held_count_and_keeps_what_was_asked():
    pgc = pgc_normalize(dict(cluster(replicas=1, synchronous=True), status={"currentReplicas": 3}))
    assert pgc["spec"]["replicas"] == 2, "every role (StatefulSet, scale step, status) reads this count"
    assert pgc["scale"]["requested"] == 1 and pgc["scale"]["held"]
    assert "synchronous" in pgc["scale"]["message"] and "keeps 2" in pgc["scale"]["message"]
    # The members removed are 2 and up only: the scale step moves the primary off those, not off 1.
    assert "scale" in pgc_steps_with_work({}, pgc)


def test_status_says_a_scale_down_is_held_with_one_warning_event_and_clears_it():
    pgc = pgc_normalize(dict(cluster(replicas=1, synchronous=True),
                             status={"phase": "Running", "currentReplicas": 2}))
    status = pgc_status(pgc, statefulset(2, 2), observed(n=2))
    assert status["phase"] == "Running", "the held cluster is what it should be"
    held = [c for c in status["conditions"] if c["type"] == "ScaleDownHeld"][0]
    assert (held["status"], held["reason"]) == ("True", "SynchronousQuorum")
    assert held["message"].startswith("spec.replicas 1 is below the 2 members")
    events = pgc_status_transitions(pgc["status"], status)
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "ScaleDownHeld")]
    assert pgc_status_transitions(status, status) == [], "once, not on every reconcile"
    # spec.replicas back to 2 (or synchronous off): the condition says the spec is met again.
    pgc = pgc_normalize(dict(cluster(replicas=2, synchronous=True), status=status))
    cleared = [c for c in pgc_status(pgc, statefulset(2, 2), observed(n=2))["conditions"]
               if c["type"] == "ScaleDownHeld"][0]
    assert (cleared["status"], cleared["reason"]) == ("False", "ReplicasMatchSpec")


def test_status_of_a_cluster_never_held_has_no_scale_down_condition():
    pgc = pgc_normalize(dict(cluster(replicas=2, synchronous=True), status={"phase": "Running", "currentReplicas": 2}))
    assert "ScaleDownHeld" not in [c["type"] for c in pgc_status(pgc, statefulset(2, 2), observed(n=2))["conditions"]]
