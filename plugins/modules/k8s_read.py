#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The action plugin of the same name does the work, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_read
short_description: Read Kubernetes objects by name or by label
description:
  - Returns the object named O(name), or the objects that match O(label_selector), as
    RV(resources) (the shape of M(kubernetes.core.k8s_info)'s result).
  - Pods, ConfigMaps, Jobs, Secrets and Events are read straight from the API server, never through
    the ansible-operator runtime's caching proxy, which would cache every object of such a kind in
    the whole Kubernetes cluster.
  - Read-only.
author:
  - pgc contributors
options:
  api_version:
    description: The API version, such as V(v1) or V(batch/v1).
    type: str
    required: true
  kind:
    description: The kind.
    type: str
    required: true
  namespace:
    description: The namespace; all namespaces when omitted with O(label_selector).
    type: str
  name:
    description: The object's name. Mutually exclusive with O(label_selector).
    type: str
  label_selector:
    description: A label selector of C(key=value) and C(key) terms, separated by commas.
    type: str
    default: ""
extends_documentation_fragment:
  - postgres.cluster.api
  - ansible.builtin.action_common_attributes
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Read a backup's Job
  postgres.cluster.k8s_read:
    api_version: batch/v1
    kind: Job
    namespace: databases
    label_selector: postgres.example.com/backup=nightly
  register: jobs
"""

RETURN = r"""
resources:
  description: The objects found (an empty list when there is none).
  returned: always
  type: list
  elements: dict
"""
