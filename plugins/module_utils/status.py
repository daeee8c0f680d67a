# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The status a cluster reports, its conditions, and the Events its changes deserve."""

from __future__ import annotations

import ast
import datetime
import json
import re

from ansible_collections.postgres.cluster.plugins.module_utils.change_plans import (PLAN_APPLIED, PLAN_APPLYING, PLAN_AWAITING, pgc_plan_held,
                                                                          plan_progress)
from ansible_collections.postgres.cluster.plugins.module_utils.failovers import failover_status
from ansible_collections.postgres.cluster.plugins.module_utils.jobs import backup_status, drill_status, logical_backup_status
from ansible_collections.postgres.cluster.plugins.module_utils.k8s_status import desired_status, rfc3339_now, status_patch
from ansible_collections.postgres.cluster.plugins.module_utils.patroni import parse_time

# What the status shows of each member: what changes on events, not on every write (no lag).
MEMBER_STATUS_KEYS = ("name", "role", "state", "timeline", "pendingRestart")

HEALTHY_STATES = frozenset(("running", "streaming"))


def condition(ctype, ok, reason, message, generation):
    """A condition of the status: ``ok`` is its status, True or False."""
    return {
        "type": ctype,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def condition_of(status, ctype):
    """The condition of type ``ctype`` of a status, or an empty mapping."""
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), {})


def cluster_health(pgc, observed, ready):
    """The Degraded condition's (degraded, reason, message) from what Patroni reports."""
    observed = observed or {}
    members = observed.get("members") or []
    if not observed.get("initialized"):
        return False, "NotBootstrapped", "Patroni has not bootstrapped the cluster yet"
    if not observed.get("leader"):
        return True, "NoPrimary", "No member holds Patroni's leader lock: the cluster does not accept writes"
    unhealthy = ["%s (%s %s)" % (m["name"], m.get("role"), m.get("state")) for m in members
                 if m.get("state") not in HEALTHY_STATES or m.get("role") not in ("primary", "replica")]
    if unhealthy:
        return True, "MembersUnhealthy", "Not every member runs: " + ", ".join(unhealthy)
    if len(members) < int(pgc["spec"]["replicas"]):
        return True, "MembersMissing", "%d of %d members report to Patroni" % (len(members), int(pgc["spec"]["replicas"]))
    return False, "Healthy", "Every member runs and the primary accepts writes"


def canary_hold(pgc, observed, revision):
    """Whether an update of the pod template to ``revision`` holds at its canaries: as many replicas as
    spec.updatePolicy.canary (or all of them, when fewer) run it, the primary still runs an older
    one, and nobody approved ``revision`` (the approve playbook). Returns (held, the replicas
    that run ``revision``). Rolled back (the spec put back), the primary runs the revision: no hold."""
    members = (observed or {}).get("members") or []
    canary = int(((pgc["spec"].get("updatePolicy") or {}).get("canary")) or 0)
    primary = next((m for m in members if m.get("role") == "primary"), None)
    if not canary or not revision or not primary or primary.get("revision") in (None, revision):
        return False, []
    updated = [m["name"] for m in members if m.get("role") != "primary" and m.get("revision") == revision]
    if pgc.get("update_approved") == revision:
        return False, updated
    return len(updated) >= min(canary, len(members) - 1), updated


def _truthy(value):
    return value is True or str(value).lower() in ("true", "yes", "1")


