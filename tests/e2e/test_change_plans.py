"""Plan before apply under the real operator: the plan playbook prints what a proposed spec would do
and touches nothing; a supervised cluster records the plan of a disruptive change in status.plan and
waits, the StatefulSet as it was, until the approve playbook approves that generation; an automatic
cluster goes ahead and records the plan it carried out."""

from __future__ import annotations

import yaml

from tests.e2e.helpers import (apply, get, kubectl, kubectl_json, playbook_process, postgres_cluster, resource_versions,
                               run_playbook, stable_resource_versions, wait_for, wait_for_phase)

OLD_IMAGE = "ghcr.io/pgc-operator/postgres:15"
NEW_IMAGE = "ghcr.io/pgc-operator/postgres:15.9"


def _image(namespace):
    return get("statefulset", "db", namespace)["spec"]["template"]["spec"]["containers"][0]["image"]


def _plan(namespace):
    return (get("pgc", "db", namespace).get("status") or {}).get("plan") or {}


def _events(namespace, reason):
    return [e["message"] for e in kubectl_json("get", "events", "-n", namespace)["items"]
            if e["reason"] == reason and e["involvedObject"]["kind"] == "PostgresCluster"]


def test_a_supervised_change_waits_for_approval_and_the_plan_playbook_prints_it_first(operator, namespace, tmp_path):
    apply(postgres_cluster("db", replicas=3, updatePolicy={"mode": "supervised"}), namespace)
    wait_for_phase("db", namespace, "Running", ready=3)
    created = wait_for(lambda: _plan(namespace).get("generation") == 1 and _plan(namespace), 30, "no plan of the creation")
    assert (created["phase"], created["mode"], created["disruptive"]) == ("Applied", "supervised", False)

    # The plan of a proposed spec, printed before anything is applied; nothing is written.
    # (Parameters come from Patroni's configuration, which no Patroni writes here: the data plane
    # plans a parameter that needs a restart.)
    proposed = postgres_cluster("db", replicas=3, image=NEW_IMAGE, storageSize="2Gi", updatePolicy={"mode": "supervised"})
    path = tmp_path / "proposed.yaml"
    path.write_text(yaml.safe_dump(proposed))
    before = stable_resource_versions(namespace)
    out = run_playbook("plan", "-e", "cluster=db", "-e", f"namespace={namespace}", "-e", f"@{path}")
    assert "Members that restart, in order: db-2, db-1, db-0" in out, out
    assert "Pod template: spec.template.spec.containers[0].image" in out
    assert "Claims: grow from 1Gi to 2Gi" in out
    # No Patroni runs in kwok's pods, so no member is known as the primary (the data plane plans a switchover).
    assert "Switchovers: 0; expected write outage: not known (no primary)" in out
    assert "Carrying it out waits for approval" in out
    assert resource_versions(namespace) == before

    # Carried out: the plan waits in status, the StatefulSet stays as it was, one Event says so.
    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"image":"%s"}}' % NEW_IMAGE)
    waiting = wait_for(lambda: _plan(namespace).get("generation") == 2 and _plan(namespace), 60, "no plan of the change")
    assert waiting["phase"] == "AwaitingApproval" and waiting["restarts"] == ["db-2", "db-1", "db-0"]
    status = get("pgc", "db", namespace)["status"]
    assert status["phase"] == "Running" and "waits for approval" in status["message"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["PlanApproved"] == "False"
    wait_for(lambda: _events(namespace, "PlanAwaitingApproval"), 30, "no PlanAwaitingApproval Event")
    assert _image(namespace) == OLD_IMAGE

    # Only the generation that waits can be approved.
    refused = playbook_process("approve", "-e", "cluster=db", "-e", f"namespace={namespace}", "-e", "generation=1")
    assert refused.returncode != 0 and "Generation 1 is not the one whose plan waits (2)" in refused.stdout
    assert _image(namespace) == OLD_IMAGE

    out = run_playbook("approve", "-e", "cluster=db", "-e", f"namespace={namespace}")
    assert "the plan of generation 2 approved" in out
    wait_for(lambda: _image(namespace) == NEW_IMAGE, 60, "the approved change was not applied")
    done = wait_for(lambda: _plan(namespace).get("phase") == "Applied" and _plan(namespace), 90, "the plan was not carried out")
    assert done["generation"] == 2 and done["approvedAt"] and done["appliedAt"]
    wait_for(lambda: _events(namespace, "PlanApplied"), 30, "no PlanApplied Event")


def test_an_automatic_change_goes_ahead_and_records_its_plan(operator, namespace):
    apply(postgres_cluster("db", replicas=2), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"image":"%s"}}' % NEW_IMAGE)
    wait_for(lambda: _image(namespace) == NEW_IMAGE, 60, "the change was not applied")
    plan = wait_for(lambda: _plan(namespace).get("generation") == 2 and _plan(namespace), 60, "no plan recorded")
    assert plan["mode"] == "automatic" and plan["restarts"] == ["db-1", "db-0"]
    assert plan["objects"][0]["object"] == f"StatefulSet {namespace}/db"
    wait_for(lambda: _plan(namespace).get("phase") == "Applied", 90, "the plan was not carried out")
