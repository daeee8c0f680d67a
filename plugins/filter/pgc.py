# Copyright: pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn a PostgresCluster object into the normalized ``pgc`` fact and its status.

Every role works from the one ``pgc`` fact built here, whether the operator runs it (from the
runtime's variables) or a person does (from the live object read by ``cluster_facts``).
"""

from __future__ import annotations

import ast
import json
import re

import yaml

from ansible.errors import AnsibleFilterError
from ansible.utils.unsafe_proxy import wrap_var
from ansible_collections.postgres.cluster.plugins.module_utils.backup_jobs import backup_status, logical_backup_status
from ansible_collections.postgres.cluster.plugins.module_utils.k8s_status import desired_status, rfc3339_now, status_patch

API_VERSION = "postgres.example.com/v1"
KIND = "PostgresCluster"
FIELD_MANAGER = "pgc-operator"

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

# Suffixes of the objects a cluster owns: object names are made here and nowhere else.
NAME_SUFFIXES = {
    "statefulset": "",
    "service_rw": "",
    "service_ro": "-ro",
    "service_headless": "-pods",
    "credentials": "-credentials",
    "patroni_config": "-patroni",
    "patroni_account": "-patroni",
    "pdb": "",
    "service_metrics": "-metrics",
    "monitoring": "",
    "pgbackrest_config": "-pgbackrest",
    "backup_cronjob": "-backup",
    "logical_cronjob": "-logical-backup",
    "backup_tls": "-backup-tls",
    "repo_host": "-repo",
    "backup_claim": "-backup",
}

# The annotation the restore playbook puts on a cluster while it restores it.
RESTORE_ANNOTATION = "postgres.example.com/restore-in-progress"

# The role the exporter sidecar connects as: pg_monitor and nothing else, over the pod's own socket.
MONITOR_ROLE = "pgc_monitor"


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


CRON_MACROS = frozenset(("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"))
# (field, lowest, highest, names from the lowest value on)
CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)


def cron_errors(expression, field):
    """What is wrong with a cron expression as a CronJob reads it: five fields (minute hour
    day-of-month month day-of-week) of values, ranges, steps, lists and names, or an @-macro."""
    text = str(expression).strip()
    if not text or text in CRON_MACROS:
        return []
    fields = text.split()
    if len(fields) != 5:
        return ["%s %r must have 5 fields (minute hour day-of-month month day-of-week), not %d, or be an "
                "@-macro such as @daily" % (field, text, len(fields))]
    errors = []
    for value, (name, low, high, names) in zip(fields, CRON_FIELDS):
        problem = _cron_field_error(value.lower(), name, low, high, names)
        if problem:
            errors.append("%s %r: %s" % (field, text, problem))
    return errors


def _cron_field_error(value, name, low, high, names):
    def number(text):
        if text in names:
            return low + names.index(text)
        if not text.isdigit():
            return None
        return int(text)

    for item in value.split(","):
        base, _, step = item.partition("/")
        if _ and (not step.isdigit() or int(step) == 0):
            return "the %s step %r must be a positive number" % (name, step)
        if base in ("*", "?"):
            if base == "?" and name not in ("day of month", "day of week"):
                return "? is only allowed in day of month and day of week"
            continue
        first, dash, last = base.partition("-")
        bounds = [number(first)] + ([number(last)] if dash else [])
        if None in bounds:
            return "%r is not a %s%s" % (base, name, " (a number or a name such as %s)" % names[0] if names else "")
        if any(not low <= b <= high for b in bounds):
            return "%s %r is outside %d-%d" % (name, base, low, high)
        if dash and bounds[0] > bounds[1]:
            return "the %s range %r goes backwards" % (name, base)
    return None


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
    # The messages quote the spec: never let Ansible template them.
    return wrap_var(errors)


# Where things live inside a database pod (the StatefulSet template mounts them there).
PGDATA = "/var/lib/postgresql/data/pgdata"
POSTGRES_PORT = 5432
PATRONI_PORT = 8008

# postgresql.conf defaults fit for streaming replication; spec.configuration goes over them.
DEFAULT_PARAMETERS = {
    "wal_level": "replica",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_keep_size": "256MB",
    "password_encryption": "scram-sha-256",
}

# Patroni's timing: a failed leader is replaced within about ttl + loop_wait seconds.
PATRONI_TIMING = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
# Where the StatefulSet mounts the ConfigMap <name>-patroni: patroni.yml and the scripts Patroni runs.
PATRONI_CONFIG_DIR = "/etc/patroni"
CALLBACK_SCRIPT = "pgc-callback.py"
POST_BOOTSTRAP_SCRIPT = "pgc-post-bootstrap.sh"


def pgc_patroni_config(pgc):
    """Return Patroni's configuration (patroni.yml) of a cluster.

    Pod-specific values (member name, addresses, passwords) come from the environment the
    StatefulSet sets: PATRONI_NAME, PATRONI_KUBERNETES_POD_IP, PATRONI_*_CONNECT_ADDRESS,
    PATRONI_SUPERUSER_*, PATRONI_REPLICATION_*.
    """
    spec = pgc["spec"]
    credentials = spec["credentials"]
    parameters = dict(DEFAULT_PARAMETERS)
    parameters.update(spec.get("configuration") or {})
    # Patroni's pg_rewind needs hint bits in the WAL; owned, so never in spec.configuration.
    parameters["wal_log_hints"] = "on"
    config = {
        "scope": pgc["name"],
        "kubernetes": {
            # Members are the pods with the cluster's label; Patroni labels each with its role.
            "labels": dict(pgc["selector"]),
            "scope_label": "postgres.example.com/cluster",
            "role_label": "role",
            # Leader lock and dynamic configuration in ConfigMaps of the cluster's namespace.
            "use_endpoints": False,
        },
        "restapi": {"listen": "0.0.0.0:%d" % PATRONI_PORT},
        "bootstrap": {
            "dcs": {
                **PATRONI_TIMING,
                "maximum_lag_on_failover": 1048576,
                "synchronous_mode": bool(spec.get("synchronous")),
                "postgresql": {"use_pg_rewind": True, "use_slots": True, "parameters": parameters},
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
            # Once, on the new primary: the application role and database of the credentials Secret.
            "post_bootstrap": "sh %s/%s %s" % (PATRONI_CONFIG_DIR, POST_BOOTSTRAP_SCRIPT, pgc["name"]),
        },
        "postgresql": {
            "listen": "0.0.0.0:%d" % POSTGRES_PORT,
            "data_dir": PGDATA,
            "pgpass": "/tmp/pgpass",
            # A member that starts, stops or changes role tells the operator, which then reconciles
            # the cluster: the status follows a failover without polling.
            "callbacks": {action: "python3 %s/%s" % (PATRONI_CONFIG_DIR, CALLBACK_SCRIPT)
                          for action in ("on_start", "on_stop", "on_role_change")},
            "authentication": {
                "superuser": {"username": credentials["superuser"]},
                "replication": {"username": credentials["replicationUser"]},
            },
            # Passwords everywhere but over the pod's own socket; replicas stream with their role.
            "pg_hba": [
                # Only the exporter in the same pod reaches the socket (a volume the two share).
                "local all %s trust" % MONITOR_ROLE,
                "local all all peer",
                "host all all 127.0.0.1/32 scram-sha-256",
                "host all all ::1/128 scram-sha-256",
                "host replication %s 0.0.0.0/0 scram-sha-256" % credentials["replicationUser"],
                "host replication %s ::/0 scram-sha-256" % credentials["replicationUser"],
                "host all all 0.0.0.0/0 scram-sha-256",
                "host all all ::/0 scram-sha-256",
            ],
        },
    }
    # WAL archiving, the replicas' restore_command and a bootstrap from a backup, when configured.
    from ansible_collections.postgres.cluster.plugins.filter.backup import pgc_patroni_backup_config
    return _merged(config, pgc_patroni_backup_config(pgc))


def _merged(base, extra):
    """base with extra merged in, dictionaries key by key (extra wins elsewhere)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def pgc_prometheus_rules(rules_text, pgc):
    """Return the PrometheusRule spec of one cluster from the project's rule file (its text).

    Each alert keeps its labels and annotations; its expression is limited to this cluster by
    an ``and on (namespace, name)`` with a constant series carrying the cluster's labels (every
    rule of the file yields namespace and name), and the group names carry the cluster's.
    """
    rules = yaml.safe_load(str(rules_text)) or {}
    matcher = 'label_replace(label_replace(vector(1), "namespace", "%s", "", ""), "name", "%s", "", "")' % (
        pgc["namespace"], pgc["name"])
    groups = []
    for group in rules.get("groups") or []:
        scoped = []
        for rule in group.get("rules") or []:
            rule = dict(rule)
            rule["expr"] = "(%s) and on (namespace, name) %s" % (str(rule["expr"]).strip(), matcher)
            scoped.append(rule)
        groups.append({**group, "name": "%s.%s.%s" % (group["name"], pgc["namespace"], pgc["name"]), "rules": scoped})
    # Unsafe: the annotations hold Prometheus templates ({{ $labels.name }}), not Ansible ones.
    return wrap_var({"groups": groups})


def _labels(name):
    return {
        "app.kubernetes.io/name": "postgres",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": "pgc-operator",
        "postgres.example.com/cluster": name,
    }


def pgc_normalize(cluster):
    """Return the normalized ``pgc`` fact of a PostgresCluster object."""
    if not isinstance(cluster, dict):
        raise AnsibleFilterError("pgc_normalize expects a PostgresCluster object, got %s" % type(cluster).__name__)
    meta = cluster.get("metadata") or {}
    name = meta.get("name")
    namespace = meta.get("namespace")
    if not name or not namespace:
        raise AnsibleFilterError("pgc_normalize needs metadata.name and metadata.namespace")
    spec = dict(SPEC_DEFAULTS)
    spec.update({k: v for k, v in (cluster.get("spec") or {}).items() if v is not None})
    spec["credentials"] = {**CREDENTIALS_DEFAULTS, **(spec.get("credentials") or {})}
    spec["volumeClaimRetention"] = {**VOLUME_CLAIM_RETENTION_DEFAULTS, **(spec.get("volumeClaimRetention") or {})}
    spec["backup"] = dict(spec.get("backup") or {})
    if spec["backupSchedule"] and not spec["backup"].get("repository"):
        # A schedule with nowhere named to keep the backups: a volume of the cluster's own, served by
        # its repository host, as a schedule alone asks for.
        spec["backup"]["repository"] = {"volume": {}}
    selector = {"postgres.example.com/cluster": name}
    return {
        "api_version": API_VERSION,
        "kind": KIND,
        "name": name,
        "namespace": namespace,
        "uid": meta.get("uid", ""),
        "generation": meta.get("generation", 0),
        "spec": spec,
        "status": cluster.get("status") or {},
        "names": {key: name + suffix for key, suffix in NAME_SUFFIXES.items()},
        # The Secret with the database passwords: the user's, or the one the operator generates.
        "credentials_secret": spec["credentials"]["secretName"] or name + NAME_SUFFIXES["credentials"],
        "labels": _labels(name),
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


def _condition(ctype, ok, reason, message, generation):
    return {
        "type": ctype,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


HEALTHY_STATES = frozenset(("running", "streaming"))


def _health(pgc, observed, ready):
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


def pgc_status(pgc, statefulset, observed=None, monitoring=None):
    """Return the status a cluster should report, from its StatefulSet and Patroni's state.

    ``statefulset`` is the StatefulSet object (or None when it does not exist yet);
    ``observed`` what the cluster_observe module read from Patroni's Kubernetes DCS (leader,
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
    current = int(sts_status.get("replicas") or 0)
    ready = int(sts_status.get("readyReplicas") or 0)
    updated = int(sts_status.get("updatedReplicas") or 0)
    # The StatefulSet controller has seen our latest template only when its observedGeneration
    # caught up with the object's generation.
    seen = sts_status.get("observedGeneration", 0) >= (sts.get("metadata") or {}).get("generation", 1)
    settled = seen and sts_spec_replicas == desired and current == desired and updated == desired

    if not sts:
        phase, reason, message = "Pending", "Provisioning", "Creating the StatefulSet"
    elif ready == desired and settled:
        phase, reason, message = "Running", "AllReplicasReady", "%d/%d replicas ready" % (ready, desired)
    elif pgc.get("status", {}).get("phase") in ("Running", "Scaling") and current != desired:
        phase, reason, message = "Scaling", "Scaling", "Scaling from %d to %d replicas" % (current, desired)
    else:
        phase, reason, message = "Pending", "WaitingForReplicas", "%d/%d replicas ready" % (ready, desired)

    ready_ok = phase == "Running"
    degraded, degraded_reason, degraded_message = _health(pgc, observed, ready)
    conditions = [
        _condition("Ready", ready_ok, reason, message, generation),
        _condition("Progressing", not ready_ok, reason if not ready_ok else "Reconciled",
                   message if not ready_ok else "The cluster matches its spec", generation),
        _condition("Degraded", degraded, degraded_reason, degraded_message, generation),
        _condition("Reconciled", True, "ReconcileSucceeded", "The last reconcile succeeded", generation),
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
        }
    from_backup = (spec.get("bootstrap") or {}).get("fromBackup") or {}
    if from_backup.get("repository"):
        status["restoredFrom"] = wrap_var({k: v for k, v in from_backup.items() if v not in (None, "")})
    previous = pgc.get("status") or {}
    if observed.get("backup_jobs") or previous.get("lastBackupTimestamp") or previous.get("backupFailures"):
        # Job messages come from pod logs: data, never templates.
        backups = wrap_var(backup_status(observed.get("backup_jobs") or [], previous))
        status.update(backups["fields"])
        if backups["condition"]:
            status["conditions"].append(_condition("LastBackupSucceeded", *backups["condition"], generation))
    if any(j.get("kind") == "logical-backup" for j in observed.get("backup_jobs") or []) \
            or previous.get("lastLogicalBackup") or previous.get("logicalBackupFailures"):
        status.update(wrap_var(logical_backup_status(observed.get("backup_jobs") or [], previous)))
    if monitoring is not None:
        status["monitoring"] = {key: monitoring[key] for key in ("exporter", "podMonitor", "prometheusRule", "message")}
        for key in ("exporter", "podMonitor", "prometheusRule"):
            status["monitoring"][key] = _truthy(status["monitoring"][key])
    return status


def _truthy(value):
    return value is True or str(value).lower() in ("true", "yes", "1")


# What the status shows of each member: what changes on events, not on every write (no lag).
MEMBER_STATUS_KEYS = ("name", "role", "state", "timeline", "pendingRestart")


# Keys of Patroni's dynamic configuration that the operator owns; others (set with patronictl
# edit-config) are left alone. postgresql.parameters is owned as a whole, so that a parameter
# removed from spec.configuration goes back to its default.
OWNED_DCS_KEYS = ("ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "synchronous_mode")
OWNED_DCS_POSTGRESQL_KEYS = ("use_pg_rewind", "use_slots", "parameters")


def _comparable(value):
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def pgc_dcs_config(current, pgc):
    """Return Patroni's dynamic configuration with the spec applied, or an empty mapping when it
    already is applied.

    ``current`` is the configuration Patroni keeps in the annotation ``config`` of the ConfigMap
    ``<name>-config`` (None before the bootstrap, when bootstrap.dcs of patroni.yml still applies).
    Patroni applies a change of it on every member: a reload, or pending_restart for parameters
    that need a restart.
    """
    if not isinstance(current, dict):
        return {}
    desired = pgc_patroni_config(pgc)["bootstrap"]["dcs"]
    merged = json.loads(json.dumps(current))
    for key in OWNED_DCS_KEYS:
        merged[key] = desired[key]
    postgresql = merged.setdefault("postgresql", {})
    if not isinstance(postgresql, dict):
        postgresql = merged["postgresql"] = {}
    for key in OWNED_DCS_POSTGRESQL_KEYS:
        postgresql[key] = desired["postgresql"][key]

    def owned(config):
        pg = config.get("postgresql") if isinstance(config.get("postgresql"), dict) else {}
        return _comparable({**{k: config.get(k) for k in OWNED_DCS_KEYS},
                            **{"postgresql." + k: pg.get(k) for k in OWNED_DCS_POSTGRESQL_KEYS}})

    return {} if owned(merged) == owned(current) else merged


def pgc_restart_plan(observed, pgc):
    """Choose the one step of a rolling restart to take now, for members Patroni reports pending_restart.

    Returns ``{"action", "member", "message"}``; action is ``none`` (nothing pending), ``wait`` (a
    restart is pending but the cluster is not healthy enough to lose a member now), ``restart``
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
    degraded, _, why = _health(pgc, observed, len(members))
    if degraded or len(members) != int(pgc["spec"]["replicas"]):
        plan.update(action="wait", message="Restart of %s pending: %s" % (", ".join(m["name"] for m in pending), why))
        return plan
    replicas = [m for m in pending if m.get("role") != "primary"]
    if replicas:
        plan.update(action="restart", member=replicas[-1]["name"],
                    message="Restarting %s to apply parameters that need a restart" % replicas[-1]["name"])
    elif len(members) > 1:
        plan.update(action="switchover", member=pending[0]["name"],
                    message="Moving the primary off %s before it restarts" % pending[0]["name"])
    else:
        plan.update(action="restart", member=pending[0]["name"],
                    message="Restarting %s, the only member, to apply parameters that need a restart" % pending[0]["name"])
    return plan


def _condition_of(status, ctype):
    return next((c for c in status.get("conditions") or [] if c.get("type") == ctype), {})


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
        else:
            add("ClusterReady", after.get("message") or "Running")
    if now == "Scaling" and was != "Scaling":
        add("Scaling", after.get("message") or "Scaling")
    old, new = before.get("currentPrimary"), after.get("currentPrimary")
    if old and new and old != new:
        add("PrimaryChanged", "The primary moved from %s to %s" % (old, new))
    elif old and not new:
        add("PrimaryLost", "%s no longer holds the leader lock and no other member does yet" % old, warning=True)
    elif new and not old and before.get("members"):
        add("PrimaryElected", "%s holds the leader lock and runs the primary" % new)
    degraded_before, degraded_after = _condition_of(before, "Degraded"), _condition_of(after, "Degraded")
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
    return events


def pgc_failure_status(pgc, message, reason="ReconcileFailed", degraded=False):
    """Return the status of a reconcile that failed with ``message``.

    ``degraded`` marks a failure that impairs a cluster that holds data (its Degraded condition);
    a spec that cannot be satisfied is not in itself a degradation.
    """
    generation = pgc.get("generation", 0)
    conditions = [
        _condition("Ready", False, reason, message, generation),
        _condition("Reconciled", False, reason, message, generation),
    ]
    if degraded:
        conditions.append(_condition("Degraded", True, reason, message, generation))
    return {"phase": "Failed", "message": message, "observedGeneration": generation, "conditions": conditions}


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
    # The message quotes tasks, the API server and the spec: never let Ansible template it.
    return wrap_var(text if len(text) <= limit else text[:limit - 3] + "...")


def pgc_status_differs(current, updates):
    """True when writing ``updates`` (as k8s_status would) would change the ``current`` status.

    Lets the status step skip the module, and its API client, on a reconcile that changes nothing.
    """
    current = current or {}
    return status_patch(current, desired_status(current, updates, rfc3339_now())) is not None


def _ordinal(pod_name):
    tail = pod_name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _pod_ready(pod):
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pgc_switchover_plan(pods, candidate="", below_ordinal=0):
    """Choose the leader and the candidate of a switchover from the cluster's pods.

    Returns ``{"leader", "candidate", "error"}``: the leader is the pod Patroni labels primary;
    the candidate is the one asked for, or the ready replica with the lowest ordinal (below
    ``below_ordinal`` when it is not 0). ``error`` says why there is no switchover to make.
    """
    below_ordinal = int(below_ordinal or 0)
    pods = sorted(pods or [], key=lambda p: _ordinal(p["metadata"]["name"]))
    role = {p["metadata"]["name"]: (p["metadata"].get("labels") or {}).get("role") for p in pods}
    leaders = [name for name, r in role.items() if r == "primary"]
    plan = {"leader": leaders[0] if len(leaders) == 1 else "", "candidate": "", "error": ""}
    if len(leaders) != 1:
        plan["error"] = "no single member is labelled primary (%s)" % (", ".join(leaders) or "none")
        return plan
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


_DIFF_NOISE = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")


def _without_noise(obj):
    if not isinstance(obj, dict):
        return obj
    obj = dict(obj)
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _DIFF_NOISE}
    if meta:
        obj["metadata"] = meta
    else:
        obj.pop("metadata", None)
    obj.pop("status", None)
    return obj


def pgc_object_diffs(results):
    """Return ``{"Kind/name": {"before": ..., "after": ...}}`` for each changed object of a
    kubernetes.core.k8s multi-object result, without server-managed metadata and status."""
    diffs = {}
    for item in results or []:
        if not item.get("changed"):
            continue
        obj = item.get("result") or {}
        key = "%s/%s" % (obj.get("kind", "?"), (obj.get("metadata") or {}).get("name", "?"))
        diff = item.get("diff") or {}
        before, after = _without_noise(diff.get("before")), _without_noise(diff.get("after"))
        if before or after:
            diffs[key] = {"before": before, "after": after}
    return diffs


class FilterModule:
    """Filters of the postgres.cluster collection."""

    def filters(self):
        return {
            "pgc_normalize": pgc_normalize,
            "pgc_status": pgc_status,
            "pgc_failure_status": pgc_failure_status,
            "pgc_failure_message": pgc_failure_message,
            "pgc_object_diffs": pgc_object_diffs,
            "pgc_status_differs": pgc_status_differs,
            "pgc_spec_errors": pgc_spec_errors,
            "pgc_patroni_config": pgc_patroni_config,
            "pgc_switchover_plan": pgc_switchover_plan,
            "pgc_status_transitions": pgc_status_transitions,
            "pgc_dcs_config": pgc_dcs_config,
            "pgc_restart_plan": pgc_restart_plan,
            "pgc_prometheus_rules": pgc_prometheus_rules,
        }