def pgc_status(pgc, statefulset, observed=None, monitoring=None):
    """Return the status a cluster should report, from its StatefulSet and Patroni's state.

    ``statefulset`` is the StatefulSet object (or None when it does not exist yet);
    ``observed`` what the cluster_observe action read from Patroni's Kubernetes DCS (leader,
    members, initialized); ``monitoring`` what the provision step applied for monitoring (left
    out of the result when None). The result holds the fields to write; conditions carry no
    lastTransitionTime, the status module keeps it across writes that do not change a
    condition's status.
    """
    observed = observed or {}
    desired = int(pgc["spec"]["replicas"])
    generation = pgc.get("generation", 0)
    sts = statefulset or {}
    sts_status = sts.get("status") or {}
    sts_spec_replicas = (sts.get("spec") or {}).get("replicas")
    previous = pgc.get("status") or {}
    # The plan of the spec's change: made by this reconcile (observed), or carried on from the last.
    plan = observed.get("plan") or previous.get("plan")
    if plan and pgc_plan_held(pgc, plan) and sts_spec_replicas is not None:
        # The change waits for approval: the cluster is what runs, not yet what the spec says.
        desired = int(sts_spec_replicas)
    current = int(sts_status.get("replicas") or 0)
    ready = int(sts_status.get("readyReplicas") or 0)
    updated = int(sts_status.get("updatedReplicas") or 0)
    # The StatefulSet controller has seen our latest template only when its observedGeneration
    # caught up with the object's generation.
    seen = sts_status.get("observedGeneration", 0) >= (sts.get("metadata") or {}).get("generation", 1)
    settled = seen and sts_spec_replicas == desired and current == desired and updated == desired

    previous_phase = (pgc.get("status") or {}).get("phase")
    # Members whose pod is of an older revision of the template (the StatefulSet updates on delete).
    revision = sts_status.get("updateRevision")
    outdated = [m["name"] for m in observed.get("members") or []
                if revision and m.get("revision") and m["revision"] != revision]
    held, canaries = canary_hold(pgc, observed, revision)
    if not sts:
        phase, reason, message = "Pending", "Provisioning", "Creating the StatefulSet"
    elif ready == desired and settled:
        phase, reason, message = "Running", "AllReplicasReady", "%d/%d replicas ready" % (ready, desired)
    elif previous_phase in ("Running", "Updating") and not seen and sts_spec_replicas == desired == current:
        # Just applied: until the StatefulSet controller has seen the template, the cluster is what it was.
        phase, reason, message = previous_phase, "RollingUpdate" if previous_phase == "Updating" else "AllReplicasReady", \
            pgc["status"].get("message") or "%d/%d replicas ready" % (ready, desired)
    elif previous_phase in ("Running", "Updating") and seen and sts_spec_replicas == desired and (
            outdated or previous_phase == "Updating"):
        # The configure step replaces the members of an older pod template one at a time; the last
        # one replaced is Ready before the update is done.
        phase, reason, message = "Updating", "RollingUpdate", "%d/%d members updated to the new pod template" % (
            max(0, desired - len(outdated)), desired)
        if held:
            reason = "CanaryHeld"
            message = ("Canary held: %s run%s the new pod template (revision %s), %d member%s the old one; "
                       "approve it (the approve playbook) or put the spec back to roll %s back" % (
                           ", ".join(canaries), "s" if len(canaries) == 1 else "", revision, len(outdated),
                           "" if len(outdated) == 1 else "s", "it" if len(canaries) == 1 else "them"))
    elif previous_phase in ("Running", "Scaling") and current != desired:
        phase, reason, message = "Scaling", "Scaling", "Scaling from %d to %d replicas" % (current, desired)
    else:
        phase, reason, message = "Pending", "WaitingForReplicas", "%d/%d replicas ready" % (ready, desired)

    ready_ok = phase == "Running"
    degraded, degraded_reason, degraded_message = cluster_health(pgc, observed, ready)
    conditions = [
        condition("Ready", ready_ok, reason, message, generation),
        condition("Progressing", not ready_ok, reason if not ready_ok else "Reconciled",
                  message if not ready_ok else "The cluster matches its spec", generation),
        condition("Degraded", degraded, degraded_reason, degraded_message, generation),
        condition("Reconciled", True, "ReconcileSucceeded", "The last reconcile succeeded", generation),
    ]
    status = {
        "phase": phase,
        "message": message,
        "observedGeneration": generation,
        "currentReplicas": current,
        "readyReplicas": ready,
        "currentPrimary": observed.get("leader") or None,
        "members": [{k: v for k, v in m.items() if k in MEMBER_STATUS_KEYS} for m in observed.get("members") or []],
        "selector": pgc["selector_string"],
        "conditions": conditions,
    }
    if phase == "Updating":
        # The rolling update under way: the template revision it goes to, the members already on it,
        # and whether it holds at its canaries.
        status["rollout"] = {"revision": revision, "updatedMembers": max(0, desired - len(outdated)),
                            "canary": int(pgc["spec"]["updatePolicy"]["canary"]), "canaries": canaries, "held": held}
    elif "rollout" in previous:
        status["rollout"] = None
    if plan and not observed.get("plan"):
        settled = phase == "Running" and seen and not outdated and not any(
            m.get("pendingRestart") for m in observed.get("members") or [])
        plan = plan_progress(pgc, plan, settled)
    if plan:
        status["plan"] = plan
        awaiting = plan.get("phase") == PLAN_AWAITING
        if awaiting:
            status["message"] = ("The change of generation %s waits for approval (the approve playbook): %s" % (
                plan.get("generation"), plan.get("summary")))
        status["conditions"].append(condition(
            "PlanApproved", not awaiting, "AwaitingApproval" if awaiting else (
                "Approved" if plan.get("mode") == "supervised" else "Automatic"),
            plan.get("summary") or "", generation))
    if observed.get("initialized"):
        status["failovers"], status["failoverTotals"] = failover_status(pgc, observed)
    spec = pgc["spec"]
    repository = (spec.get("backup") or {}).get("repository") or {}
    if repository or pgc.get("status", {}).get("backups"):
        # What the provision step applied: it removes a CronJob whose schedule goes away.
        logical = (spec.get("backup") or {}).get("logical") or {}
        status["backups"] = {
            "repository": next((kind for kind in ("s3", "gcs", "azure", "volume") if repository.get(kind) is not None),
                               "none"),
            "schedule": spec.get("backupSchedule") or "" if repository else "",
            "logicalSchedule": logical.get("schedule") or "" if repository else "",
            "drillSchedule": ((spec.get("backup") or {}).get("drill") or {}).get("schedule") or "" if repository else "",
        }
    from_backup = (spec.get("bootstrap") or {}).get("fromBackup") or {}
    if from_backup.get("repository"):
        status["restoredFrom"] = {k: v for k, v in from_backup.items() if v not in (None, "")}
    if observed.get("backup_jobs") or previous.get("lastBackupTimestamp") or previous.get("backupFailures"):
        backups = backup_status(observed.get("backup_jobs") or [], previous)
        status.update(backups["fields"])
        if backups["condition"]:
            status["conditions"].append(condition("LastBackupSucceeded", *backups["condition"], generation))
    if any(j.get("kind") == "logical-backup" for j in observed.get("backup_jobs") or []) \
            or previous.get("lastLogicalBackup") or previous.get("logicalBackupFailures"):
        status.update(logical_backup_status(observed.get("backup_jobs") or [], previous))
    status.update(drill_status(observed.get("backup_jobs") or [], previous))
    # The size the members' claims are made with (the StatefulSet's template), and why not the spec's.
    storage = (sts.get("spec") or {}).get("storage")
    if storage:
        status["storageSize"] = storage
    if observed.get("storage_refused"):
        status["conditions"].append(condition("StorageExpanded", False, "ExpansionRefused",
                                              "spec.storageSize %s: %s" % (spec["storageSize"], observed["storage_refused"]),
                                              generation))
    elif condition_of(previous, "StorageExpanded"):
        # Conditions are merged by type: once there, it says how the last growth ended.
        status["conditions"].append(condition("StorageExpanded", True, "Expanded",
                                              "The members' claims have spec.storageSize %s" % spec["storageSize"],
                                              generation))
    scale = pgc.get("scale") or {}
    if scale.get("held"):
        status["conditions"].append(condition("ScaleDownHeld", True, "SynchronousQuorum", scale["message"], generation))
    elif condition_of(previous, "ScaleDownHeld"):
        # Conditions are merged by type: once there, it says the spec's replicas run again.
        status["conditions"].append(condition("ScaleDownHeld", False, "ReplicasMatchSpec",
                                              "The cluster runs the %s members spec.replicas asks for" % desired,
                                              generation))
    if sts and pgc.get("postgres_version"):
        # The major the members run: raised by a major upgrade once it is done (module_utils/upgrades.py).
        status["postgresVersion"] = int(pgc["postgres_version"])
    if monitoring is not None:
        status["monitoring"] = {key: monitoring[key] for key in ("exporter", "podMonitor", "prometheusRule", "message")}
        for key in ("exporter", "podMonitor", "prometheusRule"):
            status["monitoring"][key] = _truthy(status["monitoring"][key])
    return status


