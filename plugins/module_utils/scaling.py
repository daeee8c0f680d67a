# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How many members a cluster runs for the replicas its spec asks for.

spec.replicas is also written by a HorizontalPodAutoscaler (through the CRD's scale subresource),
whose minReplicas knows nothing of synchronous replication. With spec.synchronous, Patroni
acknowledges a commit once a synchronous standby has it: a cluster that has such a standby is never
scaled below a primary plus that standby. A cluster made smaller than that (one member, as its
user asked) is left as it is: only a scale-down is held.
"""

from __future__ import annotations

# Patroni's synchronous_node_count: the operator never sets another.
SYNCHRONOUS_STANDBYS = 1


def replicas_floor(spec):
    """The fewest members a scale-down leaves: a primary and its synchronous standbys with
    spec.synchronous, one member otherwise."""
    return 1 + SYNCHRONOUS_STANDBYS if spec.get("synchronous") is True else 1


def scale_target(spec, current_replicas):
    """Return ``{"requested", "replicas", "floor", "held", "message"}``: the members the cluster runs
    for spec.replicas (``requested``) when it runs ``current_replicas`` now. ``held`` says a
    scale-down stops at ``floor`` (the synchronous quorum) instead of going to ``requested``, and
    ``message`` says why (empty when not held)."""
    requested = spec.get("replicas")
    if isinstance(requested, bool) or not isinstance(requested, int):
        # Not a count: the validation step refuses it, with its own message.
        return {"requested": requested, "replicas": requested, "floor": 1, "held": False, "message": ""}
    floor = replicas_floor(spec)
    # A scale-down stops at the floor; a cluster already below it (made so) stays where it is.
    try:
        current = int(current_replicas or 0)
    except (TypeError, ValueError):
        current = 0
    replicas = max(requested, min(floor, current))
    held = replicas > requested
    message = ""
    if held:
        message = ("spec.replicas %d is below the %d members synchronous mode needs (a primary and %d synchronous "
                   "standby): the cluster keeps %d; turn spec.synchronous off to go lower"
                   % (requested, floor, SYNCHRONOUS_STANDBYS, replicas))
    return {"requested": requested, "replicas": replicas, "floor": floor, "held": held, "message": message}
