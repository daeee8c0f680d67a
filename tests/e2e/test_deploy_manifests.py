"""What users deploy (config/default: CRD, RBAC, manager) is accepted by the API server."""

from __future__ import annotations

from tests.e2e.helpers import REPO, kubectl


def test_default_kustomization_is_accepted_by_the_api_server(control_plane):
    out = kubectl("apply", "--dry-run=server", "--server-side", "--field-manager=e2e", "-k", str(REPO / "config/default"))
    for obj in ("customresourcedefinition.apiextensions.k8s.io/postgresclusters.postgres.example.com",
                "clusterrole.rbac.authorization.k8s.io/pgc-operator", "deployment.apps/pgc-operator",
                "serviceaccount/pgc-operator", "namespace/pgc-system"):
        assert obj in out, out


def test_operator_service_account_cannot_read_secrets(control_plane):
    """Least privilege: the ClusterRole grants no access to Secrets anywhere."""
    out = kubectl("auth", "can-i", "list", "secrets", "--all-namespaces",
                  "--as=system:serviceaccount:pgc-system:pgc-operator", check=False)
    assert out.strip().startswith("no"), out
    out = kubectl("auth", "can-i", "patch", "postgresclusters.postgres.example.com/status", "-n", "default",
                  "--as=system:serviceaccount:pgc-system:pgc-operator", check=False)
    assert out.strip() == "yes", out
