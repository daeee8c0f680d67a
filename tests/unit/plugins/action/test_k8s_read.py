# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k8s_read: objects by name or label, with the kinds the runtime's proxy would cache cluster-wide
read straight from the API server."""

from __future__ import annotations

NAMESPACE = "databases"


def job(name, backup):
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"postgres.example.com/backup": backup}}}


def test_k8s_read_lists_jobs_by_label_through_the_direct_api(run_action, apis, cluster):
    cluster.add(job("nightly-backup", "nightly"), job("weekly-backup", "weekly"))
    result = run_action("k8s_read", {"api_version": "batch/v1", "kind": "Job", "namespace": NAMESPACE,
                                     "label_selector": "postgres.example.com/backup=nightly"})
    assert [r["metadata"]["name"] for r in result["resources"]] == ["nightly-backup"]
    assert apis.cached.calls == [] and result["changed"] is False


def test_k8s_read_gets_an_owned_kind_by_name_through_the_proxy(run_action, apis, cluster):
    cluster.add({"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster",
                 "metadata": {"name": "main", "namespace": NAMESPACE}})
    found = run_action("k8s_read", {"api_version": "postgres.example.com/v1", "kind": "PostgresCluster",
                                    "namespace": NAMESPACE, "name": "main"})
    missing = run_action("k8s_read", {"api_version": "postgres.example.com/v1", "kind": "PostgresCluster",
                                      "namespace": NAMESPACE, "name": "gone"})
    assert [r["metadata"]["name"] for r in found["resources"]] == ["main"] and missing["resources"] == []
    assert apis.direct.calls == []


def test_k8s_read_refuses_a_name_and_a_selector_together(run_action, apis):
    result = run_action("k8s_read", {"api_version": "v1", "kind": "Pod", "namespace": NAMESPACE, "name": "a",
                                     "label_selector": "b=c"})
    assert result["failed"] and "mutually exclusive" in result["msg"]
