# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""cluster_observe: what Patroni, the Secrets and the Jobs say about one cluster, read straight
from the API server by label; only the StatefulSet, an owned object, goes through the proxy."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils.k8s_client import ApiError
from ansible_collections.postgres.cluster.plugins.module_utils.names import (
    COMPONENT_LABEL,
    JOB_LABEL,
    labels,
    patroni_configmap,
)

NAMESPACE = "databases"
SELECTOR = "postgres.example.com/cluster=main"
SECRET_VALUE = "c3VwZXItc2VjcmV0"  # what must never come back


def pod(name, role, state="running"):
    status = {"role": role, "state": state, "timeline": 1, "xlog_location": 100}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels("main"),
                         "annotations": {"status": json.dumps(status)}},
            "status": {"phase": "Running"}}


def configmap(name, annotations, cluster_labels=None):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": cluster_labels or labels("main"),
                         "annotations": annotations}}


def secret(name, keys):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {k: SECRET_VALUE for k in keys}}


def job(name, kind, succeeded=True):
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NAMESPACE, "creationTimestamp": "2026-11-29T02:00:00Z",
                         "labels": dict(labels("main"), **{JOB_LABEL: kind})},
            "status": {"succeeded": 1 if succeeded else 0, "startTime": "2026-11-29T02:00:01Z",
                       "completionTime": "2026-11-29T02:00:43Z"}}


@pytest.fixture
def patroni_cluster(cluster):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cluster.add(
        pod("main-0", "primary"), pod("main-1", "replica", "streaming"),
        configmap(patroni_configmap("main", "leader"), {"leader": "main-0", "renewTime": now, "ttl": "30"}),
        configmap(patroni_configmap("main", "config"), {"initialize": "7312", "config": json.dumps({"ttl": 30})}),
        configmap(patroni_configmap("other", "leader"), {"leader": "other-0", "renewTime": now, "ttl": "30"},
                  cluster_labels=labels("other")),
    )
    return cluster


@pytest.fixture
def observe(run_action):
    def run(check_mode=False, **args):
        args = dict({"scope": "main", "namespace": NAMESPACE, "label_selector": SELECTOR}, **args)
        return run_action("cluster_observe", args, check_mode=check_mode)
    return run


def lists(api):
    return [(d["kind"], d["namespace"], d["labels"]) for m, d in api.calls if m == "list"]


def test_cluster_observe_lists_pods_and_configmaps_by_label_through_the_direct_api(observe, apis, patroni_cluster):
    result = observe()
    assert lists(apis.direct) == [("Pod", NAMESPACE, SELECTOR), ("ConfigMap", NAMESPACE, SELECTOR)]
    assert apis.cached.calls == []
    assert [way for way, _ in apis.asked] == ["direct"]
    assert result["leader"] == "main-0"
    assert [(m["name"], m["role"]) for m in result["members"]] == [("main-0", "primary"), ("main-1", "replica")]
    assert result["initialized"] is True and result["config"] == {"ttl": 30}
    assert result["changed"] is False


def test_cluster_observe_writes_nothing(observe, apis, patroni_cluster):
    observe(backup_jobs=True, secrets=["main-credentials"], data_claim="data-main-0", statefulset="main")
    assert apis.writes == []


def test_cluster_observe_returns_secret_key_names_never_values(observe, apis, patroni_cluster):
    patroni_cluster.add(secret("main-credentials", ["superuser-password", "app-password", "replication-password"]))
    result = observe(secrets=["main-credentials", "main-backup-tls"])
    assert result["secrets"] == {"main-credentials": ["app-password", "replication-password", "superuser-password"],
                                 "main-backup-tls": None}
    assert SECRET_VALUE not in json.dumps(result)
    assert [(d["kind"], d["name"]) for m, d in apis.direct.calls if m == "get"][:2] == \
        [("Secret", "main-credentials"), ("Secret", "main-backup-tls")]


def test_cluster_observe_asks_for_the_data_only_when_a_secret_is_missing(observe, apis, patroni_cluster):
    patroni_cluster.add(secret("main-credentials", ["superuser-password"]))
    result = observe(secrets=["main-credentials"], data_claim="data-main-0")
    assert result["data_exists"] is None
    assert "PersistentVolumeClaim" not in [d["kind"] for m, d in apis.direct.calls if m == "get"]


@pytest.mark.parametrize("claim_exists", [True, False])
def test_cluster_observe_reports_the_data_when_a_secret_is_missing(observe, apis, patroni_cluster, claim_exists):
    if claim_exists:
        patroni_cluster.add({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                             "metadata": {"name": "data-main-0", "namespace": NAMESPACE}})
    result = observe(secrets=["main-credentials"], data_claim="data-main-0")
    assert result["data_exists"] is claim_exists
    assert ("PersistentVolumeClaim", "data-main-0") in [(d["kind"], d["name"]) for m, d in apis.direct.calls if m == "get"]


def test_cluster_observe_without_a_data_claim_never_asks(observe, apis, patroni_cluster):
    result = observe(secrets=["main-credentials"])
    assert result["data_exists"] is None
    assert [d["kind"] for m, d in apis.direct.calls if m == "get"] == ["Secret"]


def test_cluster_observe_lists_jobs_only_with_backup_jobs(observe, apis, patroni_cluster):
    patroni_cluster.add(job("main-backup-1", "backup"))
    result = observe()
    assert "Job" not in [kind for kind, _, _ in lists(apis.direct)]
    assert result["backup_jobs"] == []


