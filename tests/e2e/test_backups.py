"""Backups on the control plane: the CronJob and the Jobs are rendered and accepted, a Job's end
updates the PostgresBackup's and the cluster's status from what its pod reported, and a failed
Job sets a clear condition and an Event.

kwok runs no container: the tests play the backup container's part, writing to the pod's status
the termination message that pgc-backup.sh writes (its JSON line on success, the end of its log
on failure; hack/cluster-up.sh keeps kwok from completing these pods itself), and stamping the
cluster as the Job's last command does.
"""

from __future__ import annotations

import datetime
import json
import threading

from tests.e2e.helpers import (apply, get, kubectl, kubectl_json, playbook_process, postgres_cluster, run_playbook,
                               stable_resource_versions,
                               wait_for, wait_for_phase)

S3_BACKUP = {"repository": {"s3": {"endpoint": "minio.storage.svc:9000", "bucket": "pg-backups",
                                   "secretName": "s3-keys", "uriStyle": "path"}}}


def s3_keys(namespace):
    kubectl("create", "secret", "generic", "s3-keys", "-n", namespace,
            "--from-literal=access-key-id=AKIAEXAMPLE", "--from-literal=secret-access-key=not-a-real-key")


def result(label, stop, backup_type="full"):
    return {"stanza": "db", "label": label, "type": backup_type, "start": "2026-11-26T02:00:01Z", "stop": stop,
            "size": 31457280, "delta": 31457280, "repository_size": 4194304, "repository_delta": 4194304,
            "repository_path": f"/pgc/ns/db/backup/db/{label}"}


def job_pods(namespace, job):
    return kubectl_json("get", "pods", "-n", namespace, "-l", f"job-name={job}")["items"]


def finish_pod(namespace, pod, exit_code, message):
    """What the kubelet writes when the backup container ends."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {"status": {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "containerStatuses": [{
            "name": "pgbackrest", "image": pod["spec"]["containers"][0]["image"], "imageID": "", "ready": False,
            "restartCount": 0, "started": False,
            "state": {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                                     "message": message, "startedAt": now, "finishedAt": now}}}],
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
    }}
    kubectl("patch", "pod", pod["metadata"]["name"], "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps(status))


def run_job_pods(namespace, job, exit_code, message, pods=1):
    """Finish the Job's pods one after the other (a failed Job retries once: backoffLimit 1)."""
    done = set()
    for _ in range(pods):
        pod = wait_for(lambda: next((p for p in job_pods(namespace, job) if p["metadata"]["name"] not in done
                                     and p["status"].get("phase") in ("Pending", "Running")), None),
                       60, f"no pod of Job {job}")
        finish_pod(namespace, pod, exit_code, message)
        done.add(pod["metadata"]["name"])


def job_condition(namespace, job, ctype):
    obj = get("job", job, namespace) or {}
    return any(c["type"] == ctype and c["status"] == "True" for c in obj.get("status", {}).get("conditions", []))


def finish_as_patroni(thread, outcome, namespace):
    """Patroni's part while a restore playbook (``thread``) starts the members again, which kwok does
    not run: member 0 takes the leader lock. Then the playbook must have succeeded."""
    from tests.e2e.test_cluster_metrics import leader_lock

    while thread.is_alive():
        if get("pod", "db-0", namespace):
            apply(leader_lock("db", namespace, "db-0", datetime.datetime.now(datetime.timezone.utc)), namespace)
            stamp(namespace)
        thread.join(timeout=5)
    proc = outcome["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:]


def stamp(namespace, name="db"):
    """What the Job's last command does: pgc-callback.py stamps the cluster, which wakes the operator."""
    kubectl("annotate", "--overwrite", "pgc", name, "-n", namespace,
            f"postgres.example.com/member-event={datetime.datetime.now().isoformat()} backup finished")


def events(namespace, name, reason):
    items = kubectl_json("get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")["items"]
    return [e for e in items if e["reason"] == reason]


def condition(obj, ctype):
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), {})


