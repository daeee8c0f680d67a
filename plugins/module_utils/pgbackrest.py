# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""pgBackRest's configuration, environment and volumes of a cluster, from its backup settings.

The shape of ``spec.backup`` (every field optional; without ``repository`` a cluster has no
physical backups and its WAL is not archived)::

    spec:
      backupSchedule: "0 2 * * *"      # full backups (the CronJob's schedule)
      backupRetention: 7               # full backups kept (repo1-retention-full, default 7); older
                                       # ones and the WAL only they need are expired after each backup
      backup:
        repository:                    # exactly one of s3, gcs, azure or volume
          s3:
            endpoint: s3.eu-west-1.amazonaws.com   # host or host:port, always HTTPS
            bucket: pg-backups
            region: eu-west-1          # default us-east-1
            path: /pgc/prod/db         # default /pgc/<namespace>/<name>
            uriStyle: host             # host (virtual-hosted) or path
            verifyTLS: true
            caSecretName: ""           # a Secret with ca.crt, for a private CA
            secretName: db-backup-s3   # keys access-key-id and secret-access-key
          gcs:                         # Google Cloud Storage
            bucket: pg-backups
            path: /pgc/prod/db         # default /pgc/<namespace>/<name>
            endpoint: ""               # host[:port]; default storage.googleapis.com (emulators, private endpoints)
            keyType: service           # service (key file), token (emulators) or auto (the node's service account)
            verifyTLS: true
            caSecretName: ""
            secretName: db-backup-gcs  # key key.json (service) or token (token); mounted, not in the environment
          azure:                       # Azure Blob Storage, shared key
            account: pgbackups
            container: pg-backups
            path: /pgc/prod/db         # default /pgc/<namespace>/<name>
            endpoint: ""               # host[:port]; default blob.core.windows.net
            uriStyle: host             # host (<account>.<endpoint>) or path (<endpoint>/<account>)
            verifyTLS: true
            caSecretName: ""
            secretName: db-backup-azure   # key account-key
          volume:                      # a PersistentVolumeClaim <name>-backup (posix repository)
            size: 20Gi
            storageClassName: ""
        encryption: true               # aes-256-cbc; default true for s3, gcs and azure, false for volume
        encryptionSecretName: ""       # default <name>-backup-encryption, key passphrase
        processMax: 2                  # parallel compression and transfer processes
        logical:                       # pg_dump -Fc of single databases, beside the physical backups (s3 only)
          schedule: "30 3 * * *"
          databases: [app]             # default: the application database of the credentials
          retention: 7                 # dumps kept per database
        drill:                         # restore drills: the newest backup restored into a scratch volume,
          schedule: "0 4 * * 0"        # started with no network and no archiving, checked by pg_amcheck
          check: "SELECT count(*) > 0 FROM app.orders"   # and this SQL (one true value); optional
          scratchSize: ""              # the scratch emptyDir's limit; default spec.storageSize

Secrets never reach the rendered file: pgBackRest reads them from the environment that the
pod or Job sets from the Secrets above (``PGBACKREST_REPO1_S3_KEY``,
``PGBACKREST_REPO1_S3_KEY_SECRET``, ``PGBACKREST_REPO1_AZURE_KEY``, ``PGBACKREST_REPO1_GCS_KEY`` of
a token, ``PGBACKREST_REPO1_CIPHER_PASS``), or from files mounted from them: a GCS service-account
key (``/etc/pgc/backup-gcs/key.json``) and a private CA (``/etc/pgc/backup-ca/ca.crt``), which
``pgc_pgbackrest_volumes`` lists.

The backup Job reaches the primary through the ``pgbackrest server`` (TLS, port 8432) of each
database pod, behind the read-write Service; a volume repository is served to the pods by the
repository host ``<name>-repo``. The Secret ``<name>-backup-tls`` holds two certificates of the
cluster's CA (module_utils/tls.py): the servers' (``tls.crt``) and the clients' (``client.crt``).

A new cluster can start from another cluster's backups (the operator fills ``repository``,
``encryption`` and ``encryptionSecretName`` from the source's spec.backup when they are left out)::

    spec:
      bootstrap:
        fromBackup:
          cluster: db                  # the source cluster (same namespace): its stanza
          repository: {...}            # as spec.backup.repository
          encryption: true
          encryptionSecretName: ""
          targetTime: "2026-01-31 12:00:00+00"   # recover to this time and promote, or
          backup: 20260131-020000F               # this backup, up to its end (not both)
