"""PostgreSQL's server certificate: signed by the cluster's own CA, for the names clients use."""

from __future__ import annotations

import base64
import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.postgres.cluster.plugins.module_utils.pgbackrest import pgc_backup_leaves, pgc_backup_tls
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize
from ansible_collections.postgres.cluster.plugins.module_utils.tls import (
    ISSUED_FOR_ANNOTATION,
    RENEW_AFTER_ANNOTATION,
    pgc_certificate_secrets,
    pgc_certificates,
    pgc_certificates_due,
    pgc_server_names,
    pgc_server_tls,
    pgc_server_tls_secret,
    sign,
    pgc_server_certificate,
    pgc_server_names,
    pgc_server_tls,
    pgc_server_tls_secret,
    pgc_server_tls_source,
)

from .samples import cluster

S3 = {"repository": {"s3": {"endpoint": "s3.eu-west-1.amazonaws.com", "bucket": "pg-backups",
                            "region": "eu-west-1", "secretName": "db-backup-s3"}}}


def test_the_server_certificate_names_the_services_and_members_and_chains_to_its_ca():
    bundle = pgc_server_tls(pgc_normalize(cluster()))
    ca = x509.load_pem_x509_certificate(bundle["ca.crt"].encode())
    leaf = x509.load_pem_x509_certificate(bundle["tls.crt"].encode())
    ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    for name in ("db", "db.prod.svc", "db-ro.prod.svc.cluster.local", "*.db-pods.prod.svc"):
        assert name in names
    # A server certificate only: it cannot log a client in where certificates are trusted.
    assert leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH])
    assert "PRIVATE KEY" in bundle["tls.key"] and "PRIVATE KEY" not in bundle["ca.crt"] + bundle["tls.crt"]
    assert pgc_server_tls(pgc_normalize(cluster()))["ca.crt"] != bundle["ca.crt"], "a new CA each time"


def test_the_users_secret_replaces_the_operators():
    assert pgc_server_tls_secret(pgc_normalize(cluster())) == "db-tls"
    assert pgc_server_tls_secret(pgc_normalize(cluster(tls={"secretName": "db-cert-manager"}))) == "db-cert-manager"


# --- the operator's certificates: one CA per cluster, kept; renewed before they end ----------------

NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.timezone.utc)


def as_secrets(written, before=None):
    """Secrets as the API returns them (base64 data, annotations) after ``written`` is applied."""
    secrets = dict(before or {})
    for name, update in written.items():
        secrets[name] = {"metadata": {"name": name, "annotations": update["annotations"]},
                         "data": {k: base64.b64encode(v.encode()).decode() for k, v in update["data"].items()}}
    return secrets


def data(secrets, name):
    return {k: base64.b64decode(v).decode() for k, v in secrets[name]["data"].items()}


def cert(pem):
    return x509.load_pem_x509_certificates(pem.encode())


def certified(pgc, names, leaves=(), now=NOW):
    secrets = dict.fromkeys(names)
    return as_secrets(pgc_certificates(pgc, secrets, leaves, now), secrets)


def test_a_new_cluster_gets_a_ca_and_every_certificate_signed_by_it():
    pgc = pgc_normalize(cluster(backup=S3))
    leaves = pgc_backup_leaves(pgc)
    names = ["db-ca"] + list(pgc_certificate_secrets(pgc, leaves))
    assert names == ["db-ca", "db-tls", "db-superuser-tls", "db-backup-tls"]
    secrets = certified(pgc, names, leaves)
    ca = cert(data(secrets, "db-ca")["tls.crt"])[0]
    for name, crt, cn, usage in (("db-tls", "tls.crt", "db", ExtendedKeyUsageOID.SERVER_AUTH),
                                 ("db-superuser-tls", "tls.crt", "postgres", ExtendedKeyUsageOID.CLIENT_AUTH),
                                 ("db-backup-tls", "tls.crt", "db-backup-tls", ExtendedKeyUsageOID.SERVER_AUTH),
                                 ("db-backup-tls", "client.crt", "pgc-backup", ExtendedKeyUsageOID.CLIENT_AUTH)):
        leaf = cert(data(secrets, name)[crt])[0]
        leaf.verify_directly_issued_by(ca)
        assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
        assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
        assert data(secrets, name)["ca.crt"] == data(secrets, "db-ca")["ca.crt"]
        # A year, renewed a month before it ends.
        assert leaf.not_valid_after_utc - NOW == datetime.timedelta(days=365)
        assert secrets[name]["metadata"]["annotations"][RENEW_AFTER_ANNOTATION] == "2027-10-30T12:00:00Z"
    # The CA's key is only in its own Secret.
    assert all("PRIVATE KEY" not in data(secrets, n)["ca.crt"] for n in names)
    assert not pgc_certificates_due(pgc, secrets, leaves, NOW)
    assert pgc_certificates(pgc, secrets, leaves, NOW) == {}, "nothing to write: a reconcile writes nothing"


