# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the collection's API action plugins share: their connection options, argument checks, and
one way to turn an API failure into a task failure. They run inside ansible-playbook (no module
process) and talk to the API server through module_utils.k8s_client."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.postgres.cluster.plugins.module_utils import k8s_client

CONNECTION_ARGS = {
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
}
# The steps that act on one cluster as the reconcile normalized it (doc fragment api.cluster).
CLUSTER_ARGS = {
    "cluster": {"type": "dict", "required": True},
    "field_manager": {"type": "str", "required": True},
}


class K8sAction(ActionBase):
    """Base of an action plugin over the Kubernetes API. Subclasses set ARGS and implement act()."""

    TRANSFERS_FILES = False
    _requires_connection = False
    ARGS = {}

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        spec = dict(CONNECTION_ARGS)
        spec.update(self.ARGS)
        _, args = self.validate_argument_spec(argument_spec=spec)
        try:
            result.update(self.act(args, task_vars or {}))
        except k8s_client.ApiError as e:
            raise AnsibleActionFail(str(e))
        result.setdefault("changed", False)
        return result

    def cached_api(self, args):
        """The runtime's proxy inside the operator (owned objects: reading them sets up its watch)."""
        return k8s_client.cached(args.get("kubeconfig"), args.get("context"))

    def direct_api(self, args):
        """The API server itself (Secrets, Events, what is listed by label)."""
        return k8s_client.direct(args.get("kubeconfig"), args.get("context"))

    def act(self, args, task_vars):
        raise NotImplementedError
