# Copyright: pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn a cluster's backup settings into pgBackRest's configuration.

The shape of ``spec.backup`` (every field optional; without ``repository`` a cluster has no
physical backups and its WAL is not archived)::

    spec:
      backupSchedule: "0 2 * * *"      # full backups (the CronJob's schedule)
      backupRetention: 7               # full backups kept (repo1-retention-full); older ones and
                                       # the WAL only they need are expired after each backup
      backup:
        repository:                    # exactly one of s3 or volume
          s3:
            endpoint: s3.eu-west-1.amazonaws.com   # host or host:port, always HTTPS
            bucket: pg-backups
            region: eu-west-1          # default us-east-1
            path: /pgc/prod/db         # default /pgc/<namespace>/<name>
            uriStyle: host             # host (virtual-hosted) or path
            verifyTLS: true
            caSecretName: ""           # a Secret with ca.crt, for a private CA
            secretName: db-backup-s3   # keys access-key-id and secret-access-key
          volume:                      # a PersistentVolumeClaim <name>-backup (posix repository)
            size: 20Gi
            storageClassName: ""
        encryption: true               # aes-256-cbc; default true for s3, false for volume
        encryptionSecretName: ""       # default <name>-backup-encryption, key passphrase
        processMax: 2                  # parallel compression and transfer processes
        logical:                       # pg_dump -Fc of single databases, beside the physical backups
          schedule: "30 3 * * *"
          databases: [app]             # default: the application database of the credentials
          retention: 7                 # dumps kept per database

Secrets never reach the rendered file: pgBackRest reads them from the environment that the
pod or Job sets from the Secrets above (``PGBACKREST_REPO1_S3_KEY``,
``PGBACKREST_REPO1_S3_KEY_SECRET``, ``PGBACKREST_REPO1_CIPHER_PASS``).
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError
from ansible_collections.postgres.cluster.plugins.filter.pgc import PGDATA, POSTGRES_PORT

# Where a database pod or a backup Job finds things (the StatefulSet and Job templates mount them).
PGBACKREST_CONFIG = "/etc/pgbackrest/pgbackrest.conf"
SOCKET_PATH = "/var/run/postgresql"
VOLUME_REPOSITORY_PATH = "/var/lib/pgbackrest"
CA_FILE = "/etc/pgc/backup-ca/ca.crt"
LOCK_PATH = "/tmp/pgbackrest"

# The environment variables pgBackRest reads its secrets from, and the Secret keys they come from.
ENV_S3_KEY = "PGBACKREST_REPO1_S3_KEY"
ENV_S3_KEY_SECRET = "PGBACKREST_REPO1_S3_KEY_SECRET"
ENV_CIPHER_PASS = "PGBACKREST_REPO1_CIPHER_PASS"
S3_SECRET_KEYS = {ENV_S3_KEY: "access-key-id", ENV_S3_KEY_SECRET: "secret-access-key"}
ENCRYPTION_SECRET_KEY = "passphrase"
ENCRYPTION_SECRET_SUFFIX = "-backup-encryption"
VOLUME_CLAIM_SUFFIX = "-backup"

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
VOLUME_DEFAULTS = {"size": "10Gi", "storageClassName": ""}
LOGICAL_DEFAULTS = {"schedule": "", "databases": [], "retention": 7}


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y", "on")
    return bool(value)


def pgc_pgbackrest_settings(pgc):
    """Return ``spec.backup`` with its defaults applied, plus ``enabled``, ``type`` (s3, posix or
    none), ``retention_full``, ``stanza``, ``encryption_secret`` and ``volume_claim``."""
    spec = pgc["spec"]
    backup = dict(spec.get("backup") or {})
    repository = dict(backup.get("repository") or {})
    kinds = [k for k in ("s3", "volume") if repository.get(k) is not None]
    if len(kinds) > 1:
        raise AnsibleFilterError("spec.backup.repository takes one of s3 or volume, not both")
    kind = kinds[0] if kinds else ""
    s3 = None
    volume = None
    if kind == "s3":
        s3 = {**S3_DEFAULTS, **{k: v for k, v in repository["s3"].items() if v is not None}}
        s3["verifyTLS"] = _truthy(s3["verifyTLS"])
        s3["path"] = s3["path"] or "/pgc/%s/%s" % (pgc["namespace"], pgc["name"])
        if not s3["path"].startswith("/"):
            s3["path"] = "/" + s3["path"]
    elif kind == "volume":
        volume = {**VOLUME_DEFAULTS, **{k: v for k, v in repository["volume"].items() if v is not None}}
    encryption = backup.get("encryption")
    encryption = (kind == "s3") if encryption is None else _truthy(encryption)
    logical = {**LOGICAL_DEFAULTS, **{k: v for k, v in (backup.get("logical") or {}).items() if v is not None}}
    logical["databases"] = list(logical["databases"]) or [spec.get("credentials", {}).get("appDatabase") or "app"]
    retention = spec.get("backupRetention")
    return {
        "enabled": bool(kind),
        "type": {"s3": "s3", "volume": "posix"}.get(kind, "none"),
        "stanza": pgc["name"],
        "s3": s3,
        "volume": volume,
        "volume_claim": pgc["name"] + VOLUME_CLAIM_SUFFIX if volume else "",
        "encryption": encryption,
        "encryption_secret": backup.get("encryptionSecretName") or pgc["name"] + ENCRYPTION_SECRET_SUFFIX,
        "process_max": max(1, int(backup.get("processMax") or 2)),
        "retention_full": int(retention) if retention else None,
        "logical": logical,
    }


