"""The exporter emits what the alerts and the dashboard use.

A PostgreSQL 15 primary and a streaming replica (pg_basebackup -R) run on loopback, with WAL
archiving on and a monitoring role granted pg_monitor, each scraped by its own Debian
prometheus-postgres-exporter with the project's custom queries (config/prometheus/
exporter-queries.yaml). Every exporter metric listed in config/prometheus/metrics.yaml must be
emitted, with its labels, by the servers listed; the replication, archiving and wraparound metrics
must also move the way the alerts expect.

No Kubernetes is needed. Everything needed is installed by hack/test-deps.sh; without it the
tests fail, they never skip.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.dataplane.harness import DEPS_HINT, LOOPBACK, PG_BIN_DIR, RUN_AS, free_ports, wait_for

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = yaml.safe_load((REPO / "config" / "prometheus" / "metrics.yaml").read_text())
QUERIES = REPO / CATALOGUE["exporter_queries"]
EXPORTER = Path("/usr/bin/prometheus-postgres-exporter")
MONITOR_ROLE = "pgc_monitor"
SERIES = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def missing_dependencies() -> list[str]:
    problems = []
    for b in ("initdb", "pg_ctl", "pg_basebackup", "postgres"):
        if not os.access(PG_BIN_DIR / b, os.X_OK):
            problems.append(f"PostgreSQL 15 ({PG_BIN_DIR / b} is missing)")
            break
    if not os.access(EXPORTER, os.X_OK):
        problems.append(f"the PostgreSQL exporter ({EXPORTER} is missing: package prometheus-postgres-exporter)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            problems.append(f"the system user {RUN_AS!r} (it comes with postgresql-common)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        problems.append("psycopg (run the tests with the project virtualenv's python)")
    return problems


# --- processes -----------------------------------------------------------------------------------

def _as_server_user() -> dict:
    """PostgreSQL refuses to run as root: as root, its processes run as the postgres user."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam(RUN_AS)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _give(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam(RUN_AS)
        shutil.chown(path, pw.pw_uid, pw.pw_gid)


class Server:
    """One PostgreSQL 15 server on a loopback port, its files in a directory of the test's."""

    def __init__(self, workdir: Path, name: str, password: str):
        self.name = name
        self.dir = workdir / name
        self.data_dir = self.dir / "pgdata"
        self.socket_dir = self.dir / "run"
        self.log_path = self.dir / "postgres.log"
        self.password = password
        (self.port,) = free_ports(1)
        for d in (self.dir, self.socket_dir):
            d.mkdir()
            _give(d)

    def env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.dir), "PGPASSWORD": self.password}

    def run(self, *cmd: str) -> None:
        proc = subprocess.run([str(c) for c in cmd], env=self.env(), cwd=self.dir, capture_output=True, text=True,
                              timeout=120, start_new_session=True, **_as_server_user())
        if proc.returncode != 0:
            raise AssertionError(f"{self.name}: {' '.join(map(str, cmd))} failed:\n{proc.stdout}{proc.stderr}")

    def start(self) -> None:
        self.run(PG_BIN_DIR / "pg_ctl", "start", "-D", self.data_dir, "-l", self.log_path, "-w", "-t", "60",
                 "-o", f"-p {self.port} -c listen_addresses={LOOPBACK} -c unix_socket_directories={self.socket_dir}")

    def stop(self) -> None:
        """Stop the server; kill -9 the postmaster and its children when it does not stop in time."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        try:
            self.run(PG_BIN_DIR / "pg_ctl", "stop", "-D", self.data_dir, "-m", "fast", "-w", "-t", "30")
        except (AssertionError, subprocess.TimeoutExpired):
            import psutil
            try:
                postmaster = psutil.Process(int((self.data_dir / "postmaster.pid").read_text().split()[0]))
                if str(self.data_dir) in postmaster.cmdline():
                    for proc in [postmaster, *postmaster.children(recursive=True)]:
                        proc.send_signal(signal.SIGKILL)
            except (OSError, ValueError, IndexError, psutil.Error):
                pass

    def connect(self):
        import psycopg
        return psycopg.connect(host=LOOPBACK, port=self.port, user="postgres", password=self.password,
                               dbname="postgres", connect_timeout=5, autocommit=True)

    def query(self, sql, params=None):
        with self.connect() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Exporter:
    """Debian's prometheus-postgres-exporter for one server, on a free loopback port."""

    def __init__(self, workdir: Path, server: Server, password: str):
        self.server = server
        (self.port,) = free_ports(1)
        self.log_path = workdir / f"exporter-{server.name}.log"
        self.dsn = (f"postgresql://{MONITOR_ROLE}:{password}@{LOOPBACK}:{server.port}/postgres"
                    "?sslmode=disable")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [str(EXPORTER), f"--web.listen-address={LOOPBACK}:{self.port}", f"--extend.query-path={QUERIES}"],
                env={"PATH": "/usr/bin:/bin", "DATA_SOURCE_NAME": self.dsn}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def scrape(self) -> dict[str, list[tuple[dict, float]]]:
        """GET /metrics: metric name -> [(labels, value)]."""
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"the exporter of {self.server.name} exited:\n{self.log_tail()}")
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}/metrics", timeout=10) as r:
            text = r.read().decode()
        metrics: dict[str, list[tuple[dict, float]]] = {}
        for line in text.splitlines():
            m = SERIES.match(line)
            if m and not line.startswith("#"):
                labels = dict(LABEL.findall(m.group(2) or ""))
                metrics.setdefault(m.group(1), []).append((labels, float(m.group(3))))
        return metrics

    def value(self, name: str, **labels) -> float | None:
        """The value of the one series of ``name`` with ``labels``, None when there is none."""
        found = [v for lbl, v in self.scrape().get(name, []) if all(lbl.get(k) == x for k, x in labels.items())]
        assert len(found) <= 1, f"{self.server.name}: several {name}{labels}: {found}"
        return found[0] if found else None

    def wait_value(self, name: str, predicate, message: str, timeout: float = 60, **labels) -> float:
        def check():
            v = self.value(name, **labels)
            return (v,) if v is not None and predicate(v) else None
        return wait_for(check, timeout, f"{self.server.name}: {message}", interval=0.5)[0]


