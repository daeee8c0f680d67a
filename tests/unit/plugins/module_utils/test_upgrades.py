"""Major upgrades: the spec's major and the members' image, validation, when the reconcile upgrades,
the plan, the Jobs, and what status says of each step."""

from __future__ import annotations

import json

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils.names import JOB_NAME_LIMIT, derived_names
from ansible_collections.postgres.cluster.plugins.module_utils.plans import pgc_steps_with_work
from ansible_collections.postgres.cluster.plugins.module_utils.spec import (
    SpecError,
    image_for_major,
    pgc_normalize,
    pgc_spec_errors,
)
from ansible_collections.postgres.cluster.plugins.module_utils.status import pgc_status
from ansible_collections.postgres.cluster.plugins.module_utils.upgrades import (
    major_upgrade_outcome,
    major_upgrade_plan,
    major_upgrade_step,
    member_containers,
    pgc_major_upgrade_job_spec,
    rollback_plan,
    upgrade_pending,
)
from tests.unit.plugins.module_utils.samples import cluster, observed, statefulset

S3 = {"s3": {"endpoint": "minio:9000", "bucket": "pg", "secretName": "s3-keys"}}
NOW = "2026-11-30T08:00:00Z"


def pgc(status=None, **spec):
    obj = cluster(**spec)
    if status is not None:
        obj["status"] = status
    return pgc_normalize(obj)


def env_of(job_spec):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in job_spec["template"]["spec"]["containers"][0]["env"]}


# --- the spec's major, the members' image -------------------------------------------------------

@pytest.mark.parametrize("image, major, expected", [
    ("ghcr.io/pgc-operator/postgres:15", 16, "ghcr.io/pgc-operator/postgres:16"),
    ("registry.local:5000/team/postgres:15", 17, "registry.local:5000/team/postgres:17"),
    ("registry.local:5000/team/postgres:15.4-bookworm", 16, "registry.local:5000/team/postgres:15.4-bookworm"),
    ("ghcr.io/pgc-operator/postgres:15@sha256:" + "a" * 64, 16, "ghcr.io/pgc-operator/postgres:15@sha256:" + "a" * 64),
])
def test_image_for_major_replaces_only_a_tag_that_is_a_bare_major(image, major, expected):
    assert image_for_major(image, major) == expected


def test_postgres_version_unset_is_the_images_major_so_older_specs_keep_their_major():
    assert pgc()["spec"]["postgresVersion"] == 15
    older = pgc(image="ghcr.io/pgc-operator/postgres:16")
    assert older["spec"]["postgresVersion"] == 16 and older["postgres_version"] == 16
    assert pgc_spec_errors(older) == []


def test_the_members_keep_the_running_majors_image_until_the_upgrade_is_done():
    raised = pgc(status={"postgresVersion": 15}, postgresVersion=16)
    assert raised["postgres_major"] == 16 and raised["postgres_version"] == 15
    assert raised["member_image"] == "ghcr.io/pgc-operator/postgres:15"
    done = pgc(status={"postgresVersion": 16}, postgresVersion=16)
    assert done["member_image"] == "ghcr.io/pgc-operator/postgres:16"


def test_spec_errors_refuse_a_downgrade_naming_the_rollback_playbook():
    (error,) = pgc_spec_errors(pgc(status={"postgresVersion": 16}, postgresVersion=15))
    assert "spec.postgresVersion 15 is older than PostgreSQL 16" in error and "rollback_upgrade" in error


@pytest.mark.parametrize("version", [12, 18, "16", True, 16.0])
def test_spec_errors_refuse_a_major_that_is_not_supported(version):
    (error,) = pgc_spec_errors(pgc(postgresVersion=version))
    assert error.startswith("spec.postgresVersion %r is not a supported PostgreSQL major" % (version,))


def test_spec_errors_refuse_a_version_an_image_of_its_own_major_contradicts():
    (error,) = pgc_spec_errors(pgc(image="registry.local/postgres:15.4-bookworm", postgresVersion=16))
    assert "is PostgreSQL 15 but spec.postgresVersion is 16" in error


def test_spec_errors_accept_an_upgrade_together_with_replicas_and_storage_changes():
    assert pgc_spec_errors(pgc(status={"postgresVersion": 15, "storageSize": "1Gi"}, postgresVersion=16, replicas=3,
                               storageSize="20Gi")) == []