def test_a_certificate_is_renewed_a_month_before_it_ends_with_the_same_ca():
    pgc = pgc_normalize(cluster())
    names = ["db-ca", "db-tls", "db-superuser-tls"]
    secrets = certified(pgc, names)
    later = NOW + datetime.timedelta(days=336)
    assert not pgc_certificates_due(pgc, secrets, now=NOW + datetime.timedelta(days=334))
    assert pgc_certificates_due(pgc, secrets, now=later)
    written = pgc_certificates(pgc, secrets, now=later)
    assert sorted(written) == ["db-superuser-tls", "db-tls"], "the CA stays"
    renewed = as_secrets(written, secrets)
    old, new = cert(data(secrets, "db-tls")["tls.crt"])[0], cert(data(renewed, "db-tls")["tls.crt"])[0]
    assert new.serial_number != old.serial_number and new.not_valid_after_utc > old.not_valid_after_utc
    assert data(renewed, "db-tls")["ca.crt"] == data(secrets, "db-tls")["ca.crt"], "clients keep trusting it"
    assert not pgc_certificates_due(pgc, renewed, now=later)


def test_the_ca_is_replaced_before_it_ends_and_the_old_one_stays_trusted_while_valid():
    pgc = pgc_normalize(cluster())
    names = ["db-ca", "db-tls", "db-superuser-tls"]
    secrets = certified(pgc, names)
    # Eight years on, certificates renewed yearly under the first CA.
    when = NOW
    for _ in range(8):
        when += datetime.timedelta(days=336)
        secrets = as_secrets(pgc_certificates(pgc, secrets, now=when), secrets)
    first = cert(data(secrets, "db-ca")["tls.crt"])[0]
    when = first.not_valid_after_utc - datetime.timedelta(days=729)
    assert pgc_certificates_due(pgc, secrets, now=when)
    secrets = as_secrets(pgc_certificates(pgc, secrets, now=when), secrets)
    second = cert(data(secrets, "db-ca")["tls.crt"])[0]
    assert second.serial_number != first.serial_number
    bundle = cert(data(secrets, "db-tls")["ca.crt"])
    assert [c.serial_number for c in bundle] == [second.serial_number, first.serial_number]
    # The next renewal signs with the new CA; the old one leaves ca.crt once it has ended.
    when += datetime.timedelta(days=336)
    secrets = as_secrets(pgc_certificates(pgc, secrets, now=when), secrets)
    cert(data(secrets, "db-tls")["tls.crt"])[0].verify_directly_issued_by(second)
    when = first.not_valid_after_utc + datetime.timedelta(minutes=1)
    assert pgc_certificates_due(pgc, secrets, now=when)
    secrets = as_secrets(pgc_certificates(pgc, secrets, now=when), secrets)
    assert [c.serial_number for c in cert(data(secrets, "db-tls")["ca.crt"])] == [second.serial_number]