# --- the data plane ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plane():
    """Primary, replica and one exporter each; every process stopped and the directory removed."""
    problems = missing_dependencies()
    if problems:
        pytest.fail("missing for the exporter data-plane test: " + "; ".join(problems) + f" -- {DEPS_HINT}",
                    pytrace=False)
    workdir = Path(tempfile.mkdtemp(prefix="pgc-exporter-"))
    os.chmod(workdir, 0o711)
    superuser_password, monitor_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    primary = Server(workdir, "primary", superuser_password)
    replica = Server(workdir, "replica", superuser_password)
    archive = workdir / "archive"
    archive.mkdir()
    _give(archive)
    exporters: dict[str, Exporter] = {}
    try:
        pwfile = primary.dir / "pwfile"
        pwfile.write_text(superuser_password + "\n")
        _give(pwfile)
        primary.run(PG_BIN_DIR / "initdb", "-D", primary.data_dir, "-U", "postgres", "--pwfile", pwfile,
                    "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")
        with open(primary.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# exporter data-plane test\n"
                       "archive_mode = on\n"
                       f"archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'\n")
        primary.start()
        from psycopg import sql
        with primary.connect() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_monitor").format(
                sql.Identifier(MONITOR_ROLE), sql.Literal(monitor_password)))
        replica.run(PG_BIN_DIR / "pg_basebackup", "-h", LOOPBACK, "-p", primary.port, "-U", "postgres",
                    "-D", replica.data_dir, "-R", "-X", "stream", "-c", "fast")
        replica.start()
        wait_for(lambda: primary.query("SELECT state FROM pg_stat_replication") == [("streaming",)], 60,
                 "the replica does not stream from the primary")
        for server in (primary, replica):
            exporters[server.name] = Exporter(workdir, server, monitor_password)
            exporters[server.name].start()
        for name, exporter in exporters.items():
            exporter.wait_value("pg_up", lambda v: v == 1, "the exporter does not reach PostgreSQL (pg_up != 1)")
        yield {"primary": primary, "replica": replica, "archive": archive, "exporters": exporters}
    except BaseException:
        for server in (primary, replica):
            print(f"--- {server.name} log ---\n{server.log_tail()}")
        for exporter in exporters.values():
            print(f"--- exporter of {exporter.server.name} ---\n{exporter.log_tail()}")
        raise
    finally:
        for exporter in exporters.values():
            exporter.stop()
        for server in (replica, primary):
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


EXPECTED = [(name, server, spec.get("labels") or [])
            for name, spec in CATALOGUE["exporter"]["metrics"].items() for server in spec["servers"]]


@pytest.mark.parametrize("name,server,labels", EXPECTED, ids=[f"{n}-{s}" for n, s, _ in EXPECTED])
def test_exporter_emits_catalogued_metric(plane, name, server, labels):
    """Each metric of metrics.yaml's exporter section, with the labels the rules and the dashboard use."""
    scraped = plane["exporters"][server].scrape()
    assert name in scraped, f"the exporter of the {server} does not emit {name}"
    for series_labels, _ in scraped[name]:
        missing = set(labels) - set(series_labels)
        assert not missing, f"{name} on the {server} lacks the labels {missing}: {series_labels}"


