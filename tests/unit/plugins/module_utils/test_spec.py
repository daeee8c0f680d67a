"""The normalized cluster fact, the checks of its spec, and the cron grammar of its schedules."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from ansible_collections.postgres.cluster.plugins.module_utils.names import derived_names
from ansible_collections.postgres.cluster.plugins.module_utils.spec import (
    CREDENTIALS_DEFAULTS,
    SPEC_DEFAULTS,
    SpecError,
    CronError,
    cron_errors,
    cron_interval_seconds,
    parse_cron,
    pgc_normalize,
    pgc_spec_errors,
    postgres_major,
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
                            "logical_cronjob": "db-logical-backup", "drill_cronjob": "db-drill", "backup_tls": "db-backup-tls",
                                "patroni_api": "db-patroni-api", "network_policy": "db", "server_tls": "db-tls",
                            "ca": "db-ca", "superuser_tls": "db-superuser-tls", "app_tls": "db-app-tls",
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


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("image", ["postgres:15", "docker.io/library/postgres:16@" + DIGEST,
                                   "library/postgres:17-alpine", "bitnami/postgresql:15"])
def test_pgc_spec_errors_refuses_images_without_patroni(image):
    (error,) = pgc_spec_errors(pgc_normalize(cluster(image=image)))
    assert error.startswith(f"spec.image {image} has no Patroni")


@pytest.mark.parametrize("image", ["ghcr.io/pgc-operator/postgres:15", "registry.local:5000/postgres-patroni:16",
                                   "registry.local:5000/team/postgres:15", "ghcr.io/pgc-operator/postgres@" + DIGEST,
                                   "ghcr.io/pgc-operator/postgres:15.4-bookworm@" + DIGEST])
def test_pgc_spec_errors_accepts_other_images(image):
    assert pgc_spec_errors(pgc_normalize(cluster(image=image))) == []


@pytest.mark.parametrize("image", ["ghcr.io/pgc-operator/postgres", "registry.local:5000/postgres",
                                   "ghcr.io/pgc-operator/postgres@sha256:abc", "ghcr.io/pgc-operator/postgres:15 ",
                                   "ghcr.io/pgc-operator/postgres:15\n", "Ghcr.io/PGC/postgres:15"])
def test_pgc_spec_errors_refuses_an_image_without_tag_or_digest(image):
    errors = pgc_spec_errors(pgc_normalize(cluster(image=image)))
    assert f"spec.image {image!r} must name a tag or a digest, such as ghcr.io/pgc-operator/postgres:15 or " \
           "<image>@sha256:<digest>" in errors


@pytest.mark.parametrize("image, major", [("ghcr.io/pgc-operator/postgres:15", 15), ("reg:5000/pg:16.4-bookworm", 16),
                                          ("reg/pg:17@" + DIGEST, 17), ("reg/pg@" + DIGEST, 15), ("reg/pg:latest", 15)])
def test_the_postgres_major_is_the_image_tags_leading_number(image, major):
    assert postgres_major({"image": image}) == major
    assert pgc_normalize(cluster(image=image))["postgres_major"] == major


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


def errors_of(name="db", **spec):
    obj = cluster(**spec)
    obj["metadata"]["name"] = name
    return pgc_normalize(obj)


S3 = {"endpoint": "s3.eu-west-1.amazonaws.com", "bucket": "pg-backups", "secretName": "db-backup-s3"}


def test_the_sample_and_a_cluster_of_defaults_have_no_errors():
    sample = yaml.safe_load((REPO / "config/samples/postgres_v1_postgrescluster.yaml").read_text())
    sample["metadata"]["namespace"] = "prod"
    assert pgc_spec_errors(pgc_normalize(sample)) == []
    assert pgc_spec_errors(pgc_normalize(cluster())) == []


# --- spec.configuration --------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["x = 1\narchive_command", "max_connections\n", "work mem", "ssl=on", "a'b",
                                 "a#b", "a.b.c", "1abc", ""])
def test_a_configuration_key_that_is_not_a_parameter_name_is_refused(key):
    (error,) = pgc_spec_errors(pgc_normalize(cluster(configuration={key: "1"})))
    assert error.endswith(": is not a parameter name: letters, digits and underscores, with at most one dot (an "
                          "extension's parameter such as pg_stat_statements.max)")
    # The field is named, and a line break of the key is quoted, not written into the message.
    assert error.startswith("spec.configuration") and "\n" not in error
    assert error.startswith("spec.configuration[%r]" % key) or error.startswith("spec.configuration." + key)


def test_operator_owned_parameters_are_refused_in_any_case():
    errors = pgc_spec_errors(pgc_normalize(cluster(configuration={
        "ARCHIVE_COMMAND": "cp %p /x", "Listen_Addresses": "*", "archive_library": "basic_archive",
        "WAL_LEVEL": "minimal"})))
    assert errors == [
        "spec.configuration.ARCHIVE_COMMAND is set by the operator and cannot be overridden",
        "spec.configuration.Listen_Addresses is set by the operator and cannot be overridden",
        "spec.configuration.archive_library is set by the operator and cannot be overridden",
        "spec.configuration.wal_level must be replica or logical: streaming replicas need it",
    ]
    assert pgc_spec_errors(pgc_normalize(cluster(configuration={"WAL_LEVEL": "Logical"}))) == []


def test_one_parameter_given_twice_in_different_cases_is_refused():
    assert pgc_spec_errors(pgc_normalize(cluster(configuration={"work_mem": "4MB", "WORK_MEM": "8MB"}))) == [
        "spec.configuration.work_mem and spec.configuration.WORK_MEM name the same parameter"]


def test_parameters_of_other_fields_and_shell_commands_are_refused():
    assert pgc_spec_errors(pgc_normalize(cluster(configuration={
        "pgaudit.log": "all", "ssl_passphrase_command": "sh -c id"}))) == [
        "spec.configuration.pgaudit.log is set from spec.audit.log",
        "spec.configuration.ssl_passphrase_command runs a shell command in every member and cannot be set",
    ]


@pytest.mark.parametrize("configuration, error", [
    ({"shared_bufers": "1GB"}, "spec.configuration.shared_bufers: unknown parameter (did you mean shared_buffers?)"),
    ({"work_mem": "4MB\n"}, "spec.configuration.work_mem: must not contain a line break, a NUL or another control "
                            "character"),
    ({"log_line_prefix": "%m\r"}, "spec.configuration.log_line_prefix: must not contain a line break"),
    ({"work_mem": ["4MB"]}, "spec.configuration.work_mem: must be a string, a number or a boolean, not a list"),
    ({"work_mem": {"a": 1}}, "spec.configuration.work_mem: must be a string, a number or a boolean, not a mapping"),
    ({"shared_buffers": "8kB"}, "spec.configuration.shared_buffers: 8kB (1 8kB) is outside the valid range 16 .. "
                                "1073741823"),
    ({"max_connections": "lots"}, "spec.configuration.max_connections: lots is not a number"),
    ({"jit": "maybe"}, "spec.configuration.jit: must be a boolean (on, off, true, false, yes, no, 1, 0)"),
    ({"log_statement": "everything"}, "spec.configuration.log_statement: must be one of none, ddl, mod, all"),
    ({"statement_timeout": "5m"}, "spec.configuration.statement_timeout: 5m has an invalid unit 'm'"),
    ({"nosuch.thing": "1"}, "spec.configuration.nosuch.thing: unknown parameter: nosuch is not an extension"),
])
def test_configuration_values_are_checked_against_the_catalogue(configuration, error):
    (message,) = pgc_spec_errors(pgc_normalize(cluster(configuration=configuration)))
    assert message.startswith(error), message


def test_valid_configuration_passes_and_a_major_without_catalogue_gets_syntax_checks_only():
    configuration = {"shared_buffers": "1GB", "max_connections": 200, "random_page_cost": "1.1", "jit": "on",
                     "SYNCHRONOUS_COMMIT": "remote_apply", "pg_stat_statements.max": "10000",
                     "auto_explain.log_min_duration": "250ms", "pgaudit.log_catalog": "off"}
    assert pgc_spec_errors(pgc_normalize(cluster(configuration=configuration))) == []
    newer = cluster(image="ghcr.io/pgc-operator/postgres:17", configuration={"io_combine_limit": "128kB"})
    assert pgc_spec_errors(pgc_normalize(newer)) == []
    newer["spec"]["configuration"] = {"io_combine_limit\n": "1", "port": "1"}
    assert len(pgc_spec_errors(pgc_normalize(newer))) == 2


# --- names -----------------------------------------------------------------------------------------

def test_a_name_too_long_for_the_logical_backup_cronjob_is_refused_naming_the_feature():
    name = "a" * 40
    spec = {"backup": {"repository": {"s3": S3}, "logical": {"schedule": "30 3 * * *"}}}
    assert pgc_spec_errors(errors_of(name, **spec)) == [
        "metadata.name %s is too long for spec.backup.logical.schedule: the CronJob %s-logical-backup would have "
        "55 characters, more than the 52 Kubernetes allows; use a name of at most 37 characters" % (name, name)]
    assert pgc_spec_errors(errors_of("a" * 37, **spec)) == []
    # Without logical backups the longest name fits everything.
    assert pgc_spec_errors(errors_of(name, backupSchedule="0 2 * * *")) == []


@pytest.mark.parametrize("name", ["a" * 41, "Db", "db-", "1db", "db_1"])
def test_a_name_that_is_no_cluster_name_is_refused(name):
    (error,) = pgc_spec_errors(errors_of(name))
    assert error.startswith("metadata.name %r must be at most 40 characters" % name)


# --- credentials -----------------------------------------------------------------------------------

@pytest.mark.parametrize("credentials, error", [
    ({"appUser": "postgres"}, "spec.credentials.appUser and spec.credentials.superuser are the same role postgres"),
    ({"replicationUser": "postgres"}, "spec.credentials.replicationUser and spec.credentials.superuser are the same"),
    ({"superuser": "pg_admin"}, "spec.credentials.superuser pg_admin is reserved"),
    ({"appUser": "pgc_monitor"}, "spec.credentials.appUser pgc_monitor is reserved"),
    ({"appDatabase": "template1"}, "spec.credentials.appDatabase template1 is one of the server's own databases"),
    ({"appUser": "App; DROP"}, "spec.credentials.appUser 'App; DROP' must be a lowercase name"),
    ({"secretName": "Bad_Name"}, "spec.credentials.secretName 'Bad_Name' is not a Kubernetes object name"),
    ({"password": "x"}, "spec.credentials.password is not a field of spec.credentials"),
])
def test_credentials_must_be_distinct_unreserved_roles(credentials, error):
    (message,) = pgc_spec_errors(pgc_normalize(cluster(credentials=credentials)))
    assert message.startswith(error), message


# --- backups ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("repository, error", [
    ("s3://pg-backups", "spec.bootstrap.fromBackup.repository must be a mapping with one of s3, gcs, azure or volume, "
                        "not a string"),
    ({"s3": "pg-backups"}, "spec.bootstrap.fromBackup.repository.s3 must be a mapping, not a string"),
    ({"s3": {**S3, "verifyTLS": "false"}}, "spec.bootstrap.fromBackup.repository.s3.verifyTLS must be true or false, "
                                           "not a string"),
    ({"bucket": "pg-backups"}, "spec.bootstrap.fromBackup.repository.bucket is not a kind of repository"),
])
def test_a_from_backup_repository_of_the_wrong_shape_is_refused_naming_the_field(repository, error):
    errors = pgc_spec_errors(pgc_normalize(cluster(bootstrap={"fromBackup": {"cluster": "old",
                                                                             "repository": repository}})))
    assert errors and errors[0].startswith(error), errors


def test_verify_tls_or_encryption_given_as_strings_are_refused():
    errors = pgc_spec_errors(pgc_normalize(cluster(backup={"repository": {"s3": {**S3, "verifyTLS": "false"}},
                                                           "encryption": "false"})))
    assert errors == ["spec.backup.repository.s3.verifyTLS must be true or false, not a string",
                      "spec.backup.encryption must be true or false, not 'false'"]


@pytest.mark.parametrize("source, error", [
    ({"cluster": "Old"}, "spec.bootstrap.fromBackup.cluster 'Old' must be the name of a PostgresCluster"),
    ({"cluster": "old", "backup": "latest; rm -rf /"}, "spec.bootstrap.fromBackup.backup 'latest; rm -rf /' must be "
                                                       "a pgBackRest backup label"),
    ({"cluster": "old", "targetTime": "yesterday"}, "spec.bootstrap.fromBackup.targetTime 'yesterday' must be a time"),
    ({"cluster": "old", "encryption": "no"}, "spec.bootstrap.fromBackup.encryption must be true or false"),
    ({"cluster": "old", "targetTime": "2026-01-31T12:00:00Z", "backup": "20260131-120000F"},
     "spec.bootstrap.fromBackup takes targetTime or backup, not both"),
])
def test_from_backup_fields_are_checked(source, error):
    (message,) = pgc_spec_errors(pgc_normalize(cluster(bootstrap={"fromBackup": source})))
    assert message.startswith(error), message


def test_an_incomplete_repository_is_refused_before_anything_is_created():
    assert pgc_spec_errors(pgc_normalize(cluster(backup={"repository": {"s3": {"bucket": "pg-backups"}}}))) == [
        "spec.backup.repository.s3.endpoint is required", "spec.backup.repository.s3.secretName is required"]


# --- new fields ----------------------------------------------------------------------------------

def test_pgc_normalize_defaults_the_network_and_audit_fields_without_sharing_them():
    one, two = pgc_normalize(cluster()), pgc_normalize(cluster(audit={"enabled": True}))
    assert one["spec"]["allowedClients"] == []
    assert one["spec"]["metricsClients"] == [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]
    assert one["spec"]["audit"] == {"enabled": False, "log": ["ddl", "role"], "logParameter": False}
    assert two["spec"]["audit"] == {"enabled": True, "log": ["ddl", "role"], "logParameter": False}
    one["spec"]["metricsClients"].clear()
    one["spec"]["audit"]["log"].append("all")
    assert SPEC_DEFAULTS["metricsClients"] and pgc_normalize(cluster())["spec"]["audit"]["log"] == ["ddl", "role"]


def test_valid_network_peers_and_audit_pass():
    peers = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "web"}}},
             {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]},
              "podSelector": {}},
             {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
             {"ipBlock": {"cidr": "2001:db8::/32"}}]
    assert pgc_spec_errors(pgc_normalize(cluster(allowedClients=peers, metricsClients=[],
                                                 audit={"enabled": True, "log": ["read", "write"]}))) == []


@pytest.mark.parametrize("peer, error", [
    ({}, "spec.allowedClients[0] needs a podSelector, a namespaceSelector or an ipBlock"),
    ({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}, "spec.allowedClients[0] takes an ipBlock or selectors"),
    ({"ipBlock": {"cidr": "10.0.0.0/33"}}, "spec.allowedClients[0].ipBlock.cidr '10.0.0.0/33' is not a CIDR"),
    ({"ipBlock": {"cidr": "10.0.0.1"}}, "spec.allowedClients[0].ipBlock.cidr '10.0.0.1' is not a CIDR"),
    ({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}},
     "spec.allowedClients[0].ipBlock.except[0] 192.168.0.0/16 must be a smaller network inside 10.0.0.0/8"),
    ({"podSelector": {"matchLabels": {"app": "web server"}}},
     "spec.allowedClients[0].podSelector.matchLabels.app: 'web server' is not a label value"),
    ({"podSelector": {"matchLabels": {"-app": "web"}}}, "spec.allowedClients[0].podSelector.matchLabels: '-app' is "
                                                        "not a label key"),
    ({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}},
     "spec.allowedClients[0].namespaceSelector.matchExpressions[0].values must not be empty with In"),
    ({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Like", "values": ["a"]}]}},
     "spec.allowedClients[0].namespaceSelector.matchExpressions[0].operator must be one of In, NotIn"),
    ({"podSelector": "app=web"}, "spec.allowedClients[0].podSelector must be a label selector"),
    ({"hostSelector": {}}, "spec.allowedClients[0].hostSelector is not a field of spec.allowedClients[0]"),
    ("10.0.0.0/8", "spec.allowedClients[0] must be a mapping of podSelector, namespaceSelector or ipBlock"),
])
def test_network_peers_are_refused_naming_the_field(peer, error):
    errors = pgc_spec_errors(pgc_normalize(cluster(allowedClients=[peer])))
    assert errors and errors[0].startswith(error), errors
    errors = pgc_spec_errors(pgc_normalize(cluster(metricsClients=[peer])))
    assert errors and errors[0].startswith(error.replace("allowedClients", "metricsClients")), errors


@pytest.mark.parametrize("audit, error", [
    ({"enabled": "yes"}, "spec.audit.enabled must be true or false, not 'yes'"),
    ({"log": ["ddl", "everything"]}, "spec.audit.log[1] 'everything' is not a pgaudit class"),
    ({"log": ["ddl", "ddl"]}, "spec.audit.log[1] ddl is listed twice"),
    ({"log": "ddl,role"}, "spec.audit.log must be a list of pgaudit classes, not a string"),
    ({"logParameters": True}, "spec.audit.logParameters is not a field of spec.audit"),
])
def test_audit_is_refused_naming_the_field(audit, error):
    (message,) = pgc_spec_errors(pgc_normalize(cluster(audit=audit)))
    assert message.startswith(error), message


# --- anything else -------------------------------------------------------------------------------

def test_control_characters_anywhere_in_the_spec_are_refused():
    errors = pgc_spec_errors(pgc_normalize(cluster(storageClassName="fast\nssd",
                                                   resources={"limits": {"memory\r": "1Gi"}})))
    assert errors == [
        "spec.resources.limits['memory\\r']: the key must not contain a line break, a NUL or another control character",
        "spec.storageClassName must not contain a line break, a NUL or another control character",
    ]


@pytest.mark.parametrize("spec", [{"bootstrap": "from backup"}, {"allowedClients": "everyone"},
                                  {"configuration": ["work_mem=4MB"]}, {"backup": {"logical": "nightly"}}])
def test_pgc_spec_errors_never_raises_on_a_spec_of_the_wrong_shape(spec):
    assert pgc_spec_errors(pgc_normalize(cluster(**spec)))


def test_pgc_normalize_refuses_a_field_that_must_be_a_mapping():
    with pytest.raises(SpecError, match=r"^spec\.credentials must be a mapping, not a string"):
        pgc_normalize(cluster(credentials="postgres"))


def test_tls_names_a_secret_and_its_parameters_are_the_operators():
    assert pgc_spec_errors(pgc_normalize(cluster(tls={"secretName": "db-cert"}))) == []
    errors = pgc_spec_errors(pgc_normalize(cluster(tls={"secretName": "Bad Name", "ca": "x"})))
    assert any("spec.tls.secretName" in e for e in errors) and any("spec.tls" in e and "ca" in e for e in errors)
    errors = pgc_spec_errors(pgc_normalize(cluster(configuration={"ssl": "off", "SSL_CERT_FILE": "/tmp/x"})))
    assert len(errors) == 2 and all("set by the operator" in e for e in errors)


def test_tls_issuer_ref_is_normalized_with_its_defaults():
    assert pgc_normalize(cluster())["spec"]["tls"] == {"secretName": "", "issuerRef": None, "clientAuth": "password"}
    pgc = pgc_normalize(cluster(tls={"issuerRef": {"name": "ca"}}))
    assert pgc["spec"]["tls"]["issuerRef"] == {"name": "ca", "kind": "Issuer", "group": "cert-manager.io"}
    assert pgc_spec_errors(pgc) == []
    given = {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert pgc_normalize(cluster(tls={"issuerRef": given}))["spec"]["tls"]["issuerRef"] == given
    assert pgc_spec_errors(pgc_normalize(cluster(tls={"issuerRef": given}))) == []
    # The runtime's strings are Ansible's unsafe text, a str subclass.
    from ansible.utils.unsafe_proxy import wrap_var
    assert pgc_spec_errors(pgc_normalize(wrap_var(cluster(tls={"issuerRef": given})))) == []


def test_tls_issuer_ref_and_secret_name_exclude_each_other_naming_both_fields():
    errors = pgc_spec_errors(pgc_normalize(cluster(tls={"secretName": "db-cert", "issuerRef": {"name": "ca"}})))
    assert len(errors) == 1
    assert "spec.tls.secretName" in errors[0] and "spec.tls.issuerRef" in errors[0] and "not both" in errors[0]


@pytest.mark.parametrize("ref, field", [
    ({}, "spec.tls.issuerRef.name"),
    ({"name": ""}, "spec.tls.issuerRef.name"),
    ({"name": "Bad_Name"}, "spec.tls.issuerRef.name"),
    ({"name": "ca\nkind: ClusterIssuer"}, "spec.tls.issuerRef.name"),
    ({"name": "{{ lookup('pipe', 'id') }}"}, "spec.tls.issuerRef.name"),
    ({"name": "a" * 254}, "spec.tls.issuerRef.name"),
    ({"name": ["ca"]}, "spec.tls.issuerRef.name"),
    ({"name": 7}, "spec.tls.issuerRef.name"),
    ({"name": "ca", "kind": "Certificate"}, "spec.tls.issuerRef.kind"),
    ({"name": "ca", "kind": "issuer"}, "spec.tls.issuerRef.kind"),
    ({"name": "ca", "kind": {"Issuer": 1}}, "spec.tls.issuerRef.kind"),
    ({"name": "ca", "group": "cert manager"}, "spec.tls.issuerRef.group"),
    ({"name": "ca", "group": True}, "spec.tls.issuerRef.group"),
    ({"name": "ca", "namespace": "other"}, "spec.tls.issuerRef.namespace"),
], ids=["no-name", "empty-name", "bad-name", "name-newline", "name-template", "name-too-long", "name-list",
        "name-number", "kind-other", "kind-case", "kind-mapping", "group-space", "group-boolean", "unknown-field"])
def test_tls_issuer_ref_refuses_bad_input_naming_the_field(ref, field):
    errors = pgc_spec_errors(pgc_normalize(cluster(tls={"issuerRef": ref})))
    assert errors and any(field in e for e in errors), errors


@pytest.mark.parametrize("ref", ["ca", ["ca"], 1, True])
def test_tls_issuer_ref_of_another_shape_is_refused_not_raised(ref):
    errors = pgc_spec_errors(pgc_normalize(cluster(tls={"issuerRef": ref})))
    assert errors == ["spec.tls.issuerRef must be a mapping of name, kind and group, not %s" % (
        {str: "a string", list: "a list", int: "a number", bool: "a boolean"}[type(ref)])]


def test_a_spec_of_the_operators_unsafe_strings_passes_as_its_plain_twin():
    """The runtime marks every string of the object unsafe (a str subclass): no check may test the
    exact type."""
    from ansible.utils.unsafe_proxy import wrap_var
    spec = {"backup": {"repository": {"s3": {"endpoint": "s3.eu-west-1.amazonaws.com", "bucket": "pg",
                                             "secretName": "s3-keys", "region": "eu-west-1", "verifyTLS": True}},
                       "logical": {"schedule": "0 3 * * *", "databases": ["app"]}},
            "backupSchedule": "0 2 * * *", "configuration": {"work_mem": "24MB", "max_connections": 200},
            "image": "ghcr.io/pgc-operator/postgres:15", "tls": {"secretName": "db-cert"},
            "allowedClients": [{"podSelector": {"matchLabels": {"app": "shop"}}}, {"ipBlock": {"cidr": "10.0.0.0/8"}}],
            "audit": {"enabled": True, "log": ["ddl"]}, "credentials": {"appUser": "shop"}}
    assert pgc_spec_errors(pgc_normalize(cluster(**spec))) == []
    assert pgc_spec_errors(pgc_normalize(wrap_var(cluster(**spec)))) == []


def test_a_source_cluster_without_its_repository_named_passes_validate():
    """The reconcile reads the source cluster's repository itself (the restore_source step)."""
    assert pgc_spec_errors(pgc_normalize(cluster(bootstrap={"fromBackup": {"cluster": "old"}}))) == []
    assert pgc_spec_errors(pgc_normalize(cluster(bootstrap={"fromBackup": {"cluster": "old", "repository": "s3"}})))


