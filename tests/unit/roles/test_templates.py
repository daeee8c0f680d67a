"""Every manifest template renders, from a sample PostgresCluster, to the object it names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.postgres.cluster.plugins.filter import backup, pods, upgrades
from ansible_collections.postgres.cluster.plugins.filter import pgc as pgc_filters
from ansible_collections.postgres.cluster.plugins.filter.backup import pgc_pgbackrest_environment, pgc_pgbackrest_settings
from ansible_collections.postgres.cluster.plugins.filter.pgc import pgc_normalize, pgc_patroni_config, pgc_prometheus_rules
from ansible_collections.postgres.cluster.plugins.module_utils.events import event

REPO = Path(__file__).resolve().parents[3]
init_plugin_loader()  # lookups (password) in templates resolve as they do in a play
# The collection's own filters, by the names templates call them (postgres.cluster.*).
COLLECTION_FILTERS = {"postgres.cluster." + name: f for module in (backup, pods, pgc_filters, upgrades)
                      for name, f in module.FilterModule().filters().items()}
SAMPLE = REPO / "config/samples/postgres_v1_postgrescluster.yaml"


def sample_pgc(**spec):
    obj = yaml.safe_load(SAMPLE.read_text())
    obj["metadata"].update(namespace="prod", uid="0a1b", generation=1)
    obj["spec"].update(spec)
    return pgc_normalize(obj)


def render(role, template, **variables):
    return yaml.safe_load(render_text(role, template, **variables))


def render_text(role, template, **variables):
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults/main.yml").read_text()) or {}
    if "pgc" in variables:  # what the provision task computes for its templates
        variables.setdefault("__provision_patroni_config", pgc_patroni_config(variables["pgc"]))
        variables.setdefault("__provision_alert_rules", pgc_prometheus_rules(
            (REPO / "roles/provision/files/prometheus-alerts.yaml").read_text(), variables["pgc"]))
        variables.setdefault("__provision_backup", pgc_pgbackrest_settings(variables["pgc"]))
    # lookup('file', ...) finds the role's files/ as it does in a play
    variables.setdefault("ansible_search_path", [str(REPO / "roles" / role)])
    templar = Templar(loader=DataLoader(), variables={**defaults, **variables})
    for name, f in COLLECTION_FILTERS.items():
        templar.environment.filters[name] = f
    text = (REPO / "roles" / role / "templates" / template).read_text()
    return templar.template(text)


MANIFESTS = [
    ("serviceaccount-patroni.yaml.j2", "ServiceAccount", "example-patroni"),
    ("role-patroni.yaml.j2", "Role", "example-patroni"),
    ("rolebinding-patroni.yaml.j2", "RoleBinding", "example-patroni"),
    ("serviceaccount-jobs.yaml.j2", "ServiceAccount", "example-jobs"),
    ("role-jobs.yaml.j2", "Role", "example-jobs"),
    ("rolebinding-jobs.yaml.j2", "RoleBinding", "example-jobs"),
    ("configmap-patroni.yaml.j2", "ConfigMap", "example-patroni"),
    ("poddisruptionbudget.yaml.j2", "PodDisruptionBudget", "example"),
    ("service-headless.yaml.j2", "Service", "example-pods"),
    ("service-rw.yaml.j2", "Service", "example"),
    ("service-ro.yaml.j2", "Service", "example-ro"),
    ("statefulset.yaml.j2", "StatefulSet", "example"),
    ("networkpolicy.yaml.j2", "NetworkPolicy", "example"),
]


@pytest.mark.parametrize("template, kind, name", MANIFESTS, ids=[m[0] for m in MANIFESTS])
def test_provision_template_renders_kind_name_labels_and_owner(template, kind, name):
    pgc = sample_pgc()
    obj = render("provision", template, pgc=pgc)
    assert (obj["kind"], obj["metadata"]["name"], obj["metadata"]["namespace"]) == (kind, name, "prod")
    assert obj["metadata"]["labels"] == {
        "app.kubernetes.io/name": "postgres", "app.kubernetes.io/instance": "example",
        "app.kubernetes.io/managed-by": "pgc-operator", "postgres.example.com/cluster": "example"}
    assert obj["metadata"]["ownerReferences"] == [pgc["owner_reference"]]


def test_provision_statefulset_follows_the_spec():
    pgc = sample_pgc(replicas=5, image="registry.local/pg:15", storageSize="20Gi", storageClassName="fast",
                     resources={"requests": {"cpu": "500m", "memory": "1Gi"}})
    sts = render("provision", "statefulset.yaml.j2", pgc=pgc)
    assert sts["spec"]["replicas"] == 5
    assert sts["spec"]["selector"]["matchLabels"] == {"postgres.example.com/cluster": "example"}
    pod = sts["spec"]["template"]
    assert pod["metadata"]["labels"]["postgres.example.com/cluster"] == "example"
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.local/pg:15"
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "20Gi"
    assert claim["storageClassName"] == "fast"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    # The operator replaces the pods of a new template itself, in an order that spares the primary.
    assert sts["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_provision_statefulset_uses_the_default_storage_class_when_none_is_named():
    sts = render("provision", "statefulset.yaml.j2", pgc=sample_pgc())
    assert "storageClassName" not in sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert "resources" not in sts["spec"]["template"]["spec"]["containers"][0]


def test_provision_services_select_members_by_their_patroni_role():
    pgc = sample_pgc()
    ro = render("provision", "service-ro.yaml.j2", pgc=pgc)["spec"]["selector"]
    assert ro == {"postgres.example.com/cluster": "example", "role": "replica"}
    rw = render("provision", "service-rw.yaml.j2", pgc=pgc)["spec"]["selector"]
    assert rw == {"postgres.example.com/cluster": "example", "role": "primary"}
    headless = render("provision", "service-headless.yaml.j2", pgc=pgc)["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True


def test_status_event_names_the_cluster_and_the_reason():
    pgc = sample_pgc()
    cluster = {"apiVersion": pgc["api_version"], "kind": pgc["kind"],
               "metadata": {"name": pgc["name"], "namespace": pgc["namespace"], "uid": pgc["uid"], "labels": pgc["labels"]}}
    found = event(cluster, "Warning", "ReconcileFailed", 'quote " and: colon', "2026-11-29T10:00:00Z")
    assert found["kind"] == "Event"
    assert found["involvedObject"] == {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster",
                                       "name": "example", "namespace": "prod", "uid": "0a1b"}
    assert (found["type"], found["reason"], found["message"]) == ("Warning", "ReconcileFailed", 'quote " and: colon')
    assert found["metadata"]["generateName"] == "example."
    assert found["metadata"]["labels"] == pgc["labels"]


def test_credentials_secret_holds_generated_passwords_and_no_owner():
    pgc = sample_pgc(credentials={"appUser": "shop", "appDatabase": "shopdb"})
    secret = render("credentials", "secret.yaml.j2", pgc=pgc)
    assert (secret["kind"], secret["metadata"]["name"], secret["metadata"]["namespace"]) == (
        "Secret", "example-credentials", "prod")
    assert "ownerReferences" not in secret["metadata"]
    data = secret["stringData"]
    assert (data["superuser-username"], data["app-username"], data["app-database"]) == ("postgres", "shop", "shopdb")
    passwords = [data[k] for k in ("superuser-password", "replication-password", "app-password")]
    assert len(set(passwords)) == 3 and all(len(p) == 32 and p.isalnum() for p in passwords)


def test_provision_statefulset_runs_patroni_with_passwords_from_the_credentials_secret():
    sts = render("provision", "statefulset.yaml.j2", pgc=sample_pgc(credentials={"secretName": "mine"}, backupSchedule=""))
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    for var, key in (("PATRONI_SUPERUSER_PASSWORD", "superuser-password"),
                     ("PATRONI_REPLICATION_PASSWORD", "replication-password")):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "mine", "key": key}
        assert "value" not in env[var]
    # Patroni's REST API asks for the operator's own Secret on its unsafe endpoints.
    assert env["PATRONI_RESTAPI_USERNAME"]["valueFrom"]["secretKeyRef"] == {"name": "example-patroni-api", "key": "username"}
    assert env["PATRONI_RESTAPI_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "example-patroni-api", "key": "password"}
    assert env["PATRONI_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["PATRONI_POSTGRESQL_CONNECT_ADDRESS"]["value"] == "$(PATRONI_KUBERNETES_POD_IP):5432"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readiness", "port": "patroni"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/liveness", "port": "patroni"}
    assert {"name": "patroni-config", "mountPath": "/etc/patroni", "readOnly": True} in container["volumeMounts"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert list(volumes) == ["tls", "superuser-tls", "kube-api-access", "patroni-config", "socket"]
    assert volumes["tls"] == {"name": "tls", "secret": {"secretName": "example-tls", "defaultMode": 0o440, "items": [
        {"key": k, "path": k} for k in ("tls.crt", "tls.key", "ca.crt")]}}
    assert volumes["patroni-config"] == {"name": "patroni-config", "configMap": {"name": "example-patroni"}}
    assert pod["serviceAccountName"] == "example-patroni"
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"


def test_provision_patroni_config_map_holds_the_rendered_configuration():
    pgc = sample_pgc()
    config = yaml.safe_load(render("provision", "configmap-patroni.yaml.j2", pgc=pgc)["data"]["patroni.yml"])
    assert config["scope"] == "example"
    assert config["bootstrap"]["dcs"]["postgresql"]["parameters"]["max_connections"] == "200"


def _grants(role):
    """(resource, verb) -> the names a Role's rules limit it to, or None for every object."""
    grants = {}
    for rule in role["rules"]:
        for resource in rule["resources"]:
            for verb in rule["verbs"]:
                names = rule.get("resourceNames")
                assert names != [], "an empty resourceNames names every object"
                grants[(resource, verb)] = None if names is None else sorted(names)
    return grants


