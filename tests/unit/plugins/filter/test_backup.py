"""pgBackRest's configuration, archive and restore commands rendered from a cluster's spec.backup."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.postgres.cluster.plugins.filter import backup as flt
from ansible_collections.postgres.cluster.plugins.filter.pgc import pgc_normalize

REPO = Path(__file__).resolve().parents[4]


def pgc(backup=None, **spec):
    if backup is not None:
        spec["backup"] = backup
    return pgc_normalize({"metadata": {"name": "db", "namespace": "prod"}, "spec": spec})


S3 = {"repository": {"s3": {"endpoint": "s3.eu-west-1.amazonaws.com", "bucket": "pg-backups",
                            "region": "eu-west-1", "secretName": "db-backup-s3"}}}
VOLUME = {"repository": {"volume": {"size": "20Gi"}}}


def parse(text):
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(text)
    return ini


def test_pgc_pgbackrest_config_names_the_stanza_after_the_cluster():
    ini = parse(flt.pgc_pgbackrest_config(pgc(S3)))
    assert ini.sections() == ["global", "db"]
    assert dict(ini["db"]) == {"pg1-path": "/var/lib/postgresql/data/pgdata", "pg1-port": "5432",
                               "pg1-socket-path": "/var/run/postgresql"}


def test_pgc_pgbackrest_config_renders_an_s3_repository():
    g = parse(flt.pgc_pgbackrest_config(pgc(S3)))["global"]
    assert g["repo1-type"] == "s3"
    assert g["repo1-s3-endpoint"] == "s3.eu-west-1.amazonaws.com"
    assert g["repo1-s3-bucket"] == "pg-backups"
    assert g["repo1-s3-region"] == "eu-west-1"
    assert g["repo1-path"] == "/pgc/prod/db", "default path: namespace and name"
    assert g["repo1-s3-uri-style"] == "host"
    assert g["repo1-storage-verify-tls"] == "y"
    assert "repo1-storage-port" not in g and "repo1-storage-ca-file" not in g


def test_pgc_pgbackrest_config_takes_port_path_style_and_ca_of_an_s3_repository():
    backup = {"repository": {"s3": {"endpoint": "https://minio.storage.svc:9000/", "bucket": "b", "path": "x/y",
                                    "uriStyle": "path", "verifyTLS": False, "caSecretName": "minio-ca"}}}
    g = parse(flt.pgc_pgbackrest_config(pgc(backup)))["global"]
    assert (g["repo1-s3-endpoint"], g["repo1-storage-port"]) == ("minio.storage.svc", "9000")
    assert g["repo1-path"] == "/x/y"
    assert g["repo1-s3-uri-style"] == "path"
    assert g["repo1-storage-verify-tls"] == "n"
    assert g["repo1-storage-ca-file"] == flt.CA_FILE


def test_pgc_pgbackrest_config_keeps_secrets_out_of_the_file():
    text = flt.pgc_pgbackrest_config(pgc({**S3, "encryption": True}))
    g = parse(text)["global"]
    assert g["repo1-cipher-type"] == "aes-256-cbc"
    for option in ("repo1-s3-key", "repo1-s3-key-secret", "repo1-cipher-pass"):
        assert option not in g
    assert "db-backup-s3" not in text, "the Secret's name is for the pod's environment, not the file"


def test_pgc_pgbackrest_config_encrypts_object_storage_by_default_and_volumes_on_request():
    assert parse(flt.pgc_pgbackrest_config(pgc(S3)))["global"]["repo1-cipher-type"] == "aes-256-cbc"
    assert "repo1-cipher-type" not in parse(flt.pgc_pgbackrest_config(pgc({**S3, "encryption": False})))["global"]
    assert "repo1-cipher-type" not in parse(flt.pgc_pgbackrest_config(pgc(VOLUME)))["global"]
    volume = parse(flt.pgc_pgbackrest_config(pgc({**VOLUME, "encryption": True})))["global"]
    assert volume["repo1-cipher-type"] == "aes-256-cbc"


def test_pgc_pgbackrest_config_renders_a_volume_repository():
    g = parse(flt.pgc_pgbackrest_config(pgc(VOLUME)))["global"]
    assert g["repo1-type"] == "posix"
    assert g["repo1-path"] == flt.VOLUME_REPOSITORY_PATH
    assert not any(k.startswith("repo1-s3-") for k in g)
    assert parse(flt.pgc_pgbackrest_config(pgc(VOLUME), repo_path="/mnt/r"))["global"]["repo1-path"] == "/mnt/r"


def test_pgc_pgbackrest_config_keeps_backup_retention_full_backups():
    assert parse(flt.pgc_pgbackrest_config(pgc(S3, backupRetention=7)))["global"]["repo1-retention-full"] == "7"
    assert "repo1-retention-full" not in parse(flt.pgc_pgbackrest_config(pgc(S3)))["global"]


def test_pgc_pgbackrest_config_sets_synchronous_archiving_compression_and_parallelism():
    g = parse(flt.pgc_pgbackrest_config(pgc({**S3, "processMax": 4})))["global"]
    assert g["archive-async"] == "n"
    assert g["compress-type"] == "zst"
    assert g["process-max"] == "4"
    assert g["start-fast"] == "y"
    assert g["repo1-bundle"] == "y"
    assert parse(flt.pgc_pgbackrest_config(pgc(S3)))["global"]["process-max"] == "2"


def test_pgc_pgbackrest_config_takes_local_paths_and_extra_options():
    text = flt.pgc_pgbackrest_config(pgc(S3), pg_path="/tmp/d", socket_path="/tmp/s", port=6543,
                                      options={"lock-path": "/tmp/l", "log-level-file": None})
    ini = parse(text)
    assert dict(ini["db"]) == {"pg1-path": "/tmp/d", "pg1-port": "6543", "pg1-socket-path": "/tmp/s"}
    assert ini["global"]["lock-path"] == "/tmp/l"
    assert "log-level-file" not in ini["global"]


@pytest.mark.parametrize("backup, message", [
    ({}, "spec.backup.repository is not set"),
    ({"repository": {"s3": {"bucket": "b"}}}, "s3.endpoint is required"),
    ({"repository": {"s3": {"endpoint": "e"}}}, "s3.bucket is required"),
    ({"repository": {"s3": {"endpoint": "e", "bucket": "b", "uriStyle": "virtual"}}}, "uriStyle must be"),
    ({"repository": {"s3": {"endpoint": "e", "bucket": "b"}, "volume": {}}}, "one of s3 or volume"),
])
def test_pgc_pgbackrest_config_refuses_an_incomplete_repository(backup, message):
    with pytest.raises(AnsibleFilterError, match=message):
        flt.pgc_pgbackrest_config(pgc(backup))


def test_pgc_pgbackrest_settings_without_backup_is_disabled():
    settings = flt.pgc_pgbackrest_settings(pgc())
    assert settings["enabled"] is False and settings["type"] == "none"


def test_pgc_pgbackrest_settings_defaults_logical_dumps_to_the_application_database():
    assert flt.pgc_pgbackrest_settings(pgc(VOLUME))["logical"] == {"schedule": "", "databases": ["app"],
                                                                   "retention": 7}
    settings = flt.pgc_pgbackrest_settings(pgc({**VOLUME, "logical": {"schedule": "0 3 * * *", "databases": ["a", "b"]}}))
    assert settings["logical"]["databases"] == ["a", "b"]
    assert settings["volume_claim"] == "db-backup"
    assert settings["encryption_secret"] == "db-backup-encryption"


def test_pgc_pgbackrest_archive_and_restore_commands_name_the_stanza():
    cluster = pgc(S3)
    assert flt.pgc_pgbackrest_archive_command(cluster) == "pgbackrest --stanza=db archive-push %p"
    assert flt.pgc_pgbackrest_restore_command(cluster) == 'pgbackrest --stanza=db archive-get %f "%p"'
    assert flt.pgc_pgbackrest_archive_command(cluster, config="/c.conf") == \
        "pgbackrest --config=/c.conf --stanza=db archive-push %p"


def test_pgc_pgbackrest_environment_takes_secrets_from_secret_references():
    env = flt.pgc_pgbackrest_environment(pgc(S3))
    by_name = {e["name"]: e for e in env}
    assert by_name["PGBACKREST_STANZA"]["value"] == "db"
    assert by_name["PGBACKREST_CONFIG"]["value"] == flt.PGBACKREST_CONFIG
    assert by_name["PGBACKREST_REPO1_S3_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "db-backup-s3",
                                                                              "key": "access-key-id"}
    assert by_name["PGBACKREST_REPO1_S3_KEY_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "secret-access-key"
    assert by_name["PGBACKREST_REPO1_CIPHER_PASS"]["valueFrom"]["secretKeyRef"] == {
        "name": "db-backup-encryption", "key": "passphrase"}
    assert all("value" not in e for e in env if e["name"].startswith("PGBACKREST_REPO1_"))
    assert [e["name"] for e in flt.pgc_pgbackrest_environment(pgc(VOLUME))] == ["PGBACKREST_STANZA",
                                                                               "PGBACKREST_CONFIG"]


def test_pgc_pgbackrest_environment_needs_the_s3_secret():
    backup = {"repository": {"s3": {"endpoint": "e", "bucket": "b"}}}
    with pytest.raises(AnsibleFilterError, match="secretName is required"):
        flt.pgc_pgbackrest_environment(pgc(backup))


def test_backup_filters_are_registered_and_documented():
    filters = flt.FilterModule().filters()
    for name in filters:
        doc = REPO / "plugins" / "filter" / f"{name}.yml"
        assert doc.is_file(), f"{doc.name} documents the filter"
        assert yaml.safe_load(doc.read_text())["DOCUMENTATION"]["name"] == name
