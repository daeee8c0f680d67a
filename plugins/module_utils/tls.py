# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Certificates of a cluster: its own CA, kept in the Secret ``<name>-ca``, and the certificates
it signs, each kept in a Secret the pods mount. Nothing here does I/O.

* ``<name>-ca``: the CA (``tls.crt``, ``tls.key``) and ``ca.crt``, the CAs clients and servers
  trust: the current one and, after a rotation, the previous while it is valid. Never mounted.
* ``<name>-tls``: PostgreSQL's server certificate, unless the user names a Secret or an issuer.
* ``<name>-superuser-tls``: the superuser's client certificate. The members (pg_rewind, Patroni's
  own connections to the leader) and the logical backup Jobs log in with it; from outside a pod the
  superuser is let in with a certificate only, unless spec.credentials.superuserRemoteLogin says
  password. Its ``ca.crt`` is also the CA PostgreSQL checks clients' certificates with.
* ``<name>-app-tls``: the application role's client certificate, when spec.tls.clientAuth asks
  for certificates.
* ``<name>-backup-tls``: pgBackRest's server certificate (``tls.crt``) and its client certificate
  (``client.crt``, the common name the servers let in).

Each certificate is issued anew when it is missing, ends within ``LEAF_RENEW_DAYS``, no longer
names what it must, or was not signed by a CA the cluster trusts; ``ca.crt`` follows the CA
Secret's. The CA itself is replaced ``CA_RENEW_DAYS`` before its end, longer than a certificate
lives, so that every certificate it signed is renewed under the new one before it ends. Keys are
ECDSA P-256.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json

from ansible_collections.postgres.cluster.plugins.module_utils.names import NAME_SUFFIXES

CA_VALIDITY_DAYS = 3650
CA_RENEW_DAYS = 730
LEAF_VALIDITY_DAYS = 365
LEAF_RENEW_DAYS = 30
SERVER_CA_NAME = "pgc CA"
# The keys of a server certificate's Secret, the operator's or the user's (spec.tls.secretName, for
# example one cert-manager writes).
SERVER_TLS_KEYS = ("tls.crt", "tls.key", "ca.crt")
# PostgreSQL's files, beside its data directory: the dynamic configuration names them relative to
# it (../tls/...), the same on every member wherever the data directory is.
SERVER_TLS_DIR = "tls"
# The superuser's client certificate, beside it (../superuser-tls/...).
SUPERUSER_TLS_DIR = "superuser-tls"
# Where the Jobs that connect to the database find the CA and the superuser's certificate.
CLIENT_CA_DIR = "/etc/pgc/tls"
CLIENT_TLS_DIR = "/etc/pgc/superuser-tls"
# spec.tls.clientAuth: how roles other than the replication role log in from outside the pod.
CLIENT_AUTH = ("password", "certificate", "passwordAndCertificate")
# spec.credentials.superuserRemoteLogin: how the superuser does.
SUPERUSER_REMOTE_LOGIN = ("certificate", "password")


def pgc_server_tls_secret(pgc):
    """The Secret of PostgreSQL's server certificate: the user's, or the one the operator issues."""
    return ((pgc["spec"].get("tls") or {}).get("secretName")) or pgc["names"]["server_tls"]


# --- issuing -------------------------------------------------------------------------------------

def _x509():
    # Imported when used: the operator's other steps never pay for it.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _pem_key(key):
    _, _, serialization, _, _, _ = _x509()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_cert(cert):
    _, _, serialization, _, _, _ = _x509()
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _now(now=None):
    return now or datetime.datetime.now(datetime.timezone.utc)


