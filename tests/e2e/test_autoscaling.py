"""A stock HorizontalPodAutoscaler drives a PostgresCluster through its scale subresource, on a real
metrics pipeline: kwok simulates the pods' CPU usage (ResourceUsage objects), serves it as kubelet
resource metrics, metrics-server (built from its Go module) serves it as metrics.k8s.io, and
kube-controller-manager's HPA controller scales the cluster (hack/cluster-up.sh sets all this up).

No Patroni runs in kwok's pods: the test plays its part where the operator needs it (the leader lock,
the pods' role labels, and a switchover it asks for), as the other e2e tests do with the leader lock.
"""

from __future__ import annotations

import datetime
import time

from tests.e2e.helpers import apply, get, kubectl, kubectl_json, postgres_cluster, wait_for, wait_for_phase
from tests.e2e.test_cluster_metrics import leader_lock

MEMBERS = [f"db-{i}" for i in range(4)]
# Each member's containers request 100m (postgres) + 10m (the exporter); usage per container.
IDLE, BUSY = "5m", "200m"


def usage(namespace, cpu):
    """kwok's simulated CPU usage of every container of each member that is or may be: a ResourceUsage
    is matched to the pod of its name."""
    for name in MEMBERS:
        apply({"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ResourceUsage",
               "metadata": {"name": name, "namespace": namespace},
               "spec": {"usages": [{"usage": {"cpu": {"value": cpu}, "memory": {"value": "64Mi"}}}]}}, namespace)


def autoscaler(min_replicas, max_replicas=4):
    """The README's HorizontalPodAutoscaler, with no stabilization so that the test runs fast."""
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "db"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster", "name": "db"},
            "minReplicas": min_replicas, "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0},
                         "scaleDown": {"stabilizationWindowSeconds": 0}},
        },
    }


def make_primary(namespace, member, others):
    """What Patroni does when ``member`` takes the leader lock: the lock, and the pods' role labels."""
    now = datetime.datetime.now(datetime.timezone.utc)
    lock = leader_lock("db", namespace, member, now)
    lock["metadata"]["annotations"]["ttl"] = "600"  # no Patroni renews it during the test
    apply(lock, namespace)
    kubectl("label", "pod", member, "-n", namespace, "role=primary", "--overwrite")
    for other in others:
        # One being removed may be gone already.
        kubectl("label", "pod", other, "-n", namespace, "role=replica", "--overwrite", check=False)


def hpa_utilization(namespace):
    hpa = get("hpa", "db", namespace) or {}
    for metric in (hpa.get("status") or {}).get("currentMetrics") or []:
        current = (metric.get("resource") or {}).get("current") or {}
        if "averageUtilization" in current:
            return current["averageUtilization"]
    return None


def wait_for_autoscaler(namespace, predicate, timeout, message):
    """wait_for, failing with what the HPA and metrics-server said."""
    try:
        return wait_for(predicate, timeout, message)
    except AssertionError as exc:
        hpa = (get("hpa", "db", namespace) or {}).get("status")
        pods = kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods", check=False)
        raise AssertionError(f"{exc}\nHPA status: {hpa}\npod metrics: {pods}") from None


def spec_replicas(namespace):
    return get("pgc", "db", namespace)["spec"]["replicas"]


