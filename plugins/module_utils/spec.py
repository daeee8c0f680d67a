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

import copy
import datetime
import functools
import ipaddress
import re

from ansible_collections.postgres.cluster.plugins.module_utils import parameters
from ansible_collections.postgres.cluster.plugins.module_utils.scaling import scale_target
from ansible_collections.postgres.cluster.plugins.module_utils.tls import CERT_MANAGER_GROUP, CLIENT_AUTH, SUPERUSER_REMOTE_LOGIN
from ansible_collections.postgres.cluster.plugins.module_utils.names import (
    API_VERSION,
    APPROVE_PLAN_ANNOTATION,
    APPROVE_UPDATE_ANNOTATION,
    CLUSTER_LABEL,
    FIELD_MANAGER,
    KIND,
    MONITOR_ROLE,
    NAME_SUFFIXES,
    PATRONI_CONFIGMAP_SUFFIXES,
    PRIMARY_STOPPED_ANNOTATION,
    PROMOTED_ANNOTATION,
    RESTORE_ANNOTATION,
    cluster_names,
    data_claim,
    derived_names,
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
    # NetworkPolicy peers: who reaches PostgreSQL (none: every pod of the namespace) and who scrapes
    # the exporter.
    "allowedClients": [],
    "metricsClients": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    "audit": {},
    "tls": {},
    "updatePolicy": {},
    # The PostgreSQL major the cluster runs; raising it runs pg_upgrade (module_utils/upgrades.py).
    # Unset, the major of the image's tag (15 for the default image): a spec from before this field
    # keeps the major its image runs.
    "postgresVersion": None,
}

# mode: automatic carries out every change at once (and records its plan); supervised waits for
# approval of a change that restarts, removes or switches over members or grows their claims.
# majorUpgradeMode: how pg_upgrade moves the data (copy keeps the old data whole for a rollback;
# link is faster and needs no second copy, and ends the rollback once the new major starts).
UPDATE_POLICY_DEFAULTS = {"canary": 0, "mode": "automatic", "majorUpgradeMode": "copy"}
UPDATE_MODES = ("automatic", "supervised")
MAJOR_UPGRADE_MODES = ("copy", "link")
# The majors an image of images/postgres is built for, and pg_upgrade moves between.
SUPPORTED_MAJORS = (13, 14, 15, 16, 17)

VOLUME_CLAIM_RETENTION_DEFAULTS = {"whenScaled": "Retain", "whenDeleted": "Retain"}

CREDENTIALS_DEFAULTS = {
    "secretName": "",
    "superuser": "postgres",
    "replicationUser": "replicator",
    "appUser": "app",
    "appDatabase": "app",
    "superuserRemoteLogin": "certificate",
}

AUDIT_DEFAULTS = {"enabled": False, "log": ["ddl", "role"], "logParameter": False}
# PostgreSQL's server certificate: a Secret of the user's (tls.crt, tls.key, ca.crt), one cert-manager
# issues (issuerRef), or the operator's; and how clients other than the superuser log in.
TLS_DEFAULTS = {"secretName": "", "issuerRef": None, "clientAuth": "password"}
# spec.tls.issuerRef: the cert-manager issuer of the server certificate; name has no default.
ISSUER_REF_DEFAULTS = {"kind": "Issuer", "group": CERT_MANAGER_GROUP}
ISSUER_REF_FIELDS = ("name",) + tuple(ISSUER_REF_DEFAULTS)
ISSUER_KINDS = ("Issuer", "ClusterIssuer")
# pgaudit's statement classes (pgaudit.log).
AUDIT_CLASSES = ("read", "write", "function", "role", "ddl", "misc", "misc_set", "all")

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
    # With a library set, PostgreSQL 15 ignores archive_command (the operator's pgBackRest).
    "archive_library",
    # TLS from outside the pod, with the server certificate of spec.tls (module_utils/tls.py).
    "ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file",
))
# Parameters that spec.audit sets, by the field that sets them.
AUDIT_PARAMETERS = {"pgaudit.log": "spec.audit.log", "pgaudit.log_parameter": "spec.audit.logParameter"}
# Parameters whose value is a shell command the postmaster runs.
SHELL_PARAMETERS = frozenset(("ssl_passphrase_command",))

# Repositories of images known to run PostgreSQL without Patroni.
IMAGES_WITHOUT_PATRONI = frozenset(("postgres", "library/postgres", "docker.io/library/postgres",
                                    "docker.io/postgres", "bitnami/postgresql", "docker.io/bitnami/postgresql"))


# An image reference with a tag, a digest or both: [registry[:port]/]path[:tag][@digest]. Without
# either, the kubelet would pull whatever :latest is that day. The CRD's spec.image has the same
# pattern (a unit test keeps the two equal).
IMAGE_PATTERN = (
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:[0-9]+)?/)?"
    r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha(256:[a-f0-9]{64}|512:[a-f0-9]{128}))$"
)
IMAGE_RE = re.compile(IMAGE_PATTERN)


