"""Major upgrade of a real 3-member Patroni cluster from PostgreSQL 15 to 16, the way the operator's
major-upgrade flow runs it: Patroni paused, every member stopped (the primary last),
pgc-major-upgrade.sh on the primary's data directory (as the Job), Patroni's DCS told about the new
cluster, the replicas' data removed, every member started with 16's binaries, ANALYZE online.

What Patroni 4.1.5 needs in its Kubernetes DCS (ConfigMaps <scope>-*) for the upgraded primary to
lead and the replicas to clone from it: the leader, failover and sync ConfigMaps deleted (the leader
one also holds the last optime, the slots and the failsafe topology of the old cluster), and on the
config ConfigMap the `initialize` annotation set to the NEW system identifier (the script prints
it), the `history` annotation removed (the old cluster's timelines), `pause` dropped from the
dynamic configuration. Left as it was, `initialize` makes Patroni exit ("system ID mismatch");
removed instead, a member with an empty data directory that starts first bootstraps a new
cluster (Patroni's bootstrap race): so it is set, not removed. Both are asserted.

Also asserted: in pause, Patroni stops without stopping PostgreSQL, so a pod's end kills it and
leaves the primary's data crashed, which pg_upgrade refuses. The copy-mode round stops PostgreSQL
cleanly (pg_ctl); the link-mode round kills it as a pod's end does, and the script recovers the
primary's data (on a private socket) before the upgrade; every committed write survives.

pgBackRest: Debian bookworm's 2.45 cannot read PostgreSQL 16's control file, so with a stanza the
script refuses the upgrade in its pre-flight, changing nothing; a rollback with a stanza re-records
the old cluster when needed and archiving works afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import psutil
import pytest

from tests.dataplane.backup.harness import Cluster, Postgres, _as_owner_kwargs
from tests.dataplane.backup.test_upgrade import old_cluster, started
from tests.dataplane.conftest import cluster_objects, patroni_config, pods_running
from tests.dataplane.harness import (LOOPBACK, PG_BIN_DIR, DataPlane, RowWriter, _kill, free_ports, kill_tree,
                                     wait_for)

pytestmark = pytest.mark.timeout(420)

SCRIPT = "pgc-major-upgrade.sh"
NAME = "upg"


def as_owner(*cmd, env: dict | None = None, timeout: float = 600, check: bool = True):
    proc = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=timeout,
                          **_as_owner_kwargs())
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_script(ws, pg16, data_dir, *args, env: dict | None = None, check: bool = True) -> tuple[int, dict, str]:
    """The script as the Job runs it; its exit code, JSON line (the same in the result file) and log."""
    result_file = ws.tmp / "major-upgrade-result.json"
    result_file.unlink(missing_ok=True)
    full = {**ws.base_env(), "PGDATA": str(data_dir), "PGC_UPGRADE_OLD_BIN": str(PG_BIN_DIR),
            "PGC_UPGRADE_NEW_BIN": str(pg16), "PGC_UPGRADE_USER": "postgres", "PGC_UPGRADE_STANZA": "",
            "PGC_UPGRADE_PORT": str(free_ports(1)[0]), "PGC_RESULT_FILE": str(result_file), **(env or {})}
    proc = as_owner(ws.bin / SCRIPT, *args, env=full, check=False, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"one JSON line on stdout:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(lines[0])
    assert json.loads(result_file.read_text()) == result
    if check:
        assert proc.returncode == 0, f"{result}\n{proc.stderr}"
    return proc.returncode, result, proc.stderr


# --- the cluster --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plane(kube, namespace, dataplane_deps, backup_deps):
    objs = cluster_objects(NAME, patroni_config().replace("pgdemo", NAME))
    kube.run("apply", "--server-side", "--field-manager=dataplane-test", "-n", namespace, "-f", "-",
             input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    wait_for(lambda: pods_running(kube, namespace, NAME, 3), 60, f"the kwok pods of {NAME} did not become Ready")
    with DataPlane(namespace, NAME, kube=kube).started() as p:
        yield p


def load(plane, leader) -> None:
    for sql in ("CREATE SEQUENCE order_no START 1000",
                "CREATE TABLE orders (no bigint PRIMARY KEY DEFAULT nextval('order_no'), customer int NOT NULL, "
                "amount numeric(12, 2), note text)",
                "INSERT INTO orders (customer, amount, note) SELECT g % 500, g * 1.25, md5(g::text) "
                "FROM generate_series(1, 20000) g",
                "CREATE INDEX orders_note ON orders (lower(note))",
                "DELETE FROM orders WHERE no % 7 = 0",
                "CREATE TABLE ticks (n int PRIMARY KEY, at timestamptz DEFAULT now())"):
        plane.execute(leader, sql, timeout=30)


def fingerprint(plane, pod) -> dict:
    """Every row of the loaded tables, what the expression index holds, the sequence."""
    def one(sql):
        return tuple(plane.execute(pod, sql, timeout=30)[0])
    return {
        "orders": one("SELECT count(*), md5(string_agg(t::text, '|' ORDER BY no)) FROM orders t"),
        "index": one("SELECT count(*), md5(string_agg(x, '|')) FROM (SELECT lower(note) x FROM orders "
                     "WHERE lower(note) > '' ORDER BY lower(note)) s"),
        "sequence": one("SELECT last_value, is_called FROM order_no"),
    }


def major(plane, pod) -> int:
    return int(plane.execute(pod, "SHOW server_version_num")[0][0]) // 10000


def rest(member, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"http://{LOOPBACK}:{member.api_port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read() or b"{}")


def stop_all(plane, leader: str, bin_dir, clean: bool = True) -> dict[str, float]:
    """Patroni paused; each member stopped, the leader last: Patroni first (in pause it leaves
    PostgreSQL running, which is asserted), then PostgreSQL with a fast shutdown (a checkpoint), or,
    not ``clean``, killed with everything left in the member as the end of its pod's container would.
    Returns when the leader's PostgreSQL began and ended stopping (time.monotonic())."""
    rest(plane.member(leader), "PATCH", "/config", {"pause": True})
    wait_for(lambda: all((plane.member(p).rest("/patroni") or {}).get("pause") for p in plane.members), 30,
             "Patroni did not pause")
    times = {}
    for pod in [p for p in plane.members if p != leader] + [leader]:
        m = plane.member(pod)
        postmaster = m.postmaster_pid()
        _kill([m.proc.pid], signal.SIGTERM)
        m.proc.wait(30)
        assert postmaster and m.postmaster_pid() == postmaster, f"in pause, Patroni's stop left {pod}'s PostgreSQL running"
        if pod == leader:
            times["stopping"] = time.monotonic()
        if clean:
            as_owner(bin_dir / "pg_ctl", "-D", m.data_dir, "-m", "fast", "-w", "-t", "120", "stop")
        else:
            kill_tree(postmaster, f"PostgreSQL of {pod}")
            # Reaped too (a zombie still answers pg_ctl status), as nothing is left of an ended pod.
            wait_for(lambda: not psutil.pid_exists(postmaster), 30, f"the postmaster of {pod} was not reaped")
        m.stop()
    times["stopped"] = time.monotonic()
    return times


