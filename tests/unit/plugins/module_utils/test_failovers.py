"""The failover history: each promotion Patroni recorded, counted once, with its write-unavailable
window from Patroni's own records."""

from __future__ import annotations

import json

import datetime

from ansible_collections.postgres.cluster.plugins.module_utils.failovers import (
    WINDOW_BUCKETS,
    failover_status,
    history_pending,
)
from ansible_collections.postgres.cluster.plugins.module_utils.status import pgc_status_transitions

TIMING = {"ttl": 30, "loop_wait": 10}
# Long after every promotion of these tests: none waits for its stamp any more.
LATER = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def status(pgc, obs, now=LATER):
    return failover_status(pgc, obs, now=now)


def history(*lines):
    return json.dumps([list(line) for line in lines])


def cluster(status=None, promoted="", stopped=""):
    return {"status": status or {}, "callback_stamps": {"promoted": promoted, "stopped": stopped}}


def observed(lines=(), lock=None, switchover="", leader="db-1"):
    return {"dcs_history": history(*lines), "dcs_lock": lock or {}, "switchover": switchover,
            "config": dict(TIMING), "leader": leader}


FIRST_SEEN = {"timeline": 1, "primary": "db-0", "failovers": 0, "switchovers": 0, "windowCount": 0,
              "windowSecondsSum": 0.0, "windowBuckets": [0] * len(WINDOW_BUCKETS)}


def test_a_cluster_seen_for_the_first_time_counts_nothing_of_its_past():
    line = [1, 50331808, "no recovery target specified", "2026-11-30T01:00:00.5+00:00", "db-1"]
    records, totals = status(cluster(), observed([line]))
    assert records == []
    assert totals["timeline"] == 2 and totals["primary"] == "db-1" and totals["failovers"] == 0


def test_a_killed_primary_is_dated_by_the_last_commit_the_new_primary_replayed():
    line = [1, 50331808, "no recovery target specified", "2026-11-30T01:00:41.3+00:00", "db-1"]
    lock = {"leader": "db-1", "acquireTime": "2026-11-30T01:00:40.9+00:00", "ttl": "30"}
    pgc = cluster({"failoverTotals": FIRST_SEEN, "currentPrimary": "db-0"},
                  promoted="2026-11-30T01:00:41.6Z db-1 2026-11-30T01:00:02.100000Z")
    records, totals = status(pgc, observed([line], lock))
    assert records == [{"time": "2026-11-30T01:00:41.3Z", "from": "db-0", "to": "db-1", "kind": "failover",
                        "timeline": 2, "writeUnavailableSeconds": 39.2}]
    assert (totals["failovers"], totals["switchovers"], totals["timeline"], totals["primary"]) == (1, 0, 2, "db-1")
    assert totals["windowCount"] == 1 and totals["windowSecondsSum"] == 39.2
    # Cumulative, as Prometheus' le buckets: 39.2 s is in 60, 120 and 300.
    assert totals["windowBuckets"] == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    # A reconcile that sees the same history counts nothing again.
    pgc["status"] = {"failovers": records, "failoverTotals": totals}
    assert status(pgc, observed([line], lock)) == (records, totals)


def test_an_idle_cluster_is_bounded_by_when_the_lock_could_last_have_been_renewed():
    # Nothing was committed for an hour: the lock's ttl and loop_wait bound the window.
    line = [1, 50331808, "no recovery target specified", "2026-11-30T01:00:41.3+00:00", "db-1"]
    lock = {"leader": "db-1", "acquireTime": "2026-11-30T01:00:40.9+00:00", "ttl": "30"}
    pgc = cluster({"failoverTotals": FIRST_SEEN}, promoted="2026-11-30T01:00:41.6Z db-1 2026-11-30T00:00:00.000000Z")
    records, _ = status(pgc, observed([line], lock))
    assert records[0]["writeUnavailableSeconds"] == 41.4  # 0.4 + ttl 30 + loop_wait 10 + 1


