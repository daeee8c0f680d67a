"""What config/ installs: the admission policy that holds the clusters' own accounts, and the
operator's permissions, as kustomize builds them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from ansible_collections.postgres.cluster.plugins.module_utils import names, tls
from ansible_collections.postgres.cluster.plugins.module_utils.k8s_client import KNOWN_RESOURCES, UNCACHED_KINDS

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def build(path):
    """The objects `kubectl kustomize config/<path>` renders, by (kind, name, namespace or None)."""
    kubectl = shutil.which("kubectl")
    # A layer that cannot run fails: `make unit` builds kubectl first.
    assert kubectl is not None, "kubectl is not on PATH: run `make binaries` (hack/build-binaries.sh)"
    out = subprocess.run([kubectl, "kustomize", str(REPO / "config" / path)], check=True, capture_output=True,
                         text=True).stdout
    return {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")): d for d in yaml.safe_load_all(out) if d}


def policy():
    return yaml.safe_load((REPO / "config/admission/policy.yaml").read_text())


def test_admission_policy_holds_the_accounts_the_provision_role_creates():
    text = (REPO / "config/admission/policy.yaml").read_text()
    suffixes = {names.NAME_SUFFIXES["patroni_account"], names.NAME_SUFFIXES["jobs_account"]}
    # The accounts are recognised by their suffixes, which carry no other dash: a cluster is its
    # account's name up to the last dash.
    for suffix in suffixes:
        assert f"endsWith('{suffix}')" in text and "-" not in suffix[1:]
    assert names.MEMBER_EVENT_ANNOTATION in text and names.CLUSTER_LABEL in text
    # The operator's pods, by the label every one of them carries.
    assert "'app.kubernetes.io/managed-by'].orValue('') == '%s'" % names.MANAGED_BY in text
    assert names.labels("db")["app.kubernetes.io/managed-by"] == names.MANAGED_BY
    for suffix in names.PATRONI_CONFIGMAP_SUFFIXES.values():
        assert f"variables.cluster + '{suffix}'" in text


def test_admission_policy_watches_the_writes_rbac_cannot_limit_and_denies():
    spec = policy()["spec"]
    rules = {(tuple(r["apiGroups"]), r["resources"][0]): set(r["operations"]) for r in spec["matchConstraints"]["resourceRules"]}
    assert rules == {(("",), "pods"): {"UPDATE"}, (("",), "configmaps"): {"CREATE", "UPDATE"},
                     ((names.GROUP,), names.PLURAL): {"UPDATE"}}
    assert spec["failurePolicy"] == "Fail"
    binding = yaml.safe_load((REPO / "config/admission/binding.yaml").read_text())
    assert binding["spec"] == {"policyName": policy()["metadata"]["name"], "validationActions": ["Deny"]}


def test_default_install_includes_the_admission_policy_and_keeps_cluster_objects_out_of_namespaces():
    objects = build("default")
    assert ("ValidatingAdmissionPolicy", "pgc-cluster-accounts", None) in objects
    assert ("ValidatingAdmissionPolicyBinding", "pgc-cluster-accounts", None) in objects
    assert ("ValidatingAdmissionPolicy", "pgc-operator-secrets", None) in objects
    assert ("ValidatingAdmissionPolicyBinding", "pgc-operator-secrets", None) in objects
    for kind, name, namespace in objects:
        assert namespace == (None if kind in CLUSTER_SCOPED else "pgc-system"), (kind, name)


def test_operator_secrets_policy_holds_the_secrets_the_certificates_action_writes():
    from ansible_collections.postgres.cluster.plugins.module_utils.tls import RENEW_AFTER_ANNOTATION
    policy, binding = yaml.safe_load_all((REPO / "config/admission/operator-secrets.yaml").read_text())
    spec = policy["spec"]
    assert spec["matchConstraints"]["resourceRules"] == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["secrets"]}]
    assert spec["failurePolicy"] == "Fail"
    # The Secrets the action writes carry the annotation and the cluster label the policy asks for.
    text = yaml.safe_dump(spec)
    assert RENEW_AFTER_ANNOTATION in text and names.CLUSTER_LABEL in text
    assert names.CLUSTER_LABEL in names.labels("db")
    assert "endsWith(':pgc-operator')" in text
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}


# --- the operator's permissions ------------------------------------------------------------------

# The roles the operator runs (watches.yaml and what they include); the restore and switchover
# playbooks run by hand with the person's own credentials. restore's from_backup.yml is the one
# file of restore that a reconcile includes.
OPERATOR_TASKS = [p for role in ("reconcile", "validate", "observe", "credentials", "scale", "switchover", "configure",
                                 "provision", "status", "cleanup", "reconcile_backup")
                  for p in sorted((REPO / "roles" / role / "tasks").glob("*.yml"))] + [
    REPO / "roles/restore/tasks/from_backup.yml"]


def cluster_role():
    [role] = [d for d in yaml.safe_load_all((REPO / "config/rbac/role.yaml").read_text()) if d]
    return role


def granted(role):
    """{(apiGroup, resource): verbs} of a Role or ClusterRole without resourceNames."""
    grants = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def resource_of(api_version, kind):
    group = api_version.rpartition("/")[0]
    return group, KNOWN_RESOURCES[kind][0]


def _tasks(items):
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _template_kind(role, name):
    text = (REPO / "roles" / role / "templates" / name).read_text()
    return re.search(r"^apiVersion: (\S+)$", text, re.M).group(1), re.search(r"^kind: (\w+)$", text, re.M).group(1)


def _with_role_vars(path, expression):
    """``expression`` with the role's own variables it names (vars/main.yml) put in."""
    role_vars = path.parents[1] / "vars" / "main.yml"
    variables = yaml.safe_load(role_vars.read_text()) if role_vars.is_file() else {}
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(variables.get(m.group(1), m.group(0))), expression)