def dcs(plane) -> dict:
    cm = plane.kube.json("get", "configmap", f"{NAME}-config", "-n", plane.namespace)
    return cm["metadata"].get("annotations") or {}


def reset_dcs(plane, sysid: str | None) -> None:
    """Tell Patroni's DCS about the cluster now in the leader's data directory: no leader, failover
    or sync state of the old one, no timeline history, not paused, `initialize` the new system
    identifier (None: left as it was)."""
    plane.kube.run("delete", "configmap", "-n", plane.namespace, "--ignore-not-found",
                   f"{NAME}-leader", f"{NAME}-failover", f"{NAME}-sync")
    config = json.loads(dcs(plane).get("config") or "{}")
    config.pop("pause", None)
    args = [f"config={json.dumps(config, separators=(',', ':'))}", "history-"]
    if sysid:
        args.append(f"initialize={sysid}")
    plane.kube.run("annotate", "--overwrite", "configmap", f"{NAME}-config", "-n", plane.namespace, *args)


def start_on(plane, bin_dir, leader: str) -> str:
    """The replicas' data removed (their claims deleted), every member started on ``bin_dir``; the
    leader once it leads (and takes writes)."""
    plane.bin_dir = bin_dir
    for pod, m in plane.members.items():
        if pod != leader:
            subprocess.run(["rm", "-rf", str(m.data_dir)], check=True)
    for m in plane.members.values():
        m.start()
    assert plane.wait_for_leader(timeout=120) == leader, "the upgraded primary leads"
    writable = "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'"
    wait_for(lambda: plane.execute(leader, writable)[0][0], 60, f"{leader} does not take writes")
    return leader


