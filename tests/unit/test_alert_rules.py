"""The monitoring assets: the alert rules pass promtool and their unit tests, every alert is
actionable, and the rules and the Grafana dashboard use only metrics and labels that
config/prometheus/metrics.yaml lists (the exporter's are proven by tests/dataplane/test_exporter.py).

promtool comes from Debian's prometheus package, installed by hack/test-deps.sh: without it
these tests fail, they never skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "config" / "prometheus" / "alerts.yaml"
METRICS = REPO / "config" / "prometheus" / "metrics.yaml"
QUERIES = REPO / "config" / "prometheus" / "exporter-queries.yaml"
DASHBOARD = REPO / "config" / "grafana" / "postgres-cluster.json"
RULE_TESTS = sorted((REPO / "tests" / "prometheus").glob("*.yml"))

EXPECTED_ALERTS = {
    "PostgreSQLClusterDown", "PostgreSQLReplicasNotReady", "PostgreSQLReplicationLagHigh",
    "PostgreSQLBackupMissing", "PostgreSQLBackupFailing", "PostgreSQLLogicalBackupFailing",
    "PostgreSQLWALArchivingFailing", "PostgreSQLFailoversRepeated", "PostgreSQLDrillFailed", "PostgreSQLDrillOverdue",
    "PostgreSQLConnectionsNearLimit", "PostgreSQLTransactionIdWraparound", "PostgreSQLDataVolumeFilling",
}

# PromQL words that are neither metrics nor functions (functions are the words followed by "(").
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan", "Inf", "NaN"}
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
MATCHERS = re.compile(r"\{([^}]*)\}")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
# Grafana's variables, replaced by sample values before an expression is parsed or checked.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                     "$namespace": "db", "$cluster": "demo"}


def promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.fail("promtool is not installed (it comes with Debian's prometheus package): "
                    "run `hack/test-deps.sh` as root to install it", pytrace=False)
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([promtool(), *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"
    return proc


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def metrics_catalogue() -> dict:
    return yaml.safe_load(METRICS.read_text())


def known_metrics() -> dict[str, str]:
    """Metric name -> its source (operator, kubelet, exporter), from metrics.yaml."""
    cat = metrics_catalogue()
    known = {m: "operator" for m in cat["operator"]["metrics"]}
    known.update({m: "kubelet" for m in cat["kubelet"]["metrics"]})
    known.update({m: "exporter" for m in cat["exporter"]["metrics"]})
    return known


def known_labels() -> set[str]:
    cat = metrics_catalogue()
    labels = set(cat["target_labels"]) | set(cat["operator"]["labels"]) | set(cat["kubelet"]["labels"])
    for spec in cat["exporter"]["metrics"].values():
        labels |= set(spec.get("labels") or [])
    return labels


def substitute_grafana_variables(expr: str) -> str:
    for var, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + var[1:] + "}", value).replace(var, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (strings, label matchers, ranges and grouping removed)."""
    e = STRING.sub('""', expr)
    e = MATCHERS.sub("", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = GROUPING.sub("", e)
    names = set(re.findall(r"(?<![\w.:])([A-Za-z_:][\w:]*)\b(?!\s*\()", e))
    return names - PROMQL_KEYWORDS


def label_names(expr: str) -> set[str]:
    """The label names an expression groups by, joins on or matches on."""
    e = STRING.sub('""', expr)
    labels = set()
    for group in GROUPING.findall(e):
        labels |= {x.strip() for x in group.split(",") if x.strip()}
    for matchers in MATCHERS.findall(e):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
    # label_replace(v, "dst", "replacement", "src", "regex")
    for dst, src in re.findall(r'label_replace\(.*?,\s*"(\w+)",\s*"[^"]*",\s*"(\w+)"', expr, re.S):
        labels |= {dst, src}
    return labels


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of the dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            exprs.append((f"panel {panel['title']!r}", target["expr"]))
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
        assert m, f"variable {var['name']}: expected label_values(<selector>, <label>), got {query!r}"
        exprs.append((f"variable {var['name']!r}", f'group by ({m.group(2)}) ({m.group(1)})'))
    return [(where, substitute_grafana_variables(e)) for where, e in exprs]


# --- promtool ------------------------------------------------------------------------------------

def test_alert_rules_pass_promtool_check():
    run_promtool("check", "rules", str(ALERTS.relative_to(REPO)))


def test_alert_rules_pass_their_unit_tests():
    assert RULE_TESTS, "no promtool unit tests in tests/prometheus"
    run_promtool("test", "rules", *(str(p.relative_to(REPO)) for p in RULE_TESTS))


def test_dashboard_queries_are_valid_promql(tmp_path):
    """Each dashboard query, its Grafana variables replaced by sample values, parses as PromQL."""
    rules = [{"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(dashboard_expressions())]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool("check", "rules", str(path))


# --- alerts --------------------------------------------------------------------------------------

def test_alert_rules_are_the_expected_alerts():
    names = [r["alert"] for r in alert_rules()]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    assert set(names) == EXPECTED_ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_rule_has_severity_summary_and_description(rule):
    assert rule.get("labels", {}).get("severity") in ("warning", "critical"), \
        f"{rule['alert']}: labels.severity must be warning or critical"
    annotations = rule.get("annotations") or {}
    for key in ("summary", "description"):
        assert str(annotations.get(key, "")).strip(), f"{rule['alert']}: annotations.{key} is missing"
    assert len(annotations["description"]) > len(annotations["summary"]), \
        f"{rule['alert']}: the description should say what to do, not repeat the summary"


def test_every_alert_has_a_firing_unit_test():
    firing = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    firing.add(case["alertname"])
    assert EXPECTED_ALERTS - firing == set(), "alerts no unit test expects to fire"


# --- one list of metrics -------------------------------------------------------------------------

def test_metric_names_are_recognised_in_expressions():
    expr = ('sum by (namespace, pod) (label_replace(rate(a_total{x="y:z"}[5m]), "name", "$1", "pod", "(.+)-[0-9]+"))'
            ' / on (pod) group_left max(b) > 1.5e9 and time() - c offset 5m')
    assert metric_names(expr) == {"a_total", "b", "c"}
    assert label_names(expr) == {"namespace", "pod", "x", "name"}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_rule_uses_only_catalogued_metrics_and_labels(rule):
    unknown = metric_names(rule["expr"]) - set(known_metrics())
    assert not unknown, f"{rule['alert']} uses metrics that config/prometheus/metrics.yaml does not list: {unknown}"
    stray = label_names(rule["expr"]) - known_labels()
    assert not stray, f"{rule['alert']} uses labels that config/prometheus/metrics.yaml does not list: {stray}"


def test_dashboard_uses_only_catalogued_metrics_and_labels():
    known, labels = set(known_metrics()), known_labels()
    for where, expr in dashboard_expressions():
        unknown = metric_names(expr) - known
        assert not unknown, f"dashboard {where} uses metrics that metrics.yaml does not list: {unknown}"
        stray = label_names(expr) - labels
        assert not stray, f"dashboard {where} uses labels that metrics.yaml does not list: {stray}"


def test_catalogued_metrics_are_all_used():
    """A metric listed but used by no rule nor panel is dead weight in the exporter test."""
    used = set()
    for rule in alert_rules():
        used |= metric_names(rule["expr"])
    for _, expr in dashboard_expressions():
        used |= metric_names(expr)
    assert set(known_metrics()) - used == set()


def test_custom_exporter_metrics_come_from_the_queries_file():
    """pgc_* metrics are <query>_<column> of exporter-queries.yaml; the others are the exporter's own."""
    cat = metrics_catalogue()
    assert (REPO / cat["exporter_queries"]) == QUERIES
    queries = yaml.safe_load(QUERIES.read_text())
    provided, labels = {}, {}
    for qname, q in queries.items():
        cols = [next(iter(c.items())) for c in q["metrics"]]
        qlabels = [col for col, spec in cols if spec["usage"] == "LABEL"]
        for col, spec in cols:
            if spec["usage"] != "LABEL":
                provided[f"{qname}_{col}"] = set(qlabels)
    custom = {m: spec for m, spec in cat["exporter"]["metrics"].items() if m.startswith("pgc_")}
    assert set(custom) <= set(provided), f"not in {QUERIES.name}: {set(custom) - set(provided)}"
    for name, spec in custom.items():
        assert set(spec.get("labels") or []) == provided[name], f"{name}: labels differ from the query's"


def test_exporter_image_is_pinned():
    image = metrics_catalogue()["exporter_image"]
    assert re.fullmatch(r"quay\.io/prometheuscommunity/postgres-exporter:v\d+\.\d+\.\d+", image), image
