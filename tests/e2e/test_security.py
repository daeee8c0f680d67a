"""What an attacker inside a cluster's pods can do with its tokens, and the namespaced install.

A member runs the user's image with the token of ``<name>-patroni``; a backup or restore Job with
the token of ``<name>-jobs``. The tests act as those accounts (kubectl --as, which the API server
authorizes and admits as the account itself) against a cluster the real operator provisioned:
RBAC (the Roles the operator wrote) and the admission policy pgc-cluster-accounts
(config/admission, installed with the operator's RBAC) decide together. Server-side apply is how
the tests write: it sends the change alone, without a read that the accounts may not make.
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.helpers import (REPO, Operator, apply, env, get, kubectl, kubectl_json, metric_value, operator_kubeconfig,
                               postgres_cluster, stable_resource_versions, unique_name, wait_for, wait_for_phase)

S3_BACKUP = {"repository": {"s3": {"endpoint": "minio.storage.svc:9000", "bucket": "pg-backups",
                                   "secretName": "s3-keys", "uriStyle": "path"}}}
POLICY = "pgc-cluster-accounts"


def account(namespace, name):
    return f"system:serviceaccount:{namespace}:{name}"


def as_account(user, namespace, *args, input=None):
    """kubectl as ``user``; returns the finished process, refused or not."""
    return subprocess.run(["kubectl", f"--as={user}", "-n", namespace, *args], env=env(), capture_output=True,
                          text=True, input=input)


def apply_as(user, namespace, obj):
    """Server-side apply of ``obj`` (the fields to set, nothing else) as ``user``."""
    return as_account(user, namespace, "apply", "--server-side", "--force-conflicts", "--field-manager=e2e-attacker",
                      "-f", "-", input=json.dumps(obj))


def can_i(user, namespace, verb, what, subresource=None):
    args = ["auth", "can-i", verb, what] + ([f"--subresource={subresource}"] if subresource else [])
    proc = subprocess.run(["kubectl", *args, "-n", namespace, f"--as={user}"], env=env(), capture_output=True, text=True)
    return proc.stdout.strip() == "yes"


def pod_patch(name, **metadata):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **metadata}}


def cluster_patch(name, spec=None, **metadata):
    obj = {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster", "metadata": {"name": name, **metadata}}
    if spec:
        obj["spec"] = spec
    return obj


def refused_by_policy(proc):
    return proc.returncode != 0 and f"ValidatingAdmissionPolicy '{POLICY}'" in proc.stderr


def refused_by_rbac(proc):
    return proc.returncode != 0 and "forbidden" in proc.stderr and "ValidatingAdmissionPolicy" not in proc.stderr


@pytest.fixture
def two_clusters(operator, namespace):
    """Clusters db and other (two members each, an S3 repository, hence backup Jobs' accounts) in one
    namespace, Running."""
    kubectl("create", "secret", "generic", "s3-keys", "-n", namespace,
            "--from-literal=access-key-id=AKIAEXAMPLE", "--from-literal=secret-access-key=not-a-real-key")
    for name in ("db", "other"):
        apply(postgres_cluster(name, replicas=2, backup=S3_BACKUP), namespace)
    for name in ("db", "other"):
        wait_for_phase(name, namespace, "Running", ready=2)
    return namespace


def test_a_member_may_set_its_role_label_and_annotations_and_nothing_else_of_a_pod(two_clusters):
    """What Patroni does (its role label, its status annotation) is allowed; a new image in a member,
    a relabel into another cluster's Services, another label, a finalizer are refused by the policy,
    and another cluster's pod by RBAC. Nothing refused is changed."""
    ns = two_clusters
    patroni = account(ns, "db-patroni")
    image = get("pod", "db-0", ns)["spec"]["containers"][0]["image"]

    done = apply_as(patroni, ns, pod_patch("db-0", labels={"role": "primary"},
                                           annotations={"status": '{"state":"running","role":"primary"}'}))
    assert done.returncode == 0, done.stderr
    pod = get("pod", "db-0", ns)
    assert pod["metadata"]["labels"]["role"] == "primary"
    assert pod["metadata"]["annotations"]["status"] == '{"state":"running","role":"primary"}'

    new_image = apply_as(patroni, ns, {**pod_patch("db-0"), "spec": {"containers": [{"name": "postgres",
                                                                                      "image": "evil.example/pg:1"}]}})
    assert refused_by_policy(new_image), new_image.stderr
    assert "may not change a pod's spec" in new_image.stderr
    relabel = apply_as(patroni, ns, pod_patch("db-1", labels={"postgres.example.com/cluster": "other", "role": "primary"}))
    assert refused_by_policy(relabel), relabel.stderr
    other_label = apply_as(patroni, ns, pod_patch("db-1", labels={"app.kubernetes.io/instance": "other"}))
    assert refused_by_policy(other_label), other_label.stderr
    finalizer = apply_as(patroni, ns, pod_patch("db-1", finalizers=["example.com/keep"]))
    assert refused_by_policy(finalizer), finalizer.stderr
    other_pod = apply_as(patroni, ns, pod_patch("other-0", labels={"role": "primary"}))
    assert refused_by_rbac(other_pod), other_pod.stderr

    pods = {p["metadata"]["name"]: p for p in kubectl_json("get", "pods", "-n", ns)["items"]}
    assert pods["db-0"]["spec"]["containers"][0]["image"] == image
    assert pods["db-1"]["metadata"]["labels"]["postgres.example.com/cluster"] == "db"
    assert pods["db-1"]["metadata"]["labels"]["app.kubernetes.io/instance"] == "db"
    assert not pods["db-1"]["metadata"].get("finalizers")
    assert "role" not in pods["other-0"]["metadata"]["labels"]


def test_a_clusters_accounts_may_stamp_their_cluster_and_change_nothing_else_of_it(two_clusters):
    """The callback's stamp, from a member or a Job, goes through; the spec, another annotation and
    another cluster are refused."""
    ns = two_clusters
    before = get("pgc", "db", ns)
    for name in ("db-patroni", "db-jobs"):
        user = account(ns, name)
        stamp = apply_as(user, ns, cluster_patch("db", annotations={"postgres.example.com/member-event": f"e2e {name}"}))
        assert stamp.returncode == 0, stamp.stderr
        assert get("pgc", "db", ns)["metadata"]["annotations"]["postgres.example.com/member-event"] == f"e2e {name}"
        for change in (cluster_patch("db", spec={"image": "evil.example/pg:1"}),
                       cluster_patch("db", spec={"replicas": 5}),
                       cluster_patch("db", annotations={"postgres.example.com/restore-in-progress": "e2e"}),
                       cluster_patch("db", labels={"e2e": "x"})):
            proc = apply_as(user, ns, change)
            assert refused_by_policy(proc), (name, change, proc.stderr)
        other = apply_as(user, ns, cluster_patch("other", annotations={"postgres.example.com/member-event": "e2e"}))
        assert refused_by_rbac(other), other.stderr
    after = get("pgc", "db", ns)
    assert after["spec"] == before["spec"]
    assert "postgres.example.com/restore-in-progress" not in after["metadata"].get("annotations", {})


def test_patroni_creates_only_its_own_clusters_configmaps(two_clusters):
    """RBAC cannot name an object before it exists: the policy refuses another cluster's Patroni
    ConfigMap (which would steer that cluster, or hold its lock) and any other name, and a ConfigMap
    of its own labelled for another cluster."""
    ns = two_clusters
    patroni = account(ns, "db-patroni")
    for name in ("other-config", "other-failover", "other-leader", "db-scripts"):
        proc = as_account(patroni, ns, "create", "configmap", name, "--from-literal=x=y")
        assert refused_by_policy(proc), (name, proc.stderr)
        assert get("configmap", name, ns) is None, name
    mislabelled = apply_as(patroni, ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "db-sync", "labels": {"postgres.example.com/cluster": "other"}}})
    assert refused_by_policy(mislabelled), mislabelled.stderr
    own = apply_as(patroni, ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "db-sync", "labels": {"postgres.example.com/cluster": "db"}, "annotations": {"leader": "db-0"}}})
    assert own.returncode == 0, own.stderr


