# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Patroni: the configuration the operator gives it, and what its Kubernetes DCS says back.

Patroni keeps its state in the Kubernetes API: each member writes its own state as the pod
annotation ``status`` (JSON) and its role as a pod label; the leader lock is the annotations of
the ConfigMap ``<scope>-leader``; the dynamic configuration is the annotation ``config`` of
``<scope>-config``, which also records ``initialize`` (the system identifier) once the cluster
has been bootstrapped. Nothing here does I/O.
"""

from __future__ import annotations

import datetime
import json

from ansible_collections.postgres.cluster.plugins.module_utils.names import (
    CLUSTER_LABEL,
    MONITOR_ROLE,
    PATRONI_PORT,
    PGDATA,
    SWITCHOVER_ANNOTATION,
    POSTGRES_PORT,
    patroni_configmap,
    pod_ordinal,
)
from ansible_collections.postgres.cluster.plugins.module_utils.pgbackrest import pgc_patroni_backup_config
from ansible_collections.postgres.cluster.plugins.module_utils.tls import (
    SERVER_TLS_DIR,
    SUPERUSER_TLS_DIR,
    pgc_client_auth,
    pgc_superuser_remote_login,
)

# postgresql.conf defaults fit for streaming replication; spec.configuration goes over them.
DEFAULT_PARAMETERS = {
    "wal_level": "replica",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_keep_size": "256MB",
    "password_encryption": "scram-sha-256",
}

# TLS for every connection from outside the pod, TLS 1.2 at least. The files are the server
# certificate's Secret, mounted beside the data directory (module_utils/tls.py): the same relative
# paths on every member. Clients' certificates are checked against the cluster's CA, the ca.crt of
# the superuser's certificate Secret. ssl and its files take effect on a reload.
TLS_PARAMETERS = {
    "ssl": "on",
    "ssl_cert_file": "../%s/tls.crt" % SERVER_TLS_DIR,
    "ssl_key_file": "../%s/tls.key" % SERVER_TLS_DIR,
    "ssl_ca_file": "../%s/ca.crt" % SUPERUSER_TLS_DIR,
}
# pg_hba's method of roles other than the replication role from outside the pod (spec.tls.clientAuth).
# cert checks the certificate against the CA and its common name against the role.
CLIENT_AUTH_METHODS = {
    "password": "scram-sha-256",
    "certificate": "cert",
    "passwordAndCertificate": "scram-sha-256 clientcert=verify-full",
}
DEFAULT_TLS_PARAMETERS = {"ssl_min_protocol_version": "TLSv1.2"}

# With spec.audit: PostgreSQL's log as JSON lines (jsonlog needs the collector) in the data
# directory's log/, a file a weekday, overwritten a week later. spec.configuration goes over them.
AUDIT_LOGGING = {
    "logging_collector": "on",
    "log_destination": "jsonlog",
    "log_directory": "log",
    "log_filename": "postgresql-%a.log",
    "log_rotation_age": "1d",
    "log_rotation_size": 0,
    "log_truncate_on_rotation": "on",
}
DEFAULT_AUDIT_CLASSES = ("ddl", "role")

# Patroni's timing: a failed leader is replaced within about ttl + loop_wait seconds.
PATRONI_TIMING = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
# Where the StatefulSet mounts the ConfigMap <name>-patroni: patroni.yml and the scripts Patroni runs.
PATRONI_CONFIG_DIR = "/etc/patroni"
CALLBACK_SCRIPT = "pgc-callback.py"
RELOAD_SCRIPT = "pgc-reload.py"
POST_BOOTSTRAP_SCRIPT = "pgc-post-bootstrap.sh"


# --- configuration -------------------------------------------------------------------------------

def pgc_patroni_config(pgc):
    """Return Patroni's configuration (patroni.yml) of a cluster.

    Pod-specific values (member name, addresses, passwords) come from the environment the
    StatefulSet sets: PATRONI_NAME, PATRONI_KUBERNETES_POD_IP, PATRONI_*_CONNECT_ADDRESS,
    PATRONI_SUPERUSER_*, PATRONI_REPLICATION_*.
    """
    spec = pgc["spec"]
    credentials = spec["credentials"]
    parameters = dict(DEFAULT_PARAMETERS, **DEFAULT_TLS_PARAMETERS)
    audit = spec.get("audit") or {}
    if audit.get("enabled"):
        parameters.update(AUDIT_LOGGING)
    parameters.update(spec.get("configuration") or {})
    if audit.get("enabled"):
        parameters.update(audit_parameters(audit, parameters.get("shared_preload_libraries", "")))
    parameters.update(TLS_PARAMETERS)
    # Patroni's own connections (replication, pg_basebackup, pg_rewind) check the leader's
    # certificate against the cluster's CA.
    data_mount = PGDATA.rsplit("/", 1)[0]
    client_tls = {"sslmode": "verify-ca", "sslrootcert": "%s/%s/ca.crt" % (data_mount, SERVER_TLS_DIR)}
    # The superuser (pg_rewind from the new leader) logs in with its client certificate.
    superuser_tls = {"sslcert": "%s/%s/tls.crt" % (data_mount, SUPERUSER_TLS_DIR),
                     "sslkey": "%s/%s/tls.key" % (data_mount, SUPERUSER_TLS_DIR)}
    # Patroni's pg_rewind needs hint bits in the WAL; owned, so never in spec.configuration.
    parameters["wal_log_hints"] = "on"
    config = {
        "scope": pgc["name"],
        "kubernetes": {
            # Members are the pods with the cluster's label; Patroni labels each with its role.
            "labels": dict(pgc["selector"]),
            "scope_label": CLUSTER_LABEL,
            "role_label": "role",
            # Leader lock and dynamic configuration in ConfigMaps of the cluster's namespace.
            "use_endpoints": False,
        },
        # Its unsafe endpoints (PATCH /config, POST /failover, ...) ask for the user and password the
        # pods get from the Secret <name>-patroni-api (PATRONI_RESTAPI_USERNAME, _PASSWORD).
        "restapi": {"listen": "0.0.0.0:%d" % PATRONI_PORT},
        "bootstrap": {
            "dcs": {
                **PATRONI_TIMING,
                "maximum_lag_on_failover": 1048576,
                # While the API server (the DCS) cannot be reached, the primary stays one as long as
                # every member answers it over the REST API, instead of stopping writes after
                # retry_timeout: an API server restart or upgrade is no write outage.
                "failsafe_mode": True,
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
            # A new replica copies the leader at once, instead of after a spread checkpoint (minutes).
            "basebackup": [{"checkpoint": "fast"}],
            # A member that starts, stops or changes role tells the operator, which then reconciles
            # the cluster: the status follows a failover without polling.
            "callbacks": {action: "python3 %s/%s" % (PATRONI_CONFIG_DIR, CALLBACK_SCRIPT)
                          for action in ("on_start", "on_stop", "on_role_change")},
            "authentication": {
                "superuser": dict(client_tls, username=credentials["superuser"], **superuser_tls),
                "replication": dict(client_tls, username=credentials["replicationUser"]),
            },
            "pg_hba": pgc_pg_hba(pgc),
        },
    }
    # WAL archiving, the replicas' restore_command and a bootstrap from a backup, when configured.
    return _merged(config, pgc_patroni_backup_config(pgc))


def pgc_pg_hba(pgc):
    """pg_hba: passwords everywhere but over the pod's own socket; from outside the pod TLS only (no
    line accepts a connection without it); replicas stream with their role; the superuser comes in
    with its client certificate unless spec.credentials.superuserRemoteLogin says password; other
    roles as spec.tls.clientAuth says."""
    credentials = pgc["spec"]["credentials"]
    method = CLIENT_AUTH_METHODS[pgc_client_auth(pgc)]
    anywhere = ("0.0.0.0/0", "::/0")
    lines = [
        # Only the exporter in the same pod reaches the socket (a volume the two share).
        "local all %s trust" % MONITOR_ROLE,
        "local all all peer",
        "host all all 127.0.0.1/32 scram-sha-256",
        "host all all ::1/128 scram-sha-256",
    ]
    lines += ["hostssl replication %s %s scram-sha-256" % (credentials["replicationUser"], net) for net in anywhere]
    if pgc_superuser_remote_login(pgc) == "certificate":
        lines += ["hostssl all %s %s cert" % (credentials["superuser"], net) for net in anywhere]
    lines += ["hostssl all all %s %s" % (net, method) for net in anywhere]
    return lines


def audit_parameters(audit, preload=""):
    """pgaudit's parameters for spec.audit: the library added to shared_preload_libraries (a
    restart), its classes (pgaudit.log) and whether statements' parameters are logged. The
    library's hooks log without CREATE EXTENSION."""
    libraries = [name.strip() for name in str(preload or "").split(",") if name.strip()]
    if "pgaudit" not in libraries:
        libraries.append("pgaudit")
    return {
        "shared_preload_libraries": ",".join(libraries),
        "pgaudit.log": ",".join(audit.get("log") or DEFAULT_AUDIT_CLASSES),
        "pgaudit.log_parameter": "on" if audit.get("logParameter") else "off",
    }


