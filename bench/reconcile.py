"""Reconcile cost, convergence and memory of the operator on the local control plane, each figure
printed beside its floor (measured in the same run) or its target (DESIGN section 7). Prints
figures, asserts nothing about speed; exits non-zero, naming the step, when a step fails.

How each figure is measured:
- no-op reconcile: a label touched on an owned Service of a Running, settled cluster wakes it up;
  wall is from the touch's response to the run's PLAY RECAP in the operator's log, CPU is the
  operator's own plus that of its reaped ansible-runner trees (medians of --noop-runs). Floor: an
  empty role run by ansible-runner exactly as the operator ran that cluster's previous reconcile
  (its command line, environment, working directory, input directory and an event receiver on a
  Unix socket), only the role swapped.
- API write requests per no-op reconcile: apiserver_request_total of the write verbs on every
  resource the operator's ClusterRole may write (config/rbac/role.yaml) and every kind its roles
  render, less the touch itself; the largest of the runs.
- module processes per no-op reconcile: a separate operator, started first with
  ANSIBLE_KEEP_REMOTE_FILES=1 and ANSIBLE_REMOTE_TMP in a temporary directory, reconciles a
  cluster of its own; each module execution leaves one ansible-tmp-* directory there, named after
  its module. The timing runs use an operator without these settings: they keep every module's
  files on disk for the whole run and skip its cleanup.
- apply to Running: the clusters of each count (3 replicas each) applied at once to a new
  namespace; the time until each is first seen Running with every replica ready (kubectl watch);
  median, p95 and, past the 600 s deadline, how many were Running.
- reconciles until Running: the operator's finished runs of each cluster (PLAY RECAPs in its log)
  when it was first seen Running, plus the run then in flight if that run started before.
- peak memory: proportional set size (Pss of /proc/PID/smaps_rollup) of the operator and all its
  descendants, sampled every 0.25 s from the start of the timing operator to the end.
- memory with unrelated objects: the settled PSS before creating --unrelated-objects ConfigMaps and
  as many Pods (bound to the kwok nodes) in another namespace, and after three reconciles with
  them present; they are deleted afterwards.
- idle CPU: the operator's CPU time (with its children) over --idle-seconds, with every cluster
  Running and no run finished for 10 s before, as % of one core.
- floors kept from before: an empty play through ansible-runner, and a direct server-side apply,
  from one Python process, of what the operator applied for the cluster's objects (read back from
  their managedFields, with its field manager: it changes nothing).

The same figures go to bench/RESULTS.md, whose figures section each run overwrites.

    make bench [BENCH_ARGS="--clusters 1,20 --idle-seconds 60"]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import http.server
import json
import math
import os
import queue
import re
import resource
import shutil
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import helpers  # noqa: E402  (the end-to-end tests' kubectl, polling and operator process)

RESULTS = REPO / "bench" / "RESULTS.md"
FIGURES_HEADING = "## Figures of the last run"
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPLICAS = 3
DEADLINE_S = 600
FLOOR_RUNS = 5
MODULE_RUNS = 3
UNRELATED_RECONCILES = 3
WRITE_VERBS = helpers.WRITE_VERBS
# Every kind the roles render or change, counted even before the ClusterRole grants it; the
# ClusterRole's writable resources are added to these (operator_written_resources).
RENDERED_KINDS = {(kind, "") for kind in (
    "postgresclusters", "postgresbackups", "statefulsets", "services", "configmaps", "serviceaccounts", "roles",
    "rolebindings", "poddisruptionbudgets", "secrets", "events", "jobs", "cronjobs", "persistentvolumeclaims",
    "podmonitors", "prometheusrules", "networkpolicies", "deployments", "pods")} | {
    ("postgresclusters", "status"), ("postgresbackups", "status")}
# The targets of DESIGN section 7, shown beside the figures.
TARGET_NOOP_RATIO = 1.3
TARGET_PEAK_PSS_MIB = 400
TARGET_UNRELATED_RATIO = 1.10
TARGET_IDLE_PERCENT = 2.0
TARGET_100_CLUSTERS_S = 90
# Steps whose figures the table reports as missing when they fail.
STEP_MODULES = "module processes per no-op reconcile"
STEP_NOOP = "no-op reconciles"
STEP_FLOOR_ROLE = "floor: empty role as the runtime runs it"
STEP_FLOOR_PLAY = "floor: empty play"
STEP_FLOOR_APPLY = "floor: direct apply"
STEP_IDLE = "idle CPU"
STEP_UNRELATED = "memory with unrelated objects"


class StepFailed(RuntimeError):
    """A step of the bench failed; the message names it."""


# --- processes: CPU, memory, the operator's ansible-runner children -------------------------

def _proc_stat(pid):
    """The fields of /proc/PID/stat after the command name: [0] is field 3 (state), [1] ppid,
    [11:15] utime, stime, cutime, cstime, [19] starttime."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    """User+system CPU of ``pid`` plus its reaped children (the operator's ansible-runner runs end up there)."""
    utime, stime, cutime, cstime = (int(x) for x in _proc_stat(pid)[11:15])
    return (utime + stime + cutime + cstime) / CLK_TCK


def children_cpu_seconds():
    """User+system CPU of this process's reaped children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def started_since_boot(pid):
    return int(_proc_stat(pid)[19]) / CLK_TCK


def since_boot():
    """Now, on the clock of /proc/PID/stat's starttime."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def process_tree(root):
    """``root`` and all its live descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_proc_stat(entry)[1])
            except (OSError, IndexError, ValueError):
                continue  # the process ended while we looked
            children.setdefault(ppid, []).append(int(entry))
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def pss_kib(pid):
    """Proportional set size of one process: its private pages plus its share of the pages it shares
    (after fork, most of a Python child's pages are shared with its parent)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0  # a zombie maps nothing


def tree_pss_mib(root):
    """PSS of ``root`` and all its live descendants, in MiB; fails when ``root`` is gone."""
    total = pss_kib(root)
    for pid in process_tree(root)[1:]:
        try:
            total += pss_kib(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass  # the process ended while we looked
    return total / 1024


def settled_tree_pss_mib(root, seconds=5.0, interval=0.5):
    """Median of the tree's PSS sampled over ``seconds``."""
    samples = []
    for _ in range(max(1, int(seconds / interval))):
        samples.append(tree_pss_mib(root))
        time.sleep(interval)
    return statistics.median(samples)


class PeakPss(threading.Thread):
    """The largest PSS of a process tree seen while running, and the phase it was seen in."""

    def __init__(self, pid, interval=0.25):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak, self.peak_phase, self.phase = 0.0, "", "start"
        self.error = None
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                pss = tree_pss_mib(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                return  # the operator is gone
            except OSError as exc:
                self.error = f"reading the operator's PSS: {exc}"
                return
            if pss > self.peak:
                self.peak, self.peak_phase = pss, self.phase
            time.sleep(self.interval)


def _cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]


def runner_processes(root):
    """(pid, argv, input directory) of each ansible-runner under ``root``."""
    found = []
    for pid in process_tree(root)[1:]:
        try:
            argv = _cmdline(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        for i, arg in enumerate(argv[:-2]):
            if os.path.basename(arg) == "ansible-runner" and argv[i + 1] == "run":
                found.append((pid, argv, argv[i + 2]))
                break
    return found


def cluster_of_input_dir(path):
    """(namespace, name) of the runtime's input directory .../PostgresCluster/<namespace>/<name>."""
    parts = Path(path).parts
    return (parts[-2], parts[-1]) if len(parts) >= 3 and parts[-3] == "PostgresCluster" else None


def runs_in_flight(root):
    """When each cluster's ansible-runner now running under ``root`` started (seconds since boot)."""
    started = {}
    for pid, _, input_dir in runner_processes(root):
        cluster = cluster_of_input_dir(input_dir)
        if cluster:
            try:
                started[cluster] = started_since_boot(pid)
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return started


# --- the operator's log: its finished runs --------------------------------------------------

class FinishedRuns:
    """The operator's finished runs per PostgresCluster, read from its log as it grows: the runner's
    line at the end of each run, and the PLAY RECAP the runtime prints under a header naming the
    cluster (as Operator.recaps reads them) for the runs that were not requeued."""

    HEADER = re.compile(r"Ansible Task Status Event StdOut \([^,]+, Kind=PostgresCluster, ([^/\s]+)/([^)\s]+)\)")
    # Every run ends with one of these from the runner (a requeued run prints no PLAY RECAP header).
    RUN_END = re.compile(r'"logger":"runner","msg":"(?:Ansible-runner exited successfully|[^"]*)","job":"\d+",'
                         r'"name":"([^"]+)","namespace":"([^"]+)"(?:\}|,"error":"exit status)')

    def __init__(self, log_path):
        self.path = Path(log_path)
        self.offset, self.partial = 0, b""
        self.counts, self.recaps = Counter(), {}
        self._last = None
        self._lock = threading.Lock()

    def update(self):
        with self._lock:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
            self.offset += len(data)
            *lines, self.partial = (self.partial + data).split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                end = self.RUN_END.search(line)
                if end:
                    self.counts[(end.group(2), end.group(1))] += 1
                    continue
                header = self.HEADER.search(line)
                if header:
                    self._last = (header.group(2), header.group(1))  # (namespace, name)
                    continue
                recap = helpers.Operator.RECAP.search(line)
                if recap and self._last:
                    self.recaps[self._last] = tuple(int(x) for x in recap.groups())
                    self._last = None
        return self

    def count(self, namespace, name):
        return self.counts[(namespace, name)]

    def total(self):
        return sum(self.counts.values())

    def last_recap(self, namespace, name):
        """(ok, changed, unreachable, failed) of the cluster's last finished run."""
        return self.recaps.get((namespace, name))


def wait_for_next_run(runs, namespace, name, before, timeout=120):
    helpers.wait_for(lambda: runs.update().count(namespace, name) > before, timeout,
                     f"no finished run of {namespace}/{name} in the operator's log", interval=0.02)


def wait_until_quiet(operator, runs, quiet=10.0, timeout=180.0):
    """Wait until no run is in flight and none has finished for ``quiet`` seconds; False at the deadline."""
    seen = {"total": runs.update().total(), "since": time.monotonic()}

    def quiet_enough():
        total = runs.update().total()
        if total != seen["total"] or runner_processes(operator.proc.pid):
            seen.update(total=total, since=time.monotonic())
        return time.monotonic() - seen["since"] >= quiet

    try:
        return helpers.wait_for(quiet_enough, timeout, "the operator kept running reconciles")
    except AssertionError:
        print(f"    warning: the operator was still running reconciles after {timeout:.0f} s; "
              "the figures that follow include them")
        return False


# --- the API server -------------------------------------------------------------------------

def operator_written_resources():
    """(resource, subresource) of everything the operator writes: the kinds its roles render, and
    every resource its ClusterRole lets it write."""
    import yaml

    written = set(RENDERED_KINDS)
    for doc in yaml.safe_load_all((REPO / "config/rbac/role.yaml").read_text()):
        if not doc or doc.get("kind") != "ClusterRole":
            continue
        for rule in doc.get("rules", []):
            if {v.upper() for v in rule.get("verbs", [])} & (WRITE_VERBS | {"CREATE", "UPDATE", "*"}):
                written.update(tuple(r.partition("/")[::2]) for r in rule.get("resources", []))
    return written


def touch_owned_service(namespace, name):
    """Change a label on the cluster's owned Service, which wakes the cluster up; returns when the
    change was made (monotonic clock)."""
    helpers.kubectl("label", "service", f"{name}-pods", "-n", namespace, f"bench/touch={time.time_ns()}",
                    "--overwrite")
    return time.monotonic()


def is_touched_service(key, name):
    """Whether a resource_versions key ("services/NAME" or "Service/NAME") is the touched Service."""
    kind, _, object_name = key.partition("/")
    return kind.lower() in ("service", "services") and object_name == f"{name}-pods"


def reconcile_once(runs, namespace, name):
    before = runs.update().count(namespace, name)
    touch_owned_service(namespace, name)
    wait_for_next_run(runs, namespace, name, before)


def settle_cluster(namespace):
    helpers.wait_for(lambda: helpers.stable_resource_versions(namespace, settle=3), 90,
                     f"the objects of {namespace} kept changing")


# --- clusters -------------------------------------------------------------------------------

def create_namespace(hint):
    namespace = helpers.unique_name(hint)
    helpers.kubectl("create", "namespace", namespace)
    return namespace


def ensure_pod_capacity(pods):
    """Enough kwok nodes for ``pods`` more pods than are bound now: each node takes as many pods as
    its status allows (110 by default), and a pod with no room would keep its cluster Pending."""
    nodes = helpers.kubectl_json("get", "nodes")["items"]
    per_node = min(int((n["status"].get("allocatable") or {}).get("pods", 110)) for n in nodes)
    bound = sum(1 for p in helpers.kubectl_json("get", "pods", "-A")["items"] if p["spec"].get("nodeName"))
    needed = -(-(bound + pods) // per_node) + 1
    if needed > len(nodes):
        scaled = subprocess.run(["kwokctl", "scale", "node", "--name", helpers.hack("PGC_CLUSTER"),
                                 "--replicas", str(needed)],
                                # kwokctl finds the cluster under KWOK_WORKDIR (hack/lib.sh), not ~/.kwok.
                                env={**helpers.env(), "KWOK_WORKDIR": helpers.hack("KWOK_WORKDIR")},
                                capture_output=True, text=True)
        if scaled.returncode != 0:
            raise RuntimeError(f"kwokctl scale node --replicas {needed} failed: {scaled.stderr.strip()[-600:]}")
        helpers.wait_for(lambda: sum(1 for n in helpers.kubectl_json("get", "nodes")["items"]
                                     if any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in n["status"].get("conditions") or [])) >= needed,
                         120, f"{needed} kwok nodes did not become Ready")


def apply_clusters(namespace, count):
    docs = "\n---\n".join(json.dumps(helpers.postgres_cluster(f"pg{i}", replicas=REPLICAS)) for i in range(count))
    helpers.apply(docs, namespace)


class RunningWatch(threading.Thread):
    """When each PostgresCluster of a namespace was first seen Running with every replica ready,
    from one `kubectl get --watch` (a kubectl process per poll would take a good part of a core)."""

    COLUMNS = "custom-columns=NAME:.metadata.name,PHASE:.status.phase,READY:.status.readyReplicas"

    def __init__(self, namespace, replicas):
        super().__init__(daemon=True)
        self.namespace, self.replicas = namespace, replicas
        self.first_running = {}  # name -> (monotonic, seconds since boot)
        self.new = queue.Queue()
        self.error = None
        self._stopped = threading.Event()
        self._proc = None

    def run(self):
        restarts = 0
        while not self._stopped.is_set():
            self._proc = subprocess.Popen(
                ["kubectl", "get", "pgc", "-n", self.namespace, "--watch", "--no-headers", "-o", self.COLUMNS],
                env=helpers.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for line in self._proc.stdout:
                fields = line.split()
                if len(fields) == 3 and fields[1] == "Running" and fields[2] == str(self.replicas) \
                        and fields[0] not in self.first_running:
                    self.first_running[fields[0]] = (time.monotonic(), since_boot())
                    self.new.put(fields[0])
            self._proc.wait()
            if self._stopped.is_set():
                return
            restarts += 1
            if restarts > 3:
                self.error = f"kubectl get --watch keeps ending: {self._proc.stderr.read().strip()}"
                return
            time.sleep(1)

    def take_new(self):
        names = []
        while not self.new.empty():
            names.append(self.new.get())
        return names

    def stop_watching(self):
        self._stopped.set()
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait()


def runs_until_running(operator, runs, namespace, names, watch):
    """Reconciles each newly Running cluster took: its finished runs, plus the run in flight when it
    was first seen Running if that run had started before. The log is read before the processes:
    a run seen in flight has not finished in the count."""
    runs.update()
    in_flight = runs_in_flight(operator.proc.pid)
    counted = {}
    for name in names:
        started = in_flight.get((namespace, name))
        seen = watch.first_running[name][1]
        counted[name] = runs.count(namespace, name) + (1 if started is not None and started <= seen else 0)
    return counted


def converge(operator, runs, namespace, count, deadline=DEADLINE_S):
    """Apply ``count`` clusters at once; when each was first Running and in how many reconciles."""
    watch = RunningWatch(namespace, REPLICAS)
    watch.start()
    reconciles = {}
    try:
        ensure_pod_capacity(count * (REPLICAS + 1))
        start = time.monotonic()
        apply_clusters(namespace, count)
        while len(reconciles) < count and time.monotonic() - start < deadline:
            if watch.error:
                raise RuntimeError(watch.error)
            names = watch.take_new()
            if names:
                reconciles.update(runs_until_running(operator, runs, namespace, names, watch))
            time.sleep(0.2)
        names = watch.take_new()
        if names:
            reconciles.update(runs_until_running(operator, runs, namespace, names, watch))
    finally:
        watch.stop_watching()
    times = sorted(watch.first_running[name][0] - start for name in reconciles)
    return {"namespace": namespace, "count": count, "times": times, "reconciles": list(reconciles.values()),
            "deadline": deadline}


def print_convergence(result):
    times, count = result["times"], result["count"]
    if not times:
        print(f"    {count} clusters: none Running within {result['deadline']} s")
        return
    reached = (f"all Running after {times[-1]:.1f} s" if len(times) == count
               else f"{len(times)}/{count} Running at the {result['deadline']} s deadline")
    print(f"    {count} clusters: median {statistics.median(times):.1f} s, p95 {percentile(times, 95):.1f} s, "
          f"{reached}; reconciles until Running: median {statistics.median(result['reconciles']):g}, "
          f"max {max(result['reconciles'])}")


# --- no-op reconciles -----------------------------------------------------------------------

def measure_noop_reconciles(operator, runs, namespace, name, count):
    """Wall, CPU and API writes of ``count`` no-op reconciles of a settled Running cluster."""
    resources = operator_written_resources()
    settle_cluster(namespace)
    wall, cpu, writes, kinds, moved, overlapped, not_noop = [], [], [], Counter(), [], 0, []
    for i in range(count):
        versions = helpers.resource_versions(namespace)
        before_runs, before_total = runs.update().count(namespace, name), runs.total()
        before_writes, before_cpu = helpers.api_writes(resources), cpu_seconds(operator.proc.pid)
        touched = touch_owned_service(namespace, name)
        wait_for_next_run(runs, namespace, name, before_runs)
        wall.append(time.monotonic() - touched)
        cpu.append(cpu_seconds(operator.proc.pid) - before_cpu)
        overlapped += runs.update().total() - before_total - 1
        after = helpers.writes_since(before_writes, resources)
        after[("PATCH", "services", "")] = after.get(("PATCH", "services", ""), 0) - 1  # the touch
        after = {k: v for k, v in after.items() if v > 0}
        writes.append(sum(after.values()))
        kinds.update(after)
        changed = {k for k, v in helpers.resource_versions(namespace).items() if versions.get(k) != v}
        moved.append(sorted(k for k in changed if not is_touched_service(k, name)))
        _, changed_tasks, _, failed = runs.update().last_recap(namespace, name) or (0, 0, 0, 0)
        if changed_tasks or failed:
            not_noop.append(f"run {i}: changed={changed_tasks} failed={failed}")
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu), "walls": wall, "cpus": cpu,
            "writes": max(writes), "write_kinds": dict(kinds), "moved": moved, "overlapped": overlapped,
            "not_noop": not_noop, "runs": count}


def print_noop(noop):
    print(f"    wall {noop['wall']:.2f} s, CPU {noop['cpu']:.2f} s (medians of {noop['runs']}; walls "
          f"{', '.join(f'{w:.2f}' for w in noop['walls'])})")
    kinds = ", ".join(f"{verb} {res}{'/' + sub if sub else ''} x{n}" for (verb, res, sub), n
                      in sorted(noop["write_kinds"].items()))
    print(f"    API write requests: {noop['writes']} at most per run{f' ({kinds} in all)' if kinds else ''}; "
          f"objects moved: {'none' if not any(noop['moved']) else noop['moved']}")
    if noop["overlapped"]:
        print(f"    warning: {noop['overlapped']} runs of other clusters finished meanwhile; the CPU includes them")
    for line in noop["not_noop"]:
        print(f"    warning: a no-op reconcile reported {line}")


# --- module processes per no-op reconcile ---------------------------------------------------

def remote_tmp_dirs(remote_tmp):
    return {p for p in Path(remote_tmp).iterdir() if p.is_dir() and p.name.startswith("ansible-tmp-")}


def module_names(dirs):
    """The module each kept ansible-tmp-* directory ran (its AnsiballZ_<module>.py)."""
    names = Counter()
    for d in dirs:
        found = [p.stem[len("AnsiballZ_"):] for p in d.glob("AnsiballZ_*.py")]
        names.update(found or ["(no module file)"])
    return names


def measure_module_processes(remote_tmp, runs_count=MODULE_RUNS):
    """Module executions per no-op reconcile, from an operator that keeps each module's remote files."""
    operator = helpers.Operator()
    operator.start(extra_env={"ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": str(remote_tmp)})
    namespace = None
    try:
        runs = FinishedRuns(operator.log_path)
        namespace = create_namespace("bench-modules")
        apply_clusters(namespace, 1)
        helpers.wait_for_phase("pg0", namespace, "Running", ready=REPLICAS, timeout=300)
        settle_cluster(namespace)
        reconcile_once(runs, namespace, "pg0")  # the first run after settling may still have work
        per_run = []
        for _ in range(runs_count):
            before = remote_tmp_dirs(remote_tmp)
            reconcile_once(runs, namespace, "pg0")
            per_run.append(module_names(remote_tmp_dirs(remote_tmp) - before))
    finally:
        operator.stop()
        delete_bench_namespaces([namespace] if namespace else [])
    worst = max(per_run, key=lambda names: sum(names.values()))
    return {"per_run": [sum(n.values()) for n in per_run], "max": sum(worst.values()), "names": worst}


def format_modules(names):
    return ", ".join(f"{name} x{n}" for name, n in names.most_common())


# --- floors ---------------------------------------------------------------------------------

class RunnerInvocation:
    """How the operator ran ansible-runner for one reconcile: read from the live process."""

    def __init__(self, argv, env, cwd, input_dir):
        self.argv, self.env, self.cwd, self.input_dir = argv, env, cwd, input_dir


def _read_invocation(pid, argv, input_dir):
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(e.decode(errors="replace").partition("=")[::2] for e in f.read().split(b"\0") if b"=" in e)
    return RunnerInvocation(argv, env, os.readlink(f"/proc/{pid}/cwd"), input_dir)


def capture_runner_invocation(operator, runs, namespace, name):
    """Reconcile the cluster once and read the command line, environment and working directory of the
    ansible-runner the operator starts for it."""
    before = runs.update().count(namespace, name)
    touch_owned_service(namespace, name)
    captured, deadline = None, time.monotonic() + 60
    while captured is None and runs.update().count(namespace, name) == before and time.monotonic() < deadline:
        for pid, argv, input_dir in runner_processes(operator.proc.pid):
            if cluster_of_input_dir(input_dir) == (namespace, name):
                try:
                    captured = _read_invocation(pid, argv, input_dir)
                except (FileNotFoundError, ProcessLookupError):
                    continue
                break
        time.sleep(0.01)
    wait_for_next_run(runs, namespace, name, before)
    if captured is None:
        raise RuntimeError(f"did not see the operator's ansible-runner for {namespace}/{name} during a reconcile")
    return captured


class _EventHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.count_event()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class EventReceiver(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Accepts ansible-runner's events over a Unix socket, as the runtime's receiver does."""

    daemon_threads = True

    def __init__(self, socket_path):
        super().__init__(str(socket_path), _EventHandler)
        self.socket_path, self.events = str(socket_path), 0
        self._lock = threading.Lock()

    def count_event(self):
        with self._lock:
            self.events += 1

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        Path(self.socket_path).unlink(missing_ok=True)


def _replace_option(argv, option, value):
    if option not in argv:
        raise RuntimeError(f"the operator's ansible-runner command has no {option}: {' '.join(argv)}")
    argv = list(argv)
    argv[argv.index(option) + 1] = value
    return argv


def runtime_argv(invocation, input_dir, roles_path, role, ident):
    """The operator's ansible-runner command line with another input directory, role and ident."""
    argv = [input_dir if a == invocation.input_dir else a for a in invocation.argv]
    argv = _replace_option(argv, "--role", role)
    argv = _replace_option(argv, "--roles-path", roles_path)
    return _replace_option(argv, "-i", ident)


def copy_input_dir(source, target, socket_path):
    """The runtime's input directory of a cluster (extravars, envvars, settings, cmdline, inventory),
    with the event receiver's socket in place of the runtime's."""
    for part in ("env", "inventory"):
        shutil.copytree(Path(source, part), Path(target, part))
    Path(target, "project").mkdir()
    settings_path = Path(target, "env", "settings")
    settings = json.loads(settings_path.read_text())
    settings["runner_http_url"] = socket_path
    settings_path.write_text(json.dumps(settings))


def _run_timed(argv, **kwargs):
    """Run a command to its end; (wall, CPU of its process tree)."""
    cpu, start = children_cpu_seconds(), time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    wall, cpu = time.monotonic() - start, children_cpu_seconds() - cpu
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {proc.returncode}:\n"
                           f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return wall, cpu


def floor_runtime_empty_role(invocation, runs=FLOOR_RUNS):
    """An empty role run by ansible-runner as the operator runs the reconcile role: wall and CPU."""
    walls, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="pgc-bench-floor-") as tmp, \
            EventReceiver(Path(tmp, "events.sock")) as receiver:
        input_dir = Path(tmp, "runner")
        copy_input_dir(invocation.input_dir, input_dir, receiver.socket_path)
        Path(tmp, "roles", "empty", "tasks").mkdir(parents=True)
        Path(tmp, "roles", "empty", "tasks", "main.yml").write_text("---\n[]\n")
        for i in range(runs):
            argv = runtime_argv(invocation, str(input_dir), str(Path(tmp, "roles")) + "/", "empty", f"floor{i}")
            wall, cpu = _run_timed(argv, env=invocation.env, cwd=invocation.cwd)
            walls.append(wall)
            cpus.append(cpu)
        if not receiver.events:
            raise RuntimeError("the empty role's runs posted no events: they did not run as the operator's do")
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus)}


def floor_empty_play(runs=FLOOR_RUNS):
    """An empty play through plain ansible-runner: wall and CPU."""
    walls, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="pgc-bench-play-") as tmp:
        project = Path(tmp, "project")
        project.mkdir()
        (project / "empty.yml").write_text("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
        for _ in range(runs):
            wall, cpu = _run_timed(["ansible-runner", "run", tmp, "-p", "empty.yml", "--rotate-artifacts", "1", "-q"],
                                   env=helpers.env())
            walls.append(wall)
            cpus.append(cpu)
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus)}


