"""pgBackRest's configuration, archive and restore commands rendered from a cluster's spec.backup."""

from __future__ import annotations

import configparser

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils import pgbackrest
from ansible_collections.postgres.cluster.plugins.module_utils.spec import SpecError, pgc_normalize


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
    ini = parse(pgbackrest.pgc_pgbackrest_config(pgc(S3)))
    assert ini.sections() == ["global", "db"]
    assert dict(ini["db"]) == {"pg1-path": "/var/lib/postgresql/data/pgdata", "pg1-port": "5432",
                               "pg1-socket-path": "/var/run/postgresql"}


def test_pgc_pgbackrest_config_renders_an_s3_repository():
    g = parse(pgbackrest.pgc_pgbackrest_config(pgc(S3)))["global"]
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
    g = parse(pgbackrest.pgc_pgbackrest_config(pgc(backup)))["global"]
    assert (g["repo1-s3-endpoint"], g["repo1-storage-port"]) == ("minio.storage.svc", "9000")
    assert g["repo1-path"] == "/x/y"
    assert g["repo1-s3-uri-style"] == "path"
    assert g["repo1-storage-verify-tls"] == "n"
    assert g["repo1-storage-ca-file"] == pgbackrest.CA_FILE


def test_pgc_pgbackrest_config_keeps_secrets_out_of_the_file():
    text = pgbackrest.pgc_pgbackrest_config(pgc({**S3, "encryption": True}))
    g = parse(text)["global"]
    assert g["repo1-cipher-type"] == "aes-256-cbc"
    for option in ("repo1-s3-key", "repo1-s3-key-secret", "repo1-cipher-pass"):
        assert option not in g
    assert "db-backup-s3" not in text, "the Secret's name is for the pod's environment, not the file"


def test_pgc_pgbackrest_config_encrypts_object_storage_by_default_and_volumes_on_request():
    assert parse(pgbackrest.pgc_pgbackrest_config(pgc(S3)))["global"]["repo1-cipher-type"] == "aes-256-cbc"
    assert "repo1-cipher-type" not in parse(pgbackrest.pgc_pgbackrest_config(pgc({**S3, "encryption": False})))["global"]
    assert "repo1-cipher-type" not in parse(pgbackrest.pgc_pgbackrest_config(pgc(VOLUME), role="job"))["global"]
    for role in ("job", "repo-host"):
        volume = parse(pgbackrest.pgc_pgbackrest_config(pgc({**VOLUME, "encryption": True}), role=role))["global"]
        assert volume["repo1-cipher-type"] == "aes-256-cbc"
    # The repository host encrypts what the pods send it.
    pod = parse(pgbackrest.pgc_pgbackrest_config(pgc({**VOLUME, "encryption": True}), role="pod"))["global"]
    assert "repo1-cipher-type" not in pod


@pytest.mark.parametrize("role", ["job", "repo-host", "local"])
def test_pgc_pgbackrest_config_renders_a_volume_repository(role):
    g = parse(pgbackrest.pgc_pgbackrest_config(pgc(VOLUME), role=role))["global"]
    assert g["repo1-type"] == "posix"
    assert g["repo1-path"] == pgbackrest.VOLUME_REPOSITORY_PATH
    assert not any(k.startswith("repo1-s3-") or k.startswith("repo1-host") for k in g)
    assert parse(pgbackrest.pgc_pgbackrest_config(pgc(VOLUME), role=role, repo_path="/mnt/r"))["global"]["repo1-path"] == "/mnt/r"


