"""The cluster filters: names of module_utils functions in templates, and the object diffs."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from ansible.utils.unsafe_proxy import AnsibleUnsafe

from ansible_collections.postgres.cluster.plugins.filter import pgc as flt
from ansible_collections.postgres.cluster.plugins.module_utils import change_plans, monitoring, patroni, plans, requeue, spec, status, tls

REPO = Path(__file__).resolve().parents[4]
FILTERS = flt.FilterModule().filters()
LOGIC = {
    "pgc_normalize": spec.pgc_normalize,
    "pgc_spec_errors": spec.pgc_spec_errors,
    "pgc_patroni_config": patroni.pgc_patroni_config,
    "pgc_dcs_config": patroni.pgc_dcs_config,
    "pgc_status": status.pgc_status,
    "pgc_status_transitions": status.pgc_status_transitions,
    "pgc_failure_status": status.pgc_failure_status,
    "pgc_restoring": status.pgc_restoring,
    "pgc_failure_message": status.pgc_failure_message,
    "pgc_status_differs": status.pgc_status_differs,
    "pgc_switchover_plan": plans.pgc_switchover_plan,
    "pgc_patroni_wakeup": patroni.wakeup_config,
    "pgc_restart_plan": plans.pgc_restart_plan,
    "pgc_steps_with_work": plans.pgc_steps_with_work,
    "pgc_change_plan": change_plans.pgc_change_plan,
    "pgc_plan_record": change_plans.pgc_plan_record,
    "pgc_proposed": spec.pgc_proposed,
    "pgc_plan_due": change_plans.pgc_plan_due,
    "pgc_plan_held": change_plans.pgc_plan_held,
    "pgc_plan_lines": change_plans.pgc_plan_lines,
    "pgc_prometheus_rules": monitoring.pgc_prometheus_rules,
    "pgc_server_tls": tls.pgc_server_tls,
    "pgc_server_tls_secret": tls.pgc_server_tls_secret,
    "pgc_server_tls_source": tls.pgc_server_tls_source,
    "pgc_server_certificate": tls.pgc_server_certificate,
    "pgc_requeue_period": requeue.pending_requeue_period,
    "pgc_monitoring": monitoring.pgc_monitoring,
}


def cluster(**spec_fields):
    return {"metadata": {"name": "db", "namespace": "prod"}, "spec": spec_fields}


@pytest.mark.parametrize("name", sorted(LOGIC))
def test_pgc_filters_are_the_module_utils_functions(name):
    assert FILTERS[name].__wrapped__ is LOGIC[name]


def test_pgc_filters_are_registered():
    assert set(FILTERS) == set(LOGIC)


def test_every_filter_is_documented_and_every_document_names_a_registered_filter():
    modules = [importlib.import_module("ansible_collections.postgres.cluster.plugins.filter." + path.stem)
               for path in sorted((REPO / "plugins" / "filter").glob("*.py"))]
    registered = {name for module in modules for name in module.FilterModule().filters()}
    documented = set()
    for doc in sorted((REPO / "plugins" / "filter").glob("*.yml")):
        assert yaml.safe_load(doc.read_text())["DOCUMENTATION"]["name"] == doc.stem
        assert doc.stem in registered, f"{doc.name} documents a filter that does not exist"
        documented.add(doc.stem)
    assert registered - documented == set()


def test_pgc_messages_quoting_the_spec_are_never_templated():
    errors = FILTERS["pgc_spec_errors"](FILTERS["pgc_normalize"](cluster(image="postgres:15", configuration={"port": 1})))
    assert errors and all(isinstance(e, AnsibleUnsafe) for e in errors)
    assert isinstance(FILTERS["pgc_failure_message"]("task: {{ lookup('pipe', 'id') }}"), AnsibleUnsafe)
    restored = FILTERS["pgc_status"](FILTERS["pgc_normalize"](cluster(bootstrap={"fromBackup": {
        "cluster": "old", "repository": {"volume": {}}, "targetTime": "{{ lookup('pipe', 'id') }}"}})), None)
    assert isinstance(restored["restoredFrom"]["targetTime"], AnsibleUnsafe)
