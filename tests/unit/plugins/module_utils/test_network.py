"""Who may reach a cluster's pods: each port open only to the peers that use it."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils.network import pgc_network_policy_spec
from ansible_collections.postgres.cluster.plugins.module_utils.pods import pgc_backup_pod_labels
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize

from .samples import cluster

MEMBERS = {"podSelector": {"matchLabels": {"postgres.example.com/cluster": "db"}}}
HELPERS = {"podSelector": {"matchLabels": {"postgres.example.com/job-of": "db"}}}


def peers(policy):
    return {rule["ports"][0]["port"]: rule["from"] for rule in policy["ingress"]}


def selects(selector, pod_labels):
    return all(pod_labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_each_port_is_open_only_to_its_users():
    pgc = pgc_normalize(cluster(enableMonitoring=True))
    policy = pgc_network_policy_spec(pgc)
    assert policy["policyTypes"] == ["Ingress"]
    by_port = peers(policy)
    assert set(by_port) == {5432, 8008, 8432, 9187}
    # PostgreSQL from the namespace by default, and always from members and Jobs.
    assert by_port[5432] == [{"podSelector": {}}, MEMBERS, HELPERS]
    # Patroni's REST API only between members: its unsafe endpoints change every member.
    assert by_port[8008] == [MEMBERS]
    assert by_port[8432] == [MEMBERS, HELPERS]
    assert by_port[9187] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_allowed_clients_replace_the_namespace_and_no_exporter_port_without_monitoring():
    app = {"podSelector": {"matchLabels": {"app": "shop"}}}
    office = {"ipBlock": {"cidr": "10.20.0.0/16"}}
    pgc = pgc_normalize(cluster(enableMonitoring=False, allowedClients=[app, office]))
    by_port = peers(pgc_network_policy_spec(pgc))
    assert by_port[5432] == [app, office, MEMBERS, HELPERS]
    assert 9187 not in by_port


def test_the_policy_covers_members_jobs_and_the_repository_host_but_not_other_clusters():
    pgc = pgc_normalize(cluster())
    selector = pgc_network_policy_spec(pgc)["podSelector"]
    assert selects(selector, pgc["labels"])
    for job in ("backup", "repo-host"):
        assert selects(selector, pgc_backup_pod_labels(pgc, job))
    other = pgc_normalize(dict(cluster(), metadata={"name": "other", "namespace": "prod", "uid": "u-2"}))
    assert not selects(selector, other["labels"])
