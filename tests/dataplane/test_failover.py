"""Failover of the data plane under repeated crashes, and synchronous replication across a crash.

Real Patroni 4 and PostgreSQL 15 processes on loopback, one per kwok pod, with the local
kube-apiserver as the Kubernetes DCS:

* `pgdemo` (the conftest cluster): kill -9 of the leader five times in a row; each time a replica
  accepts writes within ttl + loop_wait (+ a margin), the pod labels and the read-write Service
  follow, and the crashed leader rejoins through pg_rewind as a streaming replica with every row.
* `pgsync` (built here, in a namespace of its own, from the same objects with
  `synchronous_mode: true`): kill -9 of the leader in the middle of a stream of commits; the former
  synchronous standby takes over with every commit that was acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import threading
import time
import uuid

import pytest
import yaml

from tests.dataplane.conftest import OWNER_LABEL, REPLICAS, cluster_objects, patroni_config, pods_running
from tests.dataplane.harness import CLUSTER_LABEL, DataPlane, api_write_rate, rw_service_targets, wait_for

# Seconds allowed beyond ttl + loop_wait for the promotion itself and the first write, on a slow
# 2-CPU machine that also runs the kube-apiserver (the DCS) and kwok.
FAILOVER_MARGIN = 10
RUNS = 5
SYNC_CLUSTER = "pgsync"
# Commits acknowledged before the leader is killed: enough that the kill lands mid-stream.
SYNC_COMMITS_BEFORE_KILL = 300

pytestmark = pytest.mark.timeout(300)


# --- helpers -------------------------------------------------------------------------------------

def _role_label(kube, namespace, pod):
    return kube.json("get", "pod", pod, "-n", namespace)["metadata"]["labels"].get("role")


def _rows(plane, pod, table):
    return [r[0] for r in plane.execute(pod, f"SELECT v FROM {table} ORDER BY v")]


def _since_last_start(member):
    return member.log().rsplit("----- harness: starting", 1)[-1]


def _first_write(plane, candidates, table, deadline):
    """Try an INSERT on each candidate until one accepts it; (pod, value) or (None, None) at the deadline."""
    while time.monotonic() < deadline:
        for pod in candidates:
            value = f"probe-{uuid.uuid4().hex}"
            try:
                plane.execute(pod, f"INSERT INTO {table} VALUES (%s)", (value,), timeout=1)
            except Exception:  # noqa: BLE001 - a replica refuses writes until it is promoted
                continue
            return pod, value
        time.sleep(0.1)
    return None, None


@contextlib.contextmanager
def _logs_on_failure(plane):
    """Attach the members' log tails to a failure (the conftest hook only knows `dataplane`)."""
    try:
        yield
    except AssertionError as e:
        raise AssertionError(f"{e}\n\n{plane.logs(80)}") from e


# --- 1. five crashes of the leader in a row --------------------------------------------------------