def test_a_switchover_is_dated_by_the_old_primarys_stop_and_named_by_the_request():
    line = [3, 83886240, "no recovery target specified", "2026-11-30T02:00:01.9+00:00", "db-2"]
    lock = {"leader": "db-2", "acquireTime": "2026-11-30T02:00:01.2+00:00", "ttl": "30"}
    totals = dict(FIRST_SEEN, timeline=3, primary="db-1")
    pgc = cluster({"failoverTotals": totals}, promoted="2026-11-30T02:00:02.0Z db-2 2026-11-30T01:59:40.000000Z",
                  stopped="2026-11-30T02:00:00.800000Z db-1")
    records, totals = status(pgc, observed([line], lock, switchover="3 db-2", leader="db-2"))
    assert records[0]["kind"] == "switchover" and records[0]["from"] == "db-1"
    assert records[0]["writeUnavailableSeconds"] == 1.1
    assert totals["switchovers"] == 1 and totals["windowBuckets"][:2] == [0, 1]
    # An old request for another member or timeline does not make a failover a switchover.
    later = [4, 100663456, "no recovery target specified", "2026-11-30T03:00:00+00:00", "db-0"]
    records, totals = status(cluster({"failoverTotals": totals, "failovers": records}),
                                      observed([line, later], {"leader": "db-0"}, switchover="3 db-2", leader="db-0"))
    assert [r["kind"] for r in records] == ["switchover", "failover"] and records[1]["from"] == "db-2"
    # No lock record for the promoted member and no stamp: the window is not made up.
    assert "writeUnavailableSeconds" not in records[1]


def test_a_stop_stamp_that_comes_after_the_promotion_still_dates_a_switchover():
    line = [3, 83886240, "no recovery target specified", "2026-11-30T02:00:01.9+00:00", "db-2"]
    lock = {"leader": "db-2", "acquireTime": "2026-11-30T02:00:01.2+00:00", "ttl": "30"}
    pgc = cluster({"failoverTotals": dict(FIRST_SEEN, timeline=3, primary="db-1")},
                  stopped="2026-11-30T02:00:02.300000Z db-1")
    records, _ = status(pgc, observed([line], lock, switchover="3 db-2", leader="db-2"))
    assert records[0]["writeUnavailableSeconds"] == 0.0
    # Much later, it is another stop: not this promotion's.
    pgc["callback_stamps"]["stopped"] = "2026-11-30T02:00:09Z db-1"
    records, _ = status(pgc, observed([line], lock, switchover="3 db-2", leader="db-2"))
    assert records[0]["writeUnavailableSeconds"] == 41.7


def test_the_newest_promotion_waits_a_while_for_the_new_primarys_stamp():
    line = [1, 50331808, "no recovery target specified", "2026-11-30T01:00:41.3+00:00", "db-1"]
    lock = {"leader": "db-1", "acquireTime": "2026-11-30T01:00:40.9+00:00", "ttl": "30"}
    pgc = cluster({"failoverTotals": FIRST_SEEN}, promoted="2026-11-29T01:00:00Z db-1 2026-11-29T00:59:00Z")
    soon = datetime.datetime(2026, 11, 30, 1, 0, 45, tzinfo=datetime.timezone.utc)
    records, totals = status(pgc, observed([line], lock), now=soon)
    assert records == [] and totals["timeline"] == 1
    assert history_pending(observed([line], lock), pgc["callback_stamps"], now=soon)
    # The stamp arrives: recorded with its window.
    pgc["callback_stamps"]["promoted"] = "2026-11-30T01:00:41.6Z db-1 2026-11-30T01:00:02.100000Z"
    records, _ = status(pgc, observed([line], lock), now=soon)
    assert records[0]["writeUnavailableSeconds"] == 39.2
    assert not history_pending(observed([line], lock), pgc["callback_stamps"], now=soon)
    # Never there: recorded without it after a while.
    pgc["callback_stamps"]["promoted"] = ""
    later = soon + datetime.timedelta(seconds=40)
    assert status(pgc, observed([line], lock), now=later)[0][0]["writeUnavailableSeconds"] == 41.4


