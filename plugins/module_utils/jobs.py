# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The Jobs of a cluster's backups and restores: their specs and labels, and their outcome read
back from the Jobs and their pods.

Every such Job runs the database image's scripts (images/postgres/scripts) with the cluster's
pgBackRest configuration (ConfigMap ``<name>-pgbackrest``) and secrets from the environment.
Its pod writes one JSON line of results (pgc-backup.sh's) to its termination message when it
succeeds; when it fails, the kubelet puts the end of its log there instead
(terminationMessagePolicy FallbackToLogsOnError): no exec, no log scraping. Times come from that
result or, failing it, from the Job's own status: never from the clock of the reconcile.
"""

from __future__ import annotations

import datetime
import json

from ansible_collections.postgres.cluster.plugins.module_utils.names import BACKUP_LABEL, JOB_LABEL, PGDATA, POSTGRES_PORT
from ansible_collections.postgres.cluster.plugins.module_utils.patroni import CALLBACK_SCRIPT, parse_time
from ansible_collections.postgres.cluster.plugins.module_utils.pgbackrest import (
    pgc_pgbackrest_environment,
    pgc_pgbackrest_settings,
)
from ansible_collections.postgres.cluster.plugins.module_utils.pods import (
    CALLBACK_DIR,
    DRILL_SCRATCH,
    JOB_CONTAINER,
    pgc_backup_pod_labels,
    pgc_job_pod_spec,
)
from ansible_collections.postgres.cluster.plugins.module_utils.spec import SpecError
from ansible_collections.postgres.cluster.plugins.module_utils.tls import CLIENT_CA_DIR, CLIENT_TLS_DIR, pgc_superuser_remote_login

MESSAGE_LIMIT = 400

# What each kind of Job runs (bash -o pipefail), after which it stamps its cluster so that the
# status follows at once. Arguments come from the environment, so that no value is split.
RESTORE_TARGET = ('${PGC_RESTORE_SET:+--set="$PGC_RESTORE_SET"} '
                  '${PGC_RESTORE_TARGET_TIME:+--target-time="$PGC_RESTORE_TARGET_TIME"}')
COMMANDS = {
    "backup": 'pgc-backup.sh "$PGC_BACKUP_TYPE"',
    "logical-backup": 'pgc-logical-backup.sh | tee "$PGC_RESULT_FILE"',
    # Never a set that other backups depend on (pgc-expire.sh).
    "expire": 'pgc-expire.sh "$PGC_BACKUP_SET"',
    "check": "pgc-restore-in-place.sh --check-only " + RESTORE_TARGET,
    "restore": "pgc-restore-in-place.sh " + RESTORE_TARGET,
    # The restore playbook's abort: member 0's data as it was, when a restore left it aside.
    "abort": 'pgc-restore-in-place.sh --put-back | tee "$PGC_RESULT_FILE"',
    # The restore drill: the newest backup restored into the Job's scratch volume and checked; its
    # JSON line is written on failure too (it says why).
    "drill": "pgc-drill.sh",
    "logical-restore": ('pgc-logical-restore.sh --database="$PGC_RESTORE_DATABASE" '
                        '${PGC_RESTORE_LABEL:+--label="$PGC_RESTORE_LABEL"} | tee "$PGC_RESULT_FILE"'),
}
# Jobs that need the database's superuser over the read-write Service (libpq's variables).
SQL_JOBS = ("logical-backup", "logical-restore")


# --- the Jobs ------------------------------------------------------------------------------------

def pgc_backup_job_labels(pgc, job, backup=""):
    """The labels of a Job: the cluster's (``kubectl get jobs -l postgres.example.com/cluster=NAME``)
    plus its kind, and the PostgresBackup it runs for."""
    job_labels = dict(pgc["labels"])
    job_labels[JOB_LABEL] = job
    if backup:
        job_labels[BACKUP_LABEL] = backup
    return job_labels


def superuser_connection_env(pgc):
    """libpq's variables of a Job that connects to the primary as the superuser: over the read-write
    Service, with TLS checked against the cluster's CA, by the superuser's client certificate, and by
    its password (from the Secret, never inlined) where the spec lets it log in so."""
    return [
        {"name": "PGHOST", "value": pgc["names"]["service_rw"]},
        # TLS, with the server's name checked against the cluster's CA.
        {"name": "PGSSLMODE", "value": "verify-full"},
        {"name": "PGSSLROOTCERT", "value": CLIENT_CA_DIR + "/ca.crt"},
        {"name": "PGPORT", "value": str(POSTGRES_PORT)},
        {"name": "PGUSER", "value": pgc["spec"]["credentials"]["superuser"]},
        # The superuser's client certificate; its password too where the spec lets it log in so.
        {"name": "PGSSLCERT", "value": CLIENT_TLS_DIR + "/tls.crt"},
        {"name": "PGSSLKEY", "value": CLIENT_TLS_DIR + "/tls.key"},
    ] + ([
        {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": pgc["credentials_secret"],
                                                              "key": "superuser-password"}}},
    ] if pgc_superuser_remote_login(pgc) == "password" else []) + [
        {"name": "PGDATABASE", "value": "postgres"},
    ]


def pgc_backup_job_spec(pgc, job="backup", env=None, deadline=21600, resources=None, data_claim=""):
    """The ``spec`` of a Job of the cluster (or the ``jobTemplate.spec`` of its CronJob).

    ``job`` is one of backup, logical-backup, expire, check, restore, abort or logical-restore; ``env``
    adds EnvVar objects (PGC_BACKUP_TYPE, PGC_RESTORE_ARGS, ...); ``data_claim`` mounts a member's
    data claim at the data directory's parent (the in-place restore)."""
    if job not in COMMANDS:
        raise SpecError("unknown backup job %r (one of %s)" % (job, ", ".join(sorted(COMMANDS))))
    settings = pgc_pgbackrest_settings(pgc)
    if not settings["enabled"]:
        raise SpecError("spec.backup.repository is not set: the cluster has no backup repository")
    names = pgc["names"]
    environment = list(pgc_pgbackrest_environment(pgc))
    environment.append({"name": "PGC_RESULT_FILE", "value": "/dev/termination-log"})
    environment.append({"name": "PATRONI_KUBERNETES_NAMESPACE", "value": pgc["namespace"]})
    environment.append({"name": "PGDATA", "value": PGDATA})
    if job in SQL_JOBS:
        environment += superuser_connection_env(pgc) + [
            {"name": "PGC_LOGICAL_DATABASES", "value": ",".join(settings["logical"]["databases"])},
            {"name": "PGC_LOGICAL_RETENTION", "value": str(settings["logical"]["retention"])},
        ]
    if job == "drill":
        credentials = pgc["spec"]["credentials"]
        environment += [{"name": "PGC_DRILL_DIR", "value": DRILL_SCRATCH},
                        {"name": "PGC_DRILL_USER", "value": credentials["superuser"]},
                        {"name": "PGC_DRILL_DATABASE", "value": credentials["appDatabase"]}]
        # The user's SQL reaches psql as one argument from the environment: never part of a command.
        if settings["drill"]["check"]:
            environment.append({"name": "PGC_DRILL_CHECK", "value": settings["drill"]["check"]})
    environment += list(env or [])

    script = ('rc=0; %s || rc=$?; python3 %s/%s %s %s "$PGBACKREST_STANZA" || true; exit $rc'
              % (COMMANDS[job], CALLBACK_DIR, CALLBACK_SCRIPT, job,
                 "finished" if job != "backup" else '"$PGC_BACKUP_TYPE"'))
    pod = pgc_job_pod_spec(pgc, job, script, environment, data_claim=data_claim, resources=resources)
    return {
        # One retry: a backup that failed twice needs a person, and the next schedule tries anyway (a
        # backup whose primary was lost mid-copy waits for the new one itself: pgc-backup.sh). A
        # drill that failed says something about the backup: it is not run again until its schedule.
        "backoffLimit": 0 if job == "drill" else 1,
        "activeDeadlineSeconds": int(deadline),
        "template": {"metadata": {"labels": pgc_backup_pod_labels(pgc, job)}, "spec": pod},
    }


# --- their outcome -------------------------------------------------------------------------------

def _time(text):
    when = parse_time(text)
    return when.astimezone(datetime.timezone.utc) if when else None


def _rfc3339(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _condition(job, ctype):
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return c
    return None


def _terminated(pod):
    for s in (pod.get("status") or {}).get("containerStatuses") or []:
        if s.get("name") == JOB_CONTAINER:
            return ((s.get("state") or {}).get("terminated")) or None
    return None


def _results(message):
    """The lines of a termination message that are JSON objects (a logical dump writes one per
    database; pgc-backup.sh one in all)."""
    results = []
    for line in (message or "").strip().splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                results.append(value)
    return results


def _trimmed(text):
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def _failure_text(message, fallback):
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    # pgBackRest and the scripts end with the line that says why.
    errors = [line for line in lines if "error" in line.lower()]
    return _trimmed((errors or lines or [fallback])[-1])


def summarize_job(job, pods):
    """One Job: name, kind (its postgres.example.com/job label), backup (the PostgresBackup it runs
    for, if any), phase (Pending, Running, Succeeded, Failed), started, finished, results (the pod's
    JSON lines), result (the last of them) and message."""
    meta = job.get("metadata") or {}
    job_labels = meta.get("labels") or {}
    status = job.get("status") or {}
    name = meta.get("name", "")
    own = [p for p in pods if ((p.get("metadata") or {}).get("labels") or {}).get("job-name") == name]
    own.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")
    terminated = [t for t in (_terminated(p) for p in own) if t]
    succeeded = [t for t in terminated if t.get("exitCode") == 0]
    failed = [t for t in terminated if t.get("exitCode") not in (0, None)]
    complete = _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet")
    failure = _condition(job, "Failed") or _condition(job, "FailureTarget")
    summary = {
        "name": name,
        "kind": job_labels.get(JOB_LABEL, ""),
        "backup": job_labels.get(BACKUP_LABEL, ""),
        "created": meta.get("creationTimestamp"),
        "started": status.get("startTime"),
        "finished": None,
        "result": None,
        "results": [],
        "message": "",
    }
    if complete or (status.get("succeeded") or 0) > 0:
        summary["phase"] = "Succeeded"
        summary["finished"] = status.get("completionTime") or (complete or {}).get("lastTransitionTime")
        summary["results"] = _results(succeeded[-1].get("message")) if succeeded else []
        summary["result"] = summary["results"][-1] if summary["results"] else None
        summary["message"] = "completed"
    elif failure:
        summary["phase"] = "Failed"
        summary["finished"] = failure.get("lastTransitionTime")
        last = failed[-1] if failed else {}
        # A script may say why it failed in its JSON line (pgc-drill.sh's reason).
        summary["results"] = _results(last.get("message"))
        summary["result"] = summary["results"][-1] if summary["results"] else None
        reason = (summary["result"] or {}).get("reason")
        summary["message"] = _trimmed(str(reason)) if reason else _failure_text(
            last.get("message"), failure.get("message") or failure.get("reason") or "the Job failed")
    elif (status.get("active") or 0) > 0 and any(((p.get("status") or {}).get("phase")) == "Running" for p in own):
        summary["phase"] = "Running"
        summary["message"] = "running"
    else:
        summary["phase"] = "Pending"
        summary["message"] = "waiting for its pod to start"
    return summary


def summarize_jobs(jobs, pods):
    """Every Job, oldest first."""
    summaries = [summarize_job(j, pods or []) for j in jobs or []]
    summaries.sort(key=lambda s: (s["created"] or "", s["name"]))
    return summaries


def pgc_backup_jobs(jobs, pods):
    """Each Job with its phase and the result its pod wrote (summarize_jobs)."""
    return summarize_jobs(jobs, pods)


def backup_record(summary):
    """What status says about a successful backup: from the Job's result, its Job as a fallback."""
    result = summary.get("result") or {}
    stop = _time(result.get("stop")) or _time(summary.get("finished"))
    start = _time(result.get("start")) or _time(summary.get("started"))
    record = {
        "label": result.get("label") or "",
        "type": result.get("type") or "",
        "startTime": _rfc3339(start),
        "stopTime": _rfc3339(stop),
        "size": result.get("size"),
        "repositorySize": result.get("repository_delta"),
        "repositoryPath": result.get("repository_path") or "",
        "job": summary["name"],
    }
    return {k: v for k, v in record.items() if v not in (None, "")}


def _newest(jobs, record_of, last_time, last):
    """The stop time and record of the newest successful Job, if newer than what status knew."""
    for s in jobs:
        if s["phase"] != "Succeeded":
            continue
        record = record_of(s)
        stop = _time(record.get("stopTime"))
        if stop and (last_time is None or stop > last_time):
            last_time, last = stop, record
    return last_time, last


def _failures(jobs, count, last_failure):
    """Failed Jobs counted once each: those that failed after the newest failure status knew of.
    Returns the count and the newest failure (job, time, message)."""
    last_failure = dict(last_failure or {})
    seen = _time(last_failure.get("time"))
    for s in jobs:
        when = _time(s["finished"])
        if s["phase"] != "Failed" or when is None or (seen is not None and when <= seen):
            continue
        count += 1
        seen = when
        last_failure = {"job": s["name"], "time": _rfc3339(when), "message": s["message"]}
    return count, last_failure


def backup_status(summaries, previous):
    """The cluster's backup fields of status from its physical backup Jobs and the previous status:
    lastBackupTimestamp and lastBackup (the newest successful backup, never older than what status
    said), backupFailures (failed Jobs counted once each, so it only grows), lastBackupFailure, the
    LastBackupSucceeded condition's (ok, reason, message), and the Jobs still at work."""
    backups = [s for s in summaries if s["kind"] == "backup"]
    last_time, last = _newest(backups, backup_record, _time(previous.get("lastBackupTimestamp")),
                              dict(previous.get("lastBackup") or {}))
    failures, last_failure = _failures(backups, int(previous.get("backupFailures") or 0),
                                       previous.get("lastBackupFailure"))
    fields = {"backupFailures": failures}
    if last_time:
        fields["lastBackupTimestamp"] = _rfc3339(last_time)
        fields["lastBackup"] = last
    if last_failure:
        fields["lastBackupFailure"] = last_failure
    # The condition follows the newest finished backup, success or failure.
    newest_failure = _time(last_failure.get("time"))
    condition = None
    if last_time or newest_failure:
        if newest_failure and (last_time is None or newest_failure > last_time):
            condition = (False, "BackupFailed", "Backup Job %s failed: %s" % (last_failure["job"], last_failure["message"]))
        else:
            condition = (True, "BackupSucceeded", "The newest backup%s finished at %s" % (
                " " + last["label"] if last.get("label") else "", _rfc3339(last_time)))
    active = [s["name"] for s in summaries if s["phase"] in ("Pending", "Running")]
    return {"fields": fields, "condition": condition, "active": active}


def logical_dump_record(summary):
    """What status says about a successful logical backup Job: its stop time (the newest dump's,
    its Job's as a fallback) and each database's dump."""
    dumps = [{"database": r.get("database") or "", "label": r.get("label") or "", "size": r.get("size"),
              "path": r.get("name") or ""} for r in summary.get("results") or [] if r.get("database")]
    stops = [t for t in (_time(r.get("stop")) for r in summary.get("results") or []) if t]
    stop = max(stops) if stops else _time(summary.get("finished"))
    record = {"job": summary["name"], "stopTime": _rfc3339(stop),
              "dumps": [{k: v for k, v in d.items() if v not in (None, "")} for d in dumps]}
    return {k: v for k, v in record.items() if v not in (None, "", [])}


def logical_backup_status(summaries, previous):
    """The cluster's logical backup fields of status, as backup_status does for physical ones:
    lastLogicalBackup (the newest successful Job's dumps, never older than what status said),
    logicalBackupFailures (counted once each) and lastLogicalBackupFailure."""
    jobs = [s for s in summaries if s["kind"] == "logical-backup"]
    last = dict(previous.get("lastLogicalBackup") or {})
    _, last = _newest(jobs, logical_dump_record, _time(last.get("stopTime")), last)
    failures, last_failure = _failures(jobs, int(previous.get("logicalBackupFailures") or 0),
                                       previous.get("lastLogicalBackupFailure"))
    fields = {"logicalBackupFailures": failures}
    if last:
        fields["lastLogicalBackup"] = last
    if last_failure:
        fields["lastLogicalBackupFailure"] = last_failure
    return fields


def drill_record(summary):
    """What status says about a finished restore drill Job (status.lastDrill): when it finished, the
    backup it restored, the time the copy was recovered to, how long it took, its result and why."""
    result = summary.get("result") or {}
    finished = _time(result.get("finished")) or _time(summary.get("finished"))
    succeeded = summary["phase"] == "Succeeded" and result.get("result", "succeeded") == "succeeded"
    if succeeded:
        message = "Backup %s restored and checked" % result["backup"] if result.get("backup") else (
            "Job %s succeeded but its pod reported no result" % summary["name"])
    else:
        message = summary.get("message") or result.get("reason") or "the drill failed"
    duration = result.get("duration_seconds")
    record = {
        "time": _rfc3339(finished),
        "backup": result.get("backup") or "",
        "restoredTo": _rfc3339(_time(result.get("restored_to"))),
        "durationSeconds": int(round(duration)) if isinstance(duration, (int, float)) else None,
        "result": "Succeeded" if succeeded else "Failed",
        "message": _trimmed(message),
        "job": summary["name"],
    }
    return {k: v for k, v in record.items() if v not in (None, "")}


def drill_status(summaries, previous):
    """The restore drill fields of status: lastDrill (the newest finished drill Job, success or
    failure, never older than what status said) and lastSuccessfulDrillTimestamp."""
    last = dict(previous.get("lastDrill") or {})
    last_time = _time(last.get("time"))
    success = _time(previous.get("lastSuccessfulDrillTimestamp"))
    for s in summaries:
        if s["kind"] != "drill" or s["phase"] not in ("Succeeded", "Failed"):
            continue
        record = drill_record(s)
        when = _time(record.get("time"))
        if when is None:
            continue
        if last_time is None or when > last_time:
            last_time, last = when, record
        if record["result"] == "Succeeded" and (success is None or when > success):
            success = when
    fields = {}
    if last:
        fields["lastDrill"] = last
    if success:
        fields["lastSuccessfulDrillTimestamp"] = _rfc3339(success)
    return fields


def pgc_backup_resource_status(backup, summaries, problem=""):
    """The status of a PostgresBackup from its Job's summary (``summaries``: the one Job, or none
    yet) or a ``problem`` that keeps it from running (no cluster, no repository)."""
    generation = (backup.get("metadata") or {}).get("generation", 0)
    job = summaries[-1] if summaries else None
    if problem:
        phase, message = "Failed", problem
    elif job is None:
        phase, message = "Pending", "Creating the backup Job"
    else:
        phase = job["phase"]
        message = {"Pending": "Job %s is waiting for its pod to start",
                   "Running": "Job %s is taking the backup",
                   "Succeeded": "Job %s took the backup",
                   "Failed": "Job %s failed: "}[phase] % job["name"]
        if phase == "Failed":
            message += job["message"]
    status = {"phase": phase, "message": message, "observedGeneration": generation}
    if job:
        status["job"] = job["name"]
    if job and phase == "Succeeded":
        record = backup_record(job)
        status.update({k: v for k, v in record.items() if k != "job"})
        if record.get("label"):
            status["message"] = "Backup %s (%s) taken by Job %s" % (record["label"], record.get("type"), job["name"])
        else:
            status["message"] = "Job %s succeeded but its pod reported no result: label and size are unknown" % job["name"]
    done = phase in ("Succeeded", "Failed")
    status["conditions"] = [{
        "type": "Complete",
        "status": "True" if phase == "Succeeded" else "False",
        "reason": {"Succeeded": "BackupSucceeded", "Failed": "BackupFailed"}.get(phase, "BackupInProgress"),
        "message": status["message"] if done else "The backup has not finished",
        "observedGeneration": generation,
    }]
    return status
