"""The backup Job filters: names of module_utils.jobs' functions in templates."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible.utils.unsafe_proxy import AnsibleUnsafe

from ansible_collections.postgres.cluster.plugins.filter import backup_jobs as flt
from ansible_collections.postgres.cluster.plugins.module_utils import jobs
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize

FILTERS = flt.FilterModule().filters()


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_backup_job_filters_are_the_module_utils_functions(name):
    assert FILTERS[name].__wrapped__ is getattr(jobs, name)


def test_a_backup_job_of_a_cluster_without_repository_fails_the_task():
    pgc = pgc_normalize({"metadata": {"name": "db", "namespace": "prod"}, "spec": {}})
    with pytest.raises(AnsibleFilterError, match="spec.backup.repository is not set"):
        FILTERS["pgc_backup_job_spec"](pgc)


def test_a_backup_status_quoting_pod_logs_is_never_templated():
    failed = {"name": "db-backup-1", "phase": "Failed", "message": "ERROR: {{ lookup('pipe', 'id') }}"}
    status = FILTERS["pgc_backup_resource_status"]({"metadata": {"generation": 1}}, [failed])
    assert isinstance(status["message"], AnsibleUnsafe)
    assert isinstance(status["conditions"][0]["message"], AnsibleUnsafe)
