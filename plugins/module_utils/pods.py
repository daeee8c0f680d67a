# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The pod specs of a cluster: its members (the StatefulSet's template), the repository host of a
volume repository, and its backup and restore Jobs. The one place that builds them, so that the
security settings, the pgBackRest server and the volumes of each are written once; the templates
put them into their objects. Strings of the spec go in as values, never as text to parse.
"""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils.names import (
    CLUSTER_LABEL,
    COMPONENT_LABEL,
    JOB_LABEL,
    PATRONI_PORT,
    PGDATA,
    POSTGRES_PORT,
    cluster_names,
    labels,
    member_pods,
)
from ansible_collections.postgres.cluster.plugins.module_utils.patroni import CALLBACK_SCRIPT, RELOAD_SCRIPT
from ansible_collections.postgres.cluster.plugins.module_utils.tls import (
    CLIENT_CA_DIR,
    CLIENT_TLS_DIR,
    SERVER_TLS_DIR,
    SERVER_TLS_KEYS,
    SUPERUSER_TLS_DIR,
    pgc_server_tls_secret,
)
from ansible_collections.postgres.cluster.plugins.module_utils.pgbackrest import (
    SOURCE_OPTIONAL,
    SOURCE_TLS_DIR,
    TLS_CLIENT_KEYS,
    TLS_DIR,
    TLS_PORT,
    VOLUME_REPOSITORY_PATH,
    pgc_pgbackrest_environment,
    pgc_pgbackrest_settings,
    pgc_pgbackrest_source_environment,
    pgc_pgbackrest_volumes,
)

# The database image's user (images/postgres): every pod of the cluster runs as it, but the exporter.
POSTGRES_UID = 999
NOBODY_UID = 65534
DATA_MOUNT = PGDATA.rsplit("/", 1)[0]
# Where a restore drill's Job restores to and runs its throw-away server (an emptyDir).
DRILL_SCRATCH = "/var/lib/postgresql/drill"
SOCKET_DIR = "/var/run/postgresql"
PATRONI_CONFIG_DIR = "/etc/patroni"
PGBACKREST_CONFIG_DIR = "/etc/pgbackrest"
EXPORTER_CONFIG_DIR = "/etc/pgc-exporter"
EXPORTER_PORT = 9187
CALLBACK_DIR = "/etc/pgc/callback"
JOB_CONTAINER = "pgbackrest"
# Secrets of keys and certificates: readable by the owner and the pods' fsGroup only.
SECRET_MODE = 0o440
# What the kubelet mounts in every container unless told not to: the ServiceAccount's token, the
# API server's CA and the namespace, where Patroni's Kubernetes client looks for them.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API_ACCESS = {"name": "kube-api-access", "projected": {"defaultMode": 0o644, "sources": [
    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
]}}


def pod_security_context():
    return {"runAsNonRoot": True, "runAsUser": POSTGRES_UID, "runAsGroup": POSTGRES_UID, "fsGroup": POSTGRES_UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context(read_only_root=True):
    context = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    if read_only_root:
        context["readOnlyRootFilesystem"] = True
    return context


def _port(name, number):
    return {"name": name, "containerPort": number, "protocol": "TCP"}


def _mount(name, path, read_only=False):
    mount = {"name": name, "mountPath": path}
    if read_only:
        mount["readOnly"] = True
    return mount


def _secret(name, secret_name, keys=None, optional=False):
    source = {"secretName": secret_name, "defaultMode": SECRET_MODE}
    if optional:
        source["optional"] = True
    if keys is not None:
        source["items"] = [{"key": key, "path": key} for key in keys]
    return {"name": name, "secret": source}


def _config_map(name, config_map, items=None):
    source = {"name": config_map}
    if items is not None:
        source["items"] = [{"key": key, "path": path} for key, path in items]
    return {"name": name, "configMap": source}


def _empty_dir(name):
    return {"name": name, "emptyDir": {}}


def pgc_backup_pod_labels(pgc, job):
    """The labels of a Job's pod or the repository host's: never the cluster's selector, which
    would make the pod a member in the eyes of the Services, the PodDisruptionBudget and Patroni."""
    pod_labels = {k: v for k, v in labels(pgc["name"]).items() if k != CLUSTER_LABEL}
    pod_labels.update({"app.kubernetes.io/component": job, COMPONENT_LABEL: pgc["name"], JOB_LABEL: job})
    return pod_labels


RELOAD_DIR = "/etc/pgc/reload"


def _reloading(command, paths, script_dir=PATRONI_CONFIG_DIR):
    """A container's command: the shell starts the watcher that sends SIGHUP to its own process
    when the files under ``paths`` change (pgc-reload.py), then becomes ``command``. A renewed
    certificate, a new patroni.yml, take effect without a restart."""
    return ["sh", "-c", 'python3 %s/%s "$$" %s & exec %s' % (script_dir, RELOAD_SCRIPT, " ".join(paths), command)]


def _reload_script(pgc):
    """The watcher alone, from the ConfigMap of Patroni's files, for a container without them."""
    return _config_map("reload", pgc["names"]["patroni_config"], [(RELOAD_SCRIPT, RELOAD_SCRIPT)])