def pgpass(ws, plane) -> dict[str, str]:
    """libpq's environment for the leader's superuser, the password in a file (never on a command line)."""
    path = ws.tmp / "pgpass"
    path.write_text(f"*:*:*:postgres:{plane.credentials['superuser-password']}\n")
    os.chmod(path, 0o600)
    subprocess.run(["chown", "--reference", str(ws.tmp), str(path)], check=True)
    return {"PGPASSFILE": str(path), "PGHOST": LOOPBACK, "PGUSER": "postgres"}


def written(ws, pg16, plane, pod) -> dict:
    """--written asked of the running leader."""
    env = {**pgpass(ws, plane), "PGPORT": str(plane.member(pod).pg_port)}
    rc, result, log = run_script(ws, pg16, plane.member(pod).data_dir, "--written", env=env)
    return result


def written_offline(ws, pg16, data_dir) -> dict:
    """--written read from the stopped data directory."""
    rc, result, log = run_script(ws, pg16, data_dir, "--written")
    return result


def upgrade(ws, pg16, plane, leader, mode: str, summary) -> dict:
    """The whole flow; the script's result."""
    m = plane.member(leader)
    times = stop_all(plane, leader, PG_BIN_DIR, clean=False)
    rc, result, log = run_script(ws, pg16, m.data_dir, f"--mode={mode}")
    assert result["result"] == "upgraded" and result["from"] == "15" and result["to"] == "16", result
    assert result["recovered"] is True and "was not shut down cleanly: recovering it" in log, result
    assert result["mode"] == mode and result["stanza"] == "skipped" and result["rollback_possible"] is True, result
    assert result["system_identifier"] and result["system_identifier"] != dcs(plane)["initialize"], \
        "a new cluster, a new system identifier"
    ran = time.monotonic()
    reset_dcs(plane, result["system_identifier"])
    start_on(plane, pg16, leader)
    writable = time.monotonic()
    result["outage"] = {"total": writable - times["stopping"], "stop": times["stopped"] - times["stopping"],
                        "script": ran - times["stopped"], "start": writable - ran}
    summary.append(f"major upgrade 15 -> 16 ({mode} mode, 20k rows): primary writable again "
                   f"{result['outage']['total']:.1f}s after it began stopping (stop {result['outage']['stop']:.1f}s, "
                   f"Job {result['outage']['script']:.1f}s with crash recovery {result['durations']['recovery']}s and "
                   f"pg_upgrade {result['durations']['upgrade']}s, "
                   f"DCS + start + leader {result['outage']['start']:.1f}s)")
    return result


def assert_on_16(plane, leader, expected) -> None:
    plane.wait_streaming(leader, timeout=120)
    for pod in plane.members:
        assert major(plane, pod) == 16, f"{pod} runs PostgreSQL 16"
        wait_for(lambda: fingerprint(plane, pod) == expected, 30, f"{pod} holds every row as before the upgrade")


