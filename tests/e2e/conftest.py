"""Fixtures of the end-to-end tests: the local control plane and the real ansible-operator.

The control plane is started by hack/cluster-up.sh (idempotent, reused when already up). The
operator runs as a subprocess of the test session with the repository's watches.yaml; its log
is printed when a test fails.
"""

from __future__ import annotations

import pytest

from tests.e2e import helpers
from tests.reporting import summary_section

# Lines printed at the end of the run (the HorizontalPodAutoscaler's scaling times and the like).
summary, pytest_terminal_summary = summary_section("e2e")


@pytest.fixture(scope="session")
def control_plane():
    """The local Kubernetes control plane, started when it is not running."""
    helpers.start_control_plane()
    return helpers.kubeconfig()


@pytest.fixture(scope="session")
def operator(control_plane):
    """The real ansible-operator, watching every namespace."""
    with helpers.running_operator() as proc:
        yield proc


@pytest.fixture
def namespace(control_plane, request):
    """A namespace of the test's own, deleted afterwards (with everything in it)."""
    name = helpers.unique_name(request.node.name)
    helpers.kubectl("create", "namespace", name)
    yield name
    helpers.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        # The session's operator, or one a test started in its place (test_security's namespaced one).
        ops = [v for v in item.funcargs.values() if isinstance(v, helpers.Operator)]
        ns = item.funcargs.get("namespace")
        sections = []
        if ns:
            sections.append(("resources", helpers.kubectl(
                "get", "pgc,statefulsets,services,pods,pvc,events", "-n", ns, "-o", "wide", check=False)))
            sections.append(("clusters", helpers.kubectl("get", "pgc", "-n", ns, "-o", "yaml", check=False)))
        for op in ops:
            sections.append((f"operator log (tail of {op.log_path.name})", op.log_tail(200)))
        for title, text in sections:
            report.sections.append((title, text))
