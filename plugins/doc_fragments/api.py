# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # How the collection's action plugins reach the Kubernetes API server, and where they run.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - A kubeconfig file to use instead of the environment's.
      - Without it, inside the ansible-operator runtime, owned objects are read and applied through the
        runtime's proxy (C(K8S_AUTH_KUBECONFIG)), which sets up its watches, and Secrets, Events and
        what is listed by label go straight to the API server (C(PGC_API_KUBECONFIG), else the pod's
        ServiceAccount). Run by hand, both are the user's kubeconfig (C(K8S_AUTH_KUBECONFIG),
        C(KUBECONFIG) or C(~/.kube/config)).
    type: path
  context:
    description:
      - The kubeconfig context to use instead of the current one.
    type: str
attributes:
  action:
    description: Runs on the controller, inside C(ansible-playbook), as an action plugin.
    support: full
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
requirements:
  - lightkube >= 0.17 on the controller
notes:
  - Runs on the controller inside C(ansible-playbook), with one API client per process; no module
    process is started.
"""

    # The steps that act on one cluster as the reconcile normalized it, and write as the operator.
    CLUSTER = r"""
options:
  cluster:
    description: The normalized cluster (the validate role's C(pgc)).
    type: dict
    required: true
  field_manager:
    description: The field manager of the writes.
    type: str
    required: true
"""

    # Events about an object, created only when a change is made.
    EVENTS = r"""
options:
  events:
    description:
      - Kubernetes Events about the object, created straight on the API server (never through the
        ansible-operator runtime's proxy, which would start an Events informer the operator may not list).
    type: list
    elements: dict
    suboptions:
      type:
        description: Normal or Warning.
        type: str
        choices: [Normal, Warning]
        default: Normal
      reason:
        description: A CamelCase reason.
        type: str
        required: true
      message:
        description: What happened (cut at 1000 characters).
        type: str
        required: true
"""