def test_upgrade_to_16_then_copy_rollback_then_link_upgrade_refusing_rollback(workspace, pg16, plane, summary):
    leader = plane.wait_for_leader(timeout=120)
    plane.wait_streaming(leader, timeout=90)
    load(plane, leader)
    expected = fingerprint(plane, leader)
    old_sysid = dcs(plane)["initialize"]
    m = plane.member(leader)

    # --- copy mode, with the DCS's `initialize` left: Patroni refuses the new cluster -------------
    stop_all(plane, leader, PG_BIN_DIR)
    rc, checked, log = run_script(workspace, pg16, m.data_dir, "--check-only", "--mode=copy")
    assert checked["result"] == "checked" and checked["system_identifier"] == old_sysid, checked
    rc, result, log = run_script(workspace, pg16, m.data_dir, "--mode=copy")
    assert result["result"] == "upgraded" and result["system_identifier"] != old_sysid, result
    assert result["recovered"] is False, "every member was stopped cleanly"
    assert written_offline(workspace, pg16, m.data_dir) == {"written": False, "changes": 0, "databases": 0,
                                                            "started": False}
    reset_dcs(plane, None)
    plane.bin_dir = pg16
    m.start()
    wait_for(lambda: not m.running(), 60, "Patroni started a cluster whose system identifier is not the DCS's")
    assert "system ID mismatch" in m.log(), m.log_tail(20)
    assert not m.postmaster_pid()
    m.stop()
    reset_dcs(plane, result["system_identifier"])
    start_on(plane, pg16, leader)
    assert_on_16(plane, leader, expected)
    assert dcs(plane)["initialize"] == result["system_identifier"]

    # ANALYZE online; it is no write.
    env = {**workspace.base_env(), **pgpass(workspace, plane), "PGPORT": str(m.pg_port)}
    assert written(workspace, pg16, plane, leader) == {"written": False, "changes": 0, "databases": 2}
    started = time.monotonic()
    as_owner(pg16 / "vacuumdb", "--all", "--analyze-in-stages", "--quiet", env=env)
    summary.append(f"ANALYZE after the upgrade (vacuumdb --all --analyze-in-stages, 20k rows): "
                   f"{time.monotonic() - started:.1f}s")
    assert plane.execute(leader, "SELECT count(*) FROM pg_stats WHERE tablename = 'orders'")[0][0] >= 4
    assert written(workspace, pg16, plane, leader)["written"] is False, "ANALYZE is not a write"

    # --- rollback in copy mode before any write: back on 15 -----------------------------------------
    started = time.monotonic()
    stop_all(plane, leader, pg16)
    offline = written_offline(workspace, pg16, m.data_dir)
    assert offline == {"written": False, "changes": 0, "databases": 2, "started": True}, offline
    rc, rolled, log = run_script(workspace, pg16, m.data_dir, "--rollback")
    assert rolled["result"] == "rolled-back" and rolled["system_identifier"] == old_sysid, rolled
    reset_dcs(plane, rolled["system_identifier"])
    start_on(plane, PG_BIN_DIR, leader)
    rollback_s = time.monotonic() - started
    plane.wait_streaming(leader, timeout=120)
    for pod in plane.members:
        assert major(plane, pod) == 15
        wait_for(lambda: fingerprint(plane, pod) == expected, 30, f"{pod} holds every row after the rollback")
    summary.append(f"major upgrade rollback (copy mode, 20k rows): writable on 15 again {rollback_s:.1f}s after "
                   f"the stop began (script {rolled['durations']['total']}s)")

    # --- link mode, writes going on: the outage; then a write, and rollback is refused ---------------
    writer = RowWriter(plane, "INSERT INTO ticks (n) VALUES (%s)")
    writer.start()
    wait_for(lambda: len(writer.acked) > 10, 30, "the writer commits nothing")
    result = upgrade(workspace, pg16, plane, leader, "link", summary)
    wait_for(lambda: writer.times and writer.times[-1] > time.monotonic() - 1, 30, "no write lands on 16")
    writer.halt.set()
    writer.join(10)
    summary.append(f"major upgrade (link mode): longest gap between two committed writes "
                   f"{writer.longest_gap():.1f}s")
    assert_on_16(plane, leader, expected)
    acked = writer.acked
    assert plane.execute(leader, "SELECT count(*) FROM ticks WHERE n = ANY(%s)", (acked,))[0][0] == len(acked), \
        "every committed write survived"
    state = written(workspace, pg16, plane, leader)
    assert state["written"] is True and state["changes"] > 0, state

    stop_all(plane, leader, pg16)
    offline = written_offline(workspace, pg16, m.data_dir)
    assert offline["written"] is True and offline["changes"] >= state["changes"], offline
    rc, refused, log = run_script(workspace, pg16, m.data_dir, "--rollback", check=False)
    assert rc != 0 and refused["result"] == "failed", refused
    assert refused["reason"].startswith("rollback is no longer possible"), refused
    assert (m.data_dir / "PG_VERSION").read_text() == "16\n"

    # Why `initialize` is set rather than removed: without it, a member with an empty data directory
    # that starts before the primary bootstraps a new cluster of its own.
    reset_dcs(plane, None)
    plane.kube.run("annotate", "configmap", f"{NAME}-config", "-n", plane.namespace, "initialize-")
    replica = plane.member(next(p for p in plane.members if p != leader))
    subprocess.run(["rm", "-rf", str(replica.data_dir)], check=True)
    replica.start()
    wait_for(lambda: "trying to bootstrap a new cluster" in replica.log(), 60,
             "Patroni did not race to bootstrap without the initialize key")
    replica.stop()