def test_a_stale_stamp_of_the_old_primary_is_not_taken():
    line = [1, 50331808, "no recovery target specified", "2026-11-30T01:00:41.3+00:00", "db-1"]
    lock = {"leader": "db-1", "acquireTime": "2026-11-30T01:00:40.9+00:00", "ttl": "30"}
    # db-0 was stopped a day before: it was restarted since, and this time it was killed.
    pgc = cluster({"failoverTotals": FIRST_SEEN}, stopped="2026-11-29T01:00:00Z db-0",
                  promoted="2026-11-30T01:00:41.6Z db-1 -")
    records, _ = status(pgc, observed([line], lock))
    assert records[0]["writeUnavailableSeconds"] == 41.4


def test_two_promotions_between_reconciles_are_both_recorded_and_only_ten_are_kept():
    lines = [[t, t * 1000, "no recovery target specified", "2026-11-30T01:%02d:00+00:00" % t, "db-%d" % (t % 2)]
             for t in range(1, 14)]
    records, totals = status(cluster({"failoverTotals": FIRST_SEEN}), observed(lines, leader="db-1"))
    assert len(records) == 10 and records[-1]["timeline"] == 14 and records[0]["timeline"] == 5
    assert totals["failovers"] == 13 and totals["windowCount"] == 0
    assert [(r["from"], r["to"]) for r in records[-2:]] == [("db-1", "db-0"), ("db-0", "db-1")]


def test_garbage_in_patronis_records_is_ignored():
    pgc = cluster({"failoverTotals": FIRST_SEEN}, promoted="yesterday db-1", stopped="x")
    for text in ("not json", '{"a": 1}', '[[1, 2, "r"]]', '[["1", 2, "r", "2026-11-30T01:00:00Z", "db-1"]]'):
        records, totals = status(pgc, dict(observed(), dcs_history=text))
        assert records == [] and totals["timeline"] == 1


def test_a_promotion_not_yet_dated_by_the_leader_is_pending():
    members = [{"name": "db-1", "timeline": 3}, {"name": "db-0", "timeline": 2}]
    line = [1, 5, "r", "2026-11-30T01:00:00+00:00", "db-0"]
    assert history_pending({"leader": "db-1", "members": members, "dcs_history": history(line)})
    line2 = [2, 9, "r", "2026-11-30T02:00:00+00:00", "db-1"]
    assert not history_pending({"leader": "db-1", "members": members, "dcs_history": history(line, line2)})
    assert not history_pending({"leader": "db-0", "members": [{"name": "db-0", "timeline": 1}], "dcs_history": "[]"})


def test_each_new_record_is_an_event_a_failover_a_warning():
    before = {"failoverTotals": dict(FIRST_SEEN, timeline=2)}
    after = {"failoverTotals": dict(FIRST_SEEN, timeline=4), "failovers": [
        {"timeline": 2, "kind": "failover", "from": "db-0", "to": "db-1"},
        {"timeline": 3, "kind": "switchover", "from": "db-1", "to": "db-2", "writeUnavailableSeconds": 1.5},
        {"timeline": 4, "kind": "failover", "from": "db-2", "to": "db-0"}]}
    events = [e for e in pgc_status_transitions(before, after) if e["reason"] in ("Failover", "Switchover")]
    assert [(e["type"], e["reason"]) for e in events] == [("Normal", "Switchover"), ("Warning", "Failover")]
    assert "1.5 s" in events[0]["message"] and "unknown" in events[1]["message"]
    # The first status of a cluster announces nothing of its past.
    assert not [e for e in pgc_status_transitions({}, after) if e["reason"] in ("Failover", "Switchover")]
