"""The primary killed during a backup: a synchronous 3-member cluster of real Patroni and PostgreSQL
members (the data-plane harness, the local API server as their store) that archives its WAL to an
S3 repository over TLS (moto behind nginx), each member with pgBackRest's TLS server beside it as in
its pod, and the backup Job's script (pgc-backup.sh with the Job's configuration) reaching the
primary through that server.

While a client commits rows and a full backup is being copied, the primary is killed as on node
loss (Patroni, PostgreSQL and the pod's TLS server, SIGKILL). What must hold:

* the backup fails, promptly and saying so, and adds no backup to the repository;
* the synchronous standby takes over with every acknowledged row;
* the Job's retry, once the read-write Service names the new primary, takes a whole backup there,
  on the new timeline;
* that backup, and the one taken before the failover, restore with every row the new primary has:
  the WAL archive goes on across the failover.

The configuration is the fixture's (ttl 20, loop_wait 2) with what the operator adds for a backup
repository (pgc_patroni_backup_config: archive_mode, archive_command, the replicas'
restore_command); each member's pgbackrest.conf is pgc_pgbackrest_config's "pod" and the Job's its
"job", with loopback addresses and the member's paths.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time

import pytest
import yaml

from tests.dataplane.backup.harness import (CIPHER_PASS, LOOPBACK, S3_KEY, S3_KEY_SECRET, Cluster, Postgres, TlsServer,
                                            _pgc, free_ports, give, merge_into, write_tls)
from tests.dataplane.backup.test_backup_restore import volume_spec
from tests.dataplane.conftest import CLUSTER_LABEL, REPLICAS, cluster_objects, patroni_config, pods_running
from tests.dataplane.harness import DataPlane, kill_tree, wait_for
from tests.dataplane.test_failover import _logs_on_failure, _one_sync_standby, _Writer

CLUSTER = "pgbk"
BUCKET = "pgbk"
# On the backup certificate (extra_names), as <name>.<namespace>.svc is in a cluster.
HOST = "localhost"
TABLE = "backup_rows"
# Enough data that the copy is surely under way when the primary is killed.
PAD_ROWS = 300_000

pytestmark = pytest.mark.timeout(600)


def _flt():
    from ansible_collections.postgres.cluster.plugins.filter import backup as flt
    return flt


class Backups:
    """The pgBackRest side of each member (configuration, environment, TLS server) and the backup
    Job's runs against whichever member is the primary."""

    def __init__(self, ws, store):
        self.ws = ws
        self.store = store
        self.pgc = _pgc(CLUSTER, store.backup_spec(BUCKET, f"/pgc/faults/{CLUSTER}"), retention=4)
        self.tls_dir = write_tls(ws, _flt().pgc_backup_tls(self.pgc, extra_names=[HOST, LOOPBACK]), CLUSTER)
        self.tls_ports: dict[str, int] = {}
        self.tls_servers: dict[str, TlsServer] = {}
        self.jobs = 0

    def patroni_config(self) -> str:
        cfg = yaml.safe_load(patroni_config())
        cfg["scope"] = CLUSTER
        cfg["kubernetes"]["labels"] = {CLUSTER_LABEL: CLUSTER}
        cfg["bootstrap"]["dcs"]["synchronous_mode"] = True
        # pgbackrest.conf is the member's own here (PGBACKREST_CONFIG), where a pod has it at its
        # default path: the commands are the operator's otherwise.
        merge_into(cfg, _flt().pgc_patroni_backup_config(self.pgc))
        return yaml.safe_dump(cfg, sort_keys=False)

    def render(self, role: str, member, name: str) -> str:
        options = {"lock-path": str(self.ws.path("locks", name)),
                   # The endpoint keeps the name on the certificate; connections go to loopback.
                   "repo1-storage-host": LOOPBACK}
        if role == "job":
            # Each file copied is logged ("backup file"): the fault lands while files are copied.
            options["log-level-console"] = "detail"
        return _flt().pgc_pgbackrest_config(
            self.pgc, role=role, pg_host=HOST, tls_dir=str(self.tls_dir), pg_path=str(member.data_dir),
            socket_path=str(member.socket_dir), port=member.pg_port, ca_file=str(self.store.ca_file),
            options=options, tls_address=LOOPBACK, tls_port=self.tls_ports.get(member.pod, 0),
            pg_host_port=self.tls_ports.get(member.pod, 0))

    def write(self, name: str, text: str):
        path = self.ws.path("pgbackrest") / f"{name}.conf"
        path.write_text(text)
        give(path)
        return path

    def env(self, config) -> dict[str, str]:
        """What a pod or the Job has from the cluster's Secrets and its configuration's path."""
        e = {"PGBACKREST_STANZA": CLUSTER, "PGBACKREST_CONFIG": str(config),
             "PGBACKREST_REPO1_S3_KEY": S3_KEY, "PGBACKREST_REPO1_S3_KEY_SECRET": S3_KEY_SECRET}
        if _flt().pgc_pgbackrest_settings(self.pgc)["encryption"]:
            e["PGBACKREST_REPO1_CIPHER_PASS"] = CIPHER_PASS
        return e

    def member_env(self, member) -> dict[str, str]:
        """The DataPlane's member_env: the member's pgbackrest.conf (written here, where its port and
        paths are known) in the environment of Patroni, and so of archive_command."""
        self.tls_ports.setdefault(member.pod, free_ports(1)[0])
        return self.env(self.write(member.pod, self.render("pod", member, member.pod)))

    def start_tls_server(self, member) -> None:
        config = self.ws.path("pgbackrest") / f"{member.pod}.conf"
        self.tls_servers[member.pod] = TlsServer(self.ws, member.pod, config, self.tls_ports[member.pod],
                                                 env=self.env(config)).start()

    def kill_tls_server(self, pod: str) -> None:
        """SIGKILL of the server and of the processes it started for its connections, as the pod's
        end kills them all: those would otherwise go on reading the data directory."""
        kill_tree(self.tls_servers.pop(pod).proc.pid, f"the TLS server of {pod}")

    def job(self, member, log_name: str, env: dict | None = None):
        """pgc-backup.sh as the backup Job runs it, the read-write Service naming ``member``; the
        running process and its log."""
        self.jobs += 1
        config = self.write(f"job-{self.jobs}", self.render("job", member, f"job-{self.jobs}"))
        log = self.ws.path("jobs") / f"{log_name}.log"
        return self.ws.spawn([self.ws.bin / "pgc-backup.sh", "full"], log, as_owner=True,
                             env={**self.env(config), **(env or {})}), log

    def info(self, member) -> dict:
        config = self.write("info", self.render("job", member, "info"))
        out = Postgres(self.ws, "pgbk-info").run("pgbackrest", "info", "--output=json", env=self.env(config)).stdout
        return json.loads(out)[0]

    def restore(self, member, name: str, *args: str) -> Postgres:
        """pgc-restore.sh into a scratch directory, the copy started on its own and promoted."""
        copy = Postgres(self.ws, name)
        config = self.write(name, _flt().pgc_pgbackrest_config(
            self.pgc, role="local", pg_path=str(copy.data_dir), socket_path=str(copy.socket_dir), port=copy.port,
            ca_file=str(self.store.ca_file),
            options={"lock-path": str(self.ws.path("locks", name)), "repo1-storage-host": LOOPBACK}))
        copy.run(self.ws.bin / "pgc-restore.sh", f"--datadir={copy.data_dir}", "--archive-mode=off", *args,
                 env=self.env(config))
        copy.start(env=self.env(config))
        copy.wait_promoted()
        return copy