def _split_endpoint(endpoint):
    """host[:port] from an endpoint that may carry a scheme or a path."""
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", str(endpoint).strip(), flags=re.I).split("/", 1)[0]
    match = re.fullmatch(r"(\[[^\]]+\]|[^:]+)(?::(\d+))?", text)
    if not text or not match:
        raise AnsibleFilterError("spec.backup.repository.s3.endpoint %r is not a host or host:port" % endpoint)
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
                raise AnsibleFilterError("pgbackrest.conf option %s has a line break" % key)
            lines.append("%s=%s" % (key, text))
    return "\n".join(lines) + "\n"


def pgc_pgbackrest_config(pgc, pg_path=PGDATA, socket_path=SOCKET_PATH, port=POSTGRES_PORT, repo_path="",
                          ca_file="", options=None):
    """Return pgbackrest.conf (INI text) of a cluster: one stanza named after it.

    ``pg_path``, ``socket_path``, ``port`` and ``repo_path`` (the posix repository's mount) default
    to where a database pod has them; ``ca_file`` is where the S3 CA of ``caSecretName`` is mounted;
    ``options`` adds or overrides global options (a null value removes one).
    """
    settings = pgc_pgbackrest_settings(pgc)
    if not settings["enabled"]:
        raise AnsibleFilterError("spec.backup.repository is not set: the cluster has no backup repository")
    repo = {}
    if settings["type"] == "s3":
        s3 = settings["s3"]
        for field in ("endpoint", "bucket"):
            if not s3[field]:
                raise AnsibleFilterError("spec.backup.repository.s3.%s is required" % field)
        host, s3_port = _split_endpoint(s3["endpoint"])
        if s3["uriStyle"] not in ("host", "path"):
            raise AnsibleFilterError("spec.backup.repository.s3.uriStyle must be host or path, not %r" % s3["uriStyle"])
        repo.update({
            "repo1-type": "s3",
            "repo1-path": s3["path"],
            "repo1-s3-endpoint": host,
            "repo1-s3-bucket": s3["bucket"],
            "repo1-s3-region": s3["region"],
            "repo1-s3-uri-style": s3["uriStyle"],
            "repo1-storage-port": s3_port,
            "repo1-storage-verify-tls": s3["verifyTLS"],
            "repo1-storage-ca-file": (ca_file or CA_FILE) if (s3["caSecretName"] or ca_file) else None,
        })
    else:
        repo.update({"repo1-type": "posix", "repo1-path": repo_path or VOLUME_REPOSITORY_PATH})
    # Bundles pack small files together: far fewer objects, which is what object stores charge for
    # in time, and nothing lost on a volume.
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
    for key, value in (options or {}).items():
        if value is None:
            general.pop(key, None)
        else:
            general[key] = value
    stanza = {"pg1-path": pg_path, "pg1-port": port, "pg1-socket-path": socket_path}
    return _ini([("global", general), (settings["stanza"], stanza)])


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


def pgc_pgbackrest_environment(pgc):
    """The environment of a pod or Job that runs pgBackRest: a list of EnvVar objects taking the
    S3 keys and the cipher passphrase from their Secrets (nothing secret is inlined)."""
    settings = pgc_pgbackrest_settings(pgc)
    env = [{"name": "PGBACKREST_STANZA", "value": settings["stanza"]},
           {"name": "PGBACKREST_CONFIG", "value": PGBACKREST_CONFIG}]
    if settings["type"] == "s3":
        if not settings["s3"]["secretName"]:
            raise AnsibleFilterError("spec.backup.repository.s3.secretName is required (the S3 access keys)")
        for name, key in S3_SECRET_KEYS.items():
            env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": settings["s3"]["secretName"], "key": key}}})
    if settings["encryption"]:
        env.append({"name": ENV_CIPHER_PASS, "valueFrom": {"secretKeyRef": {
            "name": settings["encryption_secret"], "key": ENCRYPTION_SECRET_KEY}}})
    return env


class FilterModule:
    """Backup filters of the postgres.cluster collection."""

    def filters(self):
        return {
            "pgc_pgbackrest_settings": pgc_pgbackrest_settings,
            "pgc_pgbackrest_config": pgc_pgbackrest_config,
            "pgc_pgbackrest_archive_command": pgc_pgbackrest_archive_command,
            "pgc_pgbackrest_restore_command": pgc_pgbackrest_restore_command,
            "pgc_pgbackrest_environment": pgc_pgbackrest_environment,
        }