def test_scale_up_and_down_on_load_through_a_horizontal_pod_autoscaler(operator, namespace, summary):
    """Raised CPU usage makes the HPA raise spec.replicas: new members run. Lowered, the HPA lowers it:
    the operator's safe scale-down moves the primary off the highest member before removing it. With
    synchronous mode, a minReplicas of 1 leaves the cluster at a primary and a synchronous standby."""
    usage(namespace, IDLE)
    apply(postgres_cluster("db", replicas=2, resources={"requests": {"cpu": "100m", "memory": "128Mi"}}), namespace)
    wait_for_phase("db", namespace, "Running", ready=2)
    started = time.monotonic()
    apply(autoscaler(2), namespace)
    # metrics-server needs two scrapes of a pod for its CPU rate.
    wait_for_autoscaler(namespace, lambda: hpa_utilization(namespace) is not None, 60, "the HPA reads no CPU utilization")
    first_metrics = time.monotonic() - started
    assert hpa_utilization(namespace) < 50 and spec_replicas(namespace) == 2

    # Load: about 360% of the requests; the HPA goes to its maximum.
    raised = time.monotonic()
    usage(namespace, BUSY)
    wait_for_autoscaler(namespace, lambda: spec_replicas(namespace) == 4, 90, "the HPA did not scale the cluster up")
    up_decided = time.monotonic() - raised
    cluster = wait_for_phase("db", namespace, "Running", ready=4, timeout=60)
    up_ready = time.monotonic() - raised
    assert cluster["status"]["currentReplicas"] == 4
    assert [p["status"]["phase"] for p in kubectl_json("get", "pods", "-n", namespace, "-l",
                                                       "postgres.example.com/cluster=db")["items"]] == ["Running"] * 4

    # The primary on the highest member, which the scale-down removes first.
    make_primary(namespace, "db-3", ["db-0", "db-1", "db-2"])
    switchovers = []

    def scaled_down():
        # Patroni's part of the switchover the operator asks for before the StatefulSet shrinks.
        request = (get("configmap", "db-failover", namespace) or {}).get("metadata", {}).get("annotations") or {}
        if request.get("member") and request["member"] not in switchovers:
            switchovers.append(request["member"])
            assert get("pod", "db-3", namespace), "the switchover was asked for after the primary's member went"
            make_primary(namespace, request["member"], [m for m in ("db-0", "db-1", "db-2", "db-3")
                                                        if m != request["member"]])
        status = (get("pgc", "db", namespace) or {}).get("status") or {}
        return spec_replicas(namespace) == 2 and status.get("phase") == "Running" and status.get("readyReplicas") == 2

    lowered = time.monotonic()
    usage(namespace, IDLE)
    wait_for_autoscaler(namespace, lambda: spec_replicas(namespace) == 2, 90, "the HPA did not scale the cluster down")
    down_decided = time.monotonic() - lowered
    wait_for(scaled_down, 90, "the cluster did not scale down to 2 Running members", interval=0.3)
    down_ready = time.monotonic() - lowered
    assert switchovers == ["db-0"], "the primary moved to the lowest remaining member, once"
    pods = sorted(p["metadata"]["name"] for p in kubectl_json(
        "get", "pods", "-n", namespace, "-l", "postgres.example.com/cluster=db")["items"]
        if not p["metadata"].get("deletionTimestamp"))
    assert pods == ["db-0", "db-1"], "the highest members were removed"
    assert get("pod", "db-0", namespace)["metadata"]["labels"]["role"] == "primary"
    wait_for(lambda: get("pgc", "db", namespace)["status"].get("currentPrimary") == "db-0", 30,
             "the status does not name the primary that stayed")

    # Synchronous mode: the HPA may ask for 1, the cluster keeps a primary and a synchronous standby.
    kubectl("patch", "pgc", "db", "-n", namespace, "--type=merge", "-p", '{"spec":{"synchronous":true}}')
    apply(autoscaler(1), namespace)
    wait_for_autoscaler(namespace, lambda: spec_replicas(namespace) == 1, 60,
                        "the HPA did not go down to its minReplicas 1")

    def held():
        status = get("pgc", "db", namespace).get("status") or {}
        condition = {c["type"]: c for c in status.get("conditions") or []}.get("ScaleDownHeld") or {}
        return condition if condition.get("status") == "True" and status.get("phase") == "Running" else None
    condition = wait_for(held, 60, "the cluster does not say its scale-down is held at the quorum")
    assert condition["reason"] == "SynchronousQuorum" and "keeps 2" in condition["message"]
    assert get("statefulset", "db", namespace)["spec"]["replicas"] == 2
    assert get("pgc", "db", namespace)["status"]["currentReplicas"] == 2
    warnings = [e for e in kubectl_json("get", "events", "-n", namespace)["items"]
                if e["reason"] == "ScaleDownHeld" and e["type"] == "Warning"]
    assert warnings, "no Warning Event says the scale-down is held"

    summary.append(f"HPA: first CPU utilization read {first_metrics:.1f}s after the HPA was made")
    summary.append(f"HPA scale-up 2->4: replicas raised {up_decided:.1f}s after the load rose, "
                   f"4 members Ready at {up_ready:.1f}s")
    summary.append(f"HPA scale-down 4->2: replicas lowered {down_decided:.1f}s after the load fell, "
                   f"2 members Running (primary moved off db-3 first) at {down_ready:.1f}s")
