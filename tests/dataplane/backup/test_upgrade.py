"""pgc-upgrade.sh, the building block of major upgrades, run as a major-upgrade Job would run it on
the stopped data directory of member 0: a PostgreSQL 15 cluster (data checksums on) is upgraded to
16 (the build hack/test-deps.sh installs) in link and in copy mode; the 16 server then holds every
row, index entry, sequence and view of the 15 one and passes pg_amcheck. A rollback puts the 15
cluster back (copy mode: even after 16 ran; link mode: only before 16 ever started, and it says
so); a failed pre-flight leaves the data directory untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from tests.dataplane.backup.harness import Postgres, _as_owner_kwargs
from tests.dataplane.harness import PG_BIN_DIR, free_ports, wait_for

SCRIPT = "pgc-upgrade.sh"


def load(server: Postgres) -> None:
    """Tables with indexes (one over an expression), a sequence, a view, rows; one table and one
    index in a tablespace of their own."""
    tablespace = server.ws.path("pg", server.name, "tablespace")
    server.sql(f"CREATE TABLESPACE archive LOCATION '{tablespace}'")
    server.sql("CREATE SEQUENCE order_no START 1000")
    server.sql("CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE)")
    server.sql("INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com' "
               "FROM generate_series(1, 2000) g")
    server.sql("CREATE TABLE orders (no bigint PRIMARY KEY DEFAULT nextval('order_no'), "
               "customer int NOT NULL REFERENCES customers, amount numeric(12, 2), note text, placed timestamptz)")
    server.sql("INSERT INTO orders (customer, amount, note, placed) SELECT 1 + g % 2000, g * 1.25, md5(g::text), "
               "timestamptz '2024-01-01 00:00+00' + g * interval '1 minute' FROM generate_series(1, 20000) g")
    server.sql("CREATE INDEX orders_customer ON orders (customer, placed) TABLESPACE archive")
    server.sql("CREATE TABLE notes TABLESPACE archive AS SELECT g AS id, repeat(md5(g::text), 20) AS body "
               "FROM generate_series(1, 3000) g")
    server.sql("CREATE INDEX orders_note ON orders (lower(note))")
    server.sql("CREATE VIEW big_customers AS SELECT customer, sum(amount) AS total FROM orders "
               "GROUP BY customer HAVING sum(amount) > 100000")
    server.sql("DELETE FROM orders WHERE no % 7 = 0")
    server.sql("CHECKPOINT")


def fingerprint(server: Postgres) -> dict:
    """What must survive the upgrade: every table's rows, what each index holds (read through the
    index alone), the sequence and the view."""
    with server.connect() as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")

        def digest(sql):
            return conn.execute(f"SELECT count(*), md5(coalesce(string_agg(x::text, '|'), '')) "
                                f"FROM ({sql}) x").fetchone()
        return {
            "customers": server.table_digest("customers"),
            "orders": server.table_digest("orders"),
            "notes": server.table_digest("notes"),
            "index customers_email_key": digest("SELECT email FROM customers WHERE email > '' ORDER BY email"),
            "index orders_customer": digest("SELECT customer, placed FROM orders WHERE customer > 0 "
                                            "ORDER BY customer, placed"),
            "index orders_note": digest("SELECT lower(note) FROM orders WHERE lower(note) > '' ORDER BY lower(note)"),
            "sequence": conn.execute("SELECT last_value, is_called FROM order_no").fetchone(),
            "view": digest("SELECT * FROM big_customers ORDER BY customer"),
        }


def old_cluster(workspace, name: str, loader=load, **parameters) -> tuple[Postgres, dict]:
    """A stopped PostgreSQL 15 cluster with data, and its fingerprint."""
    server = Postgres(workspace, name)
    server.initdb()
    if parameters:
        server.configure(**parameters)
    server.start()
    loader(server)
    expected = fingerprint(server) if loader is load else {}
    server.stop()
    return server, expected


def upgrade(server: Postgres, pg16, *args: str, check: bool = True):
    """Run the script on the server's data directory; its exit code, JSON line (the same in the
    result file) and log."""
    result_file = server.dir / "upgrade-result.json"
    result_file.unlink(missing_ok=True)
    env = {"PGDATA": str(server.data_dir), "PGC_UPGRADE_OLD_BIN": str(PG_BIN_DIR), "PGC_UPGRADE_NEW_BIN": str(pg16),
           "PGC_UPGRADE_PORT": str(free_ports(1)[0]), "PGC_RESULT_FILE": str(result_file)}
    proc = server.run(server.ws.bin / SCRIPT, *args, check=False, env=env, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"one JSON line on stdout:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(lines[0])
    assert json.loads(result_file.read_text()) == result
    if check:
        assert proc.returncode == 0, f"{result}\n{proc.stderr}"
    return proc.returncode, result, proc.stderr


def started(server: Postgres, bin_dir) -> Postgres:
    """The data directory started with ``bin_dir``'s server, on a port of its own."""
    s = Postgres(server.ws, server.name, data_dir=server.data_dir, bin_dir=bin_dir)
    s.start()
    return s


