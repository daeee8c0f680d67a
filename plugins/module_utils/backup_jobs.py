# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The outcome of a cluster's backup Jobs, read from the Jobs and their pods.

A Job's pod writes one JSON line of results (pgc-backup.sh's) to its termination message when it
succeeds; when it fails, the kubelet puts the end of its log there instead
(terminationMessagePolicy FallbackToLogsOnError). Times come from that result or, failing it,
from the Job's own status: never from the clock of the reconcile.
"""

from __future__ import annotations

import datetime
import json

from ansible_collections.postgres.cluster.plugins.module_utils.patroni_state import parse_time

JOB_LABEL = "postgres.example.com/job"
# The cluster a Job's pod works for; not postgres.example.com/cluster, which selects members.
COMPONENT_LABEL = "postgres.example.com/job-of"
BACKUP_LABEL = "postgres.example.com/backup"
JOB_CONTAINER = "pgbackrest"
MESSAGE_LIMIT = 400


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


def _failure_text(message, fallback):
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    # pgBackRest and the scripts end with the line that says why.
    errors = [line for line in lines if "error" in line.lower()]
    text = (errors or lines or [fallback])[-1]
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def summarize_job(job, pods):
    """One Job: name, kind (its postgres.example.com/job label), backup (the PostgresBackup it runs
    for, if any), phase (Pending, Running, Succeeded, Failed), started, finished, results (the pod's
    JSON lines), result (the last of them) and message."""
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
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
        "kind": labels.get(JOB_LABEL, ""),
        "backup": labels.get(BACKUP_LABEL, ""),
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
        summary["message"] = _failure_text(last.get("message"), failure.get("message") or failure.get("reason")
                                           or "the Job failed")
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
