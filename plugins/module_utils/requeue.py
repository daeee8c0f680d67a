# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The requeue period the ansible-operator runtime accepts."""

from __future__ import annotations

import datetime
import re

from ansible_collections.postgres.cluster.plugins.module_utils.patroni import parse_time

# What Go's time.ParseDuration accepts, without a sign and without a bare "0".
GO_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+$")

FIRST_SECONDS = 2
LONGEST_SECONDS = 30


def pending_requeue_period(status, now=None, first=FIRST_SECONDS, longest=LONGEST_SECONDS):
    """How soon to look again at a cluster that is not Running, as a Go duration: soon after it
    stopped being Ready (a new cluster's pods are often ready in seconds), then less often (a third
    of the time it has waited so far), between ``first`` and ``longest`` seconds. Polling a cluster
    that waits for slow pods every few seconds would cost a reconcile each time."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    since = None
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            since = parse_time(condition.get("lastTransitionTime"))
    waited = (now - since).total_seconds() if since else 0
    return "%ds" % int(min(longest, max(first, waited // 3)))
