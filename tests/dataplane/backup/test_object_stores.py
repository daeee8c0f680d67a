"""Physical backups to Google Cloud Storage and Azure Blob Storage: pgc-backup.sh and pgc-restore.sh
against fake-gcs-server and Azurite over TLS, with the configuration and secrets the filters render
for a gcs or azure repository; the restored copy has every row, and the stored objects are
encrypted."""

from __future__ import annotations

import json

import pytest

from tests.dataplane.backup.harness import AZURE_KEY, CIPHER_PASS, GCS_TOKEN, Cluster, write_plaintext_marker


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
