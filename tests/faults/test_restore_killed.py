"""The primary killed during a restore: pgc-restore-in-place.sh, the script the restore playbook's Job
runs on the data volume of the member that becomes the primary, with real PostgreSQL 15 and
pgBackRest processes (the backup data-plane harness) and a volume repository. The data is restored
to a time T again and again, with a different fault each time:

* the Job killed outright (SIGKILL to its whole process group) while pgBackRest copies the files;
* the recovering PostgreSQL (the primary to be) killed (SIGKILL of its postmaster) while it replays
  the archived WAL towards T: the script fails, saying the data directory is as it was, and it is;
* the whole Job killed outright while PostgreSQL replays the WAL; PostgreSQL is then killed as well,
  as the pod's death would, pg_ctl having started it in a session of its own;
* the Job told to stop (SIGTERM to the script alone, as the kubelet does) while PostgreSQL replays
  the WAL: the script stops PostgreSQL before it puts the data back, and fails.

What must hold: a killed run leaves the data as it was aside, never lost; a run that fails puts it
back; the next run of the script puts it back first when it is aside, restores again and succeeds;
the restored server is a primary (not in recovery) on a new timeline, with every row committed up to
T and none committed after it. The summary gives the recovery time, from the rerun's start until the
restored server accepts a write.

Each restore starts from the data the previous one left, with rows committed after T on it: the
recovery follows the newest timeline in the archive (recovery_target_timeline's default, latest),
stops at T on it and promotes to the next one. Those rows are archived: a timeline with no commit
after T in the archive ends the recovery before its target, which PostgreSQL refuses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.dataplane.backup.harness import Cluster, Postgres, Workspace, utc_now
from tests.dataplane.backup.test_backup_restore import add_marks
from tests.dataplane.backup.test_restore_in_place import backed_up
from tests.dataplane.harness import _alive, wait_for

SCRIPT = "pgc-restore-in-place.sh"
MiB = 1 << 20
# Marks 1..100 are in the backup, 101..200 are committed after it and before T.
MARKS_AT_T = 200
# Big enough for pgBackRest's copy (the backup) and PostgreSQL's replay (the WAL between the backup
# and T, one archive-get per segment) to last a few seconds each: long enough to be caught.
BALLAST_ROWS = 600_000
CHURN_ROUNDS, CHURN_ROWS = 8, 100_000
# A WAL segment (not a timeline history file) fetched by archive-get during a recovery.
SEGMENT_RESTORED = re.compile(r'restored log file "[0-9A-F]{24}" from archive')

pytestmark = pytest.mark.timeout(300)


@dataclasses.dataclass
class Restore:
    """A stopped server whose repository has a full backup and the WAL past T, and what its restores
    to T have given so far."""

    ws: Workspace
    cluster: Cluster
    server: Postgres
    target: str
    backup_mib: int
    wal_mib: int
    timeline: int = 1
    jobs: int = 0

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    @property
    def aside(self) -> Path:
        return self.data_dir.parent / (self.data_dir.name + ".before-restore")

    def env(self) -> dict[str, str]:
        return {"PGDATA": str(self.data_dir)}


def _load(server) -> None:
    server.sql("CREATE TABLE probes (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    server.sql("CREATE TABLE ballast (id int, pad text) WITH (autovacuum_enabled = off)")
    server.sql("ALTER TABLE ballast ALTER COLUMN pad SET STORAGE PLAIN")
    server.sql("INSERT INTO ballast SELECT g, repeat(md5(g::text), 12) FROM generate_series(1, %s) g", (BALLAST_ROWS,))


@pytest.fixture(scope="module")
def restore(workspace):
    cluster, server, label = backed_up(workspace, "killed", load=_load)
    backup = next(b for b in cluster.info()["backup"] if b["label"] == label)
    start = server.value("SELECT pg_current_wal_lsn()")
    server.sql("CREATE TABLE churn (pad text) WITH (autovacuum_enabled = off)")
    for _ in range(CHURN_ROUNDS):
        server.sql("INSERT INTO churn SELECT repeat(md5(g::text), 12) FROM generate_series(1, %s) g", (CHURN_ROWS,))
        server.sql("TRUNCATE churn")
    add_marks(server, 101, MARKS_AT_T, "before T")
    wal = server.value("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)::bigint", (start,))
    target = utc_now(server)
    server.switch_wal_and_wait_archived(timeout=120)
    add_marks(server, MARKS_AT_T + 1, MARKS_AT_T + 100, "after T")
    server.switch_wal_and_wait_archived()
    server.stop()
    return Restore(workspace, cluster, server, target, backup["info"]["size"] // MiB, wal // MiB)


def _as_it_was(r: Restore, fault: int) -> set[int]:
    """Rows committed after T on the data as it is before a restore (archived, so that a restore to T
    along this timeline finds a commit past T); the ids of the marks it holds."""
    r.server.start(env=r.cluster.env())
    add_marks(r.server, 1000 * fault + 1, 1000 * fault + 50, f"on the data as it was before restore {fault}")
    r.server.switch_wal_and_wait_archived()
    ids = _marks(r.server)
    r.server.stop()
    return ids


def _marks(server) -> set[int]:
    return {row[0] for row in server.sql("SELECT id FROM marks")}


def _job(r: Restore):
    """The restore Job's script, started in a process group of its own; (process, its log)."""
    r.jobs += 1
    log = r.ws.dir / f"restore-job-{r.jobs}.log"
    env = {**r.server.libpq_env(), **r.cluster.env(), **r.env()}
    return r.ws.spawn([r.ws.bin / SCRIPT, f"--target-time={r.target}"], log, as_owner=True, env=env), log


