# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy
import datetime

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils.k8s_status import (
    desired_status,
    merge_conditions,
    rfc3339_now,
    status_patch,
)

T0 = "2026-11-26T16:00:00Z"
NOW = "2026-11-26T17:00:00Z"


def condition(condition_type, status, reason="Reason", message="message", **extra):
    result = {"type": condition_type, "status": status, "reason": reason, "message": message}
    result.update(extra)
    return result


def test_merge_conditions_keeps_transition_time_when_status_unchanged():
    existing = [condition("Ready", "True", lastTransitionTime=T0)]
    merged = merge_conditions(existing, [condition("Ready", "True")], NOW)
    assert merged == [condition("Ready", "True", lastTransitionTime=T0)]


def test_merge_conditions_keeps_transition_time_when_only_reason_and_message_change():
    existing = [condition("Ready", "False", reason="Provisioning", message="0 of 3 ready", lastTransitionTime=T0)]
    merged = merge_conditions(existing, [condition("Ready", "False", reason="Scaling", message="1 of 3 ready")], NOW)
    assert merged == [condition("Ready", "False", reason="Scaling", message="1 of 3 ready", lastTransitionTime=T0)]


def test_merge_conditions_sets_transition_time_when_status_changes():
    existing = [condition("Ready", "False", lastTransitionTime=T0)]
    merged = merge_conditions(existing, [condition("Ready", "True")], NOW)
    assert merged == [condition("Ready", "True", lastTransitionTime=NOW)]


def test_merge_conditions_sets_transition_time_when_existing_has_none():
    merged = merge_conditions([condition("Ready", "True")], [condition("Ready", "True")], NOW)
    assert merged[0]["lastTransitionTime"] == NOW


def test_merge_conditions_keeps_other_types_unchanged_and_in_place():
    operator_owned = {"type": "Running", "status": "True", "ansibleResult": {"ok": 3}, "lastTransitionTime": T0}
    existing = [
        operator_owned,
        condition("Ready", "False", lastTransitionTime=T0),
        condition("Failure", "False", lastTransitionTime=T0),
    ]
    merged = merge_conditions(existing, [condition("Ready", "True")], NOW)
    assert [item["type"] for item in merged] == ["Running", "Ready", "Failure"]
    assert merged[0] == operator_owned
    assert merged[2] == condition("Failure", "False", lastTransitionTime=T0)


def test_merge_conditions_appends_new_types_in_desired_order():
    existing = [condition("Ready", "True", lastTransitionTime=T0)]
    desired = [condition("BackupHealthy", "True"), condition("Ready", "True"), condition("Degraded", "False")]
    merged = merge_conditions(existing, desired, NOW)
    assert [item["type"] for item in merged] == ["Ready", "BackupHealthy", "Degraded"]
    assert [item["lastTransitionTime"] for item in merged] == [T0, NOW, NOW]


def test_merge_conditions_replaces_fields_of_a_desired_type():
    existing = [condition("Ready", "True", observedGeneration=3, lastTransitionTime=T0)]
    merged = merge_conditions(existing, [condition("Ready", "True", reason="AllReady", message="")], NOW)
    assert merged == [condition("Ready", "True", reason="AllReady", message="", lastTransitionTime=T0)]


def test_merge_conditions_ignores_given_transition_time():
    desired = [condition("Ready", "True", lastTransitionTime="2000-01-01T00:00:00Z")]
    assert merge_conditions([], desired, NOW)[0]["lastTransitionTime"] == NOW
    existing = [condition("Ready", "True", lastTransitionTime=T0)]
    assert merge_conditions(existing, desired, NOW)[0]["lastTransitionTime"] == T0


def test_merge_conditions_writes_boolean_status_as_string():
    existing = [condition("Ready", "True", lastTransitionTime=T0)]
    merged = merge_conditions(existing, [condition("Ready", True), condition("Degraded", False)], NOW)
    assert merged == [condition("Ready", "True", lastTransitionTime=T0), condition("Degraded", "False", lastTransitionTime=NOW)]


def test_merge_conditions_accepts_no_existing_conditions():
    assert merge_conditions(None, [condition("Ready", "Unknown")], NOW) == [condition("Ready", "Unknown", lastTransitionTime=NOW)]


def test_merge_conditions_keeps_everything_when_nothing_desired():
    existing = [condition("Ready", "True", lastTransitionTime=T0)]
    assert merge_conditions(existing, [], NOW) == existing


def test_merge_conditions_collapses_duplicate_existing_types():
    existing = [condition("Ready", "True", lastTransitionTime=T0), condition("Ready", "False", lastTransitionTime=NOW)]
    assert merge_conditions(existing, [condition("Ready", "True")], NOW) == [condition("Ready", "True", lastTransitionTime=T0)]


def test_merge_conditions_does_not_modify_its_inputs():
    existing = [condition("Ready", "False", lastTransitionTime=T0), condition("Other", "True")]
    desired = [condition("Ready", True)]
    existing_before, desired_before = copy.deepcopy(existing), copy.deepcopy(desired)
    merge_conditions(existing, desired, NOW)
    assert (existing, desired) == (existing_before, desired_before)


