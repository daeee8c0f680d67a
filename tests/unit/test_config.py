"""What config/ installs: the admission policy that holds the clusters' own accounts, and the
operator's permissions, as kustomize builds them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.postgres.cluster.plugins.module_utils import names

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def build(path):
    """The objects `kubectl kustomize config/<path>` renders, by (kind, name)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (hack/build-binaries.sh) is not on PATH")
    out = subprocess.run([kubectl, "kustomize", str(REPO / "config" / path)], check=True, capture_output=True,
                         text=True).stdout
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}


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
    assert ("ValidatingAdmissionPolicy", "pgc-cluster-accounts") in objects
    assert ("ValidatingAdmissionPolicyBinding", "pgc-cluster-accounts") in objects
    for (kind, name), obj in objects.items():
        if kind in CLUSTER_SCOPED:
            assert "namespace" not in obj["metadata"], (kind, name)
        else:
            assert obj["metadata"]["namespace"] == "pgc-system", (kind, name)
