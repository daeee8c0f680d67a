# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A PostgresCluster's spec: its defaults, the normalized ``pgc`` fact, what the CRD schema cannot
check, and the cron grammar of its schedules.

Every role works from the one ``pgc`` fact built here, whether the operator runs it (from the
runtime's variables) or a person does (from the live object read by ``cluster_facts``). The
metrics server turns schedules into intervals with the same grammar the validation checks.
"""

from __future__ import annotations

import datetime
import functools

from ansible_collections.postgres.cluster.plugins.module_utils.names import (
    API_VERSION,
    CLUSTER_LABEL,
    FIELD_MANAGER,
    KIND,
    MONITOR_ROLE,
    NAME_SUFFIXES,
    PATRONI_CONFIGMAP_SUFFIXES,
    RESTORE_ANNOTATION,
    cluster_names,
    data_claim,
    labels,
    patroni_configmap,
)


class SpecError(ValueError):
    """A spec, or a value given with it, that cannot be turned into what was asked for."""


# Mirrors the CRD's defaults, for objects stored before a default existed (a unit test keeps the
# two in step).
SPEC_DEFAULTS = {
    "replicas": 1,
    "image": "ghcr.io/pgc-operator/postgres:15",
    "storageSize": "1Gi",
    "storageClassName": "",
    "backupSchedule": "",
    "backupRetention": None,
    "enableMonitoring": True,
    "configuration": {},
    "resources": {},
    "synchronous": False,
    "credentials": {},
    "volumeClaimRetention": {},
    "backup": {},
    "bootstrap": {},
}

VOLUME_CLAIM_RETENTION_DEFAULTS = {"whenScaled": "Retain", "whenDeleted": "Retain"}

CREDENTIALS_DEFAULTS = {
    "secretName": "",
    "superuser": "postgres",
    "replicationUser": "replicator",
    "appUser": "app",
    "appDatabase": "app",
}

# postgresql.conf parameters that the operator and Patroni set themselves: a value in
# spec.configuration would break replication, failover, archiving or the pods' layout.
OWNED_PARAMETERS = frozenset((
    "listen_addresses", "port", "data_directory", "hba_file", "ident_file", "config_file",
    "external_pid_file", "unix_socket_directories", "cluster_name",
    "archive_mode", "archive_command", "archive_cleanup_command", "restore_command",
    "recovery_end_command", "recovery_target", "recovery_target_action", "recovery_target_inclusive",
    "recovery_target_lsn", "recovery_target_name", "recovery_target_time", "recovery_target_timeline",
    "recovery_target_xid", "primary_conninfo", "primary_slot_name", "promote_trigger_file",
    "hot_standby", "synchronous_standby_names", "wal_log_hints",
))

# Repositories of images known to run PostgreSQL without Patroni.
IMAGES_WITHOUT_PATRONI = frozenset(("postgres", "library/postgres", "docker.io/library/postgres",
                                    "docker.io/postgres", "bitnami/postgresql", "docker.io/bitnami/postgresql"))


def _image_repository(image):
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


# --- cron ----------------------------------------------------------------------------------------
# A CronJob's grammar: five fields of values, ranges, steps, lists and names, or an @-macro.

CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (field, lowest, highest, names from the lowest value on). Day of week accepts 7 for Sunday.
CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
# Eight years and two days: from any day, two February 29ths fall within it (the 2100s aside), so
# every valid schedule gets an interval. A day costs a few operations whatever the schedule
# (about 3 ms for the whole horizon), and results are cached per schedule and day.
HORIZON_DAYS = 8 * 365 + 2 + 2


class CronError(ValueError):
    """A schedule that is not a 5-field cron expression or a known @-macro."""


def _cron_parts(text):
    parts = text.split()
    if len(parts) != 5:
        raise CronError("must have 5 fields (minute hour day-of-month month day-of-week), not %d, or be an "
                        "@-macro such as @daily" % len(parts))
    return parts


def _cron_field(value, name, low, high, names):
    """The values one field allows, and whether it is unrestricted (``*`` or ``?``)."""
    def number(text):
        if text in names:
            return low + names.index(text)
        if not text.isdigit():
            return None
        return int(text)

    values, star = set(), False
    for item in value.lower().split(","):
        base, slash, step = item.partition("/")
        if slash and (not step.isdigit() or int(step) == 0):
            raise CronError("the %s step %r must be a positive number" % (name, step))
        step = int(step) if slash else 1
        if base in ("*", "?"):
            if base == "?" and name not in ("day of month", "day of week"):
                raise CronError("? is only allowed in day of month and day of week")
            # As in the CronJob controller's parser: "*/2" restricts the field, "*" does not.
            star = star or step == 1
            first, last = low, high
        else:
            first_text, dash, last_text = base.partition("-")
            bounds = [number(first_text)] + ([number(last_text)] if dash else [])
            if None in bounds:
                raise CronError("%r is not a %s%s" % (
                    base, name, " (a number or a name such as %s)" % names[0] if names else ""))
            if any(not low <= b <= high for b in bounds):
                raise CronError("%s %r is outside %d-%d" % (name, base, low, high))
            if dash and bounds[0] > bounds[1]:
                raise CronError("the %s range %r goes backwards" % (name, base))
            first = bounds[0]
            # "5/15" runs from 5 to the end of the field.
            last = bounds[1] if dash else (high if slash else first)
        values.update(range(first, last + 1, step))
    return values, star


def cron_errors(expression, field):
    """What is wrong with a cron expression as a CronJob reads it, one message per field, each
    naming ``field``; nothing for an empty expression (no schedule)."""
    text = str(expression).strip()
    if not text or text in CRON_MACROS:
        return []
    try:
        parts = _cron_parts(text)
    except CronError as problem:
        return ["%s %r %s" % (field, text, problem)]
    errors = []
    for value, spec in zip(parts, CRON_FIELDS):
        try:
            _cron_field(value, *spec)
        except CronError as problem:
            errors.append("%s %r: %s" % (field, text, problem))
    return errors


@functools.lru_cache(maxsize=256)
def parse_cron(schedule):
    """(minutes, hours, days of month, months, days of week, dom unrestricted, dow unrestricted)
    of a schedule; CronError when it is not one."""
    text = str(schedule or "").strip()
    parts = _cron_parts(CRON_MACROS.get(text, text))
    (minutes, _), (hours, _), (doms, dom_star), (months, _), (dows, dow_star) = (
        _cron_field(part, *spec) for part, spec in zip(parts, CRON_FIELDS))
    if 7 in dows:
        dows = (dows - {7}) | {0}
    return (frozenset(minutes), frozenset(hours), frozenset(doms), frozenset(months), frozenset(dows),
            dom_star, dow_star)


def _day_matches(day, spec):
    _, _, doms, months, dows, dom_star, dow_star = spec
    if day.month not in months:
        return False
    dom = day.day in doms
    dow = (day.isoweekday() % 7) in dows
    # Cron's rule: when both day fields are restricted, a day matching either one runs.
    return (dom and dow) if (dom_star or dow_star) else (dom or dow)


@functools.lru_cache(maxsize=1024)
def _cron_interval(schedule, first_day):
    spec = parse_cron(schedule)
    minutes, hours = spec[0], spec[1]
    times = sorted(h * 60 + m for h in hours for m in minutes)
    within_day = max((b - a for a, b in zip(times, times[1:])), default=0)
    if spec[5] and spec[6] and len(spec[3]) == 12:
        # Runs every day (the common case): the night's gap is the only other one.
        return max(within_day, 1440 - times[-1] + times[0]) * 60
    longest, previous_last, runs = 0, None, 0
    for offset in range(HORIZON_DAYS):
        day = first_day + datetime.timedelta(days=offset)
        if not _day_matches(day, spec):
            continue
        start = offset * 1440
        if previous_last is not None:
            longest = max(longest, start + times[0] - previous_last)
        previous_last = start + times[-1]
        runs += len(times)
    if runs < 2:
        return None
    return max(longest, within_day) * 60


def cron_interval_seconds(schedule, today=None):
    """The longest time between two consecutive runs of ``schedule`` (UTC) from ``today`` over
    about eight years, in seconds; None when it runs fewer than twice in that time.

    Raises CronError for a schedule that is not a 5-field cron expression or @-macro.
    """
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    return _cron_interval(str(schedule).strip(), today)


# --- the spec ------------------------------------------------------------------------------------

def pgc_spec_errors(pgc):
    """Return what is wrong with a cluster's spec that the CRD schema cannot express, one
    message per problem, each naming the field."""
    spec = pgc["spec"]
    errors = []
    if _image_repository(spec["image"]) in IMAGES_WITHOUT_PATRONI:
        errors.append("spec.image %s has no Patroni, which manages replication and failover: use %s or an "
                      "image built from images/postgres" % (spec["image"], SPEC_DEFAULTS["image"]))
    configuration = spec.get("configuration") or {}
    for key in sorted(configuration):
        if key in OWNED_PARAMETERS:
            errors.append("spec.configuration.%s is set by the operator and cannot be overridden" % key)
    if str(configuration.get("wal_level", "replica")) not in ("replica", "logical"):
        errors.append("spec.configuration.wal_level must be replica or logical: streaming replicas need it")
    errors.extend(cron_errors(spec.get("backupSchedule") or "", "spec.backupSchedule"))
    logical = (spec.get("backup") or {}).get("logical") or {}
    errors.extend(cron_errors(logical.get("schedule") or "", "spec.backup.logical.schedule"))
    if logical.get("schedule") and not ((spec.get("backup") or {}).get("repository") or {}).get("s3"):
        errors.append("spec.backup.logical.schedule needs spec.backup.repository.s3: logical dumps go to object storage")
    return errors


def pgc_normalize(cluster):
    """Return the normalized ``pgc`` fact of a PostgresCluster object."""
    if not isinstance(cluster, dict):
        raise SpecError("pgc_normalize expects a PostgresCluster object, got %s" % type(cluster).__name__)
    meta = cluster.get("metadata") or {}
    name = meta.get("name")
    namespace = meta.get("namespace")
    if not name or not namespace:
        raise SpecError("pgc_normalize needs metadata.name and metadata.namespace")
    spec = dict(SPEC_DEFAULTS)
    spec.update({k: v for k, v in (cluster.get("spec") or {}).items() if v is not None})
    spec["credentials"] = {**CREDENTIALS_DEFAULTS, **(spec.get("credentials") or {})}
    spec["volumeClaimRetention"] = {**VOLUME_CLAIM_RETENTION_DEFAULTS, **(spec.get("volumeClaimRetention") or {})}
    spec["backup"] = dict(spec.get("backup") or {})
    if spec["backupSchedule"] and not spec["backup"].get("repository"):
        # A schedule with nowhere named to keep the backups: a volume of the cluster's own, served by
        # its repository host, as a schedule alone asks for.
        spec["backup"]["repository"] = {"volume": {}}
    selector = {CLUSTER_LABEL: name}
    return {
        "api_version": API_VERSION,
        "kind": KIND,
        "name": name,
        "namespace": namespace,
        "uid": meta.get("uid", ""),
        "generation": meta.get("generation", 0),
        "spec": spec,
        "status": cluster.get("status") or {},
        "names": dict(cluster_names(name),
                      # Patroni's own ConfigMaps (not the operator's), and the first member's data.
                      **{"dcs_" + kind: patroni_configmap(name, kind) for kind in PATRONI_CONFIGMAP_SUFFIXES},
                      data_claim_0=data_claim(cluster_names(name)["statefulset"], 0)),
        # The Secret with the database passwords: the user's, or the one the operator generates.
        "credentials_secret": spec["credentials"]["secretName"] or name + NAME_SUFFIXES["credentials"],
        "labels": labels(name),
        "selector": selector,
        "selector_string": ",".join("%s=%s" % kv for kv in sorted(selector.items())),
        "owner_reference": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": name,
            "uid": meta.get("uid", ""),
            "controller": True,
            "blockOwnerDeletion": True,
        },
        "field_manager": FIELD_MANAGER,
        "monitor_role": MONITOR_ROLE,
        # Set by the restore playbook while it works on the stopped members: reconciles wait.
        "restore_in_progress": (meta.get("annotations") or {}).get(RESTORE_ANNOTATION, ""),
    }