@pytest.mark.timeout(600)
def test_five_leader_crashes_in_a_row(dataplane, timings, kube, namespace, summary):
    """Five times: kill -9 the leader (Patroni and PostgreSQL); a replica accepts a write within
    ttl + loop_wait + margin, is labelled role=primary and is behind the read-write Service; the
    crashed leader, started again, is rewound, streams from the new leader and has every row."""
    plane, table = dataplane, "failover_rows"
    budget = timings["ttl"] + timings["loop_wait"] + FAILOVER_MARGIN
    leader = plane.wait_streaming(timeout=90)
    plane.execute(leader, f"CREATE TABLE IF NOT EXISTS {table} (v text PRIMARY KEY)")
    times = []
    for run in range(1, RUNS + 1):
        old = plane.wait_streaming(timeout=60)
        survivors = [p for p in plane.members if p != old]
        # A committed row that every replica has: whichever is promoted must keep it.
        before = f"run{run}-before-{uuid.uuid4().hex}"
        plane.execute(old, f"INSERT INTO {table} VALUES (%s)", (before,))
        for pod in survivors:
            wait_for(lambda p=pod: before in _rows(plane, p, table), 15, f"run {run}: the row did not reach {pod}")

        started = time.monotonic()
        plane.kill_member(old)
        new, _ = _first_write(plane, survivors, table, started + budget)
        elapsed = time.monotonic() - started
        assert new, (f"run {run}: no replica accepted a write within ttl {timings['ttl']} + loop_wait "
                     f"{timings['loop_wait']} + {FAILOVER_MARGIN}s after {old} was killed")
        assert elapsed <= budget, f"run {run}: failover took {elapsed:.1f}s (> {budget}s)"
        times.append(elapsed)
        summary.append(f"failover run {run}: {old} -> {new} in {elapsed:.1f}s "
                       f"(kill -9 of the leader until a write succeeded on the new one)")

        # Patroni and the pod labels agree on the new leader; the read-write Service reaches it.
        assert plane.wait_for_leader(timeout=15, exclude=(old,)) == new
        wait_for(lambda: _role_label(kube, namespace, new) == "primary", 10,
                 f"run {run}: {new} is not labelled role=primary")
        wait_for(lambda: new in rw_service_targets(kube, namespace, plane.cluster), 15,
                 f"run {run}: the read-write Service does not reach the new leader {new}")
        assert before in _rows(plane, new, table), f"run {run}: a row committed before the crash is lost"
        # Written on the new timeline while the former leader is down.
        during = f"run{run}-during-{uuid.uuid4().hex}"
        plane.execute(new, f"INSERT INTO {table} VALUES (%s)", (during,))

        # The crashed leader comes back: rewound, a streaming replica of the new leader, every row.
        plane.restart_member(old)
        plane.wait_streaming(new, plane.replicas(new), timeout=90)
        after = f"run{run}-after-{uuid.uuid4().hex}"
        plane.execute(new, f"INSERT INTO {table} VALUES (%s)", (after,))
        wait_for(lambda: after in _rows(plane, old, table), 15, f"run {run}: {old} does not replay the new leader")
        assert _rows(plane, old, table) == _rows(plane, new, table), f"run {run}: {old} lacks rows of {new}"
        wait_for(lambda: _role_label(kube, namespace, old) == "replica", 15,
                 f"run {run}: {old} is not labelled role=replica")
        wait_for(lambda: rw_service_targets(kube, namespace, plane.cluster) == [new], 15,
                 f"run {run}: the read-write Service does not point at {new} alone")
        assert plane.leader() == new
        # A crashed primary is ahead of the fork point (by the checkpoint of its crash recovery at
        # least): Patroni must have rewound it, not cloned it anew.
        since = _since_last_start(plane.member(old))
        assert "running pg_rewind from" in since and "pg_rewind exit code=0" in since, \
            f"run {run}: {old} did not rejoin through a successful pg_rewind"
        assert "trying to bootstrap from" not in since, f"run {run}: {old} was cloned anew instead of rewound"

    median = statistics.median(times)
    summary.append(f"failover median of {RUNS}: {median:.1f}s (each: {', '.join(f'{t:.1f}' for t in times)}s; "
                   f"ttl={timings['ttl']} loop_wait={timings['loop_wait']} retry_timeout={timings['retry_timeout']}, "
                   f"budget ttl+loop_wait+{FAILOVER_MARGIN}={budget}s)")


# --- 1b. the write outage of each kind of fault ------------------------------------------------------

