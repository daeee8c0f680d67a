# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Emit Kubernetes Events about an object, in-process. Documented in plugins/modules/k8s_event.py."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.plugin_utils.k8s_action import K8sAction
from ansible_collections.postgres.cluster.plugins.module_utils.events import EVENT_ARGS, emit


class ActionModule(K8sAction):
    ARGS = {
        # apiVersion, kind and metadata (name, namespace, uid, labels) of the object, or the object.
        "object": {"type": "dict", "required": True},
        "events": dict(EVENT_ARGS, required=True),
    }

    def act(self, args, task_vars):
        if self._task.check_mode:
            return {"changed": bool(args["events"]), "events": [e["reason"] for e in args["events"]]}
        return {"changed": bool(args["events"]), "events": emit(self.direct_api(args), args["object"], args["events"])}
