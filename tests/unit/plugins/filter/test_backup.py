"""The backup filters: names of module_utils.pgbackrest's and module_utils.jobs' functions in templates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.utils.unsafe_proxy import AnsibleUnsafe

from ansible_collections.postgres.cluster.plugins.filter import backup as flt
from ansible_collections.postgres.cluster.plugins.module_utils import jobs, pgbackrest
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize

REPO = Path(__file__).resolve().parents[4]
FILTERS = flt.FilterModule().filters()


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_backup_filters_are_the_module_utils_functions(name):
    assert FILTERS[name].__wrapped__ in (getattr(pgbackrest, name, None), getattr(jobs, name, None))


def test_backup_filters_are_registered_and_documented():
    for name in FILTERS:
        doc = REPO / "plugins" / "filter" / f"{name}.yml"
        assert doc.is_file(), f"{doc.name} documents the filter"
        assert yaml.safe_load(doc.read_text())["DOCUMENTATION"]["name"] == name


def test_backup_filters_fail_the_task_on_a_repository_they_cannot_configure():
    pgc = pgc_normalize({"metadata": {"name": "db", "namespace": "prod"},
                         "spec": {"backup": {"repository": {"s3": {"bucket": "b"}}}}})
    with pytest.raises(AnsibleFilterError, match="s3.endpoint is required"):
        FILTERS["pgc_pgbackrest_config"](pgc)


def test_a_backup_job_of_a_cluster_without_repository_fails_the_task():
    pgc = pgc_normalize({"metadata": {"name": "db", "namespace": "prod"}, "spec": {}})
    with pytest.raises(AnsibleFilterError, match="spec.backup.repository is not set"):
        FILTERS["pgc_backup_job_spec"](pgc)


def test_a_backup_status_quoting_pod_logs_is_never_templated():
    failed = {"name": "db-backup-1", "phase": "Failed", "message": "ERROR: {{ lookup('pipe', 'id') }}"}
    status = FILTERS["pgc_backup_resource_status"]({"metadata": {"generation": 1}}, [failed])
    assert isinstance(status["message"], AnsibleUnsafe)