"""

from __future__ import annotations

import re

from ansible_collections.postgres.cluster.plugins.module_utils.names import (
    ENCRYPTION_SECRET_SUFFIX,
    NAME_SUFFIXES,
    PGDATA,
    POSTGRES_PORT,
    REPO_HOST_SUFFIX,
    VOLUME_CLAIM_SUFFIX,
)
from ansible_collections.postgres.cluster.plugins.module_utils import tls
from ansible_collections.postgres.cluster.plugins.module_utils.spec import SpecError, describe_type

# Where a database pod or a backup Job finds things (the StatefulSet and Job templates mount them).
PGBACKREST_CONFIG = "/etc/pgbackrest/pgbackrest.conf"
SOCKET_PATH = "/var/run/postgresql"
VOLUME_REPOSITORY_PATH = "/var/lib/pgbackrest"
CA_FILE = "/etc/pgc/backup-ca/ca.crt"
LOCK_PATH = "/tmp/pgbackrest"
# The cluster's backup TLS Secret (<name>-backup-tls: ca.crt; tls.crt and tls.key, the servers'
# certificate; client.crt and client.key, the clients').
TLS_DIR = "/etc/pgc/backup-tls"
TLS_PORT = 8432
# Full backups kept when spec.backupRetention is not set.
DEFAULT_RETENTION_FULL = 7
# The common name of the client certificate: the TLS servers let only it in (tls-server-auth).
TLS_CLIENT_CN = "pgc-backup"
TLS_CLIENT_KEYS = ("ca.crt", "client.crt", "client.key")
# A cluster bootstrapping from another cluster's backups: the source's configuration, object store CA and
# (for a volume) TLS Secret, mounted beside the cluster's own.
SOURCE_CONFIG = "/etc/pgbackrest/source.conf"
SOURCE_CA_FILE = "/etc/pgc/source-backup-ca/ca.crt"
SOURCE_TLS_DIR = "/etc/pgc/source-backup-tls"
# The source's Secrets serve the bootstrap alone. Once it is done the source may be deleted, and its
# Secrets with it (its <source>-backup-tls is garbage-collected with it): the members must still
# start, so every reference to them is optional.
SOURCE_OPTIONAL = True
# A GCS service-account key is read from a file (repo1-gcs-key), not from the environment.
GCS_KEY_FILE = "/etc/pgc/backup-gcs/key.json"
SOURCE_GCS_KEY_FILE = "/etc/pgc/source-backup-gcs/key.json"
GCS_KEY_SECRET_KEY = "key.json"
GCS_TOKEN_SECRET_KEY = "token"
GCS_KEY_TYPES = ("service", "token", "auto")
CA_SECRET_KEY = "ca.crt"

# The environment variables pgBackRest reads its secrets from, and the Secret keys they come from.
ENV_S3_KEY = "PGBACKREST_REPO1_S3_KEY"
ENV_S3_KEY_SECRET = "PGBACKREST_REPO1_S3_KEY_SECRET"
ENV_CIPHER_PASS = "PGBACKREST_REPO1_CIPHER_PASS"
S3_SECRET_KEYS = {ENV_S3_KEY: "access-key-id", ENV_S3_KEY_SECRET: "secret-access-key"}
ENV_AZURE_KEY = "PGBACKREST_REPO1_AZURE_KEY"
AZURE_SECRET_KEY = "account-key"
# Only a token (repo1-gcs-key-type=token) goes through the environment; a service key is a file.
ENV_GCS_KEY = "PGBACKREST_REPO1_GCS_KEY"
OBJECT_STORES = ("s3", "gcs", "azure")
ENCRYPTION_SECRET_KEY = "passphrase"

CIPHER_TYPE = "aes-256-cbc"
# Debian bookworm's pgBackRest 2.45 is linked with libzstd: zst compresses better than lz4 at a
# similar speed and far faster than the default gz.
COMPRESS_TYPE = "zst"
COMPRESS_LEVEL = 3

S3_DEFAULTS = {
    "endpoint": "",
    "bucket": "",
    "region": "us-east-1",
    "path": "",
    "uriStyle": "host",
    "verifyTLS": True,
    "caSecretName": "",
    "secretName": "",
}
GCS_DEFAULTS = {
    "bucket": "",
    "path": "",
    "endpoint": "",
    "keyType": "service",
    "verifyTLS": True,
    "caSecretName": "",
    "secretName": "",
}
AZURE_DEFAULTS = {
    "account": "",
    "container": "",
    "path": "",
    "endpoint": "",
    "uriStyle": "host",
    "verifyTLS": True,
    "caSecretName": "",
    "secretName": "",
}
STORE_DEFAULTS = {"s3": S3_DEFAULTS, "gcs": GCS_DEFAULTS, "azure": AZURE_DEFAULTS}
VOLUME_DEFAULTS = {"size": "10Gi", "storageClassName": ""}
LOGICAL_DEFAULTS = {"schedule": "", "databases": [], "retention": 7}
# spec.backup.drill: when the restore drill runs, the SQL it checks the restored copy with, and the
# size of its scratch volume (default: spec.storageSize, what the data fits in).
DRILL_DEFAULTS = {"schedule": "", "check": "", "scratchSize": ""}


def _flag(value, field):
    """A boolean of the spec. Anything else is refused, never read: verifyTLS "false" (a string)
    must not turn certificate checks off, nor encryption "false" the cipher."""
    if not isinstance(value, bool):
        raise SpecError("%s must be true or false, not %r" % (field, value))
    return value


# What each kind of repository must have, and the fields that take one of a few words.
REQUIRED_FIELDS = {"s3": ("endpoint", "bucket", "secretName"), "gcs": ("bucket",),
                   "azure": ("account", "container", "secretName"), "volume": ()}
CHOICES = {"uriStyle": ("host", "path"), "keyType": GCS_KEY_TYPES}
# A Kubernetes object name (DNS subdomain), as the Secrets and StorageClasses named here must be.
OBJECT_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SECRET_FIELDS = ("secretName", "caSecretName")
VOLUME_SIZE_RE = re.compile(r"^\d+(Gi|Mi|Ti)$")


def _of_type(value, default):
    """Whether a spec value has the type of its default: a boolean for a boolean, a string for a string."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    return isinstance(value, type(default)) and not isinstance(value, bool)


