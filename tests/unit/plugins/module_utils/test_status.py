"""The status computed from a StatefulSet and Patroni's state, its conditions, and the Events its changes deserve."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize
from ansible_collections.postgres.cluster.plugins.module_utils.status import (
    pgc_failure_message,
    pgc_failure_status,
    pgc_status,
    pgc_status_differs,
    pgc_status_transitions,
)
from tests.unit.plugins.module_utils.samples import cluster, observed, statefulset


def test_pgc_status_names_the_holder_of_the_leader_lock_and_each_member():
    pgc = pgc_normalize(cluster(replicas=3))
    status = pgc_status(pgc, statefulset(3, 3), observed("db-2"))
    assert status["currentPrimary"] == "db-2"
    assert [(m["name"], m["role"]) for m in status["members"]] == [("db-0", "replica"), ("db-1", "replica"), ("db-2", "primary")]
    assert pgc_status(pgc, statefulset(3, 3), observed(None))["currentPrimary"] is None


def test_pgc_status_leaves_replication_lag_out_so_that_writes_do_not_rewrite_it():
    obs = observed()
    obs["members"][1]["lagBytes"] = 4096
    status = pgc_status(pgc_normalize(cluster(replicas=3)), statefulset(3, 3), obs)
    assert "lagBytes" not in status["members"][1]


def conditions(status):
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_pgc_status_is_degraded_without_a_primary_or_with_a_member_down():
    pgc = pgc_normalize(cluster(replicas=3))
    assert conditions(pgc_status(pgc, statefulset(3, 3), observed()))["Degraded"] == ("False", "Healthy")
    assert conditions(pgc_status(pgc, statefulset(3, 3), observed(None)))["Degraded"] == ("True", "NoPrimary")
    down = observed(**{"db-1": {"state": "stopped"}})
    degraded = pgc_status(pgc, statefulset(3, 3), down)["conditions"]
    [cond] = [c for c in degraded if c["type"] == "Degraded"]
    assert (cond["status"], cond["reason"]) == ("True", "MembersUnhealthy") and "db-1" in cond["message"]
    # Before Patroni bootstrapped anything there is nothing to be degraded about.
    assert conditions(pgc_status(pgc, statefulset(3, 3), observed(None, initialized=False)))["Degraded"][0] == "False"


def test_pgc_status_is_pending_without_statefulset():
    status = pgc_status(pgc_normalize(cluster(replicas=3)), None)
    assert status["phase"] == "Pending"
    assert status["readyReplicas"] == 0
    assert status["currentPrimary"] is None


def test_pgc_status_is_running_when_every_replica_is_ready():
    status = pgc_status(pgc_normalize(cluster(replicas=3)), statefulset(3, 3), observed())
    assert status["phase"] == "Running"
    assert (status["currentReplicas"], status["readyReplicas"]) == (3, 3)
    assert status["observedGeneration"] == 4
    assert status["selector"] == "postgres.example.com/cluster=db"
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {"Ready": "True", "Progressing": "False", "Degraded": "False", "Reconciled": "True"}


def test_pgc_status_waits_for_the_statefulset_controller_to_see_the_new_template():
    status = pgc_status(pgc_normalize(cluster(replicas=3)), statefulset(3, 3, generation=3, observed=2))
    assert status["phase"] == "Pending"


def test_pgc_status_reports_scaling_once_the_cluster_was_running():
    obj = cluster(replicas=5)
    obj["status"] = {"phase": "Running"}
    sts = statefulset(5, 3)
    sts["status"]["replicas"] = 3
    status = pgc_status(pgc_normalize(obj), sts)
    assert status["phase"] == "Scaling"
    assert "3 to 5" in status["message"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"


def test_pgc_status_reports_a_rolling_update_of_a_running_cluster_and_announces_it():
    obj = cluster(replicas=3)
    obj["status"] = {"phase": "Running"}
    sts = statefulset(3, 2, updated=1, generation=3, observed=3)
    sts["status"]["updateRevision"] = "new"
    # db-1's pod is being made again: one member updated, two to go.
    sts["status"]["replicas"] = 2
    members = observed(**{"db-0": {"revision": "old"}, "db-1": {"revision": "old"}, "db-2": {"revision": "new"}})
    status = pgc_status(pgc_normalize(obj), sts, members)
    assert (status["phase"], status["message"]) == ("Updating", "1/3 members updated to the new pod template")
    # Right after the template is applied, before the StatefulSet controller saw it: as it was.
    assert pgc_status(pgc_normalize(obj), statefulset(3, 3, generation=4, observed=3), observed())["phase"] == "Running"
    # A new cluster whose pods are not all made yet is Pending, not Updating.
    assert pgc_status(pgc_normalize(cluster(replicas=3)), statefulset(3, 2, updated=2))["phase"] == "Pending"
    assert [e["reason"] for e in pgc_status_transitions({"phase": "Running"}, status)] == ["RollingUpdate"]
    done = dict(status, phase="Running")
    assert [e["reason"] for e in pgc_status_transitions(status, done)] == ["RollingUpdateDone"]


def test_pgc_status_reports_a_held_canary_and_what_to_do_about_it():
    obj = cluster(replicas=3)
    obj["status"] = {"phase": "Updating"}
    obj["spec"]["updatePolicy"] = {"canary": 1}
    sts = statefulset(3, 3, updated=1, generation=3, observed=3)
    sts["status"]["updateRevision"] = "db-7c9"
    members = observed(**{"db-0": {"revision": "db-5b1"}, "db-1": {"revision": "db-5b1"},
                          "db-2": {"revision": "db-7c9"}})
    status = pgc_status(pgc_normalize(obj), sts, members)
    assert status["phase"] == "Updating"
    assert status["message"].startswith("Canary held: db-2 runs the new pod template (revision db-7c9), 2 members")
    assert "approve playbook" in status["message"] and "put the spec back" in status["message"]
    assert status["rollout"] == {"revision": "db-7c9", "updatedMembers": 1, "canary": 1, "canaries": ["db-2"],
                                "held": True}
    assert "CanaryHeld" in [e["reason"] for e in pgc_status_transitions({"phase": "Updating"}, status)]
    # Done: the update record goes.
    obj["status"] = status
    everyone = observed(**{name: {"revision": "db-7c9"} for name in ("db-0", "db-1", "db-2")})
    done = pgc_status(pgc_normalize(obj), statefulset(3, 3, generation=3, observed=3), everyone)
    assert done["phase"] == "Running" and done["rollout"] is None


def test_pgc_status_reports_backups_from_jobs_and_announces_them():
    pgc = pgc_normalize({"metadata": {"name": "main", "namespace": "db"},
                         "spec": {"backupSchedule": "0 2 * * *"}})
    jobs = [{"name": "main-backup-1", "kind": "backup", "backup": "", "phase": "Failed", "created": "2026-11-26T02:00:00Z",
             "started": "2026-11-26T02:00:00Z", "finished": "2026-11-26T02:01:00Z", "result": None,
             "message": "ERROR: [049]: unable to get address for 'main.db.svc'"}]
    status = pgc_status(pgc, None, {"backup_jobs": jobs})
    assert status["backupFailures"] == 1
    assert status["backups"] == {"repository": "volume", "schedule": "0 2 * * *", "logicalSchedule": "",
                                 "drillSchedule": ""}
    condition = [c for c in status["conditions"] if c["type"] == "LastBackupSucceeded"][0]
    assert condition["status"] == "False" and "unable to get address" in condition["message"]
    events = pgc_status_transitions({}, status)
    assert [e for e in events if e["reason"] == "BackupFailed" and e["type"] == "Warning"]


def test_pgc_status_reports_logical_backups_and_announces_them():
    pgc = pgc_normalize({"metadata": {"name": "main", "namespace": "db"},
                         "spec": {"backup": {"repository": {"s3": {"bucket": "b", "secretName": "k"}},
                                             "logical": {"schedule": "30 3 * * *"}}}})
    ok = {"name": "main-logical-backup-1", "kind": "logical-backup", "backup": "", "phase": "Succeeded",
          "created": "2026-11-26T03:30:00Z", "started": "2026-11-26T03:30:00Z", "finished": "2026-11-26T03:31:00Z",
          "results": [{"database": "app", "label": "20261126T033001000Z", "stop": "2026-11-26T03:30:20Z",
                       "name": "logical/main/app/20261126T033001000Z.pgdump.enc", "size": 4096}],
          "message": "completed"}
    ok["result"] = ok["results"][-1]
    status = pgc_status(pgc, None, {"backup_jobs": [ok]})
    assert status["lastLogicalBackup"]["dumps"][0]["database"] == "app"
    assert status["logicalBackupFailures"] == 0
    assert "lastBackupTimestamp" not in status
    assert not [c for c in status["conditions"] if c["type"] == "LastBackupSucceeded"]
    events = pgc_status_transitions({}, status)
    assert [e["message"] for e in events if e["reason"] == "LogicalBackupSucceeded"] == [
        "Logical backup of app finished at 2026-11-26T03:30:20Z (Job main-logical-backup-1)"]

    failed = dict(ok, name="main-logical-backup-2", phase="Failed", created="2026-11-27T03:30:00Z",
                  finished="2026-11-27T03:30:09Z", results=[], result=None,
                  message="pgc-logical-backup: error: the dump of shop failed: nothing was kept")
    after = pgc_status(dict(pgc, status=status), None, {"backup_jobs": [ok, failed]})
    assert after["logicalBackupFailures"] == 1
    assert after["lastLogicalBackup"] == status["lastLogicalBackup"]
    events = pgc_status_transitions(status, after)
    assert [e["type"] for e in events if e["reason"] == "LogicalBackupFailed"] == ["Warning"]
    assert not [e for e in events if e["reason"] in ("LogicalBackupSucceeded", "BackupFailed")]


def test_pgc_status_differs_ignores_transition_times_and_sees_real_changes():
    pgc = pgc_normalize(cluster(replicas=3))
    desired = pgc_status(pgc, statefulset(3, 3))
    written = {**desired, "conditions": [{**c, "lastTransitionTime": "2026-01-01T00:00:00Z"}
                                         for c in desired["conditions"]]}
    assert not pgc_status_differs(written, desired)
    assert pgc_status_differs(written, pgc_status(pgc, statefulset(3, 2)))
    assert pgc_status_differs({}, desired)
    assert pgc_status_differs(None, desired)


def test_pgc_failure_status_names_the_failure():
    status = pgc_failure_status(pgc_normalize(cluster()), "Apply the cluster's objects: forbidden")
    assert status["phase"] == "Failed"
    reconciled = [c for c in status["conditions"] if c["type"] == "Reconciled"][0]
    assert reconciled["status"] == "False" and "forbidden" in reconciled["message"]


def test_pgc_failure_status_marks_degraded_only_when_asked():
    pgc = pgc_normalize(cluster())
    assert "Degraded" not in {c["type"] for c in pgc_failure_status(pgc, "bad", "InvalidSpec")["conditions"]}
    degraded = pgc_failure_status(pgc, "gone", "CredentialsMissing", True)
    assert {c["type"]: (c["status"], c["reason"]) for c in degraded["conditions"]}["Degraded"] == (
        "True", "CredentialsMissing")


def test_a_reconcile_that_waits_is_pending_not_failed():
    waiting = pgc_failure_status(pgc_normalize(cluster()), "waits for cert-manager", "CertificatePending", phase="Pending")
    assert waiting["phase"] == "Pending" and waiting["message"] == "waits for cert-manager"
    assert {c["type"]: c["reason"] for c in waiting["conditions"]}["Ready"] == "CertificatePending"


def test_pgc_failure_message_keeps_the_api_servers_own_message():
    raw = ("Failed to apply object: b'{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
           "\"message\":\"StatefulSet.apps \\\\\"db\\\\\" is invalid: spec: Forbidden: updates to statefulset spec for "
           "fields other than \\'replicas\\' are forbidden\",\"reason\":\"Invalid\",\"code\":422}'")
    msg = pgc_failure_message(raw)
    assert msg == ("Failed to apply object: StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to "
                   "statefulset spec for fields other than 'replicas' are forbidden")


def test_pgc_failure_message_collapses_and_truncates_plain_text():
    assert pgc_failure_message("a\n  b") == "a b"
    assert len(pgc_failure_message("x" * 2000)) == 600


def test_pgc_status_transitions_name_what_people_want_to_see():
    assert pgc_status_transitions({"phase": "Pending"}, {"phase": "Running", "message": "3/3 replicas ready"}) == [
        {"type": "Normal", "reason": "ClusterReady", "message": "3/3 replicas ready"}]
    assert pgc_status_transitions({"phase": "Scaling"}, {"phase": "Running", "currentReplicas": 5}) == [
        {"type": "Normal", "reason": "ScalingDone", "message": "Scaled to 5 replicas"}]
    assert [e["reason"] for e in pgc_status_transitions({"phase": "Running"}, {"phase": "Scaling"})] == ["Scaling"]
    moved = pgc_status_transitions({"phase": "Running", "currentPrimary": "db-0"},
                                   {"phase": "Running", "currentPrimary": "db-2"})
    assert moved == [{"type": "Normal", "reason": "PrimaryChanged", "message": "The primary moved from db-0 to db-2"}]
    assert pgc_status_transitions({"phase": "Running", "currentPrimary": "db-0"},
                                  {"phase": "Running", "currentPrimary": "db-0"}) == []


def test_pgc_status_transitions_follow_a_failover_seen_in_two_steps():
    members = [{"name": "db-0"}, {"name": "db-1"}]
    lost = pgc_status_transitions({"phase": "Running", "currentPrimary": "db-0", "members": members},
                                  {"phase": "Running", "members": members})
    assert [(e["type"], e["reason"]) for e in lost] == [("Warning", "PrimaryLost")]
    elected = pgc_status_transitions({"phase": "Running", "members": members},
                                     {"phase": "Running", "currentPrimary": "db-1", "members": members})
    assert [(e["reason"], "db-1" in e["message"]) for e in elected] == [("PrimaryElected", True)]
    # The first election of a new cluster is no news: ClusterReady says it.
    assert pgc_status_transitions({"phase": "Running"}, {"phase": "Running", "currentPrimary": "db-0"}) == []


def test_pgc_status_transitions_announce_degraded_and_recovered():
    def with_degraded(status, reason="Healthy"):
        return {"phase": "Running", "conditions": [{"type": "Degraded", "status": status, "reason": reason, "message": reason}]}
    assert [(e["type"], e["reason"]) for e in pgc_status_transitions(with_degraded("False"), with_degraded("True", "NoPrimary"))] == [
        ("Warning", "Degraded")]
    assert [e["reason"] for e in pgc_status_transitions(with_degraded("True", "NoPrimary"), with_degraded("False"))] == ["Recovered"]
    assert pgc_status_transitions(with_degraded("True", "NoPrimary"), with_degraded("True", "NoPrimary")) == []


def test_a_cluster_the_restore_playbook_holds_is_restoring_then_overdue():
    import datetime

    from ansible_collections.postgres.cluster.plugins.module_utils.status import pgc_restoring

    obj = cluster()
    obj["metadata"]["annotations"] = {"postgres.example.com/restore-in-progress":
                                      "2026-11-29T10:00:00Z the newest backup and all archived WAL"}
    obj["status"] = {"phase": "Running", "currentPrimary": "db-0",
                     "conditions": [{"type": "Ready", "status": "True", "reason": "Running"}]}
    pgc = pgc_normalize(obj)
    soon = datetime.datetime(2026, 11, 29, 10, 5, tzinfo=datetime.timezone.utc)
    restoring = pgc_restoring(pgc, soon)
    status = restoring["status"]
    assert status["phase"] == "Restoring" and status["currentPrimary"] == "db-0", "the rest of the status stays"
    assert status["message"] == ("The restore playbook holds the cluster since 2026-11-29T10:00:00Z: "
                                 "the newest backup and all archived WAL")
    assert {c["type"]: c["reason"] for c in status["conditions"]} == {"Ready": "Restoring", "Reconciled": "Restoring"}
    assert restoring["events"] == [{"type": "Normal", "reason": "Restoring", "message": status["message"]}]
    # Once written, the next reconcile of the same state has no Event to emit.
    pgc["status"] = status
    assert pgc_restoring(pgc, soon)["events"] == []

    # A playbook stopped half-way leaves the cluster held: later, status says so, and how to go on.
    late = pgc_restoring(pgc, soon + datetime.timedelta(hours=8))
    assert {c["type"]: c["reason"] for c in late["status"]["conditions"]}["Degraded"] == "RestoreOverdue"
    assert "run it again" in late["status"]["message"] and "Abort a restore" in late["status"]["message"]
    assert late["events"][0]["type"] == "Warning" and late["events"][0]["reason"] == "RestoreOverdue"


def test_status_reports_the_claims_size_and_why_they_could_not_grow():
    from ansible_collections.postgres.cluster.plugins.module_utils.status import pgc_status, pgc_status_transitions

    pgc = pgc_normalize(dict(cluster(replicas=1, storageSize="20Gi"), status={"phase": "Running"}))
    sts = {"metadata": {"generation": 2}, "spec": {"replicas": 1, "storage": "10Gi"},
           "status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "observedGeneration": 2}}
    status = pgc_status(pgc, sts, {"storage_refused": "PersistentVolumeClaim data-db-0 cannot grow: no resize"})
    assert status["phase"] == "Running" and status["storageSize"] == "10Gi", "still Running, on the claims' size"
    refused = [c for c in status["conditions"] if c["type"] == "StorageExpanded"][0]
    assert (refused["status"], refused["reason"]) == ("False", "ExpansionRefused")
    assert refused["message"] == "spec.storageSize 20Gi: PersistentVolumeClaim data-db-0 cannot grow: no resize"
    events = pgc_status_transitions(pgc["status"], status)
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "StorageExpansionRefused")]
    assert pgc_status_transitions(status, status) == [], "once per refusal, not per reconcile"
    assert "StorageExpanded" not in [c["type"] for c in pgc_status(pgc, sts, {})["conditions"]]
    # Once it was refused, the condition says how the next growth ended.
    pgc["status"] = status
    grown = [c for c in pgc_status(pgc, dict(sts, spec={"replicas": 1, "storage": "20Gi"}), {})["conditions"]
             if c["type"] == "StorageExpanded"][0]
    assert (grown["status"], grown["reason"]) == ("True", "Expanded")


def drill_summary(name, phase, finished, result):
    return {"name": name, "kind": "drill", "backup": "", "phase": phase, "created": finished, "started": finished,
            "finished": finished, "result": result, "results": [result], "message": (result or {}).get("reason", "completed")}


def test_pgc_status_reports_the_newest_drill_and_warns_once_per_failed_drill():
    pgc = pgc_normalize({"metadata": {"name": "main", "namespace": "db"},
                         "spec": {"backupSchedule": "0 2 * * *", "backup": {"drill": {"schedule": "0 4 * * 0"}}}})
    ok = drill_summary("main-drill-1", "Succeeded", "2026-11-29T04:07:50Z", {
        "result": "succeeded", "backup": "20261129-020000F", "restored_to": "2026-11-29T02:03:09Z",
        "finished": "2026-11-29T04:07:45Z", "duration_seconds": 463})
    status = pgc_status(pgc, None, {"backup_jobs": [ok]})
    assert status["backups"]["drillSchedule"] == "0 4 * * 0"
    assert status["lastDrill"] == {"time": "2026-11-29T04:07:45Z", "backup": "20261129-020000F",
                                   "restoredTo": "2026-11-29T02:03:09Z", "durationSeconds": 463, "result": "Succeeded",
                                   "message": "Backup 20261129-020000F restored and checked", "job": "main-drill-1"}
    assert status["lastSuccessfulDrillTimestamp"] == "2026-11-29T04:07:45Z"
    events = [e for e in pgc_status_transitions({}, status) if e["reason"].startswith("Drill")]
    assert [(e["type"], e["reason"]) for e in events] == [("Normal", "DrillSucceeded")]

    failed = drill_summary("main-drill-2", "Failed", "2026-12-06T04:02:15Z", {
        "result": "failed", "backup": "20261206-020000F", "finished": "2026-12-06T04:02:10Z", "duration_seconds": 128,
        "reason": "pg_amcheck found problems in backup 20261206-020000F: heap tuple lacks matching index tuple"})
    after = pgc_status(dict(pgc, status=status), None, {"backup_jobs": [ok, failed]})
    assert after["lastDrill"]["result"] == "Failed" and after["lastDrill"]["job"] == "main-drill-2"
    assert after["lastDrill"]["message"] == failed["result"]["reason"]
    assert after["lastSuccessfulDrillTimestamp"] == "2026-11-29T04:07:45Z"
    events = [e for e in pgc_status_transitions(status, after) if e["reason"].startswith("Drill")]
    assert events == [{"type": "Warning", "reason": "DrillFailed", "message": "Restore drill Job main-drill-2 failed: "
                       "pg_amcheck found problems in backup 20261206-020000F: heap tuple lacks matching index tuple"}]
    # The next reconcile sees the same Job: no second Event.
    again = pgc_status(dict(pgc, status=after), None, {"backup_jobs": [ok, failed]})
    assert again["lastDrill"] == after["lastDrill"]
    assert [e for e in pgc_status_transitions(after, again) if e["reason"].startswith("Drill")] == []


def test_pgc_status_has_no_drill_fields_without_drills():
    pgc = pgc_normalize({"metadata": {"name": "main", "namespace": "db"}, "spec": {"backupSchedule": "0 2 * * *"}})
    status = pgc_status(pgc, None, {"backup_jobs": []})
    assert "lastDrill" not in status and "lastSuccessfulDrillTimestamp" not in status
