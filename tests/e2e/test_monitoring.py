"""Monitoring objects: the exporter sidecar and metrics Service always, a PodMonitor and a
PrometheusRule only where the Prometheus Operator's API is served (detected, not assumed), and
nothing left when monitoring is turned off."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.helpers import apply, get, kubectl, postgres_cluster, wait_for, wait_for_phase

CRDS = Path(__file__).parent / "fixtures/monitoring-crds.yaml"


def _containers(namespace, name="db"):
    sts = get("statefulset", name, namespace)
    return [c["name"] for c in sts["spec"]["template"]["spec"]["containers"]]


def test_without_the_prometheus_operator_the_exporter_runs_and_status_says_what_was_skipped(operator, namespace):
    # Detected, not assumed: no monitoring.coreos.com definitions in this part of the run.
    kubectl("delete", "-f", str(CRDS), "--ignore-not-found", "--wait=true")
    apply(postgres_cluster("db", replicas=2), namespace)
    cluster = wait_for_phase("db", namespace, "Running", ready=2)
    assert _containers(namespace) == ["postgres", "exporter"]
    service = get("service", "db-metrics", namespace)
    assert service["spec"]["ports"][0]["port"] == 9187
    monitoring = cluster["status"]["monitoring"]
    assert (monitoring["exporter"], monitoring["podMonitor"], monitoring["prometheusRule"]) == (True, False, False)
    assert "monitoring.coreos.com/v1" in monitoring["message"]


def test_with_the_prometheus_operator_api_a_podmonitor_and_rules_are_applied_and_removed_when_off(operator, namespace):
    kubectl("apply", "--server-side", "-f", str(CRDS))
    kubectl("wait", "--for=condition=Established", "crd/podmonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com", "--timeout=60s")
    apply(postgres_cluster("db", replicas=2), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    monitor = wait_for(lambda: get("podmonitor", "db", namespace), 60, "no PodMonitor")
    assert monitor["metadata"]["ownerReferences"][0]["kind"] == "PostgresCluster"
    assert monitor["spec"]["selector"]["matchLabels"] == {"postgres.example.com/cluster": "db"}
    rule = get("prometheusrule", "db", namespace)
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"PostgreSQLClusterDown", "PostgreSQLReplicationLagHigh", "PostgreSQLDataVolumeFilling"} <= set(alerts)
    assert f'"namespace", "{namespace}"' in alerts["PostgreSQLClusterDown"]["expr"]
    status = get("pgc", "db", namespace)["status"]["monitoring"]
    assert (status["podMonitor"], status["prometheusRule"]) == (True, True)

    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"enableMonitoring":false}}')
    wait_for(lambda: get("pgc", "db", namespace)["status"].get("monitoring", {}).get("exporter") is False, 90,
             "status does not say that monitoring is off")
    assert _containers(namespace) == ["postgres"]
    for kind, name in (("service", "db-metrics"), ("podmonitor", "db"), ("prometheusrule", "db")):
        assert get(kind, name, namespace) is None, f"{kind} {name} is left after monitoring was turned off"
