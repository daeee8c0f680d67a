# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k8s_event: one Event per item, about the object given, created straight on the API server."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils import k8s_client
from ansible_collections.postgres.cluster.plugins.module_utils.k8s_client import ApiError
from ansible_collections.postgres.cluster.plugins.module_utils.events import COMPONENT, MESSAGE_LIMIT

BACKUP_REF = {
    "apiVersion": "postgres.example.com/v1",
    "kind": "PostgresBackup",
    "metadata": {"name": "nightly", "namespace": "databases", "uid": "0b5c6c5e-1f7a-4c1e-9a43-3d0f1f6d2b11",
                 "labels": {"postgres.example.com/cluster": "main"}},
}
SUCCEEDED = {"type": "Normal", "reason": "BackupSucceeded", "message": "Backup 20261129-020000F took 42 s"}


@pytest.fixture
def emit(run_action):
    def run(events, obj=BACKUP_REF, check_mode=False, **extra):
        return run_action("k8s_event", dict({"object": obj, "events": events}, **extra), check_mode=check_mode)
    return run


def created(apis):
    return [w["obj"] for w in apis.direct.writes("create")]


def test_k8s_event_creates_one_event_per_item(emit, apis):
    result = emit([SUCCEEDED, {"type": "Warning", "reason": "BackupSlow", "message": "over an hour"}])
    assert [e["reason"] for e in created(apis)] == ["BackupSucceeded", "BackupSlow"]
    assert result["changed"] is True
    assert result["events"] == ["BackupSucceeded", "BackupSlow"]


def test_k8s_event_names_the_object_it_is_about(emit, apis):
    emit([SUCCEEDED])
    [event] = created(apis)
    assert event["apiVersion"] == "v1" and event["kind"] == "Event"
    assert event["metadata"] == {"generateName": "nightly.", "namespace": "databases",
                                 "labels": {"postgres.example.com/cluster": "main"}}
    assert event["involvedObject"] == {"apiVersion": "postgres.example.com/v1", "kind": "PostgresBackup",
                                       "name": "nightly", "namespace": "databases",
                                       "uid": "0b5c6c5e-1f7a-4c1e-9a43-3d0f1f6d2b11"}
    assert (event["type"], event["reason"], event["message"]) == ("Normal", "BackupSucceeded", SUCCEEDED["message"])
    assert event["source"] == {"component": COMPONENT} and event["reportingComponent"] == COMPONENT
    assert event["count"] == 1 and event["firstTimestamp"] == event["lastTimestamp"]
    stamped = datetime.datetime.strptime(event["firstTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - stamped).total_seconds()) < 60


def test_k8s_event_about_a_whole_object_takes_only_its_reference(emit, apis):
    whole = dict(BACKUP_REF, spec={"cluster": "main"}, status={"phase": "Succeeded"})
    emit([SUCCEEDED], obj=whole)
    [event] = created(apis)
    assert event["involvedObject"]["name"] == "nightly" and "spec" not in event and "status" not in event


def test_k8s_event_type_defaults_to_normal(emit, apis):
    emit([{"reason": "BackupStarted", "message": "started"}])
    assert created(apis)[0]["type"] == "Normal"


def test_k8s_event_cuts_the_message_at_the_limit(emit, apis):
    emit([{"type": "Warning", "reason": "BackupFailed", "message": "x" * 5000}])
    message = created(apis)[0]["message"]
    assert len(message) == MESSAGE_LIMIT == 1000
    assert message.endswith("...") and message[:-3] == "x" * 997


def test_k8s_event_keeps_a_message_at_the_limit_whole(emit, apis):
    emit([{"type": "Warning", "reason": "BackupFailed", "message": "y" * 1000}])
    assert created(apis)[0]["message"] == "y" * 1000


def test_k8s_event_check_mode_creates_nothing(emit, apis):
    result = emit([SUCCEEDED], check_mode=True)
    assert apis.direct.calls == [] and apis.cached.calls == []
    assert result["changed"] is True
    assert result["events"] == ["BackupSucceeded"]


def test_k8s_event_without_events_changes_nothing(emit, apis):
    result = emit([])
    assert apis.direct.calls == []
    assert (result["changed"], result["events"]) == (False, [])


def test_k8s_event_never_uses_the_cached_api(emit, apis):
    emit([SUCCEEDED])
    assert apis.cached.calls == []
    assert apis.direct.methods == ["create"]
    assert [way for way, _ in apis.asked] == ["direct"]


def test_k8s_event_refuses_an_unknown_type(emit, apis):
    result = emit([{"type": "Error", "reason": "X", "message": "y"}])
    assert result["failed"] is True
    assert "Error" in result["msg"] and "Normal" in result["msg"]
    assert apis.direct.calls == []


def test_k8s_event_requires_a_reason(emit, apis):
    result = emit([{"message": "y"}])
    assert result["failed"] is True
    assert "reason" in result["msg"]


def test_k8s_event_api_error_fails_with_its_message(emit, apis):
    apis.direct.errors["create"] = ApiError('create Event databases/nightly.: events is forbidden', 403)
    result = emit([SUCCEEDED])
    assert result["failed"] is True
    assert result["msg"] == 'create Event databases/nightly.: events is forbidden'


def test_k8s_event_kubeconfig_and_context_reach_the_client(run_action, monkeypatch, fake_api):
    # Without the apis fixture: K8sAction's own way to module_utils.k8s_client.
    asked = []
    api = fake_api("direct")

    def direct(kubeconfig=None, context=None):
        asked.append((kubeconfig, context))
        return api

    monkeypatch.setattr(k8s_client, "direct", direct)
    monkeypatch.setattr(k8s_client, "cached", lambda *a, **k: pytest.fail("the cached api was asked for"))
    run_action("k8s_event", {"object": BACKUP_REF, "events": [SUCCEEDED], "kubeconfig": "/etc/kube/config",
                             "context": "prod"})
    assert asked == [("/etc/kube/config", "prod")]
    assert api.methods == ["create"]