def _image_repository(image):
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


def _image_tag(image):
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


BARE_MAJOR_RE = re.compile(r"^\d+$")


def _image_major(image):
    """The leading number of an image's tag (:15, :16.4-bookworm), or None."""
    match = re.match(r"\d+", _image_tag(str(image or "")))
    return int(match.group(0)) if match else None


def _version(spec):
    version = spec.get("postgresVersion")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def postgres_major(spec):
    """The PostgreSQL major the spec asks for, whose parameters spec.configuration is checked
    against: spec.postgresVersion where the image follows it (a tag that is a bare major, such as
    the default image's), else the leading number of the image's own tag (:16.4-bookworm, or a
    digest's tag), else spec.postgresVersion, else 15."""
    image = str(spec.get("image") or "")
    if _follows_version(image) or _image_major(image) is None:
        return _version(spec) or parameters.DEFAULT_MAJOR
    return _image_major(image)


def _follows_version(image):
    """Whether an image follows spec.postgresVersion: its tag is a bare major, and no digest pins it."""
    return "@" not in image and bool(BARE_MAJOR_RE.match(_image_tag(image)))
    return _version(spec) or parameters.DEFAULT_MAJOR


def image_for_major(image, major):
    """The image of the members for a major: an image whose tag is a bare major (the default
    ghcr.io/pgc-operator/postgres:15) is that repository with the major as its tag; any other image
    (a longer tag, a digest) is taken as it is."""
    image = str(image or "")
    if not _follows_version(image):
        return image
    return "%s:%d" % (_image_repository(image), int(major))


def running_major(spec, status):
    """The major the members run: status.postgresVersion once the operator wrote it; for a cluster
    from before that field, the major of the image it was made with (its tag), else the spec's."""
    version = (status or {}).get("postgresVersion")
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    return _image_major(spec.get("image")) or postgres_major(spec)


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

