# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""requeue_after: returns the period the runtime reads, changes nothing, refuses what Go's
time.ParseDuration would not take."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("period", ["5s", "30s", "1m30s", "2h45m", "1.5h", "250ms", "10us", "100ns", "0s"])
def test_requeue_after_returns_the_period(run_action, period):
    result = run_action("requeue_after", {"period": period})
    assert result == {"changed": False, "period": period}


@pytest.mark.parametrize("period", ["", "5", "0", "s", "5 s", " 5s", "-5s", "+5s", "1d", "5S", "1m30", ".5s", "5sec"])
def test_requeue_after_refuses_a_bad_duration(run_action, period):
    result = run_action("requeue_after", {"period": period})
    assert result["failed"] is True
    assert "Go duration" in result["msg"] and repr(period) in result["msg"]
    assert "period" not in result


def test_requeue_after_refuses_a_number_without_unit(run_action):
    result = run_action("requeue_after", {"period": 30})
    assert result["failed"] is True
    assert "'30'" in result["msg"]


def test_requeue_after_returns_the_period_in_check_mode(run_action):
    assert run_action("requeue_after", {"period": "1m"}, check_mode=True) == {"changed": False, "period": "1m"}


def test_requeue_after_requires_a_period(run_action):
    result = run_action("requeue_after", {})
    assert result["failed"] is True
    assert "period" in result["msg"]


def test_requeue_after_refuses_an_unknown_option(run_action):
    result = run_action("requeue_after", {"period": "30s", "delay": "5s"})
    assert result["failed"] is True
    assert "delay" in result["msg"]
