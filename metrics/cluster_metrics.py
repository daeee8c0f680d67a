#!/usr/bin/env python3
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Per-cluster metrics of the pgc operator, in the Prometheus text format.

Runs beside the operator (a second container of its pod; ``hack/run-operator.sh`` locally) and
derives every series from what the API server already holds: the PostgresCluster objects and
Patroni's leader-lock ConfigMaps (``<cluster>-leader``). It costs no reconcile, and it can say
``postgres_cluster_up{...} 0``, which the runtime's own metrics API cannot (no labels, and a gauge
set to 0 is ignored there).

    python3 cluster_metrics.py --listen :8686        # GET /metrics, GET /healthz

Credentials: the in-cluster ServiceAccount, else ``--kubeconfig`` or ``KUBECONFIG``. Namespaces:
``WATCH_NAMESPACE`` (comma-separated; empty or unset means all), as for the operator. It needs
``list`` and ``watch`` on ``postgresclusters`` (postgres.example.com) and on ``configmaps``.

Why a watch cache rather than a LIST per scrape: each scrape would transfer every cluster object
and every ConfigMap labelled with a cluster (Patroni's config and leader maps, the operator's
configuration) -- megabytes per scrape with hundreds of clusters, multiplied by the number of
Prometheus replicas. A watch transfers each change once: mostly the leader-lock renewals, one
small object per cluster every loop_wait seconds. ConfigMaps are watched as metadata only (the
lock lives in annotations), so their data never reaches this process, and only the few fields
used are kept in memory. A scrape then reads memory only: O(clusters), no API request. Lock
validity is judged at scrape time (a lock expires while nothing changes), except when the cache
is out of sync with the API server: then every value, ``up`` included, is the one of the last
moment the cache was known to be current, and ``pgc_cluster_metrics_last_success_timestamp_seconds``
says when that was.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _add_collections_to_path():
    """Make the collection's module_utils importable: the leader-lock rule, the cron grammar and the
    names are the operator's own, imported rather than copied. The collections are looked for where
    Ansible looks for them (ANSIBLE_COLLECTIONS_PATH, else its default, where the operator image
    installs the collection), after anything on PYTHONPATH."""
    paths = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or "~/.ansible/collections:/usr/share/ansible/collections"
    for path in paths.split(os.pathsep):
        path = os.path.expanduser(path)
        if path and path not in sys.path:
            sys.path.append(path)


_add_collections_to_path()

from ansible_collections.postgres.cluster.plugins.module_utils.names import (  # noqa: E402
    CLUSTER_LABEL,
    GROUP,
    LEADER_SUFFIX,
    PLURAL,
    VERSION,
)
from ansible_collections.postgres.cluster.plugins.module_utils.failovers import WINDOW_BUCKETS  # noqa: E402
from ansible_collections.postgres.cluster.plugins.module_utils.patroni import lock_holder, parse_time  # noqa: E402
from ansible_collections.postgres.cluster.plugins.module_utils.spec import CronError, cron_interval_seconds  # noqa: E402

LOG = logging.getLogger("cluster-metrics")


# --- what the objects say ------------------------------------------------------------------------

