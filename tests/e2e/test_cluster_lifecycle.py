"""A PostgresCluster's life under the real operator: provision, scale, reconcile again, delete."""

from __future__ import annotations

import json

from tests.e2e.helpers import (api_writes, apply, get, kubectl, kubectl_json, postgres_cluster, resource_versions,
                               stable_resource_versions, wait_for, wait_for_namespaces_gone, wait_for_phase,
                               writes_since)

LABELS = {
    "app.kubernetes.io/name": "postgres",
    "app.kubernetes.io/managed-by": "pgc-operator",
}


def _owned_by(obj, cluster):
    return [(r["kind"], r["name"], r["uid"], r.get("controller")) for r in obj["metadata"].get("ownerReferences", [])] == [
        ("PostgresCluster", cluster["metadata"]["name"], cluster["metadata"]["uid"], True)]


def test_cluster_gets_statefulset_services_and_running_status(operator, namespace):
    """Three replicas: a StatefulSet and three Services, labelled and owned, and status Running 3/3."""
    apply(postgres_cluster("db", replicas=3, storageSize="1Gi"), namespace)
    cluster = wait_for_phase("db", namespace, "Running", ready=3)

    sts = get("statefulset", "db", namespace)
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == "db-pods"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    owned = [sts] + [get(kind, n, namespace) for kind, n in (
        ("service", "db"), ("service", "db-ro"), ("service", "db-pods"), ("configmap", "db-patroni"),
        ("serviceaccount", "db-patroni"), ("role", "db-patroni"), ("rolebinding", "db-patroni"),
        ("poddisruptionbudget", "db"))]
    for obj in owned:
        labels = obj["metadata"]["labels"]
        assert {**labels, **LABELS} == labels, obj["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == "db"
        assert labels["postgres.example.com/cluster"] == "db"
        assert _owned_by(obj, cluster), obj["metadata"]["name"]
    assert get("service", "db-pods", namespace)["spec"]["clusterIP"] == "None"
    assert get("service", "db", namespace)["spec"]["selector"] == {"postgres.example.com/cluster": "db", "role": "primary"}
    assert get("service", "db-ro", namespace)["spec"]["selector"] == {"postgres.example.com/cluster": "db",
                                                                       "role": "replica"}
    assert "scope: db" in get("configmap", "db-patroni", namespace)["data"]["patroni.yml"]
    assert sts["spec"]["template"]["spec"]["serviceAccountName"] == "db-patroni"

    status = cluster["status"]
    assert status["currentReplicas"] == 3
    assert status["observedGeneration"] == cluster["metadata"]["generation"]
    # No Patroni runs in kwok's pods, so no member is labelled primary (the data-plane tests run it).
    assert "currentPrimary" not in status
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Progressing"]["status"] == "False"
    assert conditions["Reconciled"]["status"] == "True"
    assert all(c["lastTransitionTime"] for c in conditions.values())

    wait_for(lambda: _events(namespace, "ClusterReady"), 30, "no ClusterReady Event")

    # The printer columns show phase and ready/desired.
    row = kubectl("get", "pgc", "db", "-n", namespace, "--no-headers").split()
    assert row[:4] == ["db", "Running", "3", "3"]


def _events(namespace, reason):
    return [e for e in kubectl_json("get", "events", "-n", namespace)["items"]
            if e["reason"] == reason and e["involvedObject"]["kind"] == "PostgresCluster"]


def test_scale_up_is_followed_by_status(operator, namespace):
    """replicas 3 -> 5 through the spec and 5 -> 4 through the scale subresource: status follows."""
    apply(postgres_cluster("db", replicas=3), namespace)
    first = wait_for_phase("db", namespace, "Running", ready=3)
    ready_since = {c["type"]: c for c in first["status"]["conditions"]}["Ready"]["lastTransitionTime"]

    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":5}}')
    cluster = wait_for_phase("db", namespace, "Running", ready=5)
    assert get("statefulset", "db", namespace)["spec"]["replicas"] == 5
    assert cluster["status"]["observedGeneration"] == cluster["metadata"]["generation"]

    wait_for(lambda: _events(namespace, "Scaling"), 30, "no Scaling Event")
    wait_for(lambda: _events(namespace, "ScalingDone"), 30, "no ScalingDone Event")

    kubectl("scale", "pgc", "db", "-n", namespace, "--replicas=4")
    wait_for_phase("db", namespace, "Running", ready=4)
    assert get("statefulset", "db", namespace)["spec"]["replicas"] == 4
    scale = json.loads(kubectl("get", "--raw",
                               f"/apis/postgres.example.com/v1/namespaces/{namespace}/postgresclusters/db/scale"))
    assert scale["spec"]["replicas"] == 4
    assert scale["status"]["replicas"] == 4
    assert scale["status"]["selector"] == "postgres.example.com/cluster=db"
    # The Ready condition went False while scaling and True again: a new transition time.
    conditions = {c["type"]: c for c in get("pgc", "db", namespace)["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["lastTransitionTime"] >= ready_since


def test_unchanged_cluster_reconciles_without_changes(operator, namespace):
    """A second reconcile of an unchanged, Running cluster reports no changed task, moves no object of
    any kind the operator manages, and makes no write request at all."""
    apply(postgres_cluster("db", replicas=2), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    # Let the status settle (the final status write of the converging reconcile).
    before = stable_resource_versions(namespace)
    assert {"StatefulSet/db", "Service/db", "ConfigMap/db-patroni", "Role/db-patroni", "Secret/db-credentials",
            "PodDisruptionBudget/db"} <= set(before), sorted(before)

    operator.restart()  # the initial list of a fresh operator reconciles every cluster; the log starts anew
    recaps = wait_for(lambda: operator.recaps("db", namespace), 60, "no reconcile finished after the restart")
    ok, changed, unreachable, failed = recaps[0]
    assert (changed, failed) == (0, 0), operator.log_tail(80)
    assert resource_versions(namespace) == before

    # A change of an owned object wakes the cluster: the label is the only write.
    wait_for_namespaces_gone()
    writes = api_writes()
    kubectl("label", "service", "db-pods", "-n", namespace, "example.com/touched=1")
    wait_for(lambda: len(operator.recaps("db", namespace)) > len(recaps), 60, "no reconcile after the touch")
    assert operator.recaps("db", namespace)[-1][1] == 0, operator.log_tail(80)
    assert writes_since(writes) == {("PATCH", "services", ""): 1}, "a no-op reconcile wrote"


def test_managed_fields_changed_by_hand_are_put_back(operator, namespace):
    """A field the operator sets, changed by hand, is put back by the reconcile the change wakes."""
    apply(postgres_cluster("db", replicas=1), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    stable_resource_versions(namespace)

    kubectl("patch", "service", "db", "-n", namespace, "--type=json",
            "-p", '[{"op": "replace", "path": "/spec/ports/0/port", "value": 6543}]')
    wait_for(lambda: get("service", "db", namespace)["spec"]["ports"][0]["port"] == 5432, 60,
             "the Service's port was not put back")

    image = get("statefulset", "db", namespace)["spec"]["template"]["spec"]["containers"][0]["image"]
    kubectl("patch", "statefulset", "db", "-n", namespace, "--type=json",
            "-p", '[{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "example.com/other:1"}]')
    wait_for(lambda: get("statefulset", "db", namespace)["spec"]["template"]["spec"]["containers"][0]["image"] == image,
             60, "the StatefulSet's image was not put back")

    # A StatefulSet that rolls its pods itself (as clusters made by earlier versions did, with the
    # rollingUpdate the API server defaults) is moved back to updates on delete.
    kubectl("patch", "statefulset", "db", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}}')
    wait_for(lambda: get("statefulset", "db", namespace)["spec"]["updateStrategy"] == {"type": "OnDelete"}, 60,
             "the StatefulSet was not moved back to updates on delete")

    # A label the operator does not set is another manager's, and stays.
    kubectl("label", "service", "db", "-n", namespace, "example.com/team=payments")
    stable_resource_versions(namespace)
    assert get("service", "db", namespace)["metadata"]["labels"]["example.com/team"] == "payments"


def test_deleting_the_cluster_garbage_collects_what_it_owned(operator, namespace):
    """Deleting the PostgresCluster removes its StatefulSet and Services, and Patroni's own
    ConfigMaps (its finalizer), and keeps the data claims."""
    apply(postgres_cluster("db", replicas=2), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    wait_for(lambda: len(kubectl_json("get", "pvc", "-n", namespace)["items"]) == 2, 30, "claims were not created")
    assert "postgres.example.com/cleanup" in get("pgc", "db", namespace)["metadata"].get("finalizers", [])
    # What Patroni's Kubernetes DCS would have created (no Patroni runs in these pods).
    for suffix in ("leader", "config", "failover", "sync"):
        kubectl("create", "configmap", f"db-{suffix}", "-n", namespace)
        kubectl("label", "configmap", f"db-{suffix}", "-n", namespace, "postgres.example.com/cluster=db")

    kubectl("delete", "pgc", "db", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for(lambda: all(get(k, n, namespace) is None for k, n in
                         (("statefulset", "db"), ("service", "db"), ("service", "db-ro"), ("service", "db-pods"),
                          ("configmap", "db-patroni"), ("role", "db-patroni"), ("poddisruptionbudget", "db"))),
             60, "owned objects were not garbage-collected")
    assert [get("configmap", f"db-{s}", namespace) for s in ("leader", "config", "failover", "sync")] == [None] * 4
    claims = [c["metadata"]["name"] for c in kubectl_json("get", "pvc", "-n", namespace)["items"]]
    assert sorted(claims) == ["data-db-0", "data-db-1"]


def test_claims_of_removed_members_go_when_the_spec_says_so(operator, namespace):
    """volumeClaimRetention.whenScaled: Delete removes the data claims of members a scale-down removed."""
    apply(postgres_cluster("db", replicas=3, volumeClaimRetention={"whenScaled": "Delete"}), namespace)
    wait_for_phase("db", namespace, "Running", ready=3)
    wait_for(lambda: len(kubectl_json("get", "pvc", "-n", namespace)["items"]) == 3, 30, "claims were not created")
    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":1}}')
    wait_for_phase("db", namespace, "Running", ready=1, timeout=120)
    wait_for(lambda: sorted(c["metadata"]["name"] for c in kubectl_json("get", "pvc", "-n", namespace)["items"]
                            if not c["metadata"].get("deletionTimestamp")) == ["data-db-0"], 60,
             "the claims of the removed members were not deleted")


def test_growing_the_storage_grows_the_claims_where_the_storage_class_allows_it(operator, namespace):
    """spec.storageSize grows: where the StorageClass refuses (the local one, until it allows
    expansion), nothing changes and status says why, Running still; once it allows, every claim
    grows and the StatefulSet is made again with the new size, its pods kept."""
    apply(postgres_cluster("db", replicas=2, storageSize="1Gi"), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in kubectl_json("get", "pods", "-n", namespace)["items"]}
    sts_uid = get("statefulset", "db", namespace)["metadata"]["uid"]
    assert get("pgc", "db", namespace)["status"]["storageSize"] == "1Gi"

    def sizes():
        return sorted(c["spec"]["resources"]["requests"]["storage"]
                      for c in kubectl_json("get", "pvc", "-n", namespace)["items"])

    def condition(cluster, ctype):
        return next((c for c in cluster["status"].get("conditions", []) if c["type"] == ctype), {})

    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"storageSize":"2Gi"}}')
    refused = wait_for(lambda: (lambda c: c if condition(c, "StorageExpanded").get("reason") == "ExpansionRefused"
                                else None)(get("pgc", "db", namespace)), 60, "no word of the refused expansion")
    assert refused["status"]["phase"] == "Running" and refused["status"]["storageSize"] == "1Gi"
    assert "data-db-0 cannot grow from 1Gi to 2Gi" in condition(refused, "StorageExpanded")["message"]
    assert sizes() == ["1Gi", "1Gi"] and get("statefulset", "db", namespace)["metadata"]["uid"] == sts_uid
    events = kubectl_json("get", "events", "-n", namespace, "--field-selector", "reason=StorageExpansionRefused")
    assert len(events["items"]) == 1, "one Warning, not one per reconcile"

    kubectl("patch", "storageclass", "kwok-volume", "-p", '{"allowVolumeExpansion": true}')
    try:
        kubectl("annotate", "pgc", "db", "-n", namespace, "example.com/nudge=1")
        wait_for(lambda: sizes() == ["2Gi", "2Gi"], 60, "the claims did not grow")
        cluster = wait_for(lambda: (lambda c: c if c["status"].get("storageSize") == "2Gi" else None)(
            get("pgc", "db", namespace)), 90, "status does not report the new size")
        cluster = wait_for(lambda: (lambda c: c if condition(c, "StorageExpanded").get("status") == "True" else None)(
            get("pgc", "db", namespace)), 60, "the condition does not say the claims grew")
        assert condition(cluster, "StorageExpanded")["reason"] == "Expanded"
        sts = wait_for_phase("db", namespace, "Running", ready=2) and get("statefulset", "db", namespace)
        assert sts["metadata"]["uid"] != sts_uid, "the StatefulSet was made again"
        assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"
        assert {p["metadata"]["name"]: p["metadata"]["uid"]
                for p in kubectl_json("get", "pods", "-n", namespace)["items"]} == pods, "no member was restarted"
    finally:
        kubectl("patch", "storageclass", "kwok-volume", "--type=json",
                "-p", '[{"op": "remove", "path": "/allowVolumeExpansion"}]', check=False)