def applied_fields(value, fields):
    """The part of ``value`` that a managedFields entry's fieldsV1 lists, with its live values: a
    field manager's applied configuration, rebuilt from the object."""
    children = {k: v for k, v in (fields or {}).items() if k != "."}
    if not children:
        return value
    if isinstance(value, dict):
        return {k[2:]: applied_fields(value[k[2:]], sub) for k, sub in children.items()
                if k.startswith("f:") and k[2:] in value}
    if not isinstance(value, list):
        return value
    picked = []
    for key, sub in children.items():
        form, _, body = key.partition(":")
        if form == "k":  # an item of a list keyed by its merge keys
            match = json.loads(body)
            item = next((i for i in value if isinstance(i, dict) and all(i.get(a) == b for a, b in match.items())),
                        None)
            if item is not None:
                picked.append({**match, **applied_fields(item, sub)})
        elif form == "v":  # an item of a set
            picked.append(json.loads(body))
        elif form == "i" and int(body) < len(value):
            picked.append(applied_fields(value[int(body)], sub))
    return picked


def _apply_entry(obj, manager):
    return next((m for m in obj["metadata"].get("managedFields", [])
                 if m.get("manager") == manager and m.get("operation") == "Apply" and not m.get("subresource")), None)


def operator_applied_objects(namespace, name):
    """(field manager, objects): what the operator server-side applied for the objects the cluster
    owns, read back from their managedFields, so that a direct apply of them changes nothing."""
    uid = helpers.kubectl_json("get", "pgc", name, "-n", namespace)["metadata"]["uid"]
    served = {r.split(".")[0]: r for r in helpers.kubectl("api-resources", "--namespaced=true", "-o", "name").split()}
    kinds = [served[r] for r, sub in sorted(RENDERED_KINDS)
             if not sub and r in served and r not in ("events", "pods", "postgresclusters", "postgresbackups")]
    # kubectl leaves managedFields out of its output unless asked.
    owned = [o for o in helpers.kubectl_json("get", ",".join(kinds), "-n", namespace, "--show-managed-fields")["items"]
             if any(ref.get("uid") == uid for ref in o["metadata"].get("ownerReferences") or [])]
    managers = Counter(m["manager"] for o in owned for m in o["metadata"].get("managedFields", [])
                       if m.get("operation") == "Apply" and not m.get("subresource"))
    if not managers:
        raise RuntimeError(f"no object owned by {namespace}/{name} was server-side applied: nothing to replay")
    manager = managers.most_common(1)[0][0]
    objects = []
    for obj in owned:
        entry = _apply_entry(obj, manager)
        if entry:
            applied = applied_fields(obj, entry["fieldsV1"])
            applied.update(apiVersion=obj["apiVersion"], kind=obj["kind"])
            applied.setdefault("metadata", {}).update(name=obj["metadata"]["name"], namespace=namespace)
            objects.append(applied)
    return manager, objects


