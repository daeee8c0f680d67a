"""Reconcile cost and convergence of the operator on the local control plane. Prints figures,
asserts nothing about speed.

For 1 and for 20 clusters (3 replicas each): time from apply to Running (median, p95). For one
no-op reconcile of a Running cluster: wall and CPU seconds of the operator and its ansible-runner
children, and the API write requests it made. The operator's peak memory (with its children)
over the whole run. Beside them, the floors measured in the same run: an empty ansible-runner
play, and a direct server-side apply of the same objects.

    make bench        (or: python bench/reconcile.py [--clusters 1,20] [--noop-runs 5])
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import helpers  # noqa: E402  (the same domain helpers as the end-to-end tests)

CLK_TCK = os.sysconf("SC_CLK_TCK")
WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE"}
# Every kind a reconcile writes: what provision applies, the cluster's status, its Events, its Secret.
CLUSTER_RESOURCES = {"postgresclusters", "statefulsets", "services", "configmaps", "serviceaccounts", "roles",
                     "rolebindings", "poddisruptionbudgets", "secrets", "events"}


# --- process accounting ---------------------------------------------------------------------

def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17, ppid=4
    return int(fields[1]), [int(x) for x in fields[11:15]]


def cpu_seconds(pid):
    """User+system CPU of ``pid`` plus its reaped children (ansible-runner runs end up there)."""
    _, (utime, stime, cutime, cstime) = _stat(pid)
    return (utime + stime + cutime + cstime) / CLK_TCK


def tree_rss_mib(root):
    """Resident memory of ``root`` and all its live descendants, in MiB."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid, _ = _stat(entry)
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
            total += int(m.group(1)) if m else 0
        except (FileNotFoundError, ProcessLookupError):
            pass  # the process ended while we looked
    return total / 1024


class PeakMemory(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_rss_mib(self.pid))
            time.sleep(0.2)


# --- API server accounting -----------------------------------------------------------------

def api_writes():
    """Write requests the API server has served for the objects a cluster owns, by verb."""
    counts = {}
    for line in helpers.kubectl("get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if labels.get("verb") in WRITE_VERBS and labels.get("resource") in CLUSTER_RESOURCES:
            key = (labels["verb"], labels["resource"], labels.get("subresource", ""))
            counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def delta(after, before):
    return {k: int(v - before.get(k, 0)) for k, v in after.items() if v - before.get(k, 0) > 0}


# --- floors --------------------------------------------------------------------------------

def floor_empty_play(runs=3):
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp, "project")
        project.mkdir()
        (project / "empty.yml").write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
        for i in range(runs):
            start = time.monotonic()
            subprocess.run(["ansible-runner", "run", tmp, "-p", "empty.yml", "--rotate-artifacts", "1", "-q"],
                           env=helpers.env(), check=True, capture_output=True)
            times.append(time.monotonic() - start)
    return statistics.median(times)


