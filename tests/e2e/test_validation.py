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
], ids=["replicas-0", "replicas-100", "storage-10GB", "cron-words", "cron-4-fields", "retention-0"])
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
