"""Thresholds decide alerts as Suricata does: one sequence of matches per type and track."""
from __future__ import annotations

import pytest

from inspection.detect.thresholds import Outcome, ThresholdTable
from tests.unit.detect._helpers import rule

A, B, C = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]), bytes([198, 51, 100, 7])
ALERT, QUIET, IGNORE = Outcome.ALERT, Outcome.QUIET, Outcome.IGNORE


def th(spec: str, sid: int = 1):
    return rule(f'content:"x"; {spec};', sid=sid)


def run(table: ThresholdTable, r, times, src=A, dst=B, flow=1) -> list[Outcome]:
    return [table.check(r, src, dst, flow, t) for t in times]


def alerts_at(spec: str, times) -> list[int]:
    """Which matches (1-based) alert when `spec` sees matches at `times`, one source and flow."""
    out = run(ThresholdTable(), th(spec), times)
    return [i + 1 for i, o in enumerate(out) if o is ALERT]


def test_no_threshold_always_alerts():
    t = ThresholdTable()
    assert run(t, rule('content:"x";'), range(5)) == [ALERT] * 5
    assert len(t) == 0 and t.counters.suppressed == 0


def test_limit_alerts_on_the_first_count_then_quiet():
    out = run(ThresholdTable(), th("threshold: type limit, track by_src, count 2, seconds 60"), range(5))
    assert out == [ALERT, ALERT, QUIET, QUIET, QUIET]


def test_threshold_alerts_every_count_th_match_in_the_window():
    assert alerts_at("threshold: type threshold, track by_src, count 3, seconds 60", range(10)) == [3, 6, 9]


def test_threshold_count_one_alerts_every_time_and_keeps_nothing():
    t = ThresholdTable()
    out = run(t, th("threshold: type threshold, track by_src, count 1, seconds 60"), range(4))
    assert out == [ALERT] * 4 and len(t) == 0


def test_both_alerts_once_per_window_on_the_count_th():
    out = run(ThresholdTable(), th("threshold: type both, track by_dst, count 3, seconds 60"), range(6))
    assert out == [IGNORE, IGNORE, ALERT, QUIET, QUIET, QUIET]
    assert alerts_at("threshold: type both, track by_dst, count 1, seconds 10", [0, 1, 2, 11, 12]) == [1, 4]


def test_detection_filter_alerts_after_count_is_exceeded():
    out = run(ThresholdTable(), th("detection_filter: track by_src, count 2, seconds 60"), range(5))
    assert out == [IGNORE, IGNORE, ALERT, ALERT, ALERT]
    assert alerts_at("detection_filter: track by_rule, count 1, seconds 60", range(3)) == [2, 3]


@pytest.mark.parametrize("spec, times, want", [
    # the window starts at the first match and holds up to and including start + seconds
    ("threshold: type limit, track by_src, count 1, seconds 10", [0, 5, 10, 10.5, 15, 21], [1, 4, 6]),
    # threshold: the count restarts after an alert, the window does not (12 is past 0 + 10)
    ("threshold: type threshold, track by_src, count 3, seconds 10", [0, 1, 2, 9, 11, 12], [3]),
    # a new window forgets the matches of the old one
    ("detection_filter: track by_src, count 2, seconds 10", [0, 1, 11, 12, 13, 14], [5, 6]),
    ("threshold: type both, track by_src, count 2, seconds 10", [0, 1, 2, 11, 12, 13, 30], [2, 5]),
])
def test_window_resets_after_seconds(spec, times, want):
    assert alerts_at(spec, times) == want


LIMIT1 = "threshold: type limit, track {}, count 1, seconds 60"


def test_by_src_counts_each_source_apart():
    t, r = ThresholdTable(), th(LIMIT1.format("by_src"))
    assert [t.check(r, s, d, 1, 0) for s, d in [(A, C), (B, C), (A, B), (B, A)]] == [ALERT, ALERT, QUIET, QUIET]