def test_a_scheduled_backup_updates_status_from_the_result_and_a_failed_one_says_why(operator, namespace):
    s3_keys(namespace)
    apply(postgres_cluster("db", replicas=1, backupSchedule="0 2 * * *", backupRetention=3, backup=S3_BACKUP), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)

    cron = get("cronjob", "db-backup", namespace)
    assert cron["spec"]["schedule"] == "0 2 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["metadata"]["ownerReferences"][0]["kind"] == "PostgresCluster"
    # Generated once, with no ownerReference: the backups outlive the cluster, so does their passphrase.
    passphrase = get("secret", "db-backup-encryption", namespace)
    assert passphrase and "ownerReferences" not in passphrase["metadata"]
    assert get("secret", "db-backup-tls", namespace)
    conf = get("configmap", "db-pgbackrest", namespace)["data"]
    assert "repo1-retention-full=3" in conf["job.conf"] and "pg1-host-type=tls" in conf["job.conf"]
    assert "not-a-real-key" not in json.dumps(conf)
    sts = get("statefulset", "db", namespace)
    assert "pgbackrest" in [c["name"] for c in sts["spec"]["template"]["spec"]["containers"]]

    # A Job from the CronJob's template is accepted by the API server and runs as the schedule would.
    kubectl("create", "job", "--from=cronjob/db-backup", "db-backup-1", "-n", namespace)
    stop = "2026-11-26T02:03:09Z"
    run_job_pods(namespace, "db-backup-1", 0, json.dumps(result("20261126-020001F", stop)))
    wait_for(lambda: job_condition(namespace, "db-backup-1", "Complete"), 60, "the Job did not complete")
    stamp(namespace)
    cluster = wait_for(lambda: (lambda c: c if c["status"].get("lastBackupTimestamp") else None)(get("pgc", "db", namespace)),
                       60, "status.lastBackupTimestamp was not set")
    # The backup's own stop time, not the time of the reconcile.
    assert cluster["status"]["lastBackupTimestamp"] == stop
    assert cluster["status"]["lastBackup"]["label"] == "20261126-020001F"
    assert condition(cluster, "LastBackupSucceeded")["status"] == "True"
    wait_for(lambda: events(namespace, "db", "BackupSucceeded"), 30, "no BackupSucceeded Event")

    kubectl("create", "job", "--from=cronjob/db-backup", "db-backup-2", "-n", namespace)
    log = ("pgc-backup: checking the configuration and WAL archiving\n"
           "ERROR: [039]: HTTP request failed with 403 (Forbidden): the access key is not allowed on bucket pg-backups\n"
           "pgc-backup: error: pgbackrest check failed: WAL archiving or the repository does not work")
    run_job_pods(namespace, "db-backup-2", 1, log, pods=2)
    wait_for(lambda: job_condition(namespace, "db-backup-2", "Failed"), 60, "the Job did not fail")
    stamp(namespace)
    cluster = wait_for(lambda: (lambda c: c if c["status"].get("backupFailures") else None)(get("pgc", "db", namespace)),
                       60, "status.backupFailures was not counted")
    assert cluster["status"]["backupFailures"] == 1
    failed = condition(cluster, "LastBackupSucceeded")
    assert (failed["status"], failed["reason"]) == ("False", "BackupFailed")
    assert "db-backup-2" in failed["message"] and "pgbackrest check failed" in failed["message"]
    # The last good backup stays what it was.
    assert cluster["status"]["lastBackupTimestamp"] == stop
    warning = wait_for(lambda: events(namespace, "db", "BackupFailed"), 30, "no BackupFailed Event")
    assert warning[0]["type"] == "Warning"


def drill_result(result, reason=""):
    """The JSON line pgc-drill.sh leaves in its termination message."""
    line = {"result": result, "stanza": "db", "backup": "20261126-020001F", "backup_type": "full",
            "restored_to": "2026-11-26T02:03:09Z", "started": "2026-11-29T04:00:02Z",
            "finished": "2026-11-29T04:%02d:41Z" % (1 if result == "succeeded" else 5), "duration_seconds": 99,
            "checks": ["restore", "recovery", "amcheck"]}
    return json.dumps({**line, "reason": reason} if reason else line)


