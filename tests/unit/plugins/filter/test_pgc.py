"""The normalized cluster fact and the status computed from a StatefulSet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.postgres.cluster.plugins.filter import pgc as flt

REPO = Path(__file__).resolve().parents[4]
CRD = REPO / "config/crd/bases/postgres.example.com_postgresclusters.yaml"


def cluster(**spec):
    return {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster",
            "metadata": {"name": "db", "namespace": "prod", "uid": "u-1", "generation": 4},
            "spec": spec}


def statefulset(replicas, ready, updated=None, generation=2, observed=2):
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "readyReplicas": ready,
                       "updatedReplicas": replicas if updated is None else updated,
                       "observedGeneration": observed}}


def test_pgc_normalize_applies_the_crd_defaults():
    crd = yaml.safe_load(CRD.read_text())
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    crd_defaults = {k: v["default"] for k, v in props.items() if "default" in v}
    assert crd_defaults, "the CRD declares defaults"
    for key, value in crd_defaults.items():
        assert flt.SPEC_DEFAULTS[key] == value, key
    assert set(flt.SPEC_DEFAULTS) <= set(props), "every defaulted field exists in the CRD"
    credentials = props["credentials"]["properties"]
    for key, value in flt.CREDENTIALS_DEFAULTS.items():
        assert credentials[key].get("default", "") == value, key


def test_pgc_normalize_keeps_user_values_and_derives_names_and_labels():
    pgc = flt.pgc_normalize(cluster(replicas=3, configuration={"shared_buffers": "1GB"}))
    assert pgc["spec"]["replicas"] == 3
    assert pgc["spec"]["configuration"] == {"shared_buffers": "1GB"}
    assert pgc["spec"]["image"] == "ghcr.io/pgc-operator/postgres:15"
    assert pgc["spec"]["credentials"]["superuser"] == "postgres"
    assert pgc["names"] == {"statefulset": "db", "service_rw": "db", "service_ro": "db-ro", "service_headless": "db-pods",
                            "credentials": "db-credentials", "patroni_config": "db-patroni",
                            "patroni_account": "db-patroni", "pdb": "db", "service_metrics": "db-metrics",
                            "monitoring": "db", "pgbackrest_config": "db-pgbackrest", "backup_cronjob": "db-backup",
                            "logical_cronjob": "db-logical-backup", "backup_tls": "db-backup-tls",
                            "repo_host": "db-repo", "backup_claim": "db-backup"}
    assert pgc["labels"]["app.kubernetes.io/instance"] == "db"
    assert pgc["selector_string"] == "postgres.example.com/cluster=db"
    assert pgc["owner_reference"] == {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster",
                                      "name": "db", "uid": "u-1", "controller": True, "blockOwnerDeletion": True}


def test_pgc_normalize_refuses_an_object_without_name():
    with pytest.raises(Exception, match="metadata.name"):
        flt.pgc_normalize({"metadata": {}})


def observed(leader="db-0", n=3, initialized=True, **member_overrides):
    members = [{"name": "db-%d" % i, "role": "primary" if "db-%d" % i == leader else "replica",
                "state": "running" if "db-%d" % i == leader else "streaming", "timeline": 1} for i in range(n)]
    for m in members:
        m.update(member_overrides.get(m["name"], {}))
    return {"leader": leader, "members": members, "initialized": initialized,
            "pending_restart": [m["name"] for m in members if m.get("pendingRestart")]}


def test_pgc_status_names_the_holder_of_the_leader_lock_and_each_member():
    pgc = flt.pgc_normalize(cluster(replicas=3))
    status = flt.pgc_status(pgc, statefulset(3, 3), observed("db-2"))
    assert status["currentPrimary"] == "db-2"
    assert [(m["name"], m["role"]) for m in status["members"]] == [("db-0", "replica"), ("db-1", "replica"), ("db-2", "primary")]
    assert flt.pgc_status(pgc, statefulset(3, 3), observed(None))["currentPrimary"] is None


def test_pgc_status_leaves_replication_lag_out_so_that_writes_do_not_rewrite_it():
    obs = observed()
    obs["members"][1]["lagBytes"] = 4096
    status = flt.pgc_status(flt.pgc_normalize(cluster(replicas=3)), statefulset(3, 3), obs)
    assert "lagBytes" not in status["members"][1]


def conditions(status):
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_pgc_status_is_degraded_without_a_primary_or_with_a_member_down():
    pgc = flt.pgc_normalize(cluster(replicas=3))
    assert conditions(flt.pgc_status(pgc, statefulset(3, 3), observed()))["Degraded"] == ("False", "Healthy")
    assert conditions(flt.pgc_status(pgc, statefulset(3, 3), observed(None)))["Degraded"] == ("True", "NoPrimary")
    down = observed(**{"db-1": {"state": "stopped"}})
    degraded = flt.pgc_status(pgc, statefulset(3, 3), down)["conditions"]
    [cond] = [c for c in degraded if c["type"] == "Degraded"]
    assert (cond["status"], cond["reason"]) == ("True", "MembersUnhealthy") and "db-1" in cond["message"]
    # Before Patroni bootstrapped anything there is nothing to be degraded about.
    assert conditions(flt.pgc_status(pgc, statefulset(3, 3), observed(None, initialized=False)))["Degraded"][0] == "False"


def test_pgc_dcs_config_applies_the_spec_to_a_bootstrapped_cluster_only_when_it_differs():
    pgc = flt.pgc_normalize(cluster(configuration={"work_mem": "8MB"}))
    current = json.loads(json.dumps(flt.pgc_patroni_config(pgc)["bootstrap"]["dcs"]))
    current["postgresql"]["parameters"]["work_mem"] = "8MB"
    current["check_timeline"] = True  # set by someone else: kept
    assert flt.pgc_dcs_config(current, pgc) == {}
    assert flt.pgc_dcs_config(None, pgc) == {}  # not bootstrapped: patroni.yml's bootstrap.dcs applies

    changed = flt.pgc_normalize(cluster(configuration={"work_mem": "16MB", "shared_buffers": "256MB"}))
    merged = flt.pgc_dcs_config(current, changed)
    assert merged["postgresql"]["parameters"]["work_mem"] == "16MB"
    assert merged["postgresql"]["parameters"]["shared_buffers"] == "256MB"
    assert merged["check_timeline"] is True

    # A parameter removed from the spec is removed from Patroni's configuration (back to its default).
    removed = flt.pgc_dcs_config(current, flt.pgc_normalize(cluster()))
    assert "work_mem" not in removed["postgresql"]["parameters"]


def test_pgc_dcs_config_sees_equal_values_of_other_types_as_equal():
    pgc = flt.pgc_normalize(cluster(configuration={"max_connections": 200}))
    current = json.loads(json.dumps(flt.pgc_patroni_config(pgc)["bootstrap"]["dcs"]))
    current["postgresql"]["parameters"]["max_connections"] = "200"
    assert flt.pgc_dcs_config(current, pgc) == {}


def test_pgc_restart_plan_restarts_replicas_first_and_the_primary_after_a_switchover():
    pgc = flt.pgc_normalize(cluster(replicas=3))
    assert flt.pgc_restart_plan(observed(), pgc)["action"] == "none"
    pending = {"pendingRestart": True}
    plan = flt.pgc_restart_plan(observed(**{"db-0": pending, "db-1": pending, "db-2": pending}), pgc)
    assert (plan["action"], plan["member"]) == ("restart", "db-2")
    plan = flt.pgc_restart_plan(observed(**{"db-0": pending}), pgc)
    assert (plan["action"], plan["member"]) == ("switchover", "db-0")
    # Never while a member is down or there is no primary.
    plan = flt.pgc_restart_plan(observed(**{"db-1": {"pendingRestart": True}, "db-2": {"state": "starting"}}), pgc)
    assert plan["action"] == "wait" and "db-2" in plan["message"]
    assert flt.pgc_restart_plan(observed(None, **{"db-1": pending}), pgc)["action"] == "wait"
    # A single member has no one to switch over to: it restarts.
    one = flt.pgc_normalize(cluster(replicas=1))
    plan = flt.pgc_restart_plan(observed(n=1, **{"db-0": pending}), one)
    assert (plan["action"], plan["member"]) == ("restart", "db-0")


def test_pgc_patroni_config_runs_the_callback_and_the_post_bootstrap_script():
    config = flt.pgc_patroni_config(flt.pgc_normalize(cluster()))
    callbacks = config["postgresql"]["callbacks"]
    assert set(callbacks) == {"on_start", "on_stop", "on_role_change"}
    assert set(callbacks.values()) == {"python3 /etc/patroni/pgc-callback.py"}
    assert config["bootstrap"]["post_bootstrap"] == "sh /etc/patroni/pgc-post-bootstrap.sh db"


def test_pgc_patroni_config_merges_the_spec_over_replication_defaults():
    pgc = flt.pgc_normalize(cluster(configuration={"max_connections": 300, "wal_keep_size": "1GB"}, synchronous=True,
                                    credentials={"superuser": "admin", "replicationUser": "standby"}))
    config = flt.pgc_patroni_config(pgc)
    assert config["scope"] == "db"
    assert config["kubernetes"]["labels"] == {"postgres.example.com/cluster": "db"}
    assert config["kubernetes"]["scope_label"] == "postgres.example.com/cluster"
    assert (config["kubernetes"]["role_label"], config["kubernetes"]["use_endpoints"]) == ("role", False)
    dcs = config["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["synchronous_mode"]) == (30, 10, True)
    parameters = dcs["postgresql"]["parameters"]
    assert parameters["max_connections"] == 300
    assert parameters["wal_keep_size"] == "1GB"
    assert (parameters["wal_level"], parameters["wal_log_hints"]) == ("replica", "on")
    assert parameters["password_encryption"] == "scram-sha-256"
    assert dcs["postgresql"]["use_pg_rewind"] is True
    pg = config["postgresql"]
    assert pg["authentication"] == {"superuser": {"username": "admin"}, "replication": {"username": "standby"}}
    assert "host replication standby 0.0.0.0/0 scram-sha-256" in pg["pg_hba"]
    assert not [rule for rule in pg["pg_hba"] if rule.split()[0] == "host" and rule.split()[-1] != "scram-sha-256"]
    assert "password" not in str(config).replace("password_encryption", "")


def test_pgc_status_is_pending_without_statefulset():
    status = flt.pgc_status(flt.pgc_normalize(cluster(replicas=3)), None)
    assert status["phase"] == "Pending"
    assert status["readyReplicas"] == 0
    assert status["currentPrimary"] is None


def test_pgc_status_is_running_when_every_replica_is_ready():
    status = flt.pgc_status(flt.pgc_normalize(cluster(replicas=3)), statefulset(3, 3), observed())
    assert status["phase"] == "Running"
    assert (status["currentReplicas"], status["readyReplicas"]) == (3, 3)
    assert status["observedGeneration"] == 4
    assert status["selector"] == "postgres.example.com/cluster=db"
    types = {c["type"]: c["status"] for c in status["conditions"]}
    assert types == {"Ready": "True", "Progressing": "False", "Degraded": "False", "Reconciled": "True"}


def test_pgc_status_waits_for_the_statefulset_controller_to_see_the_new_template():
    status = flt.pgc_status(flt.pgc_normalize(cluster(replicas=3)), statefulset(3, 3, generation=3, observed=2))
    assert status["phase"] == "Pending"


def test_pgc_status_reports_scaling_once_the_cluster_was_running():
    obj = cluster(replicas=5)
    obj["status"] = {"phase": "Running"}
    sts = statefulset(5, 3)
    sts["status"]["replicas"] = 3
    status = flt.pgc_status(flt.pgc_normalize(obj), sts)
    assert status["phase"] == "Scaling"
    assert "3 to 5" in status["message"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "False"


def test_pgc_failure_status_names_the_failure():
    status = flt.pgc_failure_status(flt.pgc_normalize(cluster()), "Apply the cluster's objects: forbidden")
    assert status["phase"] == "Failed"
    reconciled = [c for c in status["conditions"] if c["type"] == "Reconciled"][0]
    assert reconciled["status"] == "False" and "forbidden" in reconciled["message"]


def test_pgc_failure_message_keeps_the_api_servers_own_message():
    raw = ("Failed to apply object: b'{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
           "\"message\":\"StatefulSet.apps \\\\\"db\\\\\" is invalid: spec: Forbidden: updates to statefulset spec for "
           "fields other than \\'replicas\\' are forbidden\",\"reason\":\"Invalid\",\"code\":422}'")
    msg = flt.pgc_failure_message(raw)
    assert msg == ("Failed to apply object: StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to "
                   "statefulset spec for fields other than 'replicas' are forbidden")


def test_pgc_failure_message_collapses_and_truncates_plain_text():
    assert flt.pgc_failure_message("a\n  b") == "a b"
    assert len(flt.pgc_failure_message("x" * 2000)) == 600


def test_pgc_object_diffs_keeps_changed_objects_without_server_noise():
    results = [
        {"changed": False, "result": {"kind": "Service", "metadata": {"name": "db"}}, "diff": {}},
        {"changed": True, "result": {"kind": "StatefulSet", "metadata": {"name": "db"}},
         "diff": {"before": {"metadata": {"generation": 1, "managedFields": []}, "spec": {"replicas": 3}},
                  "after": {"metadata": {"generation": 2, "managedFields": []}, "spec": {"replicas": 5},
                            "status": {"replicas": 3}}}},
    ]
    assert flt.pgc_object_diffs(results) == {
        "StatefulSet/db": {"before": {"spec": {"replicas": 3}}, "after": {"spec": {"replicas": 5}}}}


def test_pgc_status_differs_ignores_transition_times_and_sees_real_changes():
    pgc = flt.pgc_normalize(cluster(replicas=3))
    desired = flt.pgc_status(pgc, statefulset(3, 3))
    written = {**desired, "conditions": [{**c, "lastTransitionTime": "2026-01-01T00:00:00Z"}
                                         for c in desired["conditions"]]}
    assert not flt.pgc_status_differs(written, desired)
    assert flt.pgc_status_differs(written, flt.pgc_status(pgc, statefulset(3, 2)))
    assert flt.pgc_status_differs({}, desired)
    assert flt.pgc_status_differs(None, desired)


@pytest.mark.parametrize("image", ["postgres:15", "postgres", "docker.io/library/postgres:16@sha256:abc",
                                   "library/postgres:17-alpine", "bitnami/postgresql:15"])
def test_pgc_spec_errors_refuses_images_without_patroni(image):
    (error,) = flt.pgc_spec_errors(flt.pgc_normalize(cluster(image=image)))
    assert error.startswith(f"spec.image {image} has no Patroni")


@pytest.mark.parametrize("image", ["ghcr.io/pgc-operator/postgres:15", "registry.local:5000/postgres-patroni:16",
                                   "registry.local:5000/team/postgres:15"])
def test_pgc_spec_errors_accepts_other_images(image):
    assert flt.pgc_spec_errors(flt.pgc_normalize(cluster(image=image))) == []


def test_pgc_spec_errors_names_each_owned_parameter():
    errors = flt.pgc_spec_errors(flt.pgc_normalize(cluster(configuration={
        "port": 6432, "max_connections": "200", "archive_command": "cp %p /x", "wal_level": "minimal"})))
    assert errors == [
        "spec.configuration.archive_command is set by the operator and cannot be overridden",
        "spec.configuration.port is set by the operator and cannot be overridden",
        "spec.configuration.wal_level must be replica or logical: streaming replicas need it",
    ]


def test_pgc_failure_status_marks_degraded_only_when_asked():
    pgc = flt.pgc_normalize(cluster())
    assert "Degraded" not in {c["type"] for c in flt.pgc_failure_status(pgc, "bad", "InvalidSpec")["conditions"]}
    degraded = flt.pgc_failure_status(pgc, "gone", "CredentialsMissing", True)
    assert {c["type"]: (c["status"], c["reason"]) for c in degraded["conditions"]}["Degraded"] == (
        "True", "CredentialsMissing")


def pod(name, role=None, ready=True):
    return {"metadata": {"name": name, "labels": {"role": role} if role else {}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_pgc_switchover_plan_picks_the_lowest_ready_replica():
    pods = [pod("db-2", "replica"), pod("db-0", "primary"), pod("db-1", "replica", ready=False)]
    assert flt.pgc_switchover_plan(pods) == {"leader": "db-0", "candidate": "db-2", "error": ""}


def test_pgc_switchover_plan_keeps_members_below_a_scale_down():
    pods = [pod("db-0", "replica"), pod("db-1", "replica"), pod("db-2", "primary")]
    assert flt.pgc_switchover_plan(pods, "", 2)["candidate"] == "db-0"
    assert flt.pgc_switchover_plan([pod("db-0", "primary"), pod("db-1", "replica")], "", 1)["error"] == (
        "no ready replica to take over")


def test_pgc_switchover_plan_honours_or_refuses_the_candidate():
    pods = [pod("db-0", "primary"), pod("db-1", "replica"), pod("db-2", "replica", ready=False)]
    assert flt.pgc_switchover_plan(pods, "db-1")["candidate"] == "db-1"
    assert flt.pgc_switchover_plan(pods, "db-2")["error"] == "db-2 is not a ready replica"
    assert flt.pgc_switchover_plan(pods, "db-0") == {"leader": "db-0", "candidate": "db-0", "error": ""}


def test_pgc_switchover_plan_needs_one_primary():
    assert flt.pgc_switchover_plan([pod("db-0", "replica")])["error"] == "no single member is labelled primary (none)"


def test_pgc_status_transitions_name_what_people_want_to_see():
    assert flt.pgc_status_transitions({"phase": "Pending"}, {"phase": "Running", "message": "3/3 replicas ready"}) == [
        {"type": "Normal", "reason": "ClusterReady", "message": "3/3 replicas ready"}]
    assert flt.pgc_status_transitions({"phase": "Scaling"}, {"phase": "Running", "currentReplicas": 5}) == [
        {"type": "Normal", "reason": "ScalingDone", "message": "Scaled to 5 replicas"}]
    assert [e["reason"] for e in flt.pgc_status_transitions({"phase": "Running"}, {"phase": "Scaling"})] == ["Scaling"]
    moved = flt.pgc_status_transitions({"phase": "Running", "currentPrimary": "db-0"},
                                       {"phase": "Running", "currentPrimary": "db-2"})
    assert moved == [{"type": "Normal", "reason": "PrimaryChanged", "message": "The primary moved from db-0 to db-2"}]
    assert flt.pgc_status_transitions({"phase": "Running", "currentPrimary": "db-0"},
                                      {"phase": "Running", "currentPrimary": "db-0"}) == []


def test_pgc_status_transitions_follow_a_failover_seen_in_two_steps():
    members = [{"name": "db-0"}, {"name": "db-1"}]
    lost = flt.pgc_status_transitions({"phase": "Running", "currentPrimary": "db-0", "members": members},
                                      {"phase": "Running", "members": members})
    assert [(e["type"], e["reason"]) for e in lost] == [("Warning", "PrimaryLost")]
    elected = flt.pgc_status_transitions({"phase": "Running", "members": members},
                                         {"phase": "Running", "currentPrimary": "db-1", "members": members})
    assert [(e["reason"], "db-1" in e["message"]) for e in elected] == [("PrimaryElected", True)]
    # The first election of a new cluster is no news: ClusterReady says it.
    assert flt.pgc_status_transitions({"phase": "Running"}, {"phase": "Running", "currentPrimary": "db-0"}) == []


def test_pgc_status_transitions_announce_degraded_and_recovered():
    def with_degraded(status, reason="Healthy"):
        return {"phase": "Running", "conditions": [{"type": "Degraded", "status": status, "reason": reason, "message": reason}]}
    assert [(e["type"], e["reason"]) for e in flt.pgc_status_transitions(with_degraded("False"), with_degraded("True", "NoPrimary"))] == [
        ("Warning", "Degraded")]
    assert [e["reason"] for e in flt.pgc_status_transitions(with_degraded("True", "NoPrimary"), with_degraded("False"))] == ["Recovered"]
    assert flt.pgc_status_transitions(with_degraded("True", "NoPrimary"), with_degraded("True", "NoPrimary")) == []


def test_pgc_messages_quoting_the_spec_are_never_templated():
    from ansible.utils.unsafe_proxy import AnsibleUnsafe
    errors = flt.pgc_spec_errors(flt.pgc_normalize(cluster(image="postgres:15", configuration={"port": 1})))
    assert errors and all(isinstance(e, AnsibleUnsafe) for e in errors)
    assert isinstance(flt.pgc_failure_message("task: {{ lookup('pipe', 'id') }}"), AnsibleUnsafe)


def test_pgc_switchover_plan_takes_the_ordinal_limit_as_text():
    pods = [pod("db-0", "replica"), pod("db-1", "replica"), pod("db-2", "primary")]
    assert flt.pgc_switchover_plan(pods, "", "2")["candidate"] == "db-0"


def test_pgc_prometheus_rules_limits_every_alert_to_the_cluster():
    text = (REPO / "config/prometheus/alerts.yaml").read_text()
    spec = flt.pgc_prometheus_rules(text, flt.pgc_normalize(cluster()))
    source = yaml.safe_load(text)
    assert [len(g["rules"]) for g in spec["groups"]] == [len(g["rules"]) for g in source["groups"]]
    for group in spec["groups"]:
        assert group["name"].endswith(".prod.db")
        for rule in group["rules"]:
            assert rule["expr"].endswith('and on (namespace, name) label_replace(label_replace(vector(1), '
                                         '"namespace", "prod", "", ""), "name", "db", "", "")')
            assert "{{ $labels" in rule["annotations"]["description"] or "{{" not in rule["annotations"]["description"]


@pytest.mark.parametrize("schedule", ["0 2 * * *", "*/15 * * * *", "0 3 * * mon-fri", "30 1 1,15 * ?", "@daily",
                                      "0 0 * jan,jul sun", "5-10/2 0-23 1-31 1-12 0-7", ""])
def test_cron_errors_accepts_what_a_cronjob_runs(schedule):
    assert flt.cron_errors(schedule, "spec.backupSchedule") == []


@pytest.mark.parametrize("schedule, problem", [
    ("0 2 * *", "must have 5 fields"),
    ("every day", "must have 5 fields"),
    ("60 2 * * *", "minute '60' is outside 0-59"),
    ("0 24 * * *", "hour '24' is outside 0-23"),
    ("0 2 0 * *", "day of month '0' is outside 1-31"),
    ("0 2 * 13 *", "month '13' is outside 1-12"),
    ("0 2 * * 8", "day of week '8' is outside 0-7"),
    ("a b c d e", "is not a minute"),
    ("*/0 * * * *", "step '0' must be a positive number"),
    ("0 5-2 * * *", "range '5-2' goes backwards"),
    ("? * * * *", "? is only allowed"),
    ("@fortnightly", "must have 5 fields"),
])
def test_cron_errors_names_what_is_wrong(schedule, problem):
    errors = flt.cron_errors(schedule, "spec.backupSchedule")
    assert errors and problem in errors[0] and errors[0].startswith("spec.backupSchedule")


def test_a_schedule_without_repository_gets_a_volume_repository():
    pgc = flt.pgc_normalize({"metadata": {"name": "main", "namespace": "db"}, "spec": {"backupSchedule": "0 2 * * *"}})
    assert pgc["spec"]["backup"]["repository"] == {"volume": {}}
    plain = flt.pgc_normalize({"metadata": {"name": "main", "namespace": "db"}, "spec": {}})
    assert plain["spec"]["backup"] == {}


def test_pgc_status_reports_backups_from_jobs_and_announces_them():
    pgc = flt.pgc_normalize({"metadata": {"name": "main", "namespace": "db"},
                         "spec": {"backupSchedule": "0 2 * * *"}})
    jobs = [{"name": "main-backup-1", "kind": "backup", "backup": "", "phase": "Failed", "created": "2026-11-26T02:00:00Z",
             "started": "2026-11-26T02:00:00Z", "finished": "2026-11-26T02:01:00Z", "result": None,
             "message": "ERROR: [049]: unable to get address for 'main.db.svc'"}]
    status = flt.pgc_status(pgc, None, {"backup_jobs": jobs})
    assert status["backupFailures"] == 1
    assert status["backups"] == {"repository": "volume", "schedule": "0 2 * * *", "logicalSchedule": ""}
    condition = [c for c in status["conditions"] if c["type"] == "LastBackupSucceeded"][0]
    assert condition["status"] == "False" and "unable to get address" in condition["message"]
    events = flt.pgc_status_transitions({}, status)
    assert [e for e in events if e["reason"] == "BackupFailed" and e["type"] == "Warning"]


def test_pgc_status_reports_logical_backups_and_announces_them():
    pgc = flt.pgc_normalize({"metadata": {"name": "main", "namespace": "db"},
                             "spec": {"backup": {"repository": {"s3": {"bucket": "b", "secretName": "k"}},
                                                 "logical": {"schedule": "30 3 * * *"}}}})
    ok = {"name": "main-logical-backup-1", "kind": "logical-backup", "backup": "", "phase": "Succeeded",
          "created": "2026-11-26T03:30:00Z", "started": "2026-11-26T03:30:00Z", "finished": "2026-11-26T03:31:00Z",
          "results": [{"database": "app", "label": "20261126T033001000Z", "stop": "2026-11-26T03:30:20Z",
                       "name": "logical/main/app/20261126T033001000Z.pgdump.enc", "size": 4096}],
          "message": "completed"}
    ok["result"] = ok["results"][-1]
    status = flt.pgc_status(pgc, None, {"backup_jobs": [ok]})
    assert status["lastLogicalBackup"]["dumps"][0]["database"] == "app"
    assert status["logicalBackupFailures"] == 0
    assert "lastBackupTimestamp" not in status
    assert not [c for c in status["conditions"] if c["type"] == "LastBackupSucceeded"]
    events = flt.pgc_status_transitions({}, status)
    assert [e["message"] for e in events if e["reason"] == "LogicalBackupSucceeded"] == [
        "Logical backup of app finished at 2026-11-26T03:30:20Z (Job main-logical-backup-1)"]

    failed = dict(ok, name="main-logical-backup-2", phase="Failed", created="2026-11-27T03:30:00Z",
                  finished="2026-11-27T03:30:09Z", results=[], result=None,
                  message="pgc-logical-backup: error: the dump of shop failed: nothing was kept")
    after = flt.pgc_status(dict(pgc, status=status), None, {"backup_jobs": [ok, failed]})
    assert after["logicalBackupFailures"] == 1
    assert after["lastLogicalBackup"] == status["lastLogicalBackup"]
    events = flt.pgc_status_transitions(status, after)
    assert [e["type"] for e in events if e["reason"] == "LogicalBackupFailed"] == ["Warning"]
    assert not [e for e in events if e["reason"] in ("LogicalBackupSucceeded", "BackupFailed")]
