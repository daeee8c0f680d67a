# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The per-cluster metrics server (metrics/cluster_metrics.py): cron intervals, leader-lock
validity, the exposition format, and the watch cache against a fake API server."""

from __future__ import annotations

import datetime
import importlib.util
import json
import re
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "metrics" / "cluster_metrics.py"
_SPEC = importlib.util.spec_from_file_location("cluster_metrics", _PATH)
cm = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(cm)

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 26, 20, 48, 16, 123456, tzinfo=UTC)
DAY = 86400
# A Sunday, so that weekly gaps do not depend on the day the tests run.
TODAY = datetime.date(2026, 11, 29)


def ago(seconds):
    return (NOW - datetime.timedelta(seconds=seconds)).isoformat()


def lock(leader="db-0", renewed=5, ttl="30"):
    return {"leader": leader, "renewTime": ago(renewed), "ttl": ttl}


def cluster_object(name="db", namespace="ns", members=("db-0", "db-1"), **status):
    status.setdefault("phase", "Running")
    status.setdefault("readyReplicas", 2)
    status.setdefault("currentPrimary", "db-0")
    status["members"] = [{"name": m, "role": "replica", "state": "streaming"} for m in members]
    return {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "7"},
            "spec": {"replicas": 2, "image": "ghcr.io/pgc-operator/postgres:15", "backupSchedule": "0 3 * * *"},
            "status": status}


def leader_configmap(cluster="db", namespace="ns", annotations=None, name=None, version="8"):
    return {"metadata": {"name": name or f"{cluster}-leader", "namespace": namespace, "resourceVersion": version,
                         "labels": {"postgres.example.com/cluster": cluster},
                         "annotations": annotations if annotations is not None else lock()}}


# --- cron ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule, seconds", [
    ("0 3 * * *", DAY),
    ("*/15 * * * *", 900),
    ("0 0 * * 0", 7 * DAY),
    ("0 2 1 * *", 31 * DAY),
    ("@daily", DAY),
    ("@midnight", DAY),
    ("@hourly", 3600),
    ("@weekly", 7 * DAY),
    ("@monthly", 31 * DAY),
    ("0 9 * * MON-FRI", 3 * DAY),
    ("30 1,13 * * *", 12 * 3600),
    ("0 0-6/2 * * *", 18 * 3600),
    ("0 0 1 jan,jul *", 184 * DAY),
    ("* * * * *", 60),
    ("0 0 * * 7", 7 * DAY),
])
def test_cron_interval_is_the_longest_gap_between_runs(schedule, seconds):
    assert cm.cron_interval_seconds(schedule, TODAY) == seconds


def test_cron_interval_of_a_yearly_schedule_is_a_leap_year():
    assert cm.cron_interval_seconds("@yearly", TODAY) == 366 * DAY
    assert cm.cron_interval_seconds("@annually", datetime.date(2029, 1, 2)) == 366 * DAY


@pytest.mark.parametrize("today", [TODAY, datetime.date(2028, 3, 1), datetime.date(2028, 2, 28)])
def test_cron_interval_covers_february_29th(today):
    assert cm.cron_interval_seconds("0 0 29 2 *", today) == 4 * 365 * DAY + DAY


def test_cron_interval_uses_either_day_field_when_both_are_restricted():
    # The 1st of the month or any Monday: never more than a week apart.
    assert cm.cron_interval_seconds("0 0 1 * 1", TODAY) == 7 * DAY
    # "*/2" restricts the day of month, so the Sundays count as well.
    assert cm.cron_interval_seconds("0 0 */2 * 0", TODAY) <= 2 * DAY


def test_cron_interval_is_none_when_the_schedule_never_repeats():
    assert cm.cron_interval_seconds("0 0 30 2 *", TODAY) is None


@pytest.mark.parametrize("schedule", ["", "0 3 * *", "61 * * * *", "0 3 * * * *", "0 3 32 * *", "*/0 * * * *",
                                      "5-1 * * * *", "0 3 * foo *", "@reboot", "a b c d e"])
def test_cron_refuses_what_is_not_a_schedule(schedule):
    with pytest.raises(cm.CronError):
        cm.cron_interval_seconds(schedule, TODAY)


def test_the_metrics_server_reads_schedules_and_locks_with_the_operators_rules():
    from ansible_collections.postgres.cluster.plugins.module_utils import patroni, spec
    assert (cm.cron_interval_seconds, cm.CronError) == (spec.cron_interval_seconds, spec.CronError)
    assert cm.lock_holder is patroni.lock_holder


# --- the leader lock -----------------------------------------------------------------------------

def test_lock_holder_fresh_lock_names_its_leader():
    assert cm.lock_holder(lock(renewed=5), NOW) == "db-0"


def test_lock_holder_expired_lock_names_nobody():
    assert cm.lock_holder(lock(renewed=31), NOW) is None
    assert cm.lock_holder(lock(renewed=30), NOW) is None


def test_lock_holder_honours_the_lock_ttl():
    assert cm.lock_holder(lock(renewed=45, ttl="60"), NOW) == "db-0"
    assert cm.lock_holder(lock(renewed=45, ttl=None), NOW) is None


def test_lock_holder_accepts_utc_designator_z():
    assert cm.lock_holder({"leader": "db-0", "renewTime": "2026-11-26T20:48:10Z", "ttl": "30"}, NOW) == "db-0"


@pytest.mark.parametrize("annotations", [None, {}, {"leader": "", "renewTime": ago(1), "ttl": "30"},
                                         {"leader": "db-0", "ttl": "30"},
                                         {"leader": "db-0", "renewTime": "yesterday", "ttl": "30"}])
def test_lock_holder_without_a_readable_lock_names_nobody(annotations):
    assert cm.lock_holder(annotations, NOW) is None


def test_cluster_up_when_a_listed_member_holds_a_fresh_lock():
    cluster = cm.compact_cluster(cluster_object())
    assert cm.cluster_up(cluster, lock(), NOW) == 1


def test_cluster_up_is_0_when_the_holder_is_not_a_member():
    cluster = cm.compact_cluster(cluster_object(members=("db-1",)))
    assert cm.cluster_up(cluster, lock(leader="db-0"), NOW) == 0


def test_cluster_up_is_0_when_the_lock_expired_or_is_missing():
    cluster = cm.compact_cluster(cluster_object())
    assert cm.cluster_up(cluster, lock(renewed=3600), NOW) == 0
    assert cm.cluster_up(cluster, None, NOW) == 0


def test_cluster_up_is_0_without_members_in_the_status():
    obj = cluster_object()
    del obj["status"]["members"]
    assert cm.cluster_up(cm.compact_cluster(obj), lock(), NOW) == 0


def test_compact_lock_keeps_only_leader_configmaps_of_their_cluster():
    assert cm.compact_lock(leader_configmap()) == lock()
    assert cm.compact_lock(leader_configmap(name="db-config")) is None
    assert cm.compact_lock(leader_configmap(name="other-leader")) is None
    assert cm.compact_lock({"metadata": {"name": "db-leader", "annotations": lock()}}) is None


# --- the exposition ------------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? '
                    r'(-?[0-9.e+]+|NaN|[+-]Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text):
    """{family: {"type", "help", "samples": [(labels, value)]}}; fails on any malformed line, on a
    sample without HELP and TYPE before it, and on a family declared twice."""
    families, current = {}, None
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in families, f"{name} declared twice"
            families[name] = {"help": help_text, "type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current and kind in ("gauge", "counter", "histogram"), line
            families[name]["type"] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"malformed line {line!r}"
            name, labels, value = match.groups()
            if families.get(current, {}).get("type") == "histogram":
                assert name in (current + "_bucket", current + "_sum", current + "_count"), line
                name = current
            assert name == current and families[name]["type"], f"{name} has no HELP/TYPE before it"
            parsed = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                      for k, v in LABEL.findall(labels or "")}
            families[name]["samples"].append((parsed, float(value)))
    return families


def value_of(families, family, **labels):
    found = [v for sample_labels, v in families[family]["samples"]
             if all(sample_labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1
    return found[0] if found else None


def render(objects, configmaps=(), errors=0, last_success=1795726000.5):
    clusters = [cm.compact_cluster(o) for o in objects]
    locks = {}
    for c in configmaps:
        value = cm.compact_lock(c)
        if value is not None:
            locks[(c["metadata"]["namespace"], c["metadata"]["name"])] = value
    return cm.render(clusters, locks, NOW, errors, last_success)


def test_render_gives_every_series_of_a_cluster():
    obj = cluster_object(lastBackupTimestamp="2026-11-26T03:00:12Z", backupFailures=2)
    families = parse_exposition(render([obj], [leader_configmap()]))
    key = {"name": "db", "namespace": "ns"}
    assert value_of(families, "postgres_cluster_up", **key) == 1
    assert value_of(families, "postgres_cluster_ready_replicas", **key) == 2
    assert value_of(families, "postgres_cluster_desired_replicas", **key) == 2
    assert value_of(families, "postgres_cluster_backup_interval_seconds", **key) == DAY
    assert value_of(families, "postgres_cluster_last_backup_timestamp_seconds", **key) == \
        datetime.datetime(2026, 11, 26, 3, 0, 12, tzinfo=UTC).timestamp()
    assert value_of(families, "postgres_cluster_backup_failures_total", **key) == 2
    assert families["postgres_cluster_info"]["samples"] == [(
        {"name": "db", "namespace": "ns", "image": "ghcr.io/pgc-operator/postgres:15", "phase": "Running",
         "current_primary": "db-0"}, 1)]
    assert families["postgres_cluster_backup_failures_total"]["type"] == "counter"
    assert families["postgres_cluster_up"]["type"] == "gauge"
    assert value_of(families, "pgc_cluster_metrics_errors_total") == 0
    assert value_of(families, "pgc_cluster_metrics_last_success_timestamp_seconds") == 1795726000.5


def test_render_defaults_and_omissions_of_a_new_cluster():
    obj = {"metadata": {"name": "new", "namespace": "ns"}, "spec": {}}
    families = parse_exposition(render([obj]))
    assert value_of(families, "postgres_cluster_up", name="new") == 0
    assert value_of(families, "postgres_cluster_ready_replicas", name="new") == 0
    assert value_of(families, "postgres_cluster_desired_replicas", name="new") == 1
    assert value_of(families, "postgres_cluster_backup_failures_total", name="new") == 0
    assert families["postgres_cluster_last_backup_timestamp_seconds"]["samples"] == []
    assert families["postgres_cluster_backup_interval_seconds"]["samples"] == []
    # No logical backups asked for: no logical series.
    assert families["postgres_cluster_logical_backup_failures_total"]["samples"] == []
    assert families["postgres_cluster_last_logical_backup_timestamp_seconds"]["samples"] == []
    assert families["postgres_cluster_info"]["samples"] == [(
        {"name": "new", "namespace": "ns", "image": "", "phase": "", "current_primary": ""}, 1)]


def test_render_gives_the_logical_backup_series_of_a_cluster_with_logical_backups():
    scheduled = cluster_object(name="sched")
    scheduled["spec"]["backup"] = {"logical": {"schedule": "30 3 * * *"}}
    done = cluster_object(name="done", logicalBackupFailures=3,
                          lastLogicalBackup={"job": "done-logical-backup-1", "stopTime": "2026-11-26T03:30:41Z"})
    families = parse_exposition(render([scheduled, done]))
    assert value_of(families, "postgres_cluster_logical_backup_failures_total", name="sched") == 0
    assert value_of(families, "postgres_cluster_last_logical_backup_timestamp_seconds", name="sched") is None
    assert value_of(families, "postgres_cluster_logical_backup_failures_total", name="done") == 3
    assert value_of(families, "postgres_cluster_last_logical_backup_timestamp_seconds", name="done") == \
        datetime.datetime(2026, 11, 26, 3, 30, 41, tzinfo=UTC).timestamp()
    assert families["postgres_cluster_logical_backup_failures_total"]["type"] == "counter"


def test_render_gives_the_failover_counter_and_histogram_from_the_status_totals():
    totals = {"timeline": 6, "primary": "db-1", "failovers": 3, "switchovers": 2, "windowCount": 4,
              "windowSecondsSum": 61.5, "windowBuckets": [0, 1, 2, 2, 2, 3, 4, 4, 4]}
    text = render([cluster_object(failoverTotals=totals), cluster_object(name="new")])
    families = parse_exposition(text)
    assert families["postgres_cluster_failovers_total"]["type"] == "counter"
    assert value_of(families, "postgres_cluster_failovers_total", name="db", kind="failover") == 3
    assert value_of(families, "postgres_cluster_failovers_total", name="db", kind="switchover") == 2
    assert families["postgres_cluster_failover_duration_seconds"]["type"] == "histogram"
    assert 'postgres_cluster_failover_duration_seconds_bucket{name="db",namespace="ns",le="2"} 1' in text
    assert 'postgres_cluster_failover_duration_seconds_bucket{name="db",namespace="ns",le="+Inf"} 4' in text
    assert 'postgres_cluster_failover_duration_seconds_sum{name="db",namespace="ns"} 61.5' in text
    assert 'postgres_cluster_failover_duration_seconds_count{name="db",namespace="ns"} 4' in text
    # A cluster the operator has not counted yet has no failover series.
    assert value_of(families, "postgres_cluster_failovers_total", name="new", kind="failover") is None


def test_render_omits_the_interval_of_an_unreadable_schedule():
    obj = cluster_object()
    obj["spec"]["backupSchedule"] = "every night"
    families = parse_exposition(render([obj]))
    assert families["postgres_cluster_backup_interval_seconds"]["samples"] == []


def test_render_keeps_clusters_of_the_same_name_apart_by_namespace():
    objects = [cluster_object(namespace="b"), cluster_object(namespace="a")]
    families = parse_exposition(render(objects, [leader_configmap(namespace="a")]))
    assert value_of(families, "postgres_cluster_up", namespace="a") == 1
    assert value_of(families, "postgres_cluster_up", namespace="b") == 0
    assert [s[0]["namespace"] for s in families["postgres_cluster_up"]["samples"]] == ["a", "b"]


def test_render_escapes_label_values():
    obj = cluster_object()
    obj["spec"]["image"] = 'reg/"odd"\\image\n'
    families = parse_exposition(render([obj]))
    assert families["postgres_cluster_info"]["samples"][0][0]["image"] == 'reg/"odd"\\image\n'


def test_render_without_clusters_still_reports_its_own_health():
    families = parse_exposition(render([], errors=3, last_success=None))
    assert value_of(families, "pgc_cluster_metrics_errors_total") == 3
    assert value_of(families, "pgc_cluster_metrics_last_success_timestamp_seconds") == 0
    assert families["postgres_cluster_up"]["samples"] == []


def test_render_passes_promtool_check_metrics():
    """Prometheus' own linter accepts the exposition (promtool comes with hack/test-deps.sh)."""
    import shutil
    import subprocess
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run hack/test-deps.sh (Debian's prometheus package) as root"
    text = render([cluster_object(lastBackupTimestamp="2026-11-26T03:00:12Z")], [leader_configmap()])
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the watch cache -----------------------------------------------------------------------------

class FakeResponse:
    def __init__(self, body=None, events=()):
        self.data = json.dumps(body).encode() if body is not None else b""
        self.lines = [json.dumps(e).encode() + b"\n" for e in events]

    def stream(self, amt=None, decode_content=False):
        yield from self.lines

    def release_conn(self):
        pass

    def close(self):
        pass


class FakeApi:
    """Answers list and watch requests from queues; an exception in a queue is raised."""

    def __init__(self):
        self.lists, self.watches, self.requests = [], [], []

    def call_api(self, path, method, query_params=None, header_params=None, **_):
        query = dict(query_params)
        self.requests.append((path, query, header_params["Accept"]))
        queue = self.watches if query.get("watch") == "true" else self.lists
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def list_body(items, version="10", token=None):
    meta = {"resourceVersion": version}
    if token:
        meta["continue"] = token
    return FakeResponse({"items": items, "metadata": meta})


def test_informer_lists_pages_then_follows_watch_events():
    api = FakeApi()
    informer = cm.Informer(api, "/apis/postgres.example.com/v1/postgresclusters", cm.compact_cluster, page_size=1)
    api.lists += [list_body([cluster_object("a")], token="next"), list_body([cluster_object("b")], version="11")]
    assert informer.list() == "11"
    assert sorted(informer.items) == [("ns", "a"), ("ns", "b")]
    assert api.requests[1][1]["continue"] == "next"

    changed = cluster_object("a", readyReplicas=1)
    changed["metadata"]["resourceVersion"] = "12"
    api.watches.append(FakeResponse(events=[
        {"type": "MODIFIED", "object": changed},
        {"type": "DELETED", "object": cluster_object("b")},
        {"type": "ADDED", "object": cluster_object("c")},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
    ]))
    assert informer.watch("11") == "15"
    assert api.requests[-1][1]["resourceVersion"] == "11"
    assert sorted(informer.items) == [("ns", "a"), ("ns", "c")]
    assert informer.items[("ns", "a")]["ready"] == 1


def test_informer_relists_when_its_version_is_too_old():
    api = FakeApi()
    informer = cm.Informer(api, "/api/v1/configmaps", cm.compact_lock, label_selector="postgres.example.com/cluster",
                           metadata_only=True)
    api.watches.append(FakeResponse(events=[{"type": "ERROR", "object": {"kind": "Status", "code": 410}}]))
    assert informer.watch("3") is None
    path, query, accept = api.requests[0]
    assert query["labelSelector"] == "postgres.example.com/cluster"
    assert "as=PartialObjectMetadata;" in accept


def test_informer_keeps_only_leader_locks():
    api = FakeApi()
    informer = cm.Informer(api, "/api/v1/configmaps", cm.compact_lock, metadata_only=True)
    api.lists.append(list_body([leader_configmap(), leader_configmap(name="db-config")]))
    informer.list()
    assert informer.items == {("ns", "db-leader"): lock()}


class StoppingApi(FakeApi):
    """Stops the informer once its queues are empty."""

    def __init__(self, informer_ref):
        super().__init__()
        self.informer_ref = informer_ref

    def call_api(self, *args, **kwargs):
        if not self.lists and not self.watches:
            self.informer_ref[0].stopping.set()
            raise RuntimeError("stopped")
        return super().call_api(*args, **kwargs)


def test_informer_keeps_the_last_values_and_counts_errors(monkeypatch):
    ref = []
    api = StoppingApi(ref)
    informer = cm.Informer(api, "/apis/postgres.example.com/v1/postgresclusters", cm.compact_cluster)
    ref.append(informer)
    monkeypatch.setattr(informer.stopping, "wait", lambda timeout=None: None)
    api.lists += [list_body([cluster_object("a")]), RuntimeError("connection refused")]
    api.watches.append(RuntimeError("connection reset"))
    informer.run()
    items, synced, last_ok, errors = informer.snapshot()
    assert list(items) == [("ns", "a")]
    assert not synced and last_ok is not None
    assert errors == 3


def metrics_with(clusters, locks, synced=True, last_ok=None, errors=0):
    metrics = cm.ClusterMetrics(FakeApi(), ["ns"])
    metrics.clusters[0].items = {(c["metadata"]["namespace"], c["metadata"]["name"]): cm.compact_cluster(c)
                                 for c in clusters}
    metrics.locks[0].items = {(c["metadata"]["namespace"], c["metadata"]["name"]): cm.compact_lock(c) for c in locks}
    for informer in metrics.informers:
        informer.synced, informer.last_ok = True, NOW.timestamp()
    metrics.locks[0].synced, metrics.locks[0].last_ok, metrics.locks[0].errors = synced, last_ok, errors
    return metrics


def test_exposition_judges_the_lock_at_scrape_time_while_in_sync():
    metrics = metrics_with([cluster_object()], [leader_configmap(annotations=lock(renewed=5))])
    fresh = parse_exposition(metrics.exposition(NOW))
    later = parse_exposition(metrics.exposition(NOW + datetime.timedelta(seconds=60)))
    assert value_of(fresh, "postgres_cluster_up", name="db") == 1
    assert value_of(later, "postgres_cluster_up", name="db") == 0
    assert value_of(later, "pgc_cluster_metrics_last_success_timestamp_seconds") == NOW.timestamp() + 60


def test_exposition_serves_the_last_good_values_while_out_of_sync():
    metrics = metrics_with([cluster_object()], [leader_configmap(annotations=lock(renewed=5))], synced=False,
                           last_ok=NOW.timestamp(), errors=4)
    families = parse_exposition(metrics.exposition(NOW + datetime.timedelta(seconds=600)))
    assert value_of(families, "postgres_cluster_up", name="db") == 1
    assert value_of(families, "postgres_cluster_ready_replicas", name="db") == 2
    assert value_of(families, "pgc_cluster_metrics_errors_total") == 4
    assert value_of(families, "pgc_cluster_metrics_last_success_timestamp_seconds") == NOW.timestamp()


def test_cluster_metrics_watch_each_namespace_of_watch_namespace(monkeypatch):
    monkeypatch.setenv("WATCH_NAMESPACE", "a, b,")
    metrics = cm.ClusterMetrics(FakeApi(), cm.namespaces_from_env())
    assert [i.path for i in metrics.informers] == [
        "/apis/postgres.example.com/v1/namespaces/a/postgresclusters",
        "/apis/postgres.example.com/v1/namespaces/b/postgresclusters",
        "/api/v1/namespaces/a/configmaps", "/api/v1/namespaces/b/configmaps"]
    monkeypatch.setenv("WATCH_NAMESPACE", "")
    assert [i.path for i in cm.ClusterMetrics(FakeApi(), cm.namespaces_from_env()).informers] == [
        "/apis/postgres.example.com/v1/postgresclusters", "/api/v1/configmaps"]


@pytest.mark.parametrize("text, address", [(":8686", ("", 8686)), ("127.0.0.1:8686", ("127.0.0.1", 8686)),
                                           ("[::1]:9000", ("::1", 9000))])
def test_parse_listen_accepts_host_and_port(text, address):
    assert cm.parse_listen(text) == address


def test_parse_listen_refuses_a_missing_port():
    with pytest.raises(Exception):
        cm.parse_listen("localhost")


def test_render_gives_the_drill_series_of_a_cluster_with_a_drill_schedule():
    obj = cluster_object(lastDrill={"time": "2026-11-29T04:07:45Z", "result": "Failed", "durationSeconds": 128,
                                    "backup": "20261129-020000F", "job": "db-drill-1"},
                         lastSuccessfulDrillTimestamp="2026-11-22T04:05:00Z")
    obj["spec"]["backup"] = {"drill": {"schedule": "0 4 * * 0"}}
    families = parse_exposition(render([obj], [leader_configmap()]))
    key = {"name": "db", "namespace": "ns"}
    assert value_of(families, "postgres_cluster_drill_last_run_timestamp_seconds", **key) == \
        datetime.datetime(2026, 11, 29, 4, 7, 45, tzinfo=UTC).timestamp()
    assert value_of(families, "postgres_cluster_drill_last_success_timestamp_seconds", **key) == \
        datetime.datetime(2026, 11, 22, 4, 5, tzinfo=UTC).timestamp()
    assert value_of(families, "postgres_cluster_drill_duration_seconds", **key) == 128
    assert value_of(families, "postgres_cluster_drill_succeeded", **key) == 0
    assert value_of(families, "postgres_cluster_drill_interval_seconds", **key) == 7 * DAY
    obj["status"]["lastDrill"]["result"] = "Succeeded"
    assert value_of(parse_exposition(render([obj])), "postgres_cluster_drill_succeeded", **key) == 1


def test_render_has_no_drill_series_without_a_drill_schedule():
    obj = cluster_object(lastDrill={"time": "2026-11-29T04:07:45Z", "result": "Succeeded"})
    families = parse_exposition(render([obj], [leader_configmap()]))
    for family in ("last_run_timestamp_seconds", "last_success_timestamp_seconds", "duration_seconds", "succeeded",
                   "interval_seconds"):
        assert value_of(families, "postgres_cluster_drill_" + family, name="db", namespace="ns") is None
    # A drill scheduled that has not run yet: its interval only.
    obj = cluster_object()
    obj["spec"]["backup"] = {"drill": {"schedule": "@daily"}}
    families = parse_exposition(render([obj]))
    assert value_of(families, "postgres_cluster_drill_interval_seconds", name="db", namespace="ns") == DAY
    assert value_of(families, "postgres_cluster_drill_succeeded", name="db", namespace="ns") is None
