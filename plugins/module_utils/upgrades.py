# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Major version upgrades: when one is due, its plan, its Jobs and what status says of it.

A raised spec.postgresVersion (or the major of the image) is upgraded with pg_upgrade in Jobs of the
NEW image, which carries the old major's binaries too (images/postgres/Dockerfile, PG_OLD_MAJORS):
the pre-flight (``--check-only``) while the members are stopped, then the upgrade of the primary's
data (``--mode=copy|link``), then the replicas cloned anew from it, then ANALYZE against the running
primary. The scripts (images/postgres/scripts/pgc-major-upgrade.sh) write one JSON line to the
Job's termination message: result (upgraded, checked, rolled-back, failed), from, to, mode,
durations, old_data, rollback_possible, stanza, reason. The role major_upgrade runs the steps; this
module only describes them.
"""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils.jobs import superuser_connection_env
from ansible_collections.postgres.cluster.plugins.module_utils.names import PGDATA, data_claim, pod_ordinal, restore_job
from ansible_collections.postgres.cluster.plugins.module_utils.pgbackrest import (
    pgc_pgbackrest_environment,
    pgc_pgbackrest_settings,
)
from ansible_collections.postgres.cluster.plugins.module_utils.pods import pgc_backup_pod_labels, pgc_job_pod_spec
from ansible_collections.postgres.cluster.plugins.module_utils.spec import SpecError, image_for_major
from ansible_collections.postgres.cluster.plugins.module_utils.status import condition

# Where the Debian packages of PostgreSQL put each major's programs.
BIN_DIR = "/usr/lib/postgresql/%d/bin"
# What each Job runs. Values come from the environment, so that nothing is split or quoted here.
COMMANDS = {
    "major-upgrade-check": 'pgc-major-upgrade.sh --mode="$PGC_UPGRADE_MODE" --check-only',
    "major-upgrade": 'pgc-major-upgrade.sh --mode="$PGC_UPGRADE_MODE"',
    "major-upgrade-rollback": "pgc-major-upgrade.sh --rollback",
    # The script prints {"written": bool}; the Job's termination message carries it.
    "major-upgrade-written": 'out=$(pgc-major-upgrade.sh --written) || exit $?; printf "%s\\n" "$out"; '
                             'printf "%s\\n" "$out" > "$PGC_RESULT_FILE"',
    # Against the primary once it runs the new major: the statistics pg_upgrade does not carry over,
    # in stages so that the planner has rough ones soon. It waits for the primary to take connections.
    "major-upgrade-analyze": ('for try in $(seq 120); do pg_isready -q && break; sleep 5; done; '
                              'vacuumdb --all --analyze-in-stages && '
                              'printf \'{"result": "analyzed"}\\n\' > "$PGC_RESULT_FILE"'),
}
# The Jobs that work on the stopped primary's data claim, and those that connect to it instead.
DATA_JOBS = ("major-upgrade-check", "major-upgrade", "major-upgrade-rollback")
SQL_JOBS = ("major-upgrade-written", "major-upgrade-analyze")
# The fields of status.upgrade.
FIELDS = ("from", "to", "mode", "phase", "startedAt", "finishedAt", "outageSeconds", "rollbackPossible", "message",
          "observedGeneration")
PHASES = ("Checking", "Upgrading", "Cloning", "Analyzing", "Done", "Failed", "RolledBack")
# The condition that says how the last major upgrade went.
CONDITION = "MajorUpgrade"
# An Event per step: its reason, and whether it warns.
EVENTS = {
    "Checking": ("MajorUpgradeChecking", False),
    "Upgrading": ("MajorUpgradeStarted", False),
    "Cloning": ("MajorUpgradeCloning", False),
    "Analyzing": ("MajorUpgradeAnalyzing", False),
    "Done": ("MajorUpgradeDone", False),
    "Failed": ("MajorUpgradeFailed", True),
    "RolledBack": ("MajorUpgradeRolledBack", False),
}
# The estimate of the outage: stopping and starting the members, the pre-flight, and pg_upgrade's
# own work (the catalogue: about the same for link and copy), plus copying the data at this rate.
FIXED_OUTAGE_SECONDS = 120
COPY_BYTES_PER_SECOND = 200 * 1024 ** 2
SIZE_UNITS = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4}


def target_major(pgc):
    """The major the spec asks for (spec.postgres_major)."""
    return int(pgc["postgres_major"])


def upgrade_held(pgc):
    """A failed upgrade to the same major, for the same spec: not tried again on every reconcile
    (each try stops the members). A change of the spec, or the major_upgrade playbook, tries again."""
    upgrade = (pgc.get("status") or {}).get("upgrade") or {}
    return (upgrade.get("phase") == "Failed" and upgrade.get("to") == target_major(pgc)
            and upgrade.get("observedGeneration") == pgc.get("generation"))


def upgrade_pending(pgc):
    """Whether the reconcile has a major upgrade to run: the spec's major above the members' one."""
    return target_major(pgc) > int(pgc["postgres_version"]) and not upgrade_held(pgc)


def _size_bytes(size):
    size = str(size or "")
    for unit, factor in SIZE_UNITS.items():
        if size.endswith(unit) and size[:-len(unit)].isdigit():
            return int(size[:-len(unit)]) * factor
    return 0


def switchover_first(pgc, observed=None):
    """The leader to switch over from before the upgrade, or "": member 0's data is the one upgraded,
    as member 0 is the one the StatefulSet starts alone afterwards (a replica with no data that started
    beside it, before it took Patroni's initialize key, could bootstrap an empty cluster)."""
    leader = (observed or {}).get("leader") or ""
    return leader if leader and leader != "%s-0" % pgc["names"]["statefulset"] else ""


def major_upgrade_plan(pgc, observed=None):
    """What a major upgrade of the cluster would do, for people and for status.plan: from, to, mode,
    steps, members_restarted, claims_recreated, expected_outage_seconds (an estimate: the members'
    stop and start, the pre-flight, and a copy of spec.storageSize at 200 MiB/s in copy mode) and
    rollback. ``action`` is none when the members already run the spec's major."""
    sts = pgc["names"]["statefulset"]
    old, new = int(pgc["postgres_version"]), target_major(pgc)
    mode = pgc["spec"]["updatePolicy"]["majorUpgradeMode"]
    members = ["%s-%d" % (sts, n) for n in range(int(pgc["spec"]["replicas"]))]
    primary = "%s-0" % sts
    primary_claim = data_claim(sts, 0)
    replicas = [m for m in members if m != primary]
    claims = [data_claim(sts, pod_ordinal(m)) for m in replicas]
    if new <= old:
        return {"action": "none", "from": old, "to": new, "mode": mode, "switchover_from": switchover_first(pgc, observed),
                "primary": primary, "claim": primary_claim,
                "image": pgc.get("member_image") or pgc["spec"]["image"], "steps": [], "members_restarted": [],
                "claims_recreated": [], "expected_outage_seconds": 0, "rollback": {}}
    backups = pgc_pgbackrest_settings(pgc)["enabled"]
    switchover = switchover_first(pgc, observed)
    steps = ["switch over from %s to %s, whose data is upgraded" % (switchover, primary)] if switchover else []
    steps += [
        "stop every member (StatefulSet %s scaled to 0, Patroni paused, claims kept)" % sts,
        "Job %s: pg_upgrade --check of PostgreSQL %d to %d on claim %s; on failure the members start again "
        "on PostgreSQL %d, unchanged" % (restore_job(pgc["name"], "major-upgrade-check"), old, new, primary_claim, old),
        "Job %s: pg_upgrade --%s on claim %s%s" % (restore_job(pgc["name"], "major-upgrade"), mode, primary_claim,
                                                 ", then pgBackRest's stanza-upgrade" if backups else ""),
        "delete the replicas' claims so that they clone from the upgraded primary: %s"
        % (", ".join(claims) if claims else "none (one member)"),
        "start %s alone with image %s until it holds the leader lock (with the new system identifier), then the "
        "others" % (primary, image_for_major(pgc["spec"]["image"], new)),
        "Job %s: vacuumdb --all --analyze-in-stages against the primary"
        % restore_job(pgc["name"], "major-upgrade-analyze"),
    ]
    outage = FIXED_OUTAGE_SECONDS
    if mode == "copy":
        outage += _size_bytes(pgc["spec"]["storageSize"]) // COPY_BYTES_PER_SECOND
    return {
        "action": "upgrade",
        "from": old,
        "to": new,
        "mode": mode,
        "switchover_from": switchover,
        "primary": primary,
        "claim": primary_claim,
        "image": image_for_major(pgc["spec"]["image"], new),
        "steps": steps,
        "members_restarted": members,
        "claims_recreated": claims,
        "expected_outage_seconds": outage,
        "rollback": {
            "possible": mode == "copy",
            "until": "the first write after the upgrade" if mode == "copy" else
                     "the new major starts (link mode shares the data files with it)",
            "how": "ansible-playbook postgres.cluster.rollback_upgrade -e cluster=%s -e namespace=%s"
                   % (pgc["name"], pgc["namespace"]),
        },
    }


def rollback_plan(pgc, observed=None):
    """What the rollback_upgrade playbook would do: ``refused`` says why it cannot (empty when it
    can), from and to (the majors of the rollback: the upgrade's, the other way), primary and claim
    (the data put back), claims_recreated, and image (the old major's, the members' again)."""
    status = pgc.get("status") or {}
    upgrade = status.get("upgrade") or {}
    plan = major_upgrade_plan(pgc, observed)
    refused = ""
    if not upgrade.get("rollbackPossible"):
        refused = ("status.upgrade says no rollback is possible%s"
                   % (": " + upgrade["message"] if upgrade.get("message") else " (no major upgrade was done)"))
    elif upgrade.get("phase") not in ("Analyzing", "Done"):
        refused = "the last major upgrade is %s, not done" % upgrade.get("phase")
    elif upgrade.get("to") != pgc["postgres_version"] or not isinstance(upgrade.get("from"), int):
        refused = ("the members run PostgreSQL %s, not the %s the last upgrade went to"
                   % (pgc["postgres_version"], upgrade.get("to")))
    elif image_for_major(pgc["spec"]["image"], upgrade["from"]) == image_for_major(pgc["spec"]["image"], upgrade["to"]):
        refused = ("spec.image %s does not follow spec.postgresVersion (its tag is not a bare major): put the old "
                   "image back by hand" % pgc["spec"]["image"])
    old = upgrade.get("from") if isinstance(upgrade.get("from"), int) else pgc["postgres_version"]
    return {
        "refused": refused,
        "from": pgc["postgres_version"],
        "to": old,
        "primary": plan["primary"],
        "claim": plan["claim"],
        # Member 0's data is the one put back (the upgrade's), the others clone from it.
        "claims_recreated": [data_claim(pgc["names"]["statefulset"], n) for n in range(1, int(pgc["spec"]["replicas"]))],
        "image": image_for_major(pgc["spec"]["image"], old),
    }


def member_containers(statefulset, old_image, new_image):
    """The StatefulSet's containers that run ``old_image``, as a strategic merge patch of their
    image (by name) to ``new_image``: the members start on the major their data now has."""
    containers = ((((statefulset or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    return [{"name": c["name"], "image": new_image} for c in containers or [] if c.get("image") == old_image]


def pgc_major_upgrade_job_spec(pgc, job, old, new, mode="copy", claim="", deadline=21600):
    """The ``spec`` of a Job of a major upgrade from PostgreSQL ``old`` to ``new`` (for the rollback
    too: the upgrade's majors), run with the new major's image. The data Jobs mount ``claim``, the
    stopped primary's; the SQL Jobs log in to the primary as the superuser (certificate, and the
    password from its Secret where the spec allows it: never on a command line)."""
    if job not in COMMANDS:
        raise SpecError("unknown major upgrade job %r (one of %s)" % (job, ", ".join(sorted(COMMANDS))))
    backups = pgc_pgbackrest_settings(pgc)["enabled"]
    env = list(pgc_pgbackrest_environment(pgc)) if backups and job in DATA_JOBS else []
    env += [
        {"name": "PGC_RESULT_FILE", "value": "/dev/termination-log"},
        {"name": "PGDATA", "value": PGDATA},
        {"name": "PGC_UPGRADE_OLD_BIN", "value": BIN_DIR % int(old)},
        {"name": "PGC_UPGRADE_NEW_BIN", "value": BIN_DIR % int(new)},
        {"name": "PGC_UPGRADE_MODE", "value": mode},
        {"name": "PGC_UPGRADE_USER", "value": pgc["spec"]["credentials"]["superuser"]},
        # Empty: the cluster keeps no backups, there is no stanza to upgrade.
        {"name": "PGC_UPGRADE_STANZA", "value": pgc_pgbackrest_settings(pgc)["stanza"] if backups else ""},
    ]
    if job in SQL_JOBS:
        env += superuser_connection_env(pgc)
    pod = pgc_job_pod_spec(pgc, job, COMMANDS[job], env, data_claim=claim if job in DATA_JOBS else "",
                           image=image_for_major(pgc["spec"]["image"], new),
                           pgbackrest=backups and job in DATA_JOBS)
    return {
        # Never again by itself: each step is decided on by the role from how the last one ended.
        "backoffLimit": 0,
        "activeDeadlineSeconds": int(deadline),
        "ttlSecondsAfterFinished": 86400,
        "template": {"metadata": {"labels": pgc_backup_pod_labels(pgc, job)}, "spec": pod},
    }


def _first_line(text, limit=400):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def major_upgrade_step(pgc, upgrade, phase, message, now, **fields):
    """The status fields (``status``) and Events (``events``) of a step of a major upgrade.

    ``upgrade`` is status.upgrade so far (from, to, mode, startedAt, ...); ``fields`` adds to it
    (outageSeconds, rollbackPossible). A step that ends the upgrade (Done, Failed, RolledBack) sets
    finishedAt; the others say Upgrading as the cluster's phase."""
    if phase not in PHASES:
        raise SpecError("unknown major upgrade phase %r (one of %s)" % (phase, ", ".join(PHASES)))
    message = _first_line(message)
    # A new upgrade (its first step) replaces every field of the last one.
    after = dict.fromkeys(FIELDS) if phase == "Checking" else {}
    after.update(upgrade or {})
    after.update(fields)
    after.update(phase=phase, message=message, observedGeneration=pgc.get("generation", 0))
    if phase == "Checking" or not after.get("startedAt"):
        after["startedAt"] = now
    ended = phase in ("Done", "Failed", "RolledBack")
    after["finishedAt"] = now if ended else None
    reason, warning = EVENTS[phase]
    status = {"upgrade": after,
              "conditions": [condition(CONDITION, phase in ("Done", "RolledBack"), reason, message,
                                       pgc.get("generation", 0))]}
    if not ended:
        status.update(phase="Upgrading", message="Major upgrade from PostgreSQL %s to %s: %s"
                      % (after.get("from"), after.get("to"), message))
    return {"status": status,
            "events": [{"type": "Warning" if warning else "Normal", "reason": reason, "message": message}]}


def major_upgrade_outcome(job_result, job):
    """How a Job of the upgrade ended, from its summary (jobs.summarize_job): ``ok``, the script's
    ``result`` line (or {}), and a ``message`` for people (the script's reason, or the end of its log)."""
    job_result = job_result or {}
    result = job_result.get("result") or {}
    expected = {"major-upgrade-check": "checked", "major-upgrade": "upgraded",
                "major-upgrade-rollback": "rolled-back"}.get(job)
    ok = job_result.get("phase") == "Succeeded" and (expected is None or result.get("result") == expected)
    reason = result.get("reason") or job_result.get("message") or ""
    if ok:
        message = "Job %s succeeded" % job
    else:
        message = "Job %s failed: %s" % (job, reason or "no reason given (see the Job's pod)")
    return {"ok": ok, "result": result, "message": _first_line(message)}