def floor_direct_apply(namespace, name, runs=5):
    """Server-side apply, from one Python process, of what the operator applied for the cluster's
    objects, with its field manager: seconds for all of them (median of ``runs``)."""
    from kubernetes import config, dynamic
    from kubernetes.client import api_client

    manager, objects = operator_applied_objects(namespace, name)
    client = dynamic.DynamicClient(api_client.ApiClient(configuration=config.load_kube_config(
        config_file=helpers.kubeconfig(), persist_config=False) or None))
    resources = [client.resources.get(api_version=o["apiVersion"], kind=o["kind"]) for o in objects]
    times = []
    for _ in range(runs):
        start = time.monotonic()
        for res, obj in zip(resources, objects):
            res.server_side_apply(body=obj, namespace=namespace, field_manager=manager, force_conflicts=True)
        times.append(time.monotonic() - start)
    print(f"    {len(objects)} objects ({', '.join(sorted(Counter(o['kind'] for o in objects)))}), "
          f"field manager {manager}")
    return statistics.median(times)


# --- memory with unrelated objects, idle CPU ------------------------------------------------

def kwok_nodes():
    nodes = helpers.kubectl_json("get", "nodes")["items"]
    names = [n["metadata"]["name"] for n in nodes
             if (n["metadata"].get("annotations") or {}).get("kwok.x-k8s.io/node") == "fake"]
    names = names or [n["metadata"]["name"] for n in nodes]
    if not names:
        raise RuntimeError("the local control plane has no node to bind the unrelated Pods to")
    return names


