# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Who may reach a cluster's pods: the spec of its NetworkPolicy.

It selects every pod of the cluster (members, the repository host, the Jobs' pods) and allows
only this ingress; a port not named here is closed. Egress stays open: Patroni talks to the API
server and the pgBackRest processes to the object store. The kubelet's probes come from the
node, which NetworkPolicy implementations always let through.
"""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils.names import (
    COMPONENT_LABEL,
    MANAGED_BY,
    PATRONI_PORT,
    POSTGRES_PORT,
)
from ansible_collections.postgres.cluster.plugins.module_utils.pgbackrest import TLS_PORT
from ansible_collections.postgres.cluster.plugins.module_utils.pods import EXPORTER_PORT


def _rule(port, peers):
    return {"ports": [{"protocol": "TCP", "port": port}], "from": peers}


def pgc_network_policy_spec(pgc):
    """The NetworkPolicy spec of a cluster:

    - PostgreSQL (5432) from ``spec.allowedClients`` (NetworkPolicy peers), or from every pod of
      the namespace when none are given; always from the members (replication) and the cluster's
      Jobs (logical backups);
    - Patroni's REST API (8008) from the members alone: they ask each other's state in an
      election; nothing of the operator calls it;
    - pgBackRest's TLS servers (8432) from the members, the repository host and the Jobs;
    - the exporter (9187) from ``spec.metricsClients`` (normalized: the namespace ``monitoring``).
    """
    spec = pgc["spec"]
    members = {"podSelector": {"matchLabels": dict(pgc["selector"])}}
    # The Jobs' pods and the repository host: labelled as the cluster's, never as members.
    helpers = {"podSelector": {"matchLabels": {COMPONENT_LABEL: pgc["name"]}}}
    clients = list(spec.get("allowedClients") or []) or [{"podSelector": {}}]
    metrics_clients = spec.get("metricsClients") or []
    ingress = [
        _rule(POSTGRES_PORT, clients + [members, helpers]),
        _rule(PATRONI_PORT, [members]),
        _rule(TLS_PORT, [members, helpers]),
    ]
    if spec.get("enableMonitoring") and metrics_clients:
        ingress.append(_rule(EXPORTER_PORT, list(metrics_clients)))
    return {
        "podSelector": {"matchLabels": {"app.kubernetes.io/instance": pgc["name"],
                                        "app.kubernetes.io/managed-by": MANAGED_BY}},
        "policyTypes": ["Ingress"],
        "ingress": ingress,
    }
