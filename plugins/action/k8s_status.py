# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Merge-patch the status subresource of an object only when it differs, and emit the Events that
go with the change, in-process. Documented in plugins/modules/k8s_status.py."""

from __future__ import annotations

import copy

from ansible.errors import AnsibleActionFail
from ansible_collections.postgres.cluster.plugins.module_utils.k8s_client import ApiError
from ansible_collections.postgres.cluster.plugins.module_utils.k8s_status import (
    desired_status,
    rfc3339_now,
    status_patch,
)
from ansible_collections.postgres.cluster.plugins.plugin_utils.k8s_action import K8sAction
from ansible_collections.postgres.cluster.plugins.module_utils.events import EVENT_ARGS, emit


class ActionModule(K8sAction):
    ARGS = {
        "api_version": {"type": "str", "required": True},
        "kind": {"type": "str", "required": True},
        "name": {"type": "str", "required": True},
        "namespace": {"type": "str"},
        "status": {"type": "dict", "required": True},
        # The object's status as the caller already holds it (the runtime passes the whole object):
        # given, no read is needed to know that nothing differs.
        "current": {"type": "dict"},
        # Events on the object, emitted only when the status is written.
        "events": EVENT_ARGS,
    }

    def act(self, args, task_vars):
        target = "%s %s/%s" % (args["kind"], args["namespace"] or "", args["name"])
        current = None
        if args["current"] is None:
            obj = self.cached_api(args).get(args["api_version"], args["kind"], args["name"], args["namespace"])
            if obj is None:
                raise AnsibleActionFail("%s (%s) does not exist, so its status cannot be set" % (target, args["api_version"]))
            current = obj.get("status")
        else:
            current = args["current"]
        try:
            new_status = desired_status(current, args["status"], rfc3339_now())
        except ValueError as e:
            raise AnsibleActionFail("Invalid status for %s: %s" % (target, e))
        patch = status_patch(current, new_status)
        result = {"changed": patch is not None, "status": new_status}
        if self._task.diff:
            result["diff"] = {"before": current or {}, "after": new_status}
        if patch is None:
            return result
        result["patch"] = patch
        if self._task.check_mode:
            return result
        written = self.cached_api(args).patch(args["api_version"], args["kind"], args["name"], args["namespace"],
                                              patch, subresource="status")
        result["status"] = written.get("status") or new_status
        # The status stands when an Event cannot be created (a namespace being deleted, say): the
        # Event is the announcement, not the state.
        try:
            result["events"] = emit(self.direct_api(args), written, args["events"] or [])
        except ApiError as e:
            result["events"] = []
            result["warnings"] = ["%s: the Events of this status change were not created: %s" % (target, e)]
        return result
