"""The outcome of backup Jobs, as status reports it: from the pods' results and the Jobs, never the clock."""

from __future__ import annotations

import json

from ansible_collections.postgres.cluster.plugins.module_utils.jobs import (
    backup_status,
    drill_record,
    drill_status,
    logical_backup_status,
    summarize_jobs,
)

RESULT = {"label": "20261126-020000F", "type": "full", "start": "2026-11-26T02:00:01Z",
          "stop": "2026-11-26T02:03:09Z", "size": 1175000000, "repository_delta": 53000000,
          "repository_path": "/pgc/prod/main/backup/main/20261126-020000F"}


def job(name, created, state, finished="2026-11-26T02:03:30Z", backup="", kind="backup"):
    labels = {"postgres.example.com/cluster": "main", "postgres.example.com/job": kind}
    if backup:
        labels["postgres.example.com/backup"] = backup
    status = {"startTime": created}
    if state == "succeeded":
        status.update(succeeded=1, completionTime=finished,
                      conditions=[{"type": "Complete", "status": "True", "lastTransitionTime": finished}])
    elif state == "failed":
        status.update(failed=2, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                             "message": "Job has reached the specified backoff limit",
                                             "lastTransitionTime": finished}])
    elif state == "active":
        status.update(active=1)
    return {"metadata": {"name": name, "labels": labels, "creationTimestamp": created}, "status": status}


def pod(job_name, phase, exit_code=None, message=""):
    state = {"running": {}} if exit_code is None else {"terminated": {"exitCode": exit_code, "message": message}}
    return {"metadata": {"name": job_name + "-x", "labels": {"job-name": job_name}, "creationTimestamp": "2026-11-26T02:00:00Z"},
            "status": {"phase": phase, "containerStatuses": [{"name": "pgbackrest", "state": state}]}}


def test_a_succeeded_job_reports_the_result_its_pod_wrote():
    [summary] = summarize_jobs([job("main-backup-1", "2026-11-26T02:00:00Z", "succeeded")],
                               [pod("main-backup-1", "Succeeded", 0, json.dumps(RESULT))])
    assert summary["phase"] == "Succeeded"
    assert summary["result"]["label"] == "20261126-020000F"


def test_a_failed_job_reports_the_line_that_says_why():
    log = "pgc-backup: checking the configuration\nERROR: [082]: WAL segment was not archived before the 60000ms timeout\n"
    [summary] = summarize_jobs([job("main-backup-1", "2026-11-26T02:00:00Z", "failed")],
                               [pod("main-backup-1", "Failed", 1, log)])
    assert summary["phase"] == "Failed"
    assert "WAL segment was not archived" in summary["message"]


def test_running_and_pending_jobs():
    jobs = [job("a", "2026-11-26T02:00:00Z", "active"), job("b", "2026-11-26T02:01:00Z", "active")]
    summaries = summarize_jobs(jobs, [pod("a", "Running")])
    assert [s["phase"] for s in summaries] == ["Running", "Pending"]


def test_status_takes_the_backups_stop_time_not_the_jobs_nor_the_clock():
    summaries = summarize_jobs([job("main-backup-1", "2026-11-26T02:00:00Z", "succeeded")],
                               [pod("main-backup-1", "Succeeded", 0, json.dumps(RESULT))])
    status = backup_status(summaries, {})
    assert status["fields"]["lastBackupTimestamp"] == "2026-11-26T02:03:09Z"
    assert status["fields"]["lastBackup"]["label"] == "20261126-020000F"
    assert status["fields"]["lastBackup"]["repositoryPath"].endswith("/20261126-020000F")
    assert status["condition"][0] is True
    assert status["fields"]["backupFailures"] == 0


def test_without_a_result_the_jobs_completion_time_is_used():
    summaries = summarize_jobs([job("j", "2026-11-26T02:00:00Z", "succeeded", finished="2026-11-26T02:10:00Z")], [])
    assert backup_status(summaries, {})["fields"]["lastBackupTimestamp"] == "2026-11-26T02:10:00Z"


def test_an_older_job_never_moves_last_backup_back():
    previous = {"lastBackupTimestamp": "2026-11-27T02:03:00Z", "lastBackup": {"label": "newer"}}
    summaries = summarize_jobs([job("j", "2026-11-26T02:00:00Z", "succeeded")],
                               [pod("j", "Succeeded", 0, json.dumps(RESULT))])
    fields = backup_status(summaries, previous)["fields"]
    assert fields["lastBackupTimestamp"] == "2026-11-27T02:03:00Z"
    assert fields["lastBackup"] == {"label": "newer"}