def new_ca(common_name, owner, now=None, days=CA_VALIDITY_DAYS):
    """A new CA named ``common_name`` (``owner``, namespace/name, as its organizational unit):
    ``{"tls.crt", "tls.key"}``, PEM text."""
    x509, hashes, _, ec, _, NameOID = _x509()
    now = _now(now)
    key = ec.generate_private_key(ec.SECP256R1())
    # A common name holds at most 64 characters; a namespace alone may have 63. The cluster goes in
    # the organizational unit, which has the same limit, cut to fit.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, owner[:64])])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            # An hour back: clocks of the nodes may differ a little.
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return {"tls.crt": _pem_cert(cert), "tls.key": _pem_key(key)}


def _alt_names(names):
    x509 = _x509()[0]
    alt_names = []
    for entry in names:
        try:
            address = ipaddress.ip_address(entry)
        except ValueError:
            alt_names.append(x509.DNSName(entry))
        else:
            # pgBackRest matches the host it connects to against DNS names only: an address is both.
            alt_names += [x509.IPAddress(address), x509.DNSName(entry)]
    return alt_names


def sign(ca, common_name, names=(), server=True, client=False, now=None, days=LEAF_VALIDITY_DAYS):
    """A certificate signed by ``ca`` (``{"tls.crt", "tls.key"}`` of new_ca) for ``common_name``
    and the DNS names or addresses ``names``, for TLS servers and/or clients. Returns the PEM text
    of the certificate and of its key."""
    x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID = _x509()
    now = _now(now)
    ca_cert = x509.load_pem_x509_certificate(ca["tls.crt"].encode())
    ca_key = serialization.load_pem_private_key(ca["tls.key"].encode(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    alt_names = _alt_names(names)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return _pem_cert(builder.sign(ca_key, hashes.SHA256())), _pem_key(key)


def issue(ca_common_name, owner, common_name, names, server=True, client=False, days=LEAF_VALIDITY_DAYS):
    """A new CA and one certificate it signs, with nothing kept: ``{"ca.crt", "tls.crt", "tls.key"}``.
    For clusters run without the operator (the tests' fixtures) and the benchmarks."""
    ca = new_ca(ca_common_name, owner)
    crt, key = sign(ca, common_name, names, server=server, client=client, days=days)
    return {"ca.crt": ca["tls.crt"], "tls.crt": crt, "tls.key": key}


# --- a cluster's certificates --------------------------------------------------------------------

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


def _owner(pgc):
    return "%s/%s" % (pgc["namespace"], pgc["name"])


def pgc_server_tls(pgc, extra_names=None):
    """A new CA and PostgreSQL's server certificate, nothing kept (a cluster run without the operator)."""
    return issue(SERVER_CA_NAME, _owner(pgc), pgc["name"], pgc_server_names(pgc, extra_names), server=True)


# spec.tls.issuerRef: cert-manager issues the server certificate into the Secret <name>-tls, from a
# Certificate the operator applies; the operator never writes that Secret itself.
CERT_MANAGER_GROUP = "cert-manager.io"
CERTIFICATE_API_VERSION = CERT_MANAGER_GROUP + "/v1"
CERTIFICATE_KIND = "Certificate"
# 90 days, renewed 30 days before they end, with a new key each time. The kubelet updates the
# members' files in place, and pgc-reload.py has Patroni reload PostgreSQL.
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


def pgc_client_auth(pgc):
    """spec.tls.clientAuth: password, certificate or passwordAndCertificate."""
    return (pgc["spec"].get("tls") or {}).get("clientAuth") or "password"


def pgc_superuser_remote_login(pgc):
    """spec.credentials.superuserRemoteLogin: certificate or password."""
    return pgc["spec"]["credentials"].get("superuserRemoteLogin") or "certificate"


class Leaf:
    """One certificate of a Secret: its keys (``<prefix>.crt``, ``<prefix>.key``), common name,
    names and uses."""

    def __init__(self, prefix, common_name, names=(), server=False, client=False):
        self.prefix, self.common_name, self.names = prefix, common_name, list(names)
        self.server, self.client = server, client

    @property
    def keys(self):
        return (self.prefix + ".crt", self.prefix + ".key")


def pgc_certificate_secrets(pgc, backup_leaves=()):
    """The Secrets of certificates the operator keeps for a cluster: ``{name: [Leaf, ...]}``.
    ``backup_leaves`` are pgBackRest's (pgbackrest.pgc_backup_leaves), when the cluster backs up."""
    names, credentials = pgc["names"], pgc["spec"]["credentials"]
    secrets = {}
    if pgc_server_tls_source(pgc) == "operator":
        secrets[names["server_tls"]] = [Leaf("tls", pgc["name"], pgc_server_names(pgc), server=True)]
    secrets[names["superuser_tls"]] = [Leaf("tls", credentials["superuser"], client=True)]
    if pgc_client_auth(pgc) != "password":
        secrets[names["app_tls"]] = [Leaf("tls", credentials["appUser"], client=True)]
    if backup_leaves:
        secrets[names["backup_tls"]] = list(backup_leaves)
    return secrets


def _load(pem):
    x509 = _x509()[0]
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except (ValueError, AttributeError):
        return []


def _signed_by(cert, ca):
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # noqa: BLE001 - any failure means: not this CA's
        return False
    return True


def _leaf_due(data, leaf, trusted, now):
    """Why the certificate ``leaf`` of a Secret's ``data`` must be issued anew, or ''."""
    x509, _, _, _, ExtendedKeyUsageOID, NameOID = _x509()
    crt, key = leaf.keys
    if not data.get(crt) or not data.get(key):
        return "missing"
    certs = _load(data[crt])
    if not certs:
        return "unreadable"
    cert = certs[0]
    if cert.not_valid_after_utc - now < datetime.timedelta(days=LEAF_RENEW_DAYS):
        return "expiring"
    if not any(_signed_by(cert, ca) for ca in trusted):
        return "another CA"
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not common or common[0].value != leaf.common_name[:64]:
        return "common name"
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = set(alt.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns = set()
    if dns != set(leaf.names):
        return "names"
    return ""


def _ca_due(ca, now):
    certs = _load(ca.get("tls.crt") or "")
    if not certs or not ca.get("tls.key"):
        return True
    return certs[0].not_valid_after_utc - now < datetime.timedelta(days=CA_RENEW_DAYS)


def _bundle(current, previous_pem, now):
    """ca.crt: the current CA, then the earlier ones still valid."""
    pems = [current]
    seen = {current.strip()}
    for cert in _load(previous_pem or ""):
        pem = _pem_cert(cert)
        if pem.strip() not in seen and cert.not_valid_after_utc > now:
            seen.add(pem.strip())
            pems.append(pem)
    return "".join(p if p.endswith("\n") else p + "\n" for p in pems)


# Annotations of each certificate Secret: when it must be looked at again, and what it was issued
# for. With them a reconcile tells whether there is work without reading a certificate.
RENEW_AFTER_ANNOTATION = "postgres.example.com/renew-after"
ISSUED_FOR_ANNOTATION = "postgres.example.com/issued-for"


def _rfc3339(when):
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text):
    try:
        return datetime.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def _issued_for(leaves, bundle, data):
    """A digest of what a Secret's certificates are for, of the CAs trusted and of the certificates
    themselves (text): one replaced by hand is looked at."""
    text = json.dumps([[leaf.prefix, leaf.common_name, leaf.names, leaf.server, leaf.client] for leaf in leaves]
                      + [hashlib.sha256((value or "").encode()).hexdigest()
                         for value in [bundle] + [data.get(leaf.keys[0]) for leaf in leaves]])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _annotations(obj):
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def _fresh(obj, keys, now, issued_for=None):
    """A Secret has ``keys``, is not due for renewal at ``now`` and was issued for ``issued_for``."""
    data = (obj or {}).get("data") or {}
    annotations = _annotations(obj)
    renew_after = _parse_time(annotations.get(RENEW_AFTER_ANNOTATION))
    return (obj is not None and all(data.get(k) for k in keys) and renew_after is not None and renew_after > now
            and (issued_for is None or annotations.get(ISSUED_FOR_ANNOTATION) == issued_for))


def pgc_certificates_due(pgc, secrets, backup_leaves=(), now=None):
    """Whether any certificate Secret of the cluster must be looked at, from their annotations alone
    (no certificate is read): ``secrets`` maps ``<name>-ca`` and the names of pgc_certificate_secrets
    to the Secrets (base64 data, as the API returns them) or None."""
    now = _now(now)
    ca = secrets.get(pgc["names"]["ca"])
    if not _fresh(ca, ("tls.crt", "tls.key", "ca.crt"), now):
        return True
    bundle = _text(ca["data"]["ca.crt"])
    for name, leaves in pgc_certificate_secrets(pgc, backup_leaves).items():
        keys = [k for leaf in leaves for k in leaf.keys] + ["ca.crt"]
        secret = secrets.get(name)
        if secret is None or not all(((secret.get("data") or {}).get(k)) for k in keys):
            return True
        crts = {leaf.keys[0]: _text(secret["data"][leaf.keys[0]]) for leaf in leaves}
        if not _fresh(secret, keys, now, _issued_for(leaves, bundle, crts)):
            return True
    return False


def _text(value):
    return base64.b64decode(value).decode()


def _secret_data(obj):
    return {k: _text(v) for k, v in ((obj or {}).get("data") or {}).items()}


def pgc_certificates(pgc, secrets, backup_leaves=(), now=None):
    """The certificate Secrets to write: ``{name: {"data": {...}, "annotations": {...}}}``, every
    key of each (text), from ``secrets`` (as for pgc_certificates_due)."""
    now = _now(now)
    ca_name = pgc["names"]["ca"]
    ca = _secret_data(secrets.get(ca_name))
    out = {}
    if _ca_due(ca, now):
        fresh = new_ca(SERVER_CA_NAME, _owner(pgc), now)
        ca = {"tls.crt": fresh["tls.crt"], "tls.key": fresh["tls.key"],
              "ca.crt": _bundle(fresh["tls.crt"], ca.get("ca.crt") or ca.get("tls.crt"), now)}
    else:
        ca["ca.crt"] = _bundle(ca["tls.crt"], ca.get("ca.crt"), now)
    trusted = _load(ca["ca.crt"])
    # The CA is looked at again when it is to be replaced or an earlier one in ca.crt ends.
    ca_renew = min([_load(ca["tls.crt"])[0].not_valid_after_utc - datetime.timedelta(days=CA_RENEW_DAYS)]
                   + [c.not_valid_after_utc for c in trusted[1:]])
    _written(out, ca_name, secrets.get(ca_name), ca, {RENEW_AFTER_ANNOTATION: _rfc3339(ca_renew)})
    for name, leaves in pgc_certificate_secrets(pgc, backup_leaves).items():
        data = _secret_data(secrets.get(name))
        renew = []
        for leaf in leaves:
            if _leaf_due(data, leaf, trusted, now):
                data[leaf.keys[0]], data[leaf.keys[1]] = sign(ca, leaf.common_name, leaf.names, leaf.server,
                                                              leaf.client, now)
            renew.append(_load(data[leaf.keys[0]])[0].not_valid_after_utc - datetime.timedelta(days=LEAF_RENEW_DAYS))
        data["ca.crt"] = ca["ca.crt"]
        _written(out, name, secrets.get(name), data, {RENEW_AFTER_ANNOTATION: _rfc3339(min(renew)),
                                                     ISSUED_FOR_ANNOTATION: _issued_for(leaves, ca["ca.crt"], data)})
    return out


def _written(out, name, current, data, annotations):
    """Add a Secret to ``out`` when its data or annotations differ from ``current``."""
    if _secret_data(current) != data or any(_annotations(current).get(k) != v for k, v in annotations.items()):
        out[name] = {"data": {k: data[k] for k in sorted(data)}, "annotations": annotations}
