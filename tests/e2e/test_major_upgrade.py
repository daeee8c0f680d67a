"""Major version upgrades on the control plane: a raised spec.postgresVersion stops the members,
runs the pre-flight and the upgrade in Jobs of the new image on the primary's claim, makes the
replicas' claims anew, starts the members on the new image and runs ANALYZE, step by step in
status.upgrade and Events; the rollback playbook puts the old major back. A failed pre-flight
leaves the cluster on its major, unchanged, and says why.

kwok runs neither PostgreSQL nor the Jobs: the tests play Patroni's part (the leader lock, the
initialize key) and the Jobs' (the JSON line pgc-major-upgrade.sh leaves in the termination message),
as tests/e2e/test_backups.py does.
"""

from __future__ import annotations

import datetime
import json
import threading

from tests.e2e.helpers import (apply, get, kubectl, kubectl_json, playbook_process, postgres_cluster, run_playbook, wait_for,
                               wait_for_phase)
from tests.e2e.test_backups import events, finish_as_patroni, job_pods, run_job_pods
from tests.e2e.test_cluster_metrics import leader_lock

IMAGE = "ghcr.io/pgc-operator/postgres:%d"


def act_as_patroni(namespace, leader="db-0"):
    """What Patroni writes once the cluster runs: the leader lock and the initialize key (the system
    identifier of the data)."""
    apply(leader_lock("db", namespace, leader, datetime.datetime.now(datetime.timezone.utc)), namespace)
    apply({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "db-config", "namespace": namespace,
                        "labels": {"postgres.example.com/cluster": "db"},
                        "annotations": {"initialize": "7310000000000000001"}}}, namespace)


def upgrade_status(namespace):
    return ((get("pgc", "db", namespace) or {}).get("status") or {}).get("upgrade") or {}


def wait_for_upgrade_phase(namespace, phase, timeout=180):
    return wait_for(lambda: (lambda u: u if u.get("phase") == phase else None)(upgrade_status(namespace)),
                    timeout, f"status.upgrade.phase is not {phase}")


def upgrade_result(result, **extra):
    """The JSON line of pgc-major-upgrade.sh."""
    return json.dumps({"result": result, "from": 15, "to": 16, "mode": "copy", "stanza": "",
                       "durations": {"check": 3, "upgrade": 21, "analyze": 0, "total": 24},
                       "old_data": "/var/lib/postgresql/data/pgdata.pre-upgrade", "rollback_possible": True,
                       "reason": "", **extra})


def members_image(namespace):
    containers = get("statefulset", "db", namespace)["spec"]["template"]["spec"]["containers"]
    return next(c["image"] for c in containers if c["name"] == "postgres")


def set_version(namespace, version):
    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": {"postgresVersion": version}}))


