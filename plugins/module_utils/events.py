# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Kubernetes Events about an object, created straight on the API server: through the runtime's
proxy an Event would get an ownerReference and start an Events informer that the operator may not
list, which stops the operator when it cannot sync."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils.k8s_status import rfc3339_now

COMPONENT = "pgc-operator"
MESSAGE_LIMIT = 1000
EVENT_TYPES = ("Normal", "Warning")
EVENT_ARGS = {
    "type": "list",
    "elements": "dict",
    "options": {
        "type": {"type": "str", "choices": list(EVENT_TYPES), "default": "Normal"},
        "reason": {"type": "str", "required": True},
        "message": {"type": "str", "required": True},
    },
}


def event(obj, etype, reason, message, now):
    """The Event that says ``reason: message`` about ``obj`` (a whole object or its reference)."""
    meta = obj.get("metadata") or obj
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT - 3] + "..."
    out = {
        "apiVersion": "v1",
        "kind": "Event",
        # A generated name: the Event is created without a read first (the operator may not read Events).
        "metadata": {"generateName": meta["name"] + ".", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
                           "namespace": meta["namespace"], "uid": meta.get("uid", "")},
        "type": etype,
        "reason": reason,
        "message": message,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    if meta.get("labels"):
        out["metadata"]["labels"] = dict(meta["labels"])
    return out


def emit(api, obj, events):
    """Create each of ``events`` ({type, reason, message}) about ``obj``; returns their reasons."""
    now = rfc3339_now()
    for e in events:
        api.create(event(obj, e.get("type") or "Normal", e["reason"], str(e["message"]), now))
    return [e["reason"] for e in events]
