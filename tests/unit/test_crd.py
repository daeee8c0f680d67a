"""The PostgresCluster CRD's schema: what it refuses on the API server, and that it agrees with the
Python checks of plugins/module_utils (which refuse the same and what the schema cannot say).

The OpenAPI part is checked here with jsonschema; the CEL rules are checked to exist and to say
what the Python code says, and run for real in tests/e2e/test_validation.py.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from ansible_collections.postgres.cluster.plugins.module_utils import names, parameters, pgbackrest, spec, upgrades
from ansible_collections.postgres.cluster.plugins.module_utils.tls import CLIENT_AUTH, SUPERUSER_REMOTE_LOGIN

REPO = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((REPO / "config/crd/bases/postgres.example.com_postgresclusters.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
SPEC = SCHEMA["properties"]["spec"]["properties"]
SAMPLE = yaml.safe_load((REPO / "config/samples/postgres_v1_postgrescluster.yaml").read_text())
S3 = {"endpoint": "s3.example.com", "bucket": "pg-backups", "secretName": "keys"}


def openapi_errors(obj):
    return sorted(e.message for e in jsonschema.Draft4Validator(SCHEMA).iter_errors(obj))


def with_spec(**fields):
    obj = copy.deepcopy(SAMPLE)
    obj["spec"].update(fields)
    return obj


def rules(schema):
    return [r["rule"] for r in schema.get("x-kubernetes-validations", [])]


def walk(schema, path="spec"):
    yield path, schema
    for key, child in (schema.get("properties") or {}).items():
        yield from walk(child, path + "." + key)
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], path + "[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], path + ".*")


def test_the_sample_validates():
    assert openapi_errors(SAMPLE) == []


@pytest.mark.parametrize("fields", [
    {"image": "ghcr.io/pgc-operator/postgres"},
    {"image": "registry.local:5000/postgres"},
    {"bootstrap": {"fromBackup": {"cluster": "old", "repository": "s3://pg-backups"}}},
    {"bootstrap": {"fromBackup": {"cluster": "old", "repository": {"s3": {**S3, "verifyTLS": "false"}}}}},
    {"backup": {"repository": {"gcs": {"bucket": "pg-backups", "verifyTLS": "false"}}}},
    {"bootstrap": {"fromBackup": {"cluster": "old", "backup": "latest"}}},
    {"credentials": {"secretName": "Not_A_Name"}},
    {"audit": {"enabled": "true"}},
    {"audit": {"log": ["everything"]}},
    {"allowedClients": [{"ipBlock": {}}]},
    {"metricsClients": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "Like"}]}}]},
    {"tls": {"clientAuth": "trust"}},
    {"credentials": {"superuserRemoteLogin": "anywhere"}},
], ids=["image-no-tag", "image-port-no-tag", "from-backup-repository-string", "from-backup-verify-tls-string",
        "verify-tls-string", "backup-label", "secret-name", "audit-enabled-string", "audit-class", "ip-block-no-cidr",
        "selector-operator", "client-auth", "superuser-login"])
def test_the_schema_refuses_bad_input(fields):
    assert openapi_errors(with_spec(**fields))


def test_login_choices_are_the_python_ones():
    assert SPEC["tls"]["properties"]["clientAuth"]["enum"] == list(CLIENT_AUTH)
    assert SPEC["credentials"]["properties"]["superuserRemoteLogin"]["enum"] == list(SUPERUSER_REMOTE_LOGIN)
    for fields, field in (({"tls": {"clientAuth": "trust"}}, "spec.tls.clientAuth"),
                          ({"credentials": {"superuserRemoteLogin": 1}}, "spec.credentials.superuserRemoteLogin")):
        errors = spec.pgc_spec_errors({"name": "db", **with_spec(**fields)})
        assert any(e.startswith(field + " must be one of") for e in errors), errors


def test_the_schema_takes_the_new_fields():
    assert openapi_errors(with_spec(
        allowedClients=[{"podSelector": {"matchLabels": {"app": "web"}}},
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
        metricsClients=[], audit={"enabled": True, "log": ["ddl", "write"], "logParameter": False},
        image="ghcr.io/pgc-operator/postgres@sha256:" + "0" * 64,
        bootstrap={"fromBackup": {"cluster": "old", "backup": "20260131-120000F", "repository": {"s3": S3}}})) == []


def test_image_pattern_is_the_python_one():
    assert SPEC["image"]["pattern"] == spec.IMAGE_PATTERN


def test_verify_tls_is_a_boolean_wherever_it_appears():
    found = [path for path, schema in walk(SCHEMA["properties"]["spec"]) if path.endswith(".verifyTLS")]
    assert len(found) == 6, found  # s3, gcs and azure, of spec.backup and of spec.bootstrap.fromBackup
    for path, schema in walk(SCHEMA["properties"]["spec"]):
        if path.endswith(".verifyTLS"):
            assert schema["type"] == "boolean", path


def test_from_backup_repository_has_the_shape_of_the_backup_repository():
    own = dict(SPEC["backup"]["properties"]["repository"])
    source = dict(SPEC["bootstrap"]["properties"]["fromBackup"]["properties"]["repository"])
    own.pop("description"), source.pop("description")
    assert source == own
    assert "x-kubernetes-preserve-unknown-fields" not in source


def test_repository_fields_are_those_the_backup_settings_know():
    kinds = SPEC["backup"]["properties"]["repository"]["properties"]
    assert set(kinds) == set(pgbackrest.STORE_DEFAULTS) | {"volume"}
    for kind, schema in kinds.items():
        defaults = pgbackrest.STORE_DEFAULTS.get(kind, pgbackrest.VOLUME_DEFAULTS)
        assert set(schema["properties"]) == set(defaults), kind
        for field, value in defaults.items():
            assert schema["properties"][field]["type"] == ("boolean" if isinstance(value, bool) else "string"), field
        assert set(schema.get("required", [])) <= set(pgbackrest.REQUIRED_FIELDS[kind]) | {"secretName"}, kind


def test_credentials_cannot_change_and_always_exist():
    credentials = SPEC["credentials"]
    assert credentials["default"] == {}
    for field in spec.CREDENTIALS_DEFAULTS:
        schema = credentials["properties"][field]
        assert "default" in schema, field  # else setting it later would escape the transition rule
        if field == "superuserRemoteLogin":
            # How the superuser logs in is pg_hba, which a reload changes.
            assert "self == oldSelf" not in rules(schema) and schema["enum"] == list(SUPERUSER_REMOTE_LOGIN)
            continue
        assert "self == oldSelf" in rules(schema), field
    assert {k: v["default"] for k, v in credentials["properties"].items()} == spec.CREDENTIALS_DEFAULTS


def test_configuration_rules_say_what_the_python_checks_say():
    configuration = SPEC["configuration"]
    (key_rule,) = rules(configuration)
    assert "k.matches('%s')" % parameters.NAME_PATTERN in key_rule
    assert "anyOf" in configuration["additionalProperties"]  # scalars only: integers and strings
    (value_rule,) = rules(configuration["additionalProperties"])
    assert "x00-" in value_rule


def test_the_name_rule_leaves_room_for_the_logical_backup_cronjob():
    longest = names.NAME_LIMITS["logical_cronjob"] - len(names.NAME_SUFFIXES["logical_cronjob"])
    assert any("size(self.metadata.name) <= %d" % longest in rule and "logical.schedule" in rule
               for rule in rules(SCHEMA))
    assert any("size(self.metadata.name) <= %d" % spec.CLUSTER_NAME_LIMIT in rule for rule in rules(SCHEMA))


def test_audit_and_peers_agree_with_the_python_defaults_and_choices():
    audit = SPEC["audit"]["properties"]
    assert {k: v["default"] for k, v in audit.items()} == spec.AUDIT_DEFAULTS
    assert tuple(audit["log"]["items"]["enum"]) == spec.AUDIT_CLASSES
    for field in ("allowedClients", "metricsClients"):
        peer = SPEC[field]["items"]
        assert tuple(peer["properties"]) == spec.PEER_FIELDS
        assert rules(peer["properties"]["ipBlock"]["properties"]["cidr"]) == ["isCIDR(self)"]
        expression = peer["properties"]["podSelector"]["properties"]["matchExpressions"]["items"]
        assert tuple(expression["properties"]["operator"]["enum"]) == spec.SELECTOR_OPERATORS


def test_tls_issuer_ref_agrees_with_the_python_defaults_and_kinds():
    tls = SPEC["tls"]
    ref = tls["properties"]["issuerRef"]
    assert ref["required"] == ["name"] and "default" not in ref["properties"]["name"]
    assert {k: v["default"] for k, v in ref["properties"].items() if "default" in v} == spec.ISSUER_REF_DEFAULTS
    assert tuple(ref["properties"]) == spec.ISSUER_REF_FIELDS
    assert tuple(ref["properties"]["kind"]["enum"]) == spec.ISSUER_KINDS
    for field in ("name", "group"):
        assert ref["properties"][field]["pattern"] == spec.OBJECT_NAME_RE.pattern, field
    (rule,) = tls["x-kubernetes-validations"]
    assert "has(self.issuerRef)" in rule["rule"] and "self.secretName" in rule["rule"]
    assert "spec.tls.secretName and spec.tls.issuerRef" in rule["message"]


@pytest.mark.parametrize("tls", [
    {"issuerRef": {}},
    {"issuerRef": {"name": ""}},
    {"issuerRef": {"name": "Bad_Name"}},
    {"issuerRef": {"name": "ca", "kind": "Certificate"}},
    {"issuerRef": {"name": "ca", "group": "cert manager"}},
    {"issuerRef": "ca"},
], ids=["no-name", "empty-name", "bad-name", "kind", "group", "string"])
def test_the_schema_refuses_a_bad_issuer_ref(tls):
    assert openapi_errors(with_spec(tls=tls))


def test_the_schema_takes_an_issuer_ref():
    assert openapi_errors(with_spec(tls={"issuerRef": {"name": "ca"}})) == []
    assert openapi_errors(with_spec(tls={"issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer",
                                                       "group": "cert-manager.io"}})) == []


def test_the_schema_takes_a_drill_and_status_last_drill():
    drill = {"schedule": "0 4 * * 0", "check": "SELECT count(*) > 0 FROM orders", "scratchSize": "20Gi"}
    assert openapi_errors(with_spec(backup={"repository": {"s3": S3}, "drill": drill})) == []
    props = SPEC["backup"]["properties"]["drill"]["properties"]
    assert props["check"]["maxLength"] == spec.DRILL_CHECK_LIMIT
    assert props["scratchSize"]["pattern"] == spec.SCRATCH_SIZE_RE.pattern
    # The schedule has the backup schedule's rule.
    assert rules(props["schedule"]) == rules(SPEC["backupSchedule"])
    last = SCHEMA["properties"]["status"]["properties"]["lastDrill"]["properties"]
    assert set(last) == {"time", "backup", "restoredTo", "durationSeconds", "result", "message", "job"}
    assert set(SCHEMA["properties"]["status"]["properties"]["backups"]["properties"]) >= {"drillSchedule"}


@pytest.mark.parametrize("drill", [{"check": "SELECT true"}, {"schedule": "0 4 * * 0", "check": "x" * 4097},
                                   {"schedule": "0 4 * * 0", "scratchSize": "20GB"}],
                         ids=["no-schedule", "check-too-long", "scratch-size"])
def test_the_schema_refuses_a_bad_drill(drill):
    assert openapi_errors(with_spec(backup={"repository": {"s3": S3}, "drill": drill}))


def test_the_autoscaler_sample_scales_the_sample_cluster_through_the_scale_subresource():
    """config/samples' HorizontalPodAutoscaler (README "Scaling on load") names the sample cluster,
    whose CRD has the scale subresource it drives, within the replicas the schema allows."""
    hpa = yaml.safe_load((REPO / "config/samples/postgres_v1_horizontalpodautoscaler.yaml").read_text())
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": names.API_VERSION, "kind": names.KIND,
                                             "name": SAMPLE["metadata"]["name"]}
    scale = CRD["spec"]["versions"][0]["subresources"]["scale"]
    assert scale == {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.currentReplicas",
                     "labelSelectorPath": ".status.selector"}
    replicas = SPEC["replicas"]
    assert replicas["minimum"] <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= replicas["maximum"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]


def test_the_major_upgrade_fields_agree_with_module_utils():
    schema = SCHEMA["properties"]
    policy = schema["spec"]["properties"]["updatePolicy"]["properties"]["majorUpgradeMode"]
    assert tuple(sorted(policy["enum"])) == tuple(sorted(spec.MAJOR_UPGRADE_MODES))
    assert policy["default"] == spec.UPDATE_POLICY_DEFAULTS["majorUpgradeMode"]
    # No default: unset, the image's major (a spec from before the field keeps its major).
    assert "default" not in schema["spec"]["properties"]["postgresVersion"]
    upgrade = schema["status"]["properties"]["upgrade"]["properties"]
    assert set(upgrade) == set(upgrades.FIELDS)
    assert tuple(upgrade["phase"]["enum"]) == upgrades.PHASES
    assert "Upgrading" in schema["status"]["properties"]["phase"]["enum"]