FAULTS = {
    # Patroni stops PostgreSQL and lets the lock go: a pod deleted, a member stopped.
    "member stopped gracefully": lambda plane, pod: plane.member(pod).stop(),
    # Patroni sees the postmaster gone at its next loop and starts it again, still holding the lock.
    "PostgreSQL crashed under a live Patroni": lambda plane, pod: plane.member(pod).crash_postgres(),
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_the_write_outage_of_a_fault_of_the_primary(dataplane, timings, namespace, fault, summary):
    """Five times: the fault on the leader, then the time until any member accepts a write (every
    member is probed: the same one after a crash, another after a stop). The whole member killed
    (node loss) is measured above."""
    plane, table = dataplane, "outage_rows"
    leader = plane.wait_streaming(timeout=90)
    plane.execute(leader, f"CREATE TABLE IF NOT EXISTS {table} (v text PRIMARY KEY)")
    times = []
    for run in range(1, RUNS + 1):
        old = plane.wait_streaming(timeout=90)
        plane.wait_streaming(old, plane.replicas(old), timeout=90)
        started = time.monotonic()
        FAULTS[fault](plane, old)
        with _logs_on_failure(plane):
            new, _ = _first_write(plane, plane.members, table, started + timings["ttl"] + timings["loop_wait"] + FAILOVER_MARGIN)
            assert new, f"run {run}: no member accepted a write after: {fault}"
        times.append(time.monotonic() - started)
        if not plane.member(old).running():
            plane.restart_member(old)
    summary.append(f"write outage, {fault}: median of {RUNS} {statistics.median(times):.1f} s "
                   f"({', '.join(f'{t:.1f}' for t in times)}; ttl {timings['ttl']}, loop_wait {timings['loop_wait']})")


def test_patronis_writes_to_the_api_server_follow_loop_wait(dataplane, timings, kube, namespace, summary):
    """The cost of a short loop_wait: the writes this fixture's Patroni (loop_wait 2) makes."""
    api_write_rate(kube, namespace, dataplane, timings["loop_wait"], summary, "the fixture's cluster")


# --- 2. synchronous mode: no acknowledged commit is lost ------------------------------------------

def sync_patroni_config() -> str:
    """The fixture configuration for the cluster `pgsync`, with synchronous replication.

    `synchronous_mode: true` alone is what guarantees that a failover loses no acknowledged commit:
    the primary acknowledges a commit only once the standby named in synchronous_standby_names has
    flushed it, and Patroni promotes only a member listed in the /sync key (it adds a standby there
    after synchronous_standby_names, and removes it from there first). `synchronous_mode_strict` is
    left off: it only makes a primary left without any synchronous standby refuse to acknowledge
    commits instead of going on alone -- availability traded for surviving a second failure, which
    a 3-member cluster losing one member does not exercise, and which would block the writes on the
    new leader until the remaining replica has become its synchronous standby.
    """
    cfg = yaml.safe_load(patroni_config())
    cfg["scope"] = SYNC_CLUSTER
    cfg["kubernetes"]["labels"] = {CLUSTER_LABEL: SYNC_CLUSTER}
    cfg["bootstrap"]["dcs"]["synchronous_mode"] = True
    cfg["bootstrap"]["dcs"]["synchronous_mode_strict"] = False
    return yaml.safe_dump(cfg, sort_keys=False)


@pytest.fixture(scope="module")
def sync_namespace(kube, namespace):
    """A `dp-` namespace of its own for `pgsync` (after the module's, so that orphans are swept first)."""
    name = f"dp-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", name)
    kube.run("label", "namespace", name, f"{OWNER_LABEL}={os.getpid()}")
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def sync_plane(kube, dataplane_deps, sync_namespace):
    """The members of `pgsync`, built as conftest builds `pgdemo`; stopped when the test ends."""
    objs = {"apiVersion": "v1", "kind": "List", "items": cluster_objects(SYNC_CLUSTER, sync_patroni_config())}
    kube.run("apply", "--server-side", "--field-manager=dataplane-test", "-n", sync_namespace, "-f", "-",
             input=json.dumps(objs))
    wait_for(lambda: pods_running(kube, sync_namespace, SYNC_CLUSTER, REPLICAS), 60,
             f"the {REPLICAS} kwok pods of {SYNC_CLUSTER} did not become Running/Ready")
    with DataPlane(sync_namespace, SYNC_CLUSTER, kube=kube).started() as plane:
        yield plane


class _Writer(threading.Thread):
    """Commits numbered rows on one member, one autocommitted INSERT each, until it fails or is told
    to stop; `acked` holds the numbers whose COMMIT returned."""

    def __init__(self, plane, pod, table):
        super().__init__(daemon=True)
        self.conn = plane.member(pod).connect()
        self.table = table
        self.acked: list[int] = []
        self.error: Exception | None = None
        self.halt = threading.Event()

    def run(self):
        n = 0
        try:
            while not self.halt.is_set():
                n += 1
                self.conn.execute(f"INSERT INTO {self.table} VALUES (%s)", (n,))
                self.acked.append(n)
        except Exception as e:  # noqa: BLE001 - the leader's crash ends the stream
            self.error = e
        finally:
            with contextlib.suppress(Exception):
                self.conn.close()


