"""Restore drills: pgc-drill.sh run as the drill CronJob's Job runs it (the environment its rendered
spec sets), against a real PostgreSQL 15 and a pgBackRest directory repository. A good backup passes
pg_amcheck and the user's SQL check; a check that returns false, a corrupt index and a corrupt file
in the repository each fail the drill with the reason; the drill archives nothing and leaves the
primary as it was."""

from __future__ import annotations

from tests.dataplane.backup.harness import Cluster, drill_spec, run_drill

ROWS = 1000


def archive_files(repo) -> list[str]:
    return sorted(str(p.relative_to(repo)) for p in (repo / "archive").rglob("*") if p.is_file())


def load(server) -> None:
    server.sql("CREATE DATABASE app")
    server.sql("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)", dbname="app")
    server.sql(f"INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g", dbname="app")
    server.sql("CREATE INDEX t_v ON t (v)", dbname="app")
    server.sql("CREATE TABLE u (id int PRIMARY KEY REFERENCES t, n bigint)", dbname="app")
    server.sql("INSERT INTO u SELECT g, g * 7 FROM generate_series(1, 500) g", dbname="app")


def test_drill_restores_the_newest_backup_and_runs_the_checks(workspace):
    """A drill of a good backup succeeds and names it; a check that returns false fails it with that
    reason; a check cannot run psql's or the server's shell commands; the repository's archive and
    the primary are as they were."""
    repo = workspace.path("repo-drill")
    cluster = Cluster(workspace, "drill", drill_spec(), repo_path=repo)
    src = cluster.init()
    load(src)
    backup = cluster.script_json("pgc-backup.sh", "full")[0]
    archive = archive_files(repo)
    digest = src.table_digest("t", "app")
    timeline = src.value("SELECT timeline_id FROM pg_control_checkpoint()")

    rc, result, log = run_drill(cluster, f"SELECT count(*) = {ROWS} FROM t")
    assert rc == 0, log
    assert result["result"] == "succeeded" and "reason" not in result, result
    assert result["backup"] == backup["label"] and result["backup_type"] == "full"
    assert result["restored_to"] == backup["stop"]
    assert result["checks"] == ["restore", "recovery", "amcheck", "sql"]
    assert isinstance(result["duration_seconds"], int) and result["duration_seconds"] >= 0

    rc, result, log = run_drill(cluster, f"SELECT count(*) = {ROWS - 1} FROM t")
    assert rc != 0 and result["result"] == "failed"
    assert result["backup"] == backup["label"]
    assert result["reason"] == f"the SQL check returned f, not one true value, on backup {backup['label']}"
    assert result["checks"] == ["restore", "recovery", "amcheck"]

    # The check is the user's text: no psql command, no program run by the server.
    marker = workspace.dir / "drill-check-ran"
    for check in (f"\\! touch {marker}", f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'"):
        rc, result, log = run_drill(cluster, check)
        assert rc != 0 and result["reason"].startswith("the SQL check failed"), result
        assert not marker.exists(), check
    assert "permission denied" in result["reason"] or "must be superuser" in result["reason"], result

    assert archive_files(repo) == archive, "the drill archived into the cluster's repository"
    assert not any(name.endswith(".history") for name in archive_files(repo))
    assert src.table_digest("t", "app") == digest and not src.in_recovery()
    assert src.value("SELECT timeline_id FROM pg_control_checkpoint()") == timeline


def test_drill_fails_on_a_corrupt_index_and_on_a_corrupt_repository_file(workspace):
    """An index that no longer matches its table (the function it is built on changed) is restored
    as it was backed up, and pg_amcheck fails the drill; a byte flipped in the repository's copy of
    the backup fails it at the restore, with pgBackRest's reason."""
    repo = workspace.path("repo-drillbad")
    cluster = Cluster(workspace, "drillbad", drill_spec(), repo_path=repo)
    src = cluster.init()
    load(src)
    src.sql("CREATE FUNCTION k(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1'", dbname="app")
    src.sql("CREATE INDEX t_k ON t (k(id))", dbname="app")
    # The function the index was built with now computes something else: the index is corrupt.
    src.sql("CREATE OR REPLACE FUNCTION k(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT -$1'", dbname="app")
    label = cluster.script_json("pgc-backup.sh", "full")[0]["label"]
    archive = archive_files(repo)

    rc, result, log = run_drill(cluster)
    assert rc != 0 and result["result"] == "failed" and result["backup"] == label
    assert result["reason"].startswith(f"pg_amcheck found problems in backup {label}"), result
    assert "t_k" in result["reason"] and "lacks matching index tuple" in result["reason"], result
    assert result["checks"] == ["restore", "recovery"]

    # A clean backup, then one byte flipped in the largest file of its copy in the repository.
    src.sql("DROP INDEX t_k", dbname="app")
    label = cluster.script_json("pgc-backup.sh", "full")[0]["label"]
    archive = archive_files(repo)
    files = [p for p in (repo / "backup" / "drillbad" / label).rglob("*") if p.is_file()]
    victim = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))

    rc, result, log = run_drill(cluster)
    assert rc != 0 and result["result"] == "failed" and result["backup"] == label
    assert result["reason"].startswith(f"restore of backup {label} failed: backup {label} does not verify"), result
    assert result["reason"].endswith(f"backup {label}: invalid"), result
    assert result["checks"] == []

    assert archive_files(repo) == archive, "the drill archived into the cluster's repository"
    assert not src.in_recovery() and src.value("SELECT count(*) FROM t", dbname="app") == ROWS
