"""The backup throughput benchmark (bench/backup.py, `make bench-backup`) still runs end to end, on
a small database: every step works. The 1 GB figures are the benchmark's, not this test's."""

from __future__ import annotations

from bench import backup as bench


def test_backup_throughput_benchmark_runs_every_step(backup_deps):
    figures = bench.measure(scale=2, out=lambda line: None)
    assert figures["size"] > 2 * 14 * 1000 * 1000, "pgbench scale 2 is about 30 MB"
    for step in ("pg_basebackup", "backup s3", "restore s3", "backup directory", "restore directory",
                 "drill directory"):
        assert figures[step] > 0, step
