"""The API server refuses invalid PostgresClusters, naming the field, before the operator sees them."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import apply, kubectl, postgres_cluster, wait_for_phase


@pytest.mark.parametrize("spec, field", [
    ({"replicas": 0}, "spec.replicas"),
    ({"replicas": 100}, "spec.replicas"),
    ({"storageSize": "10GB"}, "spec.storageSize"),
    ({"backupSchedule": "every day"}, "spec.backupSchedule"),
    ({"backupSchedule": "0 2 * *"}, "spec.backupSchedule"),
    ({"backupRetention": 0}, "spec.backupRetention"),
    ({"image": "ghcr.io/pgc-operator/postgres"}, "spec.image"),
    ({"configuration": {"x = 1\narchive_command": "cp %p /tmp"}}, "spec.configuration"),
    ({"configuration": {"work_mem": "4MB\n"}}, "spec.configuration"),
    ({"bootstrap": {"fromBackup": {"cluster": "old", "repository": "s3://pg-backups"}}},
     "spec.bootstrap.fromBackup.repository"),
    ({"backup": {"repository": {"s3": {"endpoint": "s3.example.com", "bucket": "pg-backups", "secretName": "keys",
                                       "verifyTLS": "false"}}}}, "spec.backup.repository.s3.verifyTLS"),
    ({"credentials": {"appUser": "postgres"}}, "spec.credentials"),
    ({"allowedClients": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}, "spec.allowedClients[0].ipBlock.cidr"),
    ({"metricsClients": [{}]}, "spec.metricsClients[0]"),
    ({"audit": {"enabled": True, "log": ["everything"]}}, "spec.audit.log"),
    ({"tls": {"secretName": "db-cert", "issuerRef": {"name": "ca"}}}, "spec.tls.secretName and spec.tls.issuerRef"),
    ({"tls": {"issuerRef": {"name": "ca", "kind": "Certificate"}}}, "spec.tls.issuerRef.kind"),
], ids=["replicas-0", "replicas-100", "storage-10GB", "cron-words", "cron-4-fields", "retention-0", "image-no-tag",
        "configuration-key-newline", "configuration-value-newline", "from-backup-repository-string",
        "verify-tls-string", "credentials-same-role", "client-cidr", "metrics-client-empty", "audit-class",
        "tls-secret-and-issuer", "tls-issuer-kind"])
def test_invalid_cluster_is_rejected_naming_the_field(control_plane, namespace, spec, field):
    proc = apply(postgres_cluster("bad", **spec), namespace, check=False)
    assert proc.returncode != 0
    assert field in proc.stderr, proc.stderr
    assert "NotFound" in kubectl("get", "pgc", "bad", "-n", namespace, check=False)


def test_seed_manifest_validates_unchanged(control_plane, namespace):
    """A manifest written for the original schema (every seed field) is accepted as it is."""
    manifest = postgres_cluster("seed", replicas=3, image="postgres:15", storageSize="10Gi",
                                backupSchedule="0 2 * * *", backupRetention=7, enableMonitoring=True,
                                configuration={"max_connections": "200", "shared_buffers": "256MB"})
    apply(manifest, namespace)
    obj = kubectl("get", "pgc", "seed", "-n", namespace, "-o", "jsonpath={.spec.configuration.shared_buffers}")
    assert obj == "256MB"


def test_storage_cannot_shrink(operator, namespace):
    apply(postgres_cluster("db", replicas=1, storageSize="2Gi"), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    proc = apply(postgres_cluster("db", replicas=1, storageSize="1Gi"), namespace, check=False)
    assert proc.returncode != 0
    assert "spec.storageSize" in proc.stderr and "cannot be decreased" in proc.stderr, proc.stderr


def test_a_name_too_long_for_the_logical_backup_cronjob_is_rejected(control_plane, namespace):
    name = "a" * 40
    proc = apply(postgres_cluster(name, backup={
        "repository": {"s3": {"endpoint": "s3.example.com", "bucket": "pg-backups", "secretName": "keys"}},
        "logical": {"schedule": "30 3 * * *"}}), namespace, check=False)
    assert proc.returncode != 0
    assert "metadata.name must be at most 37 characters" in proc.stderr, proc.stderr


@pytest.mark.parametrize("field, value", [("superuser", "admin"), ("replicationUser", "streamer"), ("appUser", "web"),
                                          ("appDatabase", "web"), ("secretName", "other-credentials")])
def test_credentials_cannot_change_after_creation(control_plane, namespace, field, value):
    """No operator needed: the transition rules run on the API server. Every field has a default,
    so that setting one the first manifest left out is a change too."""
    apply(postgres_cluster("creds", replicas=1), namespace)
    proc = apply(postgres_cluster("creds", replicas=1, credentials={field: value}), namespace, check=False)
    assert proc.returncode != 0
    assert f"spec.credentials.{field}" in proc.stderr and "cannot change after creation" in proc.stderr, proc.stderr
