# Copyright: pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of a cluster's backups: pgBackRest's configuration, environment, volumes and TLS
certificate (plugins/module_utils/pgbackrest.py, which also holds the shape of spec.backup), and
the Jobs of its backups and restores with their outcome (plugins/module_utils/jobs.py). These are
their names in templates."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils import jobs, pgbackrest
from ansible_collections.postgres.cluster.plugins.plugin_utils.filters import as_filter

pgc_pgbackrest_settings = as_filter(pgbackrest.pgc_pgbackrest_settings)
pgc_pgbackrest_config = as_filter(pgbackrest.pgc_pgbackrest_config)
pgc_pgbackrest_archive_command = as_filter(pgbackrest.pgc_pgbackrest_archive_command)
pgc_pgbackrest_restore_command = as_filter(pgbackrest.pgc_pgbackrest_restore_command)
pgc_pgbackrest_environment = as_filter(pgbackrest.pgc_pgbackrest_environment)
pgc_pgbackrest_source_environment = as_filter(pgbackrest.pgc_pgbackrest_source_environment)
pgc_pgbackrest_volumes = as_filter(pgbackrest.pgc_pgbackrest_volumes)
pgc_patroni_backup_config = as_filter(pgbackrest.pgc_patroni_backup_config)
pgc_backup_tls = as_filter(pgbackrest.pgc_backup_tls)
pgc_backup_tls_client_cn = as_filter(pgbackrest.pgc_backup_tls_client_cn)
pgc_backup_job_spec = as_filter(jobs.pgc_backup_job_spec)
pgc_backup_job_labels = as_filter(jobs.pgc_backup_job_labels)
pgc_backup_jobs = as_filter(jobs.pgc_backup_jobs)
# Job messages come from pod logs: data, never templates.
pgc_backup_resource_status = as_filter(jobs.pgc_backup_resource_status, unsafe=True)


class FilterModule:
    """Backup filters of the postgres.cluster collection."""

    def filters(self):
        return {
            "pgc_pgbackrest_settings": pgc_pgbackrest_settings,
            "pgc_pgbackrest_config": pgc_pgbackrest_config,
            "pgc_pgbackrest_archive_command": pgc_pgbackrest_archive_command,
            "pgc_pgbackrest_restore_command": pgc_pgbackrest_restore_command,
            "pgc_pgbackrest_environment": pgc_pgbackrest_environment,
            "pgc_pgbackrest_source_environment": pgc_pgbackrest_source_environment,
            "pgc_pgbackrest_volumes": pgc_pgbackrest_volumes,
            "pgc_patroni_backup_config": pgc_patroni_backup_config,
            "pgc_backup_tls": pgc_backup_tls,
            "pgc_backup_tls_client_cn": pgc_backup_tls_client_cn,
            "pgc_backup_job_spec": pgc_backup_job_spec,
            "pgc_backup_job_labels": pgc_backup_job_labels,
            "pgc_backup_jobs": pgc_backup_jobs,
            "pgc_backup_resource_status": pgc_backup_resource_status,
        }
