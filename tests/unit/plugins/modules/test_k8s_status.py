# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError

from ansible_collections.kubernetes.core.plugins.doc_fragments.k8s_auth_options import ModuleDocFragment as AuthDocFragment
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.postgres.cluster.plugins.modules import k8s_status

API_VERSION = "postgres.example.com/v1"
KIND = "PostgresCluster"
T0 = "2026-11-26T16:00:00Z"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def apply_merge_patch(target, patch):
    """RFC 7386, written independently of the module so that its patches are checked, not echoed."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


class FakeResourceInstance:
    def __init__(self, obj):
        self._obj = copy.deepcopy(obj)

    def to_dict(self):
        return copy.deepcopy(self._obj)


class FakeStatusSubresource:
    def __init__(self, client):
        self._client = client

    def patch(self, body=None, name=None, namespace=None, **kwargs):
        self._client.calls.append(("patch_status", {"body": copy.deepcopy(body), "name": name, "namespace": namespace, **kwargs}))
        if self._client.patch_error is not None:
            raise self._client.patch_error
        key = (namespace, name)
        self._client.objects[key] = apply_merge_patch(self._client.objects[key], body)
        self._client.objects[key]["metadata"]["resourceVersion"] = str(int(self._client.objects[key]["metadata"]["resourceVersion"]) + 1)
        return FakeResourceInstance(self._client.objects[key])


class FakeResource:
    def __init__(self, client, kind, namespaced, status_subresource):
        self.kind = kind
        self.namespaced = namespaced
        if status_subresource:
            self.status = FakeStatusSubresource(client)


class FakeK8sClient:
    """Stands in for kubernetes.core's K8SClient and records every call."""

    def __init__(self, objects=(), namespaced=True, status_subresource=True):
        self.objects = {(obj["metadata"].get("namespace"), obj["metadata"]["name"]): copy.deepcopy(obj) for obj in objects}
        self.namespaced = namespaced
        self.status_subresource = status_subresource
        self.patch_error = None
        self.calls = []

    def resource(self, kind, api_version):
        self.calls.append(("resource", {"kind": kind, "api_version": api_version}))
        if kind != KIND or api_version != API_VERSION:
            raise ResourceNotFoundError("No matches found for {0}".format(kind))
        return FakeResource(self, kind, self.namespaced, self.status_subresource)

    def get(self, resource, name=None, namespace=None):
        self.calls.append(("get", {"name": name, "namespace": namespace}))
        if (namespace, name) not in self.objects:
            raise NotFoundError(ApiException(status=404, reason="Not Found"))
        return FakeResourceInstance(self.objects[(namespace, name)])

    @property
    def patches(self):
        return [params for call, params in self.calls if call == "patch_status"]


def cluster(status=None, namespace="databases", name="main"):
    obj = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "generation": 4, "resourceVersion": "100"},
        "spec": {"replicas": 3},
    }
    if status is not None:
        obj["status"] = status
    return obj


def module_args(status, **overrides):
    args = {"api_version": API_VERSION, "kind": KIND, "name": "main", "namespace": "databases", "status": status}
    args.update(overrides)
    return args


@pytest.fixture
def use_client(monkeypatch):
    def install(client):
        monkeypatch.setattr(k8s_status, "get_api_client", lambda *args, **kwargs: client)
        return client

    return install


RUNNING = {
    "phase": "Running",
    "readyReplicas": 3,
    "conditions": [{"type": "Ready", "status": "True", "reason": "AllReplicasReady", "message": "3 of 3 replicas are ready"}],
}


def test_k8s_status_writes_nothing_when_status_unchanged(run_module, use_client):
    current = dict(RUNNING, conditions=[dict(RUNNING["conditions"][0], lastTransitionTime=T0)], currentPrimary="main-0")
    client = use_client(FakeK8sClient([cluster(current)]))
    rc, result = run_module(k8s_status, module_args(RUNNING))
    assert rc == 0
    assert result["changed"] is False
    assert client.patches == []
    assert "patch" not in result
    assert result["result"] == cluster(current)


