# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The monitoring objects of a cluster built from the project's files: its PrometheusRule."""

from __future__ import annotations

import yaml


def pgc_prometheus_rules(rules_text, pgc):
    """Return the PrometheusRule spec of one cluster from the project's rule file (its text).

    Each alert keeps its labels and annotations; its expression is limited to this cluster by
    an ``and on (namespace, name)`` with a constant series carrying the cluster's labels (every
    rule of the file yields namespace and name), and the group names carry the cluster's.
    """
    rules = yaml.safe_load(str(rules_text)) or {}
    matcher = 'label_replace(label_replace(vector(1), "namespace", "%s", "", ""), "name", "%s", "", "")' % (
        pgc["namespace"], pgc["name"])
    groups = []
    for group in rules.get("groups") or []:
        scoped = []
        for rule in group.get("rules") or []:
            rule = dict(rule)
            rule["expr"] = "(%s) and on (namespace, name) %s" % (str(rule["expr"]).strip(), matcher)
            scoped.append(rule)
        groups.append({**group, "name": "%s.%s.%s" % (group["name"], pgc["namespace"], pgc["name"]), "rules": scoped})
    return {"groups": groups}


NO_MONITORING_API = ("the cluster does not serve the monitoring.coreos.com/v1 API (Prometheus Operator CRDs)")


def pgc_monitoring(pgc, api_served):
    """What monitoring a cluster gets, as status.monitoring says it: the exporter sidecars and the
    metrics Service with spec.enableMonitoring, a PodMonitor and a PrometheusRule too where the
    monitoring.coreos.com API is served (``api_served``)."""
    enabled = bool(pgc["spec"].get("enableMonitoring"))
    operator_api = enabled and bool(api_served)
    if not enabled:
        message = "Monitoring is off (spec.enableMonitoring)"
    elif operator_api:
        message = "Exporter sidecars, metrics Service, PodMonitor and PrometheusRule applied"
    else:
        message = "Exporter sidecars and metrics Service applied; PodMonitor and PrometheusRule skipped: " + NO_MONITORING_API
    return {"exporter": enabled, "podMonitor": operator_api, "prometheusRule": operator_api, "message": message}