def member_image(pgc):
    """The members' image: the spec's, for the major the members run (spec.image_for_major)."""
    return pgc.get("member_image") or pgc["spec"]["image"]


def _pgbackrest_server(pgc, env, resources, mounts):
    """pgBackRest's TLS server: beside each member (backup Jobs read the primary's files through
    it) and as the repository host of a volume repository. It reloads its certificates."""
    return {
        "name": "pgbackrest",
        "image": member_image(pgc),
        "command": _reloading("pgbackrest server", [TLS_DIR], RELOAD_DIR),
        "env": env,
        "ports": [_port("pgbackrest", TLS_PORT)],
        "readinessProbe": {"tcpSocket": {"port": "pgbackrest"}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": "pgbackrest"}, "periodSeconds": 20},
        "securityContext": container_security_context(),
        "resources": resources,
        "volumeMounts": mounts,
    }


def _secret_env(name, secret, key):
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _field_env(name, path):
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _postgres_env(pgc, backup_env):
    credentials = pgc["spec"]["credentials"]
    secret = pgc["credentials_secret"]
    return [
        _field_env("PATRONI_NAME", "metadata.name"),
        _field_env("PATRONI_KUBERNETES_NAMESPACE", "metadata.namespace"),
        _field_env("PATRONI_KUBERNETES_POD_IP", "status.podIP"),
        {"name": "PATRONI_POSTGRESQL_CONNECT_ADDRESS", "value": "$(PATRONI_KUBERNETES_POD_IP):%d" % POSTGRES_PORT},
        {"name": "PATRONI_RESTAPI_CONNECT_ADDRESS", "value": "$(PATRONI_KUBERNETES_POD_IP):%d" % PATRONI_PORT},
        {"name": "PATRONI_SUPERUSER_USERNAME", "value": credentials["superuser"]},
        _secret_env("PATRONI_SUPERUSER_PASSWORD", secret, "superuser-password"),
        {"name": "PATRONI_REPLICATION_USERNAME", "value": credentials["replicationUser"]},
        _secret_env("PATRONI_REPLICATION_PASSWORD", secret, "replication-password"),
        # Patroni asks for them on its unsafe endpoints (PATCH /config, POST /failover, ...).
        _secret_env("PATRONI_RESTAPI_USERNAME", pgc["names"]["patroni_api"], "username"),
        _secret_env("PATRONI_RESTAPI_PASSWORD", pgc["names"]["patroni_api"], "password"),
        # The application role and database, created once by Patroni's post_bootstrap script.
        {"name": "PGC_APP_USERNAME", "value": credentials["appUser"]},
        {"name": "PGC_APP_DATABASE", "value": credentials["appDatabase"]},
        _secret_env("PGC_APP_PASSWORD", secret, "app-password"),
        {"name": "PGC_MONITOR_USERNAME", "value": pgc["monitor_role"]},
        # The member, for the callback: Patroni keeps no PATRONI_* variable for its children.
        _field_env("PGC_POD_NAME", "metadata.name"),
        # For the reload watcher: a crashed postmaster wakes Patroni through its DCS (pgc-reload.py).
        {"name": "PGC_POSTMASTER_PID", "value": PGDATA + "/postmaster.pid"},
        {"name": "PGC_WAKE_CONFIGMAP", "value": pgc["names"]["dcs_config"]},
        # The server over the pod's socket, for the callback's psql.
        {"name": "PGHOST", "value": SOCKET_DIR},
        {"name": "PGPORT", "value": str(POSTGRES_PORT)},
    ] + backup_env


def pgc_member_pod_spec(pgc, termination_grace_period=60, exporter_image="", exporter_resources=None,
                        backup_server_resources=None):
    """The pod spec of a member: Patroni running PostgreSQL, pgBackRest's server when the cluster
    has a repository, the exporter when monitoring is on. The other arguments are the provision
    role's settings (provision_termination_grace_period, provision_exporter_*,
    provision_backup_server_resources)."""
    names = pgc["names"]
    spec = pgc["spec"]
    settings = pgc_pgbackrest_settings(pgc)
    backup = settings["enabled"]
    from_backup = (spec.get("bootstrap") or {}).get("fromBackup")
    backup_env = (pgc_pgbackrest_environment(pgc) if backup else []) + pgc_pgbackrest_source_environment(pgc)
    # The files an object store is reached with (a private CA, a GCS key), the source's too.
    store_files = pgc_pgbackrest_volumes(pgc)
    # A new cluster restoring another's volume repository reaches its repository host over TLS.
    source_tls = ""
    if from_backup is not None and "volume" in (from_backup.get("repository") or {}):
        source_tls = cluster_names(from_backup["cluster"])["backup_tls"]

    # The server certificate beside the data directory; PostgreSQL accepts its key readable by the
    # group when root owns it, as the kubelet does.
    # Beside it too, the superuser's client certificate (pg_rewind, Patroni's connections to the
    # leader) and the CA that clients' certificates are checked with.
    mounts = [_mount("data", DATA_MOUNT), _mount("tls", DATA_MOUNT + "/" + SERVER_TLS_DIR, True),
              _mount("superuser-tls", DATA_MOUNT + "/" + SUPERUSER_TLS_DIR, True),
              _mount("patroni-config", PATRONI_CONFIG_DIR, True), _mount("socket", SOCKET_DIR),
              _mount(API_ACCESS["name"], SERVICE_ACCOUNT_DIR, True)]
    volumes = [_secret("tls", pgc_server_tls_secret(pgc), SERVER_TLS_KEYS),
               _secret("superuser-tls", names["superuser_tls"], SERVER_TLS_KEYS), API_ACCESS,
               _config_map("patroni-config", names["patroni_config"]), _empty_dir("socket")]
    if backup or from_backup is not None:
        mounts.append(_mount("pgbackrest-config", PGBACKREST_CONFIG_DIR, True))
        items = ([("pod.conf", "pgbackrest.conf")] if backup else []) + ([("source.conf", "source.conf")]
                                                                          if from_backup is not None else [])
        volumes.append(_config_map("pgbackrest-config", names["pgbackrest_config"], items))
    mounts += store_files["mounts"]
    volumes += store_files["volumes"]
    if source_tls:
        mounts.append(_mount("source-backup-tls", SOURCE_TLS_DIR, True))
        volumes.append(_secret("source-backup-tls", source_tls, optional=SOURCE_OPTIONAL))
    if backup:
        mounts.append(_mount("backup-tls", TLS_DIR, True))
        volumes += [_secret("backup-tls", names["backup_tls"]), _empty_dir("pgbackrest-tmp"), _reload_script(pgc)]

    postgres = {
        "name": "postgres",
        "image": member_image(pgc),
        # Patroni, which runs PostgreSQL (images/postgres), reloaded when its configuration or a
        # certificate changes.
        "command": _reloading("patroni %s/patroni.yml" % PATRONI_CONFIG_DIR, [
            "%s/%s" % (DATA_MOUNT, SERVER_TLS_DIR), "%s/%s" % (DATA_MOUNT, SUPERUSER_TLS_DIR),
            "%s/patroni.yml" % PATRONI_CONFIG_DIR]),
        "ports": [_port("postgres", POSTGRES_PORT), _port("patroni", PATRONI_PORT)],
        "env": _postgres_env(pgc, backup_env),
        # Patroni's REST API: ready once PostgreSQL runs and follows the leader (or leads).
        "readinessProbe": {"httpGet": {"path": "/readiness", "port": "patroni"},
                           "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/liveness", "port": "patroni"},
                          "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6},
        "securityContext": container_security_context(read_only_root=False),
        "volumeMounts": mounts,
    }
    if spec.get("resources"):
        postgres["resources"] = spec["resources"]
    containers = [postgres]
    if backup:
        containers.append(_pgbackrest_server(pgc, backup_env, backup_server_resources or {}, [
            _mount("data", DATA_MOUNT), _mount("socket", SOCKET_DIR),
            _mount("pgbackrest-config", PGBACKREST_CONFIG_DIR, True), _mount("backup-tls", TLS_DIR, True),
        ] + pgc_pgbackrest_volumes(pgc, source=False)["mounts"] + [_mount("pgbackrest-tmp", "/tmp"),
                                                                    _mount("reload", RELOAD_DIR, True)]))
    if spec.get("enableMonitoring"):
        # The exporter reads the member's statistics over the socket both containers share.
        containers.append({
            "name": "exporter",
            "image": exporter_image,
            "args": ["--web.listen-address=:%d" % EXPORTER_PORT,
                     "--extend.query-path=%s/exporter-queries.yaml" % EXPORTER_CONFIG_DIR],
            "env": [{"name": "DATA_SOURCE_NAME",
                     "value": "host=%s user=%s dbname=postgres sslmode=disable" % (SOCKET_DIR, pgc["monitor_role"])}],
            "ports": [_port("metrics", EXPORTER_PORT)],
            "readinessProbe": {"httpGet": {"path": "/", "port": "metrics"}, "periodSeconds": 10},
            # Not the database's user: on the shared socket, peer authentication would let that
            # user in as the superuser. As nobody it gets its own role's trust line alone.
            "securityContext": dict(container_security_context(), runAsUser=NOBODY_UID, runAsGroup=NOBODY_UID),
            "resources": exporter_resources or {},
            "volumeMounts": [_mount("socket", SOCKET_DIR, True), _mount("patroni-config", EXPORTER_CONFIG_DIR, True)],
        })
    return {
        "serviceAccountName": names["patroni_account"],
        # The token in the postgres container alone (API_ACCESS): the exporter and pgBackRest's
        # server, which talk to no API server, do not get Patroni's.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": int(termination_grace_period),
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        # Members on different nodes where the scheduler can: losing a node loses one member.
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": pgc["selector"]}},
        }]}},
        "containers": containers,
        "volumes": volumes,
    }