@pytest.mark.parametrize(
    "desired, error",
    [
        ([{"status": "True"}], "needs a type"),
        ([condition("Ready", "True"), condition("Ready", "False")], "more than once"),
        (["Ready"], "must be a mapping"),
        ({"type": "Ready", "status": "True"}, "must be a list"),
    ],
)
def test_merge_conditions_rejects_malformed_desired_conditions(desired, error):
    with pytest.raises(ValueError, match=error):
        merge_conditions([], desired, NOW)


def test_desired_status_replaces_given_keys_and_keeps_others():
    current = {"phase": "Pending", "readyReplicas": 0, "currentPrimary": "main-0"}
    assert desired_status(current, {"phase": "Running", "readyReplicas": 3}, NOW) == {
        "phase": "Running",
        "readyReplicas": 3,
        "currentPrimary": "main-0",
    }


def test_desired_status_removes_keys_set_to_none():
    current = {"phase": "Running", "lastBackupTimestamp": T0}
    assert desired_status(current, {"lastBackupTimestamp": None, "absent": None}, NOW) == {"phase": "Running"}


def test_desired_status_starts_from_empty_when_current_is_none():
    assert desired_status(None, {"phase": "Pending"}, NOW) == {"phase": "Pending"}


def test_desired_status_merges_conditions_by_type():
    current = {"conditions": [condition("Running", "True", lastTransitionTime=T0), condition("Ready", "True", lastTransitionTime=T0)]}
    new = desired_status(current, {"conditions": [condition("Ready", "True", reason="Other")]}, NOW)
    assert new == {"conditions": [condition("Running", "True", lastTransitionTime=T0), condition("Ready", "True", reason="Other", lastTransitionTime=T0)]}


def test_desired_status_replaces_nested_mappings_whole_without_none_values():
    current = {"backup": {"last": T0, "destination": "pvc"}}
    assert desired_status(current, {"backup": {"last": NOW, "failed": None}}, NOW) == {"backup": {"last": NOW}}


def test_desired_status_does_not_modify_its_inputs():
    current = {"phase": "Pending", "conditions": [condition("Ready", "False", lastTransitionTime=T0)]}
    updates = {"phase": "Running", "conditions": [condition("Ready", "True")]}
    current_before, updates_before = copy.deepcopy(current), copy.deepcopy(updates)
    desired_status(current, updates, NOW)
    assert (current, updates) == (current_before, updates_before)


def test_status_patch_is_none_when_status_unchanged():
    status = {"phase": "Running", "conditions": [condition("Ready", "True", lastTransitionTime=T0)]}
    assert status_patch(status, copy.deepcopy(status)) is None


def test_status_patch_is_none_for_an_unchanged_reconcile():
    current = {"phase": "Running", "readyReplicas": 3, "conditions": [condition("Ready", "True", lastTransitionTime=T0)]}
    updates = {"phase": "Running", "readyReplicas": 3, "conditions": [condition("Ready", "True")]}
    assert status_patch(current, desired_status(current, updates, NOW)) is None


def test_status_patch_treats_missing_and_empty_status_alike():
    assert status_patch(None, {}) is None
    assert status_patch({}, None) is None


def test_status_patch_holds_only_changed_keys():
    current = {"phase": "Pending", "readyReplicas": 0, "currentReplicas": 3}
    new = {"phase": "Running", "readyReplicas": 3, "currentReplicas": 3}
    assert status_patch(current, new) == {"status": {"phase": "Running", "readyReplicas": 3}}


def test_status_patch_sets_removed_keys_to_none():
    assert status_patch({"phase": "Running", "lastBackupTimestamp": T0}, {"phase": "Running"}) == {"status": {"lastBackupTimestamp": None}}


def test_status_patch_recurses_into_mappings():
    current = {"backup": {"last": T0, "destination": "pvc", "failed": 1}}
    new = {"backup": {"last": NOW, "destination": "pvc"}}
    assert status_patch(current, new) == {"status": {"backup": {"last": NOW, "failed": None}}}


def test_status_patch_sends_lists_whole():
    current = {"conditions": [condition("Running", "True"), condition("Ready", "False")]}
    new = {"conditions": [condition("Running", "True"), condition("Ready", "True")]}
    assert status_patch(current, new) == {"status": new}


def test_status_patch_replaces_a_value_of_another_type():
    assert status_patch({"backup": "none"}, {"backup": {"last": T0}}) == {"status": {"backup": {"last": T0}}}


def test_status_patch_from_no_status_holds_everything():
    assert status_patch(None, {"phase": "Pending"}) == {"status": {"phase": "Pending"}}


def test_rfc3339_now_is_utc_with_second_precision():
    now = rfc3339_now()
    parsed = datetime.datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - parsed).total_seconds()) < 5