# (verb, what[, subresource]) each account the operator creates may, or may not, do in its namespace.
PATRONI_MAY = [
    ("get", "configmaps/db-leader"), ("patch", "configmaps/db-leader"), ("patch", "configmaps/db-config"),
    ("patch", "configmaps/db-failover"), ("patch", "configmaps/db-sync"), ("create", "configmaps"),
    ("list", "configmaps"), ("watch", "configmaps"), ("list", "pods"), ("watch", "pods"),
    ("patch", "pods/db-0"), ("patch", "pods/db-1"), ("patch", "postgresclusters.postgres.example.com/db"),
]
PATRONI_MAY_NOT = [
    ("patch", "configmaps/other-leader"), ("patch", "configmaps/db-patroni"), ("patch", "configmaps/other-patroni"),
    ("update", "configmaps/db-leader"), ("delete", "configmaps/db-leader"), ("deletecollection", "configmaps"),
    ("patch", "pods/other-0"), ("patch", "pods/db-2"), ("update", "pods/db-0"), ("delete", "pods/db-0"),
    ("create", "pods"), ("create", "pods", "exec"), ("patch", "pods", "status"), ("get", "secrets"), ("list", "secrets"),
    ("get", "secrets/db-credentials"), ("patch", "postgresclusters.postgres.example.com/other"),
    ("update", "postgresclusters.postgres.example.com/db"), ("delete", "postgresclusters.postgres.example.com/db"),
    ("get", "postgresclusters.postgres.example.com/db"), ("patch", "postgresclusters.postgres.example.com/db", "status"),
    ("patch", "statefulsets.apps/db"), ("patch", "services/db"),
    ("create", "endpoints"), ("create", "services"), ("create", "roles.rbac.authorization.k8s.io"),
]
JOBS_MAY = [("patch", "postgresclusters.postgres.example.com/db")]
JOBS_MAY_NOT = [
    ("patch", "postgresclusters.postgres.example.com/other"), ("get", "postgresclusters.postgres.example.com/db"),
    ("get", "secrets/db-credentials"), ("list", "secrets"), ("list", "pods"), ("patch", "pods/db-0"),
    ("create", "configmaps"), ("patch", "configmaps/db-leader"), ("list", "configmaps"), ("create", "pods"),
]


