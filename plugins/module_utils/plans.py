# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The next step of a change that moves members one at a time (a switchover, a rolling restart),
and which of a reconcile's optional steps have work."""

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
from ansible_collections.postgres.cluster.plugins.module_utils.status import cluster_health
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


def pgc_restart_plan(observed, pgc, now=None):
    """Choose the one step of a rolling restart to take now, for members Patroni reports pending_restart.

    Returns ``{"action", "member", "message"}``; action is ``none`` (nothing pending), ``wait`` (a
    restart is pending but the cluster is not healthy enough to lose a member now, or its primary
    was promoted less than loop_wait + SETTLE_SECONDS ago), ``restart``
    (delete this replica's pod; its StatefulSet starts it again) or ``switchover`` (only the
    primary is left: move the primary to a healthy replica first; it restarts as a replica).
    One member at a time, replicas first, the primary last.
    """
    observed = observed or {}
    members = observed.get("members") or []
    pending = [m for m in members if m.get("pendingRestart")]
    plan = {"action": "none", "member": "", "message": ""}
    if not pending:
        return plan
    degraded, _, why = cluster_health(pgc, observed, len(members))
    if degraded or len(members) != int(pgc["spec"]["replicas"]):
        plan.update(action="wait", message="Restart of %s pending: %s" % (", ".join(m["name"] for m in pending), why))
        return plan
    replicas = [m for m in pending if m.get("role") != "primary"]
    if replicas:
        plan.update(action="restart", member=replicas[-1]["name"],
                    message="Restarting %s to apply parameters that need a restart" % replicas[-1]["name"])
    elif len(members) > 1 and _promoted_seconds_ago(observed, now) < _loop_wait(observed) + SETTLE_SECONDS:
        # Right after a promotion the members' reports (pending_restart among them) may predate it,
        # and a second switchover while the first promotion ends can leave two members on one
        # timeline with different histories. Every member reports again within loop_wait.
        plan.update(action="wait", message="Restart of %s pending: its promotion settles first" % pending[0]["name"])
    elif len(members) > 1:
        plan.update(action="switchover", member=pending[0]["name"],
                    message="Moving the primary off %s before it restarts" % pending[0]["name"])
    else:
        plan.update(action="restart", member=pending[0]["name"],
                    message="Restarting %s, the only member, to apply parameters that need a restart" % pending[0]["name"])
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
    if pgc_dcs_config(observed.get("config"), pgc) or pgc_restart_plan(observed, pgc)["action"] != "none":
        steps.append("configure")
    return steps
