# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The names of the operator's API and of everything a cluster owns, its labels and annotations,
and where a database pod keeps things: made here and nowhere else.

Pure Python: the filters, the action plugins and the metrics server all import it.
"""

from __future__ import annotations

import re

GROUP = "postgres.example.com"
VERSION = "v1"
API_VERSION = GROUP + "/" + VERSION
KIND = "PostgresCluster"
PLURAL = "postgresclusters"
FIELD_MANAGER = "pgc-operator"

# Suffixes of the objects a cluster owns, after the cluster's name.
NAME_SUFFIXES = {
    "statefulset": "",
    "service_rw": "",
    "service_ro": "-ro",
    "service_headless": "-pods",
    "credentials": "-credentials",
    "patroni_api": "-patroni-api",
    "server_tls": "-tls",
    # The cluster's CA (module_utils/tls.py) and the client certificates it signs.
    "ca": "-ca",
    "superuser_tls": "-superuser-tls",
    "app_tls": "-app-tls",
    "network_policy": "",
    "patroni_config": "-patroni",
    # The accounts a cluster's pods run as: Patroni's in the members, the backup and restore Jobs'
    # in their pods. The admission policy (config/admission) knows them by these two suffixes.
    "patroni_account": "-patroni",
    "jobs_account": "-jobs",
    "pdb": "",
    "service_metrics": "-metrics",
    "monitoring": "",
    "pgbackrest_config": "-pgbackrest",
    "backup_cronjob": "-backup",
    "logical_cronjob": "-logical-backup",
    # The restore drill (spec.backup.drill): the newest backup restored into a scratch volume and checked.
    "drill_cronjob": "-drill",
    "backup_tls": "-backup-tls",
    "repo_host": "-repo",
    "backup_claim": "-backup",
}

# The longest name Kubernetes takes for the objects named after a cluster. Services are DNS labels
# (63), and so is the cluster's name as a label value. A StatefulSet's pods carry the label
# controller-revision-hash=<statefulset>-<hash of up to 10 characters>, so 52. The API takes CronJob
# names of 52 characters at most, as its controller names each Job <cronjob>-<minutes since the
# epoch>. A Job's name is its pods' job-name label (63; the controller shortens the pods' generated
# names itself). Every other name is a DNS subdomain (253).
NAME_LIMITS = {
    "statefulset": 52,
    "service_rw": 63,
    "service_ro": 63,
    "service_headless": 63,
    "service_metrics": 63,
    "repo_host": 63,
    "backup_cronjob": 52,
    "logical_cronjob": 52,
    "drill_cronjob": 52,
}
LABEL_VALUE_LIMIT = 63
JOB_NAME_LIMIT = 63
OBJECT_NAME_LIMIT = 253
# The Jobs the restore playbook runs, named <cluster>-<job>.
RESTORE_JOBS = ("check", "restore", "logical-restore", "abort")
# The Jobs of a major upgrade (module_utils/upgrades.py), named <cluster>-<job> too.
UPGRADE_JOBS = ("major-upgrade-check", "major-upgrade", "major-upgrade-analyze", "major-upgrade-written",
                "major-upgrade-rollback")

# Also names of another cluster's objects: the source of a bootstrap from its backups.
TLS_SECRET_SUFFIX = NAME_SUFFIXES["backup_tls"]
REPO_HOST_SUFFIX = NAME_SUFFIXES["repo_host"]
VOLUME_CLAIM_SUFFIX = NAME_SUFFIXES["backup_claim"]
# The default of spec.backup.encryptionSecretName, which the spec may replace.
ENCRYPTION_SECRET_SUFFIX = "-backup-encryption"

# The ConfigMaps Patroni's Kubernetes DCS keeps for a scope (the cluster's name): the leader lock,
# the dynamic configuration, a requested switchover and the synchronous standbys. Patroni names
# them; the operator reads, writes and deletes them.
PATRONI_CONFIGMAP_SUFFIXES = {"leader": "-leader", "config": "-config", "failover": "-failover", "sync": "-sync"}
LEADER_SUFFIX = PATRONI_CONFIGMAP_SUFFIXES["leader"]
CONFIG_SUFFIX = PATRONI_CONFIGMAP_SUFFIXES["config"]

# The StatefulSet's volume claim template: member n keeps its data in the claim data-<sts>-<n>.
DATA_VOLUME = "data"

# The label every member and owned object carries, and that selects the members.
CLUSTER_LABEL = GROUP + "/cluster"
MANAGED_BY = "pgc-operator"
# The kind of a Job (backup, logical-backup, expire, ...), the cluster its pod works for (not
# CLUSTER_LABEL, which would make the pod a member), and the PostgresBackup it runs for.
JOB_LABEL = GROUP + "/job"
COMPONENT_LABEL = GROUP + "/job-of"
BACKUP_LABEL = GROUP + "/backup"

# Put on a cluster by the restore playbook while it restores it: reconciles wait.
RESTORE_ANNOTATION = GROUP + "/restore-in-progress"
# Put on a cluster by the approve playbook: the StatefulSet revision whose held canary update may
# go on, and the generation of the spec whose plan may be carried out (spec.updatePolicy.mode
# supervised).
APPROVE_UPDATE_ANNOTATION = GROUP + "/approve-update"
APPROVE_PLAN_ANNOTATION = GROUP + "/approve-plan"
# Stamped on a cluster by Patroni's callback in a member (a start, stop or role change), which
# wakes the operator.
MEMBER_EVENT_ANNOTATION = GROUP + "/member-event"
# Stamped by the callback of a member that was promoted (with the last transaction it replayed from
# the old primary) and of a primary whose Patroni stopped it: the failover history's windows.
PROMOTED_ANNOTATION = GROUP + "/promoted"
PRIMARY_STOPPED_ANNOTATION = GROUP + "/primary-stopped"
# Put on <scope>-failover by a switchover request: "<timeline> <candidate>".
SWITCHOVER_ANNOTATION = GROUP + "/switchover"

# The role the exporter sidecar connects as: pg_monitor and nothing else, over the pod's own socket.
MONITOR_ROLE = "pgc_monitor"

# Where a database pod has things (the StatefulSet template mounts them there).
PGDATA = "/var/lib/postgresql/data/pgdata"
POSTGRES_PORT = 5432
PATRONI_PORT = 8008


def cluster_names(name):
    """The name of each object a cluster owns, by its key in NAME_SUFFIXES."""
    return {key: name + suffix for key, suffix in NAME_SUFFIXES.items()}


def restore_job(name, job):
    """The name of a Job of the restore playbook (check, restore or logical-restore)."""
    return "%s-%s" % (name, job)


def derived_names(name):
    """(key, name, longest name Kubernetes takes) of every name made from a cluster's: the cluster
    label's value, the objects of NAME_SUFFIXES, Patroni's ConfigMaps and the restore Jobs."""
    derived = [("label", name, LABEL_VALUE_LIMIT)]
    derived += [(key, value, NAME_LIMITS.get(key, OBJECT_NAME_LIMIT)) for key, value in cluster_names(name).items()]
    derived += [("dcs_" + kind, patroni_configmap(name, kind), OBJECT_NAME_LIMIT) for kind in PATRONI_CONFIGMAP_SUFFIXES]
    derived += [("restore_" + job, restore_job(name, job), JOB_NAME_LIMIT) for job in RESTORE_JOBS]
    derived += [(job.replace("-", "_"), restore_job(name, job), JOB_NAME_LIMIT) for job in UPGRADE_JOBS]
    return derived


def labels(name):
    """The labels of every object a cluster owns."""
    return {
        "app.kubernetes.io/name": "postgres",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        CLUSTER_LABEL: name,
    }


def patroni_configmap(scope, kind):
    """The name of one of Patroni's ConfigMaps (leader, config, failover or sync) of a scope."""
    return scope + PATRONI_CONFIGMAP_SUFFIXES[kind]


def member_pods(statefulset, replicas):
    """The names of a StatefulSet's pods: <sts>-0 to <sts>-<replicas - 1>."""
    return ["%s-%d" % (statefulset, n) for n in range(int(replicas))]


def data_claim(statefulset, ordinal):
    """The PersistentVolumeClaim that holds the data of the member with this ordinal."""
    return "%s-%s-%d" % (DATA_VOLUME, statefulset, int(ordinal))


def pod_ordinal(pod_name):
    """The ordinal a StatefulSet gave a pod (its name's last ``-<n>``), or None."""
    match = re.search(r"-(\d+)$", pod_name or "")
    return int(match.group(1)) if match else None
