#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The action plugin of the same name does the work, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_observe
short_description: Read the state Patroni, the Secrets and the Jobs keep in the Kubernetes API for one cluster
description:
  - Lists the cluster's pods and ConfigMaps and returns the cluster as Patroni's Kubernetes DCS reports
    it - the holder of the leader lock, each member's role and state, the members that need a restart,
    whether the cluster was ever bootstrapped, and the dynamic configuration.
  - The leader is the holder of a valid lock in the ConfigMap C(<scope>-leader), not a pod label, so
    that a member killed while it was the primary (whose label nothing updates) is not reported as the
    primary once its lock expires.
  - Pods, ConfigMaps, Jobs and Secrets are read straight from the API server by label or name, never
    through the ansible-operator runtime's caching proxy, which would cache every object of those kinds
    in the whole Kubernetes cluster.
  - Read-only; it never changes anything.
author:
  - pgc contributors
options:
  scope:
    description: Patroni's scope, which is the name of the PostgresCluster.
    type: str
    required: true
  namespace:
    description: The namespace of the cluster.
    type: str
    required: true
  label_selector:
    description: The label selector of the cluster's pods and of Patroni's ConfigMaps (C(key=value) terms).
    type: str
    required: true
  backup_jobs:
    description:
      - Also list the cluster's backup and restore Jobs and their pods and return what each did.
    type: bool
    default: false
  secrets:
    description:
      - Secrets to look for. For each, RV(secrets) holds its key names, never its values.
    type: list
    elements: str
    default: []
  data_claim:
    description:
      - A PersistentVolumeClaim whose existence is reported in RV(data_exists) when one of O(secrets) is missing.
    type: str
    default: ""
  statefulset:
    description: A StatefulSet whose replica counts and status to return in RV(statefulset).
    type: str
    default: ""
  monitoring_api:
    description: Whether to ask the API server if it serves C(monitoring.coreos.com/v1) PodMonitors and PrometheusRules.
    type: bool
    default: true
  cluster:
    description:
      - The normalized cluster (the validate role's C(pgc)). When given, RV(certificates_due) tells whether its
        certificates must be issued or renewed, from their Secrets' annotations alone.
    type: dict
  certificate:
    description:
      - A cert-manager Certificate (C(cert-manager.io/v1)) of the cluster. When set, asks the API server whether
        it serves Certificates (RV(cert_manager_api)) and, if so, returns this one in RV(certificate), read
        through the runtime's proxy as an owned object. When empty, neither is asked.
    type: str
    default: ""
extends_documentation_fragment:
  - postgres.cluster.api
  - ansible.builtin.action_common_attributes
seealso:
  - module: postgres.cluster.k8s_apply
"""

EXAMPLES = r"""
- name: Read what Patroni says about the cluster
  postgres.cluster.cluster_observe:
    scope: main
    namespace: databases
    label_selector: postgres.example.com/cluster=main
    secrets: [main-credentials]
    data_claim: data-main-0
  register: observed

- name: Read the cluster's server Certificate too, when cert-manager serves Certificates
  postgres.cluster.cluster_observe:
    scope: main
    namespace: databases
    label_selector: postgres.example.com/cluster=main
    certificate: main-tls
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
cert_manager_api:
  description: Whether the cluster serves cert-manager's Certificate (cert-manager.io/v1); false unless
    O(certificate) is set.
  returned: always
  type: bool
certificate:
  description: The Certificate named in O(certificate) (apiVersion, kind, spec, the labels, annotations and
    ownerReferences of its metadata, and status), or null when it does not exist or was not asked for.
  returned: always
  type: dict
backup_jobs:
  description: The cluster's Jobs, oldest first, each with C(name), C(kind), C(backup), C(phase)
    (Pending, Running, Succeeded, Failed), C(started), C(finished), C(result) (the JSON line its pod
    wrote) and C(message). Empty unless O(backup_jobs) is set.
  returned: always
  type: list
  elements: dict
certificates_due:
  description: Whether a certificate Secret of O(cluster) is missing, ends soon or was issued for something else.
  returned: always
  type: bool
secrets:
  description: For each of O(secrets), its sorted key names, or null when it does not exist.
  returned: always
  type: dict
  sample: {main-credentials: [app-password, replication-password, superuser-password]}
data_exists:
  description: Whether O(data_claim) exists; null unless it was asked and a Secret is missing.
  returned: always
  type: bool
statefulset:
  description: The StatefulSet named in O(statefulset) (apiVersion, kind, name, generation, spec.replicas,
    status), or null.
  returned: always
  type: dict
"""
