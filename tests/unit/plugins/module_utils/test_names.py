"""The names of a cluster's objects, labels and annotations, and the copies that cannot import them."""

from __future__ import annotations

import re
from pathlib import Path

from ansible_collections.postgres.cluster.plugins.module_utils import names

REPO = Path(__file__).resolve().parents[4]


def test_cluster_names_put_each_suffix_after_the_clusters_name():
    assert names.cluster_names("db")["service_headless"] == "db-pods"
    assert names.cluster_names("db")["statefulset"] == "db"
    assert set(names.cluster_names("db")) == set(names.NAME_SUFFIXES)
    assert "db" + names.TLS_SECRET_SUFFIX == names.cluster_names("db")["backup_tls"]


def test_labels_select_the_cluster_and_say_who_manages_it():
    assert names.labels("db") == {"app.kubernetes.io/name": "postgres", "app.kubernetes.io/instance": "db",
                                  "app.kubernetes.io/managed-by": "pgc-operator", "postgres.example.com/cluster": "db"}


def test_patroni_configmaps_and_data_claims_are_named_as_patroni_and_the_statefulset_name_them():
    assert [names.patroni_configmap("db", kind) for kind in names.PATRONI_CONFIGMAP_SUFFIXES] == [
        "db-leader", "db-config", "db-failover", "db-sync"]
    assert names.data_claim("db", 0) == "data-db-0"
    assert names.data_claim("db", "2") == "data-db-2"


def test_member_pods_are_the_statefulsets_pods_by_ordinal():
    assert names.member_pods("db", 3) == ["db-0", "db-1", "db-2"]
    assert names.member_pods("db", "1") == ["db-0"]
    assert [names.pod_ordinal(n) for n in names.member_pods("my-db", 12)] == list(range(12))


def test_pod_ordinal_is_the_statefulsets_number_or_none():
    assert [names.pod_ordinal(n) for n in ("db-0", "db-12", "my-db-3", "db", "", None)] == [0, 12, 3, None, None, None]


def test_copies_in_files_that_cannot_import_the_names_stay_equal():
    # Patroni's callback runs in the database pod, with the standard library only.
    callback = (REPO / "roles/provision/files/pgc-callback.py").read_text()
    assert 'ANNOTATION = "%s"' % names.MEMBER_EVENT_ANNOTATION in callback
    # Templates name the claim template and Patroni's ConfigMaps themselves.
    statefulset = (REPO / "roles/provision/templates/statefulset.yaml.j2").read_text()
    assert re.search(r"volumeClaimTemplates:\s*\n\s*- metadata:\s*\n\s*name: %s\n" % names.DATA_VOLUME, statefulset)
    # The finalizer deletes every one of Patroni's ConfigMaps.
    cleanup = (REPO / "roles/cleanup/tasks/main.yml").read_text()
    assert all("pgc.names.dcs_%s" % kind in cleanup for kind in names.PATRONI_CONFIGMAP_SUFFIXES)


def test_the_cluster_fact_names_patronis_configmaps_and_the_first_members_data():
    from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize

    found = pgc_normalize({"metadata": {"name": "main", "namespace": "db"}, "spec": {}})["names"]
    assert (found["dcs_leader"], found["dcs_config"], found["dcs_failover"], found["dcs_sync"]) == (
        "main-leader", "main-config", "main-failover", "main-sync")
    assert found["data_claim_0"] == "data-main-0"


def test_derived_names_carry_the_limit_kubernetes_puts_on_each():
    derived = {key: (name, limit) for key, name, limit in names.derived_names("db")}
    assert derived["label"] == ("db", 63)
    assert derived["statefulset"] == ("db", 52)  # its pods' controller-revision-hash label: <name>-<10>
    assert derived["service_headless"] == ("db-pods", 63)
    assert derived["backup_cronjob"] == ("db-backup", 52)
    assert derived["logical_cronjob"] == ("db-logical-backup", 52)
    assert derived["restore_logical-restore"] == ("db-logical-restore", 63)
    assert derived["dcs_leader"] == ("db-leader", 253)
    assert derived["credentials"] == ("db-credentials", 253)
    # Every object a cluster owns is there.
    assert set(names.NAME_SUFFIXES) <= set(derived)


def test_the_longest_cluster_name_fits_every_object_but_the_logical_backup_cronjob():
    too_long = [key for key, name, limit in names.derived_names("a" * 40) if len(name) > limit]
    assert too_long == ["logical_cronjob"]
    assert not [key for key, name, limit in names.derived_names("a" * 37) if len(name) > limit]


def test_restore_jobs_are_the_jobs_the_restore_role_runs():
    tasks = "".join(p.read_text() for p in (REPO / "roles/restore/tasks").glob("*.yml"))
    assert sorted(set(re.findall(r"__restore_job: ([\w-]+)$", tasks, re.M))) == sorted(names.RESTORE_JOBS)
    assert "name: {{ pgc.name }}-{{ __restore_job }}" in (REPO / "roles/restore/templates/job.yaml.j2").read_text()
    assert names.restore_job("db", "check") == "db-check"