def test_k8s_status_patches_only_changed_fields(run_module, use_client):
    client = use_client(FakeK8sClient([cluster({"phase": "Pending", "readyReplicas": 0, "currentReplicas": 3})]))
    rc, result = run_module(k8s_status, module_args({"phase": "Running", "readyReplicas": 3, "currentReplicas": 3}))
    assert rc == 0
    assert result["changed"] is True
    assert client.patches == [
        {
            "body": {"status": {"phase": "Running", "readyReplicas": 3}},
            "name": "main",
            "namespace": "databases",
            "content_type": "application/merge-patch+json",
        }
    ]
    assert result["patch"] == {"status": {"phase": "Running", "readyReplicas": 3}}
    assert result["result"]["status"] == {"phase": "Running", "readyReplicas": 3, "currentReplicas": 3}
    assert result["result"]["metadata"]["resourceVersion"] == "101"


def test_k8s_status_second_run_changes_nothing(run_module, use_client):
    client = use_client(FakeK8sClient([cluster({"phase": "Pending"})]))
    first_rc, first = run_module(k8s_status, module_args(RUNNING))
    second_rc, second = run_module(k8s_status, module_args(RUNNING))
    assert (first_rc, second_rc) == (0, 0)
    assert (first["changed"], second["changed"]) == (True, False)
    assert len(client.patches) == 1
    assert client.objects[("databases", "main")]["metadata"]["resourceVersion"] == "101"


def test_k8s_status_check_mode_reports_change_without_patch(run_module, use_client):
    client = use_client(FakeK8sClient([cluster({"phase": "Pending"})]))
    rc, result = run_module(k8s_status, module_args({"phase": "Running"}), check_mode=True)
    assert rc == 0
    assert result["changed"] is True
    assert client.patches == []
    assert result["patch"] == {"status": {"phase": "Running"}}
    assert result["result"]["status"] == {"phase": "Running"}
    assert client.objects[("databases", "main")]["status"] == {"phase": "Pending"}


def test_k8s_status_check_mode_reports_no_change_when_status_unchanged(run_module, use_client):
    client = use_client(FakeK8sClient([cluster({"phase": "Running"})]))
    rc, result = run_module(k8s_status, module_args({"phase": "Running"}), check_mode=True)
    assert (rc, result["changed"], client.patches) == (0, False, [])


def test_k8s_status_preserves_transition_time_when_condition_status_unchanged(run_module, use_client):
    current = {
        "conditions": [
            {"type": "Running", "status": "True", "reason": "Running", "message": "Running reconciliation", "lastTransitionTime": T0},
            {"type": "Ready", "status": "True", "reason": "Provisioned", "message": "ready", "lastTransitionTime": T0},
        ]
    }
    client = use_client(FakeK8sClient([cluster(current)]))
    desired = {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "AllReplicasReady", "message": "3 of 3 replicas are ready"},
            {"type": "BackupHealthy", "status": "False", "reason": "NoBackupYet", "message": "no backup has run"},
        ]
    }
    rc, result = run_module(k8s_status, module_args(desired))
    assert rc == 0
    conditions = client.patches[0]["body"]["status"]["conditions"]
    assert [item["type"] for item in conditions] == ["Running", "Ready", "BackupHealthy"]
    assert conditions[0] == current["conditions"][0]
    assert conditions[1] == dict(desired["conditions"][0], lastTransitionTime=T0)
    assert RFC3339.match(conditions[2]["lastTransitionTime"])
    assert conditions[2]["lastTransitionTime"] != T0


def test_k8s_status_sets_transition_time_when_condition_status_changes(run_module, use_client):
    current = {"conditions": [{"type": "Ready", "status": "False", "reason": "Provisioning", "message": "", "lastTransitionTime": T0}]}
    client = use_client(FakeK8sClient([cluster(current)]))
    run_module(k8s_status, module_args({"conditions": [{"type": "Ready", "status": True, "reason": "AllReplicasReady", "message": ""}]}))
    ready = client.patches[0]["body"]["status"]["conditions"][0]
    assert ready["status"] == "True"
    assert RFC3339.match(ready["lastTransitionTime"]) and ready["lastTransitionTime"] != T0


def test_k8s_status_removes_key_set_to_null(run_module, use_client):
    client = use_client(FakeK8sClient([cluster({"phase": "Running", "lastBackupTimestamp": T0})]))
    rc, result = run_module(k8s_status, module_args({"lastBackupTimestamp": None}))
    assert rc == 0
    assert client.patches[0]["body"] == {"status": {"lastBackupTimestamp": None}}
    assert result["result"]["status"] == {"phase": "Running"}


def test_k8s_status_diff_shows_status_before_and_after(run_module, use_client):
    use_client(FakeK8sClient([cluster({"phase": "Pending", "readyReplicas": 0})]))
    rc, result = run_module(k8s_status, module_args({"phase": "Running"}), diff=True)
    assert rc == 0
    assert result["diff"] == {"before": {"phase": "Pending", "readyReplicas": 0}, "after": {"phase": "Running", "readyReplicas": 0}}


