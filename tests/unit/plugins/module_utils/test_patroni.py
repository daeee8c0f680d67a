"""Patroni's configuration of a cluster, and what its Kubernetes DCS says: the leader lock, members, configuration."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils.patroni import (
    leader_lock,
    lock_holder,
    observe,
    pgc_dcs_config,
    pgc_patroni_config,
)
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize
from tests.unit.plugins.module_utils.samples import cluster


def test_pgc_patroni_config_runs_the_callback_and_the_post_bootstrap_script():
    config = pgc_patroni_config(pgc_normalize(cluster()))
    callbacks = config["postgresql"]["callbacks"]
    assert set(callbacks) == {"on_start", "on_stop", "on_role_change"}
    assert set(callbacks.values()) == {"python3 /etc/patroni/pgc-callback.py"}
    assert config["bootstrap"]["post_bootstrap"] == "sh /etc/patroni/pgc-post-bootstrap.sh db"


def test_pgc_patroni_config_merges_the_spec_over_replication_defaults():
    pgc = pgc_normalize(cluster(configuration={"max_connections": 300, "wal_keep_size": "1GB"}, synchronous=True,
                                credentials={"superuser": "admin", "replicationUser": "standby"}))
    config = pgc_patroni_config(pgc)
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
    # Patroni's connections to the leader (streaming, pg_basebackup, pg_rewind) check its certificate.
    tls = {"sslmode": "verify-ca", "sslrootcert": "/var/lib/postgresql/data/tls/ca.crt"}
    # The superuser (pg_rewind) with its client certificate, which PostgreSQL checks with the same CA.
    superuser_tls = {"sslcert": "/var/lib/postgresql/data/superuser-tls/tls.crt",
                     "sslkey": "/var/lib/postgresql/data/superuser-tls/tls.key"}
    assert pg["authentication"] == {"superuser": dict(tls, username="admin", **superuser_tls),
                                    "replication": dict(tls, username="standby")}
    assert parameters["ssl_ca_file"] == "../superuser-tls/ca.crt"
    assert "hostssl replication standby 0.0.0.0/0 scram-sha-256" in pg["pg_hba"]
    # From outside the pod, TLS or nothing: no line lets a plain TCP connection in but loopback's.
    remote = [line for line in pg["pg_hba"] if line.startswith("host") and "127.0.0.1" not in line and "::1/" not in line]
    assert remote and all(line.startswith("hostssl ") for line in remote)
    assert (parameters["ssl"], parameters["ssl_min_protocol_version"]) == ("on", "TLSv1.2")
    assert parameters["ssl_cert_file"] == "../tls/tls.crt"
    assert not [rule for rule in pg["pg_hba"] if rule.split()[0] == "host" and rule.split()[-1] != "scram-sha-256"]
    assert "password" not in str(config).replace("password_encryption", "")


def _first_match(hba, user, database="app"):
    """The method of the first remote TLS line of ``hba`` that matches ``user`` (pg_hba's order)."""
    for line in hba:
        kind, db, role, _, *method = line.split()
        if kind == "hostssl" and db in ("all", database) and role in ("all", user):
            return " ".join(method)
    return None


@pytest.mark.parametrize("login, client_auth, superuser, others", [
    ("certificate", "password", "cert", "scram-sha-256"),
    ("password", "password", "scram-sha-256", "scram-sha-256"),
    ("certificate", "certificate", "cert", "cert"),
    ("password", "passwordAndCertificate", "scram-sha-256 clientcert=verify-full",
     "scram-sha-256 clientcert=verify-full"),
])
def test_pg_hba_lets_the_superuser_in_from_outside_with_its_certificate_unless_told(login, client_auth, superuser,
                                                                                    others):
    hba = pgc_patroni_config(pgc_normalize(cluster(credentials={"superuserRemoteLogin": login},
                                                   tls={"clientAuth": client_auth})))["postgresql"]["pg_hba"]
    assert _first_match(hba, "postgres") == superuser
    assert _first_match(hba, "app") == others
    assert _first_match(hba, "replicator", "replication") == "scram-sha-256"
    # Every address family alike.
    assert sum(line.endswith(" cert") and "postgres" in line for line in hba) == (2 if login == "certificate" else 0)


def test_pgc_dcs_config_applies_the_spec_to_a_bootstrapped_cluster_only_when_it_differs():
    pgc = pgc_normalize(cluster(configuration={"work_mem": "8MB"}))
    current = json.loads(json.dumps(pgc_patroni_config(pgc)["bootstrap"]["dcs"]))
    current["postgresql"]["parameters"]["work_mem"] = "8MB"
    current["check_timeline"] = True  # set by someone else: kept
    assert pgc_dcs_config(current, pgc) == {}
    assert pgc_dcs_config(None, pgc) == {}  # not bootstrapped: patroni.yml's bootstrap.dcs applies

    changed = pgc_normalize(cluster(configuration={"work_mem": "16MB", "shared_buffers": "256MB"}))
    merged = pgc_dcs_config(current, changed)
    assert merged["postgresql"]["parameters"]["work_mem"] == "16MB"
    assert merged["postgresql"]["parameters"]["shared_buffers"] == "256MB"
    assert merged["check_timeline"] is True

    # A parameter removed from the spec is removed from Patroni's configuration (back to its default).
    removed = pgc_dcs_config(current, pgc_normalize(cluster()))
    assert "work_mem" not in removed["postgresql"]["parameters"]


def test_failsafe_mode_keeps_the_primary_through_an_api_server_outage_on_new_and_existing_clusters():
    pgc = pgc_normalize(cluster())
    assert pgc_patroni_config(pgc)["bootstrap"]["dcs"]["failsafe_mode"] is True
    # A cluster bootstrapped before gets it through its dynamic configuration.
    current = json.loads(json.dumps(pgc_patroni_config(pgc)["bootstrap"]["dcs"]))
    del current["failsafe_mode"]
    assert pgc_dcs_config(current, pgc)["failsafe_mode"] is True


def test_pgc_dcs_config_sees_equal_values_of_other_types_as_equal():
    pgc = pgc_normalize(cluster(configuration={"max_connections": 200}))
    current = json.loads(json.dumps(pgc_patroni_config(pgc)["bootstrap"]["dcs"]))
    current["postgresql"]["parameters"]["max_connections"] = "200"
    assert pgc_dcs_config(current, pgc) == {}


NOW = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.timezone.utc)