def test_a_restore_drill_is_scheduled_and_its_result_and_failure_reach_status_and_events(operator, namespace):
    s3_keys(namespace)
    backup = {**S3_BACKUP, "drill": {"schedule": "0 4 * * 0", "check": "SELECT count(*) > 0 FROM orders"}}
    apply(postgres_cluster("db", replicas=1, backupSchedule="0 2 * * *", backup=backup), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    cron = get("cronjob", "db-drill", namespace)
    assert cron["spec"]["schedule"] == "0 4 * * 0" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    # The check reaches the drill in its environment only; no claim of the cluster is mounted.
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["PGC_DRILL_CHECK"] == "SELECT count(*) > 0 FROM orders"
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]

    kubectl("create", "job", "--from=cronjob/db-drill", "db-drill-1", "-n", namespace)
    run_job_pods(namespace, "db-drill-1", 0, drill_result("succeeded"))
    stamp(namespace)
    drill = wait_for(lambda: (get("pgc", "db", namespace)["status"].get("lastDrill") or {}).get("job") == "db-drill-1"
                     and get("pgc", "db", namespace)["status"]["lastDrill"], 60, "status.lastDrill was not set")
    assert (drill["result"], drill["backup"], drill["durationSeconds"]) == ("Succeeded", "20261126-020001F", 99)
    assert drill["restoredTo"] == "2026-11-26T02:03:09Z"
    wait_for(lambda: events(namespace, "db", "DrillSucceeded"), 30, "no DrillSucceeded Event")

    kubectl("create", "job", "--from=cronjob/db-drill", "db-drill-2", "-n", namespace)
    reason = "pg_amcheck found problems in backup 20261126-020001F: heap table public.orders lacks matching index tuple"
    run_job_pods(namespace, "db-drill-2", 1, drill_result("failed", reason))
    stamp(namespace)
    failed = wait_for(lambda: (get("pgc", "db", namespace)["status"].get("lastDrill") or {}).get("job") == "db-drill-2"
                      and get("pgc", "db", namespace)["status"]["lastDrill"], 60, "the failed drill is not in status")
    assert failed["result"] == "Failed" and "lacks matching index tuple" in failed["message"], failed
    warning = wait_for(lambda: events(namespace, "db", "DrillFailed"), 30, "no DrillFailed Event")
    assert warning[0]["type"] == "Warning" and "db-drill-2" in warning[0]["message"]
    # The last success is kept for the overdue alert.
    assert get("pgc", "db", namespace)["status"]["lastSuccessfulDrillTimestamp"] == "2026-11-29T04:01:41Z"


def delete_a_finished_backup(namespace, name, label):
    """A PostgresBackup of db with expireOnDelete, its backup done, then deleted: its expire Job."""
    apply({"apiVersion": "postgres.example.com/v1", "kind": "PostgresBackup", "metadata": {"name": name},
           "spec": {"cluster": "db", "expireOnDelete": True}}, namespace)
    run_job_pods(namespace, f"{name}-backup", 0, json.dumps(result(label, "2026-11-26T10:16:00Z")))
    wait_for(lambda: (get("pgcbackup", name, namespace).get("status") or {}).get("phase") == "Succeeded", 90,
             f"PostgresBackup {name} did not succeed")
    kubectl("delete", "pgcbackup", name, "-n", namespace, "--wait=false")
    return wait_for(lambda: get("job", f"{name}-expire", namespace), 60, "no expire Job")


