#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_status
short_description: Patch the status subresource of a Kubernetes object
description:
  - Sets fields of the C(status) of an existing Kubernetes object, typically a custom resource, through its
    C(/status) subresource with a JSON merge patch (RFC 7386).
  - M(kubernetes.core.k8s) cannot write the status subresource of an object whose definition enables it,
    which is the case for the custom resources of an operator.
  - Only the keys given in O(status) are touched; other keys of the current status are kept.
  - Conditions are merged by type, see O(status).
  - Nothing is written when the resulting status equals the current one; the task then reports
    C(changed=false) and the object's C(resourceVersion) does not move. This is what keeps an idle
    reconcile free of writes.
author:
  - pgc contributors
requirements:
  - python >= 3.9
  - kubernetes >= 24.2.0
options:
  api_version:
    description:
      - The API version of the object, for example C(postgres.example.com/v1).
    type: str
    required: true
  kind:
    description:
      - The kind of the object, for example C(PostgresCluster).
    type: str
    required: true
  name:
    description:
      - The name of the object.
    type: str
    required: true
  namespace:
    description:
      - The namespace of the object.
      - Required when the kind is namespaced; ignored when it is cluster-scoped.
    type: str
  status:
    description:
      - The status fields to set. Each key replaces the current value of that key as a whole (a nested
        mapping is not merged into the current one); a key set to V(null) is removed from the status.
        Keys not given are left as they are.
      - C(conditions) is a list of Kubernetes conditions (C(type), C(status), C(reason), C(message),
        optionally C(observedGeneration)) merged by C(type) into the current ones. A given condition replaces
        the current condition of its type; conditions of other types are kept as they are and in place;
        new types are appended in the order given.
      - C(lastTransitionTime) is computed, never taken from the input. It keeps its current value when the
        condition's C(status) is unchanged, even if its reason or message changed, and is set to the current
        time (RFC 3339, UTC, second precision) otherwise.
      - A boolean condition C(status) is written as the string V(True) or V(False).
    type: dict
    required: true
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the status before and after the change.
  platform:
    platforms: all
notes:
  - The object's definition must enable the status subresource (C(subresources.status) in a
    CustomResourceDefinition); without it the API server has no C(/status) endpoint and the module fails.
  - The patch carries no C(resourceVersion), so the keys it sets win over a concurrent writer of the same keys.
    C(conditions) is a list and is therefore written whole whenever one condition changes.
  - In check mode nothing is sent to the API server; RV(result) is the object as it would be.
seealso:
  - module: kubernetes.core.k8s
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Report the cluster as running
  postgres.cluster.k8s_status:
    api_version: postgres.example.com/v1
    kind: PostgresCluster
    name: main
    namespace: databases
    status:
      phase: Running
      readyReplicas: 3
      conditions:
        - type: Ready
          status: "True"
          reason: AllReplicasReady
          message: 3 of 3 replicas are ready
          observedGeneration: 4

- name: Forget the last backup time and mark backups as failing
  postgres.cluster.k8s_status:
    api_version: postgres.example.com/v1
    kind: PostgresCluster
    name: main
    namespace: databases
    status:
      lastBackupTimestamp: null
      conditions:
        - type: BackupHealthy
          status: "False"
          reason: BackupJobFailed
          message: The backup job main-backup-29100000 failed

- name: Show what a status change would write, without writing it
  postgres.cluster.k8s_status:
    api_version: postgres.example.com/v1
    kind: PostgresCluster
    name: main
    namespace: databases
    status:
      phase: Scaling
  check_mode: true
  diff: true
"""

RETURN = r"""
changed:
  description: Whether the status differs from the current one (and was written, unless in check mode).
  returned: always
  type: bool
  sample: true
patch:
  description: The JSON merge patch sent to the C(/status) subresource, or that would be sent in check mode.
  returned: changed
  type: dict
  sample:
    status:
      phase: Running
      readyReplicas: 3
