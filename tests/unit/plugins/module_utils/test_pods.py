"""The pod specs of members, the repository host and the Jobs: what each runs, mounts and may do."""

from __future__ import annotations

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils.jobs import pgc_backup_job_spec
from ansible_collections.postgres.cluster.plugins.module_utils.pods import (
    pgc_member_pod_spec,
    pgc_repository_host_pod_spec,
)
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize

from .samples import cluster

S3 = {"s3": {"endpoint": "s3.eu-west-1.amazonaws.com", "bucket": "pg", "secretName": "s3-keys",
             "caSecretName": "private-ca"}}
GCS = {"gcs": {"bucket": "pg", "secretName": "gcs-key"}}
VOLUME = {"volume": {"size": "5Gi"}}
SPECS = {
    "no backups, no monitoring": {"enableMonitoring": False},
    "monitoring": {"enableMonitoring": True},
    "s3 with a private CA, encrypted": {"backup": {"repository": S3, "encryption": True}},
    "gcs key": {"backup": {"repository": GCS}},
    "volume": {"backup": {"repository": VOLUME}, "enableMonitoring": True},
    "from a volume source": {"bootstrap": {"fromBackup": {"cluster": "old", "repository": VOLUME}}},
    "from gcs, backing up to s3": {"backup": {"repository": S3},
                                   "bootstrap": {"fromBackup": {"cluster": "old", "repository": GCS}}},
}


def pgc(**spec):
    return pgc_normalize(cluster(**spec))


def member(**spec):
    return pgc_member_pod_spec(pgc(**spec), termination_grace_period="30", exporter_image="exporter:1",
                               exporter_resources={"limits": {"memory": "128Mi"}},
                               backup_server_resources={"limits": {"memory": "256Mi"}})


def containers(pod):
    return {c["name"]: c for c in pod["containers"]}


def every_pod():
    """(name, pod, volumes the pod gets from elsewhere): a member's data is its StatefulSet's claim."""
    for name, spec in SPECS.items():
        yield name, member(**spec), {"data"}
        normalized = pgc(**spec)
        if normalized["spec"].get("backup", {}).get("repository"):
            yield name + " repository host", pgc_repository_host_pod_spec(normalized), set()
            for job in ("backup", "expire", "restore", "logical-backup"):
                yield (name + " " + job, pgc_backup_job_spec(normalized, job, data_claim="data-db-0")["template"]["spec"],
                       set())


PODS = list(every_pod())
IDS = [name for name, _, _ in PODS]


@pytest.mark.parametrize("name, pod, claims", PODS, ids=IDS)
def test_every_mount_has_its_volume_once_and_no_container_may_escalate(name, pod, claims):
    volumes = [v["name"] for v in pod["volumes"]]
    assert len(volumes) == len(set(volumes)) and not claims & set(volumes)
    for container in pod["containers"]:
        mounted = [m["name"] for m in container["volumeMounts"]]
        assert set(mounted) <= set(volumes) | claims, (container["name"], set(mounted) - set(volumes))
        assert len(mounted) == len(set(mounted))
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["enableServiceLinks"] is False


@pytest.mark.parametrize("name, pod, claims", PODS, ids=IDS)
def test_no_secret_is_inlined_in_any_environment(name, pod, claims):
    for container in pod["containers"]:
        for env in container.get("env", []):
            if env["name"] == "PGSSLKEY":
                # A path to a key file mounted from a Secret, not a key.
                assert env["value"].startswith("/etc/pgc/") and env["value"].endswith(".key"), env
            elif any(word in env["name"] for word in ("PASSWORD", "PASS", "KEY", "SECRET")):
                assert "value" not in env and "secretKeyRef" in env["valueFrom"], env


def test_a_member_runs_patroni_alone_without_backups_or_monitoring():
    pod = member(enableMonitoring=False)
    assert list(containers(pod)) == ["postgres"]
    postgres = containers(pod)["postgres"]
    # Patroni, which the watcher sends SIGHUP when a certificate or patroni.yml changes.
    assert postgres["command"] == ["sh", "-c", 'python3 /etc/patroni/pgc-reload.py "$$" /var/lib/postgresql/data/tls'
                                   ' /var/lib/postgresql/data/superuser-tls /etc/patroni/patroni.yml'
                                   ' & exec patroni /etc/patroni/patroni.yml']
    assert {p["name"]: p["containerPort"] for p in postgres["ports"]} == {"postgres": 5432, "patroni": 8008}
    assert postgres["readinessProbe"]["httpGet"] == {"path": "/readiness", "port": "patroni"}
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["serviceAccountName"] == "db-patroni"
    assert [v["name"] for v in pod["volumes"]] == ["tls", "superuser-tls", "kube-api-access", "patroni-config", "socket"]
    # The server certificate and the superuser's client certificate beside the data directory, where
    # the configuration names them.
    assert {"name": "tls", "mountPath": "/var/lib/postgresql/data/tls", "readOnly": True} in postgres["volumeMounts"]
    assert {"name": "superuser-tls", "mountPath": "/var/lib/postgresql/data/superuser-tls",
            "readOnly": True} in postgres["volumeMounts"]
    assert pod["volumes"][0]["secret"]["secretName"] == "db-tls"
    assert pod["volumes"][1]["secret"]["secretName"] == "db-superuser-tls"
    assert "resources" not in postgres