def _sync_standbys(plane, leader):
    return [name for name, state, sync_state in plane.execute(
        leader, "SELECT application_name, state, sync_state FROM pg_stat_replication")
        if state == "streaming" and sync_state == "sync"]


def _patroni_sync_standbys(plane):
    return [m["name"] for m in (plane.cluster_view() or {}).get("members", []) if m.get("role") == "sync_standby"]


def _one_sync_standby(plane, leader):
    """The synchronous standby when pg_stat_replication and Patroni (the /sync key) name the same one."""
    by_pg = _sync_standbys(plane, leader)
    return by_pg[0] if len(by_pg) == 1 and _patroni_sync_standbys(plane) == by_pg else None


def test_synchronous_mode_loses_no_acknowledged_commit(sync_plane, kube, sync_namespace, summary):
    """kill -9 of the leader while it commits: the former synchronous standby becomes the leader
    and has every row whose commit was acknowledged."""
    plane, table = sync_plane, "sync_rows"
    dcs = yaml.safe_load(plane.kube.json("get", "configmap", f"{SYNC_CLUSTER}-patroni", "-n", sync_namespace)
                         ["data"]["patroni.yml"])["bootstrap"]["dcs"]
    budget = int(dcs["ttl"]) + int(dcs["loop_wait"]) + FAILOVER_MARGIN
    with _logs_on_failure(plane):
        old = plane.wait_streaming(timeout=120)
        plane.execute(old, f"CREATE TABLE {table} (v bigint PRIMARY KEY)")
        # One synchronous standby, as PostgreSQL and Patroni (the /sync key) both see it.
        standby = wait_for(lambda: _one_sync_standby(plane, old), 60, f"{old} has no single synchronous standby")

        writer = _Writer(plane, old, table)
        writer.start()
        wait_for(lambda: len(writer.acked) >= SYNC_COMMITS_BEFORE_KILL or writer.error, 60,
                 f"the writer did not get {SYNC_COMMITS_BEFORE_KILL} commits acknowledged")
        assert writer.error is None, f"the writer failed before the kill: {writer.error!r}"
        # Right before the kill, mid-stream: the leader still commits synchronously to that standby.
        assert _sync_standbys(plane, old) == [standby], \
            f"pg_stat_replication on {old} does not show {standby} as its sync standby"
        started = time.monotonic()
        plane.kill_member(old)
        writer.join(15)
        assert not writer.is_alive(), "the writer still commits after the leader was killed"
        assert writer.error is not None, "the writer did not notice the leader's crash"
        acked = list(writer.acked)

        new = plane.wait_for_leader(timeout=budget, exclude=(old,))
        elected = time.monotonic() - started
        assert new == standby, f"{new} was promoted, not the former synchronous standby {standby}"
        present = {r[0] for r in plane.execute(new, f"SELECT v FROM {table}")}
        lost = sorted(set(acked) - present)
        assert not lost, f"{len(lost)} acknowledged commits are missing on {new}: {lost[:20]}"
        unacked = sorted(present - set(acked))
        # At most the INSERT in flight at the kill may have made it without its acknowledgement.
        assert all(v == len(acked) + 1 for v in unacked), f"rows present that were never committed: {unacked[:20]}"
        wait_for(lambda: _role_label(kube, sync_namespace, new) == "primary", 10, f"{new} is not labelled role=primary")
        wait_for(lambda: new in rw_service_targets(kube, sync_namespace, SYNC_CLUSTER), 15,
                 f"the read-write Service does not reach {new}")
        # The new leader takes writes (not strict: it does not wait for a new synchronous standby).
        wait_for(lambda: plane.execute(new, f"INSERT INTO {table} VALUES (0) ON CONFLICT DO NOTHING", timeout=2) is None, 30,
                 f"{new} does not accept writes")

    summary.append(f"synchronous_mode: {len(acked)} commits acknowledged by {old} before its kill -9, "
                   f"{SYNC_CLUSTER} leader {new} (the former sync standby) after {elected:.1f}s has all of them "
                   f"({len(unacked)} in-flight unacknowledged row(s) also present)")