def assert_is_16_with(server: Postgres, pg16, expected: dict) -> None:
    assert server.value("SHOW server_version_num").startswith("16"), server.value("SELECT version()")
    assert server.value("SELECT version()").startswith("PostgreSQL 16.")
    assert server.value("SHOW data_checksums") == "on"
    assert fingerprint(server) == expected
    amcheck = server.run(pg16 / "pg_amcheck", "--all", "--install-missing", "--heapallindexed", "--parent-check",
                         check=False)
    assert amcheck.returncode == 0, f"pg_amcheck:\n{amcheck.stdout}\n{amcheck.stderr}"


def tablespace_majors(server: Postgres) -> list[str]:
    """The majors that have a directory in the tablespace of ``load`` (PG_15_<catalog version>...)."""
    return sorted(p.name.split("_")[1] for p in (server.dir / "tablespace").iterdir())


def aside(server: Postgres):
    return server.data_dir.parent / (server.data_dir.name + ".pre-upgrade")


def test_copy_upgrade_keeps_every_row_and_rolls_back_after_the_new_server_ran(workspace, pg16):
    server, expected = old_cluster(workspace, "upcopy")
    (server.data_dir / "postgresql.auto.conf").open("a").write("work_mem = '7MB'\n")
    rc, result, log = upgrade(server, pg16, "--mode=copy")
    assert result["result"] == "upgraded" and result["from"] == "15" and result["to"] == "16", result
    assert result["mode"] == "copy" and result["rollback_possible"] is True
    assert result["old_data"] == str(aside(server)) and (aside(server) / "PG_VERSION").read_text() == "15\n"
    assert (server.data_dir / "PG_VERSION").read_text() == "16\n"
    assert result["durations"]["upgrade"] > 0 and result["durations"]["analyze"] is None

    new = started(server, pg16)
    assert_is_16_with(new, pg16, expected)
    assert new.value("SHOW work_mem") == "7MB", "the old cluster's postgresql.auto.conf is kept"
    new.sql("INSERT INTO customers VALUES (999999, 'after the upgrade', NULL)")
    new.stop()

    # A second run changes nothing and says so.
    rc, again, log = upgrade(server, pg16, "--mode=copy")
    assert again["result"] == "upgraded" and again["rollback_possible"] is True
    assert "already upgraded" in log

    rc, rolled, log = upgrade(server, pg16, "--rollback")
    assert rolled["result"] == "rolled-back" and rolled["mode"] == "copy", rolled
    assert not aside(server).exists() and (server.data_dir / "PG_VERSION").read_text() == "15\n"
    assert tablespace_majors(server) == ["15"]
    old = started(server, PG_BIN_DIR)
    assert old.value("SHOW server_version_num").startswith("15")
    assert fingerprint(old) == expected, "the 15 cluster is as it was, without what 16 wrote"
    old.stop()


def test_link_upgrade_keeps_every_row_and_refuses_a_rollback_once_the_new_server_ran(workspace, pg16):
    server, expected = old_cluster(workspace, "uplink")
    rc, result, log = upgrade(server, pg16)
    assert result["result"] == "upgraded" and result["mode"] == "link" and result["rollback_possible"] is True
    assert tablespace_majors(server) == ["15", "16"], "pg_upgrade made 16's directory beside 15's"
    new = started(server, pg16)
    assert_is_16_with(new, pg16, expected)
    new.stop()

    rc, again, log = upgrade(server, pg16)
    assert again["result"] == "upgraded" and again["rollback_possible"] is False, again
    rc, refused, log = upgrade(server, pg16, "--rollback", check=False)
    assert rc != 0 and refused["result"] == "failed", refused
    assert refused["reason"].startswith("rollback is no longer possible: the new cluster was started after a "
                                        "link-mode upgrade"), refused
    assert (server.data_dir / "PG_VERSION").read_text() == "16\n" and aside(server).exists()
    new = started(server, pg16)
    assert fingerprint(new) == expected, "a refused rollback leaves the new cluster as it was"
    new.stop()


