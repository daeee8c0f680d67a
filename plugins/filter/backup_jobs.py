# Copyright: pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that build the Jobs of a cluster's backups and restores, and read their outcome.

Every such Job runs the database image's scripts (images/postgres/scripts) with the cluster's
pgBackRest configuration (ConfigMap ``<name>-pgbackrest``) and secrets from the environment.
Its pod writes one JSON line of results to its termination message, which the operator reads
back from the pod's status (plugins/module_utils/backup_jobs.py): no exec, no log scraping.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.utils.unsafe_proxy import wrap_var
from ansible_collections.postgres.cluster.plugins.filter.backup import (
    pgc_pgbackrest_environment,
    pgc_pgbackrest_settings,
    pgc_pgbackrest_volumes,
)
from ansible_collections.postgres.cluster.plugins.filter.pgc import PGDATA, POSTGRES_PORT
from ansible_collections.postgres.cluster.plugins.module_utils.backup_jobs import (
    COMPONENT_LABEL,
    JOB_CONTAINER,
    JOB_LABEL,
    backup_record,
    summarize_jobs,
)

TLS_DIR = "/etc/pgc/backup-tls"
CALLBACK_DIR = "/etc/pgc/callback"
REPOSITORY_MOUNT = "/var/lib/pgbackrest"
PGBACKREST_SERVER_PORT = 8432

# What each kind of Job runs (bash -o pipefail), after which it stamps its cluster so that the
# status follows at once. Arguments come from the environment, so that no value is split.
RESTORE_TARGET = ('${PGC_RESTORE_SET:+--set="$PGC_RESTORE_SET"} '
                  '${PGC_RESTORE_TARGET_TIME:+--target-time="$PGC_RESTORE_TARGET_TIME"}')
COMMANDS = {
    "backup": 'pgc-backup.sh "$PGC_BACKUP_TYPE"',
    "logical-backup": 'pgc-logical-backup.sh | tee "$PGC_RESULT_FILE"',
    "expire": 'pgbackrest expire --set="$PGC_BACKUP_SET" 1>&2 && printf \'{"expired": "%s"}\\n\' "$PGC_BACKUP_SET"'
              ' | tee "$PGC_RESULT_FILE"',
    "check": "pgc-restore-in-place.sh --check-only " + RESTORE_TARGET,
    "restore": "pgc-restore-in-place.sh " + RESTORE_TARGET,
    "logical-restore": ('pgc-logical-restore.sh --database="$PGC_RESTORE_DATABASE" '
                        '${PGC_RESTORE_LABEL:+--label="$PGC_RESTORE_LABEL"} | tee "$PGC_RESULT_FILE"'),
}
# Jobs that need the database's superuser over the read-write Service (libpq's variables).
SQL_JOBS = ("logical-backup", "logical-restore")


def _volume(name, **source):
    return dict(name=name, **source)


def pgc_backup_pod_labels(pgc, job):
    """The labels of a Job's pod: never the cluster's selector, which would make the pod a member in
    the eyes of the Services, the PodDisruptionBudget and Patroni."""
    return {
        "app.kubernetes.io/name": "postgres",
        "app.kubernetes.io/instance": pgc["name"],
        "app.kubernetes.io/managed-by": "pgc-operator",
        "app.kubernetes.io/component": job,
        COMPONENT_LABEL: pgc["name"],
        JOB_LABEL: job,
    }


def pgc_backup_job_labels(pgc, job, backup=""):
    """The labels of a Job: the cluster's (``kubectl get jobs -l postgres.example.com/cluster=NAME``)
    plus its kind, and the PostgresBackup it runs for."""
    labels = dict(pgc["labels"])
    labels[JOB_LABEL] = job
    if backup:
        labels["postgres.example.com/backup"] = backup
    return labels


