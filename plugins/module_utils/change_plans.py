# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The plan of a spec's change: which objects change, which members restart (from the parameter
catalogue's contexts and the pod template) and in what order, the switchovers, the expected write
outage and the claims that grow. Printed by the plan playbook before a change, waited on in
supervised mode (spec.updatePolicy.mode) and recorded in status.plan with the change."""

from __future__ import annotations

import datetime

from ansible_collections.postgres.cluster.plugins.module_utils.names import pod_ordinal
from ansible_collections.postgres.cluster.plugins.module_utils.objects import larger
from ansible_collections.postgres.cluster.plugins.module_utils.parameters import needs_restart
from ansible_collections.postgres.cluster.plugins.module_utils.patroni import PATRONI_TIMING, parse_time, pgc_dcs_config


def _ordinal(name):
    ordinal = pod_ordinal(name)
    return -1 if ordinal is None else ordinal


# A switchover's write outage, from the request until the candidate takes writes: the data plane's
# median (tests/dataplane/test_operator_cluster.py), rounded up.
SWITCHOVER_OUTAGE_SECONDS = 3

# What status.plan.phase says of the plan of a spec's generation.
PLAN_AWAITING, PLAN_APPLYING, PLAN_APPLIED = "AwaitingApproval", "Applying", "Applied"


def _template_paths(applied):
    """The paths of the StatefulSet's pod template that k8s_apply (check mode) found to differ."""
    paths = []
    for entry in (applied or {}).get("objects") or []:
        if entry.get("object", "").startswith("StatefulSet ") and entry.get("action") == "configured":
            paths.extend(r[:-len(" differs")] for r in entry.get("reasons") or []
                         if r.startswith("spec.template.") and r.endswith(" differs"))
    return paths


def _members_from_status(pgc):
    """The members as the last status counted them, when Patroni reports none (it does not run)."""
    status = pgc.get("status") or {}
    names = ["%s-%d" % (pgc["names"]["statefulset"], i) for i in range(int(status.get("currentReplicas") or 0))]
    return [{"name": n, "role": "primary" if n == status.get("currentPrimary") else "replica"} for n in names]


