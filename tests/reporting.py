"""Figures a test layer prints at the end of a pytest run (failover and recovery times)."""

from __future__ import annotations

import pytest


def summary_section(title):
    """A ``summary`` fixture, the list a test appends its lines to, and the pytest_terminal_summary
    hook that prints them in a section ``title``: a conftest assigns both to its own names."""
    key = pytest.StashKey[list]()

    @pytest.fixture
    def summary(request):
        """Lines printed at the end of the run."""
        return request.config.stash.setdefault(key, [])

    def pytest_terminal_summary(terminalreporter, config):
        lines = config.stash.get(key, [])
        if lines:
            terminalreporter.section(title)
            for line in lines:
                terminalreporter.write_line(line)

    return summary, pytest_terminal_summary
