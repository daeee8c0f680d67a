# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k8s_status: the status subresource is merge-patched only when it differs, with only what
differs, and the Events of the change go with that write and no other."""

from __future__ import annotations

import copy
import re

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils.k8s_client import ApiError

API_VERSION = "postgres.example.com/v1"
KIND = "PostgresCluster"
T0 = "2026-11-26T16:00:00Z"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
RUNNING = {
    "phase": "Running",
    "readyReplicas": 3,
    "conditions": [{"type": "Ready", "status": "True", "reason": "AllReplicasReady", "message": "3 of 3 replicas are ready"}],
}
RUNNING_LIVE = dict(RUNNING, conditions=[dict(RUNNING["conditions"][0], lastTransitionTime=T0)], currentPrimary="main-0")
EVENTS = [{"type": "Normal", "reason": "ClusterReady", "message": "3 of 3 replicas are ready"}]


def postgres_cluster(status=None):
    obj = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "main", "namespace": "databases", "uid": "uid-main", "generation": 4,
                     "resourceVersion": "100", "labels": {"postgres.example.com/cluster": "main"}},
        "spec": {"replicas": 3},
    }
    if status is not None:
        obj["status"] = copy.deepcopy(status)
    return obj


@pytest.fixture
def set_status(run_action):
    def run(status, check_mode=False, diff=False, **overrides):
        args = {"api_version": API_VERSION, "kind": KIND, "name": "main", "namespace": "databases", "status": status}
        args.update(overrides)
        return run_action("k8s_status", args, check_mode=check_mode, diff=diff)
    return run


def live_status(cluster):
    return cluster.find(API_VERSION, KIND, "main", "databases").get("status")


def test_k8s_status_unchanged_with_current_given_reads_and_writes_nothing(set_status, apis, cluster):
    cluster.add(postgres_cluster(RUNNING_LIVE))
    result = set_status(RUNNING, current=RUNNING_LIVE, events=EVENTS)
    assert apis.cached.calls == [] and apis.direct.calls == []
    assert result["changed"] is False
    assert "patch" not in result and "events" not in result
    assert result["status"] == RUNNING_LIVE


def test_k8s_status_unchanged_without_current_reads_once_and_writes_nothing(set_status, apis, cluster):
    cluster.add(postgres_cluster(RUNNING_LIVE))
    result = set_status(RUNNING, events=EVENTS)
    assert apis.cached.methods == ["get"]
    assert apis.direct.calls == []
    assert result["changed"] is False


def test_k8s_status_patches_only_the_differing_keys_on_the_status_subresource(set_status, apis, cluster):
    current = {"phase": "Pending", "readyReplicas": 0, "currentReplicas": 3}
    cluster.add(postgres_cluster(current))
    result = set_status({"phase": "Running", "readyReplicas": 3, "currentReplicas": 3}, current=current)
    [patch] = apis.cached.writes("patch")
    assert patch == {"api_version": API_VERSION, "kind": KIND, "name": "main", "namespace": "databases",
                     "body": {"status": {"phase": "Running", "readyReplicas": 3}}, "patch_type": "merge",
                     "subresource": "status"}
    assert result["changed"] is True
    assert result["patch"] == {"status": {"phase": "Running", "readyReplicas": 3}}
    assert live_status(cluster) == {"phase": "Running", "readyReplicas": 3, "currentReplicas": 3}


def test_k8s_status_returns_the_status_the_server_wrote(set_status, apis, cluster):
    cluster.add(postgres_cluster({"phase": "Pending", "observedBySomeoneElse": True}))
    result = set_status({"phase": "Running"}, current={"phase": "Pending"})
    assert result["status"] == {"phase": "Running", "observedBySomeoneElse": True}


def test_k8s_status_emits_the_events_through_the_direct_api_with_the_write(set_status, apis, cluster):
    cluster.add(postgres_cluster({"phase": "Pending"}))
    result = set_status(RUNNING, current={"phase": "Pending"}, events=EVENTS + [
        {"type": "Warning", "reason": "MemberLagging", "message": "main-2 lags"}])
    events = apis.direct.writes("create")
    assert [e["obj"]["reason"] for e in events] == ["ClusterReady", "MemberLagging"]
    assert [e["obj"]["type"] for e in events] == ["Normal", "Warning"]
    assert events[0]["obj"]["involvedObject"] == {"apiVersion": API_VERSION, "kind": KIND, "name": "main",
                                                  "namespace": "databases", "uid": "uid-main"}
    assert apis.cached.writes("create") == []
    assert apis.direct.methods == ["create", "create"]  # nothing read, nothing else written
    assert result["events"] == ["ClusterReady", "MemberLagging"]


def test_k8s_status_emits_no_events_when_nothing_differs(set_status, apis, cluster):
    cluster.add(postgres_cluster(RUNNING_LIVE))
    set_status(RUNNING, events=EVENTS)
    assert apis.direct.calls == []
    assert cluster.of_kind("Event") == []


def test_k8s_status_second_run_changes_nothing(set_status, apis, cluster):
    cluster.add(postgres_cluster({"phase": "Pending"}))
    first = set_status(RUNNING, events=EVENTS)
    second = set_status(RUNNING, events=EVENTS)
    assert (first["changed"], second["changed"]) == (True, False)
    assert len(apis.cached.writes("patch")) == 1
    assert len(cluster.of_kind("Event")) == 1


def test_k8s_status_check_mode_writes_nothing_and_reports_the_patch(set_status, apis, cluster):
    cluster.add(postgres_cluster({"phase": "Pending"}))
    result = set_status({"phase": "Running"}, check_mode=True, events=EVENTS)
    assert apis.writes == []
    assert live_status(cluster) == {"phase": "Pending"}
    assert result["changed"] is True
    assert result["patch"] == {"status": {"phase": "Running"}}
    assert result["status"] == {"phase": "Running"}
    assert "events" not in result


def test_k8s_status_check_mode_unchanged_reports_no_change(set_status, apis, cluster):
    cluster.add(postgres_cluster({"phase": "Running"}))
    result = set_status({"phase": "Running"}, check_mode=True)
    assert (result["changed"], apis.writes) == (False, [])


def test_k8s_status_keeps_transition_time_when_condition_status_is_unchanged(set_status, apis, cluster):
    current = {"conditions": [
        {"type": "Running", "status": "True", "reason": "Running", "message": "Running reconciliation", "lastTransitionTime": T0},
        {"type": "Ready", "status": "True", "reason": "Provisioned", "message": "ready", "lastTransitionTime": T0},
    ]}
    cluster.add(postgres_cluster(current))
    desired = {"conditions": [
        {"type": "Ready", "status": "True", "reason": "AllReplicasReady", "message": "3 of 3 replicas are ready"},
        {"type": "BackupHealthy", "status": "False", "reason": "NoBackupYet", "message": "no backup has run"},
    ]}
    set_status(desired, current=current)
    conditions = apis.cached.writes("patch")[0]["body"]["status"]["conditions"]
    assert [c["type"] for c in conditions] == ["Running", "Ready", "BackupHealthy"]
    assert conditions[0] == current["conditions"][0]
    assert conditions[1] == dict(desired["conditions"][0], lastTransitionTime=T0)
    assert RFC3339.match(conditions[2]["lastTransitionTime"]) and conditions[2]["lastTransitionTime"] != T0


def test_k8s_status_sets_transition_time_when_condition_status_changes(set_status, apis, cluster):
    current = {"conditions": [{"type": "Ready", "status": "False", "reason": "Provisioning", "message": "", "lastTransitionTime": T0}]}
    cluster.add(postgres_cluster(current))
    set_status({"conditions": [{"type": "Ready", "status": True, "reason": "AllReplicasReady", "message": ""}]})
    ready = apis.cached.writes("patch")[0]["body"]["status"]["conditions"][0]
    assert ready["status"] == "True"
    assert RFC3339.match(ready["lastTransitionTime"]) and ready["lastTransitionTime"] != T0


def test_k8s_status_given_transition_time_is_ignored(set_status, apis, cluster):
    current = {"conditions": [dict(RUNNING["conditions"][0], lastTransitionTime=T0)]}
    cluster.add(postgres_cluster(current))
    result = set_status({"conditions": [dict(RUNNING["conditions"][0], lastTransitionTime="2000-01-01T00:00:00Z")]},
                        current=current)
    assert result["changed"] is False
    assert apis.writes == []


def test_k8s_status_removes_a_key_set_to_null(set_status, apis, cluster):
    cluster.add(postgres_cluster({"phase": "Running", "lastBackupTimestamp": T0}))
    result = set_status({"lastBackupTimestamp": None})
    assert apis.cached.writes("patch")[0]["body"] == {"status": {"lastBackupTimestamp": None}}
    assert result["status"] == {"phase": "Running"}
    assert live_status(cluster) == {"phase": "Running"}


def test_k8s_status_diff_shows_the_status_before_and_after(set_status, apis, cluster):
    cluster.add(postgres_cluster({"phase": "Pending", "readyReplicas": 0}))
    result = set_status({"phase": "Running"}, diff=True)
    assert result["diff"] == {"before": {"phase": "Pending", "readyReplicas": 0},
                              "after": {"phase": "Running", "readyReplicas": 0}}


def test_k8s_status_diff_starts_from_an_empty_status(set_status, apis, cluster):
    cluster.add(postgres_cluster())
    result = set_status({"phase": "Pending"}, check_mode=True, diff=True)
    assert result["diff"] == {"before": {}, "after": {"phase": "Pending"}}


def test_k8s_status_fails_when_the_object_does_not_exist(set_status, apis):
    result = set_status({"phase": "Running"}, events=EVENTS)
    assert result["failed"] is True
    assert result["msg"] == ("PostgresCluster databases/main (postgres.example.com/v1) does not exist, "
                             "so its status cannot be set")
    assert apis.writes == []


def test_k8s_status_reports_the_api_servers_message_when_the_patch_is_rejected(set_status, apis, cluster):
    cluster.add(postgres_cluster())
    apis.cached.errors["patch"] = ApiError(
        'patch PostgresCluster databases/main/status: status.phase: Unsupported value: "Runing"', 422)
    result = set_status({"phase": "Runing"}, events=EVENTS)
    assert result["failed"] is True
    assert result["msg"] == 'patch PostgresCluster databases/main/status: status.phase: Unsupported value: "Runing"'
    assert apis.direct.calls == []


def test_k8s_status_without_status_subresource_fails_with_the_servers_message(set_status, apis, cluster):
    cluster.add(postgres_cluster())
    apis.cached.errors["patch"] = ApiError("patch PostgresCluster databases/main/status: the server could not find "
                                           "the requested resource", 404)
    result = set_status({"phase": "Running"})
    assert result["failed"] is True
    assert "could not find the requested resource" in result["msg"]


def test_k8s_status_fails_on_malformed_conditions(set_status, apis, cluster):
    cluster.add(postgres_cluster())
    result = set_status({"conditions": [{"status": "True"}]})
    assert result["failed"] is True
    assert result["msg"].startswith("Invalid status for PostgresCluster databases/main: ")
    assert apis.writes == []


def test_k8s_status_refuses_a_bad_event_type(set_status, apis, cluster):
    cluster.add(postgres_cluster())
    result = set_status({"phase": "Running"}, events=[{"type": "Error", "reason": "X", "message": "y"}])
    assert result["failed"] is True
    assert "Error" in result["msg"]
    assert apis.cached.calls == [] and apis.direct.calls == []