def _applied_kinds():
    """(apiVersion, kind) -> verbs of each object the operator's roles render and write: created once
    (create_only), else server-side applied or patched, which may create it."""
    kinds = {}
    for path in OPERATOR_TASKS:
        role = path.parts[-3]
        for task in _tasks(yaml.safe_load(path.read_text())):
            args = task.get("postgres.cluster.k8s_apply") or task.get("kubernetes.core.k8s") or {}
            if not args.get("template"):
                continue
            verbs = {"get", "create"} if args.get("create_only") else {"get", "create", "patch"}
            for name in re.findall(r"[\w-]+\.yaml\.j2", _with_role_vars(path, str(args["template"]))):
                kinds.setdefault(_template_kind(role, name), set()).update(verbs)
    return kinds


def _deleted_kinds():
    """What the operator's roles delete: k8s_apply's `absent` and kubernetes.core's state absent."""
    kinds = set()
    for path in OPERATOR_TASKS:
        text = _with_role_vars(path, path.read_text())
        kinds.update(re.findall(r"['\"]?apiVersion['\"]?: ['\"]?([\w./]+)['\"]?, ['\"]?kind['\"]?: ['\"]?(\w+)", text))
        for block in re.findall(r"state: absent\n((?:\s+\w+: .*\n)+)", text):
            fields = dict(re.findall(r"(\w+): (\S+)", block))
            kinds.add((fields["api_version"], fields["kind"]))
    return kinds


def test_operator_may_apply_what_its_roles_render_and_delete_what_they_remove():
    grants = granted(cluster_role())
    applied = _applied_kinds()
    assert {"StatefulSet", "Role", "Secret", "Job", "CronJob", "ConfigMap"} <= {kind for _, kind in applied}
    for (api_version, kind), need in applied.items():
        if kind not in UNCACHED_KINDS:
            need |= {"list", "watch"}  # read through the runtime's proxy: an informer of that kind
        assert need <= grants.get(resource_of(api_version, kind), set()), kind
    deleted = _deleted_kinds()
    assert {("v1", "Pod"), ("apps/v1", "StatefulSet"), ("v1", "ConfigMap"), ("batch/v1", "CronJob")} <= deleted
    for api_version, kind in deleted:
        assert "delete" in grants.get(resource_of(api_version, kind), set()), kind


