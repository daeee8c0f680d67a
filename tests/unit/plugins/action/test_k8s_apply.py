# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""k8s_apply: an unchanged cluster costs one read per object and no write; what differs is
applied once, server-side, with the collection's field manager."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.postgres.cluster.plugins.module_utils.k8s_client import ApiError
from ansible_collections.postgres.cluster.plugins.module_utils.objects import APPLIED_HASH_ANNOTATION

FIELD_MANAGER = "pgc-operator"
TEMPLATES = {
    "service-rw.yaml.j2": """\
# Read-write Service
apiVersion: v1
kind: Service
metadata:
  name: {{ cluster_name }}-rw
  namespace: {{ namespace }}
  labels: {{ labels | to_json }}
spec:
  selector: {{ labels | combine({'role': 'primary'}) | to_json }}
  ports:
    - name: postgres
      port: {{ port }}
      targetPort: postgres
""",
    "secret.yaml.j2": """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ cluster_name }}-credentials
  namespace: {{ namespace }}
type: Opaque
stringData:
  superuser-password: {{ password }}
""",
    "configmaps.yaml.j2": """\
{% for suffix in ['a', 'b'] %}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ cluster_name }}-{{ suffix }}
  namespace: {{ namespace }}
data:
  suffix: {{ suffix }}
{% endfor %}
""",
    "broken.yaml.j2": "metadata:\n  name: {{ not_defined_anywhere }}\n",
}
TASK_VARS = {"cluster_name": "main", "namespace": "databases", "port": 5432, "password": "s3cr3t-value",
             "labels": {"postgres.example.com/cluster": "main"}}
STATEFULSET = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "metadata": {"name": "main", "namespace": "databases"},
    "spec": {"replicas": 3, "serviceName": "main-headless",
             "template": {"spec": {"containers": [{"name": "postgres", "image": "postgres:17"}]}}},
}
STS_STATUS = {"replicas": 3, "readyReplicas": 2, "currentRevision": "main-1", "updateRevision": "main-1"}


@pytest.fixture
def role(make_role):
    return make_role(TEMPLATES)


@pytest.fixture
def apply(run_action, role):
    def run(check_mode=False, diff=False, task_vars=None, **args):
        args.setdefault("field_manager", FIELD_MANAGER)
        return run_action("k8s_apply", args, task_vars=task_vars or TASK_VARS, check_mode=check_mode, diff=diff,
                          role=role)
    return run


def rw_service(cluster):
    return cluster.find("v1", "Service", "main-rw", "databases")


def test_k8s_apply_renders_a_role_template_with_task_vars(apply, apis, cluster):
    result = apply(template=["service-rw.yaml.j2"])
    assert [w["obj"]["metadata"]["name"] for w in apis.cached.writes("apply")] == ["main-rw"]
    service = rw_service(cluster)
    assert service["metadata"]["labels"] == {"postgres.example.com/cluster": "main"}
    assert service["spec"]["selector"] == {"postgres.example.com/cluster": "main", "role": "primary"}
    assert service["spec"]["ports"] == [{"name": "postgres", "port": 5432, "targetPort": "postgres"}]
    assert APPLIED_HASH_ANNOTATION in service["metadata"]["annotations"]
    assert result["changed"] is True
    assert result["objects"] == [{"object": "Service databases/main-rw", "action": "created", "reasons": ["missing"]}]


def test_k8s_apply_renders_values_marked_unsafe_literally(apply, apis, cluster):
    # What comes from the custom resource is unsafe: rendered as text, never templated again.
    labels = wrap_var({"postgres.example.com/cluster": "main", "team": "{{ 7 * 6 }}"})
    result = apply(template=["service-rw.yaml.j2"], task_vars=dict(TASK_VARS, labels=labels))
    assert result["changed"] is True
    assert rw_service(cluster)["metadata"]["labels"]["team"] == "{{ 7 * 6 }}"


def test_k8s_apply_renders_every_document_of_a_template(apply, apis, cluster):
    result = apply(template=["configmaps.yaml.j2"])
    assert [o["object"] for o in result["objects"]] == ["ConfigMap databases/main-a", "ConfigMap databases/main-b"]
    assert cluster.find("v1", "ConfigMap", "main-b", "databases")["data"] == {"suffix": "b"}


def test_k8s_apply_unchanged_live_object_writes_nothing(apply, apis, cluster):
    apply(template=["service-rw.yaml.j2"])
    live = rw_service(cluster)
    live["spec"].update({"clusterIP": "10.96.0.17", "sessionAffinity": "None", "type": "ClusterIP"})
    live["spec"]["ports"][0]["protocol"] = "TCP"
    cluster.add(live)
    apis.cached.calls.clear()
    result = apply(template=["service-rw.yaml.j2"])
    assert apis.cached.methods == ["get"]
    assert apis.writes == []
    assert result["changed"] is False
    assert result["objects"] == [{"object": "Service databases/main-rw", "action": "unchanged"}]