def unrelated_objects(count, nodes):
    """``count`` ConfigMaps (1 KiB of data each) and ``count`` Pods bound to the kwok nodes."""
    label = {"app.kubernetes.io/name": "bench-unrelated"}
    for i in range(count):
        yield {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"unrelated-{i}", "labels": label},
               "data": {"payload": "x" * 1024}}
    for i in range(count):
        yield {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"unrelated-{i}", "labels": label},
               "spec": {"nodeName": nodes[i % len(nodes)], "automountServiceAccountToken": False,
                        "containers": [{"name": "main", "image": "registry.invalid/unrelated:1"}],
                        "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}]}}


def create_unrelated_objects(namespace, count, batch=250, workers=8):
    """Create them with concurrent server-side applies of multi-document manifests; returns seconds."""
    docs = [json.dumps(o) for o in unrelated_objects(count, kwok_nodes())]
    # Pods are refused until the namespace's default ServiceAccount exists.
    helpers.wait_for(lambda: helpers.get("serviceaccount", "default", namespace), 60,
                     f"no default ServiceAccount in {namespace}")
    manifests = ["\n---\n".join(docs[i:i + batch]) for i in range(0, len(docs), batch)]
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda manifest: helpers.apply(manifest, namespace), manifests))
    return time.monotonic() - start


