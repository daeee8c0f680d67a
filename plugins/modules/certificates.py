#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The action plugin of the same name does the work, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: certificates
short_description: Issue and renew the certificates of a PostgresCluster
description:
  - Keeps the cluster's CA in the Secret C(<name>-ca) and the certificates it signs in the Secrets the pods
    mount - PostgreSQL's server certificate C(<name>-tls) (unless C(spec.tls) names a Secret or an issuer),
    the superuser's client certificate C(<name>-superuser-tls), the application role's C(<name>-app-tls)
    when C(spec.tls.clientAuth) asks for certificates, and pgBackRest's server and client certificates
    C(<name>-backup-tls) when the cluster has a repository.
  - A certificate is issued anew when it is missing, ends within 30 days, no longer names what it must, or
    was not signed by a CA the cluster trusts. The CA is replaced two years before it ends; the previous
    one stays in every C(ca.crt) while it is valid.
  - Runs in the controller's process, so that no key passes through a task's variables or output. Returns
    the names of the Secrets written.
author:
  - pgc contributors
extends_documentation_fragment:
  - postgres.cluster.api
  - postgres.cluster.api.cluster
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    details: Nothing is written; the result names the Secrets that would be.
"""

EXAMPLES = r"""
- name: Issue or renew the cluster's certificates
  postgres.cluster.certificates:
    cluster: "{{ pgc }}"
    field_manager: pgc-operator
"""

RETURN = r"""
secrets:
  description: The Secrets created or updated (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""