def test_k8s_apply_drifted_object_is_applied_once_with_force_and_field_manager(apply, apis, cluster):
    apply(template=["service-rw.yaml.j2"])
    live = rw_service(cluster)
    live["spec"]["ports"][0]["port"] = 6432  # changed by hand
    cluster.add(live)
    apis.cached.calls.clear()
    result = apply(template=["service-rw.yaml.j2"])
    applied = apis.cached.writes("apply")
    assert len(applied) == 1 and apis.writes == applied
    assert applied[0]["field_manager"] == FIELD_MANAGER and applied[0]["force"] is True
    assert applied[0]["obj"]["spec"]["ports"][0]["port"] == 5432
    assert result["changed"] is True
    assert result["objects"] == [{"object": "Service databases/main-rw", "action": "configured",
                                  "reasons": ["spec.ports[0].port differs"]}]
    assert rw_service(cluster)["spec"]["ports"][0]["port"] == 5432


def test_k8s_apply_changed_rendering_is_applied(apply, apis, cluster):
    apply(template=["service-rw.yaml.j2"])
    apis.cached.calls.clear()
    result = apply(template=["service-rw.yaml.j2"], task_vars=dict(TASK_VARS, port=6432))
    assert len(apis.cached.writes("apply")) == 1
    assert result["objects"][0]["action"] == "configured"
    assert "rendered object changed" in result["objects"][0]["reasons"]


def test_k8s_apply_second_run_changes_nothing(apply, apis):
    first = apply(template=["service-rw.yaml.j2", "configmaps.yaml.j2"], definition=[STATEFULSET])
    second = apply(template=["service-rw.yaml.j2", "configmaps.yaml.j2"], definition=[STATEFULSET])
    assert (first["changed"], second["changed"]) == (True, False)
    # ConfigMaps go straight to the API server, never through the runtime's caching proxy.
    assert (len(apis.cached.writes("apply")), len(apis.direct.writes("apply"))) == (2, 2)
    assert {o["action"] for o in second["objects"]} == {"unchanged"}


def test_k8s_apply_check_mode_writes_nothing_but_reports_the_change(apply, apis, cluster):
    result = apply(check_mode=True, template=["service-rw.yaml.j2"])
    assert apis.cached.methods == ["get"]
    assert rw_service(cluster) is None
    assert result["changed"] is True
    assert result["objects"] == [{"object": "Service databases/main-rw", "action": "created", "reasons": ["missing"]}]


def test_k8s_apply_check_mode_on_drift_writes_nothing(apply, apis, cluster):
    apply(template=["service-rw.yaml.j2"])
    live = rw_service(cluster)
    live["spec"]["ports"][0]["port"] = 6432
    cluster.add(live)
    apis.cached.calls.clear()
    result = apply(check_mode=True, template=["service-rw.yaml.j2"])
    assert apis.writes == []
    assert rw_service(cluster)["spec"]["ports"][0]["port"] == 6432
    assert (result["changed"], result["objects"][0]["action"]) == (True, "configured")


def test_k8s_apply_diff_shows_before_and_after_of_what_it_sets(apply, apis, cluster):
    apply(template=["service-rw.yaml.j2"])
    live = rw_service(cluster)
    live["spec"]["ports"][0]["port"] = 6432
    live["spec"]["clusterIP"] = "10.96.0.17"
    cluster.add(live)
    result = apply(diff=True, template=["service-rw.yaml.j2"])
    [diff] = result["diff"]
    assert diff["before_header"] == diff["after_header"] == "Service databases/main-rw"
    before, after = yaml.safe_load(diff["before"]), yaml.safe_load(diff["after"])
    assert before["spec"]["ports"][0]["port"] == 6432 and after["spec"]["ports"][0]["port"] == 5432
    assert "clusterIP" not in before["spec"]  # only what the collection sets
    assert "status" not in after and "uid" not in before["metadata"]


def test_k8s_apply_diff_of_a_missing_object_starts_from_nothing(apply, apis):
    result = apply(diff=True, check_mode=True, template=["service-rw.yaml.j2"])
    [diff] = result["diff"]
    assert diff["before"] == "" and diff["after_header"] == "Service databases/main-rw"
    assert yaml.safe_load(diff["after"])["spec"]["ports"][0]["port"] == 5432


def test_k8s_apply_diff_of_an_unchanged_object_is_empty(apply, apis):
    apply(template=["service-rw.yaml.j2"])
    assert "diff" not in apply(diff=True, template=["service-rw.yaml.j2"])


