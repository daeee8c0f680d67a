# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What Patroni's Kubernetes DCS says about a cluster, from its pods and ConfigMaps.

Patroni keeps its state in the Kubernetes API: each member writes its own state as the pod
annotation ``status`` (JSON) and its role as a pod label; the leader lock is the annotations of
the ConfigMap ``<scope>-leader``; the dynamic configuration is the annotation ``config`` of
``<scope>-config``, which also records ``initialize`` (the system identifier) once the cluster
has been bootstrapped. Nothing here does I/O.
"""

from __future__ import annotations

import datetime
import json
import re

LEADER_SUFFIX = "-leader"
CONFIG_SUFFIX = "-config"


def _ordinal(name):
    match = re.search(r"-(\d+)$", name or "")
    return int(match.group(1)) if match else 1 << 30


def _annotations(obj):
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def _json(text):
    try:
        value = json.loads(text) if text else None
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def parse_time(text):
    """An RFC 3339 time (Kubernetes' and Patroni's), as an aware datetime; None when it is not one."""
    if not text:
        return None
    try:
        value = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def leader_lock(configmap, now):
    """The member holding the leader lock, or None when nobody holds a lock that is still valid.

    The lock is the annotations leader, renewTime and ttl; a lock whose holder stopped renewing
    it for longer than ttl is expired, whatever it still names.
    """
    annotations = _annotations(configmap)
    leader = annotations.get("leader")
    if not leader:
        return None
    renewed = parse_time(annotations.get("renewTime"))
    try:
        ttl = float(annotations.get("ttl") or 30)
    except ValueError:
        ttl = 30.0
    if renewed is not None and (now - renewed).total_seconds() > ttl:
        return None
    return leader


def _lsn(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def member_state(pod, leader, leader_lsn):
    """One member as the status reports it, from its pod."""
    meta = pod.get("metadata") or {}
    name = meta.get("name")
    data = _json(_annotations(pod).get("status")) or {}
    state = data.get("state") or ("unknown" if not data else "")
    pod_phase = (pod.get("status") or {}).get("phase")
    if meta.get("deletionTimestamp"):
        state = "terminating"
    if name == leader:
        role = "primary"
    elif data.get("role") in ("replica", "standby_leader"):
        role = data["role"]
    elif data.get("role") == "primary":
        # A member that last said primary but holds no lock is not the primary: it crashed, is
        # being demoted, or is the loser of a split brain Patroni resolves.
        role = "unknown"
    else:
        role = data.get("role") or "unknown"
    member = {"name": name, "role": role, "state": state or "unknown"}
    if data.get("timeline") is not None:
        member["timeline"] = data["timeline"]
    if data.get("pending_restart"):
        member["pendingRestart"] = True
    if data.get("replication_state"):
        member["replicationState"] = data["replication_state"]
    position = _lsn(data.get("replay_lsn", data.get("xlog_location")))
    if role != "primary" and leader_lsn is not None and position is not None:
        member["lagBytes"] = max(0, leader_lsn - position)
    if pod_phase and pod_phase != "Running" and member["state"] == "unknown":
        member["state"] = pod_phase.lower()
    return member


def observe(scope, pods, configmaps, now=None):
    """The cluster as Patroni reports it.

    ``pods`` are the cluster's pods and ``configmaps`` the ConfigMaps with the cluster's labels
    (Patroni's among them). Returns ``leader`` (the lock holder, only if it is one of the pods),
    ``members`` (by ordinal), ``pending_restart`` (the members that need one), ``initialized``
    (Patroni bootstrapped the cluster: its data exists) and ``config`` (the dynamic configuration).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    by_name = {((c.get("metadata") or {}).get("name")): c for c in configmaps or []}
    leader_cm = by_name.get(scope + LEADER_SUFFIX)
    config_cm = by_name.get(scope + CONFIG_SUFFIX)
    names = {((p.get("metadata") or {}).get("name")) for p in pods or []}
    leader = leader_lock(leader_cm, now)
    if leader not in names:
        leader = None
    leader_lsn = None
    if leader:
        leader_pod = next(p for p in pods if p["metadata"]["name"] == leader)
        leader_data = _json(_annotations(leader_pod).get("status")) or {}
        leader_lsn = _lsn(leader_data.get("xlog_location")) or _lsn(_annotations(leader_cm).get("optime"))
    members = [member_state(p, leader, leader_lsn)
               for p in sorted(pods or [], key=lambda p: _ordinal((p.get("metadata") or {}).get("name")))]
    config_annotations = _annotations(config_cm)
    return {
        "leader": leader,
        "members": members,
        "pending_restart": [m["name"] for m in members if m.get("pendingRestart")],
        "initialized": bool(config_annotations.get("initialize")),
        "config": _json(config_annotations.get("config")),
    }
