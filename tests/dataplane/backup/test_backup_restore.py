"""Physical and logical backups with pgBackRest, restored and compared row by row: the scripts of
images/postgres/scripts against real PostgreSQL 15 servers, an S3 repository over TLS (moto behind
nginx) and a directory repository (a volume in a pod)."""

from __future__ import annotations

import json
import os

import pytest

from tests.dataplane.backup.harness import CIPHER_PASS, S3_KEY_SECRET, Cluster, utc_now, write_plaintext_marker

MiB = 1024 * 1024


def volume_spec(**extra) -> dict:
    return {"repository": {"volume": {"size": "1Gi"}}, **extra}


def add_marks(server, first: int, last: int, phase: str) -> None:
    server.sql("INSERT INTO marks (id, phase) SELECT g, %s FROM generate_series(%s::int, %s::int) g", (phase, first, last))


def pgbench_load(server, scale: int = 2) -> None:
    server.run("pgbench", "-i", "-q", "-s", str(scale), "postgres")


def pgbench_run(server, transactions: int = 300) -> None:
    server.run("pgbench", "-n", "-c", "2", "-t", str(transactions), "postgres")


def test_restore_to_a_point_in_time_and_to_the_latest_backup(workspace, object_store):
    """Full, then incremental backup to S3; a restore to a time T between later writes has exactly
    the rows committed at T, and a restore of the latest backup has every archived row."""
    object_store.create_bucket("pitr")
    cluster = Cluster(workspace, "pitr", object_store.backup_spec("pitr", "/pgc/dp/pitr"), retention=3,
                      ca_file=object_store.ca_file)
    src = cluster.init()
    pgbench_load(src)
    src.sql("CREATE TABLE marks (id int PRIMARY KEY, phase text NOT NULL)")
    add_marks(src, 1, 100, "before the full backup")

    full = cluster.script_json("pgc-backup.sh", "full")
    assert len(full) == 1, "pgc-backup.sh prints one JSON line"
    full = full[0]
    assert full["type"] == "full" and full["label"].endswith("F")
    assert full["size"] > 20 * MiB, full
    assert 0 < full["repository_size"] < full["size"], "stored compressed"
    assert full["start"] <= full["stop"] and full["wal_start"] and full["wal_stop"]

    add_marks(src, 101, 200, "after the full backup")
    pgbench_run(src)
    incr = cluster.script_json("pgc-backup.sh", "incr")[0]
    assert incr["type"] == "incr" and incr["label"].startswith(full["label"] + "_")
    assert incr["repository_delta"] < full["repository_size"], "an incremental stores only what changed"
    assert incr["backups"] == 2 and incr["full_backups"] == 1

    add_marks(src, 201, 300, "after the incremental backup")
    pgbench_run(src)
    target_time = utc_now(src)
    at_t = {t: src.table_digest(t) for t in ("marks", "pgbench_accounts", "pgbench_history")}
    src.switch_wal_and_wait_archived()
    add_marks(src, 301, 400, "after T")
    pgbench_run(src)
    src.switch_wal_and_wait_archived()
    latest = {t: src.table_digest(t) for t in ("marks", "pgbench_accounts", "pgbench_history")}
    assert latest != at_t

    pitr_dir = workspace.dir / "restore-pitr"
    restored = json.loads(cluster.restore(pitr_dir, f"--target-time={target_time}").stdout)
    assert restored["label"] == incr["label"] and restored["type"] == "time"
    copy = cluster.start_copy("pitr-at-t", pitr_dir)
    copy.wait_promoted()
    assert {t: copy.table_digest(t) for t in at_t} == at_t, f"restored to {target_time}"
    assert copy.value("SELECT max(id) FROM marks") == 300
    copy.stop()

    latest_dir = workspace.dir / "restore-latest"
    restored = json.loads(cluster.restore(latest_dir).stdout)
    assert restored["label"] == incr["label"] and restored["type"] == "latest"
    copy = cluster.start_copy("pitr-latest", latest_dir)
    copy.wait_promoted()
    assert {t: copy.table_digest(t) for t in latest} == latest
    copy.stop()


