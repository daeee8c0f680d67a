"""Fixtures of the fault-injection tests: the local control plane, a namespace per module, the
operator's ports free, and the "faults" summary of recovery times printed at the end of the run.

The operator processes are each test module's own (tests/e2e/helpers.py's Operator): the faults
kill, stop and multiply them.
"""

from __future__ import annotations

import pytest

from tests.dataplane.backup.conftest import backup_deps, object_store, workspace  # noqa: F401 - fixtures
from tests.dataplane.conftest import dataplane_deps, kube, namespace  # noqa: F401 - fixtures
from tests.e2e.conftest import pytest_runtest_makereport  # noqa: F401 - resources and operator logs on failure
from tests.faults import faults
from tests.reporting import summary_section

# Recovery times and rows lost, one line per fault.
summary, pytest_terminal_summary = summary_section("faults")


@pytest.fixture(scope="session")
def control_plane(kube):
    """The local control plane (hack/cluster-up.sh), and no other operator on its ports: these tests
    start, kill and stop operators of their own, so they run in a pytest session of their own."""
    busy = faults.busy_operator_ports()
    if busy:
        pytest.fail(f"the operator's ports {busy} are taken: another operator runs (hack/run-operator.sh, or the "
                    "e2e session's); stop it, and run tests/faults in a pytest session of its own", pytrace=False)
    return kube