def pgc_member_pods(pgc):
    """The names of the cluster's members (its StatefulSet's pods), as many as spec.replicas."""
    return member_pods(pgc["names"]["statefulset"], pgc["spec"]["replicas"])


def pgc_repository_host_pod_spec(pgc, server_resources=None):
    """The pod spec of the repository host: the pgBackRest server that serves a volume repository
    (its claim) to the members. It needs no API access, hence no token."""
    names = pgc["names"]
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [_pgbackrest_server(pgc, pgc_pgbackrest_environment(pgc), server_resources or {}, [
            _mount("repository", VOLUME_REPOSITORY_PATH), _mount("pgbackrest-config", PGBACKREST_CONFIG_DIR, True),
            _mount("backup-tls", TLS_DIR, True), _mount("tmp", "/tmp"), _mount("reload", RELOAD_DIR, True),
        ])],
        "volumes": [
            _reload_script(pgc),
            {"name": "repository", "persistentVolumeClaim": {"claimName": names["backup_claim"]}},
            _config_map("pgbackrest-config", names["pgbackrest_config"], [("repo-host.conf", "pgbackrest.conf")]),
            # A server only: the servers' certificate, not the clients'.
            _secret("backup-tls", names["backup_tls"], SERVER_TLS_KEYS),
            _empty_dir("tmp"),
        ],
    }


