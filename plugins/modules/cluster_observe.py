#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_observe
short_description: Read the state Patroni keeps in the Kubernetes API for one cluster
description:
  - Lists the cluster's pods and ConfigMaps (two requests) and returns the cluster as Patroni's
    Kubernetes DCS reports it - the holder of the leader lock, each member's role and state, the
    members that need a restart, whether the cluster was ever bootstrapped, and the dynamic
    configuration.
  - The leader is the holder of a valid lock in the ConfigMap C(<scope>-leader), not a pod label, so
    that a member killed while it was the primary (whose label nothing updates) is not reported as the
    primary once its lock expires.
  - Read-only; it never changes anything.
author:
  - pgc contributors
requirements:
  - python >= 3.9
  - kubernetes >= 24.2.0
options:
  scope:
    description:
      - Patroni's scope, which is the name of the PostgresCluster.
    type: str
    required: true
  namespace:
    description:
      - The namespace of the cluster.
    type: str
    required: true
  label_selector:
    description:
      - The label selector of the cluster's pods and of Patroni's ConfigMaps.
    type: str
    required: true
  backup_jobs:
    description:
      - Also list the cluster's backup and restore Jobs and their pods (two more requests) and
        return what each did.
    type: bool
    default: false
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Read what Patroni says about the cluster
  postgres.cluster.cluster_observe:
    scope: main
    namespace: databases
    label_selector: postgres.example.com/cluster=main
  register: observed
"""

RETURN = r"""
leader:
  description: The member holding a valid leader lock, or null.
  returned: always
  type: str
  sample: main-1
members:
  description: The members by ordinal, with C(name), C(role) (primary, replica, unknown), C(state)
    (Patroni's, such as running, streaming, starting, stopped), and when known C(timeline), C(lagBytes),
    C(replicationState) and C(pendingRestart).
  returned: always
  type: list
  elements: dict
pending_restart:
  description: The members whose PostgreSQL needs a restart to apply a parameter.
  returned: always
  type: list
  elements: str
initialized:
  description: Whether Patroni bootstrapped the cluster (its data exists).
  returned: always
  type: bool
config:
  description: Patroni's dynamic configuration, or null before the bootstrap.
  returned: always
  type: dict
monitoring_api:
  description: Whether the cluster serves PodMonitor and PrometheusRule (monitoring.coreos.com/v1).
  returned: always
  type: bool
backup_jobs:
  description: The cluster's Jobs, oldest first, each with C(name), C(kind), C(backup), C(phase)
    (Pending, Running, Succeeded, Failed), C(started), C(finished), C(result) (the JSON line its pod
    wrote) and C(message). Empty unless I(backup_jobs) is set.
  returned: always
  type: list
  elements: dict
"""

import copy

try:
    from kubernetes.dynamic.exceptions import DynamicApiError
except ImportError:
    # Reported by AnsibleK8SModule, which requires the kubernetes library.
    pass

from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import (
    AnsibleModule,
)
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import (
    AUTH_ARG_SPEC,
)
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import (
    get_api_client,
)
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import (
    AnsibleK8SModule,
)
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import (
    CoreException,
)
from ansible_collections.postgres.cluster.plugins.module_utils.jobs import (
    COMPONENT_LABEL,
    JOB_LABEL,
    summarize_jobs,
)
from ansible_collections.postgres.cluster.plugins.module_utils.k8s_status import (
    api_error_message,
)
from ansible_collections.postgres.cluster.plugins.module_utils.patroni import (
    observe,
)

OBSERVE_ARG_SPEC = {
    "scope": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "label_selector": {"type": "str", "required": True},
    "backup_jobs": {"type": "bool", "default": False},
}


def argspec():
    args = copy.deepcopy(AUTH_ARG_SPEC)
    args.update(copy.deepcopy(OBSERVE_ARG_SPEC))
    return args


def execute_module(module, client):
    namespace = module.params["namespace"]
    selector = module.params["label_selector"]
    scope = module.params["scope"]

    def listed(kind, api_version, label_selector):
        try:
            resource = client.resource(kind, api_version)
            return client.get(resource, namespace=namespace, label_selector=label_selector).to_dict().get("items") or []
        except DynamicApiError as e:
            module.fail_json(msg="Failed to list the {0}s of {1}/{2}: {3}".format(
                kind, namespace, scope, api_error_message(e)))

    result = observe(scope, listed("Pod", "v1", selector), listed("ConfigMap", "v1", selector))
    result["backup_jobs"] = []
    if module.params["backup_jobs"]:
        jobs = listed("Job", "batch/v1", "{0},{1}".format(selector, JOB_LABEL))
        pods = listed("Pod", "v1", "{0}={1}".format(COMPONENT_LABEL, scope)) if jobs else []
        result["backup_jobs"] = summarize_jobs(jobs, pods)
    result["monitoring_api"] = _serves(client, "monitoring.coreos.com/v1", ("PodMonitor", "PrometheusRule"))
    module.exit_json(changed=False, **result)


def _serves(client, api_version, kinds):
    """Whether the API server serves every kind in api_version: one discovery request of that group
    version, never the client's cached discovery (a definition installed since is found, and a
    missing group does not make the client rediscover every other one)."""
    try:
        found = client.client.request("get", "/apis/" + api_version)
    except DynamicApiError:
        return False
    served = {r.get("kind") for r in (found.to_dict() if hasattr(found, "to_dict") else found).get("resources") or []}
    return set(kinds) <= served


def main():
    module = AnsibleK8SModule(
        module_class=AnsibleModule,
        argument_spec=argspec(),
        supports_check_mode=True,
        check_pyyaml=False,
    )
    try:
        client = get_api_client(module=module)
        execute_module(module, client)
    except CoreException as e:
        module.fail_from_exception(e)


if __name__ == "__main__":
    main()
