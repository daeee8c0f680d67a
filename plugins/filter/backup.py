# Copyright: pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn a cluster's backup settings into pgBackRest's configuration, environment,
volumes and TLS certificate. The logic, and the shape of spec.backup, are in
plugins/module_utils/pgbackrest.py; these are its names in templates."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils import pgbackrest
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
        }
