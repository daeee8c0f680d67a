"""A data plane on loopback: one real Patroni + PostgreSQL 15 per pod of a PostgresCluster.

The pods are the fake (kwok) pods of the cluster's StatefulSet; the local kube-apiserver is
Patroni's Kubernetes DCS. Each member is configured from the very ConfigMap
``<cluster>-patroni`` (key ``patroni.yml``) and Secret ``<cluster>-credentials`` that the
operator renders, read from the API server. What a pod gets from its StatefulSet (PATRONI_NAME,
the namespace, its IP, connect addresses, the credentials) is set here as the same PATRONI_*
variables; only addresses, ports and paths differ from a pod:

* addresses and ports: 127.0.0.1 with a free PostgreSQL port and a free REST API port per member;
* paths: a temporary directory per member for the data directory, the pgpass file, the unix
  socket directory and the kubeconfig; the binaries of Debian's postgresql-15; the scripts of
  the ConfigMap (Patroni's callback and post_bootstrap) and the pod's ServiceAccount token,
  which a pod finds under /etc/patroni and /var/run/secrets/kubernetes.io/serviceaccount.

Patroni itself talks to the API server with the admin kubeconfig; the callback script uses a
token of the cluster's Patroni ServiceAccount, so its Role is what is tested. When a pod is
deleted and its StatefulSet recreates it (a restart the operator asks for), the member restarts
too, as the container of a new pod would (``follow_pods``).

When the tests run as root, Patroni and PostgreSQL run as the ``postgres`` system user
(PostgreSQL refuses to run as root). Everything needed is installed by hack/test-deps.sh.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack"
DEPS_HINT = "run `hack/test-deps.sh` as root to install it"

PG_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
RUN_AS = "postgres"
CLUSTER_LABEL = "postgres.example.com/cluster"
ROLE_LABEL = "role"
LOOPBACK = "127.0.0.1"
# Where a pod mounts the ConfigMap <cluster>-patroni (patroni.yml and the scripts Patroni runs).
POD_CONFIG_DIR = "/etc/patroni"
# The operator's reload watcher, a script of the ConfigMap <cluster>-patroni.
RELOAD_WATCHER = "pgc-reload.py"
# The parent of a pod's data directory, where its server certificate (volume tls) is mounted too.
POD_DATA_MOUNT = "/var/lib/postgresql/data"
# Mark every process of a data plane (PostgreSQL keeps them in its environment), for the sweepers:
# the work directory, and the pid of the process that runs the harness.
MARKER = "PGC_DATAPLANE_RUN"
OWNER = "PGC_DATAPLANE_OWNER"

# Patroni's REST API names the leader role "leader" (or "standby_leader"); its pod label is "primary".
LEADER_ROLES = {"leader", "standby_leader", "primary"}
# A replica's role there; in synchronous mode, the standbys Patroni made synchronous are named so.
REPLICA_ROLES = {"replica", "sync_standby", "quorum_standby"}


class DataPlaneError(RuntimeError):
    pass


class MissingDependency(DataPlaneError):
    pass


# --- the project's environment (hack/lib.sh) ------------------------------------------------------

_HACK_ENV: dict[str, str] = {}


def hack(name: str) -> str:
    """A setting of hack/lib.sh (PATH, PGC_VENV, PGC_KUBECONFIG, ...)."""
    if name not in _HACK_ENV:
        out = subprocess.run(["bash", "-c", f'. "{HACK}/lib.sh" && printf %s "${name}"'],
                             check=True, capture_output=True, text=True)
        _HACK_ENV[name] = out.stdout
    return _HACK_ENV[name]


def venv_bin(name: str) -> Path:
    return Path(hack("PGC_VENV")) / "bin" / name


def check_prerequisites() -> None:
    """Raise MissingDependency, naming what is missing, unless PostgreSQL 15 and Patroni are usable."""
    problems = []
    for b in ("postgres", "initdb", "pg_ctl", "pg_basebackup", "pg_rewind", "pg_controldata"):
        if not os.access(PG_BIN_DIR / b, os.X_OK):
            problems.append(f"PostgreSQL 15 ({PG_BIN_DIR / b} is missing)")
            break
    patroni = venv_bin("patroni")
    if not os.access(patroni, os.X_OK):
        problems.append(f"Patroni ({patroni} is missing: patroni is not installed in the project virtualenv)")
    else:
        cmd = [str(venv_bin("python")), "-c", "import patroni.dcs.kubernetes, psycopg"]
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(RUN_AS)
            except KeyError:
                problems.append(f"the system user {RUN_AS!r} (it comes with postgresql-common)")
                cmd = None
            else:
                cmd = ["runuser", "-u", RUN_AS, "--", *cmd]
        if cmd:
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                who = f"the user {RUN_AS!r}" if os.geteuid() == 0 else "this user"
                problems.append(f"Patroni runnable by {who} ({' '.join(cmd)}: {proc.stderr.strip()[-300:]})")
    if problems:
        raise MissingDependency("missing for the data-plane tests: " + "; ".join(problems) + f" -- {DEPS_HINT}")


# --- kubectl -------------------------------------------------------------------------------------

class Kube:
    """kubectl (the project's own, from hack/lib.sh's PATH) against one kubeconfig and context."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None):
        self.kubeconfig = kubeconfig or hack("PGC_KUBECONFIG")
        self.context = context or self.current_context()

    def current_context(self) -> str:
        with open(self.kubeconfig) as f:
            cfg = yaml.safe_load(f)
        ctx = cfg.get("current-context")
        if not ctx:
            raise DataPlaneError(f"{self.kubeconfig} has no current-context")
        return ctx

    def env(self) -> dict[str, str]:
        e = dict(os.environ)
        e["PATH"] = hack("PATH")
        e["KUBECONFIG"] = self.kubeconfig
        return e

    def run(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 30) -> str:
        cmd = ["kubectl", "--kubeconfig", self.kubeconfig]
        if self.context:
            cmd += ["--context", self.context]
        proc = subprocess.run([*cmd, *args], env=self.env(), capture_output=True, text=True, input=input,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise DataPlaneError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout if check else proc.stdout + proc.stderr

    def json(self, *args: str) -> dict:
        return json.loads(self.run(*args, "-o", "json"))

    def flat_kubeconfig(self) -> str:
        """The kubeconfig of the context alone, with certificates and keys inline (readable from a copy)."""
        return self.run("config", "view", "--flatten", "--minify", "--raw")


# --- small helpers -------------------------------------------------------------------------------

def wait_for(predicate, timeout: float, message: str, interval: float = 0.25):
    """Poll ``predicate`` until it returns a truthy value; fail with ``message`` at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = predicate()
        except Exception as e:  # noqa: BLE001 - anything transient is retried until the deadline
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} (within {timeout:.0f}s; last seen: {last!r})")
        time.sleep(interval)


def hold(seconds: float, check, message: str, interval: float = 0.5) -> None:
    """Keep a fault on for ``seconds`` (its length, not a wait for a state) while ``check`` keeps
    returning True, looked at every ``interval``; fail with ``message`` and its answer otherwise."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while True:
        answer = check()
        assert answer is True, f"{message}: {answer!r}"
        left = deadline - time.monotonic()
        if left <= 0:
            return
        pause.wait(min(interval, left))


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _ordinal(pod_name: str) -> int:
    m = re.search(r"-(\d+)$", pod_name)
    return int(m.group(1)) if m else 1 << 30


def _kill(pids, sig=signal.SIGKILL) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_tree(pid: int, what: str) -> None:
    """SIGKILL a process and every process under it, as the end of its container kills them all, and
    wait until they are dead (zombies count as dead)."""
    import psutil
    try:
        pids = [pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    _kill(pids)
    wait_for(lambda: not any(_alive(p) for p in pids), 10, f"{what} did not die")


def _alive(pid: int) -> bool:
    import psutil
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- one member ----------------------------------------------------------------------------------

class Member:
    """One pod's Patroni + PostgreSQL on loopback."""

    def __init__(self, plane: "DataPlane", pod: str):
        self.plane = plane
        self.pod = pod
        self.pg_port, self.api_port = free_ports(2)
        self.dir = plane.workdir / pod
        self.data_dir = self.dir / "pgdata"
        self.socket_dir = self.dir / "run"
        self.config_path = self.dir / "patroni.yml"
        self.kubeconfig_path = self.dir / "kubeconfig"
        self.log_path = self.dir / "patroni.log"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.starts = 0

    # what the StatefulSet would set, with loopback addresses and host paths
    def environment(self) -> dict[str, str]:
        p = self.plane
        creds = p.credentials
        return {
            "PATH": f"{p.bin_dir}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.dir),
            "KUBECONFIG": str(self.kubeconfig_path),
            MARKER: str(p.workdir),
            OWNER: str(os.getpid()),
            "PATRONI_NAME": self.pod,
            "PATRONI_KUBERNETES_NAMESPACE": p.namespace,
            "PATRONI_KUBERNETES_POD_IP": LOOPBACK,
            "PATRONI_KUBERNETES_CONTEXT": p.kube.context,
            "PATRONI_POSTGRESQL_CONNECT_ADDRESS": f"{LOOPBACK}:{self.pg_port}",
            "PATRONI_RESTAPI_CONNECT_ADDRESS": f"{LOOPBACK}:{self.api_port}",
            "PATRONI_POSTGRESQL_LISTEN": f"{LOOPBACK}:{self.pg_port}",
            "PATRONI_RESTAPI_LISTEN": f"{LOOPBACK}:{self.api_port}",
            "PATRONI_POSTGRESQL_DATA_DIR": str(self.data_dir),
            "PGC_POD_NAME": self.pod,
            "PGHOST": str(self.socket_dir),
            "PGPORT": str(self.pg_port),
            "PATRONI_POSTGRESQL_BIN_DIR": str(p.bin_dir),
            "PATRONI_POSTGRESQL_PGPASS": str(self.dir / "pgpass"),
            "PATRONI_SUPERUSER_USERNAME": creds["superuser-username"],
            "PATRONI_SUPERUSER_PASSWORD": creds["superuser-password"],
            "PATRONI_REPLICATION_USERNAME": creds["replication-username"],
            "PATRONI_REPLICATION_PASSWORD": creds["replication-password"],
            **p.script_env,
            **p.service_account_env(self.dir / "serviceaccount"),
            **(p.member_env(self) if p.member_env else {}),
        }

    def config(self) -> dict:
        """The ConfigMap's configuration, with the paths that only make sense in a pod replaced."""
        cfg = json.loads(json.dumps(self.plane.config))  # a deep copy
        pg = cfg.setdefault("postgresql", {})
        params = pg.setdefault("parameters", {})
        params["unix_socket_directories"] = str(self.socket_dir)
        if "config_dir" in pg:
            pg["config_dir"] = str(self.data_dir)
        if isinstance(cfg.get("log"), dict) and "dir" in cfg["log"]:
            cfg["log"]["dir"] = str(self.dir / "log")
        # The scripts of the ConfigMap, from the member's directory instead of /etc/patroni.
        for key, command in (pg.get("callbacks") or {}).items():
            pg["callbacks"][key] = command.replace(POD_CONFIG_DIR + "/", f"{self.dir}/")
        # Patroni's client certificate settings name files under the pod's data mount.
        for auth in (pg.get("authentication") or {}).values():
            for key, value in list(auth.items()):
                if isinstance(value, str) and value.startswith(POD_DATA_MOUNT + "/"):
                    auth[key] = str(self.dir) + value[len(POD_DATA_MOUNT):]
        bootstrap = cfg.get("bootstrap") or {}
        if bootstrap.get("post_bootstrap"):
            bootstrap["post_bootstrap"] = bootstrap["post_bootstrap"].replace(POD_CONFIG_DIR + "/", f"{self.dir}/")
        return cfg

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.kubeconfig_path.write_text(self.plane.kubeconfig_text)
        os.chmod(self.kubeconfig_path, 0o600)
        for name, text in self.plane.scripts.items():
            (self.dir / name).write_text(text)
        # The Secrets mounted beside the data directory in a pod (the server certificate in tls/, the
        # superuser's in superuser-tls/): ../tls/ and so on from the data directory.
        for subdir, files in self.plane.tls_files.items():
            directory = self.dir / subdir
            directory.mkdir(exist_ok=True)
            for name, text in files.items():
                (directory / name).write_text(text)
                os.chmod(directory / name, 0o600)
        self.plane.write_service_account(self.dir / "serviceaccount")
        self.plane.give(self.dir)

    def start(self) -> None:
        if self.running():
            raise DataPlaneError(f"{self.pod} is already running")
        self.prepare()
        self._log = open(self.log_path, "a")
        self._log.write(f"----- harness: starting {self.pod} (start #{self.starts + 1}) "
                        f"postgres {LOOPBACK}:{self.pg_port} restapi {LOOPBACK}:{self.api_port}\n")
        self._log.flush()
        kwargs = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam(RUN_AS)
            kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self.proc = subprocess.Popen([str(venv_bin("patroni")), str(self.config_path)], cwd=self.dir,
                                     env=self.environment(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        self.starts += 1
        # The container's reload watcher, where the operator's pod runs one beside Patroni: it wakes
        # Patroni when the postmaster crashes (the certificates it also watches are files here).
        env = self.environment()
        if RELOAD_WATCHER in self.plane.scripts and env.get("PGC_WAKE_CONFIGMAP"):
            env["PGC_POSTMASTER_PID"] = str(self.data_dir / "postmaster.pid")
            subprocess.Popen([str(venv_bin("python")), str(self.dir / RELOAD_WATCHER), str(self.proc.pid)],
                             cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                             stderr=subprocess.STDOUT, start_new_session=True, **kwargs)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def postmaster_pid(self) -> int | None:
        """The running postmaster of this member's data directory (a stale postmaster.pid, or one
        whose pid now belongs to another process, gives None)."""
        import psutil
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            cmdline = psutil.Process(pid).cmdline()
        except (OSError, ValueError, IndexError, psutil.Error):
            return None
        return pid if _alive(pid) and str(self.data_dir) in cmdline else None

    def pids(self) -> list[int]:
        """Patroni, its children and the postmaster with all of its children."""
        import psutil
        pids: list[int] = []
        roots = [p for p in (self.proc.pid if self.running() else None, self.postmaster_pid()) if p]
        for root in roots:
            try:
                proc = psutil.Process(root)
                pids += [proc.pid] + [c.pid for c in proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                pass
        return list(dict.fromkeys(pids))

    def kill(self) -> None:
        """kill -9 Patroni and PostgreSQL (the postmaster and every backend): a crash of the pod."""
        pids = self.pids()
        _kill(pids)
        if self.proc:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        wait_for(lambda: not any(_alive(p) for p in pids), 10, f"processes of {self.pod} did not die")
        self._close_log()

    def crash_postgres(self) -> None:
        """kill -9 of the postmaster and its backends, Patroni left running: PostgreSQL crashed."""
        pid = self.postmaster_pid()
        if not pid:
            raise DataPlaneError(f"{self.pod} runs no postmaster")
        kill_tree(pid, f"PostgreSQL of {self.pod}")

    def stop(self, timeout: float = 20) -> None:
        """Stop Patroni (it stops PostgreSQL), kill -9 whatever is left at the deadline."""
        if self.running():
            _kill([self.proc.pid], signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        leftovers = self.pids()
        if leftovers:
            _kill(leftovers)
            if self.proc:
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        self._close_log()

    def _close_log(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def rest(self, path: str, timeout: float = 2) -> dict:
        url = f"http://{LOOPBACK}:{self.api_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:  # Patroni answers 503 on /primary of a replica, with a body
            return json.loads(e.read() or b"{}")

    def connect(self, dbname: str = "postgres", timeout: float = 3):
        import psycopg
        c = self.plane.credentials
        return psycopg.connect(host=LOOPBACK, port=self.pg_port, user=c["superuser-username"],
                               password=c["superuser-password"], dbname=dbname, connect_timeout=max(1, int(timeout)),
                               autocommit=True)


# --- the data plane ------------------------------------------------------------------------------

class DataPlane:
    """Real Patroni members for the pods of one PostgresCluster, configured from its ConfigMap and Secret."""

    _live: list["DataPlane"] = []

    def __init__(self, namespace: str, cluster: str, kube: Kube | None = None, bin_dir: Path = PG_BIN_DIR,
                 workdir: Path | None = None, member_env=None):
        """``member_env``: a function of a Member returning more of its environment (what a pod gets
        from Secrets the harness does not read, or per member paths and ports)."""
        self.namespace = namespace
        self.member_env = member_env
        self.cluster = cluster
        self.kube = kube or Kube()
        self.bin_dir = Path(bin_dir)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"pgc-dp-{cluster}-"))
        self.config: dict = {}
        self.credentials: dict[str, str] = {}
        self.members: dict[str, Member] = {}
        self.kubeconfig_text = ""
        self.scripts: dict[str, str] = {}
        self.service_account: dict[str, str] = {}
        self.script_env: dict[str, str] = {}
        self.tls_files: dict[str, dict[str, str]] = {}
        self._owner = pwd.getpwnam(RUN_AS) if os.geteuid() == 0 else None
        self._pod_uids: dict[str, str] = {}
        self._follower = None
        self._following = False
        self.pod_restarts: list[str] = []

    # -- reading what the operator rendered --
    @property
    def configmap_name(self) -> str:
        return f"{self.cluster}-patroni"

    @property
    def secret_name(self) -> str:
        return f"{self.cluster}-credentials"

    def load(self) -> None:
        cm = self.kube.json("get", "configmap", self.configmap_name, "-n", self.namespace)
        text = (cm.get("data") or {}).get("patroni.yml")
        if not text:
            raise DataPlaneError(f"ConfigMap {self.namespace}/{self.configmap_name} has no key patroni.yml")
        self.config = yaml.safe_load(text)
        if self.config.get("scope") != self.cluster:
            raise DataPlaneError(f"patroni.yml has scope {self.config.get('scope')!r}, expected {self.cluster!r}")
        if "kubernetes" not in self.config:
            raise DataPlaneError("patroni.yml has no kubernetes section (the DCS)")
        secret = self.kube.json("get", "secret", self.secret_name, "-n", self.namespace)
        data = secret.get("data") or {}
        self.credentials = {k: base64.b64decode(v).decode() for k, v in data.items()}
        need = ("superuser-username", "superuser-password", "replication-username", "replication-password")
        missing = [k for k in need if not self.credentials.get(k)]
        if missing:
            raise DataPlaneError(f"Secret {self.namespace}/{self.secret_name} lacks {', '.join(missing)}")
        self.kubeconfig_text = self.kube.flat_kubeconfig()
        self.scripts = {k: v for k, v in (cm.get("data") or {}).items() if k != "patroni.yml"}
        self.service_account = self._service_account()
        sts = self.kube.run("get", "statefulset", self.cluster, "-n", self.namespace, "--ignore-not-found", "-o", "json")
        pod = json.loads(sts)["spec"]["template"]["spec"] if sts.strip() else {}
        self.script_env = self._script_env(pod)
        self.tls_files = self._tls_files(pod)

    def _secret_data(self, name: str) -> dict[str, str]:
        data = self.kube.json("get", "secret", name, "-n", self.namespace).get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def _script_env(self, pod: dict) -> dict[str, str]:
        """The PGC_* variables the StatefulSet's pod gives the postgres container (what the scripts
        of the ConfigMap read) and the REST API's credentials, with values from the Secrets it
        refers to."""
        if not pod:
            return {}
        env = {}
        secrets = {self.secret_name: self.credentials}
        for var in pod["containers"][0].get("env") or []:
            if not (var["name"].startswith("PGC_") or var["name"] in ("PATRONI_RESTAPI_USERNAME", "PATRONI_RESTAPI_PASSWORD")):
                continue
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            ref = (var.get("valueFrom") or {}).get("secretKeyRef") or {}
            if ref.get("name") and ref["name"] not in secrets:
                secrets[ref["name"]] = self._secret_data(ref["name"])
            if ref.get("key") in secrets.get(ref.get("name"), {}):
                env[var["name"]] = secrets[ref["name"]][ref["key"]]
        return env

    def _tls_files(self, pod: dict) -> dict[str, dict[str, str]]:
        """The files of the Secret volumes the StatefulSet's pod mounts beside the data directory
        (PostgreSQL's server certificate, the superuser's client certificate), by directory."""
        if not pod:
            return {}
        volumes = {v["name"]: v["secret"] for v in pod.get("volumes") or [] if "secret" in v}
        files = {}
        for mount in pod["containers"][0].get("volumeMounts") or []:
            parent, _, subdir = mount["mountPath"].rpartition("/")
            source = volumes.get(mount["name"])
            if parent != POD_DATA_MOUNT or not source:
                continue
            data = self._secret_data(source["secretName"])
            keys = [item["key"] for item in source.get("items") or []] or list(data)
            files[subdir] = {key: data[key] for key in keys}
        return files

    def _service_account(self) -> dict[str, str]:
        """A token of the cluster's Patroni ServiceAccount, as a pod would have it mounted, and the API
        server's address (none when the cluster has no such account, as the fixture cluster)."""
        account = f"{self.cluster}-patroni"
        if self.kube.run("get", "serviceaccount", account, "-n", self.namespace, "--ignore-not-found",
                         "-o", "name").strip() == "":
            return {}
        cfg = yaml.safe_load(self.kubeconfig_text)
        cluster = cfg["clusters"][0]["cluster"]
        server = urllib.parse.urlsplit(cluster["server"])
        return {
            "token": self.kube.run("create", "token", account, "-n", self.namespace, "--duration", "2h").strip(),
            "ca.crt": base64.b64decode(cluster["certificate-authority-data"]).decode(),
            "namespace": self.namespace,
            "host": server.hostname,
            "port": str(server.port or 443),
        }

    def write_service_account(self, path: Path) -> None:
        if not self.service_account:
            return
        path.mkdir(exist_ok=True)
        for name in ("token", "ca.crt", "namespace"):
            (path / name).write_text(self.service_account[name])

    def service_account_env(self, path: Path) -> dict[str, str]:
        if not self.service_account:
            return {}
        return {"PGC_SERVICEACCOUNT_DIR": str(path), "KUBERNETES_SERVICE_HOST": self.service_account["host"],
                "KUBERNETES_SERVICE_PORT": self.service_account["port"]}

    def pods(self) -> list[dict]:
        items = self.kube.json("get", "pods", "-n", self.namespace, "-l", f"{CLUSTER_LABEL}={self.cluster}")["items"]
        ours = [p for p in items if re.fullmatch(rf"{re.escape(self.cluster)}-\d+", p["metadata"]["name"])]
        return sorted(ours, key=lambda p: _ordinal(p["metadata"]["name"]))

    # -- lifecycle --
    def give(self, path: Path) -> None:
        """Hand a directory tree to the user that runs the members."""
        if not self._owner:
            return
        uid, gid = self._owner.pw_uid, self._owner.pw_gid
        os.chown(self.workdir, uid, gid)
        os.chmod(self.workdir, 0o700)
        for root, dirs, files in os.walk(path):
            os.chown(root, uid, gid)
            for name in dirs + files:
                os.lchown(os.path.join(root, name), uid, gid)

    def start(self) -> None:
        """Read the ConfigMap and Secret and start one member per pod."""
        check_prerequisites()
        sweep_orphans()
        _stop_on_sigterm()
        self.load()
        pods = [p["metadata"]["name"] for p in self.pods()]
        if not pods:
            raise DataPlaneError(f"no pods labelled {CLUSTER_LABEL}={self.cluster} in {self.namespace}")
        DataPlane._live.append(self)
        for pod in pods:
            self.members[pod] = Member(self, pod)
        self._pod_uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in self.pods()}
        for m in self.members.values():
            m.start()
        time.sleep(0.5)
        dead = [m.pod for m in self.members.values() if not m.running()]
        if dead:
            raise DataPlaneError(f"patroni exited at once for {dead}:\n" + self.members[dead[0]].log_tail(40))

    @contextlib.contextmanager
    def started(self):
        """The running members, stopped and removed whatever happens."""
        try:
            self.start()
            yield self
        finally:
            self.stop()

    def follow_pods(self, interval: float = 1.0) -> None:
        """Restart a member when its pod is recreated (a new uid), as a new pod's container would start.
        A member whose pod is gone (scaled down) is stopped."""
        import threading

        def loop():
            while self._following:
                try:
                    pods = {p["metadata"]["name"]: p for p in self.pods()}
                except Exception:  # noqa: BLE001 - the API server may be briefly busy
                    time.sleep(interval)
                    continue
                for name, member in list(self.members.items()):
                    pod = pods.get(name)
                    uid = pod["metadata"]["uid"] if pod and not pod["metadata"].get("deletionTimestamp") else None
                    if uid == self._pod_uids.get(name):
                        continue
                    if self._pod_uids.get(name) and member.running():
                        member.stop()  # the old pod is gone: its container stops
                    if uid:
                        member.start()
                        self.pod_restarts.append(name)
                    self._pod_uids[name] = uid
                time.sleep(interval)

        self._following = True
        self._follower = threading.Thread(target=loop, name=f"follow-{self.cluster}", daemon=True)
        self._follower.start()

    def stop(self, remove: bool = True) -> None:
        """Stop every member (even half-started ones), sweep leftovers and remove the work directory."""
        self._following = False
        if self._follower:
            self._follower.join(10)
        live = [m for m in self.members.values() if m.running()]
        for m in live:
            _kill([m.proc.pid], signal.SIGTERM)
        deadline = time.monotonic() + 20
        for m in self.members.values():
            m.stop(timeout=max(0.1, deadline - time.monotonic()))
        self.sweep()
        if self in DataPlane._live:
            DataPlane._live.remove(self)
        if remove and not os.environ.get("PGC_DATAPLANE_KEEP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def sweep(self) -> None:
        """kill -9 any process left that belongs to this data plane (by its environment marker)."""
        _kill(pid for pid, env in _marked_processes() if env.get(MARKER) == str(self.workdir))

    def member(self, pod: str) -> Member:
        try:
            return self.members[pod]
        except KeyError:
            raise DataPlaneError(f"{pod} is not a member (members: {sorted(self.members)})") from None

    def kill_member(self, pod: str) -> None:
        self.member(pod).kill()

    def restart_member(self, pod: str) -> None:
        """Start the member again on its data directory (after kill_member, or stop it first)."""
        m = self.member(pod)
        if m.running() or m.postmaster_pid():
            m.stop()
        m.start()

    # -- observing --
    def labels(self) -> dict[str, dict]:
        return {p["metadata"]["name"]: p["metadata"].get("labels") or {} for p in self.pods()}

    def labelled_primaries(self) -> list[str]:
        sel = f"{CLUSTER_LABEL}={self.cluster},{ROLE_LABEL}=primary"
        items = self.kube.json("get", "pods", "-n", self.namespace, "-l", sel)["items"]
        return sorted(p["metadata"]["name"] for p in items)

    def cluster_view(self, exclude=()) -> dict | None:
        """Patroni's GET /cluster, from the first running member that answers."""
        for m in self.members.values():
            if m.pod in exclude or not m.running():
                continue
            try:
                return m.rest("/cluster")
            except (OSError, ValueError):
                continue
        return None

    def rest_leader(self, exclude=()) -> str | None:
        view = self.cluster_view(exclude) or {}
        leaders = [x["name"] for x in view.get("members", []) if x.get("role") in LEADER_ROLES
                   and x.get("state") == "running"]
        return leaders[0] if len(leaders) == 1 else None

    def leader(self, exclude=()) -> str | None:
        """The leader, when Patroni's REST API names one and the pod labels agree: it is labelled
        role=primary and no other running member is. A member that was killed keeps whatever label it
        had (nothing relabels a dead pod) until its Patroni runs again: that stale label is ignored."""
        by_rest = self.rest_leader(exclude)
        if not by_rest or by_rest in exclude:
            return None
        running = {p for p, m in self.members.items() if m.running()}
        primaries = set(self.labelled_primaries())
        if by_rest in primaries and not (primaries & running) - {by_rest}:
            return by_rest
        return None

    def wait_for_leader(self, timeout: float = 60, exclude=()) -> str:
        return wait_for(lambda: self.leader(exclude), timeout,
                        f"no single leader in {self.namespace}/{self.cluster} (labels and REST API agreeing)")

    def replicas(self, leader: str | None = None) -> list[str]:
        leader = leader or self.wait_for_leader()
        return [p for p in self.members if p != leader]

    def execute(self, pod: str, sql: str, params=None, dbname: str = "postgres", timeout: float = 3):
        """Run one statement as the superuser over loopback; the rows when it returns any."""
        with self.member(pod).connect(dbname, timeout) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def streaming(self, leader: str, replicas) -> bool:
        rows = self.execute(leader, "SELECT application_name, state FROM pg_stat_replication")
        states = dict(rows or [])
        if any(states.get(r) != "streaming" for r in replicas):
            return False
        view = self.cluster_view() or {}
        rest = {x["name"]: x for x in view.get("members", [])}
        return all(rest.get(r, {}).get("role") in REPLICA_ROLES and rest.get(r, {}).get("state") == "streaming"
                   for r in replicas)

    def wait_streaming(self, leader: str | None = None, replicas=None, timeout: float = 60) -> str:
        """Wait until each replica streams from the leader (pg_stat_replication and GET /cluster)."""
        leader = leader or self.wait_for_leader(timeout)
        replicas = list(replicas) if replicas is not None else self.replicas(leader)
        wait_for(lambda: self.streaming(leader, replicas), timeout,
                 f"replicas {replicas} are not all streaming from {leader}")
        return leader

    def logs(self, lines: int = 60) -> str:
        return "\n\n".join(f"--- {m.pod} ({m.log_path}) ---\n{m.log_tail(lines)}" for m in self.members.values())


class RowWriter(threading.Thread):
    """A client that commits numbered rows (``sql`` takes the number as its one parameter) on whichever
    member takes them, trying first the one that took the last, every 20 ms until told to stop:
    ``acked`` the numbers whose COMMIT returned, ``times`` when (time.monotonic()), ``refused`` the
    error of the member tried first whenever none took the row."""

    def __init__(self, plane: "DataPlane", sql: str):
        super().__init__(daemon=True)
        self.plane = plane
        self.sql = sql
        self.acked: list[int] = []
        self.times: list[float] = []
        self.refused: list[str] = []
        self.halt = threading.Event()

    def run(self):
        n, target, conn, connected = 0, None, None, None
        while not self.halt.is_set():
            n += 1
            errors = []
            for pod in sorted(self.plane.members, key=lambda p: p != target):
                try:
                    if pod != connected or conn is None:
                        _close(conn)
                        conn, connected = None, pod
                        conn = self.plane.member(pod).connect(timeout=1)
                    conn.execute(self.sql, (n,))
                    target = pod
                    self.acked.append(n)
                    self.times.append(time.monotonic())
                    break
                except Exception as e:  # noqa: BLE001 - refused, read-only, restarting or gone: the next member
                    errors.append(f"{type(e).__name__}: {e}")
                    _close(conn)
                    conn = None
            else:
                self.refused.append(errors[0])
            self.halt.wait(0.02)  # the next commit, or the end
        _close(conn)

    def longest_gap(self) -> float:
        return max((b - a for a, b in zip(self.times, self.times[1:])), default=0.0)


def _close(conn) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def write_marker(plane, pod, table="dp_marker"):
    """Insert a unique row on ``pod`` and return its value."""
    value = uuid.uuid4().hex
    plane.execute(pod, f"CREATE TABLE IF NOT EXISTS {table} (v text PRIMARY KEY)")
    plane.execute(pod, f"INSERT INTO {table} VALUES (%s)", (value,))
    return value


def has_marker(plane, pod, value, table="dp_marker"):
    rows = plane.execute(pod, f"SELECT count(*) FROM {table} WHERE v = %s", (value,))
    return rows[0][0] == 1


def rw_service_targets(kube, namespace, service):
    """Pod names behind a Service (its EndpointSlices, as kube-proxy would see them)."""
    slices = kube.json("get", "endpointslices", "-n", namespace,
                       "-l", f"kubernetes.io/service-name={service}")["items"]
    return sorted(e["targetRef"]["name"] for s in slices for e in (s.get("endpoints") or [])
                  if (e.get("conditions") or {}).get("ready") and e.get("targetRef"))


def _marked_processes():
    import psutil
    for p in psutil.process_iter(["pid"]):
        try:
            env = p.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        if MARKER in env:
            yield p.pid, env


def sweep_orphans() -> None:
    """kill -9 the members left behind by a harness that died without stopping them (kill -9 of
    pytest, a lost terminal), and remove their work directories."""
    orphans = [(pid, env) for pid, env in _marked_processes()
               if not env.get(OWNER, "").isdigit() or not _alive(int(env[OWNER]))]
    _kill(pid for pid, _ in orphans)
    for workdir in {env[MARKER] for _, env in orphans}:
        if Path(workdir).name.startswith("pgc-dp-"):
            shutil.rmtree(workdir, ignore_errors=True)


def _stop_on_sigterm() -> None:
    """A SIGTERM to the test process becomes KeyboardInterrupt, so that the fixtures (and atexit)
    still stop the members."""
    import threading
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def interrupt(signum, frame):
            raise KeyboardInterrupt(f"signal {signum}")
        signal.signal(signal.SIGTERM, interrupt)


@atexit.register
def _stop_all() -> None:
    for plane in list(DataPlane._live):
        try:
            plane.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


def api_writes(kube, namespace, cluster, seconds: float) -> dict[str, int]:
    """The writes Patroni makes to the API server (its DCS) in ``seconds``, counted as watch events
    of the cluster's ConfigMaps (the leader lock, the history) and pods (each member's status): by
    kind."""
    counts = {}
    for kind in ("configmaps", "pods"):
        proc = subprocess.Popen(["kubectl", "get", kind, "-n", namespace, "-l", f"{CLUSTER_LABEL}={cluster}",
                                 "--watch-only", "-o", "name"], env=kube.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        counts[kind] = proc
    deadline = time.monotonic() + seconds
    lines = {kind: [] for kind in counts}
    readers = [threading.Thread(target=lambda k=kind, p=proc: lines[k].extend(p.stdout), daemon=True)
               for kind, proc in counts.items()]
    for reader in readers:
        reader.start()
    hold(max(0.0, deadline - time.monotonic()), lambda: True, "")  # the measurement window itself
    for proc in counts.values():
        proc.kill()
        proc.wait()
    for reader in readers:
        reader.join(5)
    return {kind: len(found) for kind, found in lines.items()}

def api_write_rate(kube, namespace, plane, loop_wait, summary, what) -> dict[str, float]:
    """Patroni's writes per minute into its DCS on an idle cluster, printed; at most one lock renewal
    and one status per member each loop (and a margin), whatever loop_wait is."""
    plane.wait_streaming(timeout=90)
    window = 30
    writes = api_writes(kube, namespace, plane.cluster, window)
    per_minute = {kind: n * 60 / window for kind, n in writes.items()}
    members = len(plane.members)
    summary.append(f"API writes of {what} (loop_wait {loop_wait}, {members} members, idle): "
                   f"{per_minute['configmaps']:.0f}/min ConfigMaps (the leader lock), {per_minute['pods']:.0f}/min pods "
                   f"(members' status); {sum(per_minute.values()) / members:.0f}/min per member")
    loops = window / loop_wait + 1
    assert sum(writes.values()) <= 2 * loops * (members + 1), writes
    return per_minute