def pgc_status_transitions(before, after):
    """Return the Events a status change deserves, as ``[{"type", "reason", "message"}]``.

    ``before`` is the status the reconcile started from, ``after`` the one it writes: a cluster
    that became Running, a scaling that finished, a primary that changed, was lost (no member
    holds the leader lock) or was elected again (failover, switchover), a cluster that became
    degraded or recovered.
    """
    before, after = before or {}, after or {}
    events = []

    def add(reason, message, warning=False):
        events.append({"type": "Warning" if warning else "Normal", "reason": reason, "message": message})

    was, now = before.get("phase"), after.get("phase")
    if now == "Running" and was != "Running":
        if was == "Scaling":
            add("ScalingDone", "Scaled to %s replicas" % after.get("currentReplicas"))
        elif was == "Updating":
            add("RollingUpdateDone", "Every member runs the new pod template")
        else:
            add("ClusterReady", after.get("message") or "Running")
    if now == "Scaling" and was != "Scaling":
        add("Scaling", after.get("message") or "Scaling")
    if now == "Updating" and was != "Updating":
        add("RollingUpdate", "Replacing the members one at a time, replicas first: " + (after.get("message") or ""))
    if (after.get("rollout") or {}).get("held") and not (before.get("rollout") or {}).get("held"):
        add("CanaryHeld", after.get("message") or "Canary held")
    plan_before, plan_after = before.get("plan") or {}, after.get("plan") or {}
    moved = (plan_before.get("generation"), plan_before.get("phase")) != (plan_after.get("generation"), plan_after.get("phase"))
    if plan_after and moved:
        summary = "generation %s: %s" % (plan_after.get("generation"), plan_after.get("summary"))
        if plan_after.get("phase") == PLAN_AWAITING:
            add("PlanAwaitingApproval", "The change of %s; approve it with the approve playbook" % summary)
        elif plan_after.get("phase") == PLAN_APPLYING:
            add("PlanApplying", "Carrying out the change of " + summary)
        elif plan_after.get("phase") == PLAN_APPLIED and (plan_before.get("phase") == PLAN_APPLYING
                                                         or plan_after.get("disruptive")):
            add("PlanApplied", "Carried out the change of " + summary)
    old, new = before.get("currentPrimary"), after.get("currentPrimary")
    if old and new and old != new:
        add("PrimaryChanged", "The primary moved from %s to %s" % (old, new))
    elif old and not new:
        add("PrimaryLost", "%s no longer holds the leader lock and no other member does yet" % old, warning=True)
    elif new and not old and before.get("members"):
        add("PrimaryElected", "%s holds the leader lock and runs the primary" % new)
    counted = int((before.get("failoverTotals") or {}).get("timeline") or 0)
    for record in after.get("failovers") or []:
        if before.get("failoverTotals") and int(record.get("timeline") or 0) > counted:
            window = record.get("writeUnavailableSeconds")
            add("Switchover" if record.get("kind") == "switchover" else "Failover",
                "%s -> %s on timeline %s; writes unavailable for %s" % (
                    record.get("from") or "?", record.get("to"), record.get("timeline"),
                    "%.1f s" % window if window is not None else "an unknown time (no record of the old primary left)"),
                warning=record.get("kind") != "switchover")
    refused = condition_of(after, "StorageExpanded")
    if refused and condition_of(before, "StorageExpanded").get("message") != refused.get("message"):
        add("StorageExpansionRefused", refused.get("message") or "", warning=True)
    held = condition_of(after, "ScaleDownHeld")
    if held.get("status") == "True" and condition_of(before, "ScaleDownHeld").get("message") != held.get("message"):
        add("ScaleDownHeld", held.get("message") or "", warning=True)
    degraded_before, degraded_after = condition_of(before, "Degraded"), condition_of(after, "Degraded")
    if degraded_after.get("status") == "True" and (degraded_before.get("status") != "True"
                                                   or degraded_before.get("reason") != degraded_after.get("reason")):
        add("Degraded", degraded_after.get("message") or "Degraded", warning=True)
    elif degraded_after.get("status") == "False" and degraded_before.get("status") == "True":
        add("Recovered", degraded_after.get("message") or "Recovered")
    if int(after.get("backupFailures") or 0) > int(before.get("backupFailures") or 0):
        failure = after.get("lastBackupFailure") or {}
        add("BackupFailed", "Backup Job %s failed: %s" % (failure.get("job"), failure.get("message")), warning=True)
    if after.get("lastBackupTimestamp") and after.get("lastBackupTimestamp") != before.get("lastBackupTimestamp"):
        backup = after.get("lastBackup") or {}
        add("BackupSucceeded", "Backup %s finished at %s (Job %s)" % (
            backup.get("label") or "(no label reported)", after["lastBackupTimestamp"], backup.get("job")))
    if int(after.get("logicalBackupFailures") or 0) > int(before.get("logicalBackupFailures") or 0):
        failure = after.get("lastLogicalBackupFailure") or {}
        add("LogicalBackupFailed", "Logical backup Job %s failed: %s" % (failure.get("job"), failure.get("message")),
            warning=True)
    logical = after.get("lastLogicalBackup") or {}
    if logical.get("stopTime") and logical.get("stopTime") != (before.get("lastLogicalBackup") or {}).get("stopTime"):
        add("LogicalBackupSucceeded", "Logical backup of %s finished at %s (Job %s)" % (
            ", ".join(d.get("database", "?") for d in logical.get("dumps") or []) or "no database reported",
            logical["stopTime"], logical.get("job")))
    # One Event per drill Job: lastDrill names a new Job only once.
    drill = after.get("lastDrill") or {}
    if drill.get("job") and drill.get("job") != (before.get("lastDrill") or {}).get("job"):
        if drill.get("result") == "Succeeded":
            add("DrillSucceeded", "Restore drill Job %s: %s in %ss, recovered to %s" % (
                drill["job"], drill.get("message"), drill.get("durationSeconds", "?"), drill.get("restoredTo", "?")))
        else:
            add("DrillFailed", "Restore drill Job %s failed: %s" % (drill["job"], drill.get("message")), warning=True)
    return events