def test_custom_queries_load_and_run(plane):
    for name, exporter in plane["exporters"].items():
        scraped = exporter.scrape()
        loads = [v for lbl, v in scraped.get("pg_exporter_user_queries_load_error", [])
                 if lbl.get("filename") == str(QUERIES)]
        assert loads == [0.0], f"{name}: {QUERIES.name} did not load: {loads}"
        assert exporter.value("pg_exporter_last_scrape_error") == 0, f"{name}: scrape error\n{exporter.log_tail()}"


def test_settings_and_connections_match_the_server(plane):
    for name in ("primary", "replica"):
        server, exporter = plane[name], plane["exporters"][name]
        max_connections = int(server.query("SHOW max_connections")[0][0])
        assert exporter.value("pg_settings_max_connections") == max_connections
        with server.connect():  # one more client, idle, in the database postgres
            total = sum(v for _, v in exporter.scrape()["pg_stat_activity_count"])
            assert 1 <= total < max_connections


def test_transaction_id_age_is_reported_per_database(plane):
    primary, exporter = plane["primary"], plane["exporters"]["primary"]
    ages = dict(primary.query("SELECT datname, age(datfrozenxid) FROM pg_database"))
    reported = {lbl["datname"]: v for lbl, v in exporter.scrape()["pgc_database_wraparound_age_datfrozenxid"]}
    assert set(reported) == set(ages)
    assert all(0 < reported[d] <= ages[d] + 100 for d in ages), (reported, ages)


def test_replication_role_and_lag(plane):
    """0 on the primary; on a replica whose replay is paused, the lag grows; replay resumed, back to 0."""
    primary, replica = plane["primary"], plane["replica"]
    exp_primary, exp_replica = plane["exporters"]["primary"], plane["exporters"]["replica"]
    assert exp_primary.value("pgc_replication_is_replica") == 0
    assert exp_primary.value("pgc_replication_lag_seconds") == 0
    assert exp_replica.value("pgc_replication_is_replica") == 1

    primary.query("CREATE TABLE IF NOT EXISTS lag_probe (at timestamptz)")
    primary.query("INSERT INTO lag_probe VALUES (now())")
    lsn = primary.query("SELECT pg_current_wal_lsn()::text")[0][0]
    wait_for(lambda: replica.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0], 30,
             "the replica did not replay the first write")
    exp_replica.wait_value("pgc_replication_lag_seconds", lambda v: v == 0, "a replica that replayed all is not at 0")
    replica.query("SELECT pg_wal_replay_pause()")
    try:
        time.sleep(2)
        primary.query("INSERT INTO lag_probe VALUES (now())")
        lsn = primary.query("SELECT pg_current_wal_lsn()::text")[0][0]
        wait_for(lambda: replica.query("SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn", (lsn,))[0][0], 30,
                 "the replica did not receive the second write")
        lag = exp_replica.wait_value("pgc_replication_lag_seconds", lambda v: v >= 2,
                                     "a paused replica reports no lag", timeout=30)
        assert lag < 120, lag
    finally:
        replica.query("SELECT pg_wal_replay_resume()")
    exp_replica.wait_value("pgc_replication_lag_seconds", lambda v: v == 0, "the lag did not return to 0", timeout=30)


def test_archiver_counts_archived_then_failed_segments(plane):
    """The counters PostgreSQLWALArchivingFailing compares: archived moves while the command works,
    failed moves once it fails."""
    primary, exporter, archive = plane["primary"], plane["exporters"]["primary"], plane["archive"]
    archived_before = exporter.value("pg_stat_archiver_archived_count")
    primary.query("CREATE TABLE IF NOT EXISTS archive_probe (at timestamptz)")
    primary.query("INSERT INTO archive_probe VALUES (now())")
    segment = primary.query("SELECT pg_walfile_name(pg_current_wal_lsn())")[0][0]
    primary.query("SELECT pg_switch_wal()")
    exporter.wait_value("pg_stat_archiver_archived_count", lambda v: v > archived_before,
                        "archived_count did not move with a working archive_command")
    assert (archive / segment).exists(), f"{segment} is not in the archive: {sorted(os.listdir(archive))}"
    assert exporter.value("pg_stat_archiver_failed_count") == 0
    age = exporter.value("pg_stat_archiver_last_archive_age")
    assert age is not None and 0 <= age < 60, age

    primary.query("ALTER SYSTEM SET archive_command = 'false'")
    primary.query("SELECT pg_reload_conf()")
    try:
        time.sleep(1)  # the archiver rereads its configuration
        primary.query("INSERT INTO archive_probe VALUES (now())")
        primary.query("SELECT pg_switch_wal()")
        exporter.wait_value("pg_stat_archiver_failed_count", lambda v: v >= 1,
                            "failed_count did not move with a failing archive_command")
    finally:
        primary.query("ALTER SYSTEM RESET archive_command")
        primary.query("SELECT pg_reload_conf()")