def measure_memory_with_unrelated_objects(operator, runs, namespace, name, count):
    """Settled PSS of the operator tree before the unrelated objects exist and after reconciles with them."""
    wait_until_quiet(operator, runs, timeout=60)
    before = settled_tree_pss_mib(operator.proc.pid)
    other = create_namespace("bench-unrelated")
    try:
        seconds = create_unrelated_objects(other, count)
        print(f"    created {count} ConfigMaps and {count} Pods in {other} in {seconds:.0f} s")
        for _ in range(UNRELATED_RECONCILES):
            reconcile_once(runs, namespace, name)
        wait_until_quiet(operator, runs, quiet=5, timeout=60)
        after = settled_tree_pss_mib(operator.proc.pid)
    finally:
        helpers.kubectl("delete", "namespace", other, "--wait=false", check=False)
    return {"before": before, "after": after, "objects": count}


def measure_idle_cpu(operator, runs, seconds, clusters):
    """The operator's CPU (with its children) over ``seconds`` with every cluster idle, % of one core;
    and the cluster metrics server's beside it."""
    settled = wait_until_quiet(operator, runs, timeout=60)
    before_runs = runs.update().total()
    metrics_pid = operator.metrics_proc.pid if operator.metrics_proc else None
    start, cpu = time.monotonic(), cpu_seconds(operator.proc.pid)
    metrics_cpu = cpu_seconds(metrics_pid) if metrics_pid else None
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    percent = 100 * (cpu_seconds(operator.proc.pid) - cpu) / elapsed
    metrics_percent = 100 * (cpu_seconds(metrics_pid) - metrics_cpu) / elapsed if metrics_pid else None
    return {"percent": percent, "seconds": elapsed, "runs": runs.update().total() - before_runs,
            "metrics_percent": metrics_percent, "clusters": clusters, "settled": settled}


