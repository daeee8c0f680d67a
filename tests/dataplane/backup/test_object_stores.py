"""Physical backups to Google Cloud Storage and Azure Blob Storage: pgc-backup.sh and pgc-restore.sh
against fake-gcs-server and Azurite over TLS, with the configuration and secrets the filters render
for a gcs or azure repository; the restored copy has every row, and the stored objects are
encrypted. A GCS service-account key gets its tokens from a local token endpoint."""

from __future__ import annotations

import json
import os

import pytest

from tests.dataplane.backup.harness import (AZURE_KEY, CIPHER_PASS, GCS_TOKEN, Cluster, GcsTokenEndpoint, give,
                                           write_plaintext_marker)


@pytest.mark.parametrize("kind", ["gcs", "azure"])
def test_full_backup_restores_every_row_and_stores_only_ciphertext(workspace, request, kind):
    store = request.getfixturevalue(f"{kind}_store")
    # Azure wants container names of 3 to 63 characters.
    bucket = f"pgc-{kind}-backups"
    if kind == "gcs":
        store.create_bucket(bucket)
    else:
        store.create_container(bucket)
    name = f"obj{kind}"
    cluster = Cluster(workspace, name, store.backup_spec(bucket, f"/pgc/dp/{name}"), ca_file=store.ca_file)
    assert cluster.settings["type"] == kind and cluster.settings["encryption"], "encrypted by default"
    src = cluster.init()
    marker = write_plaintext_marker(src, "marks")

    backup = cluster.script("pgc-backup.sh", "full")
    full = json.loads(backup.stdout)
    assert full["type"] == "full" and full["label"].endswith("F") and full["backups"] == 1, full
    assert 0 < full["repository_size"] < full["size"], full

    src.sql("INSERT INTO marks SELECT g, 'after the backup ' || g FROM generate_series(2001, 3000) g")
    src.switch_wal_and_wait_archived()
    expected = src.table_digest("marks")
    assert expected[0] == 3000

    target = workspace.dir / f"restore-{name}"
    restore = cluster.restore(target)
    restored = json.loads(restore.stdout)
    assert restored["label"] == full["label"] and restored["type"] == "latest", restored
    copy = cluster.start_copy(f"{name}-latest", target)
    copy.wait_promoted()
    assert copy.table_digest("marks") == expected, "the rows written after the backup came from the archived WAL"
    copy.stop()

    for secret in (CIPHER_PASS, AZURE_KEY, GCS_TOKEN):
        assert not any(secret in o.stdout + o.stderr for o in (backup, restore)), "the scripts print no secret"
    files = store.objects(bucket, f"pgc/dp/{name}/")
    names = sorted(files)
    assert any("/bundle/" in n for n in names) and any("/archive/" in n and n.endswith(".zst") for n in names), names
    for fname, data in files.items():
        assert marker.encode() not in data, f"{fname} holds the plaintext marker"
        assert data.startswith(b"Salted__"), f"{fname} is not encrypted: starts with {data[:16]!r}"


def test_gcs_with_a_service_account_key_signs_its_token_requests_with_the_mounted_key(workspace, gcs_store):
    """keyType service (the default): pgBackRest reads the mounted key.json, signs a JWT with its
    private key for the key's token_uri, and uses the access token it gets; the key never shows."""
    endpoint = GcsTokenEndpoint(gcs_store)
    endpoint.start()
    try:
        key_file = workspace.path("gcs-service-key") / "key.json"
        key_file.write_text(endpoint.key_json())
        os.chmod(key_file, 0o440)
        give(key_file.parent)
        gcs_store.create_bucket("pgc-gcs-service")
        cluster = Cluster(workspace, "objgcskey", gcs_store.backup_spec("pgc-gcs-service", "/pgc/dp/objgcskey", "service"),
                          ca_file=gcs_store.ca_file, gcs_key_file=key_file)
        assert f"repo1-gcs-key={key_file}" in cluster.config.read_text()
        assert "repo1-gcs-key-type=service" in cluster.config.read_text()
        src = cluster.init()
        src.sql("CREATE TABLE marks (id int PRIMARY KEY)")
        src.sql("INSERT INTO marks SELECT generate_series(1, 500)")

        backup = cluster.script("pgc-backup.sh", "full", check=False)
        assert backup.returncode == 0, f"{backup.stderr}\nrefused token requests: {endpoint.refused}"
        assert json.loads(backup.stdout)["type"] == "full"
        assert endpoint.issued, f"no token was issued; refused: {endpoint.refused}"
        assert not endpoint.refused, endpoint.refused
        assert {c["iss"] for c in endpoint.issued} == {endpoint.client_email}
        assert "https://www.googleapis.com/auth/devstorage.read_write" in {c["scope"] for c in endpoint.issued}

        src.sql("INSERT INTO marks SELECT generate_series(501, 600)")
        src.switch_wal_and_wait_archived()
        target = workspace.dir / "restore-objgcskey"
        cluster.restore(target)
        copy = cluster.start_copy("objgcskey-latest", target)
        copy.wait_promoted()
        assert copy.value("SELECT count(*) FROM marks") == 600
        copy.stop()
        private_key_line = endpoint.private_key_pem.splitlines()[1]
        assert private_key_line not in backup.stdout + backup.stderr
        assert any(n.endswith(".zst") for n in gcs_store.objects("pgc-gcs-service", "pgc/dp/objgcskey/archive/"))
    finally:
        endpoint.stop()
