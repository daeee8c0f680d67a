"""PostgreSQL's server certificate: signed by the cluster's own CA, for the names clients use."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize
from ansible_collections.postgres.cluster.plugins.module_utils.tls import pgc_server_tls, pgc_server_tls_secret

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