def pgc_failure_status(pgc, message, reason="ReconcileFailed", degraded=False, phase="Failed"):
    """Return the status of a reconcile that failed with ``message``.

    ``degraded`` marks a failure that impairs a cluster that holds data (its Degraded condition);
    a spec that cannot be satisfied is not in itself a degradation. ``phase`` Pending is a
    reconcile that stopped to wait for something else (cert-manager's certificate), not a failure.
    """
    generation = pgc.get("generation", 0)
    conditions = [
        condition("Ready", False, reason, message, generation),
        condition("Reconciled", False, reason, message, generation),
    ]
    if degraded:
        conditions.append(condition("Degraded", True, reason, message, generation))
    return {"phase": phase, "message": message, "observedGeneration": generation, "conditions": conditions}


def _restoring_events(before, after):
    """The Events of a status pgc_restoring_status wrote: one when the restore begins to hold the
    cluster, a Warning when it becomes overdue."""
    was, now = condition_of(before, "Ready").get("reason"), condition_of(after, "Ready").get("reason")
    if now == was:
        return []
    return [{"type": "Warning" if now == "RestoreOverdue" else "Normal", "reason": now, "message": after["message"]}]


# How long a restore may hold the cluster before status calls it overdue: the restore playbook's
# longest wait (restore_timeout, 6 h) and its checks around it.
RESTORE_OVERDUE_SECONDS = 7 * 3600