def pgc_change_plan(pgc, observed, applied=None):
    """What carrying out the spec of ``pgc`` would do to the cluster as it is: the plan printed before
    a change (the plan playbook), waited on in supervised mode and recorded with the change.

    ``observed`` is what cluster_observe read (Patroni's dynamic configuration, the members, the
    leader); ``applied`` k8s_apply's report in check mode over the cluster's objects (``objects``:
    identity, action, reasons). Returns ``objects`` (those that would change), ``parameters`` (the
    parameters that change, and which need a restart), ``template`` (the pod template's paths that
    change), ``restarts`` (the members, in the order they would restart), ``removed`` (the members a
    scale-down removes), ``switchovers``, ``writeOutageSeconds`` (an estimate, None when writes are
    not interrupted or for how long is unknown), ``claims`` (from and to, when they grow),
    ``disruptive`` (members restart, go or switch over, or claims grow) and ``summary``.
    """
    observed = observed or {}
    objects = [{"object": o["object"], "action": o["action"], "reasons": o.get("reasons", [])}
               for o in ((applied or {}).get("objects") or []) if o.get("action") not in ("unchanged", None)]
    template = _template_paths(applied)
    current = ((observed.get("config") or {}).get("postgresql") or {}).get("parameters") or {}
    desired = pgc_dcs_config(observed.get("config"), pgc) if observed.get("config") else {}
    wanted = ((desired.get("postgresql") or {}).get("parameters") or {}) if desired else current
    changed = sorted(k for k in set(current) | set(wanted) if str(current.get(k)) != str(wanted.get(k)))
    restart_parameters = [k for k in changed if needs_restart(k, pgc["postgres_major"])]
    members = observed.get("members") or _members_from_status(pgc)
    members = sorted(members, key=lambda m: _ordinal(m["name"]))
    primary = [m["name"] for m in members if m.get("role") == "primary"]
    replicas = int(pgc["spec"]["replicas"])
    removed = [m["name"] for m in members if _ordinal(m["name"]) >= replicas]
    kept = [m["name"] for m in members if m["name"] not in removed]
    restarts, switchovers = [], 0
    if primary and primary[0] in removed and kept:
        switchovers += 1  # the scale step moves the primary to a member that stays first
    if template or restart_parameters:
        restarts = sorted((n for n in kept if n not in primary), key=_ordinal, reverse=True)
        restarts += [n for n in kept if n in primary] or ([kept[0]] if switchovers and kept else [])
        if len(kept) > 1 and primary and primary[0] in kept:
            switchovers += 1
    outage = None
    if switchovers:
        outage = SWITCHOVER_OUTAGE_SECONDS * switchovers
    # Imported here: upgrades reads status' conditions, and status reads this module.
    from ansible_collections.postgres.cluster.plugins.module_utils.upgrades import major_upgrade_plan
    upgrade = major_upgrade_plan(pgc, observed)
    major = {} if upgrade["action"] == "none" else {
        "from": upgrade["from"], "to": upgrade["to"], "mode": upgrade["mode"], "steps": upgrade["steps"],
        "claimsRecreated": upgrade["claims_recreated"], "rollback": upgrade["rollback"]}
    if major:
        # Every member stops for pg_upgrade: what restarts and the outage are the upgrade's.
        restarts = sorted((m["name"] for m in members), key=_ordinal)
        outage = upgrade["expected_outage_seconds"]
    claims = {}
    status_size = (pgc.get("status") or {}).get("storageSize")
    if larger(pgc["spec"]["storageSize"], status_size):
        claims = {"from": status_size, "to": pgc["spec"]["storageSize"]}
    why = (["the pod template (%s)" % ", ".join(template[:3])] if template else []) + (
        ["parameters that need a restart (%s)" % ", ".join(restart_parameters)] if restart_parameters else [])
    parts = []
    if major:
        parts.append("PostgreSQL %s to %s (%s mode): every member stops, %s, writes unavailable for about %d s; "
                     "rollback possible until %s" % (
                         major["from"], major["to"], major["mode"],
                         "the replicas are cloned anew" if major["claimsRecreated"] else "one member",
                         outage, major["rollback"]["until"]))
    elif restarts:
        parts.append("%d member%s restart%s, replicas first (%s), because of %s" % (
            len(restarts), "s" if len(restarts) != 1 else "", "" if len(restarts) != 1 else "s",
            ", ".join(restarts), " and ".join(why)))
    if removed:
        parts.append("%s removed by the scale-down" % ", ".join(removed))
    if switchovers and not major:
        parts.append("%s, writes unavailable for about %d s" % (
            "one switchover" if switchovers == 1 else "%d switchovers" % switchovers, outage))
    elif restarts and len(kept) == 1 and not major:
        parts.append("the only member restarts: writes unavailable until it is back")
    elif restarts and not major:
        parts.append("no member is known as the primary (Patroni reports none): the write outage is not known")
    if not restarts and not removed:
        parts.append("no member restarts" + ("; %d parameter%s reloaded" % (len(changed), "s" if len(changed) != 1 else "")
                                              if changed else ""))
    if claims:
        parts.append("the data claims grow from %s to %s, no member restarts for it" % (claims["from"], claims["to"]))
    return {"objects": objects, "parameters": {"changed": changed, "restart": restart_parameters},
            "template": template, "restarts": restarts, "removed": removed, "switchovers": switchovers,
            "writeOutageSeconds": outage, "claims": claims, "majorUpgrade": major,
            "disruptive": bool(restarts or removed or switchovers or claims or major), "summary": "; ".join(parts)}


def _supervised(pgc):
    return ((pgc["spec"].get("updatePolicy") or {}).get("mode") or "automatic") == "supervised"


def pgc_plan_due(pgc):
    """Whether the spec's generation has no plan yet (status.plan is of an older one, or absent)."""
    plan = (pgc.get("status") or {}).get("plan") or {}
    return int(plan.get("generation") or 0) != int(pgc.get("generation") or 0)