def test_each_account_the_operator_creates_may_do_what_its_pods_need_and_no_more(two_clusters):
    """Patroni's account: its cluster's ConfigMaps and members by name, list and watch, the stamp; the
    Jobs' account: the stamp. Neither reads a Secret, touches the other cluster, or acts elsewhere."""
    ns = two_clusters
    wrong = []
    for name, may, may_not in (("db-patroni", PATRONI_MAY, PATRONI_MAY_NOT), ("db-jobs", JOBS_MAY, JOBS_MAY_NOT)):
        user = account(ns, name)
        wrong += [(name, "may not") + check for check in may if not can_i(user, ns, *check)]
        wrong += [(name, "may") + check for check in may_not if can_i(user, ns, *check)]
        wrong += [(name, "may, elsewhere") + check for check in (("list", "pods"), ("create", "configmaps"))
                  if can_i(user, "default", *check)]
    assert not wrong, wrong
    # The members run as Patroni's account, the Jobs as theirs, owned by the cluster.
    assert get("statefulset", "db", ns)["spec"]["template"]["spec"]["serviceAccountName"] == "db-patroni"
    assert get("serviceaccount", "db-jobs", ns)["metadata"]["ownerReferences"][0]["name"] == "db"


def test_another_applications_account_named_like_ours_keeps_working_on_its_own_objects(namespace):
    """The policy knows the accounts by name only: another application's <name>-jobs still relabels and
    creates its own ConfigMaps; only the operator's pods, PostgresClusters and the ConfigMaps of a
    -patroni account are held."""
    operator_kubeconfig()  # installs the policy, as for the operator
    kubectl("create", "serviceaccount", "ci-jobs", "-n", namespace)
    kubectl("create", "role", "ci", "-n", namespace, "--verb=get,create,patch", "--resource=pods,configmaps")
    kubectl("create", "rolebinding", "ci", "-n", namespace, "--role=ci", f"--serviceaccount={namespace}:ci-jobs")
    kubectl("create", "configmap", "ci-owned", "-n", namespace, "--from-literal=x=y")
    user = account(namespace, "ci-jobs")
    own = apply_as(user, namespace, {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "ci-owned", "labels": {"step": "2"}}})
    assert own.returncode == 0, own.stderr
    created = as_account(user, namespace, "create", "configmap", "ci-state", "--from-literal=x=y")
    assert created.returncode == 0, created.stderr


