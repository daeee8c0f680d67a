"""Fixtures of the backup tests: a work directory for the run and the S3, GCS and Azure stores over TLS.

The backup layer needs pgBackRest, nginx, openssl, moto's server, fake-gcs-server and Azurite
besides PostgreSQL 15: when one is missing it fails (never skips) and names hack/test-deps.sh. Whatever the tests start is stopped,
and the work directory removed, at the end of the module whatever happens.
"""

from __future__ import annotations

import pytest

# The filters are imported by their collection path, as Ansible does: the unit tests' conftest
# makes ansible_collections.postgres.cluster importable from this checkout.
import tests.unit.conftest  # noqa: F401
from tests.dataplane import harness as dataplane
from tests.dataplane.backup import harness


@pytest.fixture(scope="session")
def backup_deps():
    problems = harness.missing_dependencies()
    if problems:
        pytest.fail("missing for the backup data-plane tests: " + "; ".join(problems) + f" -- {harness.DEPS_HINT}",
                    pytrace=False)


@pytest.fixture(scope="module")
def pg16(backup_deps):
    """The bin directory of PostgreSQL 16, the target of the major-upgrade tests."""
    try:
        return harness.pg16_bin()
    except harness.BackupHarnessError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def workspace(backup_deps):
    dataplane.sweep_orphans()
    dataplane._stop_on_sigterm()
    ws = harness.Workspace()
    try:
        yield ws
    finally:
        ws.close()


@pytest.fixture(scope="module")
def object_store(workspace):
    store = harness.ObjectStore(workspace)
    store.start()
    return store


@pytest.fixture(scope="module")
def gcs_store(workspace):
    store = harness.GcsStore(workspace)
    store.start()
    return store


@pytest.fixture(scope="module")
def azure_store(workspace):
    store = harness.AzureStore(workspace)
    store.start()
    return store


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when in ("setup", "call") and report.failed:
        ws = item.funcargs.get("workspace")
        if ws:
            for server in list(ws.servers):
                report.sections.append((f"postgres {server.name} (log tail)", server.log_tail(30)))
        for fixture in ("object_store", "gcs_store", "azure_store"):
            store = item.funcargs.get(fixture)
            if store:
                report.sections.append((f"{fixture} logs", store.logs()))
