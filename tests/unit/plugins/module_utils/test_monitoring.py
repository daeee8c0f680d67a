"""The PrometheusRule of a cluster, from the project's alert rules."""

from __future__ import annotations

from pathlib import Path

import yaml

from ansible_collections.postgres.cluster.plugins.module_utils import monitoring
from ansible_collections.postgres.cluster.plugins.module_utils.monitoring import pgc_prometheus_rules
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize
from tests.unit.plugins.module_utils.samples import cluster

REPO = Path(__file__).resolve().parents[4]


def test_pgc_prometheus_rules_limits_every_alert_to_the_cluster():
    text = (REPO / "config/prometheus/alerts.yaml").read_text()
    spec = pgc_prometheus_rules(text, pgc_normalize(cluster()))
    source = yaml.safe_load(text)
    assert [len(g["rules"]) for g in spec["groups"]] == [len(g["rules"]) for g in source["groups"]]
    for group in spec["groups"]:
        assert group["name"].endswith(".prod.db")
        for rule in group["rules"]:
            assert rule["expr"].endswith('and on (namespace, name) label_replace(label_replace(vector(1), '
                                         '"namespace", "prod", "", ""), "name", "db", "", "")')
            assert "{{ $labels" in rule["annotations"]["description"] or "{{" not in rule["annotations"]["description"]


def test_pgc_monitoring_follows_the_spec_and_the_served_api():
    on = {"spec": {"enableMonitoring": True}}
    assert monitoring.pgc_monitoring(on, True) == {
        "exporter": True, "podMonitor": True, "prometheusRule": True,
        "message": "Exporter sidecars, metrics Service, PodMonitor and PrometheusRule applied"}
    without_api = monitoring.pgc_monitoring(on, False)
    assert (without_api["exporter"], without_api["podMonitor"], without_api["prometheusRule"]) == (True, False, False)
    assert "does not serve the monitoring.coreos.com/v1 API" in without_api["message"]
    off = monitoring.pgc_monitoring({"spec": {"enableMonitoring": False}}, True)
    assert off == {"exporter": False, "podMonitor": False, "prometheusRule": False,
                   "message": "Monitoring is off (spec.enableMonitoring)"}
