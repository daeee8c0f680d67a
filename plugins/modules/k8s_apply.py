#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The action plugin of the same name does the work, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_apply
short_description: Server-side apply only the Kubernetes objects that differ from what is live
description:
  - Renders each template of O(template) (one object per file, found in the role's C(templates/)),
    adds the objects of O(definition), reads each live object and applies it (server-side, with
    O(field_manager), forcing conflicts) only when it differs. An unchanged object costs one read and
    no write, so that a reconcile of an unchanged cluster writes nothing.
  - An object differs when a field it sets has another value live (a field changed by hand is put
    back; defaults the API server adds and fields of other managers are ignored, and quantities and
    numbers compare by value), or when its rendering changed since it was last applied (the hash of
    the rendered object, kept in the annotation C(postgres.example.com/applied-hash), catches a field
    that is no longer set).
  - Deletes the objects named in O(absent) that exist.
author:
  - pgc contributors
options:
  template:
    description: Templates to render, each one Kubernetes object (or several YAML documents).
    type: list
    elements: str
    default: []
  definition:
    description: Objects to apply as they are.
    type: list
    elements: dict
    default: []
  absent:
    description: Objects to delete when they exist, each with C(apiVersion), C(kind), C(name) and C(namespace).
    type: list
    elements: dict
    default: []
  field_manager:
    description: The field manager of the server-side apply.
    type: str
    required: true
  report_kinds:
    description: Kinds whose live object (identity, replica count and status) to return in RV(resources).
    type: list
    elements: str
    default: []
  api:
    description:
      - C(cached) reads and applies through the ansible-operator runtime's proxy inside the operator,
        which sets up its watch of owned objects; C(direct) goes to the API server itself, for what the
        proxy must not cache or watch (Secrets). The same when run by hand.
    type: str
    choices: [cached, direct]
    default: cached
  create_only:
    description:
      - Create the objects that are missing and never change existing ones (generated passwords,
        certificates). No hash annotation is added.
    type: bool
    default: false
  skip_conflicts:
    description:
      - An object whose metadata.resourceVersion is no longer the live one is left as it is and
        reported with action C(conflict), instead of failing the task.
    type: bool
    default: false
extends_documentation_fragment:
  - postgres.cluster.api
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: Reads the live objects and reports what would be created, changed or deleted, without writing.
  diff_mode:
    support: full
    details: For each object that differs, the fields it sets as they are live and as they would be; a
      Secret's values are never shown.
seealso:
  - module: kubernetes.core.k8s
"""

EXAMPLES = r"""
- name: Apply the cluster's objects that differ from what is live
  postgres.cluster.k8s_apply:
    field_manager: pgc-operator
    template: [service-rw.yaml.j2, statefulset.yaml.j2]
    report_kinds: [StatefulSet]
  register: applied

- name: Remove the logical backup CronJob
  postgres.cluster.k8s_apply:
    field_manager: pgc-operator
    absent:
      - {apiVersion: batch/v1, kind: CronJob, name: main-logical-backup, namespace: databases}
"""

RETURN = r"""
objects:
  description: Each object with C(object) (C(Kind namespace/name)), C(action) (unchanged, created, conflict,
    configured, deleted) and, when it was applied, the C(reasons).
  returned: always
  type: list
  elements: dict
  sample: [{object: Service databases/main, action: configured, reasons: ["spec.ports[0].port differs"]}]
resources:
  description: For each kind of O(report_kinds), the live object after the apply (apiVersion, kind,
    metadata name/namespace/generation/uid, spec.replicas, status).
  returned: always
  type: dict
"""