def test_pgc_pgbackrest_config_pod_reaches_a_volume_through_the_repository_host_and_serves_tls():
    ini = parse(pgbackrest.pgc_pgbackrest_config(pgc(VOLUME)))
    g = ini["global"]
    assert {k: v for k, v in g.items() if k.startswith("repo1-")} == {
        "repo1-host": "db-repo.prod.svc", "repo1-host-type": "tls", "repo1-host-port": "8432",
        "repo1-host-cert-file": "/etc/pgc/backup-tls/client.crt", "repo1-host-key-file": "/etc/pgc/backup-tls/client.key",
        "repo1-host-ca-file": "/etc/pgc/backup-tls/ca.crt"}
    assert {k: v for k, v in g.items() if k.startswith("tls-server-")} == {
        "tls-server-address": "*", "tls-server-port": "8432",
        "tls-server-cert-file": "/etc/pgc/backup-tls/tls.crt", "tls-server-key-file": "/etc/pgc/backup-tls/tls.key",
        "tls-server-ca-file": "/etc/pgc/backup-tls/ca.crt", "tls-server-auth": "pgc-backup=db"}
    assert dict(ini["db"]) == {"pg1-path": "/var/lib/postgresql/data/pgdata", "pg1-port": "5432",
                               "pg1-socket-path": "/var/run/postgresql"}
    other = parse(pgbackrest.pgc_pgbackrest_config(pgc(VOLUME), repo_host="r.example", repo_host_port=9000, tls_dir="/t",
                                                   tls_address="127.0.0.1", tls_port=9001))["global"]
    assert (other["repo1-host"], other["repo1-host-port"], other["repo1-host-ca-file"]) == ("r.example", "9000", "/t/ca.crt")
    assert (other["tls-server-address"], other["tls-server-port"]) == ("127.0.0.1", "9001")


def test_pgc_pgbackrest_config_pod_with_s3_stores_directly_and_serves_tls():
    g = parse(pgbackrest.pgc_pgbackrest_config(pgc(S3)))["global"]
    assert g["repo1-type"] == "s3" and "repo1-host" not in g
    assert g["tls-server-auth"] == "pgc-backup=db"


@pytest.mark.parametrize("backup", [S3, VOLUME])
def test_pgc_pgbackrest_config_job_reaches_the_primary_over_tls(backup):
    ini = parse(pgbackrest.pgc_pgbackrest_config(pgc(backup), role="job"))
    assert dict(ini["db"]) == {
        "pg1-host": "db.prod.svc", "pg1-host-type": "tls", "pg1-host-port": "8432",
        "pg1-host-cert-file": "/etc/pgc/backup-tls/client.crt", "pg1-host-key-file": "/etc/pgc/backup-tls/client.key",
        "pg1-host-ca-file": "/etc/pgc/backup-tls/ca.crt",
        "pg1-path": "/var/lib/postgresql/data/pgdata", "pg1-port": "5432", "pg1-socket-path": "/var/run/postgresql"}
    assert not any(k.startswith("tls-server-") or k.startswith("repo1-host") for k in ini["global"])
    host = parse(pgbackrest.pgc_pgbackrest_config(pgc(backup), role="job", pg_host="localhost", pg_host_port=1234))["db"]
    assert (host["pg1-host"], host["pg1-host-port"]) == ("localhost", "1234")


def test_pgc_pgbackrest_config_repository_host_serves_the_volume_only():
    ini = parse(pgbackrest.pgc_pgbackrest_config(pgc(VOLUME, backupRetention=3), role="repo-host"))
    assert ini.sections() == ["global"]
    assert ini["global"]["tls-server-auth"] == "pgc-backup=db"
    assert ini["global"]["repo1-retention-full"] == "3"
    with pytest.raises(SpecError, match="only a volume repository has a repository host"):
        pgbackrest.pgc_pgbackrest_config(pgc(S3), role="repo-host")
    with pytest.raises(SpecError, match="role must be one of"):
        pgbackrest.pgc_pgbackrest_config(pgc(S3), role="sidecar")


SOURCE_S3 = {"s3": {"endpoint": "s3.eu-west-1.amazonaws.com", "bucket": "old-backups", "secretName": "old-s3",
                    "caSecretName": "old-ca"}}


def from_backup(repository=None, **extra):
    return {"fromBackup": {"cluster": "old", "repository": repository or SOURCE_S3, "encryption": None,
                           "encryptionSecretName": "", "targetTime": "", "backup": "", **extra}}


def test_pgc_pgbackrest_config_source_is_the_other_clusters_stanza_and_repository():
    ini = parse(pgbackrest.pgc_pgbackrest_config(pgc(S3, bootstrap=from_backup()), role="source"))
    assert ini.sections() == ["global", "old"]
    g = ini["global"]
    assert (g["repo1-s3-bucket"], g["repo1-path"]) == ("old-backups", "/pgc/prod/old")
    assert g["repo1-storage-ca-file"] == pgbackrest.SOURCE_CA_FILE
    assert g["repo1-cipher-type"] == "aes-256-cbc"
    assert not any(k.startswith("tls-server-") for k in g)
    assert ini["old"]["pg1-path"] == "/var/lib/postgresql/data/pgdata"
    volume = parse(pgbackrest.pgc_pgbackrest_config(pgc(bootstrap=from_backup({"volume": {}})), role="source"))["global"]
    assert volume["repo1-host"] == "old-repo.prod.svc"
    assert volume["repo1-host-cert-file"] == "/etc/pgc/source-backup-tls/client.crt"
    with pytest.raises(SpecError, match="fromBackup is not set"):
        pgbackrest.pgc_pgbackrest_config(pgc(S3), role="source")