def test_failures_are_counted_once_each_and_the_condition_follows_the_newest_outcome():
    ok = job("ok", "2026-11-26T02:00:00Z", "succeeded")
    bad = job("bad", "2026-11-27T02:00:00Z", "failed", finished="2026-11-27T02:05:00Z")
    pods = [pod("ok", "Succeeded", 0, json.dumps(RESULT)), pod("bad", "Failed", 1, "ERROR: [039]: HTTP 403")]
    first = backup_status(summarize_jobs([ok, bad], pods), {})
    assert first["fields"]["backupFailures"] == 1
    assert first["fields"]["lastBackupFailure"]["job"] == "bad"
    assert first["condition"][:2] == (False, "BackupFailed")
    assert "HTTP 403" in first["condition"][2]
    again = backup_status(summarize_jobs([ok, bad], pods), first["fields"])
    assert again["fields"]["backupFailures"] == 1
    # The history limit removed the Jobs: status keeps what it knew.
    gone = backup_status([], again["fields"])
    assert gone["fields"]["backupFailures"] == 1
    assert gone["fields"]["lastBackupTimestamp"] == "2026-11-26T02:03:09Z"


def test_jobs_at_work_are_listed_so_that_the_operator_looks_again():
    summaries = summarize_jobs([job("a", "2026-11-26T02:00:00Z", "active")], [pod("a", "Running")])
    assert backup_status(summaries, {})["active"] == ["a"]


def dump(database, label, stop):
    """One line of pgc-logical-backup.sh's output."""
    return {"database": database, "label": label, "name": f"logical/main/{database}/{label}.pgdump.enc",
            "size": 81920, "sha256": "0" * 64, "format": "custom", "encrypted": True,
            "start": "2026-11-26T03:30:01Z", "stop": stop, "expired": []}


def test_logical_backups_report_each_database_dump_and_leave_physical_status_alone():
    lines = "\n".join(json.dumps(d) for d in (dump("app", "20261126T033001000Z", "2026-11-26T03:30:20Z"),
                                              dump("shop", "20261126T033021000Z", "2026-11-26T03:30:41Z")))
    summaries = summarize_jobs([job("main-logical-backup-1", "2026-11-26T03:30:00Z", "succeeded",
                                    finished="2026-11-26T03:31:00Z", kind="logical-backup")],
                               [pod("main-logical-backup-1", "Succeeded", 0, "pgc-logical-backup: dumping app\n" + lines)])
    fields = logical_backup_status(summaries, {})
    # The newest dump's stop time, not the Job's completion.
    assert fields["lastLogicalBackup"]["stopTime"] == "2026-11-26T03:30:41Z"
    assert fields["lastLogicalBackup"]["job"] == "main-logical-backup-1"
    assert fields["lastLogicalBackup"]["dumps"] == [
        {"database": "app", "label": "20261126T033001000Z", "size": 81920,
         "path": "logical/main/app/20261126T033001000Z.pgdump.enc"},
        {"database": "shop", "label": "20261126T033021000Z", "size": 81920,
         "path": "logical/main/shop/20261126T033021000Z.pgdump.enc"}]
    assert fields["logicalBackupFailures"] == 0
    # A logical dump is no physical backup.
    physical = backup_status(summaries, {})
    assert "lastBackupTimestamp" not in physical["fields"] and physical["condition"] is None


def test_logical_backup_failures_are_counted_once_each_and_status_keeps_what_it_knew():
    ok = job("ok", "2026-11-26T03:30:00Z", "succeeded", finished="2026-11-26T03:31:00Z", kind="logical-backup")
    bad = job("bad", "2026-11-27T03:30:00Z", "failed", finished="2026-11-27T03:30:30Z", kind="logical-backup")
    physical_bad = job("pbad", "2026-11-27T02:00:00Z", "failed", finished="2026-11-27T02:05:00Z")
    pods = [pod("ok", "Succeeded", 0, json.dumps(dump("app", "20261126T033001000Z", "2026-11-26T03:30:20Z"))),
            pod("bad", "Failed", 1, 'pg_dump: error: connection to server failed: FATAL: database "shop" does not exist\n'
                                    "pgc-logical-backup: error: the dump of shop failed: nothing was kept"),
            pod("pbad", "Failed", 1, "ERROR: [039]: HTTP 403")]
    first = logical_backup_status(summarize_jobs([ok, bad, physical_bad], pods), {})
    assert first["logicalBackupFailures"] == 1
    assert first["lastLogicalBackupFailure"]["job"] == "bad"
    assert "the dump of shop failed" in first["lastLogicalBackupFailure"]["message"]
    assert first["lastLogicalBackup"]["stopTime"] == "2026-11-26T03:30:20Z"
    again = logical_backup_status(summarize_jobs([ok, bad, physical_bad], pods), first)
    assert again["logicalBackupFailures"] == 1
    gone = logical_backup_status([], again)
    assert gone == first


