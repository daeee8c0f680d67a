# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The next step of a change that moves members one at a time (a switchover, a rolling update or
restart), and which of a reconcile's optional steps have work."""

from __future__ import annotations

import datetime

from ansible_collections.postgres.cluster.plugins.module_utils.names import pod_ordinal
from ansible_collections.postgres.cluster.plugins.module_utils.objects import differences, larger, with_applied_hash
from ansible_collections.postgres.cluster.plugins.module_utils.patroni import (
    PATRONI_TIMING,
    member_timeline,
    parse_time,
    pgc_dcs_config,
    wakeup_config,
)
from ansible_collections.postgres.cluster.plugins.module_utils.status import canary_hold, cluster_health
from ansible_collections.postgres.cluster.plugins.module_utils.upgrades import upgrade_pending
from ansible_collections.postgres.cluster.plugins.module_utils.tls import (
    SERVER_TLS_KEYS,
    pgc_server_certificate,
    pgc_server_tls_secret,
    pgc_server_tls_source,
)


def _ordinal(pod_name):
    ordinal = pod_ordinal(pod_name)
    # Pods without an ordinal first.
    return -1 if ordinal is None else ordinal


def _pod_ready(pod):
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pgc_switchover_plan(pods, candidate="", below_ordinal=0, dcs_config=None):
    """Choose the leader and the candidate of a switchover from the cluster's pods.

    Returns ``{"leader", "candidate", "error", "timeline", "wakeup"}``: the leader is the pod
    Patroni labels primary, on ``timeline`` (as its member data says; 0 when unknown); the
    candidate is the one asked for, or the ready replica with the lowest ordinal (below
    ``below_ordinal`` when it is not 0). ``error`` says why there is no switchover to make.
    ``wakeup`` is what makes every member's Patroni look at the request at once rather than at its
    next loop (see patroni.wakeup_config), from the ConfigMap ``<name>-config`` ``dcs_config``.
    """
    below_ordinal = int(below_ordinal or 0)
    pods = sorted(pods or [], key=lambda p: _ordinal(p["metadata"]["name"]))
    role = {p["metadata"]["name"]: (p["metadata"].get("labels") or {}).get("role") for p in pods}
    leaders = [name for name, r in role.items() if r == "primary"]
    plan = {"leader": leaders[0] if len(leaders) == 1 else "", "candidate": "", "error": "", "timeline": 0,
            "wakeup": wakeup_config(dcs_config)}
    if len(leaders) != 1:
        plan["error"] = "no single member is labelled primary (%s)" % (", ".join(leaders) or "none")
        return plan
    leader_pod = next(p for p in pods if p["metadata"]["name"] == plan["leader"])
    plan["timeline"] = member_timeline(leader_pod)
    eligible = [p["metadata"]["name"] for p in pods
                if role[p["metadata"]["name"]] == "replica" and _pod_ready(p)
                and (not below_ordinal or _ordinal(p["metadata"]["name"]) < below_ordinal)]
    if candidate:
        if candidate == plan["leader"]:
            plan["candidate"] = candidate  # already the primary: nothing to do
        elif candidate not in eligible:
            plan["error"] = "%s is not a ready replica" % candidate
        else:
            plan["candidate"] = candidate
    elif eligible:
        plan["candidate"] = eligible[0]
    else:
        plan["error"] = "no ready replica to take over"
    return plan


# Seconds beyond loop_wait a new primary holds its lock before the restart plan moves it.
SETTLE_SECONDS = 2


def _loop_wait(observed):
    config = observed.get("config") if isinstance(observed.get("config"), dict) else {}
    try:
        return float(config.get("loop_wait", PATRONI_TIMING["loop_wait"]))
    except (TypeError, ValueError):
        return float(PATRONI_TIMING["loop_wait"])


def _promoted_seconds_ago(observed, now=None):
    """Seconds since the leader took its lock (the lock's acquireTime); a long time when unknown."""
    acquired = parse_time((observed.get("dcs_lock") or {}).get("acquireTime"))
    if acquired is None:
        return float("inf")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return (now - acquired).total_seconds()


def outdated_members(observed):
    """The members whose pod was made from an older revision of the StatefulSet's pod template
    than its ``updateRevision`` (the StatefulSet updates on delete: the operator replaces them),
    or None while the StatefulSet controller has not seen the latest template yet."""
    sts = (observed or {}).get("statefulset") or {}
    if not sts:
        return []
    status = sts.get("status") or {}
    generation = (sts.get("metadata") or {}).get("generation")
    if generation and int(status.get("observedGeneration") or 0) < int(generation):
        return None
    revision = status.get("updateRevision")
    if not revision:
        return []
    return [m for m in (observed.get("members") or []) if m.get("revision") and m["revision"] != revision]