def test_spec_errors_refuse_an_unknown_upgrade_mode():
    (error,) = pgc_spec_errors(pgc(updatePolicy={"majorUpgradeMode": "clone"}))
    assert error == "spec.updatePolicy.majorUpgradeMode must be one of copy, link, not 'clone'"
    assert pgc()["spec"]["updatePolicy"]["majorUpgradeMode"] == "copy"


def test_status_reports_the_major_the_members_run():
    status = pgc_status(pgc(status={"postgresVersion": 15}, postgresVersion=16), statefulset(1, 1), observed(n=1))
    assert status["postgresVersion"] == 15
    assert "postgresVersion" not in pgc_status(pgc(), None)


def test_the_upgrade_job_names_fit_for_the_longest_cluster_name():
    names = {key: (value, limit) for key, value, limit in derived_names("a" * 40)}
    assert len(names["major_upgrade_rollback"][0]) <= JOB_NAME_LIMIT == names["major_upgrade_rollback"][1]


# --- when the reconcile upgrades -------------------------------------------------------------------

def test_the_reconcile_upgrades_only_when_the_spec_asks_for_a_newer_major():
    assert "major_upgrade" in pgc_steps_with_work(observed(), pgc(status={"postgresVersion": 15}, postgresVersion=16))
    assert "major_upgrade" not in pgc_steps_with_work(observed(), pgc(status={"postgresVersion": 16}, postgresVersion=16))
    # Not before Patroni made the cluster: a new cluster starts on the spec's major.
    assert "major_upgrade" not in pgc_steps_with_work(observed(initialized=False),
                                                      pgc(status={"postgresVersion": 15}, postgresVersion=16))


def test_a_failed_upgrade_is_not_tried_again_until_the_spec_changes():
    failed = {"postgresVersion": 15, "upgrade": {"phase": "Failed", "to": 16, "observedGeneration": 4}}
    assert not upgrade_pending(pgc(status=failed, postgresVersion=16))
    changed = cluster(postgresVersion=16)
    changed["metadata"]["generation"] = 5
    changed["status"] = failed
    assert upgrade_pending(pgc_normalize(changed))


# --- the plan ------------------------------------------------------------------------------------

def test_the_plan_switches_over_to_member_0_upgrades_its_claim_and_makes_the_others_anew():
    plan = major_upgrade_plan(pgc(status={"postgresVersion": 15}, postgresVersion=16, replicas=3), observed("db-1"))
    assert (plan["action"], plan["from"], plan["to"], plan["mode"]) == ("upgrade", 15, 16, "copy")
    # Member 0 starts alone afterwards, so its data is the one upgraded.
    assert plan["switchover_from"] == "db-1" and plan["steps"][0] == "switch over from db-1 to db-0, whose data is upgraded"
    assert plan["primary"] == "db-0" and plan["claim"] == "data-db-0"
    assert plan["claims_recreated"] == ["data-db-1", "data-db-2"]
    assert plan["members_restarted"] == ["db-0", "db-1", "db-2"]
    assert plan["image"] == "ghcr.io/pgc-operator/postgres:16"
    assert any("pg_upgrade --check" in step for step in plan["steps"])
    assert plan["rollback"]["possible"] and "rollback_upgrade -e cluster=db -e namespace=prod" in plan["rollback"]["how"]


def test_the_plan_takes_member_0_without_a_leader_and_estimates_a_copy_longer_than_links():
    copy = major_upgrade_plan(pgc(status={"postgresVersion": 15}, postgresVersion=16, storageSize="100Gi"), {})
    assert copy["switchover_from"] == "" and not copy["steps"][0].startswith("switch over")
    link = major_upgrade_plan(pgc(status={"postgresVersion": 15}, postgresVersion=16, storageSize="100Gi",
                                  updatePolicy={"majorUpgradeMode": "link"}), {})
    assert copy["claim"] == "data-db-0"
    assert link["expected_outage_seconds"] == 120 < copy["expected_outage_seconds"] == 120 + 512
    assert not link["rollback"]["possible"]


def test_the_plan_has_nothing_to_do_on_the_running_major():
    plan = major_upgrade_plan(pgc(status={"postgresVersion": 16}, postgresVersion=16), observed())
    assert plan["action"] == "none" and plan["steps"] == [] and plan["expected_outage_seconds"] == 0


# --- the Jobs ------------------------------------------------------------------------------------

