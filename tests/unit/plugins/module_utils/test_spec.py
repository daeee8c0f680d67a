"""The normalized cluster fact, the checks of its spec, and the cron grammar of its schedules."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from ansible_collections.postgres.cluster.plugins.module_utils.spec import (
    CREDENTIALS_DEFAULTS,
    SPEC_DEFAULTS,
    CronError,
    cron_errors,
    cron_interval_seconds,
    parse_cron,
    pgc_normalize,
    pgc_spec_errors,
)
from tests.unit.plugins.module_utils.samples import cluster

REPO = Path(__file__).resolve().parents[4]
CRD = REPO / "config/crd/bases/postgres.example.com_postgresclusters.yaml"


def test_pgc_normalize_applies_the_crd_defaults():
    crd = yaml.safe_load(CRD.read_text())
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    crd_defaults = {k: v["default"] for k, v in props.items() if "default" in v}
    assert crd_defaults, "the CRD declares defaults"
    for key, value in crd_defaults.items():
        assert SPEC_DEFAULTS[key] == value, key
    assert set(SPEC_DEFAULTS) <= set(props), "every defaulted field exists in the CRD"
    credentials = props["credentials"]["properties"]
    for key, value in CREDENTIALS_DEFAULTS.items():
        assert credentials[key].get("default", "") == value, key


def test_pgc_normalize_keeps_user_values_and_derives_names_and_labels():
    pgc = pgc_normalize(cluster(replicas=3, configuration={"shared_buffers": "1GB"}))
    assert pgc["spec"]["replicas"] == 3
    assert pgc["spec"]["configuration"] == {"shared_buffers": "1GB"}
    assert pgc["spec"]["image"] == "ghcr.io/pgc-operator/postgres:15"
    assert pgc["spec"]["credentials"]["superuser"] == "postgres"
    assert pgc["names"] == {"statefulset": "db", "service_rw": "db", "service_ro": "db-ro", "service_headless": "db-pods",
                            "credentials": "db-credentials", "patroni_config": "db-patroni",
                            "patroni_account": "db-patroni", "jobs_account": "db-jobs", "pdb": "db", "service_metrics": "db-metrics",
                            "monitoring": "db", "pgbackrest_config": "db-pgbackrest", "backup_cronjob": "db-backup",
                            "logical_cronjob": "db-logical-backup", "backup_tls": "db-backup-tls",
                            "repo_host": "db-repo", "backup_claim": "db-backup",
                            "dcs_leader": "db-leader", "dcs_config": "db-config", "dcs_failover": "db-failover",
                            "dcs_sync": "db-sync", "data_claim_0": "data-db-0"}
    assert pgc["labels"]["app.kubernetes.io/instance"] == "db"
    assert pgc["selector_string"] == "postgres.example.com/cluster=db"
    assert pgc["owner_reference"] == {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster",
                                      "name": "db", "uid": "u-1", "controller": True, "blockOwnerDeletion": True}


def test_pgc_normalize_refuses_an_object_without_name():
    with pytest.raises(Exception, match="metadata.name"):
        pgc_normalize({"metadata": {}})


def test_a_schedule_without_repository_gets_a_volume_repository():
    pgc = pgc_normalize({"metadata": {"name": "main", "namespace": "db"}, "spec": {"backupSchedule": "0 2 * * *"}})
    assert pgc["spec"]["backup"]["repository"] == {"volume": {}}
    plain = pgc_normalize({"metadata": {"name": "main", "namespace": "db"}, "spec": {}})
    assert plain["spec"]["backup"] == {}


@pytest.mark.parametrize("image", ["postgres:15", "postgres", "docker.io/library/postgres:16@sha256:abc",
                                   "library/postgres:17-alpine", "bitnami/postgresql:15"])
def test_pgc_spec_errors_refuses_images_without_patroni(image):
    (error,) = pgc_spec_errors(pgc_normalize(cluster(image=image)))
    assert error.startswith(f"spec.image {image} has no Patroni")


@pytest.mark.parametrize("image", ["ghcr.io/pgc-operator/postgres:15", "registry.local:5000/postgres-patroni:16",
                                   "registry.local:5000/team/postgres:15"])
def test_pgc_spec_errors_accepts_other_images(image):
    assert pgc_spec_errors(pgc_normalize(cluster(image=image))) == []


def test_pgc_spec_errors_names_each_owned_parameter():
    errors = pgc_spec_errors(pgc_normalize(cluster(configuration={
        "port": 6432, "max_connections": "200", "archive_command": "cp %p /x", "wal_level": "minimal"})))
    assert errors == [
        "spec.configuration.archive_command is set by the operator and cannot be overridden",
        "spec.configuration.port is set by the operator and cannot be overridden",
        "spec.configuration.wal_level must be replica or logical: streaming replicas need it",
    ]


@pytest.mark.parametrize("schedule", ["0 2 * * *", "*/15 * * * *", "0 3 * * mon-fri", "30 1 1,15 * ?", "@daily",
                                      "0 0 * jan,jul sun", "5-10/2 0-23 1-31 1-12 0-7", ""])
def test_cron_errors_accepts_what_a_cronjob_runs(schedule):
    assert cron_errors(schedule, "spec.backupSchedule") == []


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
    errors = cron_errors(schedule, "spec.backupSchedule")
    assert errors and problem in errors[0] and errors[0].startswith("spec.backupSchedule")


@pytest.mark.parametrize("schedule", ["0 2 * * *", "*/15 * * * *", "0 3 * * mon-fri", "30 1 1,15 * ?", "@daily",
                                      "5-10/2 0-23 1-31 1-12 0-7", "0 2 * *", "60 2 * * *", "a b c d e",
                                      "*/0 * * * *", "0 5-2 * * *", "? * * * *", "@fortnightly", "@DAILY"])
def test_cron_errors_and_parse_cron_read_one_grammar(schedule):
    try:
        parse_cron(schedule)
    except CronError:
        assert cron_errors(schedule, "spec.backupSchedule")
    else:
        assert cron_errors(schedule, "spec.backupSchedule") == []


def test_cron_interval_seconds_of_a_daily_schedule_is_a_day():
    assert cron_interval_seconds("30 2 * * *", datetime.date(2026, 11, 29)) == 86400
    assert cron_interval_seconds("0 0 * * 1,4", datetime.date(2026, 11, 29)) == 4 * 86400