# Jobs that work on a member's data directory with the members' pgBackRest configuration.
LOCAL_DATA_JOBS = ("restore", "drill", "major-upgrade", "major-upgrade-check", "major-upgrade-rollback")


def pgc_job_pod_spec(pgc, job, script, env, data_claim="", resources=None, image=None, pgbackrest=True):
    """The pod spec of a backup or restore Job (jobs.pgc_backup_job_spec): ``script`` run by bash
    with the environment ``env``. The restore works on a member's own data directory (the claim
    ``data_claim``, mounted at the data directory's parent) with the members' configuration; every
    other Job reaches the primary's pgBackRest server over TLS with the Job configuration.
    ``image`` replaces the members' (a major upgrade runs the new major's); without ``pgbackrest``
    the Job has none of pgBackRest's files (a cluster without backups)."""
    names = pgc["names"]
    # The restore, the drill and a major upgrade run PostgreSQL's side of pgBackRest themselves, on
    # local data: the members' configuration (a volume repository through the repository host).
    local_data = job in LOCAL_DATA_JOBS
    mounts = [_mount("callback", CALLBACK_DIR, True), _mount("tmp", "/tmp")]
    volumes = [
        # The script that stamps the cluster when the Job ends, so that its status follows at once.
        _config_map("callback", names["patroni_config"], [(CALLBACK_SCRIPT, CALLBACK_SCRIPT)]),
        _empty_dir("tmp"),
    ]
    if pgbackrest:
        mounts[:0] = [_mount("pgbackrest-config", PGBACKREST_CONFIG_DIR, True), _mount("backup-tls", TLS_DIR, True)]
        volumes[:0] = [
            _config_map("pgbackrest-config", names["pgbackrest_config"],
                        [("pod.conf" if local_data else "job.conf", "pgbackrest.conf")]),
            # A client only: the clients' certificate, not the servers'.
            _secret("backup-tls", names["backup_tls"], TLS_CLIENT_KEYS),
        ]
        # A private CA, a GCS key: the files the object store is reached with.
        store_files = pgc_pgbackrest_volumes(pgc, source=False)
        mounts += store_files["mounts"]
        volumes += store_files["volumes"]
    pod = {
        "restartPolicy": "Never",
        # The Jobs' account: it may patch its own PostgresCluster (the stamp above) and no more. A
        # cluster without backups has none: its Jobs need no API access at all.
        "serviceAccountName": names["jobs_account"],
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
    }
    if not pgbackrest:
        pod.pop("serviceAccountName")
        pod["automountServiceAccountToken"] = False
    if pgbackrest and pgc_pgbackrest_settings(pgc)["type"] == "posix" and not local_data:
        # The Job reads and writes the repository's claim itself, on the node of the repository host
        # that holds it (ReadWriteOnce is per node).
        mounts.append(_mount("repository", VOLUME_REPOSITORY_PATH))
        volumes.append({"name": "repository", "persistentVolumeClaim": {"claimName": names["backup_claim"]}})
        pod["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {COMPONENT_LABEL: pgc["name"], JOB_LABEL: "repo-host"}},
        }]}}
    if any(e["name"] == "PGSSLROOTCERT" for e in env):
        # A Job that connects to the database checks its certificate against the cluster's CA.
        mounts.append(_mount("tls", CLIENT_CA_DIR, True))
        volumes.append(_secret("tls", pgc_server_tls_secret(pgc), ["ca.crt"]))
    if any(e["name"] == "PGSSLCERT" for e in env):
        # It logs in as the superuser with the superuser's client certificate.
        mounts.append(_mount("superuser-tls", CLIENT_TLS_DIR, True))
        volumes.append(_secret("superuser-tls", names["superuser_tls"], ["tls.crt", "tls.key"]))
    if job == "drill":
        # The drill's copy lives and dies with its pod: never one of the cluster's claims.
        mounts.append(_mount("scratch", DRILL_SCRATCH))
        volumes.append({"name": "scratch", "emptyDir": {"sizeLimit": pgc_pgbackrest_settings(pgc)["drill"]["scratchSize"]}})
    if data_claim:
        mounts.append(_mount("data", DATA_MOUNT))
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": data_claim}})
    container = {
        "name": JOB_CONTAINER,
        "image": image or member_image(pgc),
        "command": ["bash", "-o", "pipefail", "-c", script],
        "env": env,
        # The script's JSON line on success; the end of its log when it fails.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    if resources:
        container["resources"] = resources
    pod["containers"] = [container]
    pod["volumes"] = volumes
    return pod