def test_a_certificate_of_another_ca_missing_keys_or_other_names_is_issued_anew():
    pgc = pgc_normalize(cluster(backup=S3))
    leaves = pgc_backup_leaves(pgc)
    names = ["db-ca"] + list(pgc_certificate_secrets(pgc, leaves))
    secrets = certified(pgc, names, leaves)
    # A Secret of the earlier layout: one certificate of a CA that was thrown away.
    legacy = pgc_backup_tls(pgc)
    del legacy["client.crt"], legacy["client.key"]
    secrets["db-backup-tls"] = {"metadata": {"name": "db-backup-tls"},
                                "data": {k: base64.b64encode(v.encode()).decode() for k, v in legacy.items()}}
    assert pgc_certificates_due(pgc, secrets, leaves, NOW)
    written = pgc_certificates(pgc, secrets, leaves, NOW)
    assert sorted(written) == ["db-backup-tls"]
    ca = cert(data(secrets, "db-ca")["tls.crt"])[0]
    for crt in ("tls.crt", "client.crt"):
        cert(written["db-backup-tls"]["data"][crt])[0].verify_directly_issued_by(ca)
    # A Secret changed by hand (its annotation names what it was issued for) is looked at.
    secrets = as_secrets(written, secrets)
    secrets["db-tls"]["metadata"]["annotations"][ISSUED_FOR_ANNOTATION] = "something else"
    assert pgc_certificates_due(pgc, secrets, leaves, NOW)

    # A certificate replaced by hand with one that ends soon, its annotations left as they were.
    secrets = as_secrets(pgc_certificates(pgc, secrets, leaves, NOW), secrets)
    assert not pgc_certificates_due(pgc, secrets, leaves, NOW)
    ca_data = data(secrets, "db-ca")
    short, key = sign(ca_data, "db", pgc_server_names(pgc), now=NOW, days=10)
    replaced = dict(data(secrets, "db-tls"), **{"tls.crt": short, "tls.key": key})
    secrets["db-tls"] = {"metadata": secrets["db-tls"]["metadata"],
                         "data": {k: base64.b64encode(v.encode()).decode() for k, v in replaced.items()}}
    assert pgc_certificates_due(pgc, secrets, leaves, NOW)
    renewed = pgc_certificates(pgc, secrets, leaves, NOW)["db-tls"]["data"]["tls.crt"]
    assert cert(renewed)[0].not_valid_after_utc - NOW == datetime.timedelta(days=365)


def test_client_certificates_for_the_application_role_when_the_spec_asks():
    assert "db-app-tls" not in pgc_certificate_secrets(pgc_normalize(cluster()))
    pgc = pgc_normalize(cluster(tls={"clientAuth": "certificate"}, credentials={"appUser": "shop"}))
    secrets = certified(pgc, ["db-ca"] + list(pgc_certificate_secrets(pgc)))
    leaf = cert(data(secrets, "db-app-tls")["tls.crt"])[0]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "shop"
    # A user's server certificate: the operator issues none.
    assert "db-tls" not in pgc_certificate_secrets(pgc_normalize(cluster(tls={"secretName": "mine"})))
def test_the_server_certificate_comes_from_the_users_secret_cert_manager_or_the_operator():
    assert pgc_server_tls_source(pgc_normalize(cluster())) == "operator"
    assert pgc_server_tls_source(pgc_normalize(cluster(tls={"secretName": "db-cert"}))) == "secret"
    cert_manager = pgc_normalize(cluster(tls={"issuerRef": {"name": "ca"}}))
    assert pgc_server_tls_source(cert_manager) == "cert-manager"
    # cert-manager writes the Secret the operator would have issued.
    assert pgc_server_tls_secret(cert_manager) == "db-tls"


def test_the_certificate_asks_cert_manager_for_the_servers_names_in_the_secret_the_members_mount():
    pgc = pgc_normalize(cluster(tls={"issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}}))
    certificate = pgc_server_certificate(pgc)
    assert (certificate["apiVersion"], certificate["kind"]) == ("cert-manager.io/v1", "Certificate")
    meta = certificate["metadata"]
    assert (meta["name"], meta["namespace"]) == ("db-tls", "prod")
    assert meta["labels"] == pgc["labels"] and meta["ownerReferences"] == [pgc["owner_reference"]]
    assert certificate["spec"] == {
        "secretName": "db-tls",
        "secretTemplate": {"labels": pgc["labels"]},
        "commonName": "db",
        "dnsNames": pgc_server_names(pgc),
        "duration": "2160h",
        "renewBefore": "720h",
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "usages": ["server auth", "digital signature", "key encipherment"],
        "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"},
    }
    assert "db-ro.prod.svc" in certificate["spec"]["dnsNames"] and "*.db-pods.prod.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["secretName"] == pgc_server_tls_secret(pgc)


def test_the_certificate_shares_nothing_with_the_fact():
    pgc = pgc_normalize(cluster(tls={"issuerRef": {"name": "ca"}}))
    certificate = pgc_server_certificate(pgc)
    certificate["metadata"]["labels"]["x"] = "y"
    certificate["spec"]["secretTemplate"]["labels"]["x"] = "y"
    certificate["metadata"]["ownerReferences"][0]["uid"] = "other"
    assert "x" not in pgc["labels"] and pgc["owner_reference"]["uid"] == "u-1"
    assert pgc_server_certificate(pgc)["spec"]["privateKey"]["size"] == 256
