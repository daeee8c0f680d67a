"""What users deploy (config/default: CRD, RBAC, manager) is accepted by the API server."""

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
                "serviceaccount/pgc-operator", "namespace/pgc-system"):
        assert obj in out, out


def test_operator_service_account_cannot_read_secrets(operator_rbac):
    """Least privilege: the ClusterRole grants no access to Secrets anywhere."""
    out = kubectl("auth", "can-i", "list", "secrets", "--all-namespaces",
                  "--as=system:serviceaccount:pgc-system:pgc-operator", check=False)
    assert out.strip().startswith("no"), out
    out = kubectl("auth", "can-i", "patch", "postgresclusters.postgres.example.com", "--subresource=status",
                  "-n", "default", "--as=system:serviceaccount:pgc-system:pgc-operator", check=False)
    assert out.strip() == "yes", out