def test_operator_holds_no_wildcard_no_update_of_workloads_and_secrets_by_name_only():
    grants = granted(cluster_role())
    assert all("*" not in verbs and "*" not in key[1] for key, verbs in grants.items())
    # update (PUT) only where the runtime sets finalizers; everything else is server-side applied.
    assert {key for key, verbs in grants.items() if "update" in verbs} == {
        ("postgres.example.com", "postgresclusters"), ("postgres.example.com", "postgresbackups"),
        ("postgres.example.com", "postgresclusters/finalizers"), ("postgres.example.com", "postgresbackups/finalizers")}
    # patch for the certificates it renews; config/admission holds it to those.
    assert grants[("", "secrets")] == {"get", "create", "patch"}
    # Jobs are created and read straight from the API server, never watched; deleted only by a major
    # upgrade, which runs its Jobs again under the same names when it is tried again.
    assert grants[("batch", "jobs")] == {"get", "list", "create", "delete"}
    assert "escalate" not in set().union(*grants.values()) and "bind" not in set().union(*grants.values())
    assert grants[("networking.k8s.io", "networkpolicies")] == {"get", "list", "watch", "create", "patch", "delete"}


def test_operator_may_apply_and_watch_the_certificate_of_cert_manager_and_no_more():
    """The credentials role applies pgc_server_certificate's object (a definition, not a template);
    observe reads it through the runtime's proxy, which watches it."""
    tasks = [t for t in _tasks(yaml.safe_load((REPO / "roles/credentials/tasks/server_certificate.yml").read_text()))
             if "pgc_server_certificate" in str(t.get("postgres.cluster.k8s_apply", {}).get("definition", ""))
             or "pgc_server_certificate" in str(t.get("vars", {}))]
    assert tasks, "the credentials role no longer applies the Certificate"
    grants = granted(cluster_role())
    key = resource_of(tls.CERTIFICATE_API_VERSION, tls.CERTIFICATE_KIND)
    assert key == ("cert-manager.io", "certificates")
    # Server-side applied (patch), never updated nor deleted: it goes with its cluster.
    assert grants[key] == {"get", "list", "watch", "create", "patch"}


# --- the two installs -----------------------------------------------------------------------------

def _manager(objects):
    deployment = objects[("Deployment", "pgc-operator", "pgc-system")]
    pod = deployment["spec"]["template"]["spec"]
    watch = {c["name"]: {e["name"]: e.get("value") for e in c.get("env", [])}.get("WATCH_NAMESPACE")
             for c in pod["containers"]}
    return deployment["metadata"]["namespace"], pod["serviceAccountName"], watch


def test_cluster_wide_install_binds_the_cluster_role_and_watches_every_namespace():
    objects = build("default")
    namespace, account, watch = _manager(objects)
    assert watch == {"manager": "", "cluster-metrics": ""}
    binding = objects[("ClusterRoleBinding", "pgc-operator", None)]
    assert binding["roleRef"]["name"] == "pgc-operator" and ("ClusterRole", "pgc-operator", None) in objects
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]


def test_namespaced_install_grants_roles_in_exactly_the_namespaces_it_watches():
    objects = build("namespaced")
    assert not {kind for kind, _, _ in objects} & {"ClusterRole", "ClusterRoleBinding"}
    namespace, account, watch = _manager(objects)
    # ansible-operator and the metrics container read the same comma-separated list.
    assert len(set(watch.values())) == 1
    watched = {ns.strip() for ns in watch["manager"].split(",")}
    assert watched and "" not in watched
    roles = {ns for kind, name, ns in objects if kind == "Role" and name == "pgc-operator"}
    bindings = [o for (kind, name, _), o in objects.items() if kind == "RoleBinding" and name == "pgc-operator"]
    assert roles == watched == {b["metadata"]["namespace"] for b in bindings}
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pgc-operator"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    # The cluster-wide objects it still needs, and its own namespace's leader election.
    for key in (("CustomResourceDefinition", "postgresclusters.postgres.example.com", None),
                ("ValidatingAdmissionPolicy", "pgc-cluster-accounts", None),
                ("Role", "pgc-operator-leader-election", namespace)):
        assert key in objects, key


def test_namespaced_role_holds_the_cluster_roles_rules():
    role = yaml.safe_load((REPO / "config/namespaced/watched/role.yaml").read_text())
    assert role["kind"] == "Role" and role["rules"] == cluster_role()["rules"]