# --- the namespaced install ----------------------------------------------------------------------

def namespaced_rbac(namespace, service_account):
    """config/namespaced's Role and RoleBinding for ``namespace``, bound to ``service_account`` of
    that namespace (so that everything goes with it)."""
    built = kubectl("kustomize", str(REPO / "config/namespaced"))
    objects = [d for d in yaml.safe_load_all(built) if d and d["kind"] in ("Role", "RoleBinding")
               and d["metadata"]["name"] == "pgc-operator"]
    assert {d["kind"] for d in objects} == {"Role", "RoleBinding"}
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
        if obj["kind"] == "RoleBinding":
            obj["subjects"] = [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]
    return {"apiVersion": "v1", "kind": "List", "items": objects}


def token_kubeconfig(path, namespace, service_account):
    """A kubeconfig that acts as ``service_account``, as hack/operator-kubeconfig.sh writes one."""
    admin = json.loads(kubectl("config", "view", "--minify", "--raw", "-o", "json"))
    cluster = dict(admin["clusters"][0]["cluster"])
    if "certificate-authority" in cluster:
        with open(cluster.pop("certificate-authority"), "rb") as f:
            cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
    token = kubectl("create", "token", service_account, "-n", namespace, "--duration=1h").strip()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "namespaced",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": "namespaced", "context": {"cluster": "local", "user": service_account}}]}))
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def namespaced_operator(operator, namespace, tmp_path):
    """The operator with config/namespaced's permissions in ``namespace`` only and WATCH_NAMESPACE set
    to it, in place of the session's operator (they share their ports), which starts again after."""
    kubectl("create", "serviceaccount", "pgc-operator", "-n", namespace)
    kubectl("apply", "--server-side", "--field-manager=e2e", "-f", "-", input=json.dumps(namespaced_rbac(namespace, "pgc-operator")))
    kubeconfig = token_kubeconfig(tmp_path / "kubeconfig", namespace, "pgc-operator")
    operator.stop()
    scoped = Operator()
    scoped.log_path = scoped.log_path.with_name("e2e-operator-namespaced.log")
    scoped.metrics_log_path = scoped.metrics_log_path.with_name("e2e-cluster-metrics-namespaced.log")
    try:
        scoped.start({"KUBECONFIG": kubeconfig, "PGC_API_KUBECONFIG": kubeconfig, "WATCH_NAMESPACE": namespace})
        try:
            yield scoped
        finally:
            # Its clusters' finalizers need it: they are deleted while it runs.
            kubectl("delete", "pgc", "--all", "-n", namespace, "--wait=false", check=False)
            wait_for(lambda: not kubectl_json("get", "pgc", "-n", namespace)["items"], 90,
                     "the namespaced operator did not finish deleting its clusters")
    finally:
        scoped.stop()
        operator.start()