def cluster_up(cluster, lock_annotations, now):
    """1 while a primary accepts writes: a valid lock held by a member listed in the status."""
    holder = lock_holder(lock_annotations, now)
    return 1 if holder is not None and holder in cluster["members"] else 0


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value):
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def compact_cluster(obj):
    """The fields of a PostgresCluster that the metrics use (all that is kept in memory)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    backup = parse_time(status.get("lastBackupTimestamp"))
    logical = parse_time((status.get("lastLogicalBackup") or {}).get("stopTime"))
    drill = status.get("lastDrill") if isinstance(status.get("lastDrill"), dict) else {}
    drill_time = parse_time(drill.get("time"))
    drill_success = parse_time(status.get("lastSuccessfulDrillTimestamp"))
    return {
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "image": spec.get("image") or "",
        "schedule": spec.get("backupSchedule") or "",
        "logical_schedule": ((spec.get("backup") or {}).get("logical") or {}).get("schedule") or "",
        "desired": _int(spec.get("replicas"), 1),
        "ready": _int(status.get("readyReplicas")),
        "phase": status.get("phase") or "",
        "primary": status.get("currentPrimary") or "",
        "members": frozenset(m.get("name") for m in status.get("members") or [] if isinstance(m, dict)),
        "last_backup": backup.timestamp() if backup else None,
        "backup_failures": _int(status.get("backupFailures")),
        "last_logical_backup": logical.timestamp() if logical else None,
        "logical_backup_failures": _int(status.get("logicalBackupFailures")),
        "drill_schedule": ((spec.get("backup") or {}).get("drill") or {}).get("schedule") or "",
        "last_drill": drill_time.timestamp() if drill_time else None,
        "last_drill_success": drill_success.timestamp() if drill_success else None,
        "drill_duration": _int(drill.get("durationSeconds"), None),
        "drill_succeeded": (1 if drill.get("result") == "Succeeded" else 0) if drill_time else None,
        "failovers": _failover_totals(status.get("failoverTotals")),
    }


def _failover_totals(totals):
    """status.failoverTotals as the failover series need it; None before the operator counted any."""
    if not isinstance(totals, dict):
        return None
    buckets = totals.get("windowBuckets") if isinstance(totals.get("windowBuckets"), list) else []
    return {
        "failover": _int(totals.get("failovers")),
        "switchover": _int(totals.get("switchovers")),
        "count": _int(totals.get("windowCount")),
        "sum": _float(totals.get("windowSecondsSum")),
        "buckets": tuple(zip(WINDOW_BUCKETS, (_int(b) for b in buckets))),
    }


def compact_lock(obj):
    """The leader lock of a ``<cluster>-leader`` ConfigMap; None for any other ConfigMap."""
    meta = obj.get("metadata") or {}
    cluster = (meta.get("labels") or {}).get(CLUSTER_LABEL)
    if not cluster or meta.get("name") != cluster + LEADER_SUFFIX:
        return None
    annotations = meta.get("annotations") or {}
    return {key: annotations[key] for key in ("leader", "renewTime", "ttl") if key in annotations}


# --- the text format -----------------------------------------------------------------------------

FAMILIES = (
    ("postgres_cluster_up", "gauge",
     "1 while a primary accepts writes: a member listed in the status holds a valid Patroni leader lock."),
    ("postgres_cluster_ready_replicas", "gauge", "PostgreSQL instances that are ready (status.readyReplicas)."),
    ("postgres_cluster_desired_replicas", "gauge", "PostgreSQL instances requested (spec.replicas)."),
    ("postgres_cluster_last_backup_timestamp_seconds", "gauge",
     "Completion time of the most recent successful backup, in seconds since the epoch."),
    ("postgres_cluster_backup_interval_seconds", "gauge",
     "Longest time between two consecutive runs of spec.backupSchedule (UTC)."),
    ("postgres_cluster_backup_failures_total", "counter", "Backups that failed (status.backupFailures)."),
    ("postgres_cluster_last_logical_backup_timestamp_seconds", "gauge",
     "Completion time of the most recent successful logical backup (spec.backup.logical), in seconds since "
     "the epoch."),
    ("postgres_cluster_logical_backup_failures_total", "counter",
     "Logical backups that failed (status.logicalBackupFailures)."),
    ("postgres_cluster_failovers_total", "counter",
     "Promotions of a new primary by kind (failover, switchover), from Patroni's history (status.failoverTotals)."),
    ("postgres_cluster_failover_duration_seconds", "histogram",
     "Write-unavailable window of each promotion, from Patroni's records (status.failovers)."),
    ("postgres_cluster_drill_last_run_timestamp_seconds", "gauge",
     "Completion time of the most recent restore drill (spec.backup.drill), in seconds since the epoch."),
    ("postgres_cluster_drill_last_success_timestamp_seconds", "gauge",
     "Completion time of the most recent successful restore drill, in seconds since the epoch."),
    ("postgres_cluster_drill_duration_seconds", "gauge", "How long the most recent restore drill took."),
    ("postgres_cluster_drill_succeeded", "gauge", "1 when the most recent restore drill succeeded, else 0."),
    ("postgres_cluster_drill_interval_seconds", "gauge",
     "Longest time between two consecutive runs of spec.backup.drill.schedule (UTC)."),
    ("postgres_cluster_info", "gauge", "Image, phase and current primary of a cluster; always 1."),
    ("pgc_cluster_metrics_errors_total", "counter",
     "Failed requests of the cluster metrics server to the Kubernetes API."),
    ("pgc_cluster_metrics_last_success_timestamp_seconds", "gauge",
     "Last time the cluster metrics were known to match the Kubernetes API, in seconds since the epoch "
     "(0: never)."),
)


def _escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value):
    if isinstance(value, float) and not value.is_integer():
        return repr(value)
    return str(int(value))


def _interval(cluster, key, today):
    """The longest gap between two runs of the cluster's schedule ``key``; None without one."""
    if not cluster[key]:
        return None
    try:
        return cron_interval_seconds(cluster[key], today)
    except CronError as exc:
        LOG.debug("%s/%s: %s", cluster["namespace"], cluster["name"], exc)
        return None


