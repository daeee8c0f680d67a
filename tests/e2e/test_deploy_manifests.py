"""What users deploy (config/default: CRD, RBAC, admission policy, manager) is accepted by the API server."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import REPO, kubectl, operator_kubeconfig


@pytest.fixture(scope="module")
def operator_rbac(control_plane):
    """The namespace, ServiceAccount and RBAC of config/, applied for real."""
    return operator_kubeconfig()


def test_default_kustomization_is_accepted_by_the_api_server(operator_rbac):
    out = kubectl("apply", "--dry-run=server", "--server-side", "--force-conflicts", "--field-manager=e2e",
                  "-k", str(REPO / "config/default"))
    for obj in ("customresourcedefinition.apiextensions.k8s.io/postgresclusters.postgres.example.com",
                "clusterrole.rbac.authorization.k8s.io/pgc-operator", "deployment.apps/pgc-operator",
                "serviceaccount/pgc-operator", "namespace/pgc-system",
                "validatingadmissionpolicy.admissionregistration.k8s.io/pgc-cluster-accounts",
                "validatingadmissionpolicybinding.admissionregistration.k8s.io/pgc-cluster-accounts"):
        assert obj in out, out


def test_operator_service_account_cannot_list_or_change_secrets(operator_rbac):
    """Least privilege: the operator reads and creates Secrets by name, and can neither list, watch,
    update nor delete them; it patches only the certificate Secrets it issued (the admission policy
    pgc-operator-secrets)."""
    as_operator = "--as=system:serviceaccount:pgc-system:pgc-operator"
    for verb in ("list", "watch", "update", "delete"):
        out = kubectl("auth", "can-i", verb, "secrets", "--all-namespaces", as_operator, check=False)
        assert out.strip().startswith("no"), f"{verb}: {out}"
    kubectl("create", "secret", "generic", "pgc-probe", "-n", "default", "--from-literal=password=kept")
    try:
        for label in ("", "postgres.example.com/cluster=db"):
            if label:
                kubectl("label", "secret", "pgc-probe", "-n", "default", label)
            out = kubectl("patch", "secret", "pgc-probe", "-n", "default", "--type=merge", "--dry-run=server",
                          "-p", '{"data": {"password": "Y2hhbmdlZA=="}}', as_operator, check=False)
            assert "the operator may change only the certificate Secrets it issued" in out, out
        kubectl("annotate", "secret", "pgc-probe", "-n", "default", "postgres.example.com/renew-after=2027-01-01T00:00:00Z")
        out = kubectl("patch", "secret", "pgc-probe", "-n", "default", "--type=merge", "--dry-run=server",
                      "-p", '{"metadata": {"labels": {"postgres.example.com/cluster": "other"}}}', as_operator, check=False)
        assert "data and annotations only" in out, out
        out = kubectl("patch", "secret", "pgc-probe", "-n", "default", "--type=merge", "--dry-run=server",
                      "-p", '{"data": {"tls.crt": "Y2hhbmdlZA=="}}', as_operator, check=False)
        assert "patched" in out, out
    finally:
        kubectl("delete", "secret", "pgc-probe", "-n", "default", check=False)
    out = kubectl("auth", "can-i", "patch", "postgresclusters.postgres.example.com", "--subresource=status",
                  "-n", "default", "--as=system:serviceaccount:pgc-system:pgc-operator", check=False)
    assert out.strip() == "yes", out


def test_operator_service_account_holds_what_it_grants_and_no_more(operator_rbac):
    """Least privilege: no update (PUT) of pods or ConfigMaps, no escalate or bind, Jobs not watched;
    patch of pods only because Patroni's Role grants it (Kubernetes' escalation check). A major upgrade
    deletes its finished Jobs and the replicas' claims, which are cloned anew."""
    user = "--as=system:serviceaccount:pgc-system:pgc-operator"
    for verb, what in (("update", "pods"), ("update", "configmaps"), ("escalate", "roles.rbac.authorization.k8s.io"),
                       ("bind", "roles.rbac.authorization.k8s.io"), ("watch", "jobs.batch")):
        out = kubectl("auth", "can-i", verb, what, "-n", "default", user, check=False)
        assert out.strip().startswith("no"), f"{verb} {what}: {out}"
    for verb, what in (("patch", "pods"), ("delete", "pods"), ("create", "networkpolicies.networking.k8s.io"),
                       ("delete", "jobs.batch"), ("delete", "persistentvolumeclaims")):
        out = kubectl("auth", "can-i", verb, what, "-n", "default", user, check=False)
        assert out.strip() == "yes", f"{verb} {what}: {out}"