def test_logical_dump_restores_one_database_and_leaves_the_others(workspace, object_store):
    """pg_dump of single databases to S3 (encrypted); one database dropped and altered is restored
    (recreated, or into an existing database) to the rows of the dump; the others keep theirs."""
    object_store.create_bucket("logical")
    cluster = Cluster(workspace, "shopdb", object_store.backup_spec("logical", "/pgc/dp/shopdb"),
                      ca_file=object_store.ca_file)
    src = cluster.init(archive=False)
    for db in ("shop", "crm", "shop_check"):
        src.sql(f"CREATE DATABASE {db}")
    src.sql("CREATE TABLE items (id int PRIMARY KEY, name text, price numeric)", dbname="shop")
    src.sql("INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 5000) g", dbname="shop")
    src.sql("CREATE TABLE orders (id int PRIMARY KEY, item int REFERENCES items, qty int)", dbname="shop")
    src.sql("INSERT INTO orders SELECT g, g % 5000 + 1, g % 7 FROM generate_series(1, 20000) g", dbname="shop")
    src.sql("CREATE TABLE contacts (id int PRIMARY KEY, email text)", dbname="crm")
    src.sql("INSERT INTO contacts SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 1000) g", dbname="crm")
    # Hashes compress poorly: the dump of shop spans several 5 MiB parts of a multipart upload.
    src.sql("CREATE TABLE blobs AS SELECT g AS id, md5(g::text) || md5((-g)::text) || md5(random()::text) AS v "
            "FROM generate_series(1, 250000) g", dbname="shop")
    dumped = {t: src.table_digest(t, "shop") for t in ("items", "orders", "blobs")}

    out = cluster.script_json("pgc-logical-backup.sh", "shop", "crm", env={"PGC_REPO_PART_SIZE": str(5 * MiB)})
    assert out[0]["size"] > 10 * MiB, "the dump took more than one part"
    assert [o["database"] for o in out] == ["shop", "crm"]
    assert all(o["encrypted"] and o["size"] > 0 and len(o["sha256"]) == 64 for o in out), out
    keys = object_store.objects("logical", "pgc/dp/shopdb/logical/shopdb/shop/")
    assert set(keys) == {f"pgc/dp/shopdb/{out[0]['name']}",
                         f"pgc/dp/shopdb/logical/shopdb/shop/{out[0]['label']}.json"}

    src.sql("DROP TABLE orders", dbname="shop")
    src.sql("DELETE FROM blobs WHERE id % 3 = 0", dbname="shop")
    src.sql("UPDATE items SET price = 0 WHERE id % 2 = 0", dbname="shop")
    src.sql("INSERT INTO contacts VALUES (1001, 'after-the-dump@example.com')", dbname="crm")
    crm_now = src.table_digest("contacts", "crm")

    restored = cluster.script_json("pgc-logical-restore.sh", "--database=shop")[0]
    assert restored == {"database": "shop", "label": out[0]["label"], "restored_into": "shop"}
    assert {t: src.table_digest(t, "shop") for t in dumped} == dumped
    assert src.table_digest("contacts", "crm") == crm_now, "another database is untouched"

    cluster.script("pgc-logical-restore.sh", "--database=shop", f"--label={out[0]['label']}", "--into=shop_check")
    assert {t: src.table_digest(t, "shop_check") for t in dumped} == dumped

    refused = cluster.script("pgc-logical-restore.sh", "--database=shop", "--label=19990101T000000000Z", check=False)
    assert refused.returncode != 0 and "no dump 19990101T000000000Z of database shop" in refused.stderr


def test_retention_keeps_two_full_backups_and_the_wal_they_need(workspace):
    """With repo1-retention-full=2, three full backups leave the two newest; the archive still
    starts at or before the oldest one's WAL, the repository verifies, and a restore of the oldest
    replays every later segment up to the newest rows."""
    repo = workspace.path("repo-retention")
    cluster = Cluster(workspace, "keep2", volume_spec(), retention=2, repo_path=repo)
    assert not cluster.settings["encryption"], "a volume repository is not encrypted by default"
    src = cluster.init()
    src.sql("CREATE TABLE marks (id int PRIMARY KEY, phase text NOT NULL)")
    labels = []
    for n in range(1, 4):
        add_marks(src, n * 1000, n * 1000 + 499, f"before full {n}")
        out = cluster.script_json("pgc-backup.sh", "full")[0]
        assert out["full_backups"] == min(n, 2), out
        labels.append(out["label"])
    add_marks(src, 9000, 9099, "after the last full")
    src.switch_wal_and_wait_archived()
    expected = src.table_digest("marks")

    info = cluster.info()
    fulls = [b for b in info["backup"] if b["type"] == "full"]
    assert [b["label"] for b in fulls] == labels[1:], "the oldest full backup was expired"
    archive = info["archive"][0]
    oldest = fulls[0]
    assert archive["min"] <= oldest["archive"]["start"], (archive, oldest["archive"])
    segments = {name[:24] for _, _, files in os.walk(repo / "archive" / "keep2") for name in files}
    assert oldest["archive"]["start"] in segments and oldest["archive"]["stop"] in segments
    assert labels[0] not in os.listdir(repo / "backup" / "keep2")

    report = cluster.pgbackrest("verify", "--output=text", "--verbose", "--log-level-console=warn").stdout
    assert "status: ok" in report, report
    for label in labels[1:]:
        assert f"backup: {label}, status: valid" in report, report

    target = workspace.dir / "restore-oldest"
    restored = json.loads(cluster.restore(target, f"--set={oldest['label']}").stdout)
    assert restored["label"] == oldest["label"]
    copy = cluster.start_copy("keep2-oldest", target)
    copy.wait_promoted()
    assert copy.table_digest("marks") == expected
    copy.stop()