def pgc_plan_record(pgc, plan, now=None):
    """status.plan for the plan of the spec's generation: the plan, the generation and mode it is of,
    when it was made, and its phase: AwaitingApproval (supervised, disruptive, not approved yet),
    Applying (under way) or Applied (nothing left that takes time)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    generation = int(pgc.get("generation") or 0)
    supervised = _supervised(pgc)
    if supervised and plan["disruptive"] and pgc.get("plan_approved") != str(generation):
        phase = PLAN_AWAITING
    elif plan["restarts"] or plan["removed"] or plan["switchovers"]:
        phase = PLAN_APPLYING
    else:
        phase = PLAN_APPLIED
    record = dict(plan, generation=generation, mode="supervised" if supervised else "automatic", phase=phase,
                  createdAt=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if phase == PLAN_APPLIED:
        record["appliedAt"] = record["createdAt"]
    return record


def pgc_plan_held(pgc, record=None):
    """Whether the reconcile holds the disruptive part of the spec's change: the plan of this
    generation (``record``, else status.plan) waits for approval in supervised mode, and the
    annotation postgres.example.com/approve-plan does not name this generation."""
    plan = record if record else ((pgc.get("status") or {}).get("plan") or {})
    generation = int(pgc.get("generation") or 0)
    return (_supervised(pgc) and plan.get("phase") == PLAN_AWAITING
            and int(plan.get("generation") or 0) == generation and pgc.get("plan_approved") != str(generation))


# Patroni marks a member pending_restart at its next loop after the parameters change: an approved
# plan that restarts for parameters is not called Applied sooner than this after it began.
PLAN_PENDING_RESTART_SECONDS = PATRONI_TIMING["loop_wait"] + 5


def plan_progress(pgc, plan, settled, now=None):
    """status.plan as the status step carries it on: a plan that waited is Applying once approved
    (or once spec.updatePolicy.mode is automatic again); one Applying is Applied once the cluster
    is ``settled`` (Running, every member on the current pod template, none pending a restart)."""
    if not plan:
        return plan
    now = now or datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if plan.get("phase") == PLAN_AWAITING and not pgc_plan_held(pgc, plan):
        return dict(plan, phase=PLAN_APPLYING, approvedAt=stamp)
    if plan.get("phase") == PLAN_APPLYING and settled:
        began = parse_time(plan.get("approvedAt") or plan.get("createdAt"))
        if (plan.get("parameters") or {}).get("restart") and began is not None and \
                (now - began).total_seconds() < PLAN_PENDING_RESTART_SECONDS:
            return plan
        return dict(plan, phase=PLAN_APPLIED, appliedAt=stamp)
    return plan


def pgc_plan_lines(plan, cluster):
    """The plan as the plan playbook prints it, a line each."""
    lines = ["Plan for %s: %s" % (cluster, plan["summary"]), "Objects that change:"]
    lines += ["  %s: %s (%s)" % (o["object"], o["action"], "; ".join(o.get("reasons") or []) or "-")
              for o in plan["objects"]] or ["  none"]
    params = plan["parameters"]
    lines.append("Parameters that change: %s%s" % (", ".join(params["changed"]) or "none", " (need a restart: %s)" % (
        ", ".join(params["restart"])) if params["restart"] else ""))
    lines.append("Pod template: %s" % (", ".join(plan["template"]) or "unchanged"))
    lines.append("Members that restart, in order: %s" % (", ".join(plan["restarts"]) or "none"))
    lines.append("Members removed: %s" % (", ".join(plan["removed"]) or "none"))
    outage = plan["writeOutageSeconds"]
    lines.append("Switchovers: %d; expected write outage: %s" % (plan["switchovers"], "about %s s" % outage if outage is not None
                 else "until the only member is back" if len(plan["restarts"]) == 1
                 else "not known (no primary)" if plan["restarts"] else "none"))
    claims = plan["claims"]
    lines.append("Claims: %s" % ("grow from %s to %s" % (claims["from"], claims["to"]) if claims else "unchanged"))
    major = plan.get("majorUpgrade")
    if major:
        lines.append("Major upgrade, PostgreSQL %s to %s (%s mode):" % (major["from"], major["to"], major["mode"]))
        lines += ["  %d. %s" % (n, step) for n, step in enumerate(major["steps"], 1)]
        lines.append("  rollback possible until %s: %s" % (major["rollback"]["until"], major["rollback"]["how"]))
    if plan.get("phase") == PLAN_AWAITING:
        lines.append("Carrying it out waits for approval (spec.updatePolicy.mode supervised): "
                     "ansible-playbook postgres.cluster.approve -e cluster=NAME -e namespace=NS")
    else:
        lines.append("Carrying it out goes ahead at once (spec.updatePolicy.mode %s)" % plan.get("mode", "automatic"))
    return lines
