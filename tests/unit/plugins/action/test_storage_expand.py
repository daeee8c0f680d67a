# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""storage_expand: a larger spec.storageSize grows every member's claim, then the StatefulSet is
made again (its pods orphaned, not deleted); a StorageClass that refuses changes nothing."""

from __future__ import annotations

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils.k8s_client import ApiError
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize

NAMESPACE = "databases"


def pgc(size, replicas=2):
    return pgc_normalize({"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster",
                          "metadata": {"name": "main", "namespace": NAMESPACE, "uid": "u-1", "generation": 3},
                          "spec": {"replicas": replicas, "storageSize": size}})


def statefulset(size, replicas=2):
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "main", "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": size}}}}]},
            "status": {"replicas": replicas}}


def claim(name, size):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"resources": {"requests": {"storage": size}}}}


@pytest.fixture
def expand(run_action):
    return lambda cluster, check_mode=False: run_action(
        "storage_expand", {"cluster": cluster, "field_manager": "pgc-operator"}, check_mode=check_mode)


def test_a_larger_size_grows_every_claim_then_makes_the_statefulset_again_keeping_its_pods(expand, apis, cluster):
    cluster.add(statefulset("1Gi"), claim("data-main-0", "1Gi"), claim("data-main-1", "1Gi"))
    result = expand(pgc("2Gi"))
    assert result["changed"] and result["claims"] == ["data-main-0", "data-main-1"] and result["refused"] == ""
    assert (result["from"], result["to"]) == ("1Gi", "2Gi")
    for name in ("data-main-0", "data-main-1"):
        assert cluster.find("v1", "PersistentVolumeClaim", name, NAMESPACE)["spec"]["resources"]["requests"] == {
            "storage": "2Gi"}
    deletes = apis.direct.writes("delete")
    assert deletes == [{"api_version": "apps/v1", "kind": "StatefulSet", "name": "main", "namespace": NAMESPACE,
                        "orphan": True}], "the pods must stay: orphaned, not deleted"


def test_a_claim_already_grown_or_gone_is_left_alone(expand, apis, cluster):
    cluster.add(statefulset("1Gi", replicas=3), claim("data-main-0", "2Gi"), claim("data-main-1", "1Gi"))
    result = expand(pgc("2Gi", replicas=3))
    assert result["claims"] == ["data-main-1"]
    assert [d["name"] for d in apis.direct.writes("patch")] == ["data-main-1"]


def test_a_storage_class_that_refuses_changes_nothing_and_says_why(expand, apis, cluster):
    cluster.add(statefulset("1Gi"), claim("data-main-0", "1Gi"), claim("data-main-1", "1Gi"))
    apis.direct.errors["patch"] = ApiError(
        "persistentvolumeclaims \"data-main-0\" is forbidden: only dynamically provisioned pvc can be resized and "
        "the storageclass that provisions the pvc must support resize", 403)
    result = expand(pgc("2Gi"))
    assert not result["changed"] and result["claims"] == []
    assert result["refused"].startswith("PersistentVolumeClaim data-main-0 cannot grow from 1Gi to 2Gi: ")
    assert "must support resize" in result["refused"]
    assert apis.direct.writes("delete") == [] and cluster.find("apps/v1", "StatefulSet", "main", NAMESPACE)


@pytest.mark.parametrize("size", ["1Gi", "1024Mi"])
def test_the_same_size_writes_nothing(expand, apis, cluster, size):
    cluster.add(statefulset("1Gi"), claim("data-main-0", "1Gi"))
    assert expand(pgc(size))["changed"] is False
    assert apis.writes == []


def test_check_mode_names_the_claims_and_writes_nothing(expand, apis, cluster):
    cluster.add(statefulset("1Gi"), claim("data-main-0", "1Gi"), claim("data-main-1", "1Gi"))
    result = expand(pgc("5Gi"), check_mode=True)
    assert result["changed"] and result["claims"] == ["data-main-0", "data-main-1"]
    assert apis.writes == []
