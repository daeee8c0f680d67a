# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgc contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The failover history of a cluster, from Patroni's own records.

Each promotion is a line of Patroni's DCS history (the annotation ``history`` of
``<scope>-config``): the timeline it ended, and the time PostgreSQL began the new one (the
timeline history file's time) with the member that was promoted. The write-unavailable window
ends there. It starts at the latest of:

- the last transaction the old primary committed, as the new primary replayed it
  (``pg_last_xact_replay_timestamp()``, which the promoted member's callback stamps in the
  annotation ``promoted``): exact whenever anything was being written;
- the time the old primary's Patroni stopped it (its callback's ``primary-stopped`` stamp, which
  Patroni runs once the server is down: at most the promotion's time is taken): a switchover, a
  member stopped or its pod deleted;
- the earliest time the old primary's lock could still have been renewed: the new lock's
  ``acquireTime`` less ttl and loop_wait (and a second for the watch): a member killed outright
  or cut off. On a cluster that wrote nothing, the window is then at most loop_wait + 1 s longer
  than the outage.

A switchover is a promotion the operator asked for: the member and the timeline it named in the
switchover request (the annotation ``switchover`` of ``<scope>-failover``) are those of the
history line. Everything else is a failover.
"""

from __future__ import annotations

import datetime
import json

from ansible_collections.postgres.cluster.plugins.module_utils.patroni import PATRONI_TIMING, parse_time

# status.failovers keeps this many, the newest last.
KEPT = 10
# Upper bounds of the histogram of windows, in seconds (Prometheus' le, +Inf implied).
WINDOW_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300)
# The watch that tells a replica of the lock's last renewal, and clocks, take up to this long.
SLACK_SECONDS = 1.0
# How long after the promotion the old primary's on_stop stamp may come.
STOP_STAMP_LATE_SECONDS = 5
# How long the newest promotion waits for its new primary's stamp before it is recorded without.
STAMP_WAIT_SECONDS = 30


def history_lines(config_annotations):
    """Patroni's history lines ``[timeline, lsn, reason, time, member]`` with a time and a member,
    oldest first; lines Patroni has not dated yet are left out."""
    try:
        lines = json.loads((config_annotations or {}).get("history") or "[]")
    except (TypeError, ValueError):
        return []
    if not isinstance(lines, list):
        return []
    dated = [line for line in lines if isinstance(line, list) and len(line) >= 5 and isinstance(line[0], int)
             and parse_time(line[3]) is not None and isinstance(line[4], str) and line[4]]
    return sorted(dated, key=lambda line: line[0])


def stamp(text, fields):
    """A callback's stamp ``<time> <member> [<more>...]`` as a mapping of ``fields`` (after time
    and member); None when it is not one."""
    parts = str(text or "").split()
    if len(parts) < 2 or parse_time(parts[0]) is None:
        return None
    values = dict(zip(("time", "member") + tuple(fields), parts))
    values["time"] = parse_time(parts[0])
    return values


def switchover_request(text):
    """The switchover the operator asked for, ``<timeline> <candidate>``, as (timeline, candidate)."""
    parts = str(text or "").split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1]


def _seconds(value, default):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float(default)
    return number if number > 0 else float(default)


def _rfc3339(when):
    """Tenths of a second: the windows are given to a tenth."""
    when = when.astimezone(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + "%dZ" % (when.microsecond // 100000)


def window_start(promoted_at, old, new, lock, promoted, stopped, timing):
    """When the old primary stopped taking writes, as well as Patroni's records tell; None when
    nothing recorded for this promotion is left."""
    candidates = []
    if promoted and promoted.get("member") == new:
        last_commit = parse_time(promoted.get("lastCommit"))
        if last_commit and last_commit <= promoted_at:
            candidates.append(last_commit)
    if lock and lock.get("leader") == new and parse_time(lock.get("acquireTime")):
        ttl = _seconds(lock.get("ttl"), timing.get("ttl", PATRONI_TIMING["ttl"]))
        loop_wait = _seconds(timing.get("loop_wait"), PATRONI_TIMING["loop_wait"])
        earliest = parse_time(lock["acquireTime"]) - datetime.timedelta(seconds=ttl + loop_wait + SLACK_SECONDS)
        # Patroni runs on_stop once the old primary is down and its lock released, so the stamp may
        # come a moment after the new primary's promotion.
        if stopped and stopped.get("member") == old and \
                earliest <= stopped["time"] <= promoted_at + datetime.timedelta(seconds=STOP_STAMP_LATE_SECONDS):
            candidates.append(min(stopped["time"], promoted_at))
        else:
            candidates.append(earliest)
    return max(candidates) if candidates else None


def _awaiting_stamp(line, stamps, now):
    """The newest promotion, whose new primary's callback has not stamped it yet: it is recorded
    once the stamp is there (its window needs it), or after STAMP_WAIT_SECONDS without it."""
    promoted = stamp(stamps.get("promoted"), ("lastCommit",))
    promoted_at = parse_time(line[3])
    stamped = promoted and promoted.get("member") == line[4] and promoted["time"] >= promoted_at - \
        datetime.timedelta(seconds=STOP_STAMP_LATE_SECONDS)
    return not stamped and (now - promoted_at).total_seconds() < STAMP_WAIT_SECONDS


def failover_status(pgc, observed, now=None):
    """``status.failovers`` and ``status.failoverTotals`` after what Patroni recorded since.

    ``pgc`` is the normalized cluster (its status so far, the callbacks' stamps); ``observed`` what
    the observe step read from Patroni's ConfigMaps (``dcs_history``, ``dcs_lock``, ``switchover``,
    ``config``, ``leader``). The totals carry the timeline counted last and the primary then: a
    cluster seen for the first time counts nothing of its past (its windows cannot be known any
    more), and each promotion is counted once.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    previous = pgc.get("status") or {}
    config = observed.get("config") or {}
    timing = {key: config.get(key, PATRONI_TIMING[key]) for key in ("ttl", "loop_wait")}
    history = history_lines({"history": observed.get("dcs_history")})
    records = list(previous.get("failovers") or [])
    totals = previous.get("failoverTotals")
    if not isinstance(totals, dict):
        totals = _empty_totals((history[-1][0] + 1) if history else 1, observed.get("leader") or "")
        return records[-KEPT:], totals
    totals = json.loads(json.dumps(totals))
    request = switchover_request(observed.get("switchover"))
    stamps = pgc.get("callback_stamps") or {}
    newest = history[-1][0] if history else None
    for position, line in enumerate(history):
        timeline = line[0] + 1
        if timeline <= int(totals.get("timeline") or 1):
            continue
        old = history[position - 1][4] if position else totals.get("primary") or ""
        new, promoted_at = line[4], parse_time(line[3])
        kind = "switchover" if request == (line[0], new) else "failover"
        start = None
        if line[0] == newest and _awaiting_stamp(line, stamps, now):
            break
        if line[0] == newest:  # only the newest promotion's lock and stamps are still there
            start = window_start(promoted_at, old, new, observed.get("dcs_lock"),
                                 stamp(stamps.get("promoted"), ("lastCommit",)), stamp(stamps.get("stopped"), ()), timing)
        record = {"time": _rfc3339(promoted_at), "from": old, "to": new, "kind": kind, "timeline": timeline}
        if start is not None:
            record["writeUnavailableSeconds"] = _count_window(totals, (promoted_at - start).total_seconds())
        totals[kind + "s"] = int(totals.get(kind + "s") or 0) + 1
        totals["timeline"], totals["primary"] = timeline, new
        records.append(record)
    return records[-KEPT:], totals