def test_a_postgresbackup_runs_one_job_and_reports_it(operator, namespace):
    s3_keys(namespace)
    apply(postgres_cluster("db", replicas=1, backup=S3_BACKUP), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    assert get("cronjob", "db-backup", namespace) is None  # no schedule, no CronJob

    apply({"apiVersion": "postgres.example.com/v1", "kind": "PostgresBackup", "metadata": {"name": "before-upgrade"},
           "spec": {"cluster": "db", "type": "incr"}}, namespace)
    job = wait_for(lambda: get("job", "before-upgrade-backup", namespace), 60, "no backup Job")
    assert job["metadata"]["ownerReferences"][0]["kind"] == "PostgresBackup"
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGC_BACKUP_TYPE"] == "incr"
    wait_for(lambda: (get("pgcbackup", "before-upgrade", namespace).get("status") or {}).get("phase") in ("Pending", "Running"),
             60, "the PostgresBackup does not say that its Job runs")

    stop = "2026-11-26T09:30:12Z"
    run_job_pods(namespace, "before-upgrade-backup", 0, json.dumps(result("20261126-020001F_20261126-093000I", stop, "incr")))
    backup = wait_for(lambda: (lambda b: b if b.get("status", {}).get("phase") == "Succeeded" else None)(
        get("pgcbackup", "before-upgrade", namespace)), 90, "the PostgresBackup did not succeed")
    status = backup["status"]
    assert status["label"] == "20261126-020001F_20261126-093000I"
    assert (status["type"], status["startTime"], status["stopTime"]) == ("incr", "2026-11-26T02:00:01Z", stop)
    assert status["size"] == 31457280
    assert status["repositoryPath"].endswith("/20261126-020001F_20261126-093000I")
    wait_for(lambda: events(namespace, "before-upgrade", "BackupSucceeded"), 30, "no BackupSucceeded Event")
    # The reconcile_backup role wakes the cluster, whose status follows.
    wait_for(lambda: get("pgc", "db", namespace)["status"].get("lastBackupTimestamp") == stop, 60,
             "the cluster's lastBackupTimestamp does not follow the PostgresBackup")

    # Deleting it keeps the data: no expire Job runs (spec.expireOnDelete is false).
    kubectl("delete", "pgcbackup", "before-upgrade", "-n", namespace, "--wait=true", "--timeout=60s")
    assert get("job", "before-upgrade-expire", namespace) is None

    # With expireOnDelete, the deletion waits for a Job that expires that one backup.
    expire = delete_a_finished_backup(namespace, "scratch", "20261126-101500F")
    env = {e["name"]: e.get("value") for e in expire["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGC_BACKUP_SET"] == "20261126-101500F"
    assert get("pgcbackup", "scratch", namespace) is not None, "deleted before its backup was expired"
    run_job_pods(namespace, "scratch-expire", 0, '{"expired": "20261126-101500F"}')
    wait_for(lambda: get("pgcbackup", "scratch", namespace) is None, 90, "the PostgresBackup was not deleted after expiry")

    # pgBackRest never expires the newest backup: the failed expiry lets the deletion go on, and
    # the cluster's Event says that the backup stays.
    delete_a_finished_backup(namespace, "newest", "20261126-111500F")
    run_job_pods(namespace, "newest-expire", 1,
                 "ERROR: [075]: unable to expire 20261126-111500F: it is the newest backup", pods=2)
    wait_for(lambda: get("pgcbackup", "newest", namespace) is None, 90, "a failed expiry held the deletion")
    kept = wait_for(lambda: events(namespace, "db", "BackupKept"), 30, "no BackupKept Event on the cluster")
    assert kept[0]["type"] == "Warning" and "20261126-111500F" in kept[0]["message"]


def test_a_postgresbackup_of_a_cluster_without_repository_fails_with_the_reason(operator, namespace):
    apply(postgres_cluster("plain", replicas=1), namespace)
    wait_for_phase("plain", namespace, "Running", ready=1)
    apply({"apiVersion": "postgres.example.com/v1", "kind": "PostgresBackup", "metadata": {"name": "nowhere"},
           "spec": {"cluster": "plain"}}, namespace)
    backup = wait_for(lambda: (lambda b: b if b.get("status", {}).get("phase") == "Failed" else None)(
        get("pgcbackup", "nowhere", namespace)), 60, "the PostgresBackup did not fail")
    assert "has no spec.backup.repository" in backup["status"]["message"]
    assert get("job", "nowhere-backup", namespace) is None
    warning = wait_for(lambda: events(namespace, "nowhere", "BackupFailed"), 30, "no BackupFailed Event")
    assert warning[0]["type"] == "Warning"


def test_a_bad_cron_expression_is_refused_with_a_message(operator, namespace):
    apply(postgres_cluster("db", replicas=1, backupSchedule="61 2 * * *"), namespace)
    cluster = wait_for_phase("db", namespace, "Failed")
    assert "spec.backupSchedule '61 2 * * *': minute '61' is outside 0-59" in cluster["status"]["message"]
    assert get("statefulset", "db", namespace) is None


def test_a_new_cluster_bootstraps_from_the_source_clusters_repository(operator, namespace):
    s3_keys(namespace)
    apply(postgres_cluster("db", replicas=1, backup=S3_BACKUP), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    apply(postgres_cluster("copy", replicas=2, bootstrap={"fromBackup": {"cluster": "db",
                                                                         "targetTime": "2026-11-26T09:00:00Z"}}), namespace)
    cluster = wait_for_phase("copy", namespace, "Running", ready=2)
    restored = cluster["status"]["restoredFrom"]
    assert (restored["cluster"], restored["targetTime"]) == ("db", "2026-11-26T09:00:00Z")
    assert restored["repository"]["s3"]["bucket"] == "pg-backups"
    patroni = get("configmap", "copy-patroni", namespace)["data"]["patroni.yml"]
    assert "pgc-bootstrap-from-backup" in patroni or "method:" in patroni
    source = get("configmap", "copy-pgbackrest", namespace)["data"]["source.conf"]
    assert "[db]" in source and "repo1-s3-bucket=pg-backups" in source
    env = {e["name"]: e for e in get("statefulset", "copy", namespace)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGC_SOURCE_REPO1_S3_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-keys"


def test_the_restore_playbook_plans_refuses_without_confirmation_and_changes_nothing_on_a_bad_backup(operator, namespace):
    s3_keys(namespace)
    apply(postgres_cluster("db", replicas=2, backup=S3_BACKUP), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    before = stable_resource_versions(namespace)

    plan = run_playbook("restore", "-e", "cluster=db", "-e", f"namespace={namespace}", "-e", "backup=20261126-020001F",
                        "--check", "--diff")
    assert "Job db-check checks that the backup exists" in plan
    assert "scaled from 2 to 0" in plan
    assert stable_resource_versions(namespace) == before, "--check changed objects"

    # ansible-playbook splits an unquoted -e value at spaces: the time would lose its hour and zone.
    split = playbook_process("restore", "-e", "cluster=db", "-e", f"namespace={namespace}", "-e",
                             "target_time=2026-11-26 09:00:00+00", "--check")
    assert split.returncode != 0 and "is not a time with its zone" in split.stdout

    refused = playbook_process("restore", "-e", "cluster=db", "-e", f"namespace={namespace}")
    assert refused.returncode != 0
    assert "confirm it with -e confirm=db" in refused.stdout

    # The check Job fails (the backup does not exist): nothing else happens.
    outcome = {}
    thread = threading.Thread(daemon=True, target=lambda: outcome.update(proc=playbook_process(
        "restore", "-e", "cluster=db", "-e", f"namespace={namespace}", "-e", "confirm=db", "-e", "backup=20991231-000000F")))
    thread.start()
    run_job_pods(namespace, "db-check", 1,
                 "pgc-restore: error: backup set 20991231-000000F does not exist in the repository of stanza db "
                 "(available: 20261126-020001F)")
    thread.join(timeout=180)
    proc = outcome["proc"]
    assert proc.returncode != 0
    assert "refused, nothing was changed" in proc.stdout and "does not exist in the repository" in proc.stdout
    sts = get("statefulset", "db", namespace)
    assert sts["spec"]["replicas"] == 2
    assert "postgres.example.com/restore-in-progress" not in (get("pgc", "db", namespace)["metadata"].get("annotations") or {})


def test_restore_playbook_needs_a_repository(control_plane, namespace):
    apply(postgres_cluster("plain", replicas=1), namespace)
    proc = playbook_process("restore", "-e", "cluster=plain", "-e", f"namespace={namespace}", "--check")
    assert proc.returncode != 0 and "has no spec.backup.repository" in proc.stdout


def test_a_logical_backup_reports_its_dumps_and_the_restore_playbook_restores_one_database(operator, namespace):
    s3_keys(namespace)
    apply(postgres_cluster("db", replicas=1, backup={**S3_BACKUP, "logical": {"schedule": "30 3 * * *"}}), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    cron = get("cronjob", "db-logical-backup", namespace)
    assert cron["spec"]["schedule"] == "30 3 * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"

    # What pgc-logical-backup.sh writes: one line per database.
    kubectl("create", "job", "--from=cronjob/db-logical-backup", "db-logical-backup-1", "-n", namespace)
    dumps = [{"database": "app", "label": "20261126T033001000Z", "name": "logical/db/app/20261126T033001000Z.pgdump.enc",
              "size": 81920, "start": "2026-11-26T03:30:01Z", "stop": "2026-11-26T03:30:20Z", "expired": []}]
    run_job_pods(namespace, "db-logical-backup-1", 0,
                 "pgc-logical-backup: dumping app\n" + "\n".join(json.dumps(d) for d in dumps))
    wait_for(lambda: job_condition(namespace, "db-logical-backup-1", "Complete"), 60, "the Job did not complete")
    stamp(namespace)
    cluster = wait_for(lambda: (lambda c: c if c["status"].get("lastLogicalBackup") else None)(get("pgc", "db", namespace)),
                       60, "status.lastLogicalBackup was not set")
    assert cluster["status"]["lastLogicalBackup"] == {
        "job": "db-logical-backup-1", "stopTime": "2026-11-26T03:30:20Z",
        "dumps": [{"database": "app", "label": "20261126T033001000Z", "size": 81920,
                   "path": "logical/db/app/20261126T033001000Z.pgdump.enc"}]}
    assert cluster["status"]["logicalBackupFailures"] == 0
    # A dump is not a physical backup.
    assert "lastBackupTimestamp" not in cluster["status"]
    wait_for(lambda: events(namespace, "db", "LogicalBackupSucceeded"), 30, "no LogicalBackupSucceeded Event")

    outcome = {}
    thread = threading.Thread(daemon=True, target=lambda: outcome.update(proc=playbook_process(
        "restore", "-e", "cluster=db", "-e", f"namespace={namespace}", "-e", "confirm=db", "-e", "database=app")))
    thread.start()
    job = wait_for(lambda: get("job", "db-logical-restore", namespace), 120, "no logical restore Job")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGC_RESTORE_DATABASE"]["value"] == "app"
    # As the superuser, with its client certificate: no password where the superuser may not use one.
    assert env["PGSSLCERT"]["value"] == "/etc/pgc/superuser-tls/tls.crt" and "PGPASSWORD" not in env
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["superuser-tls"]["secret"]["secretName"] == "db-superuser-tls"
    run_job_pods(namespace, "db-logical-restore", 0,
                 json.dumps({"database": "app", "label": "20261126-033000", "restored_into": "app"}))
    thread.join(timeout=180)
    proc = outcome["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "20261126-033000" in proc.stdout
    # One database: the members were never stopped.
    assert get("statefulset", "db", namespace)["spec"]["replicas"] == 1


def test_the_restore_playbook_restores_member_0_reinitialises_the_replicas_and_gives_the_cluster_back(operator, namespace):
    s3_keys(namespace)
    # Claims deleted on scale-down: the restore must keep member 0's while it stops every member.
    apply(postgres_cluster("db", replicas=2, backup=S3_BACKUP, volumeClaimRetention={"whenScaled": "Delete"}),
          namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    claims = {n: get("pvc", f"data-db-{n}", namespace)["metadata"]["uid"] for n in (0, 1)}

    outcome = {}
    thread = threading.Thread(daemon=True, target=lambda: outcome.update(proc=playbook_process(
        "restore", "-e", "cluster=db", "-e", f"namespace={namespace}", "-e", "confirm=db",
        "-e", "target_time='2026-11-26 09:00:00+00'")))
    thread.start()
    run_job_pods(namespace, "db-check", 0, json.dumps({"checked": True, "label": "20261126-020001F",
                                                        "needs": ["20261126-020001F"]}))
    # The operator is asked to wait, and the members stop before anything touches their data.
    wait_for(lambda: "postgres.example.com/restore-in-progress" in (get("pgc", "db", namespace)["metadata"].get("annotations") or {}),
             60, "the cluster was not marked as being restored")
    restore = wait_for(lambda: get("job", "db-restore", namespace), 180, "no restore Job")
    # The status says what holds the cluster, and the step.
    restoring = wait_for(lambda: (lambda c: c if "(step: restoring member 0's data in Job db-restore)" in
                                  (c.get("status") or {}).get("message", "") else None)(get("pgc", "db", namespace)),
                         60, "the status does not say the restore's step")
    assert restoring["status"]["phase"] == "Restoring"
    assert not kubectl_json("get", "pods", "-n", namespace, "-l", "postgres.example.com/cluster=db")["items"]
    volumes = {v["name"]: v for v in restore["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "data-db-0"
    env = {e["name"]: e.get("value") for e in restore["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGC_RESTORE_TARGET_TIME"] == "2026-11-26 09:00:00+00"
    assert get("pvc", "data-db-0", namespace)["metadata"]["uid"] == claims[0], "member 0's claim went with the scale-down"
    run_job_pods(namespace, "db-restore", 0, json.dumps({"label": "20261126-020001F", "timeline": 2, "type": "time"}))

    finish_as_patroni(thread, outcome, namespace)
    cluster = wait_for_phase("db", namespace, "Running", ready=2)
    assert cluster["status"]["currentPrimary"] == "db-0"
    assert "postgres.example.com/restore-in-progress" not in (cluster["metadata"].get("annotations") or {})
    # Member 0 kept its (restored) claim; the replica's was made anew, to clone from it.
    assert get("pvc", "data-db-0", namespace)["metadata"]["uid"] == claims[0]
    assert get("pvc", "data-db-1", namespace)["metadata"]["uid"] != claims[1]
    sts = get("statefulset", "db", namespace)
    assert sts["spec"]["replicas"] == 2
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete", "the spec's policy is back"


def test_a_cluster_a_stopped_restore_holds_says_so_and_the_abort_gives_it_back(operator, namespace):
    """What a restore playbook stopped half-way leaves (the mark, no member running): the status says
    Restoring, since when; the playbook's abort puts member 0's data back in a Job and gives the
    cluster back to the operator, which runs it again."""
    s3_keys(namespace)
    apply(postgres_cluster("db", replicas=1, backup=S3_BACKUP), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    kubectl("annotate", "pgc", "db", "-n", namespace,
            "postgres.example.com/restore-in-progress=2026-11-29T10:00:00Z the newest backup and all archived WAL")
    cluster = wait_for(lambda: (lambda c: c if c["status"].get("phase") == "Restoring" else None)(get("pgc", "db", namespace)),
                       60, "the status does not say Restoring")
    # As the playbook does: the members stop once the operator has seen the mark.
    kubectl("scale", "statefulset", "db", "-n", namespace, "--replicas=0")
    wait_for(lambda: not kubectl_json("get", "pods", "-n", namespace, "-l", "postgres.example.com/cluster=db")["items"],
             60, "the members did not stop")
    # Long past any restore's time: overdue, and how to go on.
    assert "since 2026-11-29T10:00:00Z" in cluster["status"]["message"]
    assert {c["type"]: c["reason"] for c in cluster["status"]["conditions"]}["Ready"] in ("Restoring", "RestoreOverdue")
    assert get("statefulset", "db", namespace)["spec"]["replicas"] == 0, "the operator left the members stopped"

    outcome = {}
    thread = threading.Thread(daemon=True, target=lambda: outcome.update(proc=playbook_process(
        "restore", "-e", "cluster=db", "-e", f"namespace={namespace}", "-e", "confirm=db", "-e", "abort=true")))
    thread.start()
    job = wait_for(lambda: get("job", "db-abort", namespace), 120, "no abort Job")
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "data-db-0"
    assert "pgc-restore-in-place.sh --put-back" in job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    run_job_pods(namespace, "db-abort", 0, json.dumps({"put_back": True}))
    finish_as_patroni(thread, outcome, namespace)
    cluster = wait_for_phase("db", namespace, "Running", ready=1)
    assert "postgres.example.com/restore-in-progress" not in (cluster["metadata"].get("annotations") or {})
    assert get("statefulset", "db", namespace)["spec"]["replicas"] == 1

    # Nothing to abort now: refused, nothing changed.
    refused = playbook_process("restore", "-e", "cluster=db", "-e", f"namespace={namespace}", "-e", "confirm=db",
                               "-e", "abort=true")
    assert refused.returncode != 0 and "there is nothing to abort" in refused.stdout