def pgc_restoring(pgc, now=None):
    """The status (``status``) and Events (``events``) of a cluster the restore playbook holds."""
    after = restoring_status(pgc, now)
    return {"status": after, "events": _restoring_events(pgc.get("status") or {}, after)}


def restoring_status(pgc, now=None):
    """The status of a cluster the restore playbook holds (the annotation
    postgres.example.com/restore-in-progress: its start time, then what it restores and the step):
    phase Restoring, since when and what; RestoreOverdue once it has held the cluster longer than any
    restore may take, which is a playbook that was stopped and left the members stopped."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    text = str(pgc.get("restore_in_progress") or "")
    started_text, _, what = text.partition(" ")
    started = parse_time(started_text)
    generation = pgc.get("generation", 0)
    since = " since %s" % started_text if started else ""
    message = "The restore playbook holds the cluster%s: %s" % (since, what or text)
    reason = "Restoring"
    if started is None or (now - started).total_seconds() > RESTORE_OVERDUE_SECONDS:
        reason = "RestoreOverdue"
        message += (". It has not finished within %d h: if the playbook was stopped, run it again, or give "
                    "the cluster back as the README's \"Abort a restore\" says" % (RESTORE_OVERDUE_SECONDS // 3600))
    conditions = [condition("Ready", False, reason, message, generation),
                  condition("Reconciled", False, reason, message, generation)]
    if reason == "RestoreOverdue":
        conditions.append(condition("Degraded", True, reason, message, generation))
    status = dict(pgc.get("status") or {})
    status.update(phase="Restoring", message=message, observedGeneration=generation, conditions=conditions)
    return status


def _kubernetes_status_message(text):
    """The ``message`` of a Kubernetes Status embedded in ``text`` (JSON, or a bytes literal of it)."""
    start = text.find("{")
    if start == -1:
        return None, text
    body, prefix = text[start:text.rfind("}") + 1], text[:start]
    if prefix.endswith(("b'", 'b"')):  # the repr of the response body: b'{...}'
        try:
            body = ast.literal_eval(text[start - 2:]).decode("utf-8", "replace")
        except (ValueError, SyntaxError):
            return None, text
        prefix = prefix[:-2]
    try:
        status = json.loads(body)
    except ValueError:
        return None, text
    if isinstance(status, dict) and status.get("kind") == "Status" and status.get("message"):
        return status["message"], prefix
    return None, text


def pgc_failure_message(message, limit=600):
    """Return a one-line message for people from a failed task's ``msg``.

    kubernetes.core wraps the API server's answer as ``Failed to ...: b'{...Status JSON...}'``;
    the Status's own ``message`` is what says what is wrong.
    """
    text = str(message or "failed")
    status_message, prefix = _kubernetes_status_message(text)
    if status_message:
        text = prefix.rstrip() + " " + status_message
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit - 3] + "..."


def pgc_status_differs(current, updates):
    """True when writing ``updates`` (as k8s_status would) would change the ``current`` status.

    Lets the status step skip the module, and its API client, on a reconcile that changes nothing.
    """
    current = current or {}
    return status_patch(current, desired_status(current, updates, rfc3339_now())) is not None
