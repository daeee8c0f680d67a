#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The action plugin of the same name does the work, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: storage_expand
short_description: Grow the data claims of a PostgresCluster's members to spec.storageSize
description:
  - When spec.storageSize is larger than the size the StatefulSet's claim template asks for, patches every
    member's claim C(data-<name>-<ordinal>) to the new size, then deletes the StatefulSet with its pods
    orphaned, so that the next apply makes it again with the new claim template and adopts the running pods.
  - Where the StorageClass does not allow expansion, the API server refuses the first claim's patch; nothing
    changes, and RV(refused) says why.
  - Shrinking is refused earlier, by the CRD's transition rule.
author:
  - pgc contributors
extends_documentation_fragment:
  - postgres.cluster.api
  - postgres.cluster.api.cluster
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: Nothing is written; RV(claims) names the claims that would grow.
"""

EXAMPLES = r"""
- name: Grow the members' claims
  postgres.cluster.storage_expand:
    cluster: "{{ pgc }}"
    field_manager: pgc-operator
  register: grown
"""

RETURN = r"""
from:
  description: The size of the StatefulSet's claim template before, or null without a StatefulSet.
  returned: always
  type: str
to:
  description: spec.storageSize.
  returned: always
  type: str
claims:
  description: The claims grown (or that would be, in check mode).
  returned: always
  type: list
  elements: str
refused:
  description: Why the claims could not grow (the API server's answer), or empty.
  returned: always
  type: str
"""