def test_a_raised_postgres_version_upgrades_the_cluster_and_the_playbook_rolls_it_back(operator, namespace):
    apply(postgres_cluster("db", replicas=2, postgresVersion=15), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    act_as_patroni(namespace)
    wait_for(lambda: get("pgc", "db", namespace)["status"].get("postgresVersion") == 15, 60,
             "status.postgresVersion does not say 15")
    claims = {n: get("pvc", f"data-db-{n}", namespace)["metadata"]["uid"] for n in (0, 1)}

    set_version(namespace, 16)
    check = wait_for(lambda: get("job", "db-major-upgrade-check", namespace), 180, "no pre-flight Job")
    checking = wait_for_upgrade_phase(namespace, "Checking")
    assert (checking["from"], checking["to"], checking["mode"]) == (15, 16, "copy")
    cluster = get("pgc", "db", namespace)
    assert cluster["status"]["phase"] == "Upgrading"
    # Every member is stopped before anything touches the data; the Job runs the new image on the primary's claim.
    assert get("statefulset", "db", namespace)["spec"]["replicas"] == 0
    wait_for(lambda: not kubectl_json("get", "pods", "-n", namespace, "-l", "postgres.example.com/cluster=db")["items"],
             60, "members still run")
    pod = check["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == IMAGE % 16
    assert {v["name"]: v for v in pod["volumes"]}["data"]["persistentVolumeClaim"]["claimName"] == "data-db-0"
    assert "--check-only" in pod["containers"][0]["command"][-1]
    run_job_pods(namespace, "db-major-upgrade-check", 0, upgrade_result("checked"))

    wait_for(lambda: get("job", "db-major-upgrade", namespace), 120, "no upgrade Job")
    wait_for_upgrade_phase(namespace, "Upgrading")
    run_job_pods(namespace, "db-major-upgrade", 0, upgrade_result("upgraded"))

    # Member 0 starts alone on the new image, until it leads; then the replica, whose claim is made anew.
    wait_for(lambda: get("pod", "db-0", namespace), 120, "member 0 did not start again")
    assert members_image(namespace) == IMAGE % 16
    assert get("statefulset", "db", namespace)["spec"]["replicas"] == 1
    # The upgraded data's system identifier is new: Patroni's initialize key went, the primary takes it again.
    assert "initialize" not in (get("configmap", "db-config", namespace)["metadata"].get("annotations") or {})
    act_as_patroni(namespace)
    wait_for(lambda: get("statefulset", "db", namespace)["spec"]["replicas"] == 2, 60, "the replica did not start")
    analyze = wait_for(lambda: get("job", "db-major-upgrade-analyze", namespace), 120, "no ANALYZE Job")
    assert "vacuumdb --all --analyze-in-stages" in analyze["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    analyzing = wait_for_upgrade_phase(namespace, "Analyzing")
    assert analyzing["outageSeconds"] >= 0 and analyzing["rollbackPossible"] is True
    run_job_pods(namespace, "db-major-upgrade-analyze", 0, json.dumps({"result": "analyzed"}))

    done = wait_for_upgrade_phase(namespace, "Done")
    assert done["finishedAt"] and done["startedAt"] and "rollback_upgrade" in done["message"]
    cluster = wait_for_phase("db", namespace, "Running", ready=2, timeout=120)
    assert cluster["status"]["postgresVersion"] == 16
    condition = next(c for c in cluster["status"]["conditions"] if c["type"] == "MajorUpgrade")
    assert (condition["status"], condition["reason"]) == ("True", "MajorUpgradeDone")
    assert get("pvc", "data-db-0", namespace)["metadata"]["uid"] == claims[0]
    assert get("pvc", "data-db-1", namespace)["metadata"]["uid"] != claims[1]
    for reason in ("MajorUpgradeChecking", "MajorUpgradeStarted", "MajorUpgradeCloning", "MajorUpgradeAnalyzing",
                   "MajorUpgradeDone"):
        assert events(namespace, "db", reason), f"no Event {reason}"

    # The plan alone changes nothing.
    plan = run_playbook("rollback_upgrade", "-e", "cluster=db", "-e", f"namespace={namespace}", "--check")
    assert f"Roll {namespace}/db back from PostgreSQL 16 to 15" in plan, plan[-3000:]
    assert get("job", "db-major-upgrade-written", namespace) is None

    # The rollback: no write since the upgrade, the old data back, the replica cloned again, the spec back.
    outcome = {}
    thread = threading.Thread(daemon=True, target=lambda: outcome.update(proc=playbook_process(
        "rollback_upgrade", "-e", "cluster=db", "-e", f"namespace={namespace}")))
    thread.start()
    written = wait_for(lambda: get("job", "db-major-upgrade-written", namespace), 120, "no write check Job")
    env = {e["name"]: e for e in written["spec"]["template"]["spec"]["containers"][0]["env"]}
    # The superuser's certificate (spec.credentials.superuserRemoteLogin defaults to it): no password at all.
    assert env["PGHOST"]["value"] == "db" and "PGSSLCERT" in env and "PGPASSWORD" not in env
    run_job_pods(namespace, "db-major-upgrade-written", 0, json.dumps({"written": False}))
    rollback = wait_for(lambda: get("job", "db-major-upgrade-rollback", namespace), 180, "no rollback Job")
    assert get("statefulset", "db", namespace)["spec"]["replicas"] == 0
    assert "--rollback" in rollback["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    run_job_pods(namespace, "db-major-upgrade-rollback", 0, upgrade_result("rolled-back"))
    claim_1 = get("pvc", "data-db-1", namespace)["metadata"]["uid"]
    finish_as_patroni(thread, outcome, namespace)

    cluster = wait_for_phase("db", namespace, "Running", ready=2)
    assert cluster["spec"]["postgresVersion"] == 15 and cluster["status"]["postgresVersion"] == 15
    assert cluster["status"]["upgrade"]["phase"] == "RolledBack"
    assert members_image(namespace) == IMAGE % 15
    assert get("pvc", "data-db-0", namespace)["metadata"]["uid"] == claims[0]
    assert get("pvc", "data-db-1", namespace)["metadata"]["uid"] != claim_1
    assert events(namespace, "db", "MajorUpgradeRolledBack")
    assert "postgres.example.com/restore-in-progress" not in (cluster["metadata"].get("annotations") or {})


def test_a_failed_preflight_leaves_the_cluster_on_its_major_and_a_downgrade_is_refused(operator, namespace):
    apply(postgres_cluster("db", replicas=1), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    act_as_patroni(namespace)
    wait_for(lambda: get("pgc", "db", namespace)["status"].get("postgresVersion") == 15, 60,
             "status.postgresVersion does not say 15")
    claim = get("pvc", "data-db-0", namespace)["metadata"]["uid"]

    set_version(namespace, 16)
    wait_for(lambda: get("job", "db-major-upgrade-check", namespace), 180, "no pre-flight Job")
    reason = "pg_upgrade --check: your installation contains the extension pg_foo, which PostgreSQL 16 lacks"
    run_job_pods(namespace, "db-major-upgrade-check", 1, upgrade_result("failed", reason=reason, rollback_possible=False))

    failed = wait_for_upgrade_phase(namespace, "Failed")
    assert reason in failed["message"] and "run PostgreSQL 15 again, unchanged" in failed["message"]
    warning = wait_for(lambda: events(namespace, "db", "MajorUpgradeFailed"), 30, "no MajorUpgradeFailed Event")
    assert warning[0]["type"] == "Warning" and reason in warning[0]["message"]
    cluster = wait_for_phase("db", namespace, "Running", ready=1, timeout=120)
    assert cluster["status"]["postgresVersion"] == 15
    condition = next(c for c in cluster["status"]["conditions"] if c["type"] == "MajorUpgrade")
    assert (condition["status"], condition["reason"]) == ("False", "MajorUpgradeFailed")
    assert members_image(namespace) == IMAGE % 15
    assert get("statefulset", "db", namespace)["spec"]["replicas"] == 1
    assert get("job", "db-major-upgrade", namespace) is None, "no upgrade after a failed pre-flight"
    assert get("pvc", "data-db-0", namespace)["metadata"]["uid"] == claim
    assert len(job_pods(namespace, "db-major-upgrade-check")) == 1, "the failed upgrade is not tried again"

    # Below the major the members run: refused, with the way back in the message.
    set_version(namespace, 14)
    refused = wait_for(lambda: (lambda c: c if "older than PostgreSQL 15" in c["status"].get("message", "") else None)(
        get("pgc", "db", namespace)), 60, "the downgrade is not refused")
    assert refused["status"]["phase"] == "Failed"
    assert any("rollback_upgrade" in e["message"] for e in events(namespace, "db", "InvalidSpec"))
    assert members_image(namespace) == IMAGE % 15
