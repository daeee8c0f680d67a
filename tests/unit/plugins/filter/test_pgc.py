"""The normalized cluster fact and the status computed from a StatefulSet."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.postgres.cluster.plugins.filter import pgc as flt

REPO = Path(__file__).resolve().parents[4]
CRD = REPO / "config/crd/bases/postgres.example.com_postgresclusters.yaml"


def cluster(**spec):
    return {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster",
            "metadata": {"name": "db", "namespace": "prod", "uid": "u-1", "generation": 4},
            "spec": spec}


def statefulset(replicas, ready, updated=None, generation=2, observed=2):
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "readyReplicas": ready,
                       "updatedReplicas": replicas if updated is None else updated,
                       "observedGeneration": observed}}


def test_pgc_normalize_applies_the_crd_defaults():
    crd = yaml.safe_load(CRD.read_text())
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    crd_defaults = {k: v["default"] for k, v in props.items() if "default" in v}
    assert crd_defaults, "the CRD declares defaults"
    for key, value in crd_defaults.items():
        assert flt.SPEC_DEFAULTS[key] == value, key
    assert set(flt.SPEC_DEFAULTS) <= set(props), "every defaulted field exists in the CRD"


def test_pgc_normalize_keeps_user_values_and_derives_names_and_labels():
    pgc = flt.pgc_normalize(cluster(replicas=3, configuration={"shared_buffers": "1GB"}))
    assert pgc["spec"]["replicas"] == 3
    assert pgc["spec"]["configuration"] == {"shared_buffers": "1GB"}
    assert pgc["spec"]["image"] == "postgres:15"
    assert pgc["names"] == {"statefulset": "db", "service_rw": "db", "service_ro": "db-ro", "service_headless": "db-pods"}
    assert pgc["labels"]["app.kubernetes.io/instance"] == "db"
    assert pgc["selector_string"] == "postgres.example.com/cluster=db"
    assert pgc["owner_reference"] == {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster",
                                      "name": "db", "uid": "u-1", "controller": True, "blockOwnerDeletion": True}


def test_pgc_normalize_refuses_an_object_without_name():
    with pytest.raises(Exception, match="metadata.name"):
        flt.pgc_normalize({"metadata": {}})


def test_pgc_status_is_pending_without_statefulset():
    status = flt.pgc_status(flt.pgc_normalize(cluster(replicas=3)), None)
    assert status["phase"] == "Pending"
    assert status["readyReplicas"] == 0
    assert status["currentPrimary"] is None


def test_pgc_status_is_running_when_every_replica_is_ready():
    status = flt.pgc_status(flt.pgc_normalize(cluster(replicas=3)), statefulset(3, 3))
    assert status["phase"] == "Running"
    assert (status["currentReplicas"], status["readyReplicas"]) == (3, 3)
    assert status["observedGeneration"] == 4
    assert status["selector"] == "postgres.example.com/cluster=db"
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {"Ready": "True", "Progressing": "False", "Reconciled": "True"}


def test_pgc_status_waits_for_the_statefulset_controller_to_see_the_new_template():
    status = flt.pgc_status(flt.pgc_normalize(cluster(replicas=3)), statefulset(3, 3, generation=3, observed=2))
    assert status["phase"] == "Pending"


def test_pgc_status_reports_scaling_once_the_cluster_was_running():
    obj = cluster(replicas=5)
    obj["status"] = {"phase": "Running"}
    sts = statefulset(5, 3)
    sts["status"]["replicas"] = 3
    status = flt.pgc_status(flt.pgc_normalize(obj), sts)
    assert status["phase"] == "Scaling"
    assert "3 to 5" in status["message"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"


def test_pgc_failure_status_names_the_failure():
    status = flt.pgc_failure_status(flt.pgc_normalize(cluster()), "Apply the cluster's objects: forbidden")
    assert status["phase"] == "Failed"
    reconciled = [c for c in status["conditions"] if c["type"] == "Reconciled"][0]
    assert reconciled["status"] == "False" and "forbidden" in reconciled["message"]


def test_pgc_failure_message_keeps_the_api_servers_own_message():
    raw = ("Failed to apply object: b'{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
           "\"message\":\"StatefulSet.apps \\\\\"db\\\\\" is invalid: spec: Forbidden: updates to statefulset spec for "
           "fields other than \\'replicas\\' are forbidden\",\"reason\":\"Invalid\",\"code\":422}'")
    msg = flt.pgc_failure_message(raw)
    assert msg == ("Failed to apply object: StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to "
                   "statefulset spec for fields other than 'replicas' are forbidden")


def test_pgc_failure_message_collapses_and_truncates_plain_text():
    assert flt.pgc_failure_message("a\n  b") == "a b"
    assert len(flt.pgc_failure_message("x" * 2000)) == 600


def test_pgc_object_diffs_keeps_changed_objects_without_server_noise():
    results = [
        {"changed": False, "result": {"kind": "Service", "metadata": {"name": "db"}}, "diff": {}},
        {"changed": True, "result": {"kind": "StatefulSet", "metadata": {"name": "db"}},
         "diff": {"before": {"metadata": {"generation": 1, "managedFields": []}, "spec": {"replicas": 3}},
                  "after": {"metadata": {"generation": 2, "managedFields": []}, "spec": {"replicas": 5},
                            "status": {"replicas": 3}}}},
    ]
    assert flt.pgc_object_diffs(results) == {
        "StatefulSet/db": {"before": {"spec": {"replicas": 3}}, "after": {"spec": {"replicas": 5}}}}


def test_pgc_status_differs_ignores_transition_times_and_sees_real_changes():
    pgc = flt.pgc_normalize(cluster(replicas=3))
    desired = flt.pgc_status(pgc, statefulset(3, 3))
    written = {**desired, "conditions": [{**c, "lastTransitionTime": "2026-01-01T00:00:00Z"}
                                         for c in desired["conditions"]]}
    assert not flt.pgc_status_differs(written, desired)
    assert flt.pgc_status_differs(written, flt.pgc_status(pgc, statefulset(3, 2)))
    assert flt.pgc_status_differs({}, desired)
    assert flt.pgc_status_differs(None, desired)
