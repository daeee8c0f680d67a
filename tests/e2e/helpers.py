"""Domain helpers of the end-to-end tests: kubectl, polling with deadlines, the operator process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack"


def _hack_env(name):
    out = subprocess.run(["bash", "-c", f". {HACK}/lib.sh && echo ${name}"], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


_ENV = {}


def hack(name):
    """A setting of hack/lib.sh (PGC_BIN, PGC_KUBECONFIG, PATH, ...)."""
    if name not in _ENV:
        _ENV[name] = _hack_env(name)
    return _ENV[name]


def kubeconfig():
    return hack("PGC_KUBECONFIG")


def env():
    e = dict(os.environ)
    e["PATH"] = hack("PATH")
    e["KUBECONFIG"] = kubeconfig()
    return e


def collections_path():
    """A collections path in which the checkout resolves as postgres.cluster (hack/collection-link.sh)."""
    return subprocess.run([str(HACK / "collection-link.sh")], check=True, capture_output=True, text=True).stdout.strip()


def run_playbook(name, *args):
    """Run playbooks/<name>.yml by hand, as a person would, with the admin kubeconfig; returns its output."""
    proc = playbook_process(name, *args)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def playbook_process(name, *args, timeout=900):
    """Run playbooks/<name>.yml as run_playbook does; returns the finished process, failed or not
    (killed after ``timeout`` seconds, so that a failed test leaves no playbook behind)."""
    e = env()
    e.update({"ANSIBLE_COLLECTIONS_PATH": collections_path(), "ANSIBLE_NOCOLOR": "1",
              "K8S_AUTH_KUBECONFIG": e["KUBECONFIG"]})
    return subprocess.run(["ansible-playbook", str(REPO / "playbooks" / f"{name}.yml"), *args], env=e,
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def operator_kubeconfig():
    """Install the operator's namespace, ServiceAccount and RBAC (config/), and return a kubeconfig
    that acts as that ServiceAccount."""
    return subprocess.run([str(HACK / "operator-kubeconfig.sh")], check=True, capture_output=True, text=True,
                          env=env()).stdout.strip()


def start_control_plane():
    proc = subprocess.run([str(HACK / "cluster-up.sh")], env=env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("the local control plane did not start:\n" + proc.stdout + proc.stderr)


def kubectl(*args, check=True, input=None):
    proc = subprocess.run(["kubectl", *args], env=env(), capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout if check else proc.stdout + proc.stderr


def kubectl_json(*args):
    return json.loads(kubectl(*args, "-o", "json"))


def get(kind, name, namespace):
    """The object, or None when it does not exist."""
    proc = subprocess.run(["kubectl", "get", kind, name, "-n", namespace, "-o", "json"], env=env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        if "NotFound" in proc.stderr:
            return None
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout)


def apply(manifest, namespace, check=True):
    """Apply a manifest (a dict or YAML text); returns kubectl's output and error text."""
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    proc = subprocess.run(["kubectl", "apply", "--server-side", "--field-manager=e2e", "-n", namespace, "-f", "-"],
                          env=env(), capture_output=True, text=True, input=text)
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl apply failed: {proc.stderr.strip()}")
    return proc


def postgres_cluster(name, **spec):
    return {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster",
            "metadata": {"name": name}, "spec": spec}


