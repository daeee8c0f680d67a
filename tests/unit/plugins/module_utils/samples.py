"""Sample objects of a cluster named db in the namespace prod, as the tests of module_utils use them."""

from __future__ import annotations


def cluster(**spec):
    """A PostgresCluster object with this spec."""
    return {"apiVersion": "postgres.example.com/v1", "kind": "PostgresCluster",
            "metadata": {"name": "db", "namespace": "prod", "uid": "u-1", "generation": 4},
            "spec": spec}


def statefulset(replicas, ready, updated=None, generation=2, observed=2):
    """The cluster's StatefulSet with these replica counts and generations."""
    return {"metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "readyReplicas": ready,
                       "updatedReplicas": replicas if updated is None else updated,
                       "observedGeneration": observed}}


def observed(leader="db-0", n=3, initialized=True, **member_overrides):
    """What cluster_observe reports of n members, with the leader's lock held by ``leader``."""
    members = [{"name": "db-%d" % i, "role": "primary" if "db-%d" % i == leader else "replica",
                "state": "running" if "db-%d" % i == leader else "streaming", "timeline": 1} for i in range(n)]
    for m in members:
        m.update(member_overrides.get(m["name"], {}))
    return {"leader": leader, "members": members, "initialized": initialized,
            "pending_restart": [m["name"] for m in members if m.get("pendingRestart")]}
