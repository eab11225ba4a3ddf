"""Held segments: settled by the next packet of their direction, released in time, and capped."""
from __future__ import annotations

from inspection.io.holds import SegmentHolds
from inspection.io.nfqueue import Verdict
from inspection.model import Direction

TC, TS = Direction.TO_CLIENT, Direction.TO_SERVER


def test_the_next_packet_of_the_direction_settles_the_held_one():
    h = SegmentHolds()
    assert h.hold(1, 10, TC, 0.0, b"seg")
    assert h.settle(1, TS, blocked=True) is None            # the other direction: still held
    assert h.peek(1, TC) == b"seg" and h.peek(1, TS) is None
    v = h.settle(1, TC, blocked=True)
    assert (v.packet_id, v.verdict) == (10, Verdict.DROP) and not h
    h.hold(2, 20, TC, 0.0, b"x")
    assert h.settle(2, TC, blocked=False).verdict is Verdict.ACCEPT
    assert (h.counters.held, h.counters.dropped, h.counters.released) == (2, 1, 1)


def test_what_waits_too_long_is_released_and_the_number_held_is_capped():
    h = SegmentHolds(max_age=0.02, max_held=2)
    assert h.hold(1, 10, TC, 1.00, b"a") and h.hold(2, 11, TC, 1.01, b"b")
    assert not h.hold(3, 12, TC, 1.01, b"c") and h.counters.over_limit == 1
    assert not h.hold(1, 13, TC, 1.01, b"a2")  # not settled first: the held one keeps its place
    assert abs(h.next_due(1.015) - 0.005) < 1e-9
    assert [v.packet_id for v in h.expired(1.03)] == [10, 11] and h.counters.expired == 2 and not h


def test_a_flow_holds_one_segment_per_direction_and_its_end_releases_both():
    h = SegmentHolds()
    assert h.hold(1, 10, TC, 0.0, b"down") and h.hold(1, 11, TS, 0.0, b"up")
    assert h.peek(1, TC) == b"down" and h.peek(1, TS) == b"up"
    assert sorted(v.packet_id for v in h.forget(1)) == [10, 11] and not h
