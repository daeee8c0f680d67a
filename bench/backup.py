"""Backup and restore throughput with pgBackRest, beside the floor of a plain pg_basebackup of the
same database in the same run. Prints figures, asserts nothing about speed.

A pgbench database (scale 70 by default, about 1 GB) on a local PostgreSQL 15; a full backup with
images/postgres/scripts/pgc-backup.sh to an S3 repository (moto behind nginx over TLS, encrypted, as an
S3 repository is by default) and to a directory repository (as on a volume, not encrypted); a
restore of each with pgc-restore.sh (which runs `pgbackrest verify` first: its time is printed
apart too); `pg_basebackup -D DIR -X stream` to local disk and a `cp -a` of its result as the
floors. MB/s is the database size (pg_database_size of all databases) over the wall time.

Then, on the same database, the path the operator takes (as tests/dataplane/backup/test_tls_remote.py
runs it), into a stanza of its own per repository: the database "pod" runs `pgbackrest server`
(pgc_pgbackrest_config role "pod", certificates of pgc_backup_tls) and archives WAL with that
configuration; the backup "Job" runs pgc-backup.sh with the role "job" configuration, reaching
PostgreSQL's files over TLS through localhost; the pod restores with pgc-restore.sh and its own
configuration: S3 directly (verify first, as above), the directory through the repository host's
TLS server (role "repo-host"), which pgc-restore.sh does not verify.

A restore drill (pgc-drill.sh, as the drill CronJob's Job runs it) of the directory repository's
backup is timed beside pgc-restore.sh of the same backup: its floor.

The S3 figures measure moto, a single-process Python server, as much as pgBackRest: they are a
lower bound of what a real object store gives.

    python bench/backup.py [--scale 70] [--process-max 2] [--option compress-level=1 ...]

Needs what the backup data-plane tests need (hack/test-deps.sh), run as root or as a user that can
run PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tests.unit.conftest  # noqa: E402,F401  (makes the collection's filters importable)
from tests.dataplane import harness as dataplane  # noqa: E402
from tests.dataplane.backup import harness  # noqa: E402

MB = 1000 * 1000
TLS_HOST = "localhost"  # on the certificate (extra_names), as <name>.<namespace>.svc is in a cluster


class OperatorPath:
    """One stanza taken and restored the way the operator does, on the bench's server: the database
    pod's TLS server and configuration, the backup Job's configuration (PostgreSQL remote, over TLS
    through localhost) and, for a directory, the repository host that the pod reaches it through."""

    def __init__(self, ws, name: str, backup: dict, server, ca_file: Path | None = None,
                 repo_dir: Path | None = None, options: dict | None = None):
        from ansible_collections.postgres.cluster.plugins.filter import backup as flt
        self.flt = flt
        self.ws = ws
        self.name = name
        self.pgc = harness._pgc(name, backup)
        self.settings = flt.pgc_pgbackrest_settings(self.pgc)
        self.s3 = self.settings["type"] == "s3"
        self.server = server
        self.ca_file = ca_file
        self.repo_dir = repo_dir
        self.options = options or {}
        self.pod_port, self.repo_port = harness.free_ports(2)
        self.tls_dir = harness.write_tls(ws, flt.pgc_backup_tls(self.pgc, extra_names=[TLS_HOST, harness.LOOPBACK]),
                                         name)
        self.dir = ws.path("pg", name)
        self.configs = {role: self._write(role) for role in ("pod", "job") + (() if self.s3 else ("repo-host",))}
        self.archive_command = flt.pgc_pgbackrest_archive_command(self.pgc, config=str(self.configs["pod"]))
        self.tls_servers: list[harness.TlsServer] = []

    def _write(self, role: str) -> Path:
        options = {"lock-path": str(self.ws.path("locks", self.name, role)),
                   # The endpoint keeps the name on the certificate; connections go to loopback.
                   "repo1-storage-host": harness.LOOPBACK if self.s3 else None, **self.options}
        text = self.flt.pgc_pgbackrest_config(
            self.pgc, role=role, pg_host=TLS_HOST, repo_host=TLS_HOST, tls_dir=str(self.tls_dir),
            pg_path=str(self.server.data_dir), socket_path=str(self.server.socket_dir), port=self.server.port,
            repo_path=str(self.repo_dir or ""), ca_file=str(self.ca_file or ""), options=options,
            tls_address=harness.LOOPBACK, tls_port=self.repo_port if role == "repo-host" else self.pod_port,
            pg_host_port=self.pod_port, repo_host_port=self.repo_port)
        path = self.dir / f"pgbackrest-{role}.conf"
        path.write_text(text)
        harness.give(path)
        return path

    def env(self, role: str) -> dict[str, str]:
        """What the pod, the Job or the repository host has in its environment (the Secrets)."""
        e = {"PGBACKREST_STANZA": self.name, "PGBACKREST_CONFIG": str(self.configs[role])}
        if self.s3:
            e.update({"PGBACKREST_REPO1_S3_KEY": harness.S3_KEY,
                      "PGBACKREST_REPO1_S3_KEY_SECRET": harness.S3_KEY_SECRET})
        # A volume's cipher is the repository host's business (and the Job's, which writes into it).
        if self.settings["encryption"] and (self.s3 or role != "pod"):
            e["PGBACKREST_REPO1_CIPHER_PASS"] = harness.CIPHER_PASS
        return e

    def start_tls_servers(self) -> None:
        if "repo-host" in self.configs:
            self.tls_servers.append(harness.TlsServer(self.ws, f"{self.name}-repo", self.configs["repo-host"],
                                                      self.repo_port, env=self.env("repo-host")).start())
        self.tls_servers.append(harness.TlsServer(self.ws, f"{self.name}-pod", self.configs["pod"], self.pod_port,
                                                  env=self.env("pod")).start())

    def run(self, role: str, *cmd, timeout: float = 3600):
        return self.server.run(*cmd, timeout=timeout, env=self.env(role))

    def job_backup(self) -> dict:
        """pgc-backup.sh as the backup Job runs it: its JSON line."""
        out = self.run("job", self.ws.bin / "pgc-backup.sh", "full").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()][0]

    def pod_restore(self, target: Path):
        """pgc-restore.sh in a database pod (its configuration)."""
        return self.run("pod", self.ws.bin / "pgc-restore.sh", f"--datadir={target}", "--archive-mode=off")

    def stop(self) -> None:
        for server in self.tls_servers:
            server.stop()


def timed(fn, *args, **kwargs) -> float:
    start = time.monotonic()
    fn(*args, **kwargs)
    return time.monotonic() - start


def measure(scale: int = 70, process_max: int = 2, options: dict | None = None, out=print) -> dict[str, float]:
    """Run the measurement; return seconds per step and the database size in bytes. ``options`` are
    pgbackrest.conf options over the rendered ones (to compare settings)."""
    harness.check_prerequisites()
    dataplane.sweep_orphans()
    dataplane._stop_on_sigterm()
    ws = harness.Workspace()
    figures: dict[str, float] = {}
    try:
        store = harness.ObjectStore(ws)
        store.start()
        store.create_bucket("bench")
        s3_spec = {**store.backup_spec("bench", "/pgc/bench/s3"), "processMax": process_max}
        s3 = harness.Cluster(ws, "bench", s3_spec, ca_file=store.ca_file, options=options)
        src = s3.server
        directory = harness.Cluster(ws, "benchdir", {"repository": {"volume": {}}, "processMax": process_max},
                                    repo_path=ws.path("repo-dir"), server=src, options=options)

        # Load without archiving (faster, and no WAL of the load piles up), then archive to both.
        src.initdb()
        src.configure(max_wal_size="4GB", checkpoint_timeout="30min", shared_buffers="256MB")
        src.start()
        out(f"loading pgbench scale {scale} ...")
        figures["load"] = timed(src.run, "pgbench", "-i", "-q", "-s", str(scale), "postgres", timeout=3600)
        src.stop()
        both = f"{s3.archive_command} && {directory.archive_command}"
        src.configure(archive_mode="on", archive_command=both)
        src.start(env={**s3.env(), **directory.env()})
        for cluster in (s3, directory):
            cluster.pgbackrest("stanza-create")
        figures["size"] = int(src.value("SELECT sum(pg_database_size(datname)) FROM pg_database"))

        floor_dir = ws.dir / "basebackup"
        figures["pg_basebackup"] = timed(src.run, "pg_basebackup", "-D", floor_dir, "-X", "stream", "-c", "fast",
                                         timeout=3600)
        copy_dir = ws.dir / "basebackup-copy"
        figures["cp -a"] = timed(src.run, "cp", "-a", floor_dir, copy_dir, timeout=3600)
        shutil.rmtree(floor_dir)
        shutil.rmtree(copy_dir)

        for label, cluster in (("s3", s3), ("directory", directory)):
            backup = {}

            def run_backup(cluster=cluster, backup=backup):
                backup.update(cluster.script_json("pgc-backup.sh", "full")[0])
            figures[f"backup {label}"] = timed(run_backup)
            figures[f"stored {label}"] = backup["repository_size"]
            figures[f"verify {label}"] = timed(cluster.pgbackrest, "verify")
            target = ws.dir / f"restore-{label}"
            figures[f"restore {label}"] = timed(cluster.restore, target)
            shutil.rmtree(target)
        # A restore drill of the directory's backup as its Job runs it: restore, recovery, pg_amcheck.
        drill = {}

        def run_drill(drill=drill):
            drill["rc"], drill["result"], drill["log"] = harness.run_drill(directory)
        figures["drill directory"] = timed(run_drill)
        if drill["rc"] != 0:
            raise harness.BackupHarnessError("the drill failed: %s" % drill["result"].get("reason"))

        # The operator's path, into stanzas of their own (one backup each, as above): archiving now
        # goes by the pod's configuration to those (the stanzas above have all they need).
        tls_s3 = OperatorPath(ws, "benchtls", {**store.backup_spec("bench", "/pgc/bench/s3-tls"),
                                               "processMax": process_max},
                              src, ca_file=store.ca_file, options=options)
        tls_dir = OperatorPath(ws, "benchtlsdir", {"repository": {"volume": {}}, "processMax": process_max}, src,
                               repo_dir=ws.path("repo-dir-tls"), options=options)
        operator_paths = (("s3 over TLS", tls_s3), ("directory over TLS", tls_dir))
        try:
            for _, path in operator_paths:
                path.start_tls_servers()
            for _, path in operator_paths:
                path.run("job", "pgbackrest", "stanza-create")
            set_archive_command(src, f"{tls_s3.archive_command} && {tls_dir.archive_command}")
            for label, path in operator_paths:
                backup = {}

                def run_backup(path=path, backup=backup):
                    backup.update(path.job_backup())
                figures[f"backup {label}"] = timed(run_backup)
                figures[f"stored {label}"] = backup["repository_size"]
                if path.s3:  # what pgc-restore.sh runs first, with the pod's configuration
                    figures[f"verify {label}"] = timed(path.run, "pod", "pgbackrest", "verify")
                target = ws.dir / f"restore-{label.replace(' ', '-')}"
                figures[f"restore {label}"] = timed(path.pod_restore, target)
                shutil.rmtree(target)
        finally:
            for _, path in operator_paths:
                path.stop()
        return figures
    finally:
        ws.close()


def set_archive_command(server, command: str) -> None:
    from psycopg import sql
    server.sql(sql.SQL("ALTER SYSTEM SET archive_command = {}").format(sql.Literal(command)))
    server.sql("SELECT pg_reload_conf()")
    harness.wait_for(lambda: server.value("SHOW archive_command") == command, 30, "archive_command not reloaded")


def report(figures: dict[str, float], out=print) -> None:
    size = figures["size"]

    def line(name, seconds, note=""):
        out(f"  {name:<60} {seconds:7.1f} s  {size / MB / seconds:8.1f} MB/s{note}")
    out(f"database size {size / MB:.0f} MB (pgbench load {figures['load']:.0f} s)")
    line("pg_basebackup -X stream to local disk (floor)", figures["pg_basebackup"])
    line("cp -a of that copy (restore floor)", figures["cp -a"])
    for label in ("s3", "directory"):
        stored = figures[f"stored {label}"]
        ratio = figures["pg_basebackup"] / figures[f"backup {label}"]
        line(f"pgc-backup.sh full, {label}", figures[f"backup {label}"],
             f"  ({ratio:.0%} of pg_basebackup; stored {stored / MB:.0f} MB)")
        line(f"pgbackrest verify, {label}", figures[f"verify {label}"])
        restore = figures[f"restore {label}"]
        line(f"pgc-restore.sh latest, {label} (with verify)", restore)
        line(f"  restore alone, {label}", max(0.1, restore - figures[f"verify {label}"]))
    drill = figures["drill directory"]
    line("pgc-drill.sh (restore, recovery, pg_amcheck --heapallindexed), directory", drill,
         f"  ({drill / figures['restore directory']:.1f}x pgc-restore.sh of the same backup)")
    for label in ("s3 over TLS", "directory over TLS"):
        if f"backup {label}" not in figures:
            continue
        stored = figures[f"stored {label}"]
        ratio = figures["pg_basebackup"] / figures[f"backup {label}"]
        line(f"pgc-backup.sh full by the Job, {label}", figures[f"backup {label}"],
             f"  ({ratio:.0%} of pg_basebackup; stored {stored / MB:.0f} MB)")
        restore = figures[f"restore {label}"]
        if f"verify {label}" in figures:
            line(f"pgbackrest verify by the pod, {label}", figures[f"verify {label}"])
            line(f"pgc-restore.sh latest by the pod, {label} (with verify)", restore)
            line(f"  restore alone, {label}", max(0.1, restore - figures[f"verify {label}"]))
        else:
            line(f"pgc-restore.sh latest by the pod, {label}", restore, "  (via the repository host, no verify)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70 is about 1 GB)")
    parser.add_argument("--process-max", type=int, default=2, help="pgBackRest process-max")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a pgbackrest.conf option over the rendered ones (repeatable)")
    args = parser.parse_args()
    options = dict(o.split("=", 1) for o in args.option)
    try:
        figures = measure(args.scale, args.process_max, options)
    except (harness.BackupHarnessError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