# --- restore drills ------------------------------------------------------------------------------

def test_a_drill_is_accepted_with_a_repository_or_a_backup_schedule():
    assert pgc_spec_errors(errors_of(backup={"repository": {"s3": S3}, "drill": {"schedule": "0 4 * * 0",
                                                                                  "check": "SELECT true"}})) == []
    assert pgc_spec_errors(errors_of(backupSchedule="0 2 * * *", backup={"drill": {"schedule": "@weekly"}})) == []


def test_a_drill_without_backups_is_refused_naming_spec_backup_drill():
    assert pgc_spec_errors(errors_of(backup={"drill": {"schedule": "0 4 * * 0"}})) == [
        "spec.backup.drill needs backups to restore: set spec.backup.repository (and spec.backupSchedule)"]


@pytest.mark.parametrize("drill, error", [
    ({"schedule": "0 4 * *"}, "spec.backup.drill.schedule '0 4 * *'"),
    ({"schedule": "0 25 * * *"}, "spec.backup.drill.schedule '0 25 * * *':"),
    ({}, "spec.backup.drill.schedule is required"),
    ({"schedule": "@weekly", "check": 1}, "spec.backup.drill.check must be a string of SQL, not a number"),
    ({"schedule": "@weekly", "check": "SELECT " + "1" * 4100}, "spec.backup.drill.check has 4107 characters, more than 4096"),
    ({"schedule": "@weekly", "scratchSize": "lots"}, "spec.backup.drill.scratchSize 'lots' must be a size"),
    ({"schedule": "@weekly", "when": "sunday"}, "spec.backup.drill.when is not a field of spec.backup.drill"),
    ("weekly", "spec.backup.drill must be a mapping, not a string"),
])
def test_a_bad_drill_is_refused_naming_the_field(drill, error):
    errors = pgc_spec_errors(errors_of(backup={"repository": {"s3": S3}, "drill": drill}))
    assert errors and errors[0].startswith(error), errors