# --- clean-up -------------------------------------------------------------------------------

def delete_bench_namespaces(namespaces):
    """Delete the bench's namespaces once the operator has stopped. The cleanup role's work is not
    measured here and would take minutes for a hundred clusters: their finalizer is removed, and the
    namespace's deletion takes every object with it."""
    def strip(namespace, name):
        helpers.kubectl("patch", "pgc", name, "-n", namespace, "--type=merge", "-p",
                        '{"metadata":{"finalizers":null}}', check=False)

    def clusters(namespace):
        return helpers.kubectl("get", "pgc", "-n", namespace, "-o", "jsonpath={.items[*].metadata.name}").split()

    for namespace in namespaces:
        names = clusters(namespace)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(strip, [namespace] * len(names), names))
        helpers.kubectl("delete", "namespace", namespace, "--wait=false")
    for namespace in namespaces:
        helpers.wait_for(lambda: not clusters(namespace), 60, f"PostgresClusters of {namespace} not deleted")


# --- report ---------------------------------------------------------------------------------

def percentile(values, q):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def _ratio(value, floor):
    return f"{value / floor:.2f}x" if floor else "n/a"


def _missing(failures, step):
    return f"not measured ({'step failed' if step in failures else 'step not run'}: {step})"


def noop_rows(fig, failures):
    noop, floor = fig.get("noop"), fig.get("floor_role")
    rows = []
    for key, label in (("wall", "no-op reconcile, wall"), ("cpu", "no-op reconcile, CPU")):
        if not noop:
            measured = _missing(failures, STEP_NOOP)
        else:
            measured = f"{noop[key]:.2f} s" + (f" = {_ratio(noop[key], floor[key])} floor" if floor else "")
        floor_text = f"{floor[key]:.2f} s" if floor else _missing(failures, STEP_FLOOR_ROLE)
        rows.append((label, measured, f"floor {floor_text}; target <= {TARGET_NOOP_RATIO}x"))
    rows.append(("API write requests per no-op reconcile",
                 str(noop["writes"]) if noop else _missing(failures, STEP_NOOP), "target 0"))
    modules = fig.get("modules")
    if not modules:
        measured = _missing(failures, STEP_MODULES)
    else:
        measured = str(modules["max"]) + (f" ({format_modules(modules['names'])})" if modules["max"] else "")
    rows.append(("module processes per no-op reconcile", measured, "target 0"))
    return rows