def test_provision_patroni_role_limits_patronis_writes_to_its_own_clusters_objects():
    role = render("provision", "role-patroni.yaml.j2", pgc=sample_pgc(replicas=3))
    dcs = sorted(["example-leader", "example-config", "example-failover", "example-sync"])
    assert _grants(role) == {
        ("configmaps", "get"): dcs, ("configmaps", "patch"): dcs,
        # Neither can be limited by name: a create names no existing object, and Patroni lists by label.
        ("configmaps", "create"): None, ("configmaps", "list"): None, ("configmaps", "watch"): None,
        ("pods", "list"): None, ("pods", "watch"): None,
        ("pods", "patch"): ["example-0", "example-1", "example-2"],
        ("postgresclusters", "patch"): ["example"],
    }
    # Every verb that reads or changes one object names its objects.
    for (resource, verb), names in _grants(role).items():
        if verb in ("get", "update", "patch", "delete"):
            assert names, (resource, verb)
    groups = {r["resources"][0]: r["apiGroups"] for r in role["rules"]}
    assert groups["postgresclusters"] == ["postgres.example.com"] and groups["pods"] == [""]


def test_provision_patroni_role_follows_the_number_of_members():
    grants = _grants(render("provision", "role-patroni.yaml.j2", pgc=sample_pgc(replicas=5)))
    assert grants[("pods", "patch")] == ["example-%d" % n for n in range(5)]
    # No member, no pod named: an empty resourceNames would grant every pod.
    assert ("pods", "patch") not in _grants(render("provision", "role-patroni.yaml.j2", pgc=sample_pgc(replicas=0)))


def _patroni_dcs_requests():
    """(resource, verb) of every API call in the installed Patroni's Kubernetes DCS, with
    use_endpoints false (its ``*_kind`` calls are ConfigMaps)."""
    import patroni.dcs.kubernetes as patroni  # the project's virtualenv has it (requirements-dev.txt)
    source = Path(patroni.__file__).read_text()
    verbs = {"read": ["get"], "list": ["list", "watch"], "create": ["create"], "patch": ["patch"],
             "replace": ["update"], "delete": ["delete"], "delete_collection": ["deletecollection"]}
    found = set()
    for action, kind in re.findall(r"_api\.(\w+?)_namespaced_(\w+)\b", source):
        resource = {"kind": "configmaps", "pod": "pods", "service": "services"}[kind]
        found.update((resource, verb) for verb in verbs[action])
    return found