def test_the_drill_cronjob_name_is_derived_and_fits_the_longest_cluster_name():
    spec = {"backup": {"repository": {"s3": S3}, "drill": {"schedule": "0 4 * * 0"}}}
    assert pgc_spec_errors(errors_of("a" * 40, **spec)) == []
    assert ("drill_cronjob", "db-drill", 52) in derived_names("db")


@pytest.mark.parametrize("policy, message", [
    ({"canary": -1}, "spec.updatePolicy.canary must be a whole number of replicas, 0 or more, not -1"),
    ({"canary": "2"}, "spec.updatePolicy.canary must be a whole number of replicas, 0 or more, not '2'"),
    ({"canary": 1, "pause": True}, "spec.updatePolicy.pause"),
])
def test_pgc_spec_errors_checks_the_update_policy(policy, message):
    errors = pgc_spec_errors(pgc_normalize(cluster(updatePolicy=policy)))
    assert any(message in e for e in errors), errors


def test_the_update_policy_defaults_to_no_canary_and_reads_the_approval():
    obj = cluster()
    obj["metadata"]["annotations"] = {"postgres.example.com/approve-update": "db-7c9"}
    pgc = pgc_normalize(obj)
    assert pgc["spec"]["updatePolicy"] == {"canary": 0, "mode": "automatic", "majorUpgradeMode": "copy"}
    assert pgc["update_approved"] == "db-7c9"
    assert pgc_spec_errors(pgc) == []
