"""PostgreSQL's server certificate: signed by the cluster's own CA, for the names clients use."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize
from ansible_collections.postgres.cluster.plugins.module_utils.tls import (
    pgc_server_certificate,
    pgc_server_names,
    pgc_server_tls,
    pgc_server_tls_secret,
    pgc_server_tls_source,
)

from .samples import cluster


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