def test_cluster_observe_summarizes_the_backup_jobs_and_their_pods(observe, apis, patroni_cluster):
    patroni_cluster.add(job("main-backup-1", "backup"))
    result = observe(backup_jobs=True)
    assert lists(apis.direct)[2:] == [("Job", NAMESPACE, "%s,%s" % (SELECTOR, JOB_LABEL)),
                                      ("Pod", NAMESPACE, "%s=main" % COMPONENT_LABEL)]
    [summary] = result["backup_jobs"]
    assert (summary["name"], summary["kind"], summary["phase"]) == ("main-backup-1", "backup", "Succeeded")
    assert apis.cached.calls == []


def test_cluster_observe_without_jobs_lists_no_job_pods(observe, apis, patroni_cluster):
    result = observe(backup_jobs=True)
    assert [kind for kind, _, _ in lists(apis.direct)] == ["Pod", "ConfigMap", "Job"]
    assert result["backup_jobs"] == []


def test_cluster_observe_reads_the_statefulset_through_the_cached_api(observe, apis, patroni_cluster):
    patroni_cluster.add({"apiVersion": "apps/v1", "kind": "StatefulSet",
                         "metadata": {"name": "main", "namespace": NAMESPACE, "generation": 2, "uid": "u"},
                         "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "postgres"}]}}},
                         "status": {"replicas": 3, "readyReplicas": 3}})
    result = observe(statefulset="main")
    assert apis.cached.calls == [("get", {"api_version": "apps/v1", "kind": "StatefulSet", "name": "main",
                                          "namespace": NAMESPACE})]
    assert result["statefulset"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                     "metadata": {"name": "main", "namespace": NAMESPACE, "generation": 2, "uid": "u"},
                                     "spec": {"replicas": 3}, "status": {"replicas": 3, "readyReplicas": 3}}


def test_cluster_observe_missing_statefulset_is_null(observe, apis, patroni_cluster):
    assert observe(statefulset="main")["statefulset"] is None


def test_cluster_observe_asks_whether_monitoring_is_served(observe, apis, patroni_cluster):
    patroni_cluster.served["monitoring.coreos.com/v1"] = ["PodMonitor", "PrometheusRule"]
    assert observe()["monitoring_api"] is True
    assert [d["api_version"] for m, d in apis.direct.calls if m == "serves"] == ["monitoring.coreos.com/v1"]


def test_cluster_observe_without_monitoring_api_does_not_ask(observe, apis, patroni_cluster):
    patroni_cluster.served["monitoring.coreos.com/v1"] = ["PodMonitor", "PrometheusRule"]
    assert observe(monitoring_api=False)["monitoring_api"] is False
    assert "serves" not in apis.direct.methods


def certificate(name="main-tls"):
    return {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels("main"), "uid": "c-1",
                         "resourceVersion": "7", "managedFields": [{"manager": "pgc-operator"}]},
            "spec": {"secretName": name, "issuerRef": {"name": "ca", "kind": "Issuer", "group": "cert-manager.io"}},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "DoesNotExist"}]}}


def test_cluster_observe_without_a_certificate_never_asks_cert_manager(observe, apis, patroni_cluster):
    patroni_cluster.served["cert-manager.io/v1"] = ["Certificate"]
    result = observe(monitoring_api=False)
    assert (result["cert_manager_api"], result["certificate"]) == (False, None)
    assert "serves" not in apis.direct.methods and apis.cached.calls == []


def test_cluster_observe_reads_the_certificate_through_the_proxy_where_cert_manager_is_served(observe, apis,
                                                                                            patroni_cluster):
    patroni_cluster.served["cert-manager.io/v1"] = ["Certificate", "CertificateRequest"]
    patroni_cluster.add(certificate())
    result = observe(monitoring_api=False, certificate="main-tls")
    assert [d["api_version"] for m, d in apis.direct.calls if m == "serves"] == ["cert-manager.io/v1"]
    assert apis.cached.calls == [("get", {"api_version": "cert-manager.io/v1", "kind": "Certificate",
                                          "name": "main-tls", "namespace": NAMESPACE})]
    assert result["cert_manager_api"] is True
    # What the plans compare (the body and the metadata the operator sets) and the status, nothing else.
    assert result["certificate"] == {
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"labels": labels("main")},
        "spec": certificate()["spec"], "status": certificate()["status"]}
    assert apis.writes == []


def test_cluster_observe_reports_a_missing_certificate_as_null(observe, apis, patroni_cluster):
    patroni_cluster.served["cert-manager.io/v1"] = ["Certificate"]
    result = observe(certificate="main-tls")
    assert (result["cert_manager_api"], result["certificate"]) == (True, None)


def test_cluster_observe_where_cert_manager_is_not_served_reads_no_certificate(observe, apis, patroni_cluster):
    result = observe(certificate="main-tls")
    assert (result["cert_manager_api"], result["certificate"]) == (False, None)
    assert apis.cached.calls == []


def test_cluster_observe_reads_in_check_mode(observe, apis, patroni_cluster):
    result = observe(check_mode=True)
    assert result["leader"] == "main-0"
    assert result["changed"] is False


def test_cluster_observe_api_error_fails_with_its_message(observe, apis, patroni_cluster):
    apis.direct.errors["list"] = ApiError('list Pod in databases (%s): pods is forbidden' % SELECTOR, 403)
    result = observe()
    assert result["failed"] is True
    assert result["msg"] == 'list Pod in databases (%s): pods is forbidden' % SELECTOR


def test_cluster_observe_requires_scope_namespace_and_selector(run_action, apis):
    result = run_action("cluster_observe", {"scope": "main"})
    assert result["failed"] is True
    assert "label_selector" in result["msg"] and "namespace" in result["msg"]
    assert apis.direct.calls == []
