"""Backup and restore throughput with pgBackRest, beside the floor of a plain pg_basebackup of the
same database in the same run. Prints figures, asserts nothing about speed.

A pgbench database (scale 70 by default, about 1 GB) on a local PostgreSQL 15; a full backup with
images/postgres/scripts/pgc-backup.sh to an S3 repository (moto behind nginx over TLS, encrypted, as an
S3 repository is by default) and to a directory repository (as on a volume, not encrypted); a
restore of each with pgc-restore.sh (which runs `pgbackrest verify` first: its time is printed
apart too); `pg_basebackup -D DIR -X stream` to local disk and a `cp -a` of its result as the
floors. MB/s is the database size (pg_database_size of all databases) over the wall time.

The S3 figures measure moto, a single-process Python server, as much as pgBackRest: they are a
lower bound of what a real object store gives.

    python bench/backup.py [--scale 70] [--process-max 2] [--option compress-level=1 ...]

Needs what the backup data-plane tests need (hack/test-deps.sh), run as root or as a user that can
run PostgreSQL.
"""

from __future__ import annotations

import argparse
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
        return figures
    finally:
        ws.close()


def report(figures: dict[str, float], out=print) -> None:
    size = figures["size"]

    def line(name, seconds, note=""):
        out(f"  {name:<44} {seconds:7.1f} s  {size / MB / seconds:8.1f} MB/s{note}")
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
