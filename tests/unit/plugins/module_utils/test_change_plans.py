"""The plan of a spec's change: what it restarts, switches over and grows, whether it waits for
approval (spec.updatePolicy.mode supervised), and how status carries it."""

from __future__ import annotations

import datetime

from ansible_collections.postgres.cluster.plugins.module_utils.change_plans import (
    pgc_change_plan,
    pgc_plan_due,
    pgc_plan_held,
    pgc_plan_lines,
    pgc_plan_record,
    plan_progress,
)
from ansible_collections.postgres.cluster.plugins.module_utils.patroni import pgc_dcs_config
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize, pgc_proposed, pgc_spec_errors
from ansible_collections.postgres.cluster.plugins.module_utils.status import pgc_status, pgc_status_transitions
from tests.unit.plugins.module_utils.samples import cluster, observed, statefulset

NOW = datetime.datetime(2026, 11, 30, 8, 0, 0, tzinfo=datetime.timezone.utc)


def applied(*entries):
    """k8s_apply's report in check mode: (object, action, reasons) per object."""
    return {"objects": [{"object": o, "action": a, "reasons": list(r)} for o, a, r in entries]}


NEW_IMAGE = applied(
    ("StatefulSet prod/db", "configured", ["rendered object changed", "spec.template.spec.containers[0].image differs"]),
    ("Service prod/db", "unchanged", []))


def test_a_new_image_restarts_every_member_replicas_first_with_one_switchover():
    pgc = pgc_normalize(cluster(replicas=3))
    state = dict(observed("db-1"), config=pgc_dcs_config({}, pgc))
    plan = pgc_change_plan(pgc, state, NEW_IMAGE)
    assert plan["objects"] == [{"object": "StatefulSet prod/db", "action": "configured",
                                "reasons": NEW_IMAGE["objects"][0]["reasons"]}]
    assert plan["template"] == ["spec.template.spec.containers[0].image"]
    assert plan["restarts"] == ["db-2", "db-0", "db-1"] and plan["switchovers"] == 1
    assert plan["writeOutageSeconds"] == 3 and plan["disruptive"]
    assert plan["summary"].startswith("3 members restart, replicas first (db-2, db-0, db-1), because of the pod template")


def test_a_reload_is_told_from_a_restart_and_claims_that_grow_are_seen():
    obj = cluster(replicas=2)
    config = pgc_dcs_config({}, pgc_normalize(obj))
    obj["spec"]["configuration"] = {"work_mem": "64MB"}
    plan = pgc_change_plan(pgc_normalize(obj), dict(observed(n=2), config=config), applied())
    assert plan["parameters"] == {"changed": ["work_mem"], "restart": []} and plan["restarts"] == []
    assert plan["summary"] == "no member restarts; 1 parameter reloaded" and not plan["disruptive"]
    obj["spec"]["configuration"] = {"max_connections": "300"}
    obj["spec"]["storageSize"] = "5Gi"
    obj["status"] = {"storageSize": "1Gi"}
    plan = pgc_change_plan(pgc_normalize(obj), dict(observed(n=2), config=config), applied())
    assert plan["parameters"]["restart"] == ["max_connections"] and plan["restarts"] == ["db-1", "db-0"]
    assert plan["claims"] == {"from": "1Gi", "to": "5Gi"} and "grow from 1Gi to 5Gi" in plan["summary"]
    # A single member has nobody to switch over to: writes stop until it is back.
    one = cluster(replicas=1)
    one["spec"]["configuration"] = {"max_connections": "300"}
    plan = pgc_change_plan(pgc_normalize(one), dict(observed(n=1), config=config), applied())
    assert plan["switchovers"] == 0 and plan["writeOutageSeconds"] is None
    assert "the only member restarts" in plan["summary"]


def test_a_scale_down_that_removes_the_primary_plans_its_switchover():
    pgc = pgc_normalize(cluster(replicas=2))
    plan = pgc_change_plan(pgc, observed("db-2"), applied())
    assert plan["removed"] == ["db-2"] and plan["switchovers"] == 1 and plan["restarts"] == []
    assert plan["disruptive"] and "db-2 removed by the scale-down; one switchover" in plan["summary"]
    # A scale-up disrupts nothing.
    plan = pgc_change_plan(pgc_normalize(cluster(replicas=5)), observed(), applied(
        ("StatefulSet prod/db", "configured", ["spec.replicas differs"])))
    assert not plan["disruptive"] and plan["template"] == [] and plan["summary"] == "no member restarts"