def test_k8s_status_diff_starts_from_empty_status(run_module, use_client):
    use_client(FakeK8sClient([cluster()]))
    rc, result = run_module(k8s_status, module_args({"phase": "Pending"}), check_mode=True, diff=True)
    assert (rc, result["diff"]) == (0, {"before": {}, "after": {"phase": "Pending"}})


def test_k8s_status_fails_when_object_missing(run_module, use_client):
    client = use_client(FakeK8sClient([]))
    rc, result = run_module(k8s_status, module_args({"phase": "Running"}))
    assert rc == 1
    assert result["failed"] is True
    assert "PostgresCluster databases/main" in result["msg"]
    assert "does not exist" in result["msg"]
    assert client.patches == []


def test_k8s_status_fails_when_kind_not_served(run_module, use_client):
    use_client(FakeK8sClient([cluster()]))
    rc, result = run_module(k8s_status, module_args({"phase": "Running"}, kind="PostgresClustr"))
    assert rc == 1
    assert "PostgresClustr" in result["msg"] and API_VERSION in result["msg"]


def test_k8s_status_fails_without_namespace_for_namespaced_kind(run_module, use_client):
    client = use_client(FakeK8sClient([cluster()]))
    rc, result = run_module(k8s_status, module_args({"phase": "Running"}, namespace=None))
    assert rc == 1
    assert "namespace is required" in result["msg"]
    assert [call for call, _ in client.calls] == ["resource"]


def test_k8s_status_ignores_namespace_of_cluster_scoped_kind(run_module, use_client):
    client = use_client(FakeK8sClient([cluster({"phase": "Pending"}, namespace=None)], namespaced=False))
    rc, result = run_module(k8s_status, module_args({"phase": "Running"}, namespace="ignored"))
    assert (rc, result["changed"]) == (0, True)
    assert client.patches[0]["namespace"] is None


def test_k8s_status_fails_without_status_subresource(run_module, use_client):
    use_client(FakeK8sClient([cluster()], status_subresource=False))
    rc, result = run_module(k8s_status, module_args({"phase": "Running"}))
    assert rc == 1
    assert "no status subresource" in result["msg"]


def test_k8s_status_reports_the_api_server_message_when_patch_rejected(run_module, use_client):
    client = use_client(FakeK8sClient([cluster()]))
    body = json.dumps({"kind": "Status", "message": 'status.phase: Unsupported value: "Runing"', "code": 422})
    rejection = ApiException(status=422, reason="Unprocessable Entity")
    rejection.body = body
    client.patch_error = DynamicApiError(rejection)
    rc, result = run_module(k8s_status, module_args({"phase": "Runing"}))
    assert rc == 1
    assert result["msg"] == 'Failed to patch the status of PostgresCluster databases/main: status.phase: Unsupported value: "Runing"'


def test_k8s_status_fails_on_malformed_conditions(run_module, use_client):
    client = use_client(FakeK8sClient([cluster()]))
    rc, result = run_module(k8s_status, module_args({"conditions": [{"status": "True"}]}))
    assert rc == 1
    assert result["msg"].startswith("Invalid status for PostgresCluster databases/main")
    assert client.patches == []


def test_k8s_status_documents_every_option():
    documentation = yaml.safe_load(k8s_status.DOCUMENTATION)
    options = documentation["options"]
    assert set(options) == set(k8s_status.STATUS_ARG_SPEC)
    for name, spec in k8s_status.STATUS_ARG_SPEC.items():
        assert options[name]["type"] == spec["type"], name
        assert options[name].get("required", False) == spec.get("required", False), name
    assert "kubernetes.core.k8s_auth_options" in documentation["extends_documentation_fragment"]
    assert set(yaml.safe_load(AuthDocFragment.DOCUMENTATION)["options"]) == set(AUTH_ARG_SPEC)
    assert set(k8s_status.argspec()) == set(AUTH_ARG_SPEC) | set(k8s_status.STATUS_ARG_SPEC)


def test_k8s_status_examples_and_return_are_valid_yaml():
    examples = yaml.safe_load(k8s_status.EXAMPLES)
    assert all("postgres.cluster.k8s_status" in task for task in examples)
    assert {"changed", "result", "patch"} <= set(yaml.safe_load(k8s_status.RETURN))