def test_a_member_with_a_repository_and_monitoring_runs_the_pgbackrest_server_and_the_exporter():
    pod = member(backup={"repository": S3}, enableMonitoring=True, resources={"requests": {"cpu": "1"}})
    by_name = containers(pod)
    assert list(by_name) == ["postgres", "pgbackrest", "exporter"]
    assert by_name["postgres"]["resources"] == {"requests": {"cpu": "1"}}
    server = by_name["pgbackrest"]
    # The server, reloaded by the watcher when its certificates change.
    assert server["command"] == ["sh", "-c", 'python3 /etc/pgc/reload/pgc-reload.py "$$" /etc/pgc/backup-tls'
                                 ' & exec pgbackrest server']
    assert {"name": "reload", "mountPath": "/etc/pgc/reload", "readOnly": True} in server["volumeMounts"]
    assert server["resources"] == {"limits": {"memory": "256Mi"}}
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    # The server reads the member's data and reaches S3 through the private CA.
    assert {"name": "data", "mountPath": "/var/lib/postgresql/data"} in server["volumeMounts"]
    assert "backup-ca" in [m["name"] for m in server["volumeMounts"]]
    config = next(v for v in pod["volumes"] if v["name"] == "pgbackrest-config")["configMap"]
    assert config["items"] == [{"key": "pod.conf", "path": "pgbackrest.conf"}]
    exporter = by_name["exporter"]
    assert exporter["image"] == "exporter:1"
    # Never the database's user, which peer authentication on the shared socket makes the superuser.
    assert exporter["securityContext"]["runAsUser"] not in (0, pod["securityContext"]["runAsUser"])
    assert exporter["env"] == [{"name": "DATA_SOURCE_NAME",
                                "value": "host=/var/run/postgresql user=pgc_monitor dbname=postgres sslmode=disable"}]


def test_a_member_restoring_from_another_clusters_volume_reaches_that_repository_host_with_its_certificate():
    pod = member(bootstrap={"fromBackup": {"cluster": "old", "repository": VOLUME}}, enableMonitoring=False)
    # No repository of its own: no server beside it, only the source's configuration.
    assert list(containers(pod)) == ["postgres"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    # Optional: it is garbage-collected with the source, which may go once the bootstrap is done.
    assert volumes["source-backup-tls"]["secret"] == {"secretName": "old-backup-tls", "defaultMode": 0o440,
                                                      "optional": True}
    assert volumes["pgbackrest-config"]["configMap"]["items"] == [{"key": "source.conf", "path": "source.conf"}]
    env = {e["name"]: e for e in containers(pod)["postgres"]["env"]}
    assert env["PGC_SOURCE_STANZA"]["value"] == "old"


def test_a_spec_string_reaches_the_pod_as_one_value():
    hostile = 'x"\n  - name: injected\n    value: "$(rm -rf /)'
    pod = member(credentials={"appUser": hostile})
    env = containers(pod)["postgres"]["env"]
    assert {"name": "PGC_APP_USERNAME", "value": hostile} in env
    assert "injected" not in [e["name"] for e in env]


def test_the_repository_host_serves_its_claim_without_an_api_token():
    pod = pgc_repository_host_pod_spec(pgc(backup={"repository": VOLUME}), server_resources={"limits": {"memory": "1Gi"}})
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "repository", "persistentVolumeClaim": {"claimName": "db-backup"}} in pod["volumes"]
    server = pod["containers"][0]
    assert server["resources"] == {"limits": {"memory": "1Gi"}}
    assert {"name": "repository", "mountPath": "/var/lib/pgbackrest"} in server["volumeMounts"]


def test_a_job_on_a_volume_repository_runs_beside_its_host_and_a_restore_on_the_members_claim():
    normalized = pgc(backup={"repository": VOLUME})
    backup = pgc_backup_job_spec(normalized, "backup")["template"]["spec"]
    assert backup["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"] == {
        "matchLabels": {"postgres.example.com/job-of": "db", "postgres.example.com/job": "repo-host"}}
    assert backup["restartPolicy"] == "Never"
    restore = pgc_backup_job_spec(normalized, "restore", data_claim="data-db-1")["template"]["spec"]
    assert "affinity" not in restore
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}} in restore["volumes"]
    config = next(v for v in restore["volumes"] if v["name"] == "pgbackrest-config")["configMap"]
    assert config["items"] == [{"key": "pod.conf", "path": "pgbackrest.conf"}]


def test_a_job_that_connects_to_the_database_checks_its_certificate_with_the_ca_alone():
    normalized = pgc(backup={"repository": S3})
    pod = pgc_backup_job_spec(normalized, "logical-backup")["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert (env["PGHOST"], env["PGSSLMODE"], env["PGSSLROOTCERT"]) == ("db", "verify-full", "/etc/pgc/tls/ca.crt")
    tls = next(v for v in pod["volumes"] if v["name"] == "tls")["secret"]
    # Never the server's key.
    assert (tls["secretName"], tls["items"]) == ("db-tls", [{"key": "ca.crt", "path": "ca.crt"}])
    backup = pgc_backup_job_spec(normalized, "backup")["template"]["spec"]
    assert "tls" not in [v["name"] for v in backup["volumes"]]


@pytest.mark.parametrize("job", ["backup", "logical-backup", "expire", "check", "restore", "logical-restore"])
def test_every_job_runs_as_the_jobs_account_not_patronis(job):
    pod = pgc_backup_job_spec(pgc(backup={"repository": S3}), job, data_claim="data-db-0")["template"]["spec"]
    assert pod["serviceAccountName"] == "db-jobs"


def test_only_the_postgres_container_holds_patronis_token():
    pod = member(backup={"repository": S3}, enableMonitoring=True)
    assert pod["automountServiceAccountToken"] is False
    holders = [c["name"] for c in pod["containers"]
               if any(m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount" for m in c["volumeMounts"])]
    assert holders == ["postgres"]
    access = next(v for v in pod["volumes"] if v["name"] == "kube-api-access")["projected"]["sources"]
    assert access[0]["serviceAccountToken"]["path"] == "token"