def pod(name, role=None, state="running", **data):
    status = {"state": state, "role": role, **data} if role else None
    annotations = {"status": json.dumps(status)} if status else {}
    return {"metadata": {"name": name, "annotations": annotations}, "status": {"phase": "Running"}}


def leader_cm(leader, renewed=NOW, ttl=30, optime=None):
    annotations = {"leader": leader, "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"), "ttl": str(ttl)}
    if optime is not None:
        annotations["optime"] = str(optime)
    return {"metadata": {"name": "db-leader", "annotations": annotations}}


def config_cm(config=None, initialize="7300000000000000001"):
    annotations = {}
    if config is not None:
        annotations["config"] = json.dumps(config)
    if initialize:
        annotations["initialize"] = initialize
    return {"metadata": {"name": "db-config", "annotations": annotations}}


def test_the_leader_is_the_holder_of_a_valid_lock():
    assert leader_lock(leader_cm("db-1"), NOW + datetime.timedelta(seconds=29)) == "db-1"
    assert leader_lock(leader_cm("db-1"), NOW + datetime.timedelta(seconds=31)) is None
    assert leader_lock({"metadata": {"annotations": {}}}, NOW) is None
    assert leader_lock(None, NOW) is None


def test_a_killed_primary_whose_lock_expired_is_not_reported_as_primary():
    pods = [pod("db-0", "primary", xlog_location=500), pod("db-1", "replica", xlog_location=400)]
    seen = observe("db", pods, [leader_cm("db-0", renewed=NOW - datetime.timedelta(minutes=5))], NOW)
    assert seen["leader"] is None
    assert seen["members"][0]["role"] == "unknown"