def _count_window(totals, seconds):
    window = round(max(0.0, seconds), 1)
    totals["windowSecondsSum"] = round(float(totals.get("windowSecondsSum") or 0) + window, 1)
    buckets = [int(b) for b in totals.get("windowBuckets") or []] or [0] * len(WINDOW_BUCKETS)
    totals["windowBuckets"] = [count + (window <= bound) for count, bound in zip(buckets, WINDOW_BUCKETS)]
    totals["windowCount"] = int(totals.get("windowCount") or 0) + 1
    return window


def _empty_totals(timeline, primary):
    return {"timeline": timeline, "primary": primary, "failovers": 0, "switchovers": 0, "windowCount": 0,
            "windowSecondsSum": 0.0, "windowBuckets": [0] * len(WINDOW_BUCKETS)}


def history_pending(observed, stamps=None, now=None):
    """True when the leader runs a timeline Patroni's history does not date yet, or the newest
    promotion waits for its stamp: a promotion the status cannot record yet."""
    leader = observed.get("leader")
    history = history_lines({"history": observed.get("dcs_history")})
    if history and stamps is not None and _awaiting_stamp(
            history[-1], stamps, now or datetime.datetime.now(datetime.timezone.utc)):
        return True
    member = next((m for m in observed.get("members") or [] if m.get("name") == leader), None)
    try:
        timeline = int((member or {}).get("timeline") or 0)
    except (TypeError, ValueError):
        return False
    return timeline > 1 and timeline > ((history[-1][0] + 1) if history else 1)
