# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Read Kubernetes objects by name or label, in-process. Documented in plugins/modules/k8s_read.py."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible_collections.postgres.cluster.plugins.module_utils import k8s_client
from ansible_collections.postgres.cluster.plugins.plugin_utils.k8s_action import K8sAction


class ActionModule(K8sAction):
    ARGS = {
        "api_version": {"type": "str", "required": True},
        "kind": {"type": "str", "required": True},
        "namespace": {"type": "str"},
        "name": {"type": "str"},
        "label_selector": {"type": "str", "default": ""},
    }

    def act(self, args, task_vars):
        if args["name"] and args["label_selector"]:
            raise AnsibleActionFail("name and label_selector are mutually exclusive")
        # What the runtime's proxy would cache cluster-wide is read from the API server itself.
        api = self.direct_api(args) if args["kind"] in k8s_client.UNCACHED_KINDS else self.cached_api(args)
        if args["name"]:
            found = api.get(args["api_version"], args["kind"], args["name"], args["namespace"])
            return {"resources": [found] if found is not None else []}
        return {"resources": api.list(args["api_version"], args["kind"], args["namespace"], args["label_selector"])}