def pgc_backup_job_spec(pgc, job="backup", env=None, deadline=21600, resources=None, data_claim=""):
    """The ``spec`` of a Job of the cluster (or the ``jobTemplate.spec`` of its CronJob).

    ``job`` is one of backup, logical-backup, expire, check, restore or logical-restore; ``env``
    adds EnvVar objects (PGC_BACKUP_TYPE, PGC_RESTORE_ARGS, ...); ``data_claim`` mounts a member's
    data claim at the data directory's parent (the in-place restore)."""
    if job not in COMMANDS:
        raise AnsibleFilterError("unknown backup job %r (one of %s)" % (job, ", ".join(sorted(COMMANDS))))
    settings = pgc_pgbackrest_settings(pgc)
    if not settings["enabled"]:
        raise AnsibleFilterError("spec.backup.repository is not set: the cluster has no backup repository")
    names = pgc["names"]
    local_data = job == "restore"
    environment = list(pgc_pgbackrest_environment(pgc))
    environment.append({"name": "PGC_RESULT_FILE", "value": "/dev/termination-log"})
    environment.append({"name": "PATRONI_KUBERNETES_NAMESPACE", "value": pgc["namespace"]})
    environment.append({"name": "PGDATA", "value": PGDATA})
    if job in SQL_JOBS:
        credentials = pgc["spec"]["credentials"]
        environment += [
            {"name": "PGHOST", "value": names["service_rw"]},
            {"name": "PGPORT", "value": str(POSTGRES_PORT)},
            {"name": "PGUSER", "value": credentials["superuser"]},
            {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": pgc["credentials_secret"],
                                                                   "key": "superuser-password"}}},
            {"name": "PGDATABASE", "value": "postgres"},
            {"name": "PGC_LOGICAL_DATABASES", "value": ",".join(settings["logical"]["databases"])},
            {"name": "PGC_LOGICAL_RETENTION", "value": str(settings["logical"]["retention"])},
        ]
    environment += list(env or [])

    # The restore works on a member's own data directory with the members' configuration; every
    # other Job reaches the primary's pgBackRest server over TLS with the Job configuration.
    config_key = "pod.conf" if local_data else "job.conf"
    mounts = [
        {"name": "pgbackrest-config", "mountPath": "/etc/pgbackrest", "readOnly": True},
        {"name": "backup-tls", "mountPath": TLS_DIR, "readOnly": True},
        {"name": "callback", "mountPath": CALLBACK_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes = [
        _volume("pgbackrest-config", configMap={"name": names["pgbackrest_config"],
                                                "items": [{"key": config_key, "path": "pgbackrest.conf"}]}),
        _volume("backup-tls", secret={"secretName": names["backup_tls"], "defaultMode": 0o440}),
        _volume("callback", configMap={"name": names["patroni_config"],
                                       "items": [{"key": "pgc-callback.py", "path": "pgc-callback.py"}]}),
        _volume("tmp", emptyDir={}),
    ]
    # A private CA, a GCS key: the files the object store is reached with.
    store_files = pgc_pgbackrest_volumes(pgc, source=False)
    mounts += store_files["mounts"]
    volumes += store_files["volumes"]
    affinity = None
    if settings["type"] == "posix" and not local_data:
        # The Job reads and writes the repository's claim itself, on the node of the repository host
        # that holds it (ReadWriteOnce is per node).
        mounts.append({"name": "repository", "mountPath": REPOSITORY_MOUNT})
        volumes.append(_volume("repository", persistentVolumeClaim={"claimName": names["backup_claim"]}))
        affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {COMPONENT_LABEL: pgc["name"], JOB_LABEL: "repo-host"}},
        }]}}
    if data_claim:
        mounts.append({"name": "data", "mountPath": PGDATA.rsplit("/", 1)[0]})
        volumes.append(_volume("data", persistentVolumeClaim={"claimName": data_claim}))

    script = ('rc=0; %s || rc=$?; python3 %s/pgc-callback.py %s %s "$PGBACKREST_STANZA" || true; exit $rc'
              % (COMMANDS[job], CALLBACK_DIR, job, "finished" if job != "backup" else '"$PGC_BACKUP_TYPE"'))
    container = {
        "name": JOB_CONTAINER,
        "image": pgc["spec"]["image"],
        "command": ["bash", "-o", "pipefail", "-c", script],
        "env": environment,
        # The script's JSON line on success; the end of its log when it fails.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
    if resources:
        container["resources"] = resources
    pod = {
        "restartPolicy": "Never",
        # The members' account: it may patch its own PostgresCluster (the stamp above) and no more.
        "serviceAccountName": names["patroni_account"],
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    if affinity:
        pod["affinity"] = affinity
    return {
        # One retry: a backup that failed twice needs a person, and the next schedule tries anyway.
        "backoffLimit": 1,
        "activeDeadlineSeconds": int(deadline),
        "template": {"metadata": {"labels": pgc_backup_pod_labels(pgc, job)}, "spec": pod},
    }


def pgc_backup_jobs(jobs, pods):
    """Each Job with its phase and the result its pod wrote (module_utils.backup_jobs.summarize_jobs)."""
    return summarize_jobs(jobs, pods)


def pgc_backup_resource_status(backup, summaries, problem=""):
    """The status of a PostgresBackup from its Job's summary (``summaries``: the one Job, or none
    yet) or a ``problem`` that keeps it from running (no cluster, no repository)."""
    generation = (backup.get("metadata") or {}).get("generation", 0)
    job = summaries[-1] if summaries else None
    if problem:
        phase, message = "Failed", problem
    elif job is None:
        phase, message = "Pending", "Creating the backup Job"
    else:
        phase = job["phase"]
        message = {"Pending": "Job %s is waiting for its pod to start",
                   "Running": "Job %s is taking the backup",
                   "Succeeded": "Job %s took the backup",
                   "Failed": "Job %s failed: "}[phase] % job["name"]
        if phase == "Failed":
            message += job["message"]
    status = {"phase": phase, "message": message, "observedGeneration": generation}
    if job:
        status["job"] = job["name"]
    if job and phase == "Succeeded":
        record = backup_record(job)
        status.update({k: v for k, v in record.items() if k != "job"})
        if record.get("label"):
            status["message"] = "Backup %s (%s) taken by Job %s" % (record["label"], record.get("type"), job["name"])
        else:
            status["message"] = "Job %s succeeded but its pod reported no result: label and size are unknown" % job["name"]
    done = phase in ("Succeeded", "Failed")
    status["conditions"] = [{
        "type": "Complete",
        "status": "True" if phase == "Succeeded" else "False",
        "reason": {"Succeeded": "BackupSucceeded", "Failed": "BackupFailed"}.get(phase, "BackupInProgress"),
        "message": status["message"] if done else "The backup has not finished",
        "observedGeneration": generation,
    }]
    # Messages come from pod logs: data, never templates.
    return wrap_var(status)


class FilterModule:
    """Backup Job filters of the postgres.cluster collection."""

    def filters(self):
        return {
            "pgc_backup_job_spec": pgc_backup_job_spec,
            "pgc_backup_job_labels": pgc_backup_job_labels,
            "pgc_backup_pod_labels": pgc_backup_pod_labels,
            "pgc_backup_jobs": pgc_backup_jobs,
            "pgc_backup_resource_status": pgc_backup_resource_status,
        }