def cluster_samples(cluster, lock, now, today=None):
    """{family: (labels, value)} of one cluster."""
    labels = {"name": cluster["name"], "namespace": cluster["namespace"]}
    samples = {
        "postgres_cluster_up": cluster_up(cluster, lock, now),
        "postgres_cluster_ready_replicas": cluster["ready"],
        "postgres_cluster_desired_replicas": cluster["desired"],
        "postgres_cluster_backup_failures_total": cluster["backup_failures"],
    }
    if cluster["last_backup"] is not None:
        samples["postgres_cluster_last_backup_timestamp_seconds"] = cluster["last_backup"]
    # Only clusters with logical backups have the logical series.
    if cluster["logical_schedule"] or cluster["logical_backup_failures"] or cluster["last_logical_backup"]:
        samples["postgres_cluster_logical_backup_failures_total"] = cluster["logical_backup_failures"]
    if cluster["last_logical_backup"] is not None:
        samples["postgres_cluster_last_logical_backup_timestamp_seconds"] = cluster["last_logical_backup"]
    # Only clusters with a drill schedule have the drill series.
    if cluster["drill_schedule"]:
        for family, key in (("postgres_cluster_drill_last_run_timestamp_seconds", "last_drill"),
                            ("postgres_cluster_drill_last_success_timestamp_seconds", "last_drill_success"),
                            ("postgres_cluster_drill_duration_seconds", "drill_duration"),
                            ("postgres_cluster_drill_succeeded", "drill_succeeded")):
            if cluster[key] is not None:
                samples[family] = cluster[key]
    for family, key in (("postgres_cluster_backup_interval_seconds", "schedule"),
                        ("postgres_cluster_drill_interval_seconds", "drill_schedule")):
        interval = _interval(cluster, key, today)
        if interval is not None:
            samples[family] = interval
    out = {family: (labels, value) for family, value in samples.items()}
    totals = cluster["failovers"]
    if totals is not None:
        out["postgres_cluster_failovers_total"] = [(dict(labels, kind=kind), totals[kind]) for kind in ("failover", "switchover")]
        out["postgres_cluster_failover_duration_seconds"] = (
            [(dict(labels, le=str(bound)), count, "_bucket") for bound, count in totals["buckets"]]
            + [(dict(labels, le="+Inf"), totals["count"], "_bucket"), (labels, totals["sum"], "_sum"),
               (labels, totals["count"], "_count")])
    out["postgres_cluster_info"] = (dict(labels, image=cluster["image"], phase=cluster["phase"],
                                         current_primary=cluster["primary"]), 1)
    return out