def _group(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group."""
    pids = []
    for p in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                pids.append(p.pid)
    return pids


def _groups(pid: int) -> set[int]:
    """The process groups of a process and of its descendants. Each child of a postmaster leads a
    group of its own (with the commands it runs, archive-get among them)."""
    groups = set()
    with contextlib.suppress(psutil.Error):
        for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(p.pid))
    return groups


def _kill_groups(groups) -> None:
    """SIGKILL to every process of the groups, then wait until none lives."""
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    wait_for(lambda: not any(_group(g) for g in groups), 20, f"processes of groups {groups} outlived SIGKILL",
             interval=0.05)


def _kill_job(proc) -> None:
    _kill_groups({proc.pid})
    proc.wait(10)


def _postmaster(data_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    return None


def _recovery_log(r: Restore, before: set[Path]) -> Path | None:
    """The log of the PostgreSQL that the script started (in its private socket directory)."""
    new = [d for d in r.ws.tmp.glob("pgc-restore-socket.*") if d not in before]
    return new[0] / "postgresql.log" if new else None


def _text(path: Path | None) -> str:
    with contextlib.suppress(OSError, TypeError):
        return path.read_text(errors="replace")
    return ""


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _job_replaying(r: Restore):
    """The Job started, and caught once its PostgreSQL replays archived WAL (pg_ctl start returned,
    at least one segment restored, not promoted yet): (process, its log, the postmaster's pid,
    PostgreSQL's log)."""
    before = set(r.ws.tmp.glob("pgc-restore-socket.*"))
    proc, log = _job(r)

    def caught():
        if proc.poll() is not None:
            return "ended", None
        pglog = _recovery_log(r, before)
        text = _text(pglog)
        pid = _postmaster(r.data_dir)
        # "server started": pg_ctl -w returned (the restored data is consistent), the script now
        # waits for the promotion.
        if ("recovering to the target" in _text(log) and "server started" in _text(log) and pid
                and SEGMENT_RESTORED.search(text) and "selected new timeline ID" not in text):
            return pid, pglog
        return None

    pid, pglog = wait_for(caught, 120, "the script's PostgreSQL was not seen replaying WAL", interval=0.05)
    assert pid != "ended", f"the Job ended ({proc.returncode}) before it was caught replaying WAL:\n{_text(log)}"
    return proc, log, pid, pglog


def _replayed(pglog: Path) -> int:
    """How many WAL segments the killed PostgreSQL had restored from the archive, checked to have
    been killed before it promoted."""
    text = _text(pglog)
    assert "selected new timeline ID" not in text and "archive recovery complete" not in text, \
        f"PostgreSQL had promoted before the kill:\n{text[-2000:]}"
    return len(SEGMENT_RESTORED.findall(text))


def _failed_and_put_back(r: Restore, proc, log: Path, message: str, as_it_was: set[int]) -> None:
    """The script ended on its own, failing with ``message``, and the data directory is the data as
    it was."""
    wait_for(lambda: proc.poll() is not None, 60, "the script did not end", interval=0.05)
    out = _text(log)
    assert proc.returncode != 0 and f"{message}: the data directory is as it was" in out, out
    assert not r.aside.exists(), "the data as it was is put back"
    r.server.start(env=r.cluster.env())
    assert _marks(r.server) == as_it_was, "the data directory is the data as it was"
    r.server.stop()


def _write(server) -> bool:
    server.sql("INSERT INTO probes DEFAULT VALUES")
    return True


def _rerun(r: Restore, summary: list[str], fault: str, as_it_was: set[int], put_back: bool) -> None:
    """The Job again: it must put the data as it was back first (when ``put_back``) and restore to T.
    Appends the fault's summary line."""
    started = time.monotonic()
    proc = r.cluster.script(SCRIPT, f"--target-time={r.target}", env=r.env())
    if put_back:
        assert "an earlier restore did not finish: putting the data as it was" in proc.stderr, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not r.aside.exists(), "the data as it was is removed once the restore succeeded"
    r.server.start(env=r.cluster.env())
    wait_for(lambda: _write(r.server), 60, "the restored server does not take a write", interval=0.05)
    recovered = time.monotonic() - started

    assert r.server.in_recovery() is False, "the restored server is a primary"
    timeline = r.server.value("SELECT timeline_id FROM pg_control_checkpoint()")
    assert result["timeline"] == timeline == r.timeline + 1, \
        f"a new timeline after {r.timeline}: the script says {result['timeline']}, pg_control {timeline}"
    r.timeline = timeline
    present = _marks(r.server)
    expected = set(range(1, MARKS_AT_T + 1))
    lost, after = sorted(expected - present), sorted(present - expected)
    assert not lost, f"{len(lost)} rows committed before T are missing: {lost[:20]}"
    assert not after, f"{len(after)} rows committed after T were restored: {after[:20]}"
    assert as_it_was - expected, "the data as it was had rows after T (the restore replaced it)"
    r.server.stop()
    summary.append(f"{fault}: the rerun restored to T ({r.backup_mib} MiB backup, {r.wal_mib} MiB of WAL), a primary "
                   f"on timeline {timeline}; recovery {recovered:.1f} s from the rerun's start to the first write; "
                   f"rows committed by T: {len(expected)} expected, {len(expected & present)} present, {len(lost)} "
                   f"lost, {len(after)} committed after T present")


def test_job_killed_while_pgbackrest_copies_the_files(restore, summary):
    r = restore
    as_it_was = _as_it_was(r, 1)
    proc, log = _job(r)
    wait_for(lambda: proc.poll() is not None or (r.aside.is_dir() and (r.data_dir / "base").is_dir()
                                                  and _size(r.data_dir) >= 32 * MiB), 120,
             "pgBackRest did not start copying into the data directory", interval=0.02)
    assert proc.poll() is None, f"the Job ended ({proc.returncode}) before the copy was caught:\n{_text(log)}"
    _kill_job(proc)
    copied = _size(r.data_dir)
    assert r.aside.is_dir(), "the data as it was is aside"
    assert not (r.data_dir / "global" / "pg_control").exists(), \
        "the copy had finished (pgBackRest restores pg_control last)"
    _rerun(r, summary, f"restore Job SIGKILLed while pgBackRest copied ({copied // MiB} MiB of "
                       f"{r.backup_mib} MiB written)", as_it_was, put_back=True)


def test_recovering_postgres_killed_while_it_replays_wal(restore, summary):
    r = restore
    as_it_was = _as_it_was(r, 2)
    proc, log, pid, pglog = _job_replaying(r)
    os.kill(pid, signal.SIGKILL)
    _failed_and_put_back(r, proc, log, "recovery did not reach the target and promote", as_it_was)
    replayed = _replayed(pglog)
    _rerun(r, summary, f"recovering PostgreSQL SIGKILLed while it replayed WAL ({replayed} segments restored): "
                       "the script failed and put the data back, whole", as_it_was, put_back=False)


def test_job_killed_while_postgres_replays_wal(restore, summary):
    r = restore
    as_it_was = _as_it_was(r, 3)
    proc, log, pid, pglog = _job_replaying(r)
    _kill_job(proc)
    # pg_ctl starts the postmaster in a session of its own: a kill of the Job's process group leaves
    # it running, the pod's death would not: PostgreSQL's processes are killed as well.
    postmaster = "outlived the group kill, in a session of its own: killed after it" if _alive(pid) else "died with it"
    _kill_groups(_groups(pid))
    replayed = _replayed(pglog)
    assert r.aside.is_dir(), "the data as it was is aside"
    _rerun(r, summary, f"restore Job SIGKILLed while PostgreSQL replayed WAL ({replayed} segments restored; the "
                       f"postmaster {postmaster})", as_it_was, put_back=True)


def test_job_told_to_stop_while_postgres_replays_wal(restore, summary):
    """SIGTERM to the script alone, as the kubelet sends it to a Job's container at its deadline or
    on an eviction: the script puts the data back and fails, and no PostgreSQL is left running."""
    r = restore
    as_it_was = _as_it_was(r, 4)
    proc, log, pid, pglog = _job_replaying(r)
    postgres = _groups(pid)
    os.kill(proc.pid, signal.SIGTERM)
    wait_for(lambda: proc.poll() is not None, 60, "the script did not stop on SIGTERM", interval=0.05)
    left = [p for g in postgres for p in _group(g)]
    _kill_groups(postgres)
    assert not left, f"PostgreSQL still ran after the script stopped ({left}):\n{_text(pglog)[-2000:]}"
    # Stopped by the script before its data directory was removed, not failing on a directory gone.
    assert "received immediate shutdown request" in _text(pglog), _text(pglog)[-2000:]
    _failed_and_put_back(r, proc, log, "stopped by a signal", as_it_was)
    replayed = _replayed(pglog)
    _rerun(r, summary, f"restore Job sent SIGTERM while PostgreSQL replayed WAL ({replayed} segments restored): "
                       "the script stopped PostgreSQL, put the data back and failed", as_it_was, put_back=False)
