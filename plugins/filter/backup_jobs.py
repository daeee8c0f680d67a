# Copyright: pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that build the Jobs of a cluster's backups and restores, and read their outcome. The
logic is in plugins/module_utils/jobs.py; these are its names in templates."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils import jobs
from ansible_collections.postgres.cluster.plugins.plugin_utils.filters import as_filter

pgc_backup_job_spec = as_filter(jobs.pgc_backup_job_spec)
pgc_backup_job_labels = as_filter(jobs.pgc_backup_job_labels)
pgc_backup_jobs = as_filter(jobs.pgc_backup_jobs)
# Job messages come from pod logs: data, never templates.
pgc_backup_resource_status = as_filter(jobs.pgc_backup_resource_status, unsafe=True)


class FilterModule:
    """Backup Job filters of the postgres.cluster collection."""

    def filters(self):
        return {
            "pgc_backup_job_spec": pgc_backup_job_spec,
            "pgc_backup_job_labels": pgc_backup_job_labels,
            "pgc_backup_jobs": pgc_backup_jobs,
            "pgc_backup_resource_status": pgc_backup_resource_status,
        }
