"""The operator's packaging agrees with itself: watches.yaml, the Dockerfile, the pinned runtime."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_watches_maps_each_custom_resource_to_its_role():
    watches = yaml.safe_load((REPO / "watches.yaml").read_text())
    assert [(w["group"], w["version"], w["kind"], w["role"]) for w in watches] == [
        ("postgres.example.com", "v1", "PostgresCluster", "postgres.cluster.reconcile"),
        ("postgres.example.com", "v1", "PostgresBackup", "postgres.cluster.reconcile_backup"),
    ]
    for watch in watches:
        for role in (watch["role"], watch["finalizer"]["role"]):
            assert (REPO / "roles" / role.split(".")[-1] / "tasks/main.yml").is_file()
    backup = watches[1]
    assert backup["finalizer"] == {"name": "postgres.example.com/expire", "role": "postgres.cluster.reconcile_backup",
                                   "vars": {"reconcile_backup_finalize": True}}
    # Its Jobs are never cached by the runtime: the requeue follows them.
    assert backup["watchDependentResources"] is False


def test_watches_keeps_user_maps_and_status_writes_under_the_collections_control():
    for watch in yaml.safe_load((REPO / "watches.yaml").read_text()):
        assert watch["snakeCaseParameters"] is False
        assert watch["manageStatus"] is False
        assert 1 <= watch["maxRunnerArtifacts"] <= 5
        hours = re.fullmatch(r"(\d+)h", watch["reconcilePeriod"])
        assert hours and int(hours.group(1)) >= 1, "idle objects must not be resynced often"


def test_dockerfile_builds_on_the_runtime_version_used_locally():
    dockerfile = (REPO / "Dockerfile").read_text()
    pinned = re.search(r"github.com/operator-framework/ansible-operator-plugins (v[\d.]+)",
                       (REPO / "hack/tools/ansible-operator/go.mod").read_text()).group(1)
    assert f"ARG ANSIBLE_OPERATOR_VERSION={pinned}" in dockerfile
    assert re.search(r"^FROM quay.io/operator-framework/ansible-operator:\$\{ANSIBLE_OPERATOR_VERSION\}$", dockerfile, re.M)
    assert "COPY watches.yaml ${HOME}/watches.yaml" in dockerfile
    assert re.search(r"ansible-galaxy collection install /tmp/postgres-cluster-\*\.tar\.gz", dockerfile)
    assert "ansible-galaxy collection install -r ${HOME}/requirements.yml" in dockerfile


def test_collection_metadata_names_the_collection_and_its_dependencies():
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"]) == ("postgres", "cluster")
    requirements = yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    assert {c["name"] for c in requirements} == set(galaxy["dependencies"])
    runtime = yaml.safe_load((REPO / "meta/runtime.yml").read_text())
    assert runtime["requires_ansible"].startswith(">=")


def test_manager_image_is_set_through_kustomize():
    manager = yaml.safe_load((REPO / "config/manager/manager.yaml").read_text())
    kustomization = yaml.safe_load((REPO / "config/manager/kustomization.yaml").read_text())
    container = manager["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].split(":")[0] in {i["name"] for i in kustomization["images"]}


def test_database_image_pins_the_patroni_the_data_plane_tests_run():
    dockerfile = (REPO / "images/postgres/Dockerfile").read_text()
    tested = re.search(r"^patroni\[kubernetes\]==([\d.]+)", (REPO / "requirements-dev.txt").read_text(), re.M).group(1)
    assert f"ARG PATRONI_VERSION={tested}" in dockerfile
    assert re.search(r"^ARG PG_MAJOR=15$", dockerfile, re.M)
    assert "FROM postgres:${PG_MAJOR}" in dockerfile


def test_watches_hands_the_object_to_the_roles_as_data_not_templates():
    for watch in yaml.safe_load((REPO / "watches.yaml").read_text()):
        assert watch["markUnsafe"] is True


def test_the_operator_logs_one_json_object_per_line():
    manager = yaml.safe_load((REPO / "config/manager/manager.yaml").read_text())
    container = {c["name"]: c for c in manager["spec"]["template"]["spec"]["containers"]}["manager"]
    assert "--zap-encoder=json" in container["args"]
    assert "--zap-devel" not in " ".join(container["args"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ANSIBLE_DEBUG_LOGS"] == "False"


def test_watches_wakes_a_cluster_on_annotations_and_cleans_up_on_delete():
    watch = yaml.safe_load((REPO / "watches.yaml").read_text())[0]
    assert watch["watchAnnotationsChanges"] is True
    assert watch["finalizer"] == {"name": "postgres.example.com/cleanup", "role": "postgres.cluster.cleanup"}