def test_pgc_pgbackrest_config_keeps_backup_retention_full_backups():
    assert parse(pgbackrest.pgc_pgbackrest_config(pgc(S3, backupRetention=7)))["global"]["repo1-retention-full"] == "7"
    # Never unbounded: without backupRetention, seven (a schedule alone would fill the repository).
    unset = parse(pgbackrest.pgc_pgbackrest_config(pgc(S3, backupSchedule="0 2 * * *")))["global"]
    assert (unset["repo1-retention-full"], unset["repo1-retention-full-type"]) == ("7", "count")


def test_pgc_pgbackrest_config_sets_synchronous_archiving_compression_and_parallelism():
    g = parse(pgbackrest.pgc_pgbackrest_config(pgc({**S3, "processMax": 4})))["global"]
    assert g["archive-async"] == "n"
    assert g["compress-type"] == "zst"
    assert g["process-max"] == "4"
    assert g["start-fast"] == "y"
    assert g["repo1-bundle"] == "y"
    assert parse(pgbackrest.pgc_pgbackrest_config(pgc(S3)))["global"]["process-max"] == "2"


def test_pgc_pgbackrest_config_takes_local_paths_and_extra_options():
    text = pgbackrest.pgc_pgbackrest_config(pgc(S3), pg_path="/tmp/d", socket_path="/tmp/s", port=6543,
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
    ({"repository": {"s3": {"endpoint": "e", "bucket": "b"}, "volume": {}}}, "exactly one of s3, gcs, azure or volume"),
])
def test_pgc_pgbackrest_config_refuses_an_incomplete_repository(backup, message):
    with pytest.raises(SpecError, match=message):
        pgbackrest.pgc_pgbackrest_config(pgc(backup))


def test_pgc_pgbackrest_settings_without_backup_is_disabled():
    settings = pgbackrest.pgc_pgbackrest_settings(pgc())
    assert settings["enabled"] is False and settings["type"] == "none"


def test_pgc_pgbackrest_settings_defaults_logical_dumps_to_the_application_database():
    assert pgbackrest.pgc_pgbackrest_settings(pgc(VOLUME))["logical"] == {"schedule": "", "databases": ["app"],
                                                                          "retention": 7}
    settings = pgbackrest.pgc_pgbackrest_settings(pgc({**VOLUME, "logical": {"schedule": "0 3 * * *", "databases": ["a", "b"]}}))
    assert settings["logical"]["databases"] == ["a", "b"]
    assert settings["volume_claim"] == "db-backup"
    assert settings["encryption_secret"] == "db-backup-encryption"


def test_pgc_pgbackrest_archive_and_restore_commands_name_the_stanza():
    cluster = pgc(S3)
    assert pgbackrest.pgc_pgbackrest_archive_command(cluster) == "pgbackrest --stanza=db archive-push %p"
    assert pgbackrest.pgc_pgbackrest_restore_command(cluster) == 'pgbackrest --stanza=db archive-get %f "%p"'
    assert pgbackrest.pgc_pgbackrest_archive_command(cluster, config="/c.conf") == \
        "pgbackrest --config=/c.conf --stanza=db archive-push %p"


