"""Database credentials: generated once and kept, or taken from the user's Secret; never leaked."""

from __future__ import annotations

import base64
import json

from tests.e2e.helpers import apply, get, kubectl, kubectl_json, postgres_cluster, wait_for, wait_for_phase

PASSWORD_KEYS = ("superuser-password", "replication-password", "app-password")


def _decoded(secret):
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def _env(sts, name):
    (var,) = [e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == name]
    return var


def test_generated_credentials_are_created_once_and_never_logged(operator, namespace):
    apply(postgres_cluster("db", replicas=2, credentials={"appUser": "shop", "appDatabase": "shop"}), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    secret = get("secret", "db-credentials", namespace)
    values = _decoded(secret)
    assert (values["superuser-username"], values["replication-username"]) == ("postgres", "replicator")
    assert (values["app-username"], values["app-database"]) == ("shop", "shop")
    passwords = [values[k] for k in PASSWORD_KEYS]
    assert len(set(passwords)) == 3 and all(len(p) == 32 and p.isalnum() for p in passwords)
    assert "ownerReferences" not in secret["metadata"], "the passwords must outlive the cluster object"
    assert secret["metadata"]["labels"]["postgres.example.com/cluster"] == "db"
    sts = get("statefulset", "db", namespace)
    assert _env(sts, "PATRONI_SUPERUSER_PASSWORD")["valueFrom"]["secretKeyRef"] == {"name": "db-credentials",
                                                                          "key": "superuser-password"}

    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":3}}')
    wait_for_phase("db", namespace, "Running", ready=3)
    again = get("secret", "db-credentials", namespace)
    assert again["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]
    assert _decoded(again) == values

    visible = operator.log() + kubectl("get", "pgc,events", "-n", namespace, "-o", "yaml")
    for password in passwords:
        assert password not in visible, "a password leaked into the operator's log, the status or an Event"


def test_user_supplied_secret_is_used_as_it_is(operator, namespace):
    kubectl("create", "secret", "generic", "mine", "-n", namespace, "--from-literal=superuser-password=s3cret-a",
            "--from-literal=replication-password=s3cret-b", "--from-literal=app-password=s3cret-c")
    apply(postgres_cluster("db", replicas=1, credentials={"secretName": "mine"}), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    assert get("secret", "db-credentials", namespace) is None
    sts = get("statefulset", "db", namespace)
    assert _env(sts, "PATRONI_SUPERUSER_PASSWORD")["valueFrom"]["secretKeyRef"]["name"] == "mine"
    assert _decoded(get("secret", "mine", namespace))["superuser-password"] == "s3cret-a"


def test_user_supplied_secret_without_a_password_is_refused(operator, namespace):
    kubectl("create", "secret", "generic", "partial", "-n", namespace, "--from-literal=superuser-password=x")
    apply(postgres_cluster("db", replicas=1, credentials={"secretName": "partial"}), namespace)
    cluster = wait_for_phase("db", namespace, "Failed", timeout=60)
    message = cluster["status"]["message"]
    assert message == ("spec.credentials.secretName: Secret partial lacks the key(s) "
                       "app-password, replication-password"), message
    assert get("statefulset", "db", namespace) is None


def test_lost_user_secret_with_existing_data_degrades_the_cluster(operator, namespace):
    kubectl("create", "secret", "generic", "mine", "-n", namespace, "--from-literal=superuser-password=s3cret-a",
            "--from-literal=replication-password=s3cret-b", "--from-literal=app-password=s3cret-c")
    apply(postgres_cluster("db", replicas=1, credentials={"secretName": "mine"}), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    wait_for(lambda: get("pvc", "data-db-0", namespace), 30, "the data claim was not created")
    kubectl("delete", "secret", "mine", "-n", namespace)
    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":2}}')

    cluster = wait_for_phase("db", namespace, "Failed", timeout=60)
    conditions = {c["type"]: c for c in cluster["status"]["conditions"]}
    assert (conditions["Degraded"]["status"], conditions["Degraded"]["reason"]) == ("True", "CredentialsMissing")
    assert "Secret mine does not exist while the data of the cluster exists" in cluster["status"]["message"]

    # Restoring the Secret heals the cluster.
    kubectl("create", "secret", "generic", "mine", "-n", namespace, "--from-literal=superuser-password=s3cret-a",
            "--from-literal=replication-password=s3cret-b", "--from-literal=app-password=s3cret-c")
    kubectl("annotate", "pgc", "db", "-n", namespace, "example.com/nudge=1")
    cluster = wait_for_phase("db", namespace, "Running", ready=2, timeout=90)
    conditions = {c["type"]: c for c in cluster["status"]["conditions"]}
    assert conditions["Degraded"]["status"] == "False"


def test_lost_secret_with_existing_data_degrades_instead_of_new_passwords(operator, namespace):
    apply(postgres_cluster("db", replicas=1), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    wait_for(lambda: get("pvc", "data-db-0", namespace), 30, "the data claim was not created")
    kubectl("delete", "secret", "db-credentials", "-n", namespace)
    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":2}}')

    cluster = wait_for_phase("db", namespace, "Failed", timeout=60)
    conditions = {c["type"]: c for c in cluster["status"]["conditions"]}
    assert (conditions["Degraded"]["status"], conditions["Degraded"]["reason"]) == ("True", "CredentialsMissing")
    assert "data-db-0" in conditions["Degraded"]["message"]
    assert get("secret", "db-credentials", namespace) is None, "new passwords were generated for old data"
    wait_for(lambda: [e for e in kubectl_json("get", "events", "-n", namespace)["items"]
                      if e["reason"] == "CredentialsMissing" and e["type"] == "Warning"], 30, "no CredentialsMissing Event")


def test_lost_passphrase_with_existing_data_degrades_instead_of_a_new_one(operator, namespace):
    """The WAL archived since the bootstrap is encrypted with the passphrase: a new one could not
    read it, so none is issued while the data exists."""
    apply(postgres_cluster("db", replicas=1, backup={"repository": {"volume": {"size": "1Gi"}}, "encryption": True}),
          namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    wait_for(lambda: get("pvc", "data-db-0", namespace), 30, "the data claim was not created")
    assert get("secret", "db-backup-encryption", namespace) is not None
    kubectl("delete", "secret", "db-backup-encryption", "-n", namespace)
    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"replicas":2}}')

    cluster = wait_for_phase("db", namespace, "Failed", timeout=60)
    conditions = {c["type"]: c for c in cluster["status"]["conditions"]}
    assert (conditions["Degraded"]["status"], conditions["Degraded"]["reason"]) == ("True", "CredentialsMissing")
    assert "db-backup-encryption" in cluster["status"]["message"] and "data-db-0" in cluster["status"]["message"]
    assert get("secret", "db-backup-encryption", namespace) is None, "a new passphrase was issued for old backups"


def _certificates(secret, key="tls.crt"):
    from cryptography import x509
    return x509.load_pem_x509_certificates(_decoded(secret)[key].encode())


def test_certificates_come_from_the_clusters_ca_and_are_renewed_before_they_end(operator, namespace):
    import datetime

    import tests.unit.conftest  # noqa: F401 - the collection, importable from this checkout
    from ansible_collections.postgres.cluster.plugins.module_utils.tls import pgc_server_names, sign

    apply(postgres_cluster("db", replicas=1), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    ca_secret = get("secret", "db-ca", namespace)
    (ca,) = _certificates(ca_secret)
    server, superuser = get("secret", "db-tls", namespace), get("secret", "db-superuser-tls", namespace)
    for secret in (server, superuser):
        _certificates(secret)[0].verify_directly_issued_by(ca)
        assert _decoded(secret)["ca.crt"] == _decoded(ca_secret)["ca.crt"]
        assert secret["metadata"]["annotations"]["postgres.example.com/renew-after"] > "2027"
    # The CA's key is in no pod: the StatefulSet mounts the certificates, never the CA's Secret.
    volumes = get("statefulset", "db", namespace)["spec"]["template"]["spec"]["volumes"]
    mounted = {v["secret"]["secretName"] for v in volumes if "secret" in v}
    assert {"db-tls", "db-superuser-tls"} <= mounted and "db-ca" not in mounted

    # A server certificate that ends in ten days (here: put there by hand) is renewed, by the same CA.
    short, key = sign(_decoded(ca_secret), "db", pgc_server_names({"name": "db", "namespace": namespace}), days=10)
    patch = {"data": {"tls.crt": base64.b64encode(short.encode()).decode(),
                      "tls.key": base64.b64encode(key.encode()).decode()}}
    kubectl("patch", "secret", "db-tls", "-n", namespace, "--type=merge", "-p", json.dumps(patch))
    kubectl("annotate", "pgc", "db", "-n", namespace, "example.com/nudge=1")

    def renewed():
        (leaf,) = _certificates(get("secret", "db-tls", namespace))
        left = leaf.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
        return leaf if left > datetime.timedelta(days=300) else None
    wait_for(renewed, 60, "the certificate that ends soon was not renewed").verify_directly_issued_by(ca)
    assert get("secret", "db-ca", namespace)["metadata"]["resourceVersion"] == ca_secret["metadata"]["resourceVersion"]

    # A deleted certificate is issued anew, by the same CA: clients keep their ca.crt.
    kubectl("delete", "secret", "db-superuser-tls", "-n", namespace)
    kubectl("annotate", "--overwrite", "pgc", "db", "-n", namespace, "example.com/nudge=2")
    again = wait_for(lambda: get("secret", "db-superuser-tls", namespace), 60, "the certificate was not issued anew")
    _certificates(again)[0].verify_directly_issued_by(ca)
    visible = operator.log() + kubectl("get", "pgc,events", "-n", namespace, "-o", "yaml")
    assert "PRIVATE KEY" not in visible, "a key leaked into the operator's log, the status or an Event"