def test_a_namespaced_operator_reconciles_its_namespace_and_never_sees_another(namespaced_operator, namespace):
    """WATCH_NAMESPACE and Roles in that namespace only: its cluster reaches Running with its objects
    and metrics; a cluster elsewhere, applied first, gets nothing (no finalizer, no status, no
    StatefulSet), and neither log mentions it or shows a refused request. Its account can do nothing
    outside its namespace."""
    elsewhere = unique_name("elsewhere")
    kubectl("create", "namespace", elsewhere)
    try:
        # First: an operator that saw it would have reconciled it before the other is Running.
        apply(postgres_cluster("db", replicas=1), elsewhere)
        apply(postgres_cluster("db", replicas=2), namespace)
        wait_for_phase("db", namespace, "Running", ready=2)
        for kind, name in (("statefulset", "db"), ("role", "db-patroni"), ("configmap", "db-patroni"),
                           ("secret", "db-credentials"), ("service", "db-ro")):
            assert get(kind, name, namespace), (kind, name)
        wait_for(lambda: metric_value(namespaced_operator.scrape(), "postgres_cluster_desired_replicas",
                                      name="db", namespace=namespace) == 2, 30, "no metrics of the watched cluster")

        ignored = get("pgc", "db", elsewhere)
        assert "status" not in ignored and not ignored["metadata"].get("finalizers"), ignored
        assert get("statefulset", "db", elsewhere) is None and get("secret", "db-credentials", elsewhere) is None
        assert metric_value(namespaced_operator.scrape(), "postgres_cluster_desired_replicas",
                            name="db", namespace=elsewhere) is None
        log = namespaced_operator.log()
        assert elsewhere not in log
        refused = [line for line in log.splitlines() if "forbidden" in line.lower()]
        assert not refused, "\n".join(refused[:20])
        metrics_log = namespaced_operator.metrics_log_path.read_text(errors="replace")
        assert elsewhere not in metrics_log and "forbidden" not in metrics_log.lower(), metrics_log[-2000:]
    finally:
        kubectl("delete", "namespace", elsewhere, "--wait=false", check=False)

    user = account(namespace, "pgc-operator")
    assert can_i(user, namespace, "create", "statefulsets.apps") and can_i(user, namespace, "patch", "pods")
    for check in (("list", "postgresclusters.postgres.example.com"), ("create", "statefulsets.apps"),
                  ("get", "secrets"), ("patch", "pods")):
        assert not can_i(user, elsewhere, *check), check


# --- server certificates from cert-manager -------------------------------------------------------

CERT_MANAGER_CRDS = Path(__file__).parent / "fixtures/cert-manager-crds.yaml"
CERTIFICATE = "certificates.cert-manager.io"


def wait_for_status_message(name, namespace, text, timeout=60):
    """The cluster's status message, once it holds ``text``."""
    def message():
        found = ((get("pgc", name, namespace) or {}).get("status") or {}).get("message", "")
        return found if text in found else None
    return wait_for(message, timeout, f"the status of {namespace}/{name} does not say {text!r}")


def _play_cert_manager(certificate, namespace):
    """What cert-manager does for ``certificate``: a certificate for its names, signed by a CA of
    its own, in the Secret it names, labelled from its secretTemplate."""
    import tests.unit.conftest  # noqa: F401 - makes ansible_collections.postgres.cluster importable
    from ansible_collections.postgres.cluster.plugins.module_utils.tls import issue
    spec = certificate["spec"]
    bundle = issue("e2e issuer", f"{namespace}/{spec['issuerRef']['name']}", spec["commonName"], spec["dnsNames"])
    apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
           "metadata": {"name": spec["secretName"], "labels": spec["secretTemplate"]["labels"]},
           "stringData": bundle}, namespace)


@pytest.fixture
def cert_manager_api(operator, namespace):
    """cert-manager's Certificate served (the definition alone: no cert-manager runs). Afterwards the
    namespace's clusters go first, then the definition, so that later tests see none."""
    kubectl("apply", "--server-side", "-f", str(CERT_MANAGER_CRDS))
    kubectl("wait", "--for=condition=Established", f"crd/{CERTIFICATE}", "--timeout=60s")
    try:
        yield
    finally:
        kubectl("delete", "pgc", "--all", "-n", namespace, "--wait=true", "--timeout=120s", check=False)
        kubectl("delete", "-f", str(CERT_MANAGER_CRDS), "--ignore-not-found", "--wait=true")