def render(clusters, locks, now, errors_total, last_success):
    """The exposition text of ``clusters`` (compact, any order) and the locks by (namespace, name)."""
    series = {family: [] for family, _, _ in FAMILIES}
    today = now.date()
    for cluster in sorted(clusters, key=lambda c: (c["namespace"], c["name"])):
        lock = locks.get((cluster["namespace"], cluster["name"] + LEADER_SUFFIX))
        for family, sample in cluster_samples(cluster, lock, now, today).items():
            series[family].extend(sample if isinstance(sample, list) else [sample])
    series["pgc_cluster_metrics_errors_total"].append(({}, errors_total))
    series["pgc_cluster_metrics_last_success_timestamp_seconds"].append(({}, last_success or 0))
    lines = []
    for family, kind, text in FAMILIES:
        lines.append(f"# HELP {family} {_escape_help(text)}")
        lines.append(f"# TYPE {family} {kind}")
        for labels, value, *suffix in series[family]:
            name = family + "".join(suffix)  # a histogram's _bucket, _sum and _count
            label_text = ",".join(f'{key}="{_escape_label(val)}"' for key, val in labels.items())
            lines.append(f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


# --- the cache -----------------------------------------------------------------------------------

def describe(exc):
    """One line about a failed request: the API server's status and message when there is one."""
    status = getattr(exc, "status", None)
    if status is not None:
        try:
            message = json.loads(exc.body).get("message")
        except (TypeError, ValueError, AttributeError):
            message = None
        return f"{status} {getattr(exc, 'reason', '') or ''}: {message or ''}".strip(": ")
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Informer:
    """One kind in one scope, listed then watched, kept as ``transform``-ed items by (namespace, name).

    On any error the items stay as they were (the last good values), the error is counted, and the
    list starts over after a back-off.
    """

    def __init__(self, api, path, transform, label_selector=None, metadata_only=False, page_size=500):
        self.api = api
        self.path = path
        self.transform = transform
        self.label_selector = label_selector
        self.page_size = page_size
        # Metadata only: the API server strips everything but metadata (a ConfigMap's data) itself.
        self.list_accept = ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
                            if metadata_only else "application/json")
        self.watch_accept = ("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
                             if metadata_only else "application/json")
        self.items = {}
        self.synced = False
        self.last_ok = None
        self.errors = 0
        self.lock = threading.Lock()
        self.thread = None
        self.stopping = threading.Event()

    def __repr__(self):
        return f"Informer({self.path}" + (f"?labelSelector={self.label_selector})" if self.label_selector else ")")

    def _request(self, query, accept, timeout):
        if self.label_selector:
            query = [("labelSelector", self.label_selector)] + query
        return self.api.call_api(self.path, "GET", query_params=query, header_params={"Accept": accept},
                                 auth_settings=["BearerToken"], _preload_content=False,
                                 _return_http_data_only=True, _request_timeout=timeout)

    def _put(self, items, obj):
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        value = self.transform(obj)
        if value is None:
            items.pop(key, None)
        else:
            items[key] = value

    def list(self):
        """Replace the items with a fresh list; returns its resourceVersion."""
        items, token = {}, None
        while True:
            query = [("limit", str(self.page_size))] + ([("continue", token)] if token else [])
            resp = self._request(query, self.list_accept, (10, 60))
            try:
                body = json.loads(resp.data)
            finally:
                resp.release_conn()
            for obj in body.get("items") or []:
                self._put(items, obj)
            token = (body.get("metadata") or {}).get("continue")
            if not token:
                break
        with self.lock:
            self.items = items
            self.synced = True
            self.last_ok = time.time()
        return body["metadata"]["resourceVersion"]

    def watch(self, resource_version):
        """Apply watch events until the server ends the watch; returns the resourceVersion to go on
        from, or None when the list must start over (the version is too old)."""
        # The server ends each watch after timeoutSeconds; the read timeout catches a silent
        # connection. Randomised so that watches do not all restart together.
        seconds = random.randint(60, 120)
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("resourceVersion", resource_version),
                 ("timeoutSeconds", str(seconds))]
        resp = self._request(query, self.watch_accept, (10, seconds + 30))
        from kubernetes.watch.watch import iter_resp_lines
        try:
            for line in iter_resp_lines(resp):
                if self.stopping.is_set():
                    return resource_version
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise RuntimeError(f"watch error: {obj.get('message') or obj}")
                resource_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
                with self.lock:
                    if kind in ("ADDED", "MODIFIED"):
                        self._put(self.items, obj)
                    elif kind == "DELETED":
                        meta = obj.get("metadata") or {}
                        self.items.pop((meta.get("namespace", ""), meta.get("name", "")), None)
                    self.last_ok = time.time()
        finally:
            resp.close()
            resp.release_conn()
        with self.lock:
            self.last_ok = time.time()
        return resource_version

    def run(self):
        backoff = 1.0
        while not self.stopping.is_set():
            try:
                version = self.list()
                backoff = 1.0
                while version is not None and not self.stopping.is_set():
                    version = self.watch(version)
            except Exception as exc:  # noqa: BLE001 - any failure: keep the last values, count, retry
                with self.lock:
                    self.synced = False
                    self.errors += 1
                LOG.warning("%r: %s; retrying in %.0fs", self, describe(exc), backoff)
                self.stopping.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, 30.0)

    def start(self):
        self.thread = threading.Thread(target=self.run, name=repr(self), daemon=True)
        self.thread.start()

    def snapshot(self):
        with self.lock:
            return dict(self.items), self.synced, self.last_ok, self.errors