def _finished(proc, log, timeout, message):
    wait_for(lambda: proc.poll() is not None, timeout, f"{message}\n{log.read_text(errors='replace')[-3000:]}",
             interval=0.2)
    return proc.returncode, log.read_text(errors="replace")


def _writes(plane, pod) -> bool:
    """Whether ``pod`` takes a write (a promoted member is writable only once its promotion ended)."""
    try:
        plane.execute(pod, f"INSERT INTO {TABLE} VALUES (0) ON CONFLICT DO NOTHING", timeout=2)
        return True
    except Exception:  # noqa: BLE001 - still read-only, or not answering yet
        return False


def _result(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


@pytest.fixture(scope="module")
def backed_up_plane(kube, dataplane_deps, namespace, workspace, object_store):
    object_store.create_bucket(BUCKET)
    backups = Backups(workspace, object_store)
    objs = {"apiVersion": "v1", "kind": "List", "items": cluster_objects(CLUSTER, backups.patroni_config())}
    kube.run("apply", "--server-side", "--field-manager=fault-test", "-n", namespace, "-f", "-", input=json.dumps(objs))
    wait_for(lambda: pods_running(kube, namespace, CLUSTER, REPLICAS), 60,
             f"the {REPLICAS} kwok pods of {CLUSTER} did not become Running/Ready")
    plane = DataPlane(namespace, CLUSTER, kube=kube, member_env=backups.member_env)
    with plane.started(), contextlib.ExitStack() as stop:
        for member in plane.members.values():
            backups.start_tls_server(member)
        stop.callback(lambda: [s.stop() for s in backups.tls_servers.values()])
        yield plane, backups


def test_the_primary_killed_during_a_backup_loses_no_row_and_the_retry_backs_up_the_new_primary(backed_up_plane,
                                                                                                 summary):
    plane, backups = backed_up_plane
    with _logs_on_failure(plane):
        old = plane.wait_streaming(timeout=120)
        wait_for(lambda: _one_sync_standby(plane, old), 60, f"{old} has no synchronous standby")
        # The first backup creates the stanza: the one the WAL archive must extend past the failover.
        proc, log = backups.job(plane.member(old), "first")
        rc, text = _finished(proc, log, 180, "the first backup did not finish")
        assert rc == 0, f"the first backup failed:\n{text[-3000:]}"
        first = _result(text)
        plane.execute(old, "CREATE TABLE pad (id int PRIMARY KEY, v text)")
        plane.execute(old, "INSERT INTO pad SELECT g, md5(random()::text) || md5(random()::text) "
                           "FROM generate_series(1, %s) g", (PAD_ROWS,), timeout=300)
        plane.execute(old, f"CREATE TABLE {TABLE} (v bigint PRIMARY KEY)")

        writer = _Writer(plane, old, TABLE)
        writer.start()
        wait_for(lambda: len(writer.acked) > 100 or writer.error, 60, "the writer does not commit")
        assert writer.error is None, f"the writer failed before the fault: {writer.error!r}"
        proc, log = backups.job(plane.member(old), "killed")
        wait_for(lambda: proc.poll() is not None or "DETAIL: backup file " in log.read_text(errors="replace"),
                 120, "the backup did not start copying from the primary")
        assert proc.poll() is None, f"the backup ended before the fault:\n{log.read_text()[-3000:]}"

        plane.kill_member(old)
        backups.kill_tls_server(old)
        killed = time.monotonic()
        # The backup fails, and the script checks again until the read-write Service names a primary
        # whose archiving works (the next test sees it through). Here each member has paths of its
        # own, which a running Job's configuration cannot follow: the Job is stopped once it waits,
        # and the one run on the new primary stands for its check passing there.
        wait_for(lambda: proc.poll() is not None or "checking again" in log.read_text(errors="replace"), 120,
                 f"the backup did not notice that its primary was killed\n{log.read_text(errors='replace')[-3000:]}")
        failed_after = time.monotonic() - killed
        text = log.read_text(errors="replace")
        assert proc.poll() is None, f"the backup Job gave up instead of waiting for a primary:\n{text[-3000:]}"
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        errors = [line.split("ERROR:", 1)[1].strip() for line in text.splitlines() if "ERROR:" in line]
        why = errors[0][:120] if errors else "no pgBackRest error"

        new = plane.wait_for_leader(timeout=90, exclude=(old,))
        wait_for(lambda: _writes(plane, new), 60, f"the new primary {new} takes no write")
        writable = time.monotonic() - killed
        writer.join(15)
        acked = list(writer.acked)
        present = {r[0] for r in plane.execute(new, f"SELECT v FROM {TABLE}")}
        lost = sorted(set(acked) - present)
        assert not lost, f"{len(lost)} acknowledged commits are missing on {new}: {lost[:20]}"
        labels_before_retry = [b["label"] for b in backups.info(plane.member(new))["backup"]]
        assert labels_before_retry == [first["label"]], "the killed backup was recorded as a backup"

        # The Job's retry: the read-write Service names the new primary.
        retried_at = time.monotonic()
        proc, log = backups.job(plane.member(new), "retry")
        rc, text = _finished(proc, log, 300, "the retried backup did not finish")
        retry_seconds = time.monotonic() - retried_at
        assert rc == 0, f"the retried backup failed on the new primary {new}:\n{text[-3000:]}"
        retry = _result(text)
        timeline = plane.execute(new, "SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
        assert timeline >= 2 and int(retry["wal_start"][:8], 16) == timeline, retry
        resumed = "resumable backup" in text

        plane.execute(new, f"INSERT INTO {TABLE} VALUES (-1)")
        expected = {r[0] for r in plane.execute(new, f"SELECT v FROM {TABLE}")}
        segment = plane.execute(new, "SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        wait_for(lambda: (plane.execute(new, "SELECT last_archived_wal FROM pg_stat_archiver")[0][0] or "") >= segment,
                 60, f"the new primary {new} does not archive its WAL")
        restored = {}
        for label in (retry["label"], first["label"]):
            started = time.monotonic()
            copy = backups.restore(plane.member(new), f"restored-{label}", f"--set={label}")
            rows = {r[0] for r in copy.sql(f"SELECT v FROM {TABLE}")}
            copy.stop()
            missing = sorted(expected - rows)
            assert not missing, (f"the backup {label} restored without {len(missing)} rows the new primary has "
                                 f"(the WAL archive broke at the failover): {missing[:20]}")
            restored[label] = time.monotonic() - started
    summary.append(
        f"primary {old} killed while a full backup was copied from it, in synchronous {CLUSTER}: "
        f"the backup failed {failed_after:.1f} s after ({why}), adding no backup, and waited for a primary; {new} took writes {writable:.1f} s after the "
        f"kill; the retry on {new} took {retry_seconds:.1f} s{' (resumed)' if resumed else ''}, on timeline "
        f"{timeline}; the retried and the earlier backup each restore every row ({restored[retry['label']]:.1f} s, "
        f"{restored[first['label']]:.1f} s across the failover); 0 of {len(acked)} acknowledged commits lost")


def test_a_backup_whose_primary_restarts_mid_copy_waits_for_it_and_completes(workspace, summary):
    """The same fault seen from the Job: its primary killed while the backup is copied from it, and a
    primary answering again behind the same address (here the same server restarted; in a cluster,
    the read-write Service naming the new primary). pgc-backup.sh checks again every 5 s and takes
    the backup there: it succeeds, and the repository holds that one backup."""
    cluster = Cluster(workspace, "pgbk-restart", volume_spec(), repo_path=workspace.dir / "repo-pgbk-restart",
                      options={"log-level-console": "detail"})
    server = cluster.init()
    server.sql("CREATE TABLE pad (id int PRIMARY KEY, v text)")
    server.sql("INSERT INTO pad SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, %s) g",
               (PAD_ROWS,))
    log = workspace.path("jobs") / "restart.log"
    proc = workspace.spawn([workspace.bin / "pgc-backup.sh", "full"], log, as_owner=True,
                           env={**server.libpq_env(), **cluster.env()})
    wait_for(lambda: proc.poll() is not None or "DETAIL: backup file " in log.read_text(errors="replace"), 120,
             "the backup did not start copying")
    assert proc.poll() is None, f"the backup ended before the fault:\n{log.read_text()[-3000:]}"
    # PostgreSQL killed whole (the postmaster and every backend), as its container's end kills it.
    kill_tree(int((server.data_dir / "postmaster.pid").read_text().split()[0]), "PostgreSQL")
    killed = time.monotonic()
    wait_for(lambda: proc.poll() is not None or "checking again" in log.read_text(errors="replace"), 120,
             "the backup did not notice that its primary was gone")
    assert proc.poll() is None, f"the backup gave up:\n{log.read_text()[-3000:]}"
    # A new container: the dead postmaster (a zombie until something reaps it here) leaves its lock
    # files, in the data directory and beside its socket.
    for lock in [server.data_dir / "postmaster.pid", *server.socket_dir.glob(".s.PGSQL.*")]:
        lock.unlink()
    server.start(env=cluster.env())
    rc, text = _finished(proc, log, 300, "the backup did not finish once its primary was back")
    took = time.monotonic() - killed
    assert rc == 0, f"the backup failed with its primary back:\n{text[-3000:]}"
    assert "the check passes again: taking the full backup once more" in text, text[-3000:]
    assert [b["label"] for b in cluster.info()["backup"]] == [_result(text)["label"]]
    summary.append(f"primary killed (and back) while a full backup was copied from it: the Job checked again and "
                   f"finished the backup {took:.1f} s after the kill")