def _flip_bytes(path) -> None:
    data = bytearray(path.read_bytes())
    for offset in (len(data) // 3, len(data) // 2, 2 * len(data) // 3):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_restore_refuses_a_missing_or_corrupted_backup_and_changes_nothing(workspace):
    """A label that is not in the repository, a data directory that is not empty, and a backup whose
    files were altered are each refused with the reason; the target is left as it was."""
    repo = workspace.path("repo-guard")
    cluster = Cluster(workspace, "guard", volume_spec(), repo_path=repo)
    src = cluster.init()
    pgbench_load(src, 1)
    label = cluster.script_json("pgc-backup.sh", "full")[0]["label"]

    absent = workspace.dir / "guard-absent"
    refused = cluster.restore(absent, "--set=20200101-000000F", check=False)
    assert refused.returncode != 0
    assert "backup set 20200101-000000F does not exist" in refused.stderr and label in refused.stderr
    assert not absent.exists()

    busy = workspace.path("guard-busy")
    (busy / "PG_VERSION").write_text("15\n")
    refused = cluster.restore(busy, check=False)
    assert refused.returncode != 0 and "is not empty" in refused.stderr
    assert sorted(p.name for p in busy.iterdir()) == ["PG_VERSION"]

    # Flip bytes in the largest stored file of the backup (a bundle of data files).
    files = [p for p in (repo / "backup" / "guard" / label).rglob("*") if p.is_file()]
    _flip_bytes(max(files, key=lambda p: p.stat().st_size))
    empty = workspace.path("guard-empty")
    for target in (absent, empty):
        refused = cluster.restore(target, check=False)
        assert refused.returncode != 0
        assert f"backup {label} does not verify, nothing was restored" in refused.stderr, refused.stderr
        assert "checksum invalid" in refused.stderr
    assert not absent.exists() and list(empty.iterdir()) == []


def _repository_files(cluster, object_store, bucket, repo) -> dict[str, bytes]:
    if repo is not None:
        return {str(p.relative_to(repo)): p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    return object_store.objects(bucket, "pgc/dp/")


@pytest.mark.parametrize("kind", ["volume", "s3"])
def test_encrypted_repository_holds_no_plaintext(workspace, object_store, kind):
    """With encryption on, no file of the repository (backups, WAL, info files, logical dumps)
    contains a marker written into the database, and each begins with the cipher's header instead of
    PostgreSQL's page or WAL headers; the logical dumps' manifests hold only sizes and checksums."""
    name = f"secret{kind}"
    if kind == "volume":
        repo = workspace.path(f"repo-{name}")
        bucket = None
        cluster = Cluster(workspace, name, volume_spec(encryption=True), repo_path=repo)
    else:
        repo = None
        bucket = name
        object_store.create_bucket(bucket)
        cluster = Cluster(workspace, name, object_store.backup_spec(bucket, f"/pgc/dp/{name}"),
                          ca_file=object_store.ca_file)
    assert cluster.settings["encryption"]
    src = cluster.init()
    marker = write_plaintext_marker(src, "secrets")
    relation = src.data_dir / src.value("SELECT pg_relation_filepath('secrets')")
    assert marker.encode() in relation.read_bytes(), "the marker is plain text in the database's files"

    outputs = [cluster.script("pgc-backup.sh", "full")]
    src.sql("UPDATE secrets SET v = v || ' updated'")
    src.switch_wal_and_wait_archived()
    outputs.append(cluster.script("pgc-logical-backup.sh", "postgres"))
    for secret in (CIPHER_PASS, S3_KEY_SECRET):
        assert not any(secret in o.stdout + o.stderr for o in outputs), "the scripts print no secret"

    files = _repository_files(cluster, object_store, bucket, repo)
    names = sorted(files)
    assert any("/bundle/" in n for n in names) and any("/archive/" in n or n.startswith("archive/") for n in names)
    assert any(n.endswith(".pgdump.enc") for n in names), names
    for fname, data in files.items():
        assert marker.encode() not in data, f"{fname} holds the plaintext marker"
        if fname.endswith(".json"):
            assert json.loads(data)["encrypted"] is True, fname
            continue
        assert data.startswith(b"Salted__"), f"{fname} is not encrypted: starts with {data[:16]!r}"


def test_expiring_a_backup_never_takes_the_backups_built_on_it(workspace):
    """pgc-expire.sh SET (the expire Job of a PostgresBackup with expireOnDelete): a full backup that
    an incremental one is built on stays, with the reason; once nothing depends on it, it goes."""
    cluster = Cluster(workspace, "expire", volume_spec(), retention=5, repo_path=workspace.path("repo-expire"))
    src = cluster.init()
    src.sql("CREATE TABLE marks (id int PRIMARY KEY, phase text NOT NULL)")
    add_marks(src, 1, 100, "before the first full")
    first = cluster.script_json("pgc-backup.sh", "full")[0]["label"]
    add_marks(src, 101, 200, "before the incremental")
    incr = cluster.script_json("pgc-backup.sh", "incr")[0]["label"]
    add_marks(src, 201, 300, "before the second full")
    cluster.script_json("pgc-backup.sh", "full")

    refused = cluster.script("pgc-expire.sh", first, check=False)
    assert refused.returncode == 3, refused.stderr
    assert f"backup set {first} is kept: {incr} depend(s) on it" in refused.stderr
    assert {first, incr} <= {b["label"] for b in cluster.info()["backup"]}, "nothing was expired"

    assert cluster.script_json("pgc-expire.sh", incr) == [{"expired": incr}]
    assert cluster.script_json("pgc-expire.sh", first) == [{"expired": first}]
    labels = {b["label"] for b in cluster.info()["backup"]}
    assert first not in labels and incr not in labels and len(labels) == 1

    missing = cluster.script("pgc-expire.sh", first, check=False)
    assert missing.returncode == 1 and "is not in the repository" in missing.stderr


def test_a_failed_logical_restore_leaves_the_database_as_it_was_and_a_rerun_recovers_a_stopped_one(workspace):
    """pgc-logical-restore.sh renames the database aside and drops it only once the dump is restored:
    a pg_restore that fails (here: the dump names a role that is gone) puts it back as it was; a run
    stopped half-way leaves it aside, and the next run puts it back before it restores."""
    import hashlib

    cluster = Cluster(workspace, "keepdb", volume_spec(), repo_path=workspace.path("repo-keepdb"))
    src = cluster.init(archive=False)
    src.sql("CREATE DATABASE shop")
    src.sql("CREATE ROLE ephemeral")
    src.sql("CREATE TABLE items (id int PRIMARY KEY, name text)", dbname="shop")
    src.sql("ALTER TABLE items OWNER TO ephemeral", dbname="shop")
    src.sql("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g", dbname="shop")
    dumped = src.table_digest("items", "shop")
    label = cluster.script_json("pgc-logical-backup.sh", "shop")[0]["label"]

    # Later: more rows, and the dump's owner gone.
    src.sql("INSERT INTO items SELECT g, 'later ' || g FROM generate_series(1001, 1500) g", dbname="shop")
    src.sql("REASSIGN OWNED BY ephemeral TO CURRENT_USER", dbname="shop")
    src.sql("DROP ROLE ephemeral")
    now = src.table_digest("items", "shop")
    aside = "pgc_restore_aside_" + hashlib.sha256(b"shop").hexdigest()[:16]

    failed = cluster.script("pgc-logical-restore.sh", "--database=shop", check=False)
    assert failed.returncode != 0 and "pg_restore of shop failed: shop is as it was" in failed.stderr, failed.stderr
    assert src.table_digest("items", "shop") == now
    assert src.sql("SELECT datallowconn FROM pg_database WHERE datname = 'shop'") == [(True,)]
    assert src.sql(f"SELECT count(*) FROM pg_database WHERE datname = '{aside}'") == [(0,)]

    # A run stopped after it renamed shop aside and pg_restore had begun.
    src.sql(f'ALTER DATABASE shop RENAME TO "{aside}"')
    src.sql("CREATE DATABASE shop")
    src.sql("CREATE ROLE ephemeral")
    restored = cluster.script("pgc-logical-restore.sh", "--database=shop")
    assert "stopped half-way" in restored.stderr
    assert json.loads(restored.stdout) == {"database": "shop", "label": label, "restored_into": "shop"}
    assert src.table_digest("items", "shop") == dumped
    assert src.sql(f"SELECT count(*) FROM pg_database WHERE datname = '{aside}'") == [(0,)]