def repository_errors(repository, field):
    """What is wrong with a repository as the spec gives it (``field``: spec.backup.repository, or
    spec.bootstrap.fromBackup.repository): its shape, the type of each field, what is required,
    one message per problem, each naming the field. Empty for a repository the settings can use."""
    if not isinstance(repository, dict):
        return ["%s must be a mapping with one of s3, gcs, azure or volume, not %s" % (field, describe_type(repository))]
    kinds = OBJECT_STORES + ("volume",)
    errors = ["%s.%s is not a kind of repository (s3, gcs, azure or volume)" % (field, key)
              for key in sorted(map(str, repository)) if key not in kinds]
    given = [k for k in kinds if repository.get(k) is not None]
    if len(given) != 1:
        errors.append("%s takes exactly one of s3, gcs, azure or volume%s"
                      % (field, ", not %s" % " and ".join(given) if given else ""))
    for kind in given:
        where = "%s.%s" % (field, kind)
        store = repository[kind]
        defaults = STORE_DEFAULTS.get(kind, VOLUME_DEFAULTS)
        if not isinstance(store, dict):
            errors.append("%s must be a mapping, not %s" % (where, describe_type(store)))
            continue
        for key in sorted(store, key=str):
            value = store[key]
            if key not in defaults:
                errors.append("%s.%s is not a field of a%s %s repository" % (where, key, "n" if kind == "azure" else "", kind))
            elif value is None:
                continue
            elif not _of_type(value, defaults[key]):
                errors.append("%s.%s must be %s, not %s" % (
                    where, key, "true or false" if isinstance(defaults[key], bool) else "a string", describe_type(value)))
            elif key in CHOICES and value not in CHOICES[key]:
                errors.append("%s.%s must be one of %s, not %r" % (where, key, ", ".join(CHOICES[key]), value))
            elif key in SECRET_FIELDS + ("storageClassName",) and value and (
                    len(value) > 253 or not OBJECT_NAME_RE.fullmatch(value)):
                errors.append("%s.%s %r is not a Kubernetes object name" % (where, key, value))
            elif key == "endpoint" and value:
                try:
                    _split_endpoint(value, kind)
                except SpecError:
                    errors.append("%s.endpoint %r is not a host or host:port" % (where, value))
            elif key == "size" and not VOLUME_SIZE_RE.fullmatch(value):
                errors.append("%s.size %r must be a size such as 10Gi (Mi, Gi or Ti)" % (where, value))
        settings = {**defaults, **{k: v for k, v in store.items() if v is not None and k in defaults}}
        required = REQUIRED_FIELDS[kind]
        if kind == "gcs" and settings["keyType"] != "auto":
            required += ("secretName",)
        errors += ["%s.%s is required" % (where, key) for key in required if not settings[key]]
    return errors


def _mapping(value, field):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError("%s must be a mapping, not %r" % (field, value))
    return dict(value)


