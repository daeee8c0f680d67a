"""A PostgresCluster rendered by the real operator, its members run by the harness from the very
ConfigMap and Secret the operator wrote: one leader, streaming replicas, the read-write Service
on the leader, the application role, a status that follows a failover through Patroni's
callback, configuration changes applied by reload and by a rolling restart, a new pod template
rolled member by member, and the switchover playbook moving the leader through Patroni's
Kubernetes DCS.
"""

from __future__ import annotations

import base64
import contextlib
import json
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.dataplane.harness import (DataPlane, RowWriter, api_write_rate, has_marker, hold, rw_service_targets,
                                    wait_for, write_marker)
from tests.e2e import helpers as e2e

CLUSTER = "opdb"
pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def operator(kube):
    with e2e.running_operator() as proc:
        yield proc


@pytest.fixture(scope="module")
def rendered(kube, namespace, operator):
    """The cluster as the operator makes it: its kwok pods Running, its ConfigMap and Secret written."""
    # Audited from the start: pgaudit is loaded at the bootstrap, its lines in the JSON log.
    e2e.apply(e2e.postgres_cluster(CLUSTER, replicas=3, audit={"enabled": True, "log": ["ddl", "role", "write"]}),
              namespace)
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=3, timeout=120)
    yield CLUSTER
    e2e.kubectl("delete", "pgc", CLUSTER, "-n", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def plane(kube, dataplane_deps, namespace, rendered):
    with DataPlane(namespace, rendered, kube=kube).started() as members:
        members.follow_pods()
        yield members


def _status(namespace):
    return e2e.get("pgc", CLUSTER, namespace).get("status") or {}


def test_operator_rendered_cluster_elects_one_leader_and_streams(kube, namespace, plane):
    leader = plane.wait_for_leader(timeout=90)
    assert plane.labelled_primaries() == [leader]
    plane.wait_streaming(leader, timeout=120)
    value = write_marker(plane, leader)
    for replica in plane.replicas(leader):
        wait_for(lambda r=replica: has_marker(plane, r, value), 30, f"{replica} did not receive the row")
    wait_for(lambda: rw_service_targets(kube, namespace, CLUSTER) == [leader], 30, "the read-write Service does not select the leader alone")


def test_status_names_the_primary_and_every_member(namespace, plane):
    leader = plane.wait_for_leader(timeout=60)
    plane.wait_streaming(leader, timeout=60)
    status = wait_for(lambda: (lambda s: s if s.get("currentPrimary") == leader and len(s.get("members", [])) == 3
                               and all(m.get("state") in ("running", "streaming") for m in s["members"]) else None)(_status(namespace)),
                      60, f"status does not name {leader} as the primary with 3 running members")
    roles = {m["name"]: m["role"] for m in status["members"]}
    assert roles == {p: ("primary" if p == leader else "replica") for p in plane.members}
    degraded = {c["type"]: c for c in status["conditions"]}["Degraded"]
    assert degraded["status"] == "False", degraded


def test_the_application_role_owns_its_database(plane):
    import psycopg
    leader = plane.wait_for_leader(timeout=60)
    c = plane.credentials
    with psycopg.connect(host="127.0.0.1", port=plane.member(leader).pg_port, user=c["app-username"],
                         password=c["app-password"], dbname=c["app-database"], connect_timeout=3, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()").fetchone()[0]
    assert owner == c["app-username"]


def _patch_config(member, body, auth=None):
    """PATCH /config on a member's REST API; the HTTP status."""
    request = urllib.request.Request(f"http://127.0.0.1:{member.api_port}/config", data=json.dumps(body).encode(),
                                     method="PATCH", headers={"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_patronis_unsafe_endpoints_ask_for_the_operators_credentials(kube, namespace, plane):
    """Anyone who reaches port 8008 could rewrite the configuration (an archive_command runs as
    postgres on every member): without the Secret's user and password Patroni refuses."""
    leader = plane.wait_for_leader(timeout=60)
    member = plane.member(leader)
    # The probes' endpoints stay open.
    for path in ("/readiness", "/liveness"):
        with urllib.request.urlopen(f"http://127.0.0.1:{member.api_port}{path}", timeout=5) as response:
            assert response.status == 200, path
    attack = {"postgresql": {"parameters": {"archive_command": "touch /tmp/pgc-owned"}}}
    assert _patch_config(member, attack) == 401
    assert _patch_config(member, attack, auth=("patroni", "wrong")) == 401
    assert "archive_command" not in ((plane.member(leader).rest("/config").get("postgresql") or {}).get("parameters") or {})
    secret = kube.json("get", "secret", f"{CLUSTER}-patroni-api", "-n", namespace)["data"]
    auth = tuple(base64.b64decode(secret[k]).decode() for k in ("username", "password"))
    assert _patch_config(member, {"loop_wait": 10}, auth=auth) == 200


def test_no_password_is_on_any_command_line(kube, namespace, plane):
    """Every process of the members (Patroni, PostgreSQL and its children, what they run) is listed
    by anyone on the host: no password of the cluster's Secrets is on a command line."""
    import psutil
    leader = plane.wait_for_leader(timeout=60)
    plane.wait_streaming(leader, timeout=60)
    passwords = {v for k, v in plane.credentials.items() if k.endswith("password")}
    api = kube.json("get", "secret", f"{CLUSTER}-patroni-api", "-n", namespace)["data"]
    passwords.add(base64.b64decode(api["password"]).decode())
    assert len(passwords) == 4 and all(len(p) >= 16 for p in passwords)
    seen = 0
    for member in plane.members.values():
        for pid in member.pids():
            try:
                cmdline = " ".join(psutil.Process(pid).cmdline())
            except psutil.Error:
                continue
            seen += 1
            assert not any(p in cmdline for p in passwords), f"a password is on the command line of {pid}"
    assert seen >= 3 * len(plane.members)


def test_audit_writes_pgaudit_lines_to_the_json_log(plane):
    leader = plane.wait_for_leader(timeout=60)
    with plane.member(leader).connect() as conn:
        assert conn.execute("SHOW shared_preload_libraries").fetchone()[0] == "pgaudit"
        conn.execute("CREATE TABLE audited (id int)")
        conn.execute("INSERT INTO audited VALUES (1)")
        conn.execute("SELECT * FROM audited").fetchall()

    def audit_lines():
        lines = []
        for path in (plane.member(leader).data_dir / "log").glob("*.json"):
            for line in path.read_text(errors="replace").splitlines():
                record = json.loads(line)  # every line is one JSON object
                if str(record.get("message", "")).startswith("AUDIT:"):
                    lines.append(record["message"])
        return lines if any("CREATE TABLE audited" in m for m in lines) else None
    lines = wait_for(audit_lines, 30, "no pgaudit line for the CREATE TABLE in the JSON log")
    assert any(",DDL,CREATE TABLE," in m for m in lines)
    assert any(",WRITE,INSERT," in m and "audited" in m for m in lines)
    # read is not among the classes asked for.
    assert not any(",READ,SELECT," in m and "FROM audited" in m for m in lines)


def test_replication_runs_over_tls_and_nothing_from_outside_the_pod_without_it(plane):
    """The members stream over TLS 1.2 or newer checked against the cluster's CA; a connection
    without TLS finds no pg_hba line but the pod's own loopback."""
    import psycopg
    leader = plane.wait_for_leader(timeout=60)
    plane.wait_streaming(leader, timeout=120)
    member = plane.member(leader)
    with member.connect() as conn:
        rows = conn.execute("SELECT s.ssl, s.version FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)").fetchall()
        assert len(rows) == len(plane.members) - 1 and all(ssl for ssl, _ in rows), rows
        assert all(version in ("TLSv1.2", "TLSv1.3") for _, version in rows), rows
        rules = conn.execute("SELECT type, address FROM pg_hba_file_rules WHERE error IS NULL").fetchall()
        assert {address for kind, address in rules if kind == "host"} <= {"127.0.0.1", "::1"}, rules
    c = plane.credentials
    login = dict(host="127.0.0.1", port=member.pg_port, user=c["replication-username"],
                 password=c["replication-password"], replication="true", connect_timeout=3)
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(sslmode="disable", **login).close()
    ca = member.dir / "tls" / "ca.crt"
    with psycopg.connect(sslmode="verify-ca", sslrootcert=str(ca), **login) as conn:
        assert conn.info.pgconn.ssl_in_use


def test_the_exporter_role_monitors_over_the_socket_and_reads_no_data(plane):
    """pgc_monitor, created at bootstrap, connects without a password over the member's socket (the
    exporter sidecar's DSN), sees every session and the replication state, and reads no table."""
    import psycopg
    leader = plane.wait_for_leader(timeout=60)
    plane.wait_streaming(leader, timeout=60)
    member = plane.member(leader)
    with psycopg.connect(host=str(member.socket_dir), port=member.pg_port, user="pgc_monitor", dbname="postgres",
                         connect_timeout=3, autocommit=True) as conn:
        assert conn.execute("SELECT pg_has_role('pg_monitor', 'member')").fetchone()[0] is True
        assert conn.execute("SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles "
                            "WHERE rolname = current_user").fetchone()[0] is False
        states = [r[0] for r in conn.execute("SELECT state FROM pg_stat_replication").fetchall()]
        assert states.count("streaming") == len(plane.members) - 1, states
    with pytest.raises(psycopg.OperationalError):  # not over TCP, and not without a password
        psycopg.connect(host="127.0.0.1", port=member.pg_port, user="pgc_monitor", dbname="postgres",
                        connect_timeout=3).close()
    with pytest.raises(psycopg.OperationalError):  # no access to the application database
        psycopg.connect(host=str(member.socket_dir), port=member.pg_port, user="pgc_monitor",
                        dbname=plane.credentials["app-database"], connect_timeout=3).close()


class _Writer(threading.Thread):
    """Commits a row every few milliseconds on one member until that fails; ``last`` is the wall
    time the last COMMIT returned."""

    def __init__(self, plane, pod):
        super().__init__(daemon=True)
        self.conn = plane.member(pod).connect()
        self.conn.autocommit = True
        self.last = None
        self.halt = threading.Event()

    def run(self):
        with contextlib.suppress(Exception), self.conn:
            self.conn.execute("CREATE TABLE IF NOT EXISTS dp_writes (at timestamptz)")
            while not self.halt.is_set():
                self.conn.execute("INSERT INTO dp_writes VALUES (now())")
                self.last = time.time()
                self.halt.wait(0.02)  # the next commit, or the end


def test_status_follows_a_failover_and_records_its_write_outage(namespace, plane, summary):
    """kill -9 the leader while it takes writes: Patroni promotes a replica, whose callback wakes the
    operator; the cluster's status names the new primary long before any reconcile period (1h),
    and status.failovers records the promotion with the write outage the writer saw, within 2 s,
    from Patroni's records alone."""
    leader = plane.wait_for_leader(timeout=60)
    plane.wait_streaming(leader, timeout=60)
    wait_for(lambda: _status(namespace).get("currentPrimary") == leader, 60, "status does not name the leader")
    wait_for(lambda: "failoverTotals" in _status(namespace), 60, "status does not count failovers")
    counted = _status(namespace)["failoverTotals"]
    writer = _Writer(plane, leader)
    writer.start()
    wait_for(lambda: writer.last is not None and time.time() - writer.last < 0.5, 15, "the writer does not write")
    plane.kill_member(leader)
    killed = time.monotonic()
    writer.halt.set()
    last_write = writer.last
    # Every survivor probed every 0.1 s: the first write accepted ends the outage the writer sees.
    survivors = [p for p in plane.members if p != leader]
    new = wait_for(lambda: next((p for p in survivors if _trywrite_marker(plane, p)), None), 120,
                   "no survivor accepted writes", interval=0.1)
    first_write = time.time()
    promoted = time.monotonic()
    assert plane.wait_for_leader(timeout=30, exclude=(leader,)) == new
    wait_for(lambda: _status(namespace).get("currentPrimary") == new, 60,
             f"status.currentPrimary did not follow the failover to {new}")
    seen = time.monotonic()
    summary.append(f"failover {leader} -> {new}: writable after {promoted - killed:.1f} s, "
                   f"status.currentPrimary after {seen - killed:.1f} s ({seen - promoted:.1f} s after the promotion)")
    # The status is written first, its Events right after.
    def said():
        events = e2e.kubectl_json("get", "events", "-n", namespace, "--field-selector",
                                  f"involvedObject.kind=PostgresCluster,involvedObject.name={CLUSTER}")["items"]
        return [(e["reason"], e["message"]) for e in events]
    wait_for(lambda: any(r in ("PrimaryChanged", "PrimaryElected") and new in m for r, m in said()), 30,
             f"no Event says that {new} became the primary")

    def recorded():
        records = [r for r in _status(namespace).get("failovers") or []
                   if r.get("timeline", 0) > counted["timeline"] and r.get("to") == new]
        return records[0] if records else None
    record = wait_for(recorded, 60, "status.failovers does not record the failover")
    measured = first_write - last_write
    summary.append(f"failover history: recorded window {record.get('writeUnavailableSeconds')} s, measured by the "
                   f"writer {measured:.1f} s (last commit on {leader} to the first on {new})")
    assert (record["from"], record["kind"]) == (leader, "failover")
    stamps = {k: v for k, v in e2e.get("pgc", CLUSTER, namespace)["metadata"].get("annotations", {}).items()
              if k.startswith("postgres.example.com/")}
    assert abs(record["writeUnavailableSeconds"] - measured) <= 2, (record, measured, stamps)
    totals = _status(namespace)["failoverTotals"]
    assert totals["failovers"] == counted["failovers"] + 1 and totals["windowCount"] == counted["windowCount"] + 1
    wait_for(lambda: any(r == "Failover" and new in m for r, m in said()), 30, "no Failover Event")

    plane.restart_member(leader)
    plane.wait_streaming(new, timeout=120)
    wait_for(lambda: all(m.get("state") in ("running", "streaming") for m in _status(namespace).get("members", [])),
             60, "status does not show the former leader running again")


def test_a_postgresql_crash_under_a_live_patroni_is_restarted_at_once(plane, summary):
    """kill -9 of the primary's postmaster, five times: the pod's reload watcher sees it die and
    wakes Patroni, which starts it again at once rather than at its next loop (loop_wait 10 s)."""
    loop_wait = plane.config["bootstrap"]["dcs"]["loop_wait"]
    times = []
    for _ in range(5):
        leader = plane.wait_for_leader(timeout=60)
        plane.wait_streaming(leader, timeout=90)
        started = time.monotonic()
        plane.member(leader).crash_postgres()
        wait_for(lambda: next((p for p in plane.members if _trywrite_marker(plane, p)), None), 60,
                 "no member accepted writes after the crash", interval=0.1)
        times.append(time.monotonic() - started)
    assert "the postmaster" in plane.member(leader).log() and "waking Patroni" in plane.member(leader).log()
    summary.append(f"write outage, PostgreSQL crashed under a live Patroni (the watcher wakes it): "
                   f"{', '.join(f'{t:.1f}' for t in times)} s; median {statistics.median(times):.1f} s "
                   f"(loop_wait {loop_wait})")
    # Without the watcher Patroni would see it at its next loop: loop_wait / 2 on average.
    assert statistics.median(times) < loop_wait / 2, times


def _setting(plane, pod, name):
    return plane.execute(pod, "SELECT setting, unit FROM pg_settings WHERE name = %s", (name,))[0]


def test_patronis_writes_to_the_api_server_follow_loop_wait(kube, namespace, plane, summary):
    """The cost of the operator's loop_wait (10): the writes its cluster's Patroni makes."""
    api_write_rate(kube, namespace, plane, plane.config["bootstrap"]["dcs"]["loop_wait"], summary,
                    "an operator's cluster")


def test_configuration_changes_reload_or_restart_members_one_at_a_time(namespace, plane, summary, tmp_path):
    leader = plane.wait_for_leader(timeout=60)
    plane.wait_streaming(leader, timeout=60)
    # work_mem takes a reload: no member restarts.
    restarts = len(plane.pod_restarts)
    e2e.kubectl("patch", "pgc", CLUSTER, "-n", namespace, "--type=merge", "-p",
                '{"spec":{"configuration":{"work_mem":"24MB"}}}')
    for pod in plane.members:
        wait_for(lambda p=pod: _setting(plane, p, "work_mem") == ("24576", "kB"), 90, f"{pod} did not reload work_mem")
    assert len(plane.pod_restarts) == restarts

    # The plan playbook says beforehand what the change will do, from Patroni's members.
    cluster = e2e.get("pgc", CLUSTER, namespace)
    proposed = {"spec": dict(cluster["spec"], configuration={"work_mem": "24MB", "max_connections": "120"})}
    (tmp_path / "proposed.json").write_text(json.dumps(proposed))
    out = e2e.run_playbook("plan", "-e", f"cluster={CLUSTER}", "-e", f"namespace={namespace}",
                           "-e", f"@{tmp_path / 'proposed.json'}")
    order = sorted(set(plane.members) - {leader}, key=lambda m: -int(m.rsplit("-", 1)[1])) + [leader]
    assert f"Members that restart, in order: {', '.join(order)}" in out, out
    assert "Parameters that change: max_connections (need a restart: max_connections)" in out
    assert "Switchovers: 1; expected write outage: about 3 s" in out
    printed = [line.strip().rstrip(",").strip('"') for line in out.splitlines()
               if line.strip().startswith('"') and not line.strip().startswith('"msg"')]
    summary.append("plan printed before a restart-needing change (max_connections):")
    summary.extend("  " + line for line in printed)

    # max_connections takes a restart: the replicas restart one at a time (their pods deleted and
    # recreated), then the primary moves to a restarted replica; Patroni restarts the former primary
    # as a replica when it demotes it, which applies the parameter there too.
    e2e.kubectl("patch", "pgc", CLUSTER, "-n", namespace, "--type=merge", "-p",
                '{"spec":{"configuration":{"work_mem":"24MB","max_connections":"120"}}}')
    recorded = wait_for(lambda: (_status(namespace).get("plan") or {}).get("restarts"), 60, "no plan in status")
    assert recorded == order
    for pod in plane.members:
        wait_for(lambda p=pod: plane.member(p).running() and _setting(plane, p, "max_connections")[0] == "120", 300,
                 f"{pod} did not restart with max_connections 120")
    restarted = plane.pod_restarts[restarts:]
    replicas = set(plane.members) - {leader}
    assert replicas <= set(restarted) and all(restarted.count(r) == 1 for r in replicas), restarted
    # In the order the plan said.
    assert [r for r in restarted if r in replicas] == order[:-1], restarted
    assert leader not in restarted or restarted[-1] == leader, f"the primary {leader} was not restarted last: {restarted}"
    new_leader = plane.wait_for_leader(timeout=60)
    assert new_leader != leader
    wait_for(lambda: _trywrite_marker(plane, new_leader), 30, f"{new_leader} did not accept writes")
    wait_for(lambda: not any(m.get("pendingRestart") for m in _status(namespace).get("members", [])), 60,
             "status still shows a pending restart")


def _revisions(kube, namespace):
    """The StatefulSet's updateRevision and each member pod's revision."""
    sts = e2e.get("statefulset", CLUSTER, namespace)
    pods = e2e.kubectl_json("get", "pods", "-n", namespace, "-l", f"postgres.example.com/cluster={CLUSTER}")["items"]
    return sts["status"].get("updateRevision"), {p["metadata"]["name"]: p["metadata"]["labels"].get(
        "controller-revision-hash") for p in pods}


def test_a_new_pod_template_rolls_replicas_first_then_the_primary_after_a_switchover(kube, namespace, plane, summary):
    """A change of the pod template (the containers' resources here; an image the same way): the
    operator replaces the replicas one at a time, each Ready and streaming before the next, then
    switches over to one of them and replaces the old primary. A client writing through it sees
    only the switchover's outage and loses no row; an Event says each step."""
    leader = plane.wait_for_leader(timeout=60)
    plane.wait_streaming(leader, timeout=90)
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=3, timeout=120)
    before, _ = _revisions(kube, namespace)
    restarts = len(plane.pod_restarts)
    plane.execute(leader, "CREATE TABLE rolling_rows (n int PRIMARY KEY)")
    writer = RowWriter(plane, "INSERT INTO rolling_rows VALUES (%s)")
    writer.start()
    wait_for(lambda: len(writer.acked) > 20, 30, "the writer does not write")
    phases = set()
    started = time.monotonic()
    e2e.kubectl("patch", "pgc", CLUSTER, "-n", namespace, "--type=merge", "-p",
                '{"spec":{"resources":{"requests":{"cpu":"150m","memory":"192Mi"}}}}')
    try:
        def updated():
            phases.add(_status(namespace).get("phase"))
            revision, pods = _revisions(kube, namespace)
            return revision != before and len(pods) == 3 and set(pods.values()) == {revision} and \
                _status(namespace).get("phase") == "Running"
        wait_for(updated, 300, "the members were not all replaced by pods of the new template")
        took = time.monotonic() - started
        new = plane.wait_for_leader(timeout=60)
        plane.wait_streaming(new, timeout=120)
    finally:
        writer.halt.set()
        writer.join(15)
    wait_for(lambda: len(plane.pod_restarts) >= restarts + 3, 60, "the harness did not restart every member")
    restarted = plane.pod_restarts[restarts:]
    assert sorted(restarted) == sorted(plane.members), f"each member once: {restarted}"
    assert restarted[-1] == leader and new != leader, f"the primary {leader} was not replaced last: {restarted}"
    present = {r[0] for r in plane.execute(new, "SELECT n FROM rolling_rows")}
    lost = sorted(set(writer.acked) - present)
    assert not lost, f"{len(lost)} acknowledged rows lost: {lost[:20]}"
    assert "Updating" in phases, phases
    events = e2e.kubectl_json("get", "events", "-n", namespace, "--field-selector",
                              f"involvedObject.kind=PostgresCluster,involvedObject.name={CLUSTER}")["items"]
    steps = [e["message"] for e in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
             if e["reason"] == "RollingUpdate"]
    for pod in plane.members:
        assert any(f"Updating {pod}" in m for m in steps), (pod, steps)
    assert any(f"Moving the primary off {leader}" in m for m in steps), steps
    gap = writer.longest_gap()
    summary.append(f"rolling update of the pod template (3 members, replicas first, then a switchover): "
                   f"{took:.0f} s in all, order {', '.join(restarted)}; longest write gap {gap:.1f} s; "
                   f"0 of {len(writer.acked)} acknowledged rows lost")
    assert gap < plane.config["bootstrap"]["dcs"]["loop_wait"], f"writes stopped for {gap:.1f} s"


def _resources(namespace, resources):
    """Set spec.resources (None: none), a change of the pod template."""
    e2e.kubectl("patch", "pgc", CLUSTER, "-n", namespace, "--type=json", "-p",
                json.dumps([{"op": "add", "path": "/spec/resources", "value": resources or {}}]))


def _all_on(kube, namespace, revision=None):
    """The revision every member's pod is of (the StatefulSet's, or ``revision``), once the cluster is
    Running again; else None."""
    live, pods = _revisions(kube, namespace)
    revision = revision or live
    return revision if len(pods) == 3 and set(pods.values()) == {revision} and \
        _status(namespace).get("phase") == "Running" else None


def test_a_canary_update_holds_until_approved_and_a_spec_put_back_rolls_the_canary_back(kube, namespace, plane,
                                                                                         summary):
    """spec.updatePolicy.canary 1: a new pod template replaces one replica and holds (status.update,
    a CanaryHeld Event), the primary untouched. Putting the spec back replaces the canary with the
    old template, no switchover. Changed again, held again, the approve playbook lets the
    other members follow, the primary last."""
    leader = plane.wait_for_leader(timeout=60)
    plane.wait_streaming(leader, timeout=120)
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=3, timeout=120)
    e2e.kubectl("patch", "pgc", CLUSTER, "-n", namespace, "--type=merge", "-p", '{"spec":{"updatePolicy":{"canary":1}}}')
    before = e2e.get("pgc", CLUSTER, namespace)["spec"].get("resources")
    original = wait_for(lambda: _all_on(kube, namespace), 60, "the cluster is not Running on one revision")

    def held():
        update = _status(namespace).get("rollout") or {}
        return update if update.get("held") else None

    def canary_round():
        restarts = len(plane.pod_restarts)
        started = time.monotonic()
        _resources(namespace, {"requests": {"cpu": "250m", "memory": "320Mi"}})
        update = wait_for(held, 180, "the update did not hold at its canary")
        took = time.monotonic() - started
        assert len(update["canaries"]) == 1 and leader not in update["canaries"], update
        # The harness starts a member again once its old one stopped (follow_pods): it may lag.
        wait_for(lambda: plane.pod_restarts[restarts:] == update["canaries"], 60,
                 f"the canary {update['canaries']} alone was replaced: {plane.pod_restarts[restarts:]}")
        # Held: nothing else moves.
        hold(15, lambda: len(plane.pod_restarts) == restarts + 1 and plane.leader() == leader,
             "a member moved while the update held")
        return update, took

    update, held_after = canary_round()
    assert _status(namespace)["phase"] == "Updating"
    events = e2e.kubectl_json("get", "events", "-n", namespace, "--field-selector",
                              f"involvedObject.kind=PostgresCluster,involvedObject.name={CLUSTER}")["items"]
    assert any(e["reason"] == "CanaryHeld" and update["canaries"][0] in e["message"] for e in events)

    # Put back: the canary returns to the old template; the primary never moved.
    restarts = len(plane.pod_restarts)
    started = time.monotonic()
    _resources(namespace, before)
    wait_for(lambda: _all_on(kube, namespace, original), 180, "the canary was not rolled back")
    rolled_back = time.monotonic() - started
    wait_for(lambda: plane.pod_restarts[restarts:] == update["canaries"], 60,
             f"the canary {update['canaries']} alone was replaced: {plane.pod_restarts[restarts:]}")
    assert plane.wait_for_leader(timeout=30) == leader

    update, _ = canary_round()
    started = time.monotonic()
    restarts = len(plane.pod_restarts)
    out = e2e.run_playbook("approve", "-e", f"cluster={CLUSTER}", "-e", f"namespace={namespace}")
    assert f"revision {update['revision']} approved" in out
    wait_for(lambda: _all_on(kube, namespace) == update["revision"], 300, "the approved update did not finish")
    finished = time.monotonic() - started
    new = plane.wait_for_leader(timeout=60)
    wait_for(lambda: len(plane.pod_restarts) >= restarts + 2, 60, "the harness did not restart the members")
    assert new != leader and plane.pod_restarts[restarts:] == [m for m in plane.pod_restarts[restarts:] if m != leader] \
        + [leader], plane.pod_restarts[restarts:]
    assert "rollout" not in _status(namespace)
    summary.append(f"canary update (1 of 3): held {held_after:.0f} s after the change; put back, the canary was "
                   f"rolled back in {rolled_back:.0f} s; approved, the rest followed in {finished:.0f} s")


class _RequestWatch(threading.Thread):
    """Watches the switchover requests (the annotation the switchover role puts on <cluster>-failover)
    and keeps the monotonic time each new one was seen."""

    def __init__(self, kube, namespace):
        super().__init__(daemon=True)
        self.seen = []
        self.proc = subprocess.Popen(
            ["kubectl", "get", "configmaps", "-n", namespace, "--field-selector", f"metadata.name={CLUSTER}-failover",
             "--watch", "-o", r'jsonpath={.metadata.annotations.postgres\.example\.com/switchover}{"\n"}'],
            env=kube.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def run(self):
        for line in self.proc.stdout:
            if line.strip() and (not self.seen or self.seen[-1][1] != line.strip()):
                self.seen.append((time.monotonic(), line.strip()))

    def requested(self, candidate, after):
        return next((t for t, line in self.seen if t >= after and line.endswith(" " + candidate)), None)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def test_switchover_playbook_moves_the_leader(kube, namespace, plane, summary):
    """Five switchovers by playbook in a row, each to the replica with the highest ordinal; each
    timed from the request (the failover ConfigMap written) until the candidate accepts a write.
    Patroni is woken at the request: it does not wait for the leader's next loop (loop_wait)."""
    watch = _RequestWatch(kube, namespace)
    watch.start()
    times, whole, records, measured = [], [], [], []
    counted = wait_for(lambda: (_status(namespace).get("failoverTotals") or {}).get("timeline"), 60,
                       "status does not count failovers")
    try:
        for _ in range(5):
            leader = plane.wait_for_leader(timeout=60)
            plane.wait_streaming(leader, timeout=90)
            candidate = sorted(plane.replicas(leader))[-1]
            # A writer on the primary until it refuses: the outage it sees is what the history records.
            writer = _Writer(plane, leader)
            writer.start()
            wait_for(lambda w=writer: w.last is not None, 15, "the writer does not write")
            started = time.monotonic()
            value = {}
            runner = threading.Thread(target=lambda c=candidate: value.setdefault("out", _switchover(namespace, c)))
            runner.start()
            value["marker"] = wait_for(lambda c=candidate: _trywrite_marker(plane, c), 60,
                                       f"{candidate} did not accept writes", interval=0.1)
            writable, first_write = time.monotonic(), time.time()
            writer.halt.set()
            writer.join(15)
            measured.append(first_write - writer.last)
            runner.join(120)
            assert f"primary {leader} -> {candidate}" in value.get("out", "")
            requested = wait_for(lambda c=candidate, s=started: watch.requested(c, s), 10,
                                 "the switchover request was not seen")
            times.append(writable - requested)
            whole.append(writable - started)
            assert plane.labelled_primaries() == [candidate]
            wait_for(lambda c=candidate: rw_service_targets(kube, namespace, CLUSTER) == [c], 30,
                     "the read-write Service did not follow")
            wait_for(lambda o=leader, v=value["marker"]: has_marker(plane, o, v), 60,
                     f"the former leader {leader} does not follow the new one")
            # The failover history records it as a switchover, with its window, before the next one.
            records.append(wait_for(lambda c=candidate, n=len(records): next(
                (r for r in (_status(namespace).get("failovers") or [])[::-1]
                 if r.get("to") == c and r.get("kind") == "switchover" and r.get("timeline", 0) > counted + n), None),
                60, f"status.failovers does not record the switchover to {candidate}"))
    finally:
        watch.stop()
    dcs = plane.config["bootstrap"]["dcs"]
    summary.append(f"switchover, from the request until the candidate accepts a write: "
                   f"{', '.join(f'{t:.1f}' for t in times)} s; median {statistics.median(times):.1f} s "
                   f"(from the playbook's start: median {statistics.median(whole):.1f} s; ttl {dcs['ttl']}, "
                   f"loop_wait {dcs['loop_wait']}, retry_timeout {dcs['retry_timeout']})")
    # Without the wake-up the leader would see the request at its next loop: loop_wait / 2 on average.
    assert statistics.median(times) < dcs["loop_wait"], times
    windows = [r.get("writeUnavailableSeconds") for r in records]
    summary.append(f"failover history of the switchovers: recorded windows {windows} s, measured by a writer "
                   f"{[round(m, 1) for m in measured]} s (its last commit on the old primary to the first on the new)")
    assert all(w is not None and abs(w - m) <= 2 for w, m in zip(windows, measured)), (records, measured)


def _trywrite_marker(plane, pod):
    try:
        return write_marker(plane, pod)
    except Exception:  # noqa: BLE001 - still read-only or restarting: try again
        return None


def _switchover(namespace, candidate):
    return e2e.run_playbook("switchover", "-e", f"cluster={CLUSTER}", "-e", f"namespace={namespace}",
                            "-e", f"candidate={candidate}")


def test_scale_down_moves_the_primary_off_the_removed_member_first(kube, namespace, plane, operator):
    """With the primary on the highest ordinal, replicas 3 -> 2 switches over to a remaining
    member before the StatefulSet removes it; the cluster stays writable and keeps its data."""
    leader = plane.wait_for_leader(timeout=60)
    last = f"{CLUSTER}-2"
    if leader != last:
        plane.wait_streaming(leader, timeout=60)
        _switchover(namespace, last)
        wait_for(lambda: plane.labelled_primaries() == [last], 30, f"{last} did not become the primary")
    value = wait_for(lambda: _trywrite_marker(plane, last), 30, f"{last} did not accept writes")
    plane.wait_streaming(last, timeout=60)

    e2e.kubectl("patch", "pgc", CLUSTER, "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":2}}')
    new_leader = wait_for(lambda: (lambda p: p[0] if len(p) == 1 and p[0] != last else None)(plane.labelled_primaries()),
                          90, "the primary did not move off the member being removed")
    assert new_leader in (f"{CLUSTER}-0", f"{CLUSTER}-1")
    wait_for(lambda: e2e.get("statefulset", CLUSTER, namespace)["spec"]["replicas"] == 2, 60,
             "the StatefulSet was not scaled down")
    assert has_marker(plane, new_leader, value), "a row written before the scale-down is gone"
    wait_for(lambda: _trywrite_marker(plane, new_leader), 30, f"{new_leader} did not accept writes")
    e2e.wait_for_phase(CLUSTER, namespace, "Running", ready=2, timeout=90)