def test_provision_patroni_role_grants_what_patronis_kubernetes_dcs_calls_and_nothing_more():
    granted = {key for key in _grants(render("provision", "role-patroni.yaml.j2", pgc=sample_pgc()))
               if key[0] != "postgresclusters"}
    # Left out on purpose: the Service only Endpoints need (use_endpoints), and `patronictl remove`
    # (delete_cluster), which would wipe the cluster's state.
    not_granted = {("services", "create"), ("configmaps", "deletecollection")}
    assert _patroni_dcs_requests() - not_granted == granted


def provision_templates(pgc, monitoring_api=False, hold_statefulset=False):
    """The templates the provision task applies for a cluster (its template expression, evaluated)."""
    task = yaml.safe_load((REPO / "roles/provision/tasks/main.yml").read_text())[0]
    role_vars = yaml.safe_load((REPO / "roles/provision/vars/main.yml").read_text())
    variables = {"pgc": pgc, "__provision_backup": pgc_pgbackrest_settings(pgc),
                 "__provision_monitoring": pgc_filters.pgc_monitoring(pgc, monitoring_api),
                 "__provision_templates": role_vars["__provision_templates"],
                 "provision_hold_statefulset": hold_statefulset}
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(task["postgres.cluster.k8s_apply"]["template"])


def test_provision_and_its_plan_compare_the_same_objects_and_a_held_change_leaves_the_statefulset():
    plan = yaml.safe_load((REPO / "roles/provision/tasks/plan.yml").read_text())[0]
    apply = yaml.safe_load((REPO / "roles/provision/tasks/main.yml").read_text())[0]
    for key in ("template", "absent", "field_manager"):
        assert plan["postgres.cluster.k8s_apply"][key] == apply["postgres.cluster.k8s_apply"][key]
    assert plan["check_mode"] is True
    pgc = sample_pgc()
    assert "statefulset.yaml.j2" in provision_templates(pgc)
    assert set(provision_templates(pgc)) - set(provision_templates(pgc, hold_statefulset=True)) == {"statefulset.yaml.j2"}


def test_provision_applies_the_jobs_account_only_with_a_backup_repository():
    jobs = ["serviceaccount-jobs.yaml.j2", "role-jobs.yaml.j2", "rolebinding-jobs.yaml.j2"]
    with_backups = provision_templates(sample_pgc(backup=S3))
    assert set(jobs) <= set(with_backups)
    # Before the CronJobs whose pods run as it.
    assert max(with_backups.index(t) for t in jobs) < with_backups.index("cronjob-backup.yaml.j2")
    assert not set(jobs) & set(provision_templates(sample_pgc(backupSchedule="")))
    for template in with_backups:
        assert (REPO / "roles/provision/templates" / template).is_file(), template


def test_provision_jobs_account_may_stamp_its_own_cluster_and_nothing_else():
    pgc = sample_pgc(backup=S3)
    account = render("provision", "serviceaccount-jobs.yaml.j2", pgc=pgc)
    assert account["automountServiceAccountToken"] is True  # the callback's stamp needs the token
    role = render("provision", "role-jobs.yaml.j2", pgc=pgc)
    assert _grants(role) == {("postgresclusters", "patch"): ["example"]}
    assert role["rules"][0]["apiGroups"] == ["postgres.example.com"]
    binding = render("provision", "rolebinding-jobs.yaml.j2", pgc=pgc)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "example-jobs"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "example-jobs", "namespace": "prod"}]