def test_k8s_apply_diff_never_shows_secret_values(apply, apis, cluster):
    result = apply(diff=True, api="direct", template=["secret.yaml.j2"])
    [diff] = result["diff"]
    assert yaml.safe_load(diff["after"])["stringData"] == {"superuser-password": "<redacted>"}
    live = cluster.find("v1", "Secret", "main-credentials", "databases")
    live["stringData"]["superuser-password"] = "changed-by-hand"
    cluster.add(live)
    result = apply(diff=True, api="direct", template=["secret.yaml.j2"])
    [diff] = result["diff"]
    assert yaml.safe_load(diff["before"])["stringData"] == {"superuser-password": "<redacted>"}
    assert "s3cr3t-value" not in json.dumps(result) and "changed-by-hand" not in json.dumps(result)


def test_k8s_apply_absent_deletes_only_existing_objects(apply, apis, cluster):
    cluster.add({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "main-backup", "namespace": "databases"}})
    result = apply(absent=[
        {"apiVersion": "batch/v1", "kind": "CronJob", "name": "main-backup", "namespace": "databases"},
        {"apiVersion": "batch/v1", "kind": "CronJob", "name": "main-logical-backup", "namespace": "databases"},
    ])
    assert [(w["kind"], w["name"]) for w in apis.cached.writes("delete")] == [("CronJob", "main-backup")]
    assert cluster.find("batch/v1", "CronJob", "main-backup", "databases") is None
    assert result["changed"] is True
    assert result["objects"] == [{"object": "CronJob databases/main-backup", "action": "deleted"}]


def test_k8s_apply_absent_of_missing_objects_changes_nothing(apply, apis):
    result = apply(absent=[{"apiVersion": "v1", "kind": "Service", "name": "main-metrics", "namespace": "databases"}])
    assert apis.writes == []
    assert (result["changed"], result["objects"]) == (False, [])


def test_k8s_apply_absent_in_check_mode_and_diff_deletes_nothing(apply, apis, cluster):
    cluster.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "main-metrics", "namespace": "databases"}})
    result = apply(check_mode=True, diff=True,
                   absent=[{"apiVersion": "v1", "kind": "Service", "name": "main-metrics", "namespace": "databases"}])
    assert apis.writes == []
    assert cluster.find("v1", "Service", "main-metrics", "databases") is not None
    assert result["changed"] is True
    assert result["diff"] == [{"before_header": "Service databases/main-metrics",
                               "after_header": "Service databases/main-metrics", "before": "present\n", "after": "absent\n"}]


def test_k8s_apply_absent_without_a_name_fails(apply, apis):
    result = apply(absent=[{"apiVersion": "v1", "kind": "Service", "namespace": "databases"}])
    assert result["failed"] is True
    assert "lacks name" in result["msg"]
    assert apis.writes == []


def test_k8s_apply_create_only_creates_what_is_missing(apply, apis, cluster):
    result = apply(api="direct", create_only=True, template=["secret.yaml.j2"])
    [created] = apis.direct.writes("create")
    assert created["field_manager"] == FIELD_MANAGER
    assert apis.direct.writes("apply") == []
    assert "annotations" not in created["obj"]["metadata"]
    assert cluster.find("v1", "Secret", "main-credentials", "databases")["stringData"] == {"superuser-password": "s3cr3t-value"}
    assert result["objects"] == [{"object": "Secret databases/main-credentials", "action": "created", "reasons": ["missing"]}]


def test_k8s_apply_create_only_never_touches_an_existing_object(apply, apis, cluster):
    cluster.add({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": "main-credentials", "namespace": "databases"},
                 "data": {"superuser-password": "b2xkLXBhc3N3b3Jk"}})
    result = apply(api="direct", create_only=True, template=["secret.yaml.j2"])
    assert apis.direct.methods == ["get"]
    assert cluster.find("v1", "Secret", "main-credentials", "databases")["data"] == {"superuser-password": "b2xkLXBhc3N3b3Jk"}
    assert result["changed"] is False
    assert result["objects"] == [{"object": "Secret databases/main-credentials", "action": "unchanged"}]


def test_k8s_apply_create_only_in_check_mode_creates_nothing(apply, apis, cluster):
    result = apply(check_mode=True, api="direct", create_only=True, template=["secret.yaml.j2"])
    assert apis.direct.methods == ["get"]
    assert cluster.find("v1", "Secret", "main-credentials", "databases") is None
    assert (result["changed"], result["objects"][0]["action"]) == (True, "created")