def test_written_counts_ddl_and_a_crash_but_not_analyze(workspace, pg16):
    """On one server: a DDL statement is a write (catalogs count, pg_statistic aside); a crash
    discards PostgreSQL's counters, so the stopped data directory of a crashed 16 counts as written."""
    server, _ = old_cluster(workspace, "upwritten")
    run_script(workspace, pg16, server.data_dir, "--mode=copy")
    new = started(server, pg16)
    online = {"PGHOST": str(new.socket_dir), "PGPORT": str(new.port), "PGUSER": "postgres"}
    new.run(pg16 / "vacuumdb", "--all", "--analyze-in-stages", "--quiet")
    assert run_script(workspace, pg16, server.data_dir, "--written", env=online)[1]["written"] is False
    new.sql("CREATE TABLE added_after (id int)")
    state = run_script(workspace, pg16, server.data_dir, "--written", env=online)[1]
    assert state["written"] is True and state["changes"] > 0, state
    new.run(pg16 / "pg_ctl", "-D", server.data_dir, "-m", "immediate", "-w", "stop")
    new.stop()
    crashed = written_offline(workspace, pg16, server.data_dir)
    assert crashed["written"] is True and crashed["changes"] is None, crashed
    assert "not shut down cleanly" in crashed["reason"], crashed


# --- pgBackRest -----------------------------------------------------------------------------------

def test_with_a_stanza_the_preflight_refuses_a_major_pgbackrest_cannot_read(workspace, pg16):
    """pgBackRest 2.45 cannot read PostgreSQL 16's control file: with a stanza the upgrade is refused
    before anything changes. A rollback with a stanza that records another cluster (as after a
    stanza-upgrade) records the old cluster as current again, after which its WAL is archived; one
    whose stanza still records the old cluster leaves it as it is."""
    cluster = Cluster(workspace, "upstanza", {"repository": {"volume": {"size": "1Gi"}}},
                      repo_path=workspace.dir / "repo-upstanza")
    server = cluster.init()
    server.sql("CREATE TABLE marks (id int PRIMARY KEY)")
    server.sql("INSERT INTO marks SELECT generate_series(1, 100)")
    cluster.script("pgc-stanza-create.sh")
    server.switch_wal_and_wait_archived()
    server.stop()
    env = {**cluster.env(), "PGC_UPGRADE_STANZA": cluster.name}
    before = sorted(p.name for p in server.data_dir.iterdir())

    for args in (("--check-only",), ("--mode=copy",)):
        rc, result, log = run_script(workspace, pg16, server.data_dir, *args, env=env, check=False)
        assert rc != 0 and result["result"] == "failed" and result["stanza"] == "unchanged", result
        assert result["reason"].startswith("pgBackRest 2.45 cannot back up PostgreSQL 16"), result
        assert "nothing was changed" in result["reason"]
    assert sorted(p.name for p in server.data_dir.iterdir()) == before
    assert [d["version"] for d in cluster.info()["db"]] == ["15"]

    # The state after an upgrade whose stanza-upgrade ran (which 2.45 cannot do for 16): the stanza
    # records another cluster, here a scratch 15 one, as its current database. The old cluster's WAL
    # is refused by the repository then.
    run_script(workspace, pg16, server.data_dir, "--mode=copy")
    aside = server.data_dir.parent / (server.data_dir.name + ".pre-upgrade")
    other = Postgres(workspace, "upstanza-other")
    other.initdb()
    cluster.pgbackrest("stanza-upgrade", "--no-online", f"--pg1-path={other.data_dir}")
    assert len(cluster.info()["db"]) == 2
    segment = sorted(p for p in (aside / "pg_wal").iterdir() if len(p.name) == 24)[-1]
    refused = cluster.pgbackrest("archive-push", f"--pg1-path={aside}", str(segment), check=False)
    assert refused.returncode != 0 and "system-id" in refused.stdout + refused.stderr, refused

    rc, rolled, log = run_script(workspace, pg16, server.data_dir, "--rollback", env=env)
    assert rolled["result"] == "rolled-back" and rolled["stanza"] == "reverted", rolled
    assert rolled["durations"]["stanza"] > 0
    history = cluster.info()["db"]
    assert len(history) == 3 and str(history[-1]["system-id"]) == rolled["system_identifier"] == str(history[0]["system-id"])
    back = Postgres(workspace, "upstanza", data_dir=server.data_dir)
    back.start(env=cluster.env())
    back.sql("INSERT INTO marks VALUES (101)")
    back.switch_wal_and_wait_archived()
    assert back.value("SELECT count(*) FROM marks") == 101
    back.stop()

    # Upgraded and rolled back again: the stanza already records the old cluster.
    run_script(workspace, pg16, server.data_dir, "--mode=copy")
    rc, rolled, log = run_script(workspace, pg16, server.data_dir, "--rollback", env=env)
    assert rolled["result"] == "rolled-back" and rolled["stanza"] == "unchanged", rolled
    assert len(cluster.info()["db"]) == 3
