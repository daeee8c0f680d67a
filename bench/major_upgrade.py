"""Major upgrade (PostgreSQL 15 -> 16) of a ~1 GB database with the major-upgrade Job's script,
beside floors measured in the same run. Prints figures, asserts nothing about speed.

A pgbench database (scale 70 by default, about 1 GB) on a local PostgreSQL 15, stopped: the
pristine copy. Each run starts from a fresh `cp -a` of it (timed, and with a `sync -f` after it
as pg_upgrade flushes what it wrote: the floors of copy mode, which writes a second copy of the
data) and measures, on that copy:

- the floor: the cluster writable (an INSERT committed), then a fast stop (the shutdown checkpoint),
  a start and the first INSERT committed again: what any restart of the primary costs;
- the write outage of the upgrade: from the fast stop of 15 to the first INSERT committed on 16,
  through `pgc-major-upgrade.sh --mode=link|copy` (pg_upgrade --check, pg_upgrade, the swap) and a
  start with 16's binaries;
- in copy mode, the rollback: from the stop of 16 to the first INSERT committed on 15 again, through
  `pgc-major-upgrade.sh --rollback`, beside the same restart floor;
- `vacuumdb --all --analyze-in-stages` on 16 afterwards (online, not part of the outage).

Medians of --runs (3) per mode. What the operator adds on a real cluster (pausing Patroni,
resetting its DCS, Patroni starting the member and taking the leader lock, the replicas cloning)
is measured by tests/dataplane/backup/test_major_upgrade.py on a 20k-row cluster instead.

    python bench/major_upgrade.py [--scale 70] [--runs 3]

Needs PostgreSQL 15 and 16 as the backup data-plane tests do (hack/test-deps.sh), run as root or
as a user that can run PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.dataplane import harness as dataplane  # noqa: E402
from tests.dataplane.backup import harness  # noqa: E402

MB = 1000 * 1000


def timed(fn, *args) -> float:
    started = time.monotonic()
    fn(*args)
    return time.monotonic() - started


def insert(server) -> None:
    server.sql("INSERT INTO bench_marks VALUES (DEFAULT)")


def restart(server) -> None:
    server.stop()
    server.start()
    insert(server)


class Bench:
    def __init__(self, ws, pg16: Path, scale: int):
        self.ws = ws
        self.pg16 = pg16
        self.pristine = harness.Postgres(ws, "pristine")
        pristine = self.pristine
        pristine.initdb()
        pristine.configure(max_wal_size="4GB", checkpoint_timeout="30min")
        pristine.start()
        started = time.monotonic()
        pristine.run(dataplane.PG_BIN_DIR / "pgbench", "-i", "-s", str(scale), "-q", "postgres", timeout=3600)
        self.load_s = time.monotonic() - started
        pristine.sql("CREATE TABLE bench_marks (id bigserial PRIMARY KEY)")
        self.size = pristine.value("SELECT sum(pg_database_size(datname)) FROM pg_database")
        pristine.stop()

    def script(self, data_dir: Path, *args: str) -> dict:
        env = {"PGDATA": str(data_dir), "PGC_UPGRADE_OLD_BIN": str(dataplane.PG_BIN_DIR),
               "PGC_UPGRADE_NEW_BIN": str(self.pg16), "PGC_UPGRADE_USER": "postgres",
               "PGC_UPGRADE_PORT": str(harness.free_ports(1)[0])}
        proc = self.pristine.run(self.ws.bin / "pgc-major-upgrade.sh", *args, env=env, timeout=3600)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def run(self, mode: str, n: int) -> dict[str, float]:
        figures = {}
        name = f"{mode}{n}"
        data = self.ws.path("pg", name) / "data"
        subprocess.run(["sync"], check=True)
        figures["cp -a"] = timed(subprocess.run, ["cp", "-a", str(self.pristine.data_dir), str(data)])
        # pg_upgrade flushes the new cluster to disk before it ends; cp -a does not.
        figures["cp -a + sync"] = figures["cp -a"] + timed(subprocess.run, ["sync", "-f", str(data)])
        old = harness.Postgres(self.ws, name, data_dir=data)
        old.start()
        insert(old)
        figures["restart 15"] = timed(restart, old)

        started = time.monotonic()
        old.stop()
        result = self.script(data, f"--mode={mode}")
        assert result["result"] == "upgraded", result
        new = harness.Postgres(self.ws, name, data_dir=data, bin_dir=self.pg16)
        new.port = old.port
        new.start()
        insert(new)
        figures["outage"] = time.monotonic() - started
        figures["script"] = result["durations"]["total"]
        figures["pg_upgrade"] = result["durations"]["upgrade"]
        figures["restart 16"] = timed(restart, new)
        figures["analyze"] = timed(new.run, self.pg16 / "vacuumdb", "--all", "--analyze-in-stages", "--quiet")

        if mode == "copy":
            started = time.monotonic()
            new.stop()
            rolled = self.script(data, "--rollback")
            assert rolled["result"] == "rolled-back", rolled
            old.start()
            insert(old)
            figures["rollback"] = time.monotonic() - started
            figures["rollback script"] = rolled["durations"]["total"]
            figures["restart 15 after"] = timed(restart, old)
            old.stop()
        else:
            new.stop()
        shutil.rmtree(data.parent)
        return figures


def report(size: float, load_s: float, runs: dict[str, list[dict]], out=print) -> None:
    def med(mode, key):
        return statistics.median(r[key] for r in runs[mode])

    n = len(next(iter(runs.values())))
    out(f"database size {size / MB:.0f} MB (pgbench load {load_s:.0f} s); medians of {n} runs")
    for mode in runs:
        out(f"  {mode} mode:")
        out(f"    {'write outage (stop 15 .. first INSERT on 16)':<56} {med(mode, 'outage'):6.1f} s"
            f"  ({med(mode, 'outage') / med(mode, 'restart 15'):.1f}x the restart floor)")
        out(f"    {'  of which pgc-major-upgrade.sh':<56} {med(mode, 'script'):6.1f} s"
            f"  (pg_upgrade itself {med(mode, 'pg_upgrade'):.1f} s)")
        out(f"    {'floor: restart of 15 (stop .. first INSERT)':<56} {med(mode, 'restart 15'):6.1f} s")
        out(f"    {'floor: cp -a of the data directory':<56} {med(mode, 'cp -a'):6.1f} s"
            f"  ({med(mode, 'cp -a + sync'):.1f} s with sync -f, as pg_upgrade flushes)")
        out(f"    {'restart of 16 afterwards':<56} {med(mode, 'restart 16'):6.1f} s")
        out(f"    {'vacuumdb --all --analyze-in-stages (online)':<56} {med(mode, 'analyze'):6.1f} s")
        if mode == "copy":
            out(f"    {'rollback (stop 16 .. first INSERT on 15)':<56} {med(mode, 'rollback'):6.1f} s"
                f"  ({med(mode, 'rollback') / med(mode, 'restart 15 after'):.1f}x the restart floor;"
                f" script {med(mode, 'rollback script'):.1f} s)")
            out(f"    {'floor: restart of 15 after the rollback':<56} {med(mode, 'restart 15 after'):6.1f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70 is about 1 GB)")
    parser.add_argument("--runs", type=int, default=3, help="runs per mode")
    args = parser.parse_args()
    try:
        harness.check_prerequisites()
        pg16 = harness.pg16_bin()
    except harness.BackupHarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    dataplane.sweep_orphans()
    ws = harness.Workspace()
    try:
        bench = Bench(ws, pg16, args.scale)
        runs = {mode: [bench.run(mode, n) for n in range(args.runs)] for mode in ("link", "copy")}
    except (harness.BackupHarnessError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        ws.close()
    report(bench.size, bench.load_s, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