def _merged(base, extra):
    """base with extra merged in, dictionaries key by key (extra wins elsewhere)."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


# Keys of Patroni's dynamic configuration that the operator owns; others (set with patronictl
# edit-config) are left alone. postgresql.parameters is owned as a whole, so that a parameter
# removed from spec.configuration goes back to its default.
OWNED_DCS_KEYS = ("ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover", "failsafe_mode", "synchronous_mode")
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


# --- what the DCS says ---------------------------------------------------------------------------

def _annotations(obj):
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def _json(text):
    try:
        value = json.loads(text) if text else None
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def parse_time(text):
    """An RFC 3339 time (Kubernetes' and Patroni's), as an aware datetime; None when it is not one."""
    if not text:
        return None
    try:
        value = datetime.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def lock_holder(annotations, now):
    """The member named by Patroni's leader lock (the annotations of ``<scope>-leader``), or None
    when no lock is valid at ``now``.

    Patroni writes ``leader`` together with ``renewTime`` and ``ttl`` whenever it takes or renews
    the lock, and removes ``leader`` when it lets the lock go. A lock is valid while it was renewed
    less than ``ttl`` seconds ago; one without a readable renewTime was not written by a Patroni
    that holds it, and cannot show that it is fresh.
    """
    annotations = annotations or {}
    leader = annotations.get("leader")
    renewed = parse_time(annotations.get("renewTime"))
    if not leader or renewed is None:
        return None
    # As Patroni does, a lock without a usable ttl has the cluster's own.
    try:
        ttl = float(annotations.get("ttl") or 0)
    except ValueError:
        ttl = 0
    if not ttl > 0:
        ttl = PATRONI_TIMING["ttl"]
    return leader if (now - renewed).total_seconds() < ttl else None


def leader_lock(configmap, now):
    """The member holding the leader lock of the ConfigMap ``<scope>-leader``, or None."""
    return lock_holder(_annotations(configmap), now)


def _lsn(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# The StatefulSet controller's label: the revision of the pod template a pod was made from.
REVISION_LABEL = "controller-revision-hash"


def member_state(pod, leader, leader_lsn):
    """One member as the status reports it, from its pod."""
    meta = pod.get("metadata") or {}
    name = meta.get("name")
    data = _json(_annotations(pod).get("status")) or {}
    state = data.get("state") or ("unknown" if not data else "")
    pod_phase = (pod.get("status") or {}).get("phase")
    if meta.get("deletionTimestamp"):
        state = "terminating"
    if name == leader:
        role = "primary"
    elif data.get("role") in ("replica", "standby_leader"):
        role = data["role"]
    elif data.get("role") == "primary":
        # A member that last said primary but holds no lock is not the primary: it crashed, is
        # being demoted, or is the loser of a split brain Patroni resolves.
        role = "unknown"
    else:
        role = data.get("role") or "unknown"
    member = {"name": name, "role": role, "state": state or "unknown"}
    # The StatefulSet revision the pod was made from, and whether it is Ready: a rolling update
    # replaces the pods of an older revision one at a time, each once the others are Ready.
    revision = (meta.get("labels") or {}).get(REVISION_LABEL)
    if revision:
        member["revision"] = revision
    member["ready"] = any(c.get("type") == "Ready" and c.get("status") == "True"
                          for c in (pod.get("status") or {}).get("conditions") or [])
    if data.get("timeline") is not None:
        member["timeline"] = data["timeline"]
    if data.get("pending_restart"):
        member["pendingRestart"] = True
    if data.get("replication_state"):
        member["replicationState"] = data["replication_state"]
    position = _lsn(data.get("replay_lsn", data.get("xlog_location")))
    if role != "primary" and leader_lsn is not None and position is not None:
        member["lagBytes"] = max(0, leader_lsn - position)
    if pod_phase and pod_phase != "Running" and member["state"] == "unknown":
        member["state"] = pod_phase.lower()
    return member


def member_timeline(pod):
    """The timeline a member's Patroni last reported (its pod's annotation ``status``); 0 when none."""
    value = (_json(_annotations(pod).get("status")) or {}).get("timeline")
    return value if isinstance(value, int) and value > 0 else 0


# Two spellings of the same JSON: Patroni compares the text of the annotation ``config``.
COMPACT, SPACED = (",", ":"), (", ", ": ")


def wakeup_config(configmap):
    """The annotation ``config`` of ``<scope>-config`` spelt the other way, with the resourceVersion
    it replaces, or an empty mapping.

    Each member's Patroni sleeps loop_wait seconds between loops unless the text of ``config`` or the
    leader lock changes; a switchover request (``<scope>-failover``) wakes nobody, so it waited for
    the leader's next loop. Writing the same configuration spelt differently wakes every member at
    once and changes nothing else: Patroni and the configure step compare the parsed JSON. The
    resourceVersion makes the write fail rather than undo a change made since it was read.
    """
    text = _annotations(configmap).get("config")
    value = _json(text)
    if value is None:
        return {}
    compact = json.dumps(value, separators=COMPACT, sort_keys=True)
    spelling = SPACED if text == compact else COMPACT
    return {"resourceVersion": str((configmap.get("metadata") or {}).get("resourceVersion") or ""),
            "config": json.dumps(value, separators=spelling, sort_keys=True)}


def _by_ordinal(pod):
    ordinal = pod_ordinal((pod.get("metadata") or {}).get("name"))
    # Pods without an ordinal last.
    return 1 << 30 if ordinal is None else ordinal


def observe(scope, pods, configmaps, now=None):
    """The cluster as Patroni reports it.

    ``pods`` are the cluster's pods and ``configmaps`` the ConfigMaps with the cluster's labels
    (Patroni's among them). Returns ``leader`` (the lock holder, only if it is one of the pods),
    ``members`` (by ordinal), ``pending_restart`` (the members that need one), ``initialized``
    (Patroni bootstrapped the cluster: its data exists) and ``config`` (the dynamic configuration).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    by_name = {((c.get("metadata") or {}).get("name")): c for c in configmaps or []}
    leader_cm = by_name.get(patroni_configmap(scope, "leader"))
    config_cm = by_name.get(patroni_configmap(scope, "config"))
    names = {((p.get("metadata") or {}).get("name")) for p in pods or []}
    leader = leader_lock(leader_cm, now)
    if leader not in names:
        leader = None
    leader_lsn = None
    if leader:
        leader_pod = next(p for p in pods if p["metadata"]["name"] == leader)
        leader_data = _json(_annotations(leader_pod).get("status")) or {}
        leader_lsn = _lsn(leader_data.get("xlog_location")) or _lsn(_annotations(leader_cm).get("optime"))
    members = [member_state(p, leader, leader_lsn) for p in sorted(pods or [], key=_by_ordinal)]
    config_annotations = _annotations(config_cm)
    lock = _annotations(leader_cm)
    return {
        "leader": leader,
        # What dates the failover history (module_utils/failovers.py), as Patroni wrote it.
        "dcs_history": config_annotations.get("history") or "",
        "dcs_lock": {k: lock[k] for k in ("leader", "acquireTime", "renewTime", "ttl") if lock.get(k)},
        "switchover": _annotations(by_name.get(patroni_configmap(scope, "failover"))).get(SWITCHOVER_ANNOTATION, ""),
        "members": members,
        "pending_restart": [m["name"] for m in members if m.get("pendingRestart")],
        "initialized": bool(config_annotations.get("initialize")),
        "config": _json(config_annotations.get("config")),
    }