def floor_direct_apply(namespace, name, runs=5):
    """Server-side apply of the same objects the provision role renders, from one Python process."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar
    import yaml
    from kubernetes import config, dynamic
    from kubernetes.client import api_client

    collections = subprocess.run([str(REPO / "hack/collection-link.sh")], check=True, capture_output=True,
                                 text=True).stdout.strip()
    sys.path.insert(0, collections)
    # lookup('file') and the collection's own filters in the templates, as in a play
    init_plugin_loader([collections])
    from ansible_collections.postgres.cluster.plugins.filter.backup import (pgc_pgbackrest_environment,
                                                                            pgc_pgbackrest_settings,
                                                                            pgc_pgbackrest_source_environment)
    from ansible_collections.postgres.cluster.plugins.filter.pgc import pgc_normalize, pgc_patroni_config

    cluster = helpers.kubectl_json("get", "pgc", name, "-n", namespace)
    pgc = pgc_normalize(cluster)
    defaults = yaml.safe_load((REPO / "roles/provision/defaults/main.yml").read_text())
    templar = Templar(loader=DataLoader(), variables={**defaults, "pgc": pgc})
    # The same templates, in the same order, as the provision role's one apply.
    task = next(t for t in yaml.safe_load((REPO / "roles/provision/tasks/main.yml").read_text())
                if (t.get("kubernetes.core.k8s") or {}).get("apply"))
    backup = pgc_pgbackrest_settings(pgc)
    templar.available_variables = {**templar.available_variables,
                                   "__provision_patroni_config": pgc_patroni_config(pgc),
                                   "__provision_backup": backup,
                                   "__provision_backup_env": (pgc_pgbackrest_environment(pgc) if backup["enabled"] else [])
                                   + pgc_pgbackrest_source_environment(pgc),
                                   "ansible_search_path": [str(REPO / "roles/provision")]}
    objects = [yaml.safe_load(templar.template((REPO / "roles/provision/templates" / t).read_text()))
               for t in templar.template(task["kubernetes.core.k8s"]["template"])]
    client = dynamic.DynamicClient(api_client.ApiClient(configuration=config.load_kube_config(
        config_file=helpers.kubeconfig(), persist_config=False) or None))
    resources = [client.resources.get(api_version=o["apiVersion"], kind=o["kind"]) for o in objects]
    times = []
    for _ in range(runs):
        start = time.monotonic()
        for res, obj in zip(resources, objects):
            res.server_side_apply(body=obj, namespace=namespace, field_manager="pgc-operator", force_conflicts=True)
        times.append(time.monotonic() - start)
    return statistics.median(times)


# --- operator figures ----------------------------------------------------------------------

def converge(operator, count, mem):
    namespace = helpers.unique_name(f"bench-{count}")
    helpers.kubectl("create", "namespace", namespace)
    docs = "\n---\n".join(json.dumps(helpers.postgres_cluster(f"pg{i}", replicas=3)) for i in range(count))
    start = time.monotonic()
    helpers.apply(docs, namespace)
    running = {}
    while len(running) < count and time.monotonic() - start < 600:
        for item in helpers.kubectl_json("get", "pgc", "-n", namespace)["items"]:
            st = item.get("status") or {}
            if st.get("phase") == "Running" and st.get("readyReplicas") == 3:
                running.setdefault(item["metadata"]["name"], time.monotonic() - start)
        time.sleep(0.25)
    if len(running) < count:
        raise SystemExit(f"only {len(running)}/{count} clusters reached Running within 600 s")
    times = sorted(running.values())
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times) + 0.5)) - 1)]
    return namespace, statistics.median(times), p95, times[-1]


def noop_reconcile(operator, namespace, name, runs):
    """Touch a label on an owned Service (which wakes the cluster up) and measure the reconcile."""
    wall, cpu, writes, moved = [], [], [], []
    helpers.wait_for(lambda: helpers.stable_resource_versions(namespace, settle=3), 60, "cluster did not settle")
    for i in range(runs):
        before_versions = helpers.resource_versions(namespace)
        recaps = len(operator.recaps(name, namespace))
        before_writes, before_cpu = api_writes(), cpu_seconds(operator.proc.pid)
        start = time.monotonic()
        helpers.kubectl("label", "service", f"{name}-pods", "-n", namespace, f"bench/touch={i}", "--overwrite")
        helpers.wait_for(lambda: len(operator.recaps(name, namespace)) > recaps, 60, "no reconcile after the touch",
                         interval=0.02)
        wall.append(time.monotonic() - start)
        cpu.append(cpu_seconds(operator.proc.pid) - before_cpu)
        after = delta(api_writes(), before_writes)
        # The touch itself is one PATCH of the Service: not the operator's.
        after[("PATCH", "services", "")] = after.get(("PATCH", "services", ""), 0) - 1
        writes.append(sum(v for v in after.values() if v > 0))
        changed = {k for k, v in helpers.resource_versions(namespace).items() if before_versions.get(k) != v}
        moved.append(sorted(changed - {f"services/{name}-pods"}))
        recap = operator.recaps(name, namespace)[-1]
        if recap[1] or recap[3]:
            print(f"  warning: no-op reconcile {i} reported changed={recap[1]} failed={recap[3]}")
    return statistics.median(wall), statistics.median(cpu), max(writes), moved


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", default="1,20")
    parser.add_argument("--noop-runs", type=int, default=5)
    args = parser.parse_args()

    helpers.start_control_plane()
    operator = helpers.Operator()
    operator.start()
    mem = PeakMemory(operator.proc.pid)
    mem.start()
    try:
        rows = []
        for count in (int(c) for c in args.clusters.split(",")):
            rows.append((count, *converge(operator, count, mem)))
        first_ns = rows[0][1]
        noop_wall, noop_cpu, noop_writes, moved = noop_reconcile(operator, first_ns, "pg0", args.noop_runs)
        empty_play = floor_empty_play()
        direct_apply = floor_direct_apply(first_ns, "pg0")
    finally:
        mem.stop.set()
        # The clusters go while the operator still runs: their finalizer needs it.
        for row in locals().get("rows", []):
            helpers.kubectl("delete", "namespace", row[1], "--wait=false", check=False)
        helpers.finish_deletions()
        operator.stop()

    print(f"\npgc reconcile benchmark ({os.cpu_count()} CPUs)\n")
    print("apply to Running (3 replicas per cluster):")
    for count, _, median, p95, last in rows:
        print(f"  {count:>3} clusters: median {median:6.2f} s   p95 {p95:6.2f} s   all Running after {last:6.2f} s")
    print(f"\nno-op reconcile of a Running cluster (median of {args.noop_runs}):")
    print(f"  wall {noop_wall:.2f} s (from the triggering change to the run's end)   CPU {noop_cpu:.2f} s")
    print(f"  API write requests per no-op reconcile: {noop_writes}   objects moved: "
          f"{'none' if not any(moved) else moved}")
    print("\nfloors measured in the same run:")
    print(f"  empty ansible-runner play:               {empty_play:.2f} s")
    print(f"  direct server-side apply of the same objects: {direct_apply:.3f} s")
    print(f"  no-op reconcile / empty play:            {noop_wall / empty_play:.2f}x")
    print(f"\noperator peak memory (with its ansible-runner children): {mem.peak:.0f} MiB")


if __name__ == "__main__":
    main()