# --- restore drills ------------------------------------------------------------------------------

DRILL = {"result": "succeeded", "stanza": "main", "backup": "20261126-020000F", "backup_type": "full",
         "restored_to": "2026-11-26T02:03:09Z", "started": "2026-11-29T04:00:02Z", "finished": "2026-11-29T04:07:45Z",
         "duration_seconds": 463, "checks": ["restore", "recovery", "amcheck", "sql"]}
FAILED_DRILL = {**DRILL, "result": "failed", "finished": "2026-11-30T04:02:10Z", "duration_seconds": 128,
                "checks": ["restore", "recovery"],
                "reason": 'pg_amcheck found problems in backup 20261126-020000F: btree index "app.public.t_k": ERROR: '
                          'heap tuple (0,1) from table "t" lacks matching index tuple within index "t_k"'}


def drill_jobs():
    jobs = [job("main-drill-1", "2026-11-29T04:00:00Z", "succeeded", finished="2026-11-29T04:07:50Z", kind="drill"),
            job("main-drill-2", "2026-11-30T04:00:00Z", "failed", finished="2026-11-30T04:02:15Z", kind="drill")]
    pods = [pod("main-drill-1", "Succeeded", 0, json.dumps(DRILL)),
            # The failed drill's pod wrote its JSON line too: the kubelet keeps it over the log.
            pod("main-drill-2", "Failed", 1, json.dumps(FAILED_DRILL))]
    return summarize_jobs(jobs, pods)


def test_a_succeeded_drill_job_is_recorded_from_its_result():
    succeeded = drill_jobs()[0]
    assert drill_record(succeeded) == {
        "time": "2026-11-29T04:07:45Z", "backup": "20261126-020000F", "restoredTo": "2026-11-26T02:03:09Z",
        "durationSeconds": 463, "result": "Succeeded", "message": "Backup 20261126-020000F restored and checked",
        "job": "main-drill-1"}


def test_a_failed_drill_job_keeps_the_reason_its_pod_wrote():
    failed = drill_jobs()[1]
    assert failed["phase"] == "Failed" and failed["result"]["result"] == "failed"
    assert failed["message"] == FAILED_DRILL["reason"]
    record = drill_record(failed)
    assert record == {"time": "2026-11-30T04:02:10Z", "backup": "20261126-020000F", "restoredTo": "2026-11-26T02:03:09Z",
                      "durationSeconds": 128, "result": "Failed", "message": FAILED_DRILL["reason"],
                      "job": "main-drill-2"}


def test_a_failed_drill_without_a_result_reports_the_end_of_its_log():
    [summary] = summarize_jobs([job("main-drill-3", "2026-11-30T04:00:00Z", "failed", kind="drill")],
                               [pod("main-drill-3", "Failed", 137, "pgc-drill: restoring backup X\nKilled\n")])
    record = drill_record(summary)
    assert (record["result"], record["message"], record["time"]) == ("Failed", "Killed", "2026-11-26T02:03:30Z")
    assert "backup" not in record and "durationSeconds" not in record


def test_drill_status_follows_the_newest_drill_and_keeps_the_last_success():
    fields = drill_status(drill_jobs(), {})
    assert fields["lastDrill"]["job"] == "main-drill-2" and fields["lastDrill"]["result"] == "Failed"
    assert fields["lastSuccessfulDrillTimestamp"] == "2026-11-29T04:07:45Z"
    # Jobs gone from history: status keeps what it knew, and an older Job never moves it back.
    assert drill_status([], fields) == fields
    assert drill_status(drill_jobs()[:1], fields) == fields
    # Backup Jobs are no drills.
    assert drill_status(summarize_jobs([job("main-backup-1", "2026-11-26T02:00:00Z", "succeeded")],
                                       [pod("main-backup-1", "Succeeded", 0, json.dumps(RESULT))]), {}) == {}