# A cluster's name becomes Services (DNS labels), the label every member carries and the prefix of
# every object it owns; the CRD's rule says the same.
CLUSTER_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
CLUSTER_NAME_LIMIT = 40
ROLE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Role names starting with pg_ are PostgreSQL's, and MONITOR_ROLE is trusted on the pods' own socket
# without a password; initdb creates these databases.
RESERVED_DATABASES = ("postgres", "template0", "template1")
OBJECT_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
TARGET_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)$")
BACKUP_LABEL_RE = re.compile(r"^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Label selectors (metav1.LabelSelector) as Kubernetes checks them.
LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
PEER_FIELDS = ("podSelector", "namespaceSelector", "ipBlock")

# The objects of names.derived_names: (what each is, the feature that needs it, None for every
# cluster).
DERIVED_OBJECTS = {
    "label": ("the label value", None),
    "statefulset": ("the StatefulSet", None),
    "service_rw": ("the Service", None),
    "service_ro": ("the Service", None),
    "service_headless": ("the Service", None),
    "service_metrics": ("the Service", "spec.enableMonitoring"),
    "repo_host": ("the repository host's Service", "a volume repository"),
    "backup_cronjob": ("the CronJob", "spec.backupSchedule"),
    "logical_cronjob": ("the CronJob", "spec.backup.logical.schedule"),
    "drill_cronjob": ("the CronJob", "spec.backup.drill.schedule"),
    "restore_check": ("the Job", "restores (playbooks/restore.yml)"),
    "restore_restore": ("the Job", "restores (playbooks/restore.yml)"),
    "restore_logical-restore": ("the Job", "restores (playbooks/restore.yml)"),
}


def describe_type(value):
    """What a spec value is, in a message: a string, a mapping... isinstance, not type(): the
    operator's strings are str subclasses (Ansible's unsafe text)."""
    for kind, name in ((bool, "a boolean"), (dict, "a mapping"), (list, "a list"), (str, "a string"),
                       ((int, float), "a number"), (type(None), "null")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _field(parent, key):
    """parent.key, or parent[<key>] for a key that is not a plain word (it may hold a line break)."""
    key = str(key)
    return "%s.%s" % (parent, key) if re.fullmatch(r"[A-Za-z0-9_.-]+", key) else "%s[%r]" % (parent, key)


def _control_errors(value, field):
    """Every string of the spec, keys included, free of line breaks, NUL and other control
    characters: each may end up in a config file, an environment variable or a command line."""
    if isinstance(value, str):
        return ["%s must not contain a line break, a NUL or another control character" % field] \
            if CONTROL_RE.search(value) else []
    errors = []
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            child = _field(field, key)
            if CONTROL_RE.search(str(key)):
                errors.append("%s: the key must not contain a line break, a NUL or another control character" % child)
            else:
                errors += _control_errors(value[key], child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            errors += _control_errors(item, "%s[%d]" % (field, index))
    return errors


def _unknown_fields(mapping, known, field):
    return ["%s is not a field of %s" % (_field(field, key), field) for key in sorted(mapping, key=str)
            if key not in known]


def _image_errors(image):
    if not isinstance(image, str) or not image:
        return ["spec.image must be an image reference such as %s" % SPEC_DEFAULTS["image"]]
    errors = []
    if not IMAGE_RE.fullmatch(image):
        errors.append("spec.image %r must name a tag or a digest, such as %s or <image>@sha256:<digest>"
                      % (image, SPEC_DEFAULTS["image"]))
    if _image_repository(image) in IMAGES_WITHOUT_PATRONI:
        errors.append("spec.image %s has no Patroni, which manages replication and failover: use %s or an "
                      "image built from images/postgres" % (image, SPEC_DEFAULTS["image"]))
    return errors


def _configuration_errors(configuration, major):
    if not isinstance(configuration, dict):
        return ["spec.configuration must be a mapping of parameter names to values, not %s" % describe_type(configuration)]
    errors = []
    seen = {}
    # PostgreSQL folds parameter names to lower case: WAL_LEVEL is wal_level.
    for key in sorted(configuration, key=str):
        field = _field("spec.configuration", key)
        if not isinstance(key, str) or not parameters.NAME_RE.fullmatch(key):
            errors.append("%s: %s" % (field, parameters.name_error(key, major)))
            continue
        lower = key.lower()
        if lower in seen:
            errors.append("%s and spec.configuration.%s name the same parameter" % (field, seen[lower]))
            continue
        seen[lower] = key
        if lower in OWNED_PARAMETERS:
            errors.append("%s is set by the operator and cannot be overridden" % field)
        elif lower in AUDIT_PARAMETERS:
            errors.append("%s is set from %s" % (field, AUDIT_PARAMETERS[lower]))
        elif lower in SHELL_PARAMETERS:
            errors.append("%s runs a shell command in every member and cannot be set" % field)
        else:
            errors += ["%s: %s" % (field, problem) for problem in parameters.parameter_errors(key, configuration[key], major)]
    wal_level = configuration.get(seen.get("wal_level"), "replica")
    if str(wal_level).lower() not in ("replica", "logical"):
        errors.append("spec.configuration.wal_level must be replica or logical: streaming replicas need it")
    return errors


def _name_errors(name, spec):
    """The cluster's name, and every name made from it that the spec's features need, within what
    Kubernetes takes."""
    if not CLUSTER_NAME_RE.fullmatch(name) or len(name) > CLUSTER_NAME_LIMIT:
        return ["metadata.name %r must be at most %d characters, start with a lowercase letter, contain only "
                "lowercase letters, digits and '-', and end with a letter or digit" % (name, CLUSTER_NAME_LIMIT)]
    backup = spec.get("backup") if isinstance(spec.get("backup"), dict) else {}
    logical = backup.get("logical") if isinstance(backup.get("logical"), dict) else {}
    drill = backup.get("drill") if isinstance(backup.get("drill"), dict) else {}
    repository = backup.get("repository") if isinstance(backup.get("repository"), dict) else {}
    wanted = {
        None: True,
        "spec.enableMonitoring": bool(spec.get("enableMonitoring")),
        "a volume repository": repository.get("volume") is not None,
        "spec.backupSchedule": bool(spec.get("backupSchedule")),
        "spec.backup.logical.schedule": bool(logical.get("schedule")),
        "spec.backup.drill.schedule": bool(drill.get("schedule")),
        "restores (playbooks/restore.yml)": bool(repository),
    }
    errors = []
    for key, derived, limit in derived_names(name):
        what, feature = DERIVED_OBJECTS.get(key, ("the object", None))
        if len(derived) <= limit or not wanted[feature]:
            continue
        longest = limit - (len(derived) - len(name))
        errors.append("metadata.name %s is too long%s: %s %s would have %d characters, more than the %d Kubernetes "
                      "allows; use a name of at most %d characters" % (
                          name, " for " + feature if feature else "", what, derived, len(derived), limit, longest))
    return errors


def _credentials_errors(credentials):
    if not isinstance(credentials, dict):
        return ["spec.credentials must be a mapping, not %s" % describe_type(credentials)]
    errors = _unknown_fields(credentials, CREDENTIALS_DEFAULTS, "spec.credentials")
    roles = {}
    for key in ("superuser", "replicationUser", "appUser", "appDatabase"):
        value = credentials.get(key)
        field = "spec.credentials." + key
        if not isinstance(value, str) or not ROLE_NAME_RE.fullmatch(value):
            errors.append("%s %r must be a lowercase name of at most 63 letters, digits and underscores" % (field, value))
        elif value.startswith("pg_") or value == MONITOR_ROLE:
            errors.append("%s %s is reserved (pg_ names are PostgreSQL's, %s the exporter's)" % (field, value, MONITOR_ROLE))
        elif key == "appDatabase":
            if value in RESERVED_DATABASES:
                errors.append("%s %s is one of the server's own databases (%s)" % (field, value, ", ".join(RESERVED_DATABASES)))
        elif value in roles:
            errors.append("%s and spec.credentials.%s are the same role %s: each needs its own" % (field, roles[value], value))
        else:
            roles[value] = key
    secret = credentials.get("secretName")
    if not isinstance(secret, str) or (secret and (len(secret) > 253 or not OBJECT_NAME_RE.fullmatch(secret))):
        errors.append("spec.credentials.secretName %r is not a Kubernetes object name" % (secret,))
    errors += _choice_errors(credentials.get("superuserRemoteLogin"), SUPERUSER_REMOTE_LOGIN,
                             "spec.credentials.superuserRemoteLogin")
    return errors


def _choice_errors(value, choices, field):
    """A value of an enumeration; None is its default."""
    if value is None or (isinstance(value, str) and value in choices):
        return []
    return ["%s must be one of %s, not %r" % (field, ", ".join(choices), value)]


def _backup_errors(pgc):
    """spec.backup and spec.bootstrap.fromBackup: their shape first, then what the backup settings
    make of them."""
    from ansible_collections.postgres.cluster.plugins.module_utils import pgbackrest  # it imports this module

    spec = pgc["spec"]
    errors = []
    backup = spec.get("backup")
    if not isinstance(backup, dict):
        return ["spec.backup must be a mapping, not %s" % describe_type(backup)]
    if backup.get("repository") is not None:
        errors += pgbackrest.repository_errors(backup["repository"], "spec.backup.repository")
    if backup.get("encryption") is not None and not isinstance(backup["encryption"], bool):
        errors.append("spec.backup.encryption must be true or false, not %r" % (backup["encryption"],))
    secret = backup.get("encryptionSecretName")
    if secret and (not isinstance(secret, str) or not OBJECT_NAME_RE.fullmatch(secret)):
        errors.append("spec.backup.encryptionSecretName %r is not a Kubernetes object name" % (secret,))
    bootstrap = spec.get("bootstrap")
    if not isinstance(bootstrap, dict):
        return errors + ["spec.bootstrap must be a mapping, not %s" % describe_type(bootstrap)]
    errors += _unknown_fields(bootstrap, ("fromBackup",), "spec.bootstrap")
    source = bootstrap.get("fromBackup")
    if source is not None:
        errors += _from_backup_errors(source, pgbackrest)
    if errors:
        return errors
    # A source without its repository named: the reconcile reads it from the source cluster
    # (restore/tasks/from_backup.yml) before anything uses it.
    source_named = source is None or bool(source.get("repository"))
    try:
        pgbackrest.pgc_pgbackrest_environment(pgc)
        if source_named:
            pgbackrest.pgc_pgbackrest_source_environment(pgc)
        pgbackrest.pgc_pgbackrest_volumes(pgc, source=source_named)
    except SpecError as problem:
        errors.append(str(problem))
    return errors


def _from_backup_errors(source, pgbackrest):
    field = "spec.bootstrap.fromBackup"
    if not isinstance(source, dict):
        return ["%s must be a mapping, not %s" % (field, describe_type(source))]
    errors = _unknown_fields(source, ("cluster", "repository", "encryption", "encryptionSecretName", "targetTime",
                                      "backup"), field)
    cluster = source.get("cluster")
    if not isinstance(cluster, str) or not CLUSTER_NAME_RE.fullmatch(cluster) or len(cluster) > CLUSTER_NAME_LIMIT:
        errors.append("%s.cluster %r must be the name of a PostgresCluster" % (field, cluster))
    if source.get("repository") is not None:
        errors += pgbackrest.repository_errors(source["repository"], field + ".repository")
    if source.get("encryption") is not None and not isinstance(source["encryption"], bool):
        errors.append("%s.encryption must be true or false, not %r" % (field, source["encryption"]))
    secret = source.get("encryptionSecretName")
    if secret and (not isinstance(secret, str) or not OBJECT_NAME_RE.fullmatch(secret)):
        errors.append("%s.encryptionSecretName %r is not a Kubernetes object name" % (field, secret))
    target = source.get("targetTime")
    if target is not None and (not isinstance(target, str) or not TARGET_TIME_RE.fullmatch(target)):
        errors.append("%s.targetTime %r must be a time with its zone, such as 2026-01-31T12:00:00Z" % (field, target))
    label = source.get("backup")
    if label is not None and (not isinstance(label, str) or not BACKUP_LABEL_RE.fullmatch(label)):
        errors.append("%s.backup %r must be a pgBackRest backup label, such as 20260131-120000F" % (field, label))
    if target and label:
        errors.append("%s takes targetTime or backup, not both" % field)
    return errors


def _label_name_errors(key, field):
    prefix, slash, name = str(key).rpartition("/")
    if not isinstance(key, str) or (slash and (not prefix or len(prefix) > 253 or not OBJECT_NAME_RE.fullmatch(prefix))) \
            or len(name) > 63 or not LABEL_NAME_RE.fullmatch(name):
        return ["%s: %r is not a label key ([prefix/]name, the name at most 63 letters, digits, '-', '_' or '.')"
                % (field, key)]
    return []


def _label_value_errors(value, field):
    if not isinstance(value, str) or (value and (len(value) > 63 or not LABEL_NAME_RE.fullmatch(value))):
        return ["%s: %r is not a label value (at most 63 letters, digits, '-', '_' or '.')" % (field, value)]
    return []


def _selector_errors(selector, field):
    if not isinstance(selector, dict):
        return ["%s must be a label selector (matchLabels, matchExpressions), not %s" % (field, describe_type(selector))]
    errors = _unknown_fields(selector, ("matchLabels", "matchExpressions"), field)
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        errors.append("%s.matchLabels must be a mapping of labels, not %s" % (field, describe_type(match_labels)))
    else:
        for key in sorted(match_labels, key=str):
            errors += _label_name_errors(key, field + ".matchLabels")
            errors += _label_value_errors(match_labels[key], _field(field + ".matchLabels", key))
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        return errors + ["%s.matchExpressions must be a list, not %s" % (field, describe_type(expressions))]
    for index, expression in enumerate(expressions):
        where = "%s.matchExpressions[%d]" % (field, index)
        if not isinstance(expression, dict):
            errors.append("%s must be a mapping of key, operator and values" % where)
            continue
        errors += _unknown_fields(expression, ("key", "operator", "values"), where)
        errors += _label_name_errors(expression.get("key"), where + ".key")
        operator, values = expression.get("operator"), expression.get("values")
        if operator not in SELECTOR_OPERATORS:
            errors.append("%s.operator must be one of %s, not %r" % (where, ", ".join(SELECTOR_OPERATORS), operator))
        elif values is not None and not isinstance(values, list):
            errors.append("%s.values must be a list, not %s" % (where, describe_type(values)))
        elif operator in ("In", "NotIn") and not values:
            errors.append("%s.values must not be empty with %s" % (where, operator))
        elif operator in ("Exists", "DoesNotExist") and values:
            errors.append("%s.values must be empty with %s" % (where, operator))
        else:
            for position, value in enumerate(values or []):
                errors += _label_value_errors(value, "%s.values[%d]" % (where, position))
    return errors


def _network(text, field):
    """An IP network from a CIDR; a message when it is not one."""
    if not isinstance(text, str) or "/" not in text:
        return None, "%s %r is not a CIDR such as 10.0.0.0/8" % (field, text)
    try:
        return ipaddress.ip_network(text, strict=False), None
    except ValueError:
        return None, "%s %r is not a CIDR such as 10.0.0.0/8" % (field, text)


def _peers_errors(peers, field):
    """A list of NetworkPolicy peers: each a podSelector and/or namespaceSelector, or an ipBlock."""
    if not isinstance(peers, list):
        return ["%s must be a list of NetworkPolicy peers, not %s" % (field, describe_type(peers))]
    errors = []
    for index, peer in enumerate(peers):
        where = "%s[%d]" % (field, index)
        if not isinstance(peer, dict):
            errors.append("%s must be a mapping of podSelector, namespaceSelector or ipBlock, not %s" % (where, describe_type(peer)))
            continue
        errors += _unknown_fields(peer, PEER_FIELDS, where)
        given = [k for k in PEER_FIELDS if peer.get(k) is not None]
        if not given:
            errors.append("%s needs a podSelector, a namespaceSelector or an ipBlock" % where)
        elif "ipBlock" in given and len(given) > 1:
            errors.append("%s takes an ipBlock or selectors, not both" % where)
        for key in ("podSelector", "namespaceSelector"):
            if peer.get(key) is not None:
                errors += _selector_errors(peer[key], "%s.%s" % (where, key))
        block = peer.get("ipBlock")
        if block is None:
            continue
        if not isinstance(block, dict):
            errors.append("%s.ipBlock must be a mapping of cidr and except, not %s" % (where, describe_type(block)))
            continue
        errors += _unknown_fields(block, ("cidr", "except"), where + ".ipBlock")
        network, problem = _network(block.get("cidr"), where + ".ipBlock.cidr")
        if problem:
            errors.append(problem)
        excepted = block.get("except") or []
        if not isinstance(excepted, list):
            errors.append("%s.ipBlock.except must be a list of CIDRs, not %s" % (where, describe_type(excepted)))
            continue
        for position, text in enumerate(excepted):
            inner, problem = _network(text, "%s.ipBlock.except[%d]" % (where, position))
            if problem:
                errors.append(problem)
            elif network is not None and (inner.version != network.version or not inner.subnet_of(network)
                                          or inner.prefixlen <= network.prefixlen):
                errors.append("%s.ipBlock.except[%d] %s must be a smaller network inside %s" % (
                    where, position, text, block["cidr"]))
    return errors


def _audit_errors(audit):
    if not isinstance(audit, dict):
        return ["spec.audit must be a mapping, not %s" % describe_type(audit)]
    errors = _unknown_fields(audit, AUDIT_DEFAULTS, "spec.audit")
    for key in ("enabled", "logParameter"):
        if not isinstance(audit.get(key), bool):
            errors.append("spec.audit.%s must be true or false, not %r" % (key, audit.get(key)))
    classes = audit.get("log")
    if not isinstance(classes, list):
        return errors + ["spec.audit.log must be a list of pgaudit classes, not %s" % describe_type(classes)]
    for index, name in enumerate(classes):
        if name not in AUDIT_CLASSES:
            errors.append("spec.audit.log[%d] %r is not a pgaudit class (%s)" % (index, name, ", ".join(AUDIT_CLASSES)))
        elif name in classes[:index]:
            errors.append("spec.audit.log[%d] %s is listed twice" % (index, name))
    return errors


def _update_policy_errors(policy):
    if not isinstance(policy, dict):
        return ["spec.updatePolicy must be a mapping, not %s" % describe_type(policy)]
    errors = _unknown_fields(policy, UPDATE_POLICY_DEFAULTS, "spec.updatePolicy")
    canary = policy.get("canary")
    if isinstance(canary, bool) or not isinstance(canary, int) or canary < 0:
        errors.append("spec.updatePolicy.canary must be a whole number of replicas, 0 or more, not %r" % (canary,))
    return (errors + _choice_errors(policy.get("mode", "automatic"), UPDATE_MODES, "spec.updatePolicy.mode")
            + _choice_errors(policy.get("majorUpgradeMode", "copy"), MAJOR_UPGRADE_MODES,
                             "spec.updatePolicy.majorUpgradeMode"))


def _postgres_version_errors(pgc):
    """spec.postgresVersion (or the major of an image whose tag names one, which decides): a
    supported major, never older than the one the members run (a downgrade cannot be done on the
    data; the rollback_upgrade playbook undoes an upgrade)."""
    spec = pgc["spec"]
    version = spec.get("postgresVersion")
    if _version(spec) is None or version not in SUPPORTED_MAJORS:
        return ["spec.postgresVersion %r is not a supported PostgreSQL major: one of %s"
                % (version, ", ".join(str(m) for m in SUPPORTED_MAJORS))]
    wanted = postgres_major(spec)
    if wanted != version:
        return ["spec.image %s is PostgreSQL %d but spec.postgresVersion is %d: set spec.postgresVersion to %d, or use "
                "an image whose tag is the bare major, which follows spec.postgresVersion (such as %s)"
                % (spec.get("image"), wanted, version, wanted, image_for_major(SPEC_DEFAULTS["image"], version))]
    if wanted not in SUPPORTED_MAJORS:
        return ["spec.image %s is PostgreSQL %d, not a supported major: one of %s"
                % (spec.get("image"), wanted, ", ".join(str(m) for m in SUPPORTED_MAJORS))]
    running = running_major(spec, pgc.get("status"))
    if wanted < running:
        return ["spec.postgresVersion %d is older than PostgreSQL %d, which the members run: a major cannot be "
                "downgraded in place (to undo an upgrade, run the rollback_upgrade playbook while status.upgrade "
                "says rollbackPossible); set spec.postgresVersion back to %d" % (wanted, running, running)]
    return []


def _tls_errors(tls):
    if not isinstance(tls, dict):
        return ["spec.tls must be a mapping, not %s" % describe_type(tls)]
    errors = _unknown_fields(tls, TLS_DEFAULTS, "spec.tls")
    secret = tls.get("secretName")
    if secret and (not isinstance(secret, str) or not OBJECT_NAME_RE.fullmatch(secret)):
        errors.append("spec.tls.secretName %r is not a Kubernetes object name" % (secret,))
    errors += _choice_errors(tls.get("clientAuth"), CLIENT_AUTH, "spec.tls.clientAuth")
    return errors + _issuer_ref_errors(tls)


def _issuer_ref_errors(tls):
    """spec.tls.issuerRef: an Issuer or ClusterIssuer of cert-manager, instead of spec.tls.secretName."""
    ref = tls.get("issuerRef")
    if ref is None:
        return []
    if not isinstance(ref, dict):
        return ["spec.tls.issuerRef must be a mapping of name, kind and group, not %s" % describe_type(ref)]
    errors = _unknown_fields(ref, ISSUER_REF_FIELDS, "spec.tls.issuerRef")
    if tls.get("secretName"):
        errors.append("spec.tls.secretName and spec.tls.issuerRef exclude each other: name the Secret of a "
                      "certificate, or the issuer that cert-manager signs one with, not both")
    name, kind, group = ref.get("name"), ref.get("kind"), ref.get("group")
    if not isinstance(name, str) or not name or len(name) > 253 or not OBJECT_NAME_RE.fullmatch(name):
        errors.append("spec.tls.issuerRef.name %r is not a Kubernetes object name: the name of an Issuer or "
                      "ClusterIssuer is required" % (name,))
    if not isinstance(kind, str) or kind not in ISSUER_KINDS:
        errors.append("spec.tls.issuerRef.kind must be one of %s, not %r" % (", ".join(ISSUER_KINDS), kind))
    if not isinstance(group, str) or len(group) > 253 or not OBJECT_NAME_RE.fullmatch(group):
        errors.append("spec.tls.issuerRef.group %r is not an API group such as %s" % (group, CERT_MANAGER_GROUP))
    return errors


def pgc_spec_errors(pgc):
    """Return what is wrong with a cluster's spec that the CRD schema cannot express (and what it
    does, for a spec that never went through the API server), one message per problem, each naming
    the field. Never raises: a spec of the wrong shape gets messages too."""
    spec = pgc["spec"]
    errors = _control_errors({k: v for k, v in spec.items() if k != "configuration"}, "spec")
    checks = (
        lambda: _name_errors(pgc["name"], spec),
        lambda: _image_errors(spec.get("image")),
        lambda: _configuration_errors(spec.get("configuration"), postgres_major(spec)),
        lambda: _credentials_errors(spec.get("credentials")),
        lambda: cron_errors(spec.get("backupSchedule") or "", "spec.backupSchedule"),
        lambda: _logical_errors(spec),
        lambda: _drill_errors(spec),
        lambda: _backup_errors(pgc),
        lambda: _peers_errors(spec.get("allowedClients"), "spec.allowedClients"),
        lambda: _peers_errors(spec.get("metricsClients"), "spec.metricsClients"),
        lambda: _audit_errors(spec.get("audit")),
        lambda: _tls_errors(spec.get("tls")),
        lambda: _update_policy_errors(spec.get("updatePolicy")),
        lambda: _postgres_version_errors(pgc),
    )
    for check in checks:
        try:
            errors += check()
        except (AttributeError, KeyError, TypeError, ValueError) as problem:
            # A shape the checks did not foresee: refused all the same.
            errors.append("spec cannot be read: %s" % problem)
    return errors


def _logical_errors(spec):
    backup = spec.get("backup") if isinstance(spec.get("backup"), dict) else {}
    logical = backup.get("logical") or {}
    if not isinstance(logical, dict):
        return ["spec.backup.logical must be a mapping, not %s" % describe_type(logical)]
    errors = cron_errors(logical.get("schedule") or "", "spec.backup.logical.schedule")
    repository = backup.get("repository") if isinstance(backup.get("repository"), dict) else {}
    if logical.get("schedule") and not repository.get("s3"):
        errors.append("spec.backup.logical.schedule needs spec.backup.repository.s3: logical dumps go to object storage")
    return errors


# The longest SQL check of a restore drill (spec.backup.drill.check); the CRD says the same.
DRILL_CHECK_LIMIT = 4096
DRILL_FIELDS = ("schedule", "check", "scratchSize")
SCRATCH_SIZE_RE = re.compile(r"^\d+(Ki|Mi|Gi|Ti)$")


def _drill_errors(spec):
    """spec.backup.drill: a schedule, an optional SQL check, and a backup repository to drill."""
    backup = spec.get("backup") if isinstance(spec.get("backup"), dict) else {}
    drill = backup.get("drill")
    if drill is None:
        return []
    if not isinstance(drill, dict):
        return ["spec.backup.drill must be a mapping, not %s" % describe_type(drill)]
    errors = _unknown_fields(drill, DRILL_FIELDS, "spec.backup.drill")
    schedule = drill.get("schedule")
    if not isinstance(schedule, str) or not schedule.strip():
        errors.append("spec.backup.drill.schedule is required: a cron expression such as \"0 4 * * 0\"")
    else:
        errors += cron_errors(schedule, "spec.backup.drill.schedule")
    check = drill.get("check")
    if check is not None and not isinstance(check, str):
        errors.append("spec.backup.drill.check must be a string of SQL, not %s" % describe_type(check))
    elif check and len(check) > DRILL_CHECK_LIMIT:
        errors.append("spec.backup.drill.check has %d characters, more than %d" % (len(check), DRILL_CHECK_LIMIT))
    elif check and "\x00" in check:
        errors.append("spec.backup.drill.check must not contain a NUL character")
    size = drill.get("scratchSize")
    if size is not None and (not isinstance(size, str) or not SCRATCH_SIZE_RE.fullmatch(size)):
        errors.append("spec.backup.drill.scratchSize %r must be a size such as 20Gi (Ki, Mi, Gi or Ti)" % (size,))
    repository = backup.get("repository")
    if not repository and not spec.get("backupSchedule"):
        errors.append("spec.backup.drill needs backups to restore: set spec.backup.repository (and "
                      "spec.backupSchedule)")
    return errors


def _merged_defaults(value, defaults, field):
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise SpecError("%s must be a mapping, not %s" % (field, describe_type(value)))
    return {**copy.deepcopy(defaults), **{k: v for k, v in value.items() if v is not None}}


def pgc_normalize(cluster):
    """Return the normalized ``pgc`` fact of a PostgresCluster object."""
    if not isinstance(cluster, dict):
        raise SpecError("pgc_normalize expects a PostgresCluster object, got %s" % type(cluster).__name__)
    meta = cluster.get("metadata") or {}
    name = meta.get("name")
    namespace = meta.get("namespace")
    if not name or not namespace:
        raise SpecError("pgc_normalize needs metadata.name and metadata.namespace")
    given = cluster.get("spec") or {}
    if not isinstance(given, dict):
        raise SpecError("spec must be a mapping, not %s" % describe_type(given))
    # Copies: the defaults' lists and mappings are never shared with a fact.
    spec = copy.deepcopy(SPEC_DEFAULTS)
    spec.update({k: v for k, v in given.items() if v is not None})
    spec["credentials"] = _merged_defaults(spec["credentials"], CREDENTIALS_DEFAULTS, "spec.credentials")
    spec["volumeClaimRetention"] = _merged_defaults(spec["volumeClaimRetention"], VOLUME_CLAIM_RETENTION_DEFAULTS,
                                                    "spec.volumeClaimRetention")
    spec["audit"] = _merged_defaults(spec["audit"], AUDIT_DEFAULTS, "spec.audit")
    spec["tls"] = _merged_defaults(spec["tls"], TLS_DEFAULTS, "spec.tls")
    spec["updatePolicy"] = _merged_defaults(spec["updatePolicy"], UPDATE_POLICY_DEFAULTS, "spec.updatePolicy")
    if isinstance(spec["tls"]["issuerRef"], dict):
        spec["tls"]["issuerRef"] = _merged_defaults(spec["tls"]["issuerRef"], ISSUER_REF_DEFAULTS, "spec.tls.issuerRef")
    spec["backup"] = _merged_defaults(spec["backup"], {}, "spec.backup")
    if spec["postgresVersion"] is None:
        spec["postgresVersion"] = _image_major(spec["image"]) or parameters.DEFAULT_MAJOR
    if spec["backupSchedule"] and not spec["backup"].get("repository"):
        # A schedule with nowhere named to keep the backups: a volume of the cluster's own, served by
        # its repository host, as a schedule alone asks for.
        spec["backup"]["repository"] = {"volume": {}}
    # A scale-down (a HorizontalPodAutoscaler's too) stops at the synchronous quorum: every role
    # reads the members to run from spec.replicas, what was asked is in ``scale``.
    scale = scale_target(spec, (cluster.get("status") or {}).get("currentReplicas"))
    spec["replicas"] = scale["replicas"]
    selector = {CLUSTER_LABEL: name}
    return {
        "api_version": API_VERSION,
        "kind": KIND,
        "name": name,
        "namespace": namespace,
        "uid": meta.get("uid", ""),
        "generation": meta.get("generation", 0),
        "spec": spec,
        # The PostgreSQL major whose parameters spec.configuration is checked against.
        "postgres_major": postgres_major(spec),
        # The major the members run, and their image: the spec's major once an upgrade to it is done.
        "postgres_version": running_major(spec, cluster.get("status")),
        "member_image": image_for_major(spec["image"], running_major(spec, cluster.get("status"))),
        "status": cluster.get("status") or {},
        "scale": scale,
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
        # Set by the approve playbook: the template revision whose held canary update goes on, and
        # the generation whose plan is carried out.
        "update_approved": (meta.get("annotations") or {}).get(APPROVE_UPDATE_ANNOTATION, ""),
        "plan_approved": (meta.get("annotations") or {}).get(APPROVE_PLAN_ANNOTATION, ""),
        # The stamps of Patroni's callbacks that date a failover's window.
        "callback_stamps": {key: (meta.get("annotations") or {}).get(annotation, "")
                            for key, annotation in (("promoted", PROMOTED_ANNOTATION),
                                                    ("stopped", PRIMARY_STOPPED_ANNOTATION))},
    }


def pgc_proposed(pgc, spec):
    """The ``pgc`` fact of the cluster of ``pgc`` with ``spec`` in place of its own: what the plan
    playbook plans for (a proposed spec, as in a PostgresCluster manifest). The status stays the live
    one; the generation is the next."""
    if not isinstance(spec, dict):
        raise SpecError("the proposed spec must be a mapping (a PostgresCluster's spec), not %s" % describe_type(spec))
    return pgc_normalize({
        "apiVersion": pgc["api_version"], "kind": pgc["kind"],
        "metadata": {"name": pgc["name"], "namespace": pgc["namespace"], "uid": pgc["uid"],
                     "generation": int(pgc.get("generation") or 0) + 1},
        "spec": spec, "status": pgc.get("status") or {}})
