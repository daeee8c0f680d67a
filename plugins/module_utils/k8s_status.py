# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure status arithmetic for Kubernetes objects: condition merging and merge patches.

Nothing here does I/O, so that what decides whether a status write happens is
tested without an API server. The rule the operator relies on: an unchanged
status yields no patch, so an idle reconcile writes nothing and no
resourceVersion moves.
"""

from __future__ import annotations

import copy
import datetime
import json

CONDITIONS_KEY = "conditions"
TRANSITION_TIME_KEY = "lastTransitionTime"
RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339_now():
    """Return the current UTC time as an RFC 3339 string with second precision."""
    return datetime.datetime.now(datetime.timezone.utc).strftime(RFC3339_FORMAT)


def _prune_none(value):
    """Drop keys whose value is None from dicts, recursively (lists are kept as they are).

    In a JSON merge patch, null means "remove", so a None kept in the desired
    status could never be written and would look like a change forever.
    """
    if isinstance(value, dict):
        return {key: _prune_none(item) for key, item in value.items() if item is not None}
    return value


def _condition_status(value):
    # YAML turns an unquoted True/False into a boolean; Kubernetes wants the strings.
    if value is True:
        return "True"
    if value is False:
        return "False"
    return value


def _desired_by_type(desired):
    by_type = {}
    order = []
    for condition in desired or []:
        if not isinstance(condition, dict):
            raise ValueError("each condition must be a mapping, got {0!r}".format(condition))
        condition_type = condition.get("type")
        if not condition_type:
            raise ValueError("each condition needs a type, got {0!r}".format(condition))
        if condition_type in by_type:
            raise ValueError("condition type {0} is given more than once".format(condition_type))
        by_type[condition_type] = condition
        order.append(condition_type)
    return by_type, order


def _merge_condition(existing, desired, now):
    merged = _prune_none(copy.deepcopy(desired))
    merged.pop(TRANSITION_TIME_KEY, None)
    if "status" in merged:
        merged["status"] = _condition_status(merged["status"])
    if existing is not None and _condition_status(existing.get("status")) == merged.get("status") and existing.get(TRANSITION_TIME_KEY):
        merged[TRANSITION_TIME_KEY] = existing[TRANSITION_TIME_KEY]
    else:
        merged[TRANSITION_TIME_KEY] = now
    return merged


def merge_conditions(existing, desired, now):
    """Merge desired conditions into existing ones by type and return the new list.

    Conditions whose type is not desired are kept unchanged and in place. A
    desired condition replaces the existing one of its type; its
    lastTransitionTime is the existing one when the status did not change
    (even if reason or message did), otherwise ``now``. A lastTransitionTime
    given in a desired condition is ignored. New types are appended in the
    order they are desired. Boolean statuses become "True"/"False".
    """
    if existing is not None and not isinstance(existing, list):
        raise ValueError("existing conditions must be a list, got {0!r}".format(existing))
    if desired is not None and not isinstance(desired, list):
        raise ValueError("conditions must be a list, got {0!r}".format(desired))
    by_type, order = _desired_by_type(desired)
    merged = []
    placed = set()
    for condition in existing or []:
        condition_type = condition.get("type") if isinstance(condition, dict) else None
        if condition_type not in by_type:
            merged.append(copy.deepcopy(condition))
        elif condition_type not in placed:
            merged.append(_merge_condition(condition, by_type[condition_type], now))
            placed.add(condition_type)
        # A second existing condition of a desired type is dropped: a type appears once.
    for condition_type in order:
        if condition_type not in placed:
            merged.append(_merge_condition(None, by_type[condition_type], now))
    return merged


def desired_status(current_status, updates, now):
    """Return the full new status: ``current_status`` with ``updates`` applied.

    Each key of ``updates`` replaces the current value; a key whose value is
    None is removed; ``conditions`` is merged by type with merge_conditions.
    None values nested in mappings are dropped, as a merge patch would.
    The inputs are not modified.
    """
    new_status = _prune_none(copy.deepcopy(current_status)) if current_status else {}
    for key, value in (updates or {}).items():
        if value is None:
            new_status.pop(key, None)
        elif key == CONDITIONS_KEY:
            new_status[key] = merge_conditions(new_status.get(key), value, now)
        else:
            new_status[key] = _prune_none(copy.deepcopy(value))
    return new_status


def _merge_patch(before, after):
    patch = {}
    for key in before:
        if key not in after:
            patch[key] = None
    for key, value in after.items():
        if key not in before:
            patch[key] = copy.deepcopy(value)
        elif before[key] == value:
            continue
        elif isinstance(value, dict) and isinstance(before[key], dict):
            patch[key] = _merge_patch(before[key], value)
        else:
            patch[key] = copy.deepcopy(value)
    return patch


def status_patch(current_status, new_status):
    """Return the JSON merge patch (RFC 7386) body that turns one status into the other.

    The body is ``{"status": {...}}`` holding only what differs: changed and
    new keys with their new value, nested mappings as nested patches, removed
    keys as None, lists whole. Returns None when the two are equal, which is
    the caller's cue to write nothing.
    """
    before = _prune_none(current_status) if current_status else {}
    after = _prune_none(new_status) if new_status else {}
    if before == after:
        return None
    return {"status": _merge_patch(before, after)}


def api_error_message(error):
    """Return the API server's own message from a failed request, else its reason."""
    body = getattr(error, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (TypeError, ValueError, AttributeError):
            message = None
        if message:
            return message
    return getattr(error, "reason", None) or str(error)
