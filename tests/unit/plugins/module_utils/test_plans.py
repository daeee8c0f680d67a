"""The next step of a switchover and of a rolling update or restart."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils.objects import comparable, with_applied_hash
from ansible_collections.postgres.cluster.plugins.module_utils.patroni import pgc_dcs_config
from ansible_collections.postgres.cluster.plugins.module_utils.plans import pgc_restart_plan, pgc_steps_with_work, pgc_switchover_plan
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize
from ansible_collections.postgres.cluster.plugins.module_utils.tls import pgc_server_certificate
from tests.unit.plugins.module_utils.samples import cluster, observed


def test_pgc_restart_plan_restarts_replicas_first_and_the_primary_after_a_switchover():
    pgc = pgc_normalize(cluster(replicas=3))
    assert pgc_restart_plan(observed(), pgc)["action"] == "none"
    pending = {"pendingRestart": True}
    plan = pgc_restart_plan(observed(**{"db-0": pending, "db-1": pending, "db-2": pending}), pgc)
    assert (plan["action"], plan["member"]) == ("restart", "db-2")
    plan = pgc_restart_plan(observed(**{"db-0": pending}), pgc)
    assert (plan["action"], plan["member"]) == ("switchover", "db-0")
    # Never while a member is down or there is no primary.
    plan = pgc_restart_plan(observed(**{"db-1": {"pendingRestart": True}, "db-2": {"state": "starting"}}), pgc)
    assert plan["action"] == "wait" and "db-2" in plan["message"]
    assert pgc_restart_plan(observed(None, **{"db-1": pending}), pgc)["action"] == "wait"
    # A single member has no one to switch over to: it restarts.
    one = pgc_normalize(cluster(replicas=1))
    plan = pgc_restart_plan(observed(n=1, **{"db-0": pending}), one)
    assert (plan["action"], plan["member"]) == ("restart", "db-0")


def test_pgc_restart_plan_waits_until_a_new_primarys_promotion_settled():
    import datetime
    pgc = pgc_normalize(cluster(replicas=3))
    state = observed(**{"db-0": {"pendingRestart": True}})
    state["config"] = {"loop_wait": 10}
    state["dcs_lock"] = {"leader": "db-0", "acquireTime": "2026-11-30T01:00:00+00:00"}
    at = datetime.datetime(2026, 11, 30, 1, 0, 5, tzinfo=datetime.timezone.utc)
    plan = pgc_restart_plan(state, pgc, now=at)
    assert plan["action"] == "wait" and "settles" in plan["message"]
    later = at + datetime.timedelta(seconds=8)
    assert pgc_restart_plan(state, pgc, now=later)["action"] == "switchover"
    # Replicas restart whatever the lock's age: no switchover is involved.
    state = observed(**{"db-1": {"pendingRestart": True}})
    state["dcs_lock"] = {"leader": "db-0", "acquireTime": "2026-11-30T01:00:00+00:00"}
    assert pgc_restart_plan(state, pgc, now=at)["action"] == "restart"


def updating(revision="new", generation=2, seen=2, **member_overrides):
    """A 3-member cluster whose StatefulSet's pod template is at ``revision``; every member's pod is
    of revision "old" unless overridden."""
    state = observed(**{name: {"revision": "old", "ready": True, **member_overrides.get(name, {})}
                        for name in ("db-0", "db-1", "db-2")})
    state["statefulset"] = {"metadata": {"generation": generation},
                            "status": {"observedGeneration": seen, "updateRevision": revision}}
    return state


def test_pgc_restart_plan_rolls_a_new_pod_template_replicas_first_then_switches_over_then_the_old_primary():
    pgc = pgc_normalize(cluster(replicas=3))
    plan = pgc_restart_plan(updating(), pgc)
    assert (plan["action"], plan["member"], plan["reason"]) == ("restart", "db-2", "RollingUpdate")
    assert plan["message"] == "Updating db-2 to the new pod template"
    # The next replica only once the replaced one is Ready and streaming again.
    plan = pgc_restart_plan(updating(**{"db-2": {"revision": "new", "ready": False}}), pgc)
    assert plan["action"] == "wait" and "db-2 not Ready" in plan["message"]
    plan = pgc_restart_plan(updating(**{"db-2": {"revision": "new", "state": "starting"}}), pgc)
    assert plan["action"] == "wait"
    plan = pgc_restart_plan(updating(**{"db-2": {"revision": "new"}}), pgc)
    assert (plan["action"], plan["member"]) == ("restart", "db-1")
    # Replicas done: the primary moves to one of them, then is replaced as a replica.
    plan = pgc_restart_plan(updating(**{"db-1": {"revision": "new"}, "db-2": {"revision": "new"}}), pgc)
    assert (plan["action"], plan["member"]) == ("switchover", "db-0")
    assert plan["message"] == "Moving the primary off db-0 before it is updated"
    done = updating(**{name: {"revision": "new"} for name in ("db-0", "db-1", "db-2")})
    assert pgc_restart_plan(done, pgc)["action"] == "none"
    # Until the StatefulSet controller has seen the template, nothing moves; nor with no revision.
    assert pgc_restart_plan(updating(seen=1), pgc)["action"] == "wait"
    assert pgc_restart_plan(updating(revision=None), pgc)["action"] == "none"
    # Never while the cluster is degraded.
    assert pgc_restart_plan(updating(**{"db-1": {"state": "stopped"}}), pgc)["action"] == "wait"


def test_pgc_restart_plan_holds_a_canary_update_until_it_is_approved_and_never_a_rollback():
    obj = cluster(replicas=3)
    obj["spec"]["updatePolicy"] = {"canary": 1}
    pgc = pgc_normalize(obj)
    # The first replica goes; then the update holds, the primary and db-1 untouched.
    assert (pgc_restart_plan(updating(), pgc)["action"], pgc_restart_plan(updating(), pgc)["member"]) == ("restart", "db-2")
    held = updating(**{"db-2": {"revision": "new"}})
    plan = pgc_restart_plan(held, pgc)
    assert (plan["action"], plan["reason"]) == ("hold", "CanaryHeld") and "db-2" in plan["message"]
    # Approved (the annotation names the revision): the rest follows.
    obj["metadata"]["annotations"] = {"postgres.example.com/approve-update": "new"}
    assert pgc_restart_plan(held, pgc_normalize(obj))["member"] == "db-1"
    # An approval of another revision approves nothing.
    obj["metadata"]["annotations"] = {"postgres.example.com/approve-update": "older"}
    assert pgc_restart_plan(held, pgc_normalize(obj))["action"] == "hold"
    # Put back: the StatefulSet's revision is the primary's again, the canary is replaced, no hold.
    back = updating(revision="old", **{"db-2": {"revision": "new"}})
    assert (pgc_restart_plan(back, pgc)["action"], pgc_restart_plan(back, pgc)["member"]) == ("restart", "db-2")
    # More canaries than replicas: every replica, then the hold before the switchover.
    obj = cluster(replicas=3)
    obj["spec"]["updatePolicy"] = {"canary": 5}
    replicas_done = updating(**{"db-1": {"revision": "new"}, "db-2": {"revision": "new"}})
    assert pgc_restart_plan(replicas_done, pgc_normalize(obj))["action"] == "hold"


def test_pgc_steps_with_work_runs_the_configure_step_while_pods_are_of_an_older_template():
    pgc = pgc_normalize(cluster(replicas=3))
    state = updating()
    state["config"] = pgc_dcs_config({}, pgc)
    assert "configure" in pgc_steps_with_work(state, pgc)
    state = updating(**{name: {"revision": "new"} for name in ("db-0", "db-1", "db-2")})
    state["config"] = pgc_dcs_config({}, pgc)
    assert "configure" not in pgc_steps_with_work(state, pgc)


def pod(name, role=None, ready=True):
    return {"metadata": {"name": name, "labels": {"role": role} if role else {}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_pgc_switchover_plan_picks_the_lowest_ready_replica():
    pods = [pod("db-2", "replica"), pod("db-0", "primary"), pod("db-1", "replica", ready=False)]
    assert pgc_switchover_plan(pods) == {"leader": "db-0", "candidate": "db-2", "error": "", "timeline": 0, "wakeup": {}}


def test_pgc_switchover_plan_names_the_leaders_timeline_and_how_to_wake_patroni():
    pods = [pod("db-0", "primary"), pod("db-1", "replica")]
    pods[0]["metadata"]["annotations"] = {"status": '{"role":"primary","state":"running","timeline":4}'}
    config = {"metadata": {"name": "db-config", "resourceVersion": "77"},
              "annotations": {}}
    config["metadata"]["annotations"] = {"config": '{"loop_wait":10,"ttl":30}'}
    plan = pgc_switchover_plan(pods, "", 0, config)
    assert plan["timeline"] == 4
    # The same configuration spelt otherwise, replacing the version read; and back again.
    assert plan["wakeup"] == {"resourceVersion": "77", "config": '{"loop_wait": 10, "ttl": 30}'}
    config["metadata"]["annotations"]["config"] = plan["wakeup"]["config"]
    assert pgc_switchover_plan(pods, "", 0, config)["wakeup"]["config"] == '{"loop_wait":10,"ttl":30}'
    # Nothing to write before Patroni wrote a configuration, or when it is not JSON.
    config["metadata"]["annotations"]["config"] = "not json"
    assert pgc_switchover_plan(pods, "", 0, config)["wakeup"] == {}


def test_pgc_switchover_plan_keeps_members_below_a_scale_down():
    pods = [pod("db-0", "replica"), pod("db-1", "replica"), pod("db-2", "primary")]
    assert pgc_switchover_plan(pods, "", 2)["candidate"] == "db-0"
    assert pgc_switchover_plan([pod("db-0", "primary"), pod("db-1", "replica")], "", 1)["error"] == (
        "no ready replica to take over")


def test_pgc_switchover_plan_honours_or_refuses_the_candidate():
    pods = [pod("db-0", "primary"), pod("db-1", "replica"), pod("db-2", "replica", ready=False)]
    assert pgc_switchover_plan(pods, "db-1")["candidate"] == "db-1"
    assert pgc_switchover_plan(pods, "db-2")["error"] == "db-2 is not a ready replica"
    assert pgc_switchover_plan(pods, "db-0")["candidate"] == "db-0"


def test_pgc_switchover_plan_needs_one_primary():
    assert pgc_switchover_plan([pod("db-0", "replica")])["error"] == "no single member is labelled primary (none)"


def test_pgc_switchover_plan_takes_the_ordinal_limit_as_text():
    pods = [pod("db-0", "replica"), pod("db-1", "replica"), pod("db-2", "primary")]
    assert pgc_switchover_plan(pods, "", "2")["candidate"] == "db-0"


def test_a_settled_cluster_has_no_optional_step_to_run():
    pgc = pgc_normalize(dict(cluster(replicas=3), status={"currentReplicas": 3}))
    settled = dict(observed(), secrets={"db-credentials": ["app-password"]},
                   config=pgc_dcs_config({}, pgc) or {})
    assert pgc_steps_with_work(settled, pgc) == []


def test_each_optional_step_runs_when_it_has_work():
    pgc = pgc_normalize(dict(cluster(replicas=2), status={"currentReplicas": 3}))
    seen = dict(observed(**{"db-1": {"pendingRestart": True}}), secrets={"db-credentials": None})
    assert pgc_steps_with_work(seen, pgc) == ["credentials", "scale", "configure"]
    # A Secret the user named is checked on every reconcile; a source without repository is looked up.
    named = pgc_normalize(cluster(credentials={"secretName": "mine"},
                                  bootstrap={"fromBackup": {"cluster": "old"}}))
    assert pgc_steps_with_work(dict(observed(), secrets={"mine": ["app-password"]}), named) == [
        "credentials", "restore_source"]



def test_the_storage_step_runs_when_the_spec_outgrows_the_claims():
    settled = dict(observed(), secrets={"db-credentials": ["app-password"]})

    def steps(size, status):
        pgc = pgc_normalize(dict(cluster(replicas=3, storageSize=size), status=dict(status, currentReplicas=3)))
        return pgc_steps_with_work(dict(settled, config=pgc_dcs_config({}, pgc) or {}), pgc)
    assert steps("10Gi", {"storageSize": "10Gi"}) == []
    assert steps("10Gi", {"storageSize": "10240Mi"}) == [], "the same size, spelled otherwise"
    assert steps("20Gi", {"storageSize": "10Gi"}) == ["storage"]
    # A status from before storageSize was reported: looked at only when the cluster failed (perhaps
    # on a growth the StatefulSet could not take), else reported by this reconcile.
    assert steps("20Gi", {"phase": "Running"}) == []
    assert steps("20Gi", {"phase": "Failed"}) == ["storage"]


def _issued(pgc, certificate=True, keys=("ca.crt", "tls.crt", "tls.key"), api=True):
    """What observe reads of a settled cluster whose certificate cert-manager issues."""
    live = None
    if certificate is True:
        live = comparable(with_applied_hash(pgc_server_certificate(pgc)))
        live["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    elif certificate:
        live = certificate
    return dict(observed(), config=pgc_dcs_config({}, pgc) or {}, cert_manager_api=api, certificate=live,
                secrets={"db-credentials": ["app-password"], "db-tls": list(keys) if keys is not None else None})


def test_a_settled_cluster_of_cert_manager_has_no_optional_step_to_run():
    pgc = pgc_normalize(dict(cluster(replicas=3, tls={"issuerRef": {"name": "ca"}}), status={"currentReplicas": 3}))
    assert pgc_steps_with_work(_issued(pgc), pgc) == []


def test_the_credentials_step_runs_while_cert_manager_has_work():
    pgc = pgc_normalize(dict(cluster(replicas=3, tls={"issuerRef": {"name": "ca"}}), status={"currentReplicas": 3}))
    changed = pgc_server_certificate(pgc)
    changed["spec"]["issuerRef"]["name"] = "other"
    for seen in (_issued(pgc, api=False, certificate=None),  # the step says the API is not served
                 _issued(pgc, certificate=None),  # to apply
                 _issued(pgc, certificate=comparable(with_applied_hash(changed))),  # issuerRef changed
                 _issued(pgc, keys=None),  # cert-manager has not written the Secret yet
                 _issued(pgc, keys=("tls.crt", "tls.key"))):  # an issuer without a CA
        assert pgc_steps_with_work(seen, pgc) == ["credentials"], seen
    # The spec changed: the Certificate applied before is no longer the one to apply.
    other = pgc_normalize(dict(cluster(replicas=3, tls={"issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}),
                               status={"currentReplicas": 3}))
    assert pgc_steps_with_work(_issued(pgc), other) == ["credentials"]


def test_without_issuer_ref_what_observe_says_of_cert_manager_is_not_looked_at():
    pgc = pgc_normalize(dict(cluster(replicas=3), status={"currentReplicas": 3}))
    assert pgc_steps_with_work(_issued(pgc, api=False, certificate=None), pgc) == []