def test_supervised_mode_holds_a_disruptive_plan_until_its_generation_is_approved():
    obj = cluster(replicas=3, updatePolicy={"mode": "supervised"})
    pgc = pgc_normalize(obj)
    plan = pgc_change_plan(pgc, observed(), NEW_IMAGE)
    record = pgc_plan_record(pgc, plan, now=NOW)
    assert (record["phase"], record["generation"], record["mode"]) == ("AwaitingApproval", 4, "supervised")
    assert pgc_plan_held(pgc, record)
    # Made once per generation: the next reconcile reads it from status.
    held = pgc_normalize(dict(obj, status={"plan": record}))
    assert not pgc_plan_due(held) and pgc_plan_held(held)
    # An approval of another generation approves nothing; of this one, the plan goes ahead.
    obj["metadata"]["annotations"] = {"postgres.example.com/approve-plan": "3"}
    assert pgc_plan_held(pgc_normalize(dict(obj, status={"plan": record})))
    obj["metadata"]["annotations"] = {"postgres.example.com/approve-plan": "4"}
    approved = pgc_normalize(dict(obj, status={"plan": record}))
    assert not pgc_plan_held(approved)
    # A new generation needs a plan of its own.
    obj["metadata"]["generation"] = 5
    assert pgc_plan_due(pgc_normalize(dict(obj, status={"plan": record})))
    # A change that disrupts nothing does not wait; automatic mode never waits, but records the plan.
    quiet = pgc_plan_record(pgc, pgc_change_plan(pgc, observed(), applied()), now=NOW)
    assert quiet["phase"] == "Applied" and quiet["appliedAt"] == "2026-11-30T08:00:00Z"
    auto = pgc_normalize(cluster(replicas=3))
    record = pgc_plan_record(auto, pgc_change_plan(auto, observed(), NEW_IMAGE), now=NOW)
    assert (record["phase"], record["mode"]) == ("Applying", "automatic") and not pgc_plan_held(auto, record)


def test_an_approved_plan_is_applying_then_applied_once_the_cluster_settles():
    obj = cluster(replicas=3, updatePolicy={"mode": "supervised"})
    record = pgc_plan_record(pgc_normalize(obj), pgc_change_plan(pgc_normalize(obj), observed(), NEW_IMAGE), now=NOW)
    obj["metadata"]["annotations"] = {"postgres.example.com/approve-plan": "4"}
    pgc = pgc_normalize(obj)
    applying = plan_progress(pgc, record, settled=True, now=NOW)
    assert applying["phase"] == "Applying" and applying["approvedAt"] == "2026-11-30T08:00:00Z"
    assert plan_progress(pgc, applying, settled=False, now=NOW)["phase"] == "Applying"
    done = plan_progress(pgc, applying, settled=True, now=NOW + datetime.timedelta(seconds=1))
    assert done["phase"] == "Applied" and done["appliedAt"] == "2026-11-30T08:00:01Z"
    # Patroni marks pending_restart only at its next loop: a restart for parameters is not done sooner.
    params = dict(applying, parameters={"changed": ["max_connections"], "restart": ["max_connections"]})
    assert plan_progress(pgc, params, settled=True, now=NOW + datetime.timedelta(seconds=5))["phase"] == "Applying"
    assert plan_progress(pgc, params, settled=True, now=NOW + datetime.timedelta(seconds=16))["phase"] == "Applied"


def test_status_reports_a_waiting_plan_with_the_cluster_as_it_runs_and_one_event():
    obj = cluster(replicas=2, updatePolicy={"mode": "supervised"})
    obj["status"] = {"phase": "Running", "currentReplicas": 3}
    pgc = pgc_normalize(obj)
    record = pgc_plan_record(pgc, pgc_change_plan(pgc, observed(), applied()), now=NOW)
    assert record["phase"] == "AwaitingApproval" and record["removed"] == ["db-2"]
    # The StatefulSet still runs 3 members: the cluster is Running as it is, not Scaling.
    status = pgc_status(pgc, statefulset(3, 3), dict(observed(), plan=record))
    assert status["phase"] == "Running" and status["plan"]["phase"] == "AwaitingApproval"
    assert status["message"].startswith("The change of generation 4 waits for approval (the approve playbook)")
    approval = next(c for c in status["conditions"] if c["type"] == "PlanApproved")
    assert (approval["status"], approval["reason"]) == ("False", "AwaitingApproval")
    events = pgc_status_transitions(obj["status"], status)
    assert [e["reason"] for e in events] == ["PlanAwaitingApproval"]
    assert "db-2 removed by the scale-down" in events[0]["message"]
    # Written again unchanged: no second Event.
    assert pgc_status_transitions(status, status) == []


