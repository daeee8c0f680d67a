#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The action plugin of the same name does the work, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_event
short_description: Create Kubernetes Events about an object
description:
  - Creates one Event per item of O(events) about O(object), straight on the API server (never through
    the ansible-operator runtime's proxy, which would start an Events informer the operator may not list).
  - Events have a generated name, so no read is needed first.
author:
  - pgc contributors
options:
  object:
    description: The object the Events are about - C(apiVersion), C(kind) and C(metadata) (name,
      namespace, uid, labels) - or the whole object.
    type: dict
    required: true
  events:
    description: The Events, one per item.
    required: true
extends_documentation_fragment:
  - postgres.cluster.api
  - postgres.cluster.api.events
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: Nothing is created.
"""

EXAMPLES = r"""
- name: Say that the backup ended
  postgres.cluster.k8s_event:
    object:
      apiVersion: postgres.example.com/v1
      kind: PostgresBackup
      metadata: {name: nightly, namespace: databases, uid: 0b5c6c5e-1f7a-4c1e-9a43-3d0f1f6d2b11}
    events:
      - {type: Normal, reason: BackupSucceeded, message: Backup 20261129-020000F took 42 s}
"""

RETURN = r"""
events:
  description: The reasons of the Events created (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""