def test_pgc_pgbackrest_environment_takes_secrets_from_secret_references():
    env = pgbackrest.pgc_pgbackrest_environment(pgc(S3))
    by_name = {e["name"]: e for e in env}
    assert by_name["PGBACKREST_STANZA"]["value"] == "db"
    assert by_name["PGBACKREST_CONFIG"]["value"] == pgbackrest.PGBACKREST_CONFIG
    assert by_name["PGBACKREST_REPO1_S3_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "db-backup-s3",
                                                                               "key": "access-key-id"}
    assert by_name["PGBACKREST_REPO1_S3_KEY_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "secret-access-key"
    assert by_name["PGBACKREST_REPO1_CIPHER_PASS"]["valueFrom"]["secretKeyRef"] == {
        "name": "db-backup-encryption", "key": "passphrase"}
    assert all("value" not in e for e in env if e["name"].startswith("PGBACKREST_REPO1_"))
    assert [e["name"] for e in pgbackrest.pgc_pgbackrest_environment(pgc(VOLUME))] == ["PGBACKREST_STANZA",
                                                                                       "PGBACKREST_CONFIG"]


def test_pgc_pgbackrest_environment_needs_the_s3_secret():
    backup = {"repository": {"s3": {"endpoint": "e", "bucket": "b"}}}
    with pytest.raises(SpecError, match="secretName is required"):
        pgbackrest.pgc_pgbackrest_environment(pgc(backup))


def test_pgc_pgbackrest_source_environment_names_do_not_clash_with_the_clusters_own():
    assert pgbackrest.pgc_pgbackrest_source_environment(pgc(S3)) == []
    env = pgbackrest.pgc_pgbackrest_source_environment(pgc(S3, bootstrap=from_backup(targetTime="2026-01-31 12:00:00+00")))
    by_name = {e["name"]: e for e in env}
    assert by_name["PGC_SOURCE_STANZA"]["value"] == "old"
    assert by_name["PGC_SOURCE_CONFIG"]["value"] == "/etc/pgbackrest/source.conf"
    # Optional: the source and its Secrets may go once the bootstrap is done; the members still start.
    assert by_name["PGC_SOURCE_REPO1_S3_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "old-s3", "key": "access-key-id",
                                                                             "optional": True}
    assert by_name["PGC_SOURCE_REPO1_S3_KEY_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "secret-access-key"
    assert by_name["PGC_SOURCE_REPO1_CIPHER_PASS"]["valueFrom"]["secretKeyRef"] == {
        "name": "old-backup-encryption", "key": "passphrase", "optional": True}
    assert by_name["PGC_RESTORE_TARGET_TIME"]["value"] == "2026-01-31 12:00:00+00"
    assert "PGC_RESTORE_SET" not in by_name
    assert not any(e["name"].startswith("PGBACKREST_") for e in env)
    labelled = {e["name"]: e.get("value") for e in pgbackrest.pgc_pgbackrest_source_environment(
        pgc(bootstrap=from_backup({"volume": {}}, backup="20260101-000000F", encryptionSecretName="k")))}
    assert labelled == {"PGC_SOURCE_STANZA": "old", "PGC_SOURCE_CONFIG": "/etc/pgbackrest/source.conf",
                        "PGC_RESTORE_SET": "20260101-000000F"}, "a volume's secrets stay on its repository host"


@pytest.mark.parametrize("bootstrap, message", [
    ({"fromBackup": {"repository": SOURCE_S3}}, "fromBackup.cluster is required"),
    ({"fromBackup": {"cluster": "old"}}, "fromBackup.repository is required"),
    (from_backup(targetTime="2026-01-31 12:00:00+00", backup="x"), "targetTime or backup, not both"),
    (from_backup({"s3": {"endpoint": "e", "bucket": "b"}}), "secretName is required"),
])
def test_pgc_pgbackrest_source_environment_refuses_an_incomplete_source(bootstrap, message):
    with pytest.raises(SpecError, match=message):
        pgbackrest.pgc_pgbackrest_source_environment(pgc(S3, bootstrap=bootstrap))


def test_pgc_patroni_backup_config_archives_and_restores_through_the_stanza():
    assert pgbackrest.pgc_patroni_backup_config(pgc()) == {}
    assert pgbackrest.pgc_patroni_backup_config(pgc(S3)) == {
        "bootstrap": {"dcs": {"postgresql": {"parameters": {
            "archive_mode": "on", "archive_command": "pgbackrest --stanza=db archive-push %p"}}}},
        "postgresql": {"recovery_conf": {"restore_command": 'pgbackrest --stanza=db archive-get %f "%p"'}},
    }


def test_pgc_patroni_backup_config_bootstraps_from_the_source_backup():
    fragment = pgbackrest.pgc_patroni_backup_config(pgc(S3, bootstrap=from_backup()))
    assert fragment["bootstrap"]["method"] == "pgc_from_backup"
    assert fragment["bootstrap"]["pgc_from_backup"] == {"command": "pgc-bootstrap-from-backup.sh",
                                                        "keep_existing_recovery_conf": True}
    assert fragment["bootstrap"]["dcs"]["postgresql"]["parameters"]["archive_mode"] == "on"
    without_own = pgbackrest.pgc_patroni_backup_config(pgc(bootstrap=from_backup()), scripts_dir="/opt/s/")
    assert without_own == {"bootstrap": {"method": "pgc_from_backup", "pgc_from_backup": {
        "command": "/opt/s/pgc-bootstrap-from-backup.sh", "keep_existing_recovery_conf": True}}}


def test_pgc_backup_tls_is_a_server_and_a_client_certificate_of_one_ca():
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    bundle = pgbackrest.pgc_backup_tls(pgc(S3), extra_names=["localhost", "127.0.0.1"])
    assert sorted(bundle) == ["ca.crt", "client.crt", "client.key", "tls.crt", "tls.key"]
    ca = x509.load_pem_x509_certificate(bundle["ca.crt"].encode())
    server = x509.load_pem_x509_certificate(bundle["tls.crt"].encode())
    client = x509.load_pem_x509_certificate(bundle["client.crt"].encode())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server.verify_directly_issued_by(ca)
    client.verify_directly_issued_by(ca)
    # The servers let in the client's common name alone; the server's is another.
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == pgbackrest.pgc_backup_tls_client_cn(pgc(S3))
    assert server.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value != pgbackrest.pgc_backup_tls_client_cn(pgc(S3))
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "db", "db.prod.svc", "db.prod.svc.cluster.local", "db-repo", "db-repo.prod.svc",
        "db-repo.prod.svc.cluster.local", "*.db-pods.prod.svc", "*.db-pods.prod.svc.cluster.local",
        "localhost", "127.0.0.1"}
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    # Each does one job: a stolen client key cannot serve, a server's cannot log in.
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert list(client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(x509.ExtensionNotFound):
        client.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    for crt, key in (("tls.crt", "tls.key"), ("client.crt", "client.key")):
        private = serialization.load_pem_private_key(bundle[key].encode(), password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        cert = x509.load_pem_x509_certificate(bundle[crt].encode())
        assert private.public_key().public_numbers() == cert.public_key().public_numbers()
    assert pgbackrest.pgc_backup_tls(pgc(S3))["ca.crt"] != bundle["ca.crt"], "a new CA each time"


GCS = {"repository": {"gcs": {"bucket": "pg-backups", "secretName": "db-backup-gcs", "caSecretName": "corp-ca"}}}
AZURE = {"repository": {"azure": {"account": "pgbackups", "container": "pg-backups", "secretName": "db-backup-azure"}}}


def test_pgc_pgbackrest_config_of_a_gcs_repository_reads_the_mounted_service_key():
    settings = pgbackrest.pgc_pgbackrest_settings(pgc(GCS))
    assert settings["type"] == "gcs" and settings["encryption"], "object storage is encrypted by default"
    assert settings["gcs"]["path"] == "/pgc/prod/db" and settings["store"] is settings["gcs"]
    for role, key, ca in (("pod", "/etc/pgc/backup-gcs/key.json", "/etc/pgc/backup-ca/ca.crt"),
                          ("job", "/etc/pgc/backup-gcs/key.json", "/etc/pgc/backup-ca/ca.crt")):
        g = parse(pgbackrest.pgc_pgbackrest_config(pgc(GCS), role=role))["global"]
        assert g["repo1-type"] == "gcs" and g["repo1-gcs-bucket"] == "pg-backups"
        assert g["repo1-gcs-key-type"] == "service" and g["repo1-gcs-key"] == key
        assert g["repo1-storage-ca-file"] == ca and g["repo1-cipher-type"] == "aes-256-cbc"
        assert "repo1-gcs-endpoint" not in g and "repo1-storage-port" not in g


def test_pgc_pgbackrest_config_of_a_gcs_emulator_keeps_the_port_in_the_endpoint():
    spec = {"repository": {"gcs": {"bucket": "b-1", "endpoint": "https://gcs.local:4443/", "keyType": "token",
                                   "secretName": "tok", "verifyTLS": False}}}
    g = parse(pgbackrest.pgc_pgbackrest_config(pgc(spec), role="local"))["global"]
    # pgBackRest's GCS driver ignores repo1-storage-port.
    assert g["repo1-gcs-endpoint"] == "gcs.local:4443" and "repo1-storage-port" not in g
    assert g["repo1-gcs-key-type"] == "token" and "repo1-gcs-key" not in g, "a token comes from the environment"
    assert g["repo1-storage-verify-tls"] == "n"
    assert pgbackrest.pgc_pgbackrest_environment(pgc(spec))[2] == {
        "name": "PGBACKREST_REPO1_GCS_KEY", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}}
    auto = {"repository": {"gcs": {"bucket": "b-1", "keyType": "auto"}}}
    assert "repo1-gcs-key" not in parse(pgbackrest.pgc_pgbackrest_config(pgc(auto)))["global"]
    assert [e["name"] for e in pgbackrest.pgc_pgbackrest_environment(pgc(auto))] == [
        "PGBACKREST_STANZA", "PGBACKREST_CONFIG", "PGBACKREST_REPO1_CIPHER_PASS"]
    assert pgbackrest.pgc_pgbackrest_volumes(pgc(auto)) == {"volumes": [], "mounts": []}


def test_pgc_pgbackrest_config_of_an_azure_repository():
    g = parse(pgbackrest.pgc_pgbackrest_config(pgc(AZURE), role="job"))["global"]
    assert {k: v for k, v in g.items() if k.startswith("repo1-")} == {
        "repo1-type": "azure", "repo1-path": "/pgc/prod/db", "repo1-azure-account": "pgbackups",
        "repo1-azure-container": "pg-backups", "repo1-azure-uri-style": "host", "repo1-storage-verify-tls": "y",
        "repo1-bundle": "y", "repo1-cipher-type": "aes-256-cbc", "repo1-retention-full": "7",
        "repo1-retention-full-type": "count"}
    emulator = {"repository": {"azure": {**AZURE["repository"]["azure"], "endpoint": "localhost:10000",
                                         "uriStyle": "path", "caSecretName": "ca"}}}
    g = parse(pgbackrest.pgc_pgbackrest_config(pgc(emulator), role="pod"))["global"]
    assert (g["repo1-azure-endpoint"], g["repo1-storage-port"], g["repo1-azure-uri-style"]) == ("localhost", "10000", "path")
    assert g["repo1-storage-ca-file"] == "/etc/pgc/backup-ca/ca.crt"
    env = pgbackrest.pgc_pgbackrest_environment(pgc(AZURE))
    assert env[2:] == [
        {"name": "PGBACKREST_REPO1_AZURE_KEY", "valueFrom": {"secretKeyRef": {"name": "db-backup-azure",
                                                                              "key": "account-key"}}},
        {"name": "PGBACKREST_REPO1_CIPHER_PASS", "valueFrom": {"secretKeyRef": {"name": "db-backup-encryption",
                                                                                "key": "passphrase"}}}]


@pytest.mark.parametrize("backup,message", [
    ({"repository": {"gcs": {"bucket": "b"}, "azure": {}}}, "exactly one of s3, gcs, azure or volume, not gcs and azure"),
    ({"repository": {"gcs": {"secretName": "k"}}}, "gcs.bucket is required"),
    ({"repository": {"gcs": {"bucket": "b", "secretName": "k", "keyType": "json"}}}, "keyType must be one of"),
    ({"repository": {"azure": {"account": "a", "secretName": "k"}}}, "azure.container is required"),
    ({"repository": {"azure": {"account": "a", "container": "c", "uriStyle": "v"}}}, "uriStyle must be host or path"),
])
def test_pgc_pgbackrest_config_refuses_an_incomplete_object_store(backup, message):
    with pytest.raises(SpecError, match=message):
        pgbackrest.pgc_pgbackrest_config(pgc(backup))


@pytest.mark.parametrize("backup,message", [
    ({"repository": {"gcs": {"bucket": "b"}}}, "gcs.secretName is required"),
    ({"repository": {"azure": {"account": "a", "container": "c"}}}, "azure.secretName is required"),
])
def test_pgc_pgbackrest_environment_wants_the_object_store_secret(backup, message):
    with pytest.raises(SpecError, match=message):
        pgbackrest.pgc_pgbackrest_environment(pgc(backup))


def test_pgc_pgbackrest_volumes_mount_the_ca_and_the_gcs_key():
    out = pgbackrest.pgc_pgbackrest_volumes(pgc(GCS))
    assert out["volumes"] == [
        {"name": "backup-ca", "secret": {"secretName": "corp-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"name": "backup-gcs", "secret": {"secretName": "db-backup-gcs", "items": [{"key": "key.json", "path": "key.json"}],
                                          "defaultMode": 0o440}}]
    assert out["mounts"] == [{"name": "backup-ca", "mountPath": "/etc/pgc/backup-ca", "readOnly": True},
                             {"name": "backup-gcs", "mountPath": "/etc/pgc/backup-gcs", "readOnly": True}]
    s3 = {"repository": {"s3": {**S3["repository"]["s3"], "caSecretName": "s3-ca"}}}
    assert [v["name"] for v in pgbackrest.pgc_pgbackrest_volumes(pgc(s3))["volumes"]] == ["backup-ca"]
    for backup in (S3, VOLUME, AZURE, None):
        assert pgbackrest.pgc_pgbackrest_volumes(pgc(backup)) == {"volumes": [], "mounts": []}


def test_a_gcs_or_azure_source_has_its_own_files_and_variables():
    from_gcs = pgc(VOLUME, bootstrap={"fromBackup": {"cluster": "old", "repository": GCS["repository"]}})
    conf = parse(pgbackrest.pgc_pgbackrest_config(from_gcs, role="source"))
    assert conf.sections() == ["global", "old"]
    assert conf["global"]["repo1-gcs-key"] == "/etc/pgc/source-backup-gcs/key.json"
    assert conf["global"]["repo1-storage-ca-file"] == "/etc/pgc/source-backup-ca/ca.crt"
    mounts = pgbackrest.pgc_pgbackrest_volumes(from_gcs)["mounts"]
    assert [(m["name"], m["mountPath"]) for m in mounts] == [
        ("source-backup-ca", "/etc/pgc/source-backup-ca"), ("source-backup-gcs", "/etc/pgc/source-backup-gcs")]
    # The source's files serve the bootstrap alone: members start without them once the source is gone.
    assert all(v["secret"]["optional"] for v in pgbackrest.pgc_pgbackrest_volumes(from_gcs)["volumes"])
    assert not any("optional" in v["secret"] for v in pgbackrest.pgc_pgbackrest_volumes(pgc(GCS))["volumes"])
    # A backup Job or the pgBackRest server reaches only the cluster's own repository.
    assert pgbackrest.pgc_pgbackrest_volumes(from_gcs, source=False) == {"volumes": [], "mounts": []}
    assert [e["name"] for e in pgbackrest.pgc_pgbackrest_source_environment(from_gcs)] == [
        "PGC_SOURCE_STANZA", "PGC_SOURCE_CONFIG", "PGC_SOURCE_REPO1_CIPHER_PASS"]

    from_azure = pgc(GCS, bootstrap={"fromBackup": {"cluster": "old", "repository": AZURE["repository"],
                                                    "encryptionSecretName": "old-enc"}})
    env = pgbackrest.pgc_pgbackrest_source_environment(from_azure)
    assert env[2:] == [
        {"name": "PGC_SOURCE_REPO1_AZURE_KEY", "valueFrom": {"secretKeyRef": {"name": "db-backup-azure",
                                                                              "key": "account-key", "optional": True}}},
        {"name": "PGC_SOURCE_REPO1_CIPHER_PASS", "valueFrom": {"secretKeyRef": {"name": "old-enc",
                                                                                "key": "passphrase", "optional": True}}}]
    # The cluster's own GCS repository and the Azure source: only the cluster's files are mounted.
    assert [v["name"] for v in pgbackrest.pgc_pgbackrest_volumes(from_azure)["volumes"]] == ["backup-ca", "backup-gcs"]
    assert parse(pgbackrest.pgc_pgbackrest_config(from_azure, role="source"))["global"]["repo1-type"] == "azure"


def test_pgc_backup_tls_fits_the_longest_names_kubernetes_allows():
    long = pgc(S3)
    long["namespace"] = "n" * 63
    long["name"] = "c" * 40
    bundle = pgbackrest.pgc_backup_tls(long)
    assert bundle["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("value", ["false", "no", "0", "", 0, "off"])
def test_a_verify_tls_that_is_not_a_boolean_never_turns_checks_off(value):
    backup = {"repository": {"s3": {**S3["repository"]["s3"], "verifyTLS": value}}}
    with pytest.raises(SpecError, match=r"^spec\.backup\.repository\.s3\.verifyTLS must be true or false"):
        pgbackrest.pgc_pgbackrest_settings(pgc(backup))


def test_an_encryption_that_is_not_a_boolean_never_turns_the_cipher_off():
    with pytest.raises(SpecError, match=r"^spec\.backup\.encryption must be true or false, not 'false'"):
        pgbackrest.pgc_pgbackrest_settings(pgc({**S3, "encryption": "false"}))


def test_the_source_settings_name_the_fields_of_spec_bootstrap_from_backup():
    source = {"cluster": "old", "repository": {"s3": {**S3["repository"]["s3"], "verifyTLS": "false"}}}
    with pytest.raises(SpecError, match=r"^spec\.bootstrap\.fromBackup\.repository\.s3\.verifyTLS must be true"):
        pgbackrest.pgc_pgbackrest_source_environment(pgc(bootstrap={"fromBackup": source}))
    with pytest.raises(SpecError, match=r"^spec\.bootstrap\.fromBackup\.repository must be a mapping"):
        pgbackrest.pgc_pgbackrest_source_environment(pgc(bootstrap={"fromBackup": {"cluster": "old",
                                                                                   "repository": "s3://b"}}))


def test_repository_errors_accepts_what_the_settings_use():
    for backup in (S3, VOLUME, {"repository": {"gcs": {"bucket": "bkt", "keyType": "auto"}}},
                   {"repository": {"azure": {"account": "acct", "container": "pg", "secretName": "az",
                                             "verifyTLS": False, "caSecretName": ""}}}):
        assert pgbackrest.repository_errors(backup["repository"], "spec.backup.repository") == []


@pytest.mark.parametrize("repository, message", [
    ("s3://bucket", "spec.bootstrap.fromBackup.repository must be a mapping with one of s3, gcs, azure or volume, "
                    "not a string"),
    ({}, "spec.bootstrap.fromBackup.repository takes exactly one of s3, gcs, azure or volume"),
    ({"s4": {}}, "spec.bootstrap.fromBackup.repository.s4 is not a kind of repository"),
    ({"s3": "bucket"}, "spec.bootstrap.fromBackup.repository.s3 must be a mapping, not a string"),
    ({"s3": {**S3["repository"]["s3"], "verifyTLS": "false"}},
     "spec.bootstrap.fromBackup.repository.s3.verifyTLS must be true or false, not a string"),
    ({"s3": {**S3["repository"]["s3"], "bucket": 42}},
     "spec.bootstrap.fromBackup.repository.s3.bucket must be a string, not a number"),
    ({"s3": {**S3["repository"]["s3"], "buckets": "x"}},
     "spec.bootstrap.fromBackup.repository.s3.buckets is not a field of a s3 repository"),
    ({"s3": {"bucket": "b"}}, "spec.bootstrap.fromBackup.repository.s3.endpoint is required"),
    ({"s3": {**S3["repository"]["s3"], "uriStyle": "vhost"}},
     "spec.bootstrap.fromBackup.repository.s3.uriStyle must be one of host, path, not 'vhost'"),
    ({"s3": {**S3["repository"]["s3"], "secretName": "Keys_With_Caps"}},
     "spec.bootstrap.fromBackup.repository.s3.secretName 'Keys_With_Caps' is not a Kubernetes object name"),
    ({"s3": {**S3["repository"]["s3"], "endpoint": "host:port"}},
     "spec.bootstrap.fromBackup.repository.s3.endpoint 'host:port' is not a host or host:port"),
    ({"gcs": {"bucket": "bkt"}}, "spec.bootstrap.fromBackup.repository.gcs.secretName is required"),
    ({"volume": {"size": "10GB"}}, "spec.bootstrap.fromBackup.repository.volume.size '10GB' must be a size"),
    ({"volume": {}, "s3": S3["repository"]["s3"]},
     "spec.bootstrap.fromBackup.repository takes exactly one of s3, gcs, azure or volume, not s3 and volume"),
])
def test_repository_errors_names_the_field(repository, message):
    errors = pgbackrest.repository_errors(repository, "spec.bootstrap.fromBackup.repository")
    assert any(message in error for error in errors), errors