def test_k8s_apply_api_direct_uses_only_the_direct_api(apply, apis):
    apply(api="direct", template=["secret.yaml.j2"])
    assert apis.cached.calls == []
    assert apis.direct.methods == ["get", "apply"]
    assert [way for way, _ in apis.asked] == ["direct"]


def test_k8s_apply_api_cached_is_the_default(apply, apis):
    apply(template=["service-rw.yaml.j2"])
    assert apis.direct.calls == []
    assert [way for way, _ in apis.asked] == ["cached"]


def test_k8s_apply_passes_kubeconfig_and_context_to_the_api(apply, apis):
    apply(template=["service-rw.yaml.j2"], kubeconfig="/etc/pgc/kubeconfig", context="staging")
    assert apis.asked == [("cached", {"kubeconfig": "/etc/pgc/kubeconfig", "context": "staging"})]


def test_k8s_apply_report_kinds_returns_the_statefulsets_status_not_its_template(apply, apis, cluster):
    live = copy.deepcopy(STATEFULSET)
    live["status"] = STS_STATUS
    cluster.add(live)
    result = apply(definition=[STATEFULSET], report_kinds=["StatefulSet"])
    reported = result["resources"]["StatefulSet"]
    assert reported["status"] == STS_STATUS
    assert reported["spec"] == {"replicas": 3}
    assert reported["metadata"]["name"] == "main" and "uid" in reported["metadata"]


def test_k8s_apply_report_kinds_of_an_unchanged_object_reports_it_too(apply, apis, cluster):
    apply(definition=[STATEFULSET])
    live = cluster.find("apps/v1", "StatefulSet", "main", "databases")
    live["status"] = STS_STATUS
    cluster.add(live)
    result = apply(definition=[STATEFULSET], report_kinds=["StatefulSet"])
    assert result["changed"] is False
    assert result["resources"]["StatefulSet"]["status"] == STS_STATUS


def test_k8s_apply_report_kinds_in_check_mode_omits_a_missing_object(apply, apis):
    result = apply(check_mode=True, definition=[STATEFULSET], report_kinds=["StatefulSet"])
    assert result["resources"] == {}


def test_k8s_apply_api_error_on_apply_fails_with_its_message(apply, apis):
    apis.cached.errors["apply"] = ApiError(
        'apply Service databases/main-rw: Service "main-rw" is invalid: spec.ports[0].port: Invalid value: 0', 422)
    result = apply(template=["service-rw.yaml.j2"])
    assert result["failed"] is True
    assert result["msg"] == 'apply Service databases/main-rw: Service "main-rw" is invalid: spec.ports[0].port: Invalid value: 0'


def test_k8s_apply_skip_conflicts_reports_a_write_that_lost_a_race_and_fails_on_others(apply, apis):
    apis.cached.errors["apply"] = ApiError('apply Service databases/main-rw: the object has been modified', 409)
    assert apply(template=["service-rw.yaml.j2"])["failed"] is True
    result = apply(template=["service-rw.yaml.j2"], skip_conflicts=True)
    assert not result.get("failed") and result["changed"] is False
    assert [o["action"] for o in result["objects"]] == ["conflict"]
    apis.cached.errors["apply"] = ApiError('apply Service databases/main-rw: invalid', 422)
    assert apply(template=["service-rw.yaml.j2"], skip_conflicts=True)["failed"] is True


def test_k8s_apply_api_error_on_read_fails_before_any_write(apply, apis):
    apis.cached.errors["get"] = ApiError("get Service databases/main-rw: the API server is unreachable (refused)")
    result = apply(template=["service-rw.yaml.j2"])
    assert result["failed"] is True
    assert "the API server is unreachable" in result["msg"]
    assert apis.writes == []


def test_k8s_apply_template_error_fails_naming_the_template(apply, apis):
    result = apply(template=["broken.yaml.j2"])
    assert result["failed"] is True
    assert result["msg"].startswith("template broken.yaml.j2: AnsibleUndefinedVariable")
    assert apis.cached.calls == []


def test_k8s_apply_missing_template_fails_naming_it(apply, apis):
    result = apply(template=["no-such-template.yaml.j2"])
    assert result["failed"] is True
    assert result["msg"].startswith("template no-such-template.yaml.j2: ")
    assert apis.cached.calls == []


def test_k8s_apply_requires_a_field_manager(run_action, apis):
    result = run_action("k8s_apply", {"definition": [STATEFULSET]})
    assert result["failed"] is True
    assert "field_manager" in result["msg"]
    assert apis.cached.calls == []


def test_k8s_apply_refuses_an_unknown_option(apply, apis):
    result = apply(definition=[STATEFULSET], state="present")
    assert result["failed"] is True
    assert "Unsupported parameters" in result["msg"] and "state" in result["msg"]
