"""What the operator reads from Patroni's Kubernetes DCS: the leader lock, members, configuration."""

from __future__ import annotations

import datetime
import json

from ansible_collections.postgres.cluster.plugins.module_utils.patroni_state import leader_lock, observe

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
    assert seen["members"][1] == {"name": "db-1", "role": "unknown", "state": "pending"}


def test_a_cluster_patroni_never_bootstrapped():
    seen = observe("db", [pod("db-0")], [], NOW)
    assert (seen["leader"], seen["initialized"], seen["config"]) == (None, False, None)
