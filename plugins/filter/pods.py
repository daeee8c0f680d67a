# Copyright: pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that build the pod specs of a cluster's members and repository host, the labels of its
Jobs' pods, and who may reach them. The logic is in plugins/module_utils/pods.py and network.py;
these are its names in templates."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils import network, pods
from ansible_collections.postgres.cluster.plugins.plugin_utils.filters import as_filter

pgc_member_pod_spec = as_filter(pods.pgc_member_pod_spec)
pgc_member_pods = as_filter(pods.pgc_member_pods)
pgc_repository_host_pod_spec = as_filter(pods.pgc_repository_host_pod_spec)
pgc_backup_pod_labels = as_filter(pods.pgc_backup_pod_labels)
pgc_network_policy_spec = as_filter(network.pgc_network_policy_spec)


class FilterModule:
    """Pod filters of the postgres.cluster collection."""

    def filters(self):
        return {
            "pgc_member_pod_spec": pgc_member_pod_spec,
            "pgc_member_pods": pgc_member_pods,
            "pgc_repository_host_pod_spec": pgc_repository_host_pod_spec,
            "pgc_backup_pod_labels": pgc_backup_pod_labels,
            "pgc_network_policy_spec": pgc_network_policy_spec,
        }