def test_a_cluster_with_an_issuer_waits_for_cert_managers_secret_then_mounts_it(operator, namespace,
                                                                                 cert_manager_api):
    """spec.tls.issuerRef: the operator applies the Certificate <name>-tls for the cluster's Services
    and members, never writes the Secret itself, and says in status that the cluster waits for
    cert-manager. Once the Secret is there, the members mount it and the cluster runs; a reconcile
    after that leaves the Certificate as it is."""
    issuer = {"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    apply(postgres_cluster("db", replicas=1, tls={"issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}), namespace)

    certificate = wait_for(lambda: get(CERTIFICATE, "db-tls", namespace), 60, "no Certificate db-tls")
    spec = certificate["spec"]
    assert (spec["secretName"], spec["commonName"], spec["issuerRef"]) == ("db-tls", "db", issuer)
    assert {"db", f"db.{namespace}.svc", f"db-ro.{namespace}.svc.cluster.local",
            f"*.db-pods.{namespace}.svc"} <= set(spec["dnsNames"]), spec["dnsNames"]
    assert spec["privateKey"] == {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
    owner = certificate["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("PostgresCluster", "db")
    assert certificate["metadata"]["labels"]["postgres.example.com/cluster"] == "db"

    message = wait_for_status_message("db", namespace, "waits for cert-manager")
    assert "Certificate db-tls" in message and "Secret db-tls does not exist yet" in message, message
    # Waiting is not a failure: Pending, and looked at again soon rather than retried with back-off.
    status = get("pgc", "db", namespace)["status"]
    assert status["phase"] == "Pending", status
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Ready"] == "CertificatePending", status
    assert get("secret", "db-tls", namespace) is None, "the operator issued the Secret cert-manager writes"
    assert get("statefulset", "db", namespace) is None

    _play_cert_manager(certificate, namespace)
    sts = wait_for(lambda: get("statefulset", "db", namespace), 90, "no StatefulSet once the Secret was written")
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "db-tls"
    wait_for_phase("db", namespace, "Running", ready=1)
    assert get("secret", "db-tls", namespace)["metadata"].get("ownerReferences") is None, "the operator took the Secret"

    # A reconcile of the unchanged cluster: no changed task, the Certificate not written.
    stable_resource_versions(namespace)
    version = get(CERTIFICATE, "db-tls", namespace)["metadata"]["resourceVersion"]
    runs = len(operator.recaps("db", namespace))
    kubectl("annotate", "pgc", "db", "-n", namespace, "--overwrite",
            f"postgres.example.com/member-event={datetime.datetime.now().isoformat()} e2e")
    wait_for(lambda: len(operator.recaps("db", namespace)) > runs, 60, "no reconcile after the stamp")
    assert operator.recaps("db", namespace)[-1][1] == 0, operator.log_tail(80)
    assert get(CERTIFICATE, "db-tls", namespace)["metadata"]["resourceVersion"] == version


def test_a_cluster_with_an_issuer_where_cert_manager_is_not_served_names_the_field(operator, namespace):
    """Without cert-manager's API the cluster fails with a message naming spec.tls.issuerRef, and
    nothing issues its server certificate."""
    kubectl("delete", "-f", str(CERT_MANAGER_CRDS), "--ignore-not-found", "--wait=true")
    apply(postgres_cluster("db", replicas=1, tls={"issuerRef": {"name": "ca"}}), namespace)
    message = wait_for_status_message("db", namespace, "spec.tls.issuerRef")
    assert "does not serve cert-manager's Certificate (cert-manager.io/v1)" in message, message
    status = get("pgc", "db", namespace)["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False" and "spec.tls.issuerRef" in conditions["Ready"]["message"]
    assert get("secret", "db-tls", namespace) is None and get("statefulset", "db", namespace) is None