def pgc_pgbackrest_settings(pgc):
    """Return ``spec.backup`` with its defaults applied, plus ``enabled``, ``type`` (s3, gcs, azure,
    posix or none), ``store`` (the settings of s3, gcs or azure, else None), ``retention_full``,
    ``stanza``, ``encryption_secret`` and ``volume_claim``."""
    spec = pgc["spec"]
    # Where these settings are in the spec: spec.backup, or the source's (spec.bootstrap.fromBackup).
    field = pgc.get("backup_field", "spec.backup")
    backup = _mapping(spec.get("backup"), field)
    repository = _mapping(backup.get("repository"), field + ".repository")
    kinds = [k for k in OBJECT_STORES + ("volume",) if repository.get(k) is not None]
    if len(kinds) > 1:
        raise SpecError("%s.repository takes exactly one of s3, gcs, azure or volume, not %s"
                        % (field, " and ".join(kinds)))
    kind = kinds[0] if kinds else ""
    stores = dict.fromkeys(OBJECT_STORES)
    volume = None
    if kind in OBJECT_STORES:
        given = _mapping(repository[kind], "%s.repository.%s" % (field, kind))
        store = {**STORE_DEFAULTS[kind], **{k: v for k, v in given.items() if v is not None}}
        store["verifyTLS"] = _flag(store["verifyTLS"], "%s.repository.%s.verifyTLS" % (field, kind))
        store["path"] = store["path"] or "/pgc/%s/%s" % (pgc["namespace"], pgc["name"])
        if not store["path"].startswith("/"):
            store["path"] = "/" + store["path"]
        stores[kind] = store
    elif kind == "volume":
        given = _mapping(repository["volume"], field + ".repository.volume")
        volume = {**VOLUME_DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    encryption = backup.get("encryption")
    encryption = (kind in OBJECT_STORES) if encryption is None else _flag(encryption, field + ".encryption")
    logical = {**LOGICAL_DEFAULTS, **{k: v for k, v in _mapping(backup.get("logical"), field + ".logical").items()
                                      if v is not None}}
    logical["databases"] = list(logical["databases"]) or [spec.get("credentials", {}).get("appDatabase") or "app"]
    drill = {**DRILL_DEFAULTS, **{k: v for k, v in _mapping(backup.get("drill"), field + ".drill").items()
                                  if v is not None}}
    drill["scratchSize"] = drill["scratchSize"] or spec.get("storageSize") or "1Gi"
    retention = spec.get("backupRetention")
    return {
        "enabled": bool(kind),
        "type": {"s3": "s3", "gcs": "gcs", "azure": "azure", "volume": "posix"}.get(kind, "none"),
        "stanza": pgc["name"],
        **stores,
        "store": stores.get(kind),
        "volume": volume,
        "volume_claim": pgc["name"] + VOLUME_CLAIM_SUFFIX if volume else "",
        "encryption": encryption,
        "encryption_secret": backup.get("encryptionSecretName") or pgc["name"] + ENCRYPTION_SECRET_SUFFIX,
        "process_max": max(1, int(backup.get("processMax") or 2)),
        # Never unbounded: a repository that keeps everything fills, and archiving then stops.
        "retention_full": int(retention) if retention else DEFAULT_RETENTION_FULL,
        "logical": logical,
        "drill": drill,
    }


def _split_endpoint(endpoint, kind="s3"):
    """host[:port] from an endpoint that may carry a scheme or a path."""
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", str(endpoint).strip(), flags=re.I).split("/", 1)[0]
    match = re.fullmatch(r"(\[[^\]]+\]|[^:]+)(?::(\d+))?", text)
    if not text or not match:
        raise SpecError("spec.backup.repository.%s.endpoint %r is not a host or host:port" % (kind, endpoint))
    return match.group(1), int(match.group(2)) if match.group(2) else None


def _ini(sections):
    lines = []
    for name, options in sections:
        if lines:
            lines.append("")
        lines.append("[%s]" % name)
        for key, value in options.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "y" if value else "n"
            text = str(value)
            if "\n" in text:
                raise SpecError("pgbackrest.conf option %s has a line break" % key)
            lines.append("%s=%s" % (key, text))
    return "\n".join(lines) + "\n"


ROLES = ("pod", "job", "repo-host", "source", "local")


def _required(kind, store, *fields):
    for field in fields:
        if not store[field]:
            raise SpecError("spec.backup.repository.%s.%s is required" % (kind, field))


def _uri_style(kind, store):
    if store["uriStyle"] not in ("host", "path"):
        raise SpecError("spec.backup.repository.%s.uriStyle must be host or path, not %r"
                        % (kind, store["uriStyle"]))
    return store["uriStyle"]


def _gcs_key_type(store):
    if store["keyType"] not in GCS_KEY_TYPES:
        raise SpecError("spec.backup.repository.gcs.keyType must be one of %s, not %r"
                        % (", ".join(GCS_KEY_TYPES), store["keyType"]))
    return store["keyType"]


def _object_store(settings, ca_file, default_ca_file, gcs_key_file):
    """repo1-* options of an S3, GCS or Azure repository."""
    kind = settings["type"]
    store = settings[kind]
    if kind == "s3":
        _required(kind, store, "endpoint", "bucket")
        host, port = _split_endpoint(store["endpoint"])
        repo = {
            "repo1-s3-endpoint": host,
            "repo1-s3-bucket": store["bucket"],
            "repo1-s3-region": store["region"],
            "repo1-s3-uri-style": _uri_style(kind, store),
        }
    elif kind == "gcs":
        _required(kind, store, "bucket")
        host, port = _split_endpoint(store["endpoint"], kind) if store["endpoint"] else (None, None)
        key_type = _gcs_key_type(store)
        repo = {
            "repo1-gcs-bucket": store["bucket"],
            # pgBackRest's GCS driver ignores repo1-storage-port: the port goes with the endpoint.
            "repo1-gcs-endpoint": "%s:%d" % (host, port) if port else host,
            "repo1-gcs-key-type": key_type,
            # A token comes from the environment (PGBACKREST_REPO1_GCS_KEY); auto needs no key.
            "repo1-gcs-key": gcs_key_file if key_type == "service" else None,
        }
    else:
        _required(kind, store, "account", "container")
        host, port = _split_endpoint(store["endpoint"], kind) if store["endpoint"] else (None, None)
        repo = {
            "repo1-azure-account": store["account"],
            "repo1-azure-container": store["container"],
            "repo1-azure-endpoint": host,
            "repo1-azure-uri-style": _uri_style(kind, store),
        }
    return {
        "repo1-type": kind,
        "repo1-path": store["path"],
        **repo,
        "repo1-storage-port": port if kind != "gcs" else None,
        "repo1-storage-verify-tls": store["verifyTLS"],
        "repo1-storage-ca-file": (ca_file or default_ca_file) if (store["caSecretName"] or ca_file) else None,
    }


def _repository(settings, where, repo_path, ca_file, default_ca_file, repo_host, repo_host_port, tls_dir,
                gcs_key_file):
    """repo1-* options of a repository: ``where`` is local (an object store, or the volume mounted
    here) or remote (the volume, through the repository host's TLS server)."""
    if settings["type"] in OBJECT_STORES:
        return _object_store(settings, ca_file, default_ca_file, gcs_key_file)
    if where == "remote":
        # The repository host owns the volume: its configuration has the path and the cipher.
        return {
            "repo1-host": repo_host,
            "repo1-host-type": "tls",
            "repo1-host-port": repo_host_port,
            "repo1-host-cert-file": "%s/client.crt" % tls_dir,
            "repo1-host-key-file": "%s/client.key" % tls_dir,
            "repo1-host-ca-file": "%s/ca.crt" % tls_dir,
        }
    return {"repo1-type": "posix", "repo1-path": repo_path or VOLUME_REPOSITORY_PATH}


def _tls_server(stanza, tls_dir, address, port):
    return {
        "tls-server-address": address,
        "tls-server-port": port,
        "tls-server-cert-file": "%s/tls.crt" % tls_dir,
        "tls-server-key-file": "%s/tls.key" % tls_dir,
        "tls-server-ca-file": "%s/ca.crt" % tls_dir,
        # Only a client certificate of the cluster's CA with this common name, and for this stanza.
        "tls-server-auth": "%s=%s" % (TLS_CLIENT_CN, stanza),
    }


def _source_pgc(pgc):
    """A cluster fact for the source of spec.bootstrap.fromBackup: its name and backup settings."""
    source = ((pgc["spec"].get("bootstrap") or {}).get("fromBackup")) or None
    if not source:
        return None
    if not source.get("cluster"):
        raise SpecError("spec.bootstrap.fromBackup.cluster is required (the source cluster's name)")
    if not source.get("repository"):
        raise SpecError("spec.bootstrap.fromBackup.repository is required (the source cluster's "
                        "spec.backup.repository)")
    if source.get("targetTime") and source.get("backup"):
        raise SpecError("spec.bootstrap.fromBackup takes targetTime or backup, not both")
    backup = {"repository": source["repository"], "encryption": source.get("encryption"),
              "encryptionSecretName": source.get("encryptionSecretName") or ""}
    return {"name": source["cluster"], "namespace": pgc["namespace"], "spec": {"backup": backup},
            "from_backup": source, "backup_field": "spec.bootstrap.fromBackup"}


def pgc_pgbackrest_config(pgc, role="pod", pg_host="", repo_host="", tls_dir=TLS_DIR, pg_path=PGDATA,
                          socket_path=SOCKET_PATH, port=POSTGRES_PORT, repo_path="", ca_file="", options=None,
                          tls_address="*", tls_port=TLS_PORT, pg_host_port=TLS_PORT, repo_host_port=TLS_PORT,
                          gcs_key_file=""):
    """Return pgbackrest.conf (INI text) of a cluster: one stanza named after it.

    ``role`` is who reads the file:

    * ``pod``: a database pod. PostgreSQL is local; an object store (S3, GCS, Azure) is reached
      directly, a volume through the repository host ``<name>-repo.<namespace>.svc`` (or
      ``repo_host``). The pod's ``pgbackrest server`` (TLS) lets the backup Job reach PostgreSQL.
    * ``job``: the backup Job. PostgreSQL is the primary's ``pgbackrest server`` behind the read-write
      Service ``<name>.<namespace>.svc`` (or ``pg_host``); the repository is local (an object
      store, or the volume mounted at ``repo_path``).
    * ``repo-host``: the repository host of a volume: the repository local, and its TLS server.
    * ``source``: a pod of a cluster bootstrapping from another cluster's backups
      (spec.bootstrap.fromBackup): the stanza and repository are the source's, PostgreSQL is local.
    * ``local``: PostgreSQL and the repository both local.

    ``pg_path``, ``socket_path`` and ``port`` are where PostgreSQL has them in a database pod;
    ``ca_file`` is where the object store's CA of ``caSecretName`` is mounted and ``gcs_key_file``
    the GCS service-account key (defaults: where pgc_pgbackrest_volumes mounts them); ``tls_dir`` holds ca.crt,
    tls.crt, tls.key, client.crt and client.key of the cluster's backup TLS Secret; ``tls_address`` and ``tls_port`` are
    where the TLS server listens, ``pg_host_port`` and ``repo_host_port`` where the remote ones do;
    ``options`` adds or overrides global options (a null value removes one).
    """
    if role not in ROLES:
        raise SpecError("pgc_pgbackrest_config: role must be one of %s, not %r" % (", ".join(ROLES), role))
    if role == "source":
        source = _source_pgc(pgc)
        if not source:
            raise SpecError("spec.bootstrap.fromBackup is not set: the cluster has no source backup")
        pgc = source
        if tls_dir == TLS_DIR:
            tls_dir = SOURCE_TLS_DIR
    settings = pgc_pgbackrest_settings(pgc)
    if not settings["enabled"]:
        raise SpecError("spec.backup.repository is not set: the cluster has no backup repository")
    name, namespace = pgc["name"], pgc["namespace"]
    if role == "repo-host" and settings["type"] != "posix":
        raise SpecError("only a volume repository has a repository host")
    remote_repo = role in ("pod", "source") and settings["type"] == "posix"
    repo = _repository(settings, "remote" if remote_repo else "local", repo_path, ca_file,
                       SOURCE_CA_FILE if role == "source" else CA_FILE,
                       repo_host or "%s%s.%s.svc" % (name, REPO_HOST_SUFFIX, namespace), repo_host_port, tls_dir,
                       gcs_key_file or (SOURCE_GCS_KEY_FILE if role == "source" else GCS_KEY_FILE))
    if not remote_repo:
        # Bundles pack small files together: far fewer objects, which is what object stores charge
        # for in time, and nothing lost on a volume.
        repo["repo1-bundle"] = True
        if settings["retention_full"]:
            repo["repo1-retention-full-type"] = "count"
            repo["repo1-retention-full"] = settings["retention_full"]
        if settings["encryption"]:
            repo["repo1-cipher-type"] = CIPHER_TYPE
    general = {
        "process-max": settings["process_max"],
        "compress-type": COMPRESS_TYPE,
        "compress-level": COMPRESS_LEVEL,
        # archive-push runs in PostgreSQL's archiver, one segment at a time, and reports only what is
        # stored: no spool to lose with the pod.
        "archive-async": False,
        # A backup starts with an immediate checkpoint instead of waiting for the next one.
        "start-fast": True,
        "lock-path": LOCK_PATH,
        # Logs go to the container's output; the root file system may be read-only.
        "log-level-console": "info",
        "log-level-stderr": "warn",
        "log-level-file": "off",
    }
    general.update(repo)
    if role in ("pod", "repo-host"):
        general.update(_tls_server(name, tls_dir, tls_address, tls_port))
    for key, value in (options or {}).items():
        if value is None:
            general.pop(key, None)
        else:
            general[key] = value
    sections = [("global", general)]
    local_pg = {"pg1-path": pg_path, "pg1-port": port, "pg1-socket-path": socket_path}
    if role == "job":
        # pg1-path, pg1-port and pg1-socket-path are the pod's: the remote side is told them.
        sections.append((name, {
            "pg1-host": pg_host or "%s.%s.svc" % (name, namespace),
            "pg1-host-type": "tls",
            "pg1-host-port": pg_host_port,
            "pg1-host-cert-file": "%s/client.crt" % tls_dir,
            "pg1-host-key-file": "%s/client.key" % tls_dir,
            "pg1-host-ca-file": "%s/ca.crt" % tls_dir,
            **local_pg,
        }))
    elif role != "repo-host":
        sections.append((name, local_pg))
    return _ini(sections)


def _pgbackrest(pgc, config):
    command = "pgbackrest"
    if config:
        command += " --config=%s" % config
    return command + " --stanza=%s" % pgc["name"]


def pgc_pgbackrest_archive_command(pgc, config=""):
    """PostgreSQL's archive_command (set through Patroni) that pushes each WAL segment."""
    return _pgbackrest(pgc, config) + " archive-push %p"


def pgc_pgbackrest_restore_command(pgc, config=""):
    """PostgreSQL's restore_command (set through Patroni) that fetches a WAL segment."""
    return _pgbackrest(pgc, config) + ' archive-get %f "%p"'


def _store_secret_env(settings, where):
    """(variable, Secret, key) of each secret of an object store that pgBackRest takes from the
    environment, with the cluster's own variable names."""
    kind = settings["type"]
    if kind not in OBJECT_STORES:
        return []
    store = settings[kind]
    if kind == "gcs" and _gcs_key_type(store) == "auto":
        return []
    if not store["secretName"]:
        what = {"s3": "the S3 access keys", "gcs": "the GCS key", "azure": "the Azure account key"}[kind]
        raise SpecError("%s.%s.secretName is required (%s)" % (where, kind, what))
    if kind == "s3":
        return [(name, store["secretName"], key) for name, key in S3_SECRET_KEYS.items()]
    if kind == "azure":
        return [(ENV_AZURE_KEY, store["secretName"], AZURE_SECRET_KEY)]
    if store["keyType"] == "token":
        return [(ENV_GCS_KEY, store["secretName"], GCS_TOKEN_SECRET_KEY)]
    return []


def pgc_pgbackrest_environment(pgc):
    """The environment of a pod or Job that runs pgBackRest: a list of EnvVar objects taking the
    object store's keys and the cipher passphrase from their Secrets (nothing secret is inlined).
    A GCS service-account key is a file (pgc_pgbackrest_volumes), not a variable."""
    settings = pgc_pgbackrest_settings(pgc)
    env = [{"name": "PGBACKREST_STANZA", "value": settings["stanza"]},
           {"name": "PGBACKREST_CONFIG", "value": PGBACKREST_CONFIG}]
    for name, secret, key in _store_secret_env(settings, "spec.backup.repository"):
        env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    if settings["encryption"]:
        env.append({"name": ENV_CIPHER_PASS, "valueFrom": {"secretKeyRef": {
            "name": settings["encryption_secret"], "key": ENCRYPTION_SECRET_KEY}}})
    return env


# The source of spec.bootstrap.fromBackup in a database pod's environment: names of their own, so
# that the cluster's PGBACKREST_* (its own repository) stay as they are.
ENV_SOURCE_S3_KEY = "PGC_SOURCE_REPO1_S3_KEY"
ENV_SOURCE_S3_KEY_SECRET = "PGC_SOURCE_REPO1_S3_KEY_SECRET"
ENV_SOURCE_CIPHER_PASS = "PGC_SOURCE_REPO1_CIPHER_PASS"
ENV_SOURCE_AZURE_KEY = "PGC_SOURCE_REPO1_AZURE_KEY"
ENV_SOURCE_GCS_KEY = "PGC_SOURCE_REPO1_GCS_KEY"
SOURCE_ENV_NAMES = {ENV_S3_KEY: ENV_SOURCE_S3_KEY, ENV_S3_KEY_SECRET: ENV_SOURCE_S3_KEY_SECRET,
                    ENV_AZURE_KEY: ENV_SOURCE_AZURE_KEY, ENV_GCS_KEY: ENV_SOURCE_GCS_KEY}
BOOTSTRAP_METHOD = "pgc_from_backup"
BOOTSTRAP_SCRIPT = "pgc-bootstrap-from-backup.sh"
STANZA_CREATE_SCRIPT = "pgc-stanza-create.sh"


def pgc_pgbackrest_source_environment(pgc):
    """The environment of the database pods of a cluster bootstrapping from another cluster's backups
    (spec.bootstrap.fromBackup): EnvVar objects, the source's secrets by Secret reference. Empty
    without fromBackup."""
    source = _source_pgc(pgc)
    if not source:
        return []
    settings = pgc_pgbackrest_settings(source)
    if not settings["enabled"]:
        raise SpecError("spec.bootstrap.fromBackup.repository names no repository (s3, gcs, azure or volume)")
    env = [{"name": "PGC_SOURCE_STANZA", "value": settings["stanza"]},
           {"name": "PGC_SOURCE_CONFIG", "value": SOURCE_CONFIG}]
    if settings["type"] in OBJECT_STORES:
        for name, secret, key in _store_secret_env(settings, "spec.bootstrap.fromBackup.repository"):
            env.append({"name": SOURCE_ENV_NAMES[name], "valueFrom": {"secretKeyRef": {
                "name": secret, "key": key, "optional": SOURCE_OPTIONAL}}})
        # A volume's cipher is its repository host's business.
        if settings["encryption"]:
            env.append({"name": ENV_SOURCE_CIPHER_PASS, "valueFrom": {"secretKeyRef": {
                "name": settings["encryption_secret"], "key": ENCRYPTION_SECRET_KEY, "optional": SOURCE_OPTIONAL}}})
    from_backup = source["from_backup"]
    if from_backup.get("targetTime"):
        env.append({"name": "PGC_RESTORE_TARGET_TIME", "value": str(from_backup["targetTime"])})
    if from_backup.get("backup"):
        env.append({"name": "PGC_RESTORE_SET", "value": str(from_backup["backup"])})
    return env


def _secret_volume(name, secret, key, mount_dir, mode=None, optional=False):
    source = {"secretName": secret, "items": [{"key": key, "path": key}]}
    if mode is not None:
        source["defaultMode"] = mode
    if optional:
        source["optional"] = True
    return {"name": name, "secret": source}, {"name": name, "mountPath": mount_dir, "readOnly": True}


def _store_volumes(settings, prefix, where, ca_file, gcs_key_file, optional=False):
    kind = settings["type"]
    if kind not in OBJECT_STORES:
        return []
    store = settings[kind]
    out = []
    if store["caSecretName"]:
        out.append(_secret_volume(prefix + "backup-ca", store["caSecretName"], CA_SECRET_KEY,
                                  ca_file.rsplit("/", 1)[0], optional=optional))
    if kind == "gcs" and _gcs_key_type(store) == "service":
        if not store["secretName"]:
            raise SpecError("%s.gcs.secretName is required (the GCS key)" % where)
        # A private key: readable by the owner and the pod's fsGroup only, as the other backup Secrets.
        out.append(_secret_volume(prefix + "backup-gcs", store["secretName"], GCS_KEY_SECRET_KEY,
                                  gcs_key_file.rsplit("/", 1)[0], 0o440, optional))
    return out


def pgc_pgbackrest_volumes(pgc, source=True):
    """The Pod volumes and volumeMounts of the files an object-store repository is reached with:
    ``{"volumes": [...], "mounts": [...]}``. The CA of caSecretName (``backup-ca``, at
    /etc/pgc/backup-ca) and a GCS service-account key (``backup-gcs``, at /etc/pgc/backup-gcs), and,
    unless ``source`` is false, for the source of spec.bootstrap.fromBackup the same as
    ``source-backup-ca`` and ``source-backup-gcs`` (/etc/pgc/source-backup-*). The paths are those
    pgc_pgbackrest_config writes by default. Empty lists for a volume repository or none. The
    source's are optional (SOURCE_OPTIONAL)."""
    pairs = _store_volumes(pgc_pgbackrest_settings(pgc), "", "spec.backup.repository", CA_FILE, GCS_KEY_FILE)
    source = _source_pgc(pgc) if source else None
    if source:
        pairs += _store_volumes(pgc_pgbackrest_settings(source), "source-", "spec.bootstrap.fromBackup.repository",
                                SOURCE_CA_FILE, SOURCE_GCS_KEY_FILE, optional=SOURCE_OPTIONAL)
    return {"volumes": [v for v, _ in pairs], "mounts": [m for _, m in pairs]}


def pgc_patroni_backup_config(pgc, config="", scripts_dir=""):
    """Return what backups add to Patroni's configuration (pgc_patroni_config), to be deep-merged
    into it: WAL archiving and the replicas' restore_command when spec.backup.repository is set,
    and the custom bootstrap method that restores spec.bootstrap.fromBackup. Empty when neither.

    ``config`` is pgbackrest.conf when not at its default path, ``scripts_dir`` where the image's
    scripts are when not on the PATH.
    """
    fragment = {}
    if pgc_pgbackrest_settings(pgc)["enabled"]:
        fragment["bootstrap"] = {"dcs": {"postgresql": {"parameters": {
            "archive_mode": "on",
            "archive_command": pgc_pgbackrest_archive_command(pgc, config),
        }}}}
        # Written by Patroni for every replica (it drops recovery_target* here): a replica that fell
        # behind the primary's WAL takes it from the repository.
        fragment["postgresql"] = {"recovery_conf": {"restore_command": pgc_pgbackrest_restore_command(pgc, config)}}
    if _source_pgc(pgc):
        prefix = scripts_dir.rstrip("/") + "/" if scripts_dir else ""
        fragment.setdefault("bootstrap", {})
        fragment["bootstrap"]["method"] = BOOTSTRAP_METHOD
        fragment["bootstrap"][BOOTSTRAP_METHOD] = {
            "command": prefix + BOOTSTRAP_SCRIPT,
            # pgBackRest writes the recovery settings (target, promote, the source's restore_command);
            # Patroni keeps them until the first promotion, then drops them.
            "keep_existing_recovery_conf": True,
        }
    return fragment


def pgc_backup_tls_client_cn(pgc=None):
    """The common name of the backup certificate, which the TLS servers authorize (tls-server-auth)."""
    return TLS_CLIENT_CN


def _tls_names(pgc, extra_names):
    name, namespace = pgc["name"], pgc["namespace"]
    names = []
    for host in (name, name + REPO_HOST_SUFFIX):
        names += [host, "%s.%s.svc" % (host, namespace), "%s.%s.svc.cluster.local" % (host, namespace)]
    headless = name + NAME_SUFFIXES["service_headless"]
    names += ["*.%s.%s.svc" % (headless, namespace), "*.%s.%s.svc.cluster.local" % (headless, namespace)]
    names += [str(n) for n in (extra_names or []) if str(n)]
    return list(dict.fromkeys(names))


def pgc_backup_leaves(pgc, extra_names=None):
    """pgBackRest's two certificates of a cluster (tls.Leaf): the servers' (``tls.crt``: the
    database pods' and the repository host's names) and the clients' (``client.crt``: the common
    name the servers let in, and no name a server could be reached by). None without a repository."""
    if extra_names is None and not pgc_pgbackrest_settings(pgc)["enabled"]:
        return []
    return [tls.Leaf("tls", pgc["name"] + NAME_SUFFIXES["backup_tls"], _tls_names(pgc, extra_names), server=True),
            tls.Leaf("client", TLS_CLIENT_CN, client=True)]


def pgc_backup_tls(pgc, extra_names=None):
    """A new CA and pgBackRest's server and client certificates, nothing kept:
    ``{"ca.crt", "tls.crt", "tls.key", "client.crt", "client.key"}`` (a cluster run without the operator)."""
    ca = tls.new_ca("pgc backup CA", "%s/%s" % (pgc["namespace"], pgc["name"]))
    bundle = {"ca.crt": ca["tls.crt"]}
    for leaf in pgc_backup_leaves(pgc, extra_names):
        bundle[leaf.keys[0]], bundle[leaf.keys[1]] = tls.sign(ca, leaf.common_name, leaf.names, leaf.server,
                                                              leaf.client)
    return bundle
