"""What users see when a reconcile fails, and the same roles run by hand as playbooks."""

from __future__ import annotations

import os

import yaml

from tests.e2e.helpers import (apply, get, kubectl, kubectl_json, postgres_cluster, resource_versions, run_playbook,
                               stable_resource_versions,
                               wait_for, wait_for_phase)


def test_failed_reconcile_is_reported_in_status_and_a_warning_event(operator, namespace):
    """A change the StatefulSet cannot take (another StorageClass in its volume claim template) gives
    phase Failed, the API server's message in the status and one Warning Event; the data claims are
    untouched."""
    apply(postgres_cluster("db", replicas=1, storageSize="1Gi"), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"storageClassName":"other"}}')

    cluster = wait_for_phase("db", namespace, "Failed", timeout=60)
    status = cluster["status"]
    assert "Apply the cluster's objects that differ from what is live" in status["message"]
    assert "Forbidden: updates to statefulset spec" in status["message"]
    assert "b'{" not in status["message"], "the raw response body leaked into the message"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Reconciled"]["status"], conditions["Reconciled"]["reason"]) == ("False", "ReconcileFailed")
    assert conditions["Ready"]["status"] == "False"

    def warning_events():
        events = kubectl_json("get", "events", "-n", namespace,
                              "--field-selector", "involvedObject.kind=PostgresCluster,involvedObject.name=db")["items"]
        return [e for e in events if e["type"] == "Warning" and e["reason"] == "ReconcileFailed"]
    events = wait_for(warning_events, 30, "no Warning Event for the failed reconcile")
    assert "Forbidden" in events[0]["message"]
    assert get("pvc", "data-db-0", namespace)["spec"]["storageClassName"] == "kwok-volume"

    # The runtime retries with back-off; the unchanged failure is neither rewritten nor re-announced.
    before = get("pgc", "db", namespace)["metadata"]["resourceVersion"]
    wait_for(lambda: len(operator.recaps("db", namespace)) >= 3, 60, "the failed reconcile was not retried")
    assert get("pgc", "db", namespace)["metadata"]["resourceVersion"] == before
    assert len(warning_events()) == 1


def test_reconcile_playbook_by_hand_changes_nothing_on_a_running_cluster(operator, namespace):
    """The operator's reconcile, run by hand on a Running cluster: no changed task, no object moved;
    with --check --diff a different setting shows its plan and still changes nothing."""
    apply(postgres_cluster("db", replicas=2), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    before = stable_resource_versions(namespace)

    out = run_playbook("reconcile", "-e", "cluster=db", "-e", f"namespace={namespace}", "--diff")
    assert "changed=0" in out and "failed=0" in out, out[-2000:]

    out = run_playbook("reconcile", "-e", "cluster=db", "-e", f"namespace={namespace}",
                   "-e", "provision_termination_grace_period=30", "--check", "--diff")
    assert '"terminationGracePeriodSeconds": 30' in out or "terminationGracePeriodSeconds: 30" in out, out[-3000:]
    assert resource_versions(namespace) == before
    assert get("statefulset", "db", namespace)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60


def test_status_playbook_shows_the_cluster(operator, namespace):
    apply(postgres_cluster("db", replicas=2), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    out = run_playbook("status", "-e", "cluster=db", "-e", f"namespace={namespace}")
    assert f"{namespace}/db: Running (2/2 ready, primary none)" in out, out[-2000:]




def test_spec_the_cluster_cannot_run_is_refused_before_anything_is_created(operator, namespace):
    """The seed's plain postgres:15 image and operator-owned parameters: phase Failed, reason InvalidSpec,
    a message naming each field, a Warning Event, and no StatefulSet that would crash-loop."""
    apply(postgres_cluster("db", replicas=2, image="postgres:15",
                           configuration={"port": 6432, "archive_command": "/bin/true", "max_connections": "100"}),
          namespace)
    cluster = wait_for_phase("db", namespace, "Failed", timeout=60)
    message = cluster["status"]["message"]
    assert "spec.image postgres:15 has no Patroni" in message
    assert "spec.configuration.port is set by the operator" in message
    assert "spec.configuration.archive_command is set by the operator" in message
    assert "max_connections" not in message
    reconciled = {c["type"]: c for c in cluster["status"]["conditions"]}["Reconciled"]
    assert (reconciled["status"], reconciled["reason"]) == ("False", "InvalidSpec")
    assert get("statefulset", "db", namespace) is None
    wait_for(lambda: [e for e in kubectl_json("get", "events", "-n", namespace)["items"]
                      if e["reason"] == "InvalidSpec" and "has no Patroni" in e["message"]], 30,
             "no InvalidSpec Event")

    # Fixing the spec recovers the cluster.
    apply(postgres_cluster("db", replicas=2, configuration={"max_connections": "100"}), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)


def test_templates_in_the_spec_are_data_not_code(operator, namespace):
    """A "{{ ... }}" in a postgresql.conf value reaches Patroni's configuration as it is: the operator
    never evaluates what users write."""
    probe = "{{ lookup('ansible.builtin.pipe', 'touch /tmp/pgc-injected') }}"
    apply(postgres_cluster("db", replicas=1, configuration={"log_line_prefix": probe}), namespace)
    wait_for_phase("db", namespace, "Running", ready=1)
    config = yaml.safe_load(get("configmap", "db-patroni", namespace)["data"]["patroni.yml"])
    assert config["bootstrap"]["dcs"]["postgresql"]["parameters"]["log_line_prefix"] == probe
    assert not os.path.exists("/tmp/pgc-injected")