def test_link_upgrade_rolls_back_before_the_new_server_ever_started(workspace, pg16):
    server, expected = old_cluster(workspace, "uplinkback")
    rc, result, log = upgrade(server, pg16, "--mode=link")
    assert result["result"] == "upgraded" and result["rollback_possible"] is True

    # What a kill between the two renames of the swap leaves: the next run finishes the swap.
    progress = server.data_dir.parent / (server.data_dir.name + ".pgc-upgrade")
    server.data_dir.rename(server.data_dir.parent / (server.data_dir.name + ".upgrading"))
    progress.write_text(progress.read_text().replace("stage=done", "stage=swap"))
    rc, again, log = upgrade(server, pg16, "--mode=link")
    assert "finishing the swap" in log and again["result"] == "upgraded" and again["rollback_possible"] is True
    assert (server.data_dir / "PG_VERSION").read_text() == "16\n"

    rc, rolled, log = upgrade(server, pg16, "--rollback")
    assert rolled["result"] == "rolled-back" and rolled["mode"] == "link", rolled
    assert siblings(server) == [server.data_dir.name]
    assert (server.data_dir / "PG_VERSION").read_text() == "15\n" and tablespace_majors(server) == ["15"]
    old = started(server, PG_BIN_DIR)
    assert fingerprint(old) == expected
    old.stop()
    rc, nothing, log = upgrade(server, pg16, "--rollback", check=False)
    assert rc != 0 and nothing["reason"].startswith("nothing to roll back"), nothing


def with_pgaudit(server: Postgres) -> None:
    server.sql("CREATE EXTENSION pgaudit")
    server.sql("CREATE TABLE kept (id int PRIMARY KEY)")
    server.sql("INSERT INTO kept SELECT generate_series(1, 10)")


def test_a_failed_preflight_names_the_reason_and_leaves_the_data_directory_untouched(workspace, pg16):
    """pgaudit (preloaded, its extension created) has no build for 16 here: pg_upgrade --check
    fails, the script says why and changes nothing."""
    if not (PG_BIN_DIR.parent / "lib" / "pgaudit.so").exists():
        pytest.fail("pgaudit for PostgreSQL 15 is missing -- run `hack/test-deps.sh` as root to install it",
                    pytrace=False)
    server, _ = old_cluster(workspace, "upcheck", loader=with_pgaudit, shared_preload_libraries="pgaudit")
    before = {p.relative_to(server.data_dir): p.stat().st_mtime_ns for p in server.data_dir.rglob("*")
              if p.is_file()}
    for args in (("--check-only",), ()):
        rc, result, log = upgrade(server, pg16, *args, check=False)
        assert rc != 0 and result["result"] == "failed", result
        assert result["reason"].startswith("pg_upgrade --check failed"), result
        assert "loadable libraries" in result["reason"] and "pgaudit" in result["reason"], result
        assert result["rollback_possible"] is False and result["old_data"] is None
        print(f"pre-flight {' '.join(args) or '(upgrade)'}: {result['reason']}")
    assert siblings(server) == [server.data_dir.name]
    assert (server.data_dir / "PG_VERSION").read_text() == "15\n"
    after = {p.relative_to(server.data_dir): p.stat().st_mtime_ns for p in server.data_dir.rglob("*") if p.is_file()}
    # The script starts the old server once to read its settings (a shutdown checkpoint, its logs).
    assert set(before) - set(after) == set(), "no file of the data directory is gone"
    old = started(server, PG_BIN_DIR)
    assert old.value("SELECT count(*) FROM kept") == 10
    old.stop()


def siblings(server: Postgres) -> list[str]:
    """What lies beside the data directory under its name (the aside copy, the progress file...)."""
    return sorted(p.name for p in server.data_dir.parent.iterdir() if p.name.startswith(server.data_dir.name))