def wait_for(predicate, timeout, message, interval=0.5):
    """Poll ``predicate`` until it returns a truthy value; fail with ``message`` at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{message} (within {timeout}s; last seen: {last!r})")


def wait_for_phase(name, namespace, phase, ready=None, timeout=90):
    def check():
        obj = get("pgc", name, namespace) or {}
        status = obj.get("status") or {}
        ok = status.get("phase") == phase and (ready is None or status.get("readyReplicas") == ready)
        return obj if ok else None
    return wait_for(check, timeout, f"PostgresCluster {namespace}/{name} did not reach {phase} with {ready} ready")


def unique_name(hint):
    base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:5]}"


# Every kind the operator applies, and the Secrets it creates; Patroni's own ConfigMaps (the leader
# lock renewed every loop) are not the operator's and are left out.
MANAGED_KINDS = ("postgresclusters", "statefulsets", "services", "configmaps", "serviceaccounts", "roles",
                 "rolebindings", "poddisruptionbudgets", "cronjobs", "deployments", "secrets",
                 "persistentvolumeclaims", "networkpolicies")
MONITORING_KINDS = ("podmonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com")
PATRONI_CONFIGMAPS = re.compile(r"-(leader|config|failover|sync)$")


def resource_versions(namespace):
    """resourceVersion of every object the operator manages in ``namespace``, by kind/name."""
    served = kubectl("api-resources", "--api-group=monitoring.coreos.com", "-o", "name", check=False).split()
    kinds = MANAGED_KINDS + tuple(k for k in MONITORING_KINDS if k in served)
    versions = {}
    for item in kubectl_json("get", ",".join(kinds), "-n", namespace)["items"]:
        kind, name = item["kind"], item["metadata"]["name"]
        if kind == "ConfigMap" and (PATRONI_CONFIGMAPS.search(name) or name == "kube-root-ca.crt"):
            continue
        if kind == "Secret" and item.get("type") == "kubernetes.io/service-account-token":
            continue
        versions[f"{kind}/{name}"] = item["metadata"]["resourceVersion"]
    return versions


WRITE_VERBS = frozenset(("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"))


def api_writes(resources=None):
    """Write requests the API server has served so far, by (verb, resource, subresource), from its own
    request counters: on ``resources`` ((resource, subresource) pairs), else on every subresource of
    the kinds the operator writes."""
    kinds = {k.split(".")[0] for k in MANAGED_KINDS + MONITORING_KINDS} | {"events", "jobs"}
    counts = {}
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
        key = (labels.get("verb"), labels.get("resource"), labels.get("subresource", ""))
        if key[0] in WRITE_VERBS and (key[1:] in resources if resources is not None else key[1] in kinds):
            counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def wait_for_namespaces_gone(timeout=180):
    """Until no namespace is Terminating: their deletion writes, which would be counted as ours."""
    return wait_for(lambda: not [n for n in kubectl_json("get", "namespaces")["items"]
                                 if n["status"].get("phase") == "Terminating"], timeout,
                    "namespaces stayed Terminating")


def writes_since(before, resources=None):
    """The write requests counted by api_writes(resources) since ``before``."""
    return {k: int(v - before.get(k, 0)) for k, v in api_writes(resources).items() if v - before.get(k, 0) > 0}


def stable_resource_versions(namespace, settle=3, timeout=60):
    """resource_versions, once they stayed the same for ``settle`` seconds; fails after ``timeout``."""
    seen = {"versions": resource_versions(namespace), "since": time.monotonic()}

    def settled():
        now = resource_versions(namespace)
        if now != seen["versions"]:
            seen.update(versions=now, since=time.monotonic())
        # A tuple: settled on no object at all is still settled.
        return (seen["versions"],) if time.monotonic() - seen["since"] >= settle else None
    return wait_for(settled, timeout, f"objects in {namespace} kept changing")[0]


def finish_deletions(timeout=120):
    """Wait while the running operator finishes the PostgresClusters being deleted (their finalizer),
    so that no namespace of the tests stays Terminating once the operator is gone; any left at the
    deadline lose the finalizer, and the failure says so."""
    def pending():
        items = kubectl_json("get", "pgc", "-A")["items"]
        return [i for i in items if i["metadata"].get("deletionTimestamp")]
    deadline = time.monotonic() + timeout
    while pending() and time.monotonic() < deadline:
        time.sleep(1)
    left = pending()
    for item in left:
        kubectl("patch", "pgc", item["metadata"]["name"], "-n", item["metadata"]["namespace"], "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False)
    return [f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in left]


class Operator:
    """The real ansible-operator as a subprocess, logging to a file, and beside it the per-cluster
    metrics server (metrics/cluster_metrics.py) on 127.0.0.1:8686 with the same kubeconfig, as in the
    operator's pod."""

    RECAP = re.compile(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
    METRICS_ADDRESS = "127.0.0.1:8686"
    # The Lease of config/manager's --leader-election-id, in the operator's namespace.
    LEASE = ("pgc-operator", "pgc-system")

    def __init__(self, name="e2e-operator", health_port=6789, metrics_port=8443, leader_elect=False,
                 cluster_metrics=True, wrapper=()):
        """One operator process. A second one beside it needs other health probe and metrics ports,
        ``leader_elect`` (the Deployment's --leader-elect), no second metrics server, and a network
        namespace of its own (``wrapper``, the command it runs under): the runtime serves its own API
        on localhost:5050, and its playbooks reach its proxy at localhost:8888 whatever --proxy-port
        says (ansible-operator v1.42 writes that address into their kubeconfig)."""
        self.name = name
        self.wrapper = list(wrapper)
        self.log_path = Path(hack("PGC_RUN")) / f"{name}.log"
        self.metrics_log_path = Path(hack("PGC_RUN")) / "e2e-cluster-metrics.log"
        self.health_port, self.metrics_port = health_port, metrics_port
        self.leader_elect = leader_elect
        self.cluster_metrics = cluster_metrics
        self.proc = None
        self.metrics_proc = None

    def start(self, extra_env=None):
        """Start it; ``extra_env`` adds to (or overrides) the operator's environment."""
        # The operator acts as its ServiceAccount with config/rbac's ClusterRole: every test also checks
        # that the permissions users deploy are enough.
        e = env()
        kubeconfig = operator_kubeconfig()
        e.update({"KUBECONFIG": kubeconfig, "PGC_API_KUBECONFIG": kubeconfig, "ANSIBLE_COLLECTIONS_PATH": collections_path(),
                  "ANSIBLE_GATHERING": "explicit", "ANSIBLE_NOCOLOR": "1"})
        e.update(extra_env or {})
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        election = (["--leader-elect", f"--leader-election-id={self.LEASE[0]}",
                     f"--leader-election-namespace={self.LEASE[1]}"] if self.leader_elect else ["--leader-elect=false"])
        self.proc = subprocess.Popen(
            [*self.wrapper, "ansible-operator", "run", "--watches-file", str(REPO / "watches.yaml"),
             "--health-probe-bind-address", f"127.0.0.1:{self.health_port}",
             "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}",
             "--max-concurrent-reconciles", os.environ.get("PGC_MAX_CONCURRENT_RECONCILES", "2"), *election],
            cwd=REPO, env=e, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(self._ready, 30, "ansible-operator did not become ready")
            if self.cluster_metrics:
                self._start_metrics(e)
        except BaseException:
            self.stop()
            raise

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("ansible-operator exited:\n" + self.log_tail(50))
        return subprocess.run(["curl", "-fsS", f"http://127.0.0.1:{self.health_port}/readyz"],
                              capture_output=True).returncode == 0

    def _start_metrics(self, e):
        self._metrics_log = open(self.metrics_log_path, "w")
        self.metrics_proc = subprocess.Popen(
            ["python3", str(REPO / "metrics" / "cluster_metrics.py"), "--listen", self.METRICS_ADDRESS],
            cwd=REPO, env=e, stdout=self._metrics_log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._metrics_ready, 20, "the cluster metrics server did not answer")

    def _metrics_ready(self):
        if self.metrics_proc.poll() is not None:
            raise RuntimeError("the cluster metrics server exited:\n" + self.metrics_log_tail(30))
        return subprocess.run(["curl", "-fsS", f"http://{self.METRICS_ADDRESS}/healthz"],
                              capture_output=True).returncode == 0

    @staticmethod
    def _terminate(proc, timeout):
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop(self):
        self._terminate(self.metrics_proc, 10)
        if self.metrics_proc:
            self._metrics_log.close()
            self.metrics_proc = None
        self._terminate(self.proc, 20)
        if self.proc:
            self._log.close()

    def restart(self):
        self.stop()
        self.start()

    def kill(self):
        """SIGKILL the operator and every process under it at once, as the end of its container would:
        the reconciles under way too (ansible-runner and ansible-playbook run in sessions of their own,
        out of the operator's process group). The cluster metrics server is stopped afterwards."""
        import psutil

        root = psutil.Process(self.proc.pid)
        frozen = {}
        # Frozen first, so that no process forks a child that would outlive the kill.
        while True:
            found = [p for p in [root, *root.children(recursive=True)] if p.pid not in frozen]
            if not found:
                break
            for p in found:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.suspend()
                frozen[p.pid] = p
        for p in frozen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        self.proc.wait(10)
        psutil.wait_procs(list(frozen.values()), timeout=10)
        self.stop()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines):
        return "\n".join(self.log().splitlines()[-lines:])

    def metrics_log_tail(self, lines):
        return "\n".join(self.metrics_log_path.read_text(errors="replace").splitlines()[-lines:])

    def scrape(self):
        """The per-cluster metrics text, as Prometheus would get it."""
        import urllib.request

        with urllib.request.urlopen(f"http://{self.METRICS_ADDRESS}/metrics", timeout=10) as resp:
            return resp.read().decode()

    def recaps(self, name, namespace):
        """The PLAY RECAP counts (ok, changed, unreachable, failed) of finished runs for one cluster."""
        found = []
        marker = f"Kind=PostgresCluster, {name}/{namespace})"
        chunks = self.log().split("----- ")
        for i, chunk in enumerate(chunks):
            if marker in chunk:
                m = self.RECAP.search(chunks[i + 1] if i + 1 < len(chunks) else chunk) or self.RECAP.search(chunk)
                if m:
                    found.append(tuple(int(x) for x in m.groups()))
        return found


@contextlib.contextmanager
def running_operator(**options):
    """The operator (``options``: Operator's), started; on the way out, the clusters being deleted are
    finished first (their finalizer needs the operator), then it stops. Fails when a deletion did not
    finish."""
    proc = Operator(**options)
    proc.start()
    try:
        yield proc
    finally:
        stuck = finish_deletions()
        proc.stop()
    assert not stuck, f"the operator did not finish deleting {stuck}"


def metric_value(text, family, **labels):
    """The value of the one sample of ``family`` whose labels include ``labels`` in a scrape, or None."""
    found = []
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(family):
            continue
        head, _, value = line.rpartition(" ")
        name, _, label_text = head.partition("{")
        if name != family:
            continue
        sample = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', label_text))
        if all(sample.get(k) == v for k, v in labels.items()):
            found.append(float(value))
    assert len(found) <= 1, f"{family}{labels} matches {len(found)} samples"
    return found[0] if found else None