def test_the_preflight_job_mounts_the_primarys_claim_and_runs_the_new_image_without_backups():
    job = pgc_major_upgrade_job_spec(pgc(status={"postgresVersion": 15}, postgresVersion=16), "major-upgrade-check",
                                     15, 16, mode="link", claim="data-db-1", deadline=600)
    pod = job["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "ghcr.io/pgc-operator/postgres:16"
    assert container["command"][-1] == 'pgc-major-upgrade.sh --mode="$PGC_UPGRADE_MODE" --check-only'
    env = env_of(job)
    assert (env["PGC_UPGRADE_OLD_BIN"], env["PGC_UPGRADE_NEW_BIN"]) == ("/usr/lib/postgresql/15/bin",
                                                                        "/usr/lib/postgresql/16/bin")
    assert env["PGC_UPGRADE_MODE"] == "link" and env["PGC_UPGRADE_STANZA"] == "" and env["PGC_UPGRADE_USER"] == "postgres"
    assert env["PGC_RESULT_FILE"] == "/dev/termination-log"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "data-db-1"
    # No backups: none of pgBackRest's objects, which do not exist.
    assert "pgbackrest-config" not in volumes and "backup-tls" not in volumes
    # Nor the Jobs' account, which only a cluster with backups has: no API access at all.
    assert "serviceAccountName" not in pod and pod["automountServiceAccountToken"] is False
    assert (job["backoffLimit"], job["activeDeadlineSeconds"]) == (0, 600)
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_the_upgrade_job_of_a_cluster_with_backups_upgrades_its_stanza_with_the_members_configuration():
    job = pgc_major_upgrade_job_spec(pgc(status={"postgresVersion": 15}, postgresVersion=16, backup={"repository": S3}),
                                     "major-upgrade", 15, 16, claim="data-db-0")
    env = env_of(job)
    assert env["PGC_UPGRADE_STANZA"] == "db" and env["PGBACKREST_STANZA"] == "db"
    volumes = {v["name"]: v for v in job["template"]["spec"]["volumes"]}
    assert volumes["pgbackrest-config"]["configMap"]["items"] == [{"key": "pod.conf", "path": "pgbackrest.conf"}]
    assert job["template"]["spec"]["containers"][0]["command"][-1] == 'pgc-major-upgrade.sh --mode="$PGC_UPGRADE_MODE"'


@pytest.mark.parametrize("job", ["major-upgrade-written", "major-upgrade-analyze"])
def test_the_jobs_that_connect_log_in_by_certificate_and_never_put_a_password_on_a_command_line(job):
    spec = pgc_major_upgrade_job_spec(pgc(status={"postgresVersion": 15}, postgresVersion=16, backup={"repository": S3},
                                          credentials={"superuserRemoteLogin": "password"}), job, 15, 16,
                                      claim="data-db-0")
    env = env_of(spec)
    assert env["PGHOST"] == "db" and env["PGSSLMODE"] == "verify-full" and env["PGSSLCERT"].endswith("tls.crt")
    assert env["PGPASSWORD"] == {"secretKeyRef": {"name": "db-credentials", "key": "superuser-password"}}
    pod = spec["template"]["spec"]
    assert "data" not in {v["name"] for v in pod["volumes"]}, "it does not touch a member's data"
    assert "password" not in json.dumps(pod["containers"][0]["command"]).lower()


def test_the_analyze_job_runs_vacuumdb_in_stages_against_the_primary():
    spec = pgc_major_upgrade_job_spec(pgc(status={"postgresVersion": 15}, postgresVersion=16),
                                      "major-upgrade-analyze", 15, 16)
    assert "vacuumdb --all --analyze-in-stages" in spec["template"]["spec"]["containers"][0]["command"][-1]


def test_an_unknown_upgrade_job_is_refused():
    with pytest.raises(SpecError, match="unknown major upgrade job 'dump'"):
        pgc_major_upgrade_job_spec(pgc(), "dump", 15, 16)


def test_member_containers_move_the_containers_of_the_old_image_only():
    sts = {"spec": {"template": {"spec": {"containers": [
        {"name": "postgres", "image": "ghcr.io/pgc-operator/postgres:15"},
        {"name": "pgbackrest", "image": "ghcr.io/pgc-operator/postgres:15"},
        {"name": "exporter", "image": "quay.io/prometheuscommunity/postgres-exporter:v0.15.0"}]}}}}
    assert member_containers(sts, "ghcr.io/pgc-operator/postgres:15", "ghcr.io/pgc-operator/postgres:16") == [
        {"name": "postgres", "image": "ghcr.io/pgc-operator/postgres:16"},
        {"name": "pgbackrest", "image": "ghcr.io/pgc-operator/postgres:16"}]
    assert member_containers(None, "a:1", "a:2") == []


# --- status and outcomes -------------------------------------------------------------------------

def test_the_first_step_replaces_the_last_upgrades_fields_and_says_upgrading():
    last = {"from": 14, "to": 15, "phase": "Done", "outageSeconds": 40, "finishedAt": "2026-01-01T00:00:00Z"}
    step = major_upgrade_step(pgc(status={"upgrade": last}), {"from": 15, "to": 16, "mode": "copy"}, "Checking",
                              "pg_upgrade --check", NOW)
    upgrade = step["status"]["upgrade"]
    assert (upgrade["from"], upgrade["to"], upgrade["phase"], upgrade["startedAt"]) == (15, 16, "Checking", NOW)
    assert upgrade["outageSeconds"] is None and upgrade["finishedAt"] is None and upgrade["observedGeneration"] == 4
    assert step["status"]["phase"] == "Upgrading" and "from PostgreSQL 15 to 16" in step["status"]["message"]
    assert step["events"] == [{"type": "Normal", "reason": "MajorUpgradeChecking", "message": "pg_upgrade --check"}]


def test_a_failed_step_warns_and_sets_the_condition_false_without_touching_the_phase():
    step = major_upgrade_step(pgc(), {"from": 15, "to": 16, "startedAt": "2026-11-30T07:59:00Z"}, "Failed",
                              "The pre-flight failed\n(extension x)", NOW)
    assert step["status"]["upgrade"]["finishedAt"] == NOW and step["status"]["upgrade"]["startedAt"] == "2026-11-30T07:59:00Z"
    assert "phase" not in step["status"]
    (condition,) = step["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("MajorUpgrade", "False", "MajorUpgradeFailed")
    assert step["events"][0]["type"] == "Warning" and step["events"][0]["message"] == "The pre-flight failed (extension x)"


def test_a_done_step_keeps_the_outage_and_the_rollback():
    step = major_upgrade_step(pgc(), {"from": 15, "to": 16, "startedAt": NOW}, "Done", "done", NOW,
                              outageSeconds=42, rollbackPossible=True)
    assert step["status"]["upgrade"]["outageSeconds"] == 42 and step["status"]["upgrade"]["rollbackPossible"] is True
    assert step["status"]["conditions"][0]["status"] == "True"
    with pytest.raises(SpecError):
        major_upgrade_step(pgc(), {}, "Sleeping", "", NOW)


def test_a_job_succeeds_only_with_the_result_its_step_expects():
    upgraded = {"phase": "Succeeded", "result": {"result": "upgraded", "rollback_possible": True}}
    assert major_upgrade_outcome(upgraded, "major-upgrade")["ok"]
    assert not major_upgrade_outcome(upgraded, "major-upgrade-check")["ok"]
    failed = {"phase": "Failed", "result": {"result": "failed", "reason": "extension pg_foo has no 16 build"},
              "message": "log tail"}
    outcome = major_upgrade_outcome(failed, "major-upgrade-check")
    assert not outcome["ok"] and outcome["message"] == ("Job major-upgrade-check failed: extension pg_foo has no 16 build")
    killed = major_upgrade_outcome({"phase": "Failed", "result": None, "message": "DeadlineExceeded"}, "major-upgrade")
    assert killed["result"] == {} and "DeadlineExceeded" in killed["message"]
    assert major_upgrade_outcome({"phase": "Succeeded", "result": {"written": False}}, "major-upgrade-written")["ok"]


def test_a_rollback_is_planned_only_while_status_upgrade_allows_it():
    done = {"postgresVersion": 16, "upgrade": {"from": 15, "to": 16, "phase": "Done", "rollbackPossible": True}}
    plan = rollback_plan(pgc(status=done, postgresVersion=16, replicas=2), observed("db-0", n=2))
    assert plan["refused"] == "" and (plan["from"], plan["to"]) == (16, 15)
    assert plan["claim"] == "data-db-0" and plan["claims_recreated"] == ["data-db-1"]
    assert plan["image"] == "ghcr.io/pgc-operator/postgres:15"
    linked = dict(done, upgrade=dict(done["upgrade"], rollbackPossible=False, message="link mode"))
    assert "no rollback is possible: link mode" in rollback_plan(pgc(status=linked, postgresVersion=16))["refused"]
    assert "no major upgrade was done" in rollback_plan(pgc(status={}))["refused"]
    custom = pgc(status=done, image="registry.local/postgres:16.1", postgresVersion=16)
    assert "does not follow spec.postgresVersion" in rollback_plan(custom)["refused"]
