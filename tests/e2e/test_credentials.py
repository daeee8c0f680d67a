"""Database credentials: generated once and kept, or taken from the user's Secret; never leaked."""

from __future__ import annotations

import base64

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