def test_by_dst_counts_each_destination_apart():
    t, r = ThresholdTable(), th(LIMIT1.format("by_dst"))
    assert [t.check(r, s, d, 1, 0) for s, d in [(A, C), (B, C), (A, B), (C, A)]] == [ALERT, QUIET, ALERT, ALERT]


def test_by_both_is_the_unordered_pair():
    t, r = ThresholdTable(), th(LIMIT1.format("by_both"))
    assert [t.check(r, s, d, 1, 0) for s, d in [(A, B), (B, A), (A, C), (C, B)]] == [ALERT, QUIET, ALERT, ALERT]


def test_by_rule_shares_one_count():
    t, r = ThresholdTable(), th(LIMIT1.format("by_rule"))
    assert [t.check(r, s, d, f, 0) for s, d, f in [(A, B, 1), (C, A, 2), (B, C, 3)]] == [ALERT, QUIET, QUIET]


def test_by_flow_counts_each_flow_apart():
    t, r = ThresholdTable(), th(LIMIT1.format("by_flow"))
    assert [t.check(r, A, B, f, 0) for f in (1, 2, 1, 3)] == [ALERT, ALERT, QUIET, ALERT]


def test_each_rule_has_its_own_entries():
    t = ThresholdTable()
    r1, r2 = th(LIMIT1.format("by_src"), sid=1), th(LIMIT1.format("by_src"), sid=2)
    assert [t.check(r, A, B, 1, 0) for r in (r1, r2, r1, r2)] == [ALERT, ALERT, QUIET, QUIET]
    assert t.counters.suppressed == 2


def test_ipv6_endpoints():
    a6, b6 = bytes(15) + b"\x01", bytes(15) + b"\x02"
    t, r = ThresholdTable(), th(LIMIT1.format("by_both"))
    assert [t.check(r, s, d, 1, 0) for s, d in [(a6, b6), (b6, a6), (A, B)]] == [ALERT, QUIET, ALERT]


def test_entries_expire_once_their_window_has_passed():
    t, r = ThresholdTable(), th("threshold: type limit, track by_src, count 1, seconds 10")
    for i in range(100):
        t.check(r, bytes([10, 0, 0, i]), B, 1, i * 0.1)      # 100 sources within 10 s
    assert len(t) == 100 and t.counters.peak == 100
    assert t.check(r, A, B, 1, 15) is ALERT          # the windows of the first 50 sources ended
    assert len(t) == 51 and t.counters.expired == 50
    assert t.check(r, A, B, 1, 30) is ALERT          # everything older is gone, A's first window too
    assert len(t) == 1 and t.counters.expired == 101


def test_full_table_alerts_and_counts_what_it_cannot_track():
    t, r = ThresholdTable(max_entries=2), th("threshold: type threshold, track by_src, count 3, seconds 10")
    assert [t.check(r, s, B, 1, 0) for s in (A, C)] == [IGNORE, IGNORE]
    # a third source does not fit: it alerts (never silently suppressed), and is counted
    assert [t.check(r, B, C, 1, 1) for _ in range(2)] == [ALERT, ALERT]
    assert t.counters.untracked == 2 and len(t) == 2
    # the tracked sources keep their count meanwhile
    assert run(t, r, [2, 3]) == [IGNORE, ALERT]
    # once their windows have passed, room is made for new ones
    assert t.check(r, B, C, 1, 11) is IGNORE
    assert t.counters.untracked == 2 and t.counters.expired == 2


def test_time_going_back_stays_in_the_window():
    # pcaps given out of order: an earlier timestamp is inside the open window, as in Suricata
    assert alerts_at("threshold: type limit, track by_src, count 2, seconds 10", [100, 95, 101]) == [1, 2]


def test_max_entries_must_be_positive():
    with pytest.raises(ValueError):
        ThresholdTable(max_entries=0)
