# Copyright: pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of a PostgresCluster: the normalized ``pgc`` fact, its Patroni configuration, status,
plans and monitoring. The logic is in plugins/module_utils; these are its names in templates."""

from __future__ import annotations

from ansible_collections.postgres.cluster.plugins.module_utils import change_plans, monitoring, patroni, plans, requeue, spec, status, tls
from ansible_collections.postgres.cluster.plugins.plugin_utils.filters import as_filter

pgc_normalize = as_filter(spec.pgc_normalize)
# Quotes the spec: never templated.
pgc_spec_errors = as_filter(spec.pgc_spec_errors, unsafe=True)
pgc_patroni_config = as_filter(patroni.pgc_patroni_config)
pgc_dcs_config = as_filter(patroni.pgc_dcs_config)
# Quotes the spec and pod logs: never templated.
pgc_status = as_filter(status.pgc_status, unsafe=True)
pgc_status_transitions = as_filter(status.pgc_status_transitions)
pgc_failure_status = as_filter(status.pgc_failure_status)
pgc_restoring = as_filter(status.pgc_restoring, unsafe=True)
# Quotes tasks, the API server and the spec: never templated.
pgc_failure_message = as_filter(status.pgc_failure_message, unsafe=True)
pgc_status_differs = as_filter(status.pgc_status_differs)
pgc_switchover_plan = as_filter(plans.pgc_switchover_plan)
pgc_patroni_wakeup = as_filter(patroni.wakeup_config)
pgc_restart_plan = as_filter(plans.pgc_restart_plan)
pgc_steps_with_work = as_filter(plans.pgc_steps_with_work)
# Quote the spec (parameters, reasons): never templated.
pgc_change_plan = as_filter(change_plans.pgc_change_plan, unsafe=True)
pgc_plan_record = as_filter(change_plans.pgc_plan_record, unsafe=True)
pgc_proposed = as_filter(spec.pgc_proposed, unsafe=True)
pgc_plan_due = as_filter(change_plans.pgc_plan_due)
pgc_plan_held = as_filter(change_plans.pgc_plan_held)
pgc_plan_lines = as_filter(change_plans.pgc_plan_lines, unsafe=True)
# The annotations hold Prometheus templates ({{ $labels.name }}), not Ansible ones.
pgc_prometheus_rules = as_filter(monitoring.pgc_prometheus_rules, unsafe=True)
pgc_requeue_period = as_filter(requeue.pending_requeue_period)
pgc_monitoring = as_filter(monitoring.pgc_monitoring)
pgc_server_tls = as_filter(tls.pgc_server_tls)
pgc_server_tls_secret = as_filter(tls.pgc_server_tls_secret)
pgc_server_tls_source = as_filter(tls.pgc_server_tls_source)
# Quotes the spec (the issuer, the labels): never templated.
pgc_server_certificate = as_filter(tls.pgc_server_certificate, unsafe=True)


class FilterModule:
    """Filters of the postgres.cluster collection."""

    def filters(self):
        return {
            "pgc_normalize": pgc_normalize,
            "pgc_requeue_period": pgc_requeue_period,
            "pgc_monitoring": pgc_monitoring,
            "pgc_status": pgc_status,
            "pgc_failure_status": pgc_failure_status,
            "pgc_restoring": pgc_restoring,
            "pgc_failure_message": pgc_failure_message,
            "pgc_status_differs": pgc_status_differs,
            "pgc_spec_errors": pgc_spec_errors,
            "pgc_patroni_config": pgc_patroni_config,
            "pgc_switchover_plan": pgc_switchover_plan,
            "pgc_patroni_wakeup": pgc_patroni_wakeup,
            "pgc_status_transitions": pgc_status_transitions,
            "pgc_dcs_config": pgc_dcs_config,
            "pgc_restart_plan": pgc_restart_plan,
            "pgc_steps_with_work": pgc_steps_with_work,
            "pgc_change_plan": pgc_change_plan,
            "pgc_plan_record": pgc_plan_record,
            "pgc_proposed": pgc_proposed,
            "pgc_plan_due": pgc_plan_due,
            "pgc_plan_held": pgc_plan_held,
            "pgc_plan_lines": pgc_plan_lines,
            "pgc_prometheus_rules": pgc_prometheus_rules,
            "pgc_server_tls": pgc_server_tls,
            "pgc_server_tls_secret": pgc_server_tls_secret,
            "pgc_server_tls_source": pgc_server_tls_source,
            "pgc_server_certificate": pgc_server_certificate,
        }