def convergence_rows(fig, failures):
    rows, reconciles = [], []
    for result in fig.get("converge", []):
        count, times = result["count"], result["times"]
        reconciles.extend(result["reconciles"])
        if not times:
            measured = f"none Running at the {result['deadline']} s deadline"
        else:
            measured = f"median {statistics.median(times):.1f} s, p95 {percentile(times, 95):.1f} s"
            measured += (f", all after {times[-1]:.1f} s" if len(times) == count
                         else f"; {len(times)}/{count} Running at the {result['deadline']} s deadline")
        target = f"target: all within {TARGET_100_CLUSTERS_S} s on 2 cores" if count >= 100 else "-"
        rows.append((f"apply to Running, {count} cluster{'s' if count > 1 else ''}", measured, target))
    for count in fig.get("converge_failed", []):
        rows.append((f"apply to Running, {count} clusters", _missing(failures, step_apply(count)), "-"))
    rows.append(("reconciles per cluster until Running",
                 f"median {statistics.median(reconciles):g}, max {max(reconciles)}" if reconciles
                 else "not measured (no cluster reached Running)", "target: few"))
    return rows


def memory_rows(fig, failures):
    peak, unrelated, n = fig.get("peak_pss"), fig.get("unrelated"), fig["unrelated_objects"]
    rows = [("operator peak memory (PSS, with children)",
             f"{peak[0]:.0f} MiB (during {peak[1]})" if peak
             else f"not measured ({fig.get('peak_error', 'the timing operator did not start')})",
             f"target <= {TARGET_PEAK_PSS_MIB} MiB")]
    if not unrelated:
        measured = _missing(failures, STEP_UNRELATED)
    else:
        measured = (f"{unrelated['before']:.0f} -> {unrelated['after']:.0f} MiB = "
                    f"{_ratio(unrelated['after'], unrelated['before'])}")
    rows.append((f"PSS with {n:,} ConfigMaps + {n:,} Pods elsewhere", measured,
                 f"target <= {TARGET_UNRELATED_RATIO:.2f}x"))
    return rows


def idle_row(fig, failures):
    idle = fig.get("idle")
    if not idle:
        return ("operator CPU, clusters idle", _missing(failures, STEP_IDLE), f"target < {TARGET_IDLE_PERCENT:g} %")
    measured = f"{idle['percent']:.2f} % of a core over {idle['seconds']:.0f} s, {idle['clusters']} clusters"
    measured += f", {idle['runs']} runs" if idle["runs"] else ""
    measured += "" if idle["settled"] else ", begun while runs were still going"
    if idle["metrics_percent"] is not None:
        measured += f" (metrics server beside it: {idle['metrics_percent']:.2f} %)"
    return ("operator CPU, clusters idle", measured, f"target < {TARGET_IDLE_PERCENT:g} %")


def floor_rows(fig, failures):
    rows = []
    for key, label, step in (("floor_role", "floor: empty role as the runtime runs it", STEP_FLOOR_ROLE),
                             ("floor_play", "floor: empty play through ansible-runner", STEP_FLOOR_PLAY)):
        value = fig.get(key)
        rows.append((label, f"{value['wall']:.2f} s wall, {value['cpu']:.2f} s CPU" if value
                     else _missing(failures, step), "-"))
    direct = fig.get("floor_apply")
    rows.append(("floor: direct server-side apply of the objects",
                 f"{direct:.3f} s" if direct is not None else _missing(failures, STEP_FLOOR_APPLY), "-"))
    return rows


def table_rows(fig, failures):
    """(figure, measured, floor or target) for every figure, in the order of DESIGN section 7."""
    return [*noop_rows(fig, failures), *convergence_rows(fig, failures), *memory_rows(fig, failures),
            idle_row(fig, failures), *floor_rows(fig, failures)]


