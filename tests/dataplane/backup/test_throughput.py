"""Backup and restore throughput of a database of about 1 GB, beside pg_basebackup (bench/backup.py).
Prints the figures; asserts only that every step worked, never a speed."""

from __future__ import annotations

import os

from bench import backup as bench


def test_backup_and_restore_throughput_beside_pg_basebackup(backup_deps, capsys):
    scale = int(os.environ.get("PGC_BACKUP_BENCH_SCALE", "70"))
    figures = bench.measure(scale=scale, out=lambda line: None)
    assert figures["size"] > scale * 14 * 1000 * 1000, "pgbench scale 70 is about 1 GB"
    for step in ("pg_basebackup", "backup s3", "restore s3", "backup directory", "restore directory"):
        assert figures[step] > 0, step
    with capsys.disabled():
        print()
        bench.report(figures)
