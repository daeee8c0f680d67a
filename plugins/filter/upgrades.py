# Copyright: pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of a major upgrade: its plan, its Jobs and its status. The logic is in
plugins/module_utils/upgrades.py; these are its names in templates."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils import upgrades
from ansible_collections.postgres.cluster.plugins.plugin_utils.filters import as_filter

pgc_major_upgrade_plan = as_filter(upgrades.major_upgrade_plan)
pgc_major_upgrade_job_spec = as_filter(upgrades.pgc_major_upgrade_job_spec)
# Quote the Jobs' results and pod logs: never templated.
pgc_major_upgrade_step = as_filter(upgrades.major_upgrade_step, unsafe=True)
pgc_major_upgrade_outcome = as_filter(upgrades.major_upgrade_outcome, unsafe=True)
pgc_member_containers = as_filter(upgrades.member_containers)
# Quotes status.upgrade's message: never templated.
pgc_rollback_plan = as_filter(upgrades.rollback_plan, unsafe=True)


class FilterModule:
    """Filters of the postgres.cluster collection's major upgrades."""

    def filters(self):
        return {
            "pgc_major_upgrade_plan": pgc_major_upgrade_plan,
            "pgc_major_upgrade_job_spec": pgc_major_upgrade_job_spec,
            "pgc_major_upgrade_step": pgc_major_upgrade_step,
            "pgc_major_upgrade_outcome": pgc_major_upgrade_outcome,
            "pgc_member_containers": pgc_member_containers,
            "pgc_rollback_plan": pgc_rollback_plan,
        }
