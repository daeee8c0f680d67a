# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Certificates the operator issues: a CA of one cluster and one certificate it signs, as the PEM
text of a Secret (``ca.crt``, ``tls.crt``, ``tls.key``). The CA's key is not kept: a certificate
is issued anew, with a new CA, only when its Secret is gone.

Two bundles per cluster: PostgreSQL's server certificate (``pgc_server_tls``, the Secret
``<name>-tls``) and the pgBackRest one (pgbackrest.pgc_backup_tls). Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime
import ipaddress

from ansible_collections.postgres.cluster.plugins.module_utils.names import NAME_SUFFIXES

VALIDITY_DAYS = 3650
SERVER_CA_NAME = "pgc CA"
# The keys of a server certificate's Secret, the operator's or the user's (spec.tls.secretName, for
# example one cert-manager writes).
SERVER_TLS_KEYS = ("tls.crt", "tls.key", "ca.crt")
# PostgreSQL's files, beside its data directory: the dynamic configuration names them relative to
# it (../tls/...), the same on every member wherever the data directory is.
SERVER_TLS_DIR = "tls"
# Where the Jobs that connect to the database find the CA.
CLIENT_CA_DIR = "/etc/pgc/tls"


def pgc_server_tls_secret(pgc):
    """The Secret of PostgreSQL's server certificate: the user's, or the one the operator issues."""
    return ((pgc["spec"].get("tls") or {}).get("secretName")) or pgc["names"]["server_tls"]


def issue(ca_common_name, owner, common_name, names, server=True, client=False, days=VALIDITY_DAYS):
    """A new CA named ``ca_common_name`` (``owner``, namespace/name, as its organizational unit)
    and a certificate for ``common_name`` and the DNS names or addresses ``names``, for TLS servers
    and/or clients. Returns ``{"ca.crt", "tls.crt", "tls.key"}``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    # An hour back: clocks of the nodes may differ a little.
    not_before = now - datetime.timedelta(hours=1)
    not_after = now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    # A common name holds at most 64 characters; a namespace alone may have 63. The cluster goes in
    # the organizational unit, which has the same limit, cut to fit.
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_common_name),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, owner[:64])])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())
    alt_names = []
    for entry in names:
        try:
            address = ipaddress.ip_address(entry)
        except ValueError:
            alt_names.append(x509.DNSName(entry))
        else:
            # pgBackRest matches the host it connects to against DNS names only: an address is both.
            alt_names += [x509.IPAddress(address), x509.DNSName(entry)]
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
               .issuer_name(ca_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    leaf = builder.sign(ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    return {
        "ca.crt": ca.public_bytes(pem).decode(),
        "tls.crt": leaf.public_bytes(pem).decode(),
        "tls.key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
    }


def service_names(host, namespace):
    """The names a Service is reached by, from its own namespace and from others."""
    return [host, "%s.%s" % (host, namespace), "%s.%s.svc" % (host, namespace),
            "%s.%s.svc.cluster.local" % (host, namespace)]


def pgc_server_names(pgc, extra_names=None):
    """The names PostgreSQL's server certificate holds: the read-write and read-only Services and
    every member by the headless Service."""
    name, namespace = pgc["name"], pgc["namespace"]
    names = service_names(name, namespace) + service_names(name + NAME_SUFFIXES["service_ro"], namespace)
    headless = name + NAME_SUFFIXES["service_headless"]
    names += ["*.%s.%s.svc" % (headless, namespace), "*.%s.%s.svc.cluster.local" % (headless, namespace)]
    names += [str(n) for n in (extra_names or []) if str(n)]
    return list(dict.fromkeys(names))


def pgc_server_tls(pgc, extra_names=None):
    """A new CA and PostgreSQL's server certificate of a cluster (the Secret ``<name>-tls``): clients
    check the read-write Service's name against it with sslmode=verify-full and ``ca.crt``."""
    return issue(SERVER_CA_NAME, "%s/%s" % (pgc["namespace"], pgc["name"]), pgc["name"],
                 pgc_server_names(pgc, extra_names), server=True, client=False)


# spec.tls.issuerRef: cert-manager issues the server certificate into the Secret <name>-tls, from a
# Certificate the operator applies; the operator never writes that Secret itself.
CERT_MANAGER_GROUP = "cert-manager.io"
CERTIFICATE_API_VERSION = CERT_MANAGER_GROUP + "/v1"
CERTIFICATE_KIND = "Certificate"
# 90 days, renewed 30 days before they end, with a new key each time. The kubelet updates the
# members' files in place; PostgreSQL reads them when it reloads its configuration or restarts.
CERTIFICATE_DURATION = "2160h"
CERTIFICATE_RENEW_BEFORE = "720h"
CERTIFICATE_PRIVATE_KEY = {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
CERTIFICATE_USAGES = ("server auth", "digital signature", "key encipherment")


def pgc_server_tls_source(pgc):
    """Where PostgreSQL's server certificate comes from: ``secret`` (the user's Secret,
    spec.tls.secretName), ``cert-manager`` (spec.tls.issuerRef) or ``operator`` (it issues one)."""
    tls = pgc["spec"].get("tls") or {}
    if tls.get("secretName"):
        return "secret"
    if tls.get("issuerRef") is not None:
        return "cert-manager"
    return "operator"


def pgc_server_certificate(pgc):
    """The cert-manager Certificate ``<name>-tls`` of a cluster with spec.tls.issuerRef: the names
    of pgc_server_names, signed by that issuer, written to the Secret of the same name (labelled as
    the cluster's objects are) with the keys tls.crt, tls.key and ca.crt."""
    ref = pgc["spec"]["tls"]["issuerRef"]
    name = pgc["names"]["server_tls"]
    return {
        "apiVersion": CERTIFICATE_API_VERSION,
        "kind": CERTIFICATE_KIND,
        "metadata": {
            "name": name,
            "namespace": pgc["namespace"],
            "labels": dict(pgc["labels"]),
            "ownerReferences": [dict(pgc["owner_reference"])],
        },
        "spec": {
            "secretName": name,
            "secretTemplate": {"labels": dict(pgc["labels"])},
            "commonName": pgc["name"],
            "dnsNames": pgc_server_names(pgc),
            "duration": CERTIFICATE_DURATION,
            "renewBefore": CERTIFICATE_RENEW_BEFORE,
            "privateKey": dict(CERTIFICATE_PRIVATE_KEY),
            "usages": list(CERTIFICATE_USAGES),
            "issuerRef": {"name": ref["name"], "kind": ref["kind"], "group": ref["group"]},
        },
    }
