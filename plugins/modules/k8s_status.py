#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The action plugin of the same name does the work, on the controller.

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
  current:
    description:
      - The object's status as the caller already holds it (inside the operator, the object the
        runtime passed). When it is given nothing is read, so a status that does not differ costs no request.
      - Omitted, the object is read first.
    type: dict
  events:
    description:
      - Kubernetes Events about the object, created straight on the API server only when the status is
        written, so that each transition is announced once.
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
  - postgres.cluster.api
  - postgres.cluster.api.events
  - ansible.builtin.action_common_attributes
attributes:
  diff_mode:
    support: full
    details:
      - The diff shows the status before and after the change.
notes:
  - The object's definition must enable the status subresource (C(subresources.status) in a
    CustomResourceDefinition); without it the API server has no C(/status) endpoint and the module fails.
  - The patch carries no C(resourceVersion), so the keys it sets win over a concurrent writer of the same keys.
    C(conditions) is a list and is therefore written whole whenever one condition changes.
  - In check mode nothing is sent to the API server; RV(status) is the status as it would be.
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
status:
  description: The status after the change (as the API server returned it), or as it would be in check mode.
  returned: success
  type: dict
events:
  description: The reasons of the Events created.
  returned: when the status was written
  type: list
  elements: str
"""