def test_members_by_ordinal_with_role_state_timeline_and_lag():
    pods = [pod("db-10", "replica", replay_lsn=900, timeline=2), pod("db-2", "primary", xlog_location=1000, timeline=2),
            pod("db-1", "replica", state="starting")]
    seen = observe("db", pods, [leader_cm("db-2"), config_cm({"ttl": 30})], NOW)
    assert seen["leader"] == "db-2"
    assert [m["name"] for m in seen["members"]] == ["db-1", "db-2", "db-10"]
    by_name = {m["name"]: m for m in seen["members"]}
    assert (by_name["db-2"]["role"], by_name["db-2"]["timeline"]) == ("primary", 2)
    assert by_name["db-10"]["lagBytes"] == 100
    assert by_name["db-1"]["state"] == "starting"
    assert seen["initialized"] is True and seen["config"] == {"ttl": 30}


def test_a_lock_naming_a_pod_that_does_not_exist_names_no_leader():
    seen = observe("db", [pod("db-0", "replica")], [leader_cm("db-5")], NOW)
    assert seen["leader"] is None


def test_pending_restart_and_a_member_without_a_report():
    pods = [pod("db-0", "primary", pending_restart=True), {"metadata": {"name": "db-1"}, "status": {"phase": "Pending"}}]
    seen = observe("db", pods, [leader_cm("db-0")], NOW)
    assert seen["pending_restart"] == ["db-0"]
    assert seen["members"][1] == {"name": "db-1", "role": "unknown", "state": "pending", "ready": False}


def test_a_member_reports_its_pods_template_revision_and_readiness():
    ready = pod("db-0", "primary")
    ready["metadata"]["labels"] = {"controller-revision-hash": "db-6d5f"}
    ready["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    seen = observe("db", [ready, pod("db-1", "replica")], [leader_cm("db-0")], NOW)
    assert (seen["members"][0]["revision"], seen["members"][0]["ready"]) == ("db-6d5f", True)
    assert "revision" not in seen["members"][1] and seen["members"][1]["ready"] is False


def test_a_cluster_patroni_never_bootstrapped():
    seen = observe("db", [pod("db-0")], [], NOW)
    assert (seen["leader"], seen["initialized"], seen["config"]) == (None, False, None)


def test_a_lock_without_a_readable_renew_time_names_nobody():
    # Patroni writes renewTime with every leader it writes: a lock without one cannot show it is fresh.
    assert lock_holder({"leader": "db-0", "ttl": "30"}, NOW) is None
    assert lock_holder({"leader": "db-0", "renewTime": "yesterday", "ttl": "30"}, NOW) is None
    assert leader_lock({"metadata": {"annotations": {"leader": "db-0"}}}, NOW) is None


def test_a_lock_without_a_usable_ttl_has_the_clusters_own():
    for ttl in ("0", "", "forever", None):
        annotations = {"leader": "db-0", "renewTime": NOW.isoformat(), "ttl": ttl}
        assert lock_holder(annotations, NOW + datetime.timedelta(seconds=29)) == "db-0"
        assert lock_holder(annotations, NOW + datetime.timedelta(seconds=30)) is None


def test_audit_loads_pgaudit_beside_the_users_libraries_and_logs_json():
    plain = pgc_patroni_config(pgc_normalize(cluster()))["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert "shared_preload_libraries" not in plain and "log_destination" not in plain
    pgc = pgc_normalize(cluster(audit={"enabled": True, "log": ["write", "ddl"]},
                                configuration={"shared_preload_libraries": "pg_stat_statements"}))
    parameters = pgc_patroni_config(pgc)["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert parameters["shared_preload_libraries"] == "pg_stat_statements,pgaudit"
    assert (parameters["pgaudit.log"], parameters["pgaudit.log_parameter"]) == ("write,ddl", "off")
    assert (parameters["log_destination"], parameters["logging_collector"]) == ("jsonlog", "on")
    # Already listed: not twice.
    pgc = pgc_normalize(cluster(audit={"enabled": True}, configuration={"shared_preload_libraries": "pgaudit"}))
    parameters = pgc_patroni_config(pgc)["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert (parameters["shared_preload_libraries"], parameters["pgaudit.log"]) == ("pgaudit", "ddl,role")