class ClusterMetrics:
    """The informers of every watched scope, and the exposition built from them."""

    def __init__(self, api, namespaces):
        self.clusters, self.locks = [], []
        for namespace in namespaces or [None]:
            prefix = f"/api/v1/namespaces/{namespace}" if namespace else "/api/v1"
            custom = f"/apis/{GROUP}/{VERSION}" + (f"/namespaces/{namespace}" if namespace else "")
            self.clusters.append(Informer(api, f"{custom}/{PLURAL}", compact_cluster))
            self.locks.append(Informer(api, f"{prefix}/configmaps", compact_lock, label_selector=CLUSTER_LABEL,
                                       metadata_only=True))

    @property
    def informers(self):
        return self.clusters + self.locks

    def start(self):
        for informer in self.informers:
            informer.start()

    def stop(self):
        for informer in self.informers:
            informer.stopping.set()

    def alive(self):
        return all(i.thread is not None and i.thread.is_alive() for i in self.informers)

    def exposition(self, now=None):
        now = now or datetime.datetime.now(datetime.timezone.utc)
        clusters, locks, errors, good_until = [], {}, 0, now.timestamp()
        for informer in self.informers:
            items, synced, last_ok, failed = informer.snapshot()
            errors += failed
            if not synced:
                good_until = min(good_until, last_ok or 0)
            if informer in self.clusters:
                clusters.extend(items.values())
            else:
                locks.update(items)
        # Out of sync: every value is the one of the last moment the cache was current, up included.
        as_of = datetime.datetime.fromtimestamp(good_until, datetime.timezone.utc) if good_until else now
        return render(clusters, locks, as_of, errors, good_until)


# --- the server ----------------------------------------------------------------------------------

def make_handler(metrics):
    class Handler(BaseHTTPRequestHandler):
        server_version = "pgc-cluster-metrics"

        def _send(self, code, body, content_type="text/plain; charset=utf-8"):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - the http.server interface
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    self._send(200, metrics.exposition(), "text/plain; version=0.0.4; charset=utf-8")
                elif path == "/healthz":
                    alive = metrics.alive()
                    self._send(200 if alive else 500, "ok\n" if alive else "a watch thread stopped\n")
                else:
                    self._send(404, "not found: try /metrics\n")
            except Exception:  # noqa: BLE001 - a failed scrape must not end the server
                LOG.exception("serving %s", path)
                self._send(500, "internal error\n")

        do_HEAD = do_GET

        def log_message(self, fmt, *args):
            LOG.debug("%s %s", self.address_string(), fmt % args)

    return Handler


def parse_listen(text):
    """``host:port``, ``:port`` (every interface) or ``[v6]:port`` as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--listen {text!r}: expected [host]:port")
    return host.strip("[]"), int(port)


def namespaces_from_env():
    return [n.strip() for n in os.environ.get("WATCH_NAMESPACE", "").split(",") if n.strip()]


def api_client(kubeconfig=None):
    from kubernetes import client, config

    if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        config.load_kube_config(config_file=kubeconfig)
    return client.ApiClient()


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler):
        if ":" in address[0]:
            import socket
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=parse_listen, default=":8686", help="[host]:port (default :8686)")
    parser.add_argument("--kubeconfig", help="default: in-cluster ServiceAccount, else KUBECONFIG or ~/.kube/config")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Each failed request is logged once, by the informer; not once per urllib3 retry as well.
    logging.getLogger("urllib3").setLevel(logging.ERROR)

    namespaces = namespaces_from_env()
    metrics = ClusterMetrics(api_client(args.kubeconfig), namespaces)
    metrics.start()
    server = Server(args.listen, make_handler(metrics))
    LOG.info("serving /metrics on %s:%d for %s", args.listen[0] or "*", args.listen[1],
             ", ".join(namespaces) if namespaces else "all namespaces")

    def shutdown(signum, _frame):
        LOG.info("signal %d: stopping", signum)
        metrics.stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
