"""Per-cluster metrics (metrics/cluster_metrics.py) beside the real operator: derived from the
PostgresCluster and Patroni's leader-lock ConfigMap, and gone with the cluster."""

from __future__ import annotations

import datetime
import time

from tests.e2e.helpers import apply, kubectl, metric_value, postgres_cluster, wait_for, wait_for_phase

CLUSTER_LABEL = "postgres.example.com/cluster"


def leader_lock(name, namespace, holder, renewed):
    """Patroni's leader lock of cluster ``name`` as its Kubernetes DCS writes it."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{name}-leader", "namespace": namespace, "labels": {CLUSTER_LABEL: name},
                         "annotations": {"leader": holder, "renewTime": renewed.isoformat(), "ttl": "30",
                                         "acquireTime": renewed.isoformat(), "transitions": "0"}}}


def wait_for_metric(operator, family, expected, timeout=30, **labels):
    """Scrape until ``family{labels}`` has the value ``expected`` (None: no such series)."""
    seen = []

    def check():
        value = metric_value(operator.scrape(), family, **labels)
        seen[:] = [value]
        return value == expected
    try:
        wait_for(check, timeout, f"{family}{labels} is not {expected}", interval=1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last value {seen}; cluster metrics log:\n"
                             f"{operator.metrics_log_tail(30)}") from None


def test_cluster_metrics_follow_the_cluster_and_its_leader_lock(operator, namespace):
    """Desired and ready replicas and the backup interval from the object; up only while a member in
    the status holds a fresh leader lock; every series gone once the cluster is deleted."""
    name = "metrics"
    key = {"name": name, "namespace": namespace}
    apply(postgres_cluster(name, replicas=2, storageSize="1Gi", backupSchedule="0 3 * * *"), namespace)
    cluster = wait_for_phase(name, namespace, "Running", ready=2)
    members = [m["name"] for m in cluster["status"].get("members", [])]
    assert f"{name}-0" in members, f"status.members lists no {name}-0: {cluster['status']}"

    wait_for_metric(operator, "postgres_cluster_ready_replicas", 2, **key)
    text = operator.scrape()
    assert metric_value(text, "postgres_cluster_desired_replicas", **key) == 2
    assert metric_value(text, "postgres_cluster_backup_interval_seconds", **key) == 86400
    assert metric_value(text, "postgres_cluster_backup_failures_total", **key) == 0
    assert metric_value(text, "postgres_cluster_info", phase="Running", **key) == 1
    assert metric_value(text, "postgres_cluster_last_backup_timestamp_seconds", **key) is None
    # No Patroni runs in kwok's pods: nobody holds the lock.
    assert metric_value(text, "postgres_cluster_up", **key) == 0
    assert time.time() - metric_value(text, "pgc_cluster_metrics_last_success_timestamp_seconds") < 60

    def lock(holder, age=0):
        renewed = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
        apply(leader_lock(name, namespace, holder, renewed), namespace)

    lock(f"{name}-0")
    wait_for_metric(operator, "postgres_cluster_up", 1, timeout=20, **key)
    # A fresh lock held by a pod that is no member of this cluster.
    lock("someone-else-0")
    wait_for_metric(operator, "postgres_cluster_up", 0, timeout=20, **key)
    lock(f"{name}-0")
    wait_for_metric(operator, "postgres_cluster_up", 1, timeout=20, **key)
    # A lock its holder stopped renewing an hour ago.
    lock(f"{name}-0", age=3600)
    wait_for_metric(operator, "postgres_cluster_up", 0, timeout=20, **key)

    kubectl("delete", "pgc", name, "-n", namespace, "--wait=false")
    wait_for_metric(operator, "postgres_cluster_up", None, timeout=120, **key)
    text = operator.scrape()
    leftovers = [line for line in text.splitlines() if f'namespace="{namespace}"' in line]
    assert not leftovers, leftovers