def test_operator_holds_every_permission_it_grants_patroni_and_the_jobs():
    """Kubernetes refuses a Role that grants what its creator does not hold (its escalation check):
    the operator's ClusterRole covers every rule of these Roles."""
    [operator] = [d for d in yaml.safe_load_all((REPO / "config/rbac/role.yaml").read_text()) if d]
    held = {}
    for rule in operator["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                held.setdefault((group, resource), set()).update(rule["verbs"])
    pgc = sample_pgc(backup=S3)
    for template in ("role-patroni.yaml.j2", "role-jobs.yaml.j2"):
        for rule in render("provision", template, pgc=pgc)["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    assert set(rule["verbs"]) <= held.get((group, resource), set()), (template, resource)


def test_job_pods_run_as_the_jobs_account_and_the_repository_host_has_no_token():
    pgc = sample_pgc()  # a schedule, hence a volume repository and its host
    cron = render("provision", "cronjob-backup.yaml.j2", pgc=pgc)
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == "example-jobs"
    logical = render("provision", "cronjob-logical-backup.yaml.j2", pgc=sample_pgc(backup={**S3, "logical": {"schedule": "@daily"}}))
    assert logical["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"] == "example-jobs"
    backup = {"metadata": {"name": "nightly", "namespace": "prod", "uid": "b-1"}, "spec": {"cluster": "example"}}
    job = render("reconcile_backup", "job.yaml.j2", __reconcile_backup=backup, __reconcile_backup_pgc=pgc)
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "example-jobs"
    restore = render("restore", "job.yaml.j2", pgc=pgc, __restore_job="restore", __restore_job_timeout=600,
                     __restore_data_claim="data-example-0", __restore_job_env=[])
    assert restore["spec"]["template"]["spec"]["serviceAccountName"] == "example-jobs"
    host = render("provision", "deployment-repository.yaml.j2", pgc=pgc)["spec"]["template"]["spec"]
    assert host["automountServiceAccountToken"] is False and "serviceAccountName" not in host
    members = render("provision", "statefulset.yaml.j2", pgc=pgc)["spec"]["template"]["spec"]
    assert members["serviceAccountName"] == "example-patroni"


def test_provision_patroni_config_map_ships_the_scripts_patroni_runs():
    cm = render("provision", "configmap-patroni.yaml.j2", pgc=sample_pgc())
    files = REPO / "roles/provision/files"
    assert cm["data"]["pgc-callback.py"] == (files / "pgc-callback.py").read_text()
    assert cm["data"]["pgc-post-bootstrap.sh"] == (files / "pgc-post-bootstrap.sh").read_text()


def test_provision_statefulset_passes_the_application_role_from_the_secret():
    pgc = sample_pgc(credentials={"appUser": "shop", "appDatabase": "orders"})
    env = {e["name"]: e for e in render("provision", "statefulset.yaml.j2", pgc=pgc)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["PGC_APP_USERNAME"]["value"], env["PGC_APP_DATABASE"]["value"]) == ("shop", "orders")
    assert env["PGC_APP_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "example-credentials", "key": "app-password"}


def test_provision_statefulset_follows_the_volume_claim_retention_of_the_spec():
    sts = render("provision", "statefulset.yaml.j2", pgc=sample_pgc(volumeClaimRetention={"whenScaled": "Delete"}))
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Delete"}


def test_provision_statefulset_runs_the_exporter_sidecar_only_with_monitoring():
    pod = render("provision", "statefulset.yaml.j2", pgc=sample_pgc(backupSchedule=""))["spec"]["template"]["spec"]
    exporter = {c["name"]: c for c in pod["containers"]}["exporter"]
    metrics_yaml = yaml.safe_load((REPO / "config/prometheus/metrics.yaml").read_text())
    assert exporter["image"] == metrics_yaml["exporter_image"]  # the release the data-plane test proves
    assert {"name": "DATA_SOURCE_NAME", "value": "host=/var/run/postgresql user=pgc_monitor dbname=postgres sslmode=disable"} in exporter["env"]
    assert "--extend.query-path=/etc/pgc-exporter/exporter-queries.yaml" in exporter["args"]
    assert exporter["ports"] == [{"name": "metrics", "containerPort": 9187, "protocol": "TCP"}]
    assert exporter["securityContext"]["readOnlyRootFilesystem"] is True
    off = render("provision", "statefulset.yaml.j2", pgc=sample_pgc(enableMonitoring=False, backupSchedule=""))
    assert [c["name"] for c in off["spec"]["template"]["spec"]["containers"]] == ["postgres"]


def test_provision_monitoring_objects_select_the_cluster():
    pgc = sample_pgc()
    service = render("provision", "service-metrics.yaml.j2", pgc=pgc)
    assert (service["metadata"]["name"], service["spec"]["selector"]) == ("example-metrics", pgc["selector"])
    monitor = render("provision", "podmonitor.yaml.j2", pgc=pgc)
    assert monitor["spec"]["selector"]["matchLabels"] == pgc["selector"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    rule = render("provision", "prometheusrule.yaml.j2", pgc=pgc)
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert "PostgreSQLClusterDown" in alerts and len(alerts) == len(set(alerts))
    # Prometheus templates reach the object as they are.
    assert any("{{ $labels.name }}" in r["annotations"]["summary"] for g in rule["spec"]["groups"] for r in g["rules"])


S3 = {"repository": {"s3": {"endpoint": "s3.eu-west-1.amazonaws.com", "bucket": "pg", "secretName": "s3-keys"}}}


def test_provision_backup_cronjob_runs_one_backup_job_at_a_time_with_bounded_history():
    pgc = sample_pgc(backup=S3)
    cron = render("provision", "cronjob-backup.yaml.j2", pgc=pgc)
    assert (cron["kind"], cron["metadata"]["name"]) == ("CronJob", "example-backup")
    spec = cron["spec"]
    assert spec["schedule"] == "0 2 * * *" and spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] == 3 and spec["failedJobsHistoryLimit"] == 3
    assert spec["startingDeadlineSeconds"] > 0 and spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 1
    pod = spec["jobTemplate"]["spec"]["template"]
    # A Job's pod is never a member: not selected by the Services, the PDB or Patroni.
    assert "postgres.example.com/cluster" not in pod["metadata"]["labels"]
    assert pod["metadata"]["labels"]["postgres.example.com/job"] == "backup"
    container = pod["spec"]["containers"][0]
    assert "pgc-backup.sh" in container["command"][-1]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = {e["name"]: e for e in container["env"]}
    assert env["PGC_BACKUP_TYPE"]["value"] == "full"
    assert env["PGBACKREST_REPO1_S3_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "s3-keys", "key": "access-key-id"}
    assert env["PGBACKREST_REPO1_CIPHER_PASS"]["valueFrom"]["secretKeyRef"]["name"] == "example-backup-encryption"
    assert not any("value" in e and "secret" in e["name"].lower() for e in container["env"])
    assert pod["spec"]["restartPolicy"] == "Never"


def test_provision_volume_repository_is_served_by_a_repository_host_and_outlives_the_cluster():
    pgc = sample_pgc()  # a schedule and no repository: a volume repository
    claim, service, deployment = (render("provision", t, pgc=pgc) for t in (
        "persistentvolumeclaim-repository.yaml.j2", "service-repository.yaml.j2", "deployment-repository.yaml.j2"))
    assert (claim["kind"], claim["metadata"]["name"]) == ("PersistentVolumeClaim", "example-backup")
    assert "ownerReferences" not in claim["metadata"]
    assert service["spec"]["ports"][0]["port"] == 8432
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    job = render("provision", "cronjob-backup.yaml.j2", pgc=pgc)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {"name": "repository", "persistentVolumeClaim": {"claimName": "example-backup"}} in job["volumes"]
    term = job["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["labelSelector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_provision_members_run_a_pgbackrest_server_reached_through_the_primary_service():
    pgc = sample_pgc(backup=S3)
    pod = render("provision", "statefulset.yaml.j2", pgc=pgc)["spec"]["template"]["spec"]
    names = [c["name"] for c in pod["containers"]]
    assert "pgbackrest" in names
    server = pod["containers"][names.index("pgbackrest")]
    # The server, reloaded by the watcher when its certificates change.
    assert server["command"] == ["sh", "-c", 'python3 /etc/pgc/reload/pgc-reload.py "$$" /etc/pgc/backup-tls'
                                 ' & exec pgbackrest server']
    assert {"name": "reload", "mountPath": "/etc/pgc/reload", "readOnly": True} in server["volumeMounts"]
    rw = render("provision", "service-rw.yaml.j2", pgc=pgc)
    assert {"name": "pgbackrest", "port": 8432, "targetPort": "pgbackrest", "protocol": "TCP"} in rw["spec"]["ports"]
    cm = render("provision", "configmap-pgbackrest.yaml.j2", pgc=pgc)
    assert set(cm["data"]) == {"pod.conf", "job.conf"}
    plain = sample_pgc(backupSchedule="")
    assert [c["name"] for c in render("provision", "statefulset.yaml.j2", pgc=plain)["spec"]["template"]["spec"]["containers"]] \
        == ["postgres", "exporter"]
    assert len(render("provision", "service-rw.yaml.j2", pgc=plain)["spec"]["ports"]) == 1


def test_backup_role_job_is_owned_by_its_postgresbackup_and_takes_its_type():
    pgc = sample_pgc(backup=S3)
    backup = {"metadata": {"name": "before-upgrade", "namespace": "prod", "uid": "b-1"},
              "spec": {"cluster": "example", "type": "incr"}}
    job = render("reconcile_backup", "job.yaml.j2", __reconcile_backup=backup, __reconcile_backup_pgc=pgc)
    assert job["metadata"]["name"] == "before-upgrade-backup"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "PostgresBackup"
    assert job["metadata"]["labels"]["postgres.example.com/backup"] == "before-upgrade"
    assert job["metadata"]["labels"]["postgres.example.com/cluster"] == "example"
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGC_BACKUP_TYPE"]["value"] == "incr"


def test_restore_role_job_restores_over_member_0s_claim():
    pgc = sample_pgc(backup=S3)
    job = render("restore", "job.yaml.j2", pgc=pgc, __restore_job="restore", __restore_job_timeout=600,
                 __restore_data_claim="data-example-0",
                 __restore_job_env=[{"name": "PGC_RESTORE_TARGET_TIME", "value": "2026-11-26 12:00:00+00"}])
    pod = job["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-example-0"}} in pod["volumes"]
    assert "pgc-restore-in-place.sh" in pod["containers"][0]["command"][-1]
    assert job["spec"]["backoffLimit"] == 0


def test_restore_role_job_runs_a_major_upgrades_job_from_the_spec_it_is_given():
    pgc = sample_pgc(postgresVersion=16)
    spec = upgrades.pgc_major_upgrade_job_spec(pgc, "major-upgrade-check", 15, 16, claim="data-example-1")
    job = render("restore", "job.yaml.j2", pgc=pgc, __restore_job="major-upgrade-check", __restore_job_spec=spec)
    assert (job["kind"], job["metadata"]["name"], job["metadata"]["namespace"]) == ("Job", "example-major-upgrade-check",
                                                                                    "prod")
    assert job["metadata"]["labels"]["postgres.example.com/job"] == "major-upgrade-check"
    assert job["metadata"]["labels"]["postgres.example.com/cluster"] == "example"
    assert job["metadata"]["ownerReferences"] == [pgc["owner_reference"]]
    assert job["spec"] == spec


def test_provision_a_cluster_from_a_backup_restores_with_the_sources_settings():
    source = {"s3": {**S3["repository"]["s3"], "caSecretName": "private-ca"}}
    pgc = sample_pgc(backupSchedule="", bootstrap={"fromBackup": {
        "cluster": "old", "repository": source, "targetTime": "2026-11-26T09:00:00Z"}})
    config = yaml.safe_load(render("provision", "configmap-patroni.yaml.j2", pgc=pgc)["data"]["patroni.yml"])
    method = config["bootstrap"]["method"]
    assert "pgc-bootstrap-from-backup.sh" in config["bootstrap"][method]["command"]
    sts = render("provision", "statefulset.yaml.j2", pgc=pgc)
    pod = sts["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["PGC_SOURCE_STANZA"]["value"] == "old"
    assert env["PGC_RESTORE_TARGET_TIME"]["value"] == "2026-11-26T09:00:00Z"
    assert env["PGC_SOURCE_REPO1_S3_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-keys"
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["source-backup-ca"] == "/etc/pgc/source-backup-ca"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["pgbackrest-config"]["configMap"]["items"] == [{"key": "source.conf", "path": "source.conf"}]
    # Without a repository of its own the new cluster runs no pgBackRest server.
    assert [c["name"] for c in pod["containers"]] == ["postgres", "exporter"]
    cm = render("provision", "configmap-pgbackrest.yaml.j2", pgc=pgc)
    assert set(cm["data"]) == {"source.conf"} and "[old]" in cm["data"]["source.conf"]


def test_provision_members_and_jobs_mount_what_a_private_object_store_needs():
    gcs = {"repository": {"gcs": {"bucket": "pg", "secretName": "gcs-key", "caSecretName": "private-ca"}}}
    pgc = sample_pgc(backup=gcs)
    pod = render("provision", "statefulset.yaml.j2", pgc=pgc)["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    for name in ("postgres", "pgbackrest"):
        mounts = {m["name"]: m["mountPath"] for m in containers[name]["volumeMounts"]}
        assert (mounts["backup-gcs"], mounts["backup-ca"]) == ("/etc/pgc/backup-gcs", "/etc/pgc/backup-ca")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["backup-gcs"]["secret"]["secretName"] == "gcs-key"
    job = render("provision", "cronjob-backup.yaml.j2", pgc=pgc)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {"backup-gcs", "backup-ca"} <= {v["name"] for v in job["volumes"]}
    conf = render("provision", "configmap-pgbackrest.yaml.j2", pgc=pgc)["data"]["job.conf"]
    assert "repo1-type=gcs" in conf and "repo1-gcs-key=/etc/pgc/backup-gcs/key.json" in conf


# Text a user wrote, as it reaches a template: the runtime marks the custom resource unsafe
# (markUnsafe in watches.yaml) and Ansible marks what a task registers unsafe; wrap_var stands
# in for both, so that a template renders what a play would give it.
USER_TEXT = 'it\'s "quoted" {{ 7 * 6 }}'


def test_backup_expire_job_runs_pgbackrest_expire_on_the_backup_set_for_the_cluster():
    pgc = sample_pgc(backup=S3)
    backup = wrap_var({"metadata": {"name": "nightly", "namespace": "prod", "uid": "b-1"},
                       "spec": {"cluster": "example", "expireOnDelete": True}})

    def expire_job(label, **variables):
        return render("reconcile_backup", "job-expire.yaml.j2", __reconcile_backup=backup,
                      __reconcile_backup_status=wrap_var({"label": label}), __reconcile_backup_pgc=wrap_var(pgc),
                      **variables)

    job = expire_job("20261129-020000F")
    meta = job["metadata"]
    assert (job["kind"], meta["name"], meta["namespace"]) == ("Job", "nightly-expire", "prod")
    assert meta["labels"] == {**pgc["labels"], "postgres.example.com/job": "expire", "postgres.example.com/backup": "nightly"}
    # Owned by the cluster: the PostgresBackup it runs for is being deleted.
    assert meta["ownerReferences"] == [pgc["owner_reference"]]
    assert (job["spec"]["ttlSecondsAfterFinished"], job["spec"]["activeDeadlineSeconds"]) == (3600, 600)
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"]["postgres.example.com/job"] == "expire"
    assert "postgres.example.com/cluster" not in pod["metadata"]["labels"]
    container = pod["spec"]["containers"][0]
    assert container["command"][:4] == ["bash", "-o", "pipefail", "-c"]
    # The set alone, never the backups built on it (pgc-expire.sh refuses those).
    assert container["command"][-1].startswith('rc=0; pgc-expire.sh "$PGC_BACKUP_SET" || rc=$?;')
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["PGC_BACKUP_SET"], env["PGBACKREST_STANZA"]) == ("20261129-020000F", "example")
    assert {"key": "job.conf", "path": "pgbackrest.conf"} in \
        {v["name"]: v for v in pod["spec"]["volumes"]}["pgbackrest-config"]["configMap"]["items"]
    # The set reaches pgBackRest through the environment, as it was written; the wait follows the deadline.
    odd = expire_job(USER_TEXT, reconcile_backup_expire_timeout=120)
    container = odd["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "PGC_BACKUP_SET", "value": USER_TEXT} in container["env"]
    assert USER_TEXT not in container["command"][-1]
    assert odd["spec"]["activeDeadlineSeconds"] == 120


def test_configure_dcs_config_annotation_carries_the_spec_and_keeps_what_the_operator_does_not_own():
    pgc = sample_pgc(configuration={"max_connections": "300", "application_name": USER_TEXT})
    # Patroni's dynamic configuration as read, with a key set by patronictl edit-config.
    current = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1048576,
               "synchronous_mode": False, "failsafe_mode": True,
               "postgresql": {"use_pg_rewind": True, "use_slots": True, "parameters": {"max_connections": "200"}}}
    dcs = pgc_filters.pgc_dcs_config(current, pgc)
    cm = render("configure", "configmap-dcs-config.yaml.j2", pgc=wrap_var(pgc), __configure_dcs=wrap_var(dcs))
    meta = cm["metadata"]
    assert (cm["kind"], meta["name"], meta["namespace"]) == ("ConfigMap", pgc["names"]["dcs_config"], "prod")
    assert meta["name"] == "example-config"
    # Patroni's own ConfigMap, merge-patched: its labels stay Patroni's, and it has no owner (the
    # cleanup role deletes it with the cluster, watches.yaml).
    assert "labels" not in meta and "ownerReferences" not in meta
    # Only the configuration: the annotation initialize (the system identifier) is left alone.
    assert list(meta["annotations"]) == ["config"]
    text = meta["annotations"]["config"]
    assert text == json.dumps(dcs, separators=(",", ":"), sort_keys=True)
    config = json.loads(text)
    assert config["postgresql"]["parameters"]["max_connections"] == "300"
    assert config["postgresql"]["parameters"]["wal_log_hints"] == "on"
    assert (config["failsafe_mode"], config["ttl"]) == (True, 30)
    assert config["postgresql"]["parameters"]["application_name"] == USER_TEXT


def test_credentials_backup_encryption_secret_holds_a_generated_passphrase_and_no_owner():
    pgc = sample_pgc(backup=S3)
    secret = render("credentials", "secret-backup-encryption.yaml.j2", pgc=pgc)
    meta = secret["metadata"]
    assert (secret["kind"], secret["type"], meta["name"], meta["namespace"]) == (
        "Secret", "Opaque", "example-backup-encryption", "prod")
    assert meta["labels"] == pgc["labels"]
    # No ownerReference: the backups it encrypts outlive the PostgresCluster, and so must the passphrase.
    assert "ownerReferences" not in meta
    # The Secret and key the members and the Jobs give pgBackRest as its cipher passphrase.
    cipher = {e["name"]: e for e in pgc_pgbackrest_environment(pgc)}["PGBACKREST_REPO1_CIPHER_PASS"]
    assert cipher["valueFrom"]["secretKeyRef"] == {"name": meta["name"], "key": "passphrase"}
    assert list(secret["stringData"]) == ["passphrase"]
    passphrase = secret["stringData"]["passphrase"]
    assert len(passphrase) == 64 and passphrase.isascii() and passphrase.isalnum()
    assert render("credentials", "secret-backup-encryption.yaml.j2", pgc=pgc)["stringData"]["passphrase"] != passphrase
    shorter = render("credentials", "secret-backup-encryption.yaml.j2", pgc=pgc, credentials_passphrase_length="20")
    assert len(shorter["stringData"]["passphrase"]) == 20


def test_provision_logical_backup_cronjob_dumps_the_databases_of_the_spec_on_their_schedule():
    pgc = sample_pgc(backup={**S3, "logical": {"schedule": "30 3 * * *", "databases": ["shop", "orders"], "retention": 5}})
    cron = render("provision", "cronjob-logical-backup.yaml.j2", pgc=pgc,
                  provision_backup_resources={"requests": {"cpu": "100m"}})
    meta = cron["metadata"]
    assert (cron["kind"], meta["name"], meta["namespace"]) == ("CronJob", pgc["names"]["logical_cronjob"], "prod")
    assert meta["name"] == "example-logical-backup"
    job_labels = {**pgc["labels"], "postgres.example.com/job": "logical-backup"}
    assert meta["labels"] == job_labels
    assert meta["ownerReferences"] == [pgc["owner_reference"]]
    spec = cron["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == ("30 3 * * *", "Etc/UTC", "Forbid")
    assert (spec["startingDeadlineSeconds"], spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (600, 3, 3)
    assert spec["jobTemplate"]["metadata"]["labels"] == job_labels
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 21600
    pod = spec["jobTemplate"]["spec"]["template"]
    assert "postgres.example.com/cluster" not in pod["metadata"]["labels"]
    assert pod["metadata"]["labels"]["postgres.example.com/job"] == "logical-backup"
    container = pod["spec"]["containers"][0]
    assert container["command"][-1].startswith('rc=0; pgc-logical-backup.sh | tee "$PGC_RESULT_FILE" || rc=$?;')
    assert container["resources"] == {"requests": {"cpu": "100m"}}
    env = {e["name"]: e for e in container["env"]}
    assert (env["PGC_LOGICAL_DATABASES"]["value"], env["PGC_LOGICAL_RETENTION"]["value"]) == ("shop,orders", "5")
    # pg_dump reaches the primary through the read-write Service, as the superuser with its client
    # certificate: no password where the superuser may not log in with one.
    assert (env["PGHOST"]["value"], env["PGPORT"]["value"], env["PGUSER"]["value"]) == ("example", "5432", "postgres")
    assert (env["PGSSLCERT"]["value"], env["PGSSLKEY"]["value"]) == ("/etc/pgc/superuser-tls/tls.crt",
                                                                     "/etc/pgc/superuser-tls/tls.key")
    assert "PGPASSWORD" not in env
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["superuser-tls"]["secret"]["secretName"] == "example-superuser-tls"
    assert volumes["backup-tls"]["secret"]["items"] == [{"key": k, "path": k} for k in ("ca.crt", "client.crt", "client.key")]
    # With password login allowed, the Job has the password too.
    password = render("provision", "cronjob-logical-backup.yaml.j2", pgc=sample_pgc(
        credentials={"superuserRemoteLogin": "password"}, backup={**S3, "logical": {"schedule": "@daily"}}))
    env = {e["name"]: e for e in password["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PGPASSWORD"] == {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "example-credentials", "key": "superuser-password"}}}


def test_provision_logical_backup_cronjob_dumps_the_application_database_unless_told_otherwise():
    pgc = sample_pgc(credentials={"appDatabase": "shopdb"}, backup={**S3, "logical": {"schedule": "@daily"}})
    container = render("provision", "cronjob-logical-backup.yaml.j2", pgc=pgc)[
        "spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["PGC_LOGICAL_DATABASES"], env["PGC_LOGICAL_RETENTION"]) == ("shopdb", "7")
    # The CRD's pattern refuses such a name; the Job does not depend on it: the name is data.
    odd = wrap_var(sample_pgc(backup={**S3, "logical": {"schedule": "@daily", "databases": [USER_TEXT]}}))
    container = render("provision", "cronjob-logical-backup.yaml.j2", pgc=odd)[
        "spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "PGC_LOGICAL_DATABASES", "value": USER_TEXT} in container["env"]
    assert USER_TEXT not in container["command"][-1]


def test_restore_dcs_pause_config_map_pauses_and_resumes_patroni_keeping_its_configuration():
    pgc = sample_pgc()
    # Patroni's dynamic configuration as the restore read it (a registered result).
    read = wrap_var({"ttl": 30, "loop_wait": 10, "failsafe_mode": True,
                     "postgresql": {"use_pg_rewind": True, "parameters": {"max_connections": "200",
                                                                           "application_name": USER_TEXT}}})
    configs = {}
    for pause in (True, False):
        cm = render("restore", "configmap-dcs-pause.yaml.j2", pgc=wrap_var(pgc), __restore_dcs=read, __restore_pause=pause)
        meta = cm["metadata"]
        assert (cm["kind"], meta["name"], meta["namespace"]) == ("ConfigMap", pgc["names"]["dcs_config"], "prod")
        assert meta["name"] == "example-config"
        # Applied over Patroni's own ConfigMap: its labels stay Patroni's, and it has no owner (the
        # cleanup role deletes it with the cluster, watches.yaml).
        assert "labels" not in meta and "ownerReferences" not in meta
        assert list(meta["annotations"]) == ["config"]  # initialize is left alone
        configs[pause] = meta["annotations"]["config"]
    assert configs[True] == json.dumps({**read, "pause": True}, separators=(",", ":"), sort_keys=True)
    assert json.loads(configs[True]) == {**read, "pause": True}
    assert json.loads(configs[False]) == {**read, "pause": False}
    assert json.loads(configs[False])["postgresql"]["parameters"]["application_name"] == USER_TEXT


def _member(name, role, ready=True):
    return {"metadata": {"name": name, "labels": {"postgres.example.com/cluster": "example", "role": role}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_switchover_failover_config_map_asks_patroni_to_hand_the_leader_lock_to_the_candidate():
    pgc = sample_pgc()
    pods = wrap_var([_member("example-0", "replica", ready=False), _member("example-1", "primary"),
                     _member("example-2", "replica"), _member("example-3", "replica")])
    cm = render("switchover", "configmap-failover.yaml.j2", pgc=wrap_var(pgc),
                __switchover_plan=wrap_var(pgc_filters.pgc_switchover_plan(pods)))
    meta = cm["metadata"]
    assert (cm["kind"], meta["name"], meta["namespace"]) == ("ConfigMap", pgc["names"]["dcs_failover"], "prod")
    assert meta["name"] == "example-failover"
    # Patroni reads the ConfigMaps with its own labels only.
    assert meta["labels"] == pgc_patroni_config(pgc)["kubernetes"]["labels"] == {"postgres.example.com/cluster": "example"}
    # Patroni's own ConfigMap: no owner; the cleanup role deletes it with the cluster (watches.yaml).
    assert "ownerReferences" not in meta
    # The first ready replica by ordinal takes over from the member Patroni labels primary.
    # The request is kept, with the timeline it was made on, for the failover history.
    assert meta["annotations"] == {"leader": "example-1", "member": "example-2",
                                   "postgres.example.com/switchover": "0 example-2"}
    chosen = render("switchover", "configmap-failover.yaml.j2", pgc=wrap_var(pgc),
                    __switchover_plan=wrap_var(pgc_filters.pgc_switchover_plan(pods, "example-3")))
    assert chosen["metadata"]["annotations"]["member"] == "example-3"


def test_switchover_wakeup_rewrites_patronis_configuration_as_text_with_the_version_read():
    pgc = sample_pgc()
    pods = wrap_var([_member("example-0", "primary"), _member("example-1", "replica")])
    config = {"metadata": {"name": "example-config", "resourceVersion": "812",
                           "annotations": {"config": '{"loop_wait":10,"postgresql":{"parameters":{"a":"b"}},"ttl":30}'}}}
    plan = pgc_filters.pgc_switchover_plan(pods, "", 0, wrap_var(config))
    cm = render("switchover", "configmap-wakeup.yaml.j2", pgc=wrap_var(pgc), __switchover_wakeup=wrap_var(plan["wakeup"]))
    assert (cm["metadata"]["name"], cm["metadata"]["namespace"]) == ("example-config", "prod")
    assert cm["metadata"]["resourceVersion"] == "812"
    # Text, not a mapping: the annotation is Patroni's JSON, the same configuration spelt otherwise.
    text = cm["metadata"]["annotations"]["config"]
    assert isinstance(text, str) and text != config["metadata"]["annotations"]["config"]
    assert json.loads(text) == json.loads(config["metadata"]["annotations"]["config"])


def test_patroni_api_secret_is_random_owned_by_the_cluster_and_issued_anew_when_gone():
    pgc = sample_pgc()
    first = render("credentials", "secret-patroni-api.yaml.j2", pgc=pgc)
    second = render("credentials", "secret-patroni-api.yaml.j2", pgc=pgc)
    assert (first["kind"], first["metadata"]["name"]) == ("Secret", "example-patroni-api")
    assert first["metadata"]["ownerReferences"] == [pgc["owner_reference"]]
    assert first["stringData"]["username"] == "patroni"
    assert len(first["stringData"]["password"]) >= 24
    assert first["stringData"]["password"] != second["stringData"]["password"]


@pytest.mark.parametrize("repository", ["volume", "s3"])
def test_provision_drill_cronjob_restores_into_a_scratch_volume_never_a_cluster_claim(repository):
    check = "SELECT count(*) > 0 FROM orders WHERE note = 'it''s $(reboot) `id`'"
    backup = {**S3} if repository == "s3" else {"repository": {"volume": {"size": "5Gi"}}}
    pgc = sample_pgc(backup={**backup, "drill": {"schedule": "0 4 * * 0", "check": check}}, storageSize="20Gi")
    cron = render("provision", "cronjob-drill.yaml.j2", pgc=pgc)
    meta = cron["metadata"]
    assert (cron["kind"], meta["name"], meta["namespace"]) == ("CronJob", "example-drill", "prod")
    assert meta["name"] == pgc["names"]["drill_cronjob"]
    job_labels = {**pgc["labels"], "postgres.example.com/job": "drill"}
    assert meta["labels"] == cron["spec"]["jobTemplate"]["metadata"]["labels"] == job_labels
    assert meta["ownerReferences"] == [pgc["owner_reference"]]
    spec = cron["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == ("0 4 * * 0", "Etc/UTC", "Forbid")
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0, "a failed drill is not run again before its schedule"
    pod = job["template"]
    assert "postgres.example.com/cluster" not in pod["metadata"]["labels"]
    assert pod["metadata"]["labels"]["postgres.example.com/job"] == "drill"
    assert pod["spec"]["serviceAccountName"] == "example-jobs"
    container = pod["spec"]["containers"][0]
    assert container["command"][-1].startswith("rc=0; pgc-drill.sh || rc=$?;")
    # The user's SQL is in the environment only, never in the command.
    assert check not in " ".join(container["command"]) and "orders" not in " ".join(container["command"])
    env = {e["name"]: e for e in container["env"]}
    assert env["PGC_DRILL_CHECK"] == {"name": "PGC_DRILL_CHECK", "value": check}
    assert (env["PGC_DRILL_DIR"]["value"], env["PGC_DRILL_USER"]["value"], env["PGC_DRILL_DATABASE"]["value"]) == (
        "/var/lib/postgresql/drill", "postgres", "app")
    assert env["PGC_RESULT_FILE"]["value"] == "/dev/termination-log"
    assert "PGHOST" not in env and "PGPASSWORD" not in env
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {"sizeLimit": "20Gi"}}
    assert not [v for v in volumes.values() if "persistentVolumeClaim" in v], "no claim of the cluster is mounted"
    assert "affinity" not in pod["spec"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["scratch"] == "/var/lib/postgresql/drill"
    # The members' configuration: PostgreSQL local, the repository as the pods reach it.
    assert volumes["pgbackrest-config"]["configMap"]["items"] == [{"key": "pod.conf", "path": "pgbackrest.conf"}]
    assert volumes["backup-tls"]["secret"]["items"] == [{"key": k, "path": k} for k in ("ca.crt", "client.crt", "client.key")]


def test_provision_drill_cronjob_scratch_size_and_no_check():
    pgc = sample_pgc(backup={**S3, "drill": {"schedule": "@weekly", "scratchSize": "50Gi"}})
    pod = render("provision", "cronjob-drill.yaml.j2", pgc=pgc)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["scratch"]["emptyDir"] == {"sizeLimit": "50Gi"}
    assert "PGC_DRILL_CHECK" not in {e["name"] for e in pod["containers"][0]["env"]}


def test_a_change_of_spec_resources_changes_only_the_pod_template_which_rolls_like_an_update():
    """Vertical scaling: new requests and limits make a new pod template (a new StatefulSet revision),
    whose members the configure step replaces replicas first, as for a new image."""
    from ansible_collections.postgres.cluster.plugins.module_utils.plans import pgc_restart_plan
    from tests.unit.plugins.module_utils.samples import cluster
    from tests.unit.plugins.module_utils.test_plans import updating

    small = render("provision", "statefulset.yaml.j2", pgc=sample_pgc(resources={"requests": {"cpu": "500m"}}))
    large = render("provision", "statefulset.yaml.j2",
                   pgc=sample_pgc(resources={"requests": {"cpu": "2"}, "limits": {"memory": "4Gi"}}))
    postgres = large["spec"]["template"]["spec"]["containers"][0]
    assert postgres["name"] == "postgres"
    assert postgres["resources"] == {"requests": {"cpu": "2"}, "limits": {"memory": "4Gi"}}
    assert small["spec"]["template"] != large["spec"]["template"]
    assert {k: v for k, v in small["spec"].items() if k != "template"} == \
        {k: v for k, v in large["spec"].items() if k != "template"}, "nothing but the pod template changes"
    small["spec"]["template"]["spec"]["containers"][0]["resources"] = postgres["resources"]
    assert small["spec"]["template"] == large["spec"]["template"], "the resources are all that differs"
    # The StatefulSet controller gives the template a new revision: members of the old one roll.
    plan = pgc_restart_plan(updating(), pgc_normalize(cluster(replicas=3, resources=postgres["resources"])))
    assert (plan["action"], plan["member"], plan["reason"]) == ("restart", "db-2", "RollingUpdate")