def interrupted(server: Postgres, pg16, sig: int) -> subprocess.CompletedProcess:
    """Run the script in copy mode and send ``sig`` to it (SIGKILL: to its whole process group, as
    a lost node would) while pg_upgrade runs."""
    env = {**server.ws.base_env(), "PGDATA": str(server.data_dir), "PGC_UPGRADE_OLD_BIN": str(PG_BIN_DIR),
           "PGC_UPGRADE_NEW_BIN": str(pg16), "PGC_UPGRADE_PORT": str(free_ports(1)[0])}
    proc = subprocess.Popen([str(server.ws.bin / SCRIPT), "--mode=copy"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **_as_owner_kwargs())
    output = server.data_dir.parent / (server.data_dir.name + ".upgrading") / "pg_upgrade_output.d"
    wait_for(lambda: output.exists() or proc.poll() is not None, 120, "pg_upgrade never ran", interval=0.02)
    assert proc.poll() is None, f"the script ended before pg_upgrade ran:\n{proc.communicate()}"
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_run_stopped_by_a_signal_or_killed_puts_the_data_back(workspace, pg16):
    """SIGTERM while pg_upgrade runs: the data directory is as it was at once, nothing is left beside
    it. SIGKILL: the next run puts the data back first (stopping what pg_upgrade left running), then
    upgrades."""
    server, expected = old_cluster(workspace, "upsignal")
    stopped = interrupted(server, pg16, signal.SIGTERM)
    assert stopped.returncode != 0 and "stopped by a signal" in stopped.stderr, stopped.stderr
    assert json.loads(stopped.stdout.strip().splitlines()[-1])["result"] == "failed"
    assert siblings(server) == [server.data_dir.name]
    assert (server.data_dir / "PG_VERSION").read_text() == "15\n" and tablespace_majors(server) == ["15"]

    killed = interrupted(server, pg16, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert server.data_dir.name + ".upgrading" in siblings(server)
    rc, result, log = upgrade(server, pg16, "--mode=copy")
    assert "an earlier upgrade did not finish: putting the data as it was back first" in log
    assert result["result"] == "upgraded"
    new = started(server, pg16)
    assert fingerprint(new) == expected
    new.stop()


def test_upgrade_durations_link_and_copy(workspace, pg16, summary):
    """pgbench scale 10 (about 150 MB) upgraded in copy mode, rolled back, then in link mode with
    --analyze; the figures go to the run's summary."""
    def pgbench(server):
        server.run(PG_BIN_DIR / "pgbench", "-i", "-q", "-s", "10", "postgres")

    server, _ = old_cluster(workspace, "upbench", loader=pgbench)
    accounts = Postgres(workspace, "upbench-digest", data_dir=server.data_dir)
    accounts.start()
    digest = accounts.table_digest("pgbench_accounts")
    size = accounts.value("SELECT pg_database_size('postgres')")
    accounts.stop()

    figures = {}
    for mode in ("copy", "link"):
        # The link run also analyzes (the new cluster runs then, so its rollback is over).
        rc, result, log = upgrade(server, pg16, f"--mode={mode}", *(["--analyze"] if mode == "link" else []))
        figures[mode] = result["durations"]
        assert result["rollback_possible"] is (mode == "copy"), result
        new = started(server, pg16)
        assert new.table_digest("pgbench_accounts") == digest
        new.stop()
        if mode == "copy":
            upgrade(server, pg16, "--rollback")
    line = (f"major upgrade 15 -> 16 of {size / 1e6:.0f} MB (pgbench scale 10): "
            + ", ".join(f"{mode} {d['upgrade']:.2f}s (check {d['check']:.2f}s, total {d['total']:.2f}s)"
                        for mode, d in figures.items())
            + f"; vacuumdb --analyze-in-stages after it {figures['link']['analyze']:.2f}s")
    print(line)
    summary.append(line)


def test_a_setting_the_new_major_no_longer_knows_fails_the_preflight(workspace, pg16):
    """postgresql.auto.conf (ALTER SYSTEM) is carried over: a parameter removed in 16 is reported
    before anything changed."""
    server, _ = old_cluster(workspace, "upautoconf",
                            loader=lambda s: s.sql("ALTER SYSTEM SET vacuum_defer_cleanup_age = 10"))
    rc, result, log = upgrade(server, pg16, check=False)
    assert rc != 0 and result["result"] == "failed", result
    assert result["reason"].startswith("the old cluster's postgresql.auto.conf does not load in PostgreSQL 16"), result
    assert "vacuum_defer_cleanup_age" in result["reason"], result
    assert siblings(server) == [server.data_dir.name]
    assert (server.data_dir / "PG_VERSION").read_text() == "15\n"