def text_table(rows):
    header = ("figure", "measured", "floor / target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows):
    lines = ["| Figure | Measured | Floor / target |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def run_description(args):
    def git(*a):
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout

    # The first two columns of each line are the index and work tree states, then a space and the path.
    changed = sorted({line[3:].split("/")[0] for line in git("status", "--porcelain").splitlines()} - {"bench"})
    tree = f" + uncommitted changes in {', '.join(changed)}" if changed else ""
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{date}, commit {git('rev-parse', '--short', 'HEAD').strip()}{tree}, {os.cpu_count()} CPUs; "
            f"--clusters {args.clusters} --noop-runs {args.noop_runs} --idle-seconds {args.idle_seconds:g} "
            f"--unrelated-objects {args.unrelated_objects}")


def write_results(rows, description, failures, path=RESULTS):
    """Overwrite the figures section of bench/RESULTS.md, keeping the text above it."""
    text = path.read_text() if path.exists() else "# Reconcile benchmark\n\n"
    head = text.split(FIGURES_HEADING, 1)[0].rstrip() + "\n\n"
    block = f"{FIGURES_HEADING}\n\n{description}\n\n{markdown_table(rows)}\n"
    if failures:
        block += "\nFailed steps: " + "; ".join(f"{name} ({error})" for name, error in failures.items()) + "\n"
    path.write_text(head + block)


# --- the run ---------------------------------------------------------------------------------

def step_apply(count):
    return f"apply {count} clusters"


class Bench:
    """The figures of one run, and its failed steps. A step's failure is printed at once; the other
    steps go on where they can, and the run fails at the end naming every failed step."""

    def __init__(self, args):
        self.args = args
        self.figures = {"unrelated_objects": args.unrelated_objects}
        self.failures = {}
        self.peak = None

    def step(self, name, fn, *args, required=False):
        print(f"\n==> {name}", flush=True)
        if self.peak:
            self.peak.phase = name
        start = time.monotonic()
        try:
            result = fn(*args)
        except Exception as exc:
            self.failures[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"!!! step '{name}' failed after {time.monotonic() - start:.0f} s:\n{traceback.format_exc()}",
                  file=sys.stderr, flush=True)
            if required:
                raise StepFailed(f"bench step '{name}' failed: {exc}") from exc
            return None
        print(f"    done in {time.monotonic() - start:.0f} s", flush=True)
        return result

    def keep(self, key, value):
        if value is not None:
            self.figures[key] = value
        return value


def measure_modules_step():
    with tempfile.TemporaryDirectory(prefix="pgc-bench-remote-tmp-") as remote_tmp:
        return measure_module_processes(remote_tmp)


def run_module_phase(bench):
    modules = bench.keep("modules", bench.step(STEP_MODULES, measure_modules_step))
    if modules:
        print(f"    per run: {modules['per_run']}; the most: {modules['max']} ({format_modules(modules['names'])})")


def converge_in_new_namespace(operator, runs, namespaces, count):
    """converge() in a namespace of its own, added to ``namespaces`` (deleted at the end) first."""
    namespaces.append(create_namespace(f"bench-{count}"))
    return converge(operator, runs, namespaces[-1], count)


def run_convergence(bench, operator, runs, namespaces):
    for count in bench.args.counts:
        result = bench.step(step_apply(count), converge_in_new_namespace, operator, runs, namespaces, count,
                            required=count == bench.args.counts[0])
        if result:
            bench.figures.setdefault("converge", []).append(result)
            print_convergence(result)
        else:
            bench.figures.setdefault("converge_failed", []).append(count)


def run_noop_and_floors(bench, operator, runs, namespace):
    invocation = bench.step("capture the runtime's ansible-runner command", capture_runner_invocation,
                            operator, runs, namespace, "pg0")
    noop = bench.keep("noop", bench.step(STEP_NOOP, measure_noop_reconciles, operator, runs, namespace, "pg0",
                                         bench.args.noop_runs))
    if noop:
        print_noop(noop)
    if invocation:
        print(f"    the operator ran: {' '.join(invocation.argv)}")
        floor = bench.keep("floor_role", bench.step(STEP_FLOOR_ROLE, floor_runtime_empty_role, invocation))
        if floor:
            print(f"    wall {floor['wall']:.2f} s, CPU {floor['cpu']:.2f} s")
    floor = bench.keep("floor_play", bench.step(STEP_FLOOR_PLAY, floor_empty_play))
    if floor:
        print(f"    wall {floor['wall']:.2f} s, CPU {floor['cpu']:.2f} s")
    direct = bench.keep("floor_apply", bench.step(STEP_FLOOR_APPLY, floor_direct_apply, namespace, "pg0"))
    if direct is not None:
        print(f"    {direct:.3f} s")


def run_idle_and_memory(bench, operator, runs, namespace):
    clusters = sum(len(r["times"]) for r in bench.figures.get("converge", []))
    idle = bench.keep("idle", bench.step(STEP_IDLE, measure_idle_cpu, operator, runs, bench.args.idle_seconds,
                                         clusters))
    if idle:
        print(f"    {idle['percent']:.2f} % of a core over {idle['seconds']:.0f} s; {idle['runs']} runs finished")
    unrelated = bench.keep("unrelated", bench.step(STEP_UNRELATED, measure_memory_with_unrelated_objects,
                                                   operator, runs, namespace, "pg0", bench.args.unrelated_objects))
    if unrelated:
        print(f"    PSS {unrelated['before']:.0f} MiB before, {unrelated['after']:.0f} MiB after")


def run_timing_phase(bench):
    """The operator without the module-counting settings: convergence, no-op reconciles, floors,
    idle CPU and memory; its clusters are deleted at the end, whatever happened."""
    operator, namespaces = helpers.Operator(), []
    try:
        bench.step("start the timing operator", operator.start, required=True)
        runs = FinishedRuns(operator.log_path)
        bench.peak = PeakPss(operator.proc.pid)
        bench.peak.start()
        run_convergence(bench, operator, runs, namespaces)
        first = bench.figures["converge"][0]["namespace"]
        bench.step("let the clusters settle", wait_until_quiet, operator, runs, 10, 180)
        run_noop_and_floors(bench, operator, runs, first)
        run_idle_and_memory(bench, operator, runs, first)
    finally:
        if bench.peak:
            bench.peak.stop.set()
            bench.peak.join(timeout=5)
            bench.keep("peak_pss", (bench.peak.peak, bench.peak.peak_phase) if bench.peak.peak else None)
            bench.figures["peak_error"] = bench.peak.error or "no sample"
        operator.stop()
        bench.step("delete the bench's clusters", delete_bench_namespaces, namespaces)


def report(bench):
    rows = table_rows(bench.figures, bench.failures)
    description = run_description(bench.args)
    print(f"\npgc reconcile benchmark: {description}\n")
    print(text_table(rows))
    write_results(rows, description, bench.failures)
    print(f"\n(also written to {RESULTS.relative_to(REPO)})")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", default="1,20,100",
                        help="cluster counts to apply at once, one namespace each (default: 1,20,100); "
                             "the no-op and memory steps use the first count's pg0")
    parser.add_argument("--noop-runs", type=int, default=5, help="no-op reconciles to time (default: 5)")
    parser.add_argument("--idle-seconds", type=float, default=300,
                        help="how long to measure the operator's CPU with every cluster idle (default: 300)")
    parser.add_argument("--unrelated-objects", type=int, default=5000,
                        help="ConfigMaps, and as many Pods, created in another namespace (default: 5000)")
    args = parser.parse_args()
    try:
        args.counts = [int(c) for c in args.clusters.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--clusters takes counts separated by commas, not {args.clusters!r}")
    if not args.counts or min(args.counts) < 1 or args.noop_runs < 1 or args.unrelated_objects < 1:
        parser.error("--clusters needs positive counts; --noop-runs and --unrelated-objects at least 1")
    return args


def main():
    bench = Bench(parse_args())
    bench.step("start the local control plane", helpers.start_control_plane, required=True)
    try:
        run_module_phase(bench)
        run_timing_phase(bench)
    finally:
        report(bench)
    if bench.failures:
        raise StepFailed("bench steps failed: " + "; ".join(f"{k} ({v})" for k, v in bench.failures.items()))


if __name__ == "__main__":
    main()
