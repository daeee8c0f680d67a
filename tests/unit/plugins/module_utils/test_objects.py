# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Whether a live object differs from the rendered one: what the API server and other managers
add must not count, what a user changed or what the collection stopped setting must."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils import objects
from ansible_collections.postgres.cluster.plugins.module_utils.objects import APPLIED_HASH_ANNOTATION

OWNER = {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster", "name": "main",
         "uid": "6f1e7d8c-0000-4000-8000-000000000001", "controller": True, "blockOwnerDeletion": True}
LABELS = {"app.kubernetes.io/name": "postgres", "postgres.example.com/cluster": "main"}


def service(port=5432):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "main", "namespace": "databases", "labels": dict(LABELS), "ownerReferences": [dict(OWNER)]},
        "spec": {
            "type": "ClusterIP",
            "selector": dict(LABELS, role="primary"),
            "ports": [{"name": "postgres", "port": port, "targetPort": "postgres"}],
        },
    }


def statefulset(image="postgres:17", env=None):
    container = {
        "name": "postgres",
        "image": image,
        "ports": [{"name": "postgres", "containerPort": 5432}],
        "env": env if env is not None else [{"name": "PATRONI_SCOPE", "value": "main"}],
        "resources": {"requests": {"memory": "1Gi", "cpu": "500m"}},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "main", "namespace": "databases", "labels": dict(LABELS), "ownerReferences": [dict(OWNER)]},
        "spec": {
            "replicas": 3,
            "serviceName": "main-headless",
            "selector": {"matchLabels": dict(LABELS)},
            "template": {"metadata": {"labels": dict(LABELS)}, "spec": {"containers": [container]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                      "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    }


def as_live(desired):
    """``desired`` as the API server returns it after an apply: its hash annotation and the
    server's own metadata."""
    live = objects.with_applied_hash(desired)
    live["metadata"].update({"uid": "0d3c6a2e-0000-4000-8000-000000000002", "resourceVersion": "4711", "generation": 1,
                             "creationTimestamp": "2026-11-26T16:00:00Z",
                             "managedFields": [{"manager": "pgc-operator", "operation": "Apply"}]})
    return live


def live_service(desired=None):
    live = as_live(desired or service())
    live["spec"].update({"clusterIP": "10.96.0.17", "clusterIPs": ["10.96.0.17"], "sessionAffinity": "None",
                         "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})
    live["spec"]["ports"][0].update({"protocol": "TCP", "targetPort": "postgres"})
    live["status"] = {"loadBalancer": {}}
    return live


def live_statefulset(desired=None):
    live = as_live(desired or statefulset())
    spec = live["spec"]
    spec.update({"podManagementPolicy": "OrderedReady", "revisionHistoryLimit": 10,
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                 "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}})
    pod = spec["template"]["spec"]
    pod.update({"restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                "securityContext": {}, "terminationGracePeriodSeconds": 30})
    pod["containers"][0].update({"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                                 "terminationMessagePolicy": "File"})
    pod["containers"][0]["ports"][0]["protocol"] = "TCP"
    spec["template"]["metadata"]["creationTimestamp"] = None
    claim = spec["volumeClaimTemplates"][0]
    claim.update({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}})
    claim["spec"]["volumeMode"] = "Filesystem"
    live["status"] = {"replicas": 3, "readyReplicas": 3, "currentRevision": "main-5d4f", "observedGeneration": 1}
    return live


def desired(obj):
    return objects.with_applied_hash(obj)


# --- differences: what the server and other managers add --------------------------------------

def test_differences_service_with_server_defaults_is_unchanged():
    assert objects.differences(desired(service()), live_service()) == []


def test_differences_statefulset_with_defaulted_pod_fields_is_unchanged():
    assert objects.differences(desired(statefulset()), live_statefulset()) == []


def test_differences_service_with_changed_port_names_the_path():
    live = live_service()
    live["spec"]["ports"][0]["port"] = 5433
    assert objects.differences(desired(service()), live) == ["spec.ports[0].port differs"]


def test_differences_statefulset_with_changed_image_names_the_path():
    live = live_statefulset()
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "postgres:16"
    assert objects.differences(desired(statefulset()), live) == ["spec.template.spec.containers[0].image differs"]


@pytest.mark.parametrize("ours, theirs", [
    ("1Gi", "1073741824"),
    ("1Gi", "1024Mi"),
    ("500m", "0.5"),
    ("2", 2),
    ("1.5", "1500m"),
])
def test_differences_quantities_in_another_spelling_are_equal(ours, theirs):
    want = statefulset()
    want["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = ours
    live = live_statefulset(want)
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = theirs
    assert objects.differences(desired(want), live) == []


def test_differences_other_quantity_differs():
    live = live_statefulset()
    live["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert objects.differences(desired(statefulset()), live) == \
        ["spec.volumeClaimTemplates[0].spec.resources.requests.storage differs"]


@pytest.mark.parametrize("ours, theirs", [(5432, "5432"), ("5432", 5432)])
def test_differences_port_as_int_or_string_is_equal(ours, theirs):
    want = service(port=ours)
    live = live_service(want)
    live["spec"]["ports"][0]["port"] = theirs
    assert objects.differences(desired(want), live) == []


def test_differences_boolean_and_its_string_differ():
    want = statefulset()
    want["spec"]["template"]["spec"]["enableServiceLinks"] = False
    live = live_statefulset(want)
    live["spec"]["template"]["spec"]["enableServiceLinks"] = "false"
    assert objects.differences(desired(want), live) == ["spec.template.spec.enableServiceLinks differs"]


def test_differences_env_var_added_by_another_manager_is_unchanged():
    ours = [{"name": "PATRONI_SCOPE", "value": "main"}, {"name": "PGDATA", "value": "/var/lib/postgresql/data"}]
    live = live_statefulset(statefulset(env=ours))
    live["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "INJECTED_BY_WEBHOOK", "value": "1"}, ours[1], ours[0]]
    assert objects.differences(desired(statefulset(env=ours)), live) == []


def test_differences_env_var_of_ours_changed_beside_another_managers_names_it():
    ours = [{"name": "PATRONI_SCOPE", "value": "main"}]
    live = live_statefulset(statefulset(env=ours))
    live["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "PATRONI_SCOPE", "value": "other"}, {"name": "INJECTED_BY_WEBHOOK", "value": "1"}]
    assert objects.differences(desired(statefulset(env=ours)), live) == \
        ["spec.template.spec.containers[0].env[name=PATRONI_SCOPE].value differs"]


def test_differences_env_var_of_ours_removed_live_differs():
    ours = [{"name": "PATRONI_SCOPE", "value": "main"}, {"name": "PGDATA", "value": "/var/lib/postgresql/data"}]
    live = live_statefulset(statefulset(env=ours))
    live["spec"]["template"]["spec"]["containers"][0]["env"] = [ours[0]]
    assert objects.differences(desired(statefulset(env=ours)), live) == ["spec.template.spec.containers[0].env differs"]


def test_differences_env_var_of_ours_replaced_by_another_differs():
    ours = [{"name": "PATRONI_SCOPE", "value": "main"}, {"name": "PGDATA", "value": "/var/lib/postgresql/data"}]
    live = live_statefulset(statefulset(env=ours))
    live["spec"]["template"]["spec"]["containers"][0]["env"] = [
        ours[0], {"name": "INJECTED_BY_WEBHOOK", "value": "1"}, {"name": "OTHER", "value": "2"}]
    assert objects.differences(desired(statefulset(env=ours)), live) == ["spec.template.spec.containers[0].env differs"]


def test_differences_field_we_stopped_setting_is_caught_by_the_hash():
    before = statefulset()
    before["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {"memory": "2Gi"}
    live = live_statefulset(before)
    after = statefulset()  # no limits: drift alone cannot see a field that is no longer rendered
    assert objects.drift(objects.comparable(desired(after)), objects.comparable(live)) == \
        ["metadata.annotations.%s" % APPLIED_HASH_ANNOTATION]
    assert objects.differences(desired(after), live) == [
        "rendered object changed", "metadata.annotations.%s differs" % APPLIED_HASH_ANNOTATION]


def test_differences_object_applied_before_hashes_existed_is_changed():
    live = live_service()
    del live["metadata"]["annotations"]
    assert objects.differences(desired(service()), live) == [
        "rendered object changed", "metadata.annotations differs"]


def test_differences_missing_live_object_is_one_reason():
    assert objects.differences(desired(service()), None) == ["missing"]


def test_differences_label_changed_by_hand_differs():
    live = live_service()
    live["metadata"]["labels"]["postgres.example.com/cluster"] = "other"
    assert objects.differences(desired(service()), live) == ["metadata.labels.postgres.example.com/cluster differs"]


def test_differences_label_added_by_another_manager_is_unchanged():
    live = live_service()
    live["metadata"]["labels"]["team"] = "payments"
    live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    assert objects.differences(desired(service()), live) == []


def test_differences_removed_owner_reference_differs():
    live = live_service()
    live["metadata"]["ownerReferences"] = []
    assert objects.differences(desired(service()), live) == ["metadata.ownerReferences differs"]


def test_differences_server_metadata_is_ignored():
    want = desired(service())
    want["metadata"].update({"uid": "rendered-uid", "resourceVersion": "1", "generation": 99,
                             "managedFields": [{"manager": "someone"}]})
    assert objects.differences(want, live_service()) == []


def test_differences_status_is_ignored():
    want = desired(service())
    want["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    live = live_service()
    assert objects.differences(want, live) == []


def test_comparable_keeps_body_and_compared_metadata_only():
    live = live_service()
    live["metadata"]["finalizers"] = ["example.com/keep"]
    kept = objects.comparable(live)
    assert set(kept) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(kept["metadata"]) == {"labels", "annotations", "ownerReferences"}


# --- drift on its own ------------------------------------------------------------------------

def test_drift_empty_rendered_values_match_absent_live_ones():
    assert objects.drift({"a": {}, "b": [], "c": None, "d": {}}, {"d": None}) == []


def test_drift_scalar_missing_live_names_the_path():
    assert objects.drift({"spec": {"a": 1, "b": {"c": "x"}}}, {"spec": {"a": 1, "b": {}}}) == ["spec.b.c"]


def test_drift_list_of_scalars_longer_live_differs():
    assert objects.drift({"args": ["a"]}, {"args": ["a", "b"]}) == ["args"]


def test_drift_mapping_replaced_by_scalar_differs():
    assert objects.drift({"spec": {"a": 1}}, {"spec": "text"}) == ["spec"]


# --- the hash of the rendered object ---------------------------------------------------------

def test_applied_hash_is_stable_across_key_order():
    obj = service()
    reordered = {"spec": dict(reversed(list(obj["spec"].items()))), "metadata": obj["metadata"],
                 "kind": obj["kind"], "apiVersion": obj["apiVersion"]}
    assert objects.applied_hash(reordered) == objects.applied_hash(obj)


def test_applied_hash_changes_with_content():
    assert objects.applied_hash(service(port=5432)) != objects.applied_hash(service(port=5433))


def test_applied_hash_ignores_its_own_annotation():
    obj = service()
    obj["metadata"]["annotations"] = {"example.com/note": "kept"}
    stamped = copy.deepcopy(obj)
    stamped["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = "0123456789abcdef"
    assert objects.applied_hash(stamped) == objects.applied_hash(obj)


def test_applied_hash_is_what_with_applied_hash_records():
    # A template usually renders no annotations at all: the recorded hash is still the object's own.
    obj = service()
    assert objects.with_applied_hash(obj)["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] == objects.applied_hash(obj)


def test_with_applied_hash_leaves_the_rendered_object_alone():
    obj = service()
    obj["metadata"]["annotations"] = {"example.com/note": "kept"}
    before = copy.deepcopy(obj)
    stamped = objects.with_applied_hash(obj)
    assert obj == before
    assert stamped["metadata"]["annotations"]["example.com/note"] == "kept"
    assert objects.with_applied_hash(stamped) == stamped


# --- what is shown and reported --------------------------------------------------------------

def test_redacted_hides_secret_data_and_string_data_values():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "main-credentials"},
              "type": "Opaque", "data": {"superuser-password": "c2VjcmV0"}, "stringData": {"app-password": "plain"}}
    shown = objects.redacted(secret)
    assert shown["data"] == {"superuser-password": "<redacted>"}
    assert shown["stringData"] == {"app-password": "<redacted>"}
    assert shown["metadata"] == secret["metadata"] and shown["type"] == "Opaque"
    assert secret["data"] == {"superuser-password": "c2VjcmV0"}


def test_redacted_leaves_other_kinds_alone():
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "main-config"}, "data": {"a": "b"}}
    assert objects.redacted(configmap) == configmap


def test_reported_keeps_identity_replicas_and_status_only():
    live = live_statefulset()
    shown = objects.reported(live)
    assert shown == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "main", "namespace": "databases", "generation": 1,
                     "uid": "0d3c6a2e-0000-4000-8000-000000000002"},
        # The size its members' claims are made with: status says it, and a growth is seen by it.
        "spec": {"replicas": 3,
                 "storage": live["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
                 # Who replaces its pods: the StatefulSet controller here, the operator with OnDelete.
                 "updateStrategy": "RollingUpdate"},
        "status": live["status"],
    }


def test_identity_names_kind_namespace_and_name():
    assert objects.identity(service()) == "Service databases/main"
    assert objects.identity({"kind": "Namespace", "metadata": {"name": "databases"}}) == "Namespace databases"


def test_pruned_like_keeps_only_what_the_rendered_object_speaks_of():
    pruned = objects.pruned_like(live_service(), objects.with_applied_hash(service()))
    assert set(pruned) == {"apiVersion", "kind", "metadata", "spec"}
    assert "clusterIP" not in pruned["spec"] and "uid" not in pruned["metadata"]
    assert pruned["spec"]["ports"] == [{"name": "postgres", "port": 5432, "targetPort": "postgres"}]
