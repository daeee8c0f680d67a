# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import datetime

import pytest

from ansible_collections.postgres.cluster.plugins.module_utils.requeue import GO_DURATION, pending_requeue_period

NOW = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)


def status_not_ready_for(seconds):
    since = (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"phase": "Pending", "conditions": [{"type": "Degraded", "lastTransitionTime": "2020-01-01T00:00:00Z"},
                                               {"type": "Ready", "status": "False", "lastTransitionTime": since}]}


@pytest.mark.parametrize("waited, period", [(0, "2s"), (5, "2s"), (9, "3s"), (30, "10s"), (89, "29s"), (600, "30s")])
def test_pending_requeue_period_backs_off_with_the_time_waited(waited, period):
    assert pending_requeue_period(status_not_ready_for(waited), NOW) == period


def test_pending_requeue_period_of_a_new_cluster_is_the_shortest():
    assert pending_requeue_period({}, NOW) == "2s"
    assert pending_requeue_period({"conditions": [{"type": "Ready", "lastTransitionTime": "not a time"}]}, NOW) == "2s"


def test_pending_requeue_period_is_a_duration_the_runtime_accepts():
    for waited in (0, 7, 100, 10 ** 6):
        assert GO_DURATION.match(pending_requeue_period(status_not_ready_for(waited), NOW, first=1, longest=60))
