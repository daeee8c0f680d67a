# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
import yaml

from ansible_collections.postgres.cluster.plugins.modules import requeue_after


@pytest.mark.parametrize("period", ["5s", "30s", "1m30s", "2h45m", "1.5h", "250ms", "10us", "100ns", "0s"])
def test_requeue_after_returns_period(run_module, period):
    rc, result = run_module(requeue_after, {"period": period})
    assert rc == 0
    assert result["changed"] is False
    assert result["period"] == period


@pytest.mark.parametrize("period", ["", "5", "0", "s", "5 s", " 5s", "-5s", "+5s", "1d", "5S", "1m30", "1.s", ".5s", "5sec", "1h-5m"])
def test_requeue_after_fails_on_malformed_period(run_module, period):
    rc, result = run_module(requeue_after, {"period": period})
    assert rc == 1
    assert result["failed"] is True
    assert "Go duration" in result["msg"]
    assert "period" not in result


def test_requeue_after_fails_on_a_number_without_unit(run_module):
    rc, result = run_module(requeue_after, {"period": 30})
    assert rc == 1
    assert "'30'" in result["msg"]


def test_requeue_after_returns_period_in_check_mode(run_module):
    rc, result = run_module(requeue_after, {"period": "1m"}, check_mode=True)
    assert (rc, result["changed"], result["period"]) == (0, False, "1m")


def test_requeue_after_requires_period(run_module):
    rc, result = run_module(requeue_after, {})
    assert rc == 1
    assert "period" in result["msg"]


def test_requeue_after_documents_its_option():
    documentation = yaml.safe_load(requeue_after.DOCUMENTATION)
    assert documentation["options"] == {"period": documentation["options"]["period"]}
    assert documentation["options"]["period"]["type"] == "str"
    assert documentation["options"]["period"]["required"] is True
    assert "short name" in " ".join(documentation["description"])


def test_requeue_after_examples_use_the_short_name():
    # The runtime matches the action as written; a fully qualified name would be ignored.
    for task in yaml.safe_load(requeue_after.EXAMPLES):
        assert "requeue_after" in task
        assert not any(key.endswith(".requeue_after") for key in task)
        assert requeue_after.GO_DURATION.match(task["requeue_after"]["period"])