result:
  description:
    - The object after the change, as returned by the API server.
    - In check mode, the current object with the status it would have.
    - When nothing changed, the object as read.
  returned: success
  type: complex
  contains:
    apiVersion:
      description: The versioned schema of this representation of an object.
      returned: success
      type: str
    kind:
      description: Represents the REST resource this object represents.
      returned: success
      type: str
    metadata:
      description: Standard object metadata. Includes name, namespace, annotations, labels, etc.
      returned: success
      type: dict
    spec:
      description: Specific attributes of the object. Will vary based on the I(api_version) and I(kind).
      returned: success
      type: dict
    status:
      description: The status of the object.
      returned: success
      type: dict
"""

import copy

try:
    from kubernetes.dynamic.exceptions import (
        DynamicApiError,
        NotFoundError,
        ResourceNotFoundError,
    )
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
from ansible_collections.postgres.cluster.plugins.module_utils.k8s_status import (
    api_error_message,
    desired_status,
    rfc3339_now,
    status_patch,
)

MERGE_PATCH_CONTENT_TYPE = "application/merge-patch+json"

STATUS_ARG_SPEC = {
    "api_version": {"type": "str", "required": True},
    "kind": {"type": "str", "required": True},
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str"},
    "status": {"type": "dict", "required": True},
}


def argspec():
    args = copy.deepcopy(AUTH_ARG_SPEC)
    args.update(copy.deepcopy(STATUS_ARG_SPEC))
    return args


def _describe(kind, namespace, name):
    if namespace:
        return "{0} {1}/{2}".format(kind, namespace, name)
    return "{0} {1}".format(kind, name)


def execute_module(module, client):
    api_version = module.params["api_version"]
    kind = module.params["kind"]
    name = module.params["name"]
    namespace = module.params["namespace"]

    try:
        resource = client.resource(kind, api_version)
    except ResourceNotFoundError:
        module.fail_json(msg="The API server does not serve kind {0} in {1}".format(kind, api_version))
    if not resource.namespaced:
        namespace = None
    elif not namespace:
        module.fail_json(msg="namespace is required for the namespaced kind {0} (object {1})".format(kind, name))
    target = _describe(kind, namespace, name)

    try:
        current = client.get(resource, name=name, namespace=namespace).to_dict()
    except NotFoundError:
        module.fail_json(msg="{0} ({1}) does not exist, so its status cannot be set".format(target, api_version))
    except DynamicApiError as e:
        module.fail_json(msg="Failed to read {0}: {1}".format(target, api_error_message(e)))

    current_status = current.get("status")
    try:
        new_status = desired_status(current_status, module.params["status"], rfc3339_now())
    except ValueError as e:
        module.fail_json(msg="Invalid status for {0}: {1}".format(target, e))
    patch = status_patch(current_status, new_status)

    result = {"changed": False, "result": current}
    if module._diff:
        result["diff"] = {"before": current_status or {}, "after": new_status}
    if patch is None:
        module.exit_json(**result)

    result["changed"] = True
    result["patch"] = patch
    if module.check_mode:
        would_be = copy.deepcopy(current)
        would_be["status"] = new_status
        result["result"] = would_be
        module.exit_json(**result)

    try:
        status_resource = resource.status
    except AttributeError:
        module.fail_json(msg="{0} has no status subresource: enable subresources.status in the definition of {1}".format(target, kind))
    try:
        patched = status_resource.patch(
            body=patch,
            name=name,
            namespace=namespace,
            content_type=MERGE_PATCH_CONTENT_TYPE,
        )
    except NotFoundError as e:
        module.fail_json(
            msg="Failed to patch the status of {0}: {1} (is the status subresource enabled?)".format(target, api_error_message(e))
        )
    except DynamicApiError as e:
        module.fail_json(msg="Failed to patch the status of {0}: {1}".format(target, api_error_message(e)))
    result["result"] = patched.to_dict()
    module.exit_json(**result)


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