def pgc_restart_plan(observed, pgc, now=None):
    """Choose the one step of a rolling update or restart to take now: for members whose pod is of
    an older revision of the pod template (an image, resources or any other template change) and
    for members Patroni reports pending_restart.

    Returns ``{"action", "member", "reason", "message"}``; action is ``none`` (nothing to do),
    ``hold`` (spec.updatePolicy.canary replicas run the new template and nobody approved it yet),
    ``wait`` (the StatefulSet controller has not seen the new template, a member is not Ready, the
    cluster is not healthy enough to lose a member now, or its primary was promoted less than
    loop_wait + SETTLE_SECONDS ago), ``restart`` (delete this replica's pod; its StatefulSet makes
    it again, of the current revision) or ``switchover`` (only the primary is left: move the
    primary to a replica, which is up to date by then; it is replaced as a replica). One member at
    a time, each Ready and streaming again before the next: replicas first, the primary last.
    ``reason`` names the change for the Events: RollingUpdate or RollingRestart.
    """
    observed = observed or {}
    members = observed.get("members") or []
    plan = {"action": "none", "member": "", "reason": "", "message": ""}
    outdated = outdated_members(observed)
    if outdated is None:
        plan.update(action="wait", reason="RollingUpdate",
                    message="Waiting for the StatefulSet controller to see the new pod template")
        return plan
    stale = {m["name"] for m in outdated}
    pending = [m for m in members if m.get("pendingRestart") or m["name"] in stale]
    if not pending:
        return plan
    plan["reason"] = "RollingUpdate" if stale else "RollingRestart"
    revision = (((observed.get("statefulset") or {}).get("status")) or {}).get("updateRevision")
    held, canaries = canary_hold(pgc, observed, revision)
    if held:
        plan.update(action="hold", reason="CanaryHeld", message="Canary held: %s on revision %s, waiting for approval" % (
            ", ".join(canaries), revision))
        return plan

    def why(member):
        return "to the new pod template" if member["name"] in stale else "to apply parameters that need a restart"

    names = ", ".join(m["name"] for m in pending)
    degraded, _, health = cluster_health(pgc, observed, len(members))
    not_ready = [m["name"] for m in members if not m.get("ready", True)]
    if not degraded and not_ready:
        degraded, health = True, "%s not Ready" % ", ".join(not_ready)
    if degraded or len(members) != int(pgc["spec"]["replicas"]):
        plan.update(action="wait", message="%s of %s pending: %s" % (
            "Update" if stale else "Restart", names, health or "%d of %s members" % (len(members), pgc["spec"]["replicas"])))
        return plan
    replicas = [m for m in pending if m.get("role") != "primary"]
    if replicas:
        member = replicas[-1]
        plan.update(action="restart", member=member["name"],
                    message="%s %s %s" % ("Updating" if member["name"] in stale else "Restarting", member["name"], why(member)))
    elif len(members) > 1 and _promoted_seconds_ago(observed, now) < _loop_wait(observed) + SETTLE_SECONDS:
        # Right after a promotion the members' reports (pending_restart among them) may predate it,
        # and a second switchover while the first promotion ends can leave two members on one
        # timeline with different histories. Every member reports again within loop_wait.
        plan.update(action="wait", message="%s of %s pending: its promotion settles first" % (
            "Update" if stale else "Restart", pending[0]["name"]))
    elif len(members) > 1:
        plan.update(action="switchover", member=pending[0]["name"],
                    message="Moving the primary off %s before it is %s" % (
                        pending[0]["name"], "updated" if pending[0]["name"] in stale else "restarted"))
    else:
        plan.update(action="restart", member=pending[0]["name"],
                    message="%s %s, the only member, %s" % (
                        "Updating" if pending[0]["name"] in stale else "Restarting", pending[0]["name"], why(pending[0])))
    return plan


def _server_certificate_has_work(observed, pgc):
    """With spec.tls.issuerRef: cert-manager's API is not served (the step says so), the Certificate
    is missing or not the one to apply, or cert-manager has not written its Secret whole yet (the
    step waits). From what observe read alone, which asks cert-manager's API only with issuerRef."""
    if pgc_server_tls_source(pgc) != "cert-manager":
        return False
    certificate = observed.get("certificate")
    if not observed.get("cert_manager_api") or certificate is None:
        return True
    if differences(with_applied_hash(pgc_server_certificate(pgc)), certificate):
        return True
    keys = (observed.get("secrets") or {}).get(pgc_server_tls_secret(pgc))
    return keys is None or not set(SERVER_TLS_KEYS) <= set(keys)


def pgc_steps_with_work(observed, pgc):
    """The reconcile's steps that run only when they have work, and have some now, in the order
    they run (roles/reconcile/tasks/steps_with_work.yml), from what the observe step read:

    - ``credentials``: a Secret is missing, one the user named (credentials, passphrase, server
      certificate) must be checked, a certificate must be issued or renewed, or cert-manager's server
      certificate has work (spec.tls.issuerRef);
    - ``restore_source``: a new cluster restores from a cluster whose repository the spec does not name;
    - ``storage``: spec.storageSize grew past the size the members' claims are made with;
    - ``scale``: a scale-down, which may remove the primary;
    - ``major_upgrade``: the spec's PostgreSQL major is above the members' (and no failed upgrade to it
      waits for a change of the spec);
    - ``configure``: Patroni's dynamic configuration differs from the spec, or a member waits for a restart.
    """
    observed = observed or {}
    spec = pgc["spec"]
    steps = []
    secrets = observed.get("secrets") or {}
    if (any(found is None for found in secrets.values()) or observed.get("certificates_due")
            or spec["credentials"].get("secretName")
            or (spec.get("backup") or {}).get("encryptionSecretName") or (spec.get("tls") or {}).get("secretName")):
        steps.append("credentials")
    if "credentials" not in steps and _server_certificate_has_work(observed, pgc):
        steps.append("credentials")
    from_backup = (spec.get("bootstrap") or {}).get("fromBackup")
    if from_backup is not None and not from_backup.get("repository"):
        steps.append("restore_source")
    status = pgc.get("status") or {}
    # The claims are made with a smaller size than the spec's (status.storageSize, the StatefulSet's),
    # or a cluster from before that field failed, perhaps on the very change.
    if larger(spec["storageSize"], status.get("storageSize")) or (
            not status.get("storageSize") and status.get("phase") == "Failed"):
        steps.append("storage")
    if int(spec["replicas"]) < int(status.get("currentReplicas") or 0):
        steps.append("scale")
    if observed.get("initialized") and upgrade_pending(pgc):
        steps.append("major_upgrade")
    if pgc_dcs_config(observed.get("config"), pgc) or pgc_restart_plan(observed, pgc)["action"] != "none":
        steps.append("configure")
    return steps