def test_the_plan_playbook_prints_each_part_and_plans_a_proposed_spec():
    live = cluster(replicas=3)
    live["status"] = {"storageSize": "1Gi"}
    pgc = pgc_normalize(live)
    proposed = pgc_proposed(pgc, {"replicas": 3, "storageSize": "2Gi", "configuration": {"shared_buffers": "256MB"},
                                  "updatePolicy": {"mode": "supervised"}})
    assert proposed["generation"] == 5 and proposed["status"] == {"storageSize": "1Gi"}
    assert pgc_spec_errors(proposed) == []
    state = dict(observed(), config=pgc_dcs_config({}, pgc))
    record = pgc_plan_record(proposed, pgc_change_plan(proposed, state, NEW_IMAGE), now=NOW)
    lines = pgc_plan_lines(record, "prod/db")
    assert lines[0].startswith("Plan for prod/db: 3 members restart, replicas first (db-2, db-1, db-0)")
    assert "  StatefulSet prod/db: configured (rendered object changed; spec.template.spec.containers[0].image differs)" in lines
    assert "Parameters that change: shared_buffers (need a restart: shared_buffers)" in lines
    assert "Members that restart, in order: db-2, db-1, db-0" in lines
    assert "Switchovers: 1; expected write outage: about 3 s" in lines
    assert "Claims: grow from 1Gi to 2Gi" in lines
    assert lines[-1].startswith("Carrying it out waits for approval")


def test_spec_update_policy_mode_is_checked():
    assert pgc_spec_errors(pgc_normalize(cluster(updatePolicy={"mode": "supervised"}))) == []
    errors = pgc_spec_errors(pgc_normalize(cluster(updatePolicy={"mode": "manual"})))
    assert errors == ["spec.updatePolicy.mode must be one of automatic, supervised, not 'manual'"]


def test_without_patroni_reports_the_members_are_the_ones_status_counted():
    obj = cluster(replicas=2)
    obj["status"] = {"currentReplicas": 2, "currentPrimary": "db-0"}
    plan = pgc_change_plan(pgc_normalize(obj), {"members": []}, NEW_IMAGE)
    assert plan["restarts"] == ["db-1", "db-0"] and plan["switchovers"] == 1 and plan["disruptive"]
    unknown = dict(obj, status={"currentReplicas": 2})
    plan = pgc_change_plan(pgc_normalize(unknown), {"members": []}, NEW_IMAGE)
    assert plan["switchovers"] == 0 and plan["writeOutageSeconds"] is None
    assert "no member is known as the primary" in plan["summary"]
    assert "Switchovers: 0; expected write outage: not known (no primary)" in pgc_plan_lines(plan, "prod/db")


def test_a_major_upgrade_is_planned_with_its_steps_outage_and_rollback_and_waits_when_supervised():
    obj = cluster(replicas=3, postgresVersion=16, updatePolicy={"mode": "supervised"})
    obj["status"] = {"postgresVersion": 15, "currentReplicas": 3, "currentPrimary": "db-0"}
    pgc = pgc_normalize(obj)
    plan = pgc_change_plan(pgc, observed(), applied())
    major = plan["majorUpgrade"]
    assert (major["from"], major["to"], major["mode"]) == (15, 16, "copy")
    assert major["claimsRecreated"] == ["data-db-1", "data-db-2"]
    assert plan["restarts"] == ["db-0", "db-1", "db-2"] and plan["disruptive"]
    assert plan["writeOutageSeconds"] >= 120
    assert plan["summary"].startswith("PostgreSQL 15 to 16 (copy mode): every member stops, the replicas are cloned anew")
    assert pgc_plan_record(pgc, plan, now=NOW)["phase"] == "AwaitingApproval"
    lines = pgc_plan_lines(plan, "prod/db")
    assert "Major upgrade, PostgreSQL 15 to 16 (copy mode):" in lines
    assert any(line.startswith("  rollback possible until the first write after the upgrade") for line in lines)
    # No upgrade when the members run the spec's major.
    obj["status"]["postgresVersion"] = 16
    assert pgc_change_plan(pgc_normalize(obj), observed(), applied())["majorUpgrade"] == {}
