"""Flows that time out end between the live worker's batches, a slice at a time.

At 1,000 new connections a second the engine's once-a-second expiry ended a
second's worth of flows in one go, each with its flow event: tens of
milliseconds in which every queued packet waited (bench-live in its steady
state). The worker ends them in the gaps instead, and after its batches only
when the queue has left no gap for EXPIRE_LAG.
"""
from __future__ import annotations

import io

from firmware.bench.frames import TcpConversation
from inspection.config import ChecksumMode, EngineConfig
from inspection.engine import Engine
from inspection.io.live import EXPIRE_LAG, EXPIRE_SLICE, LiveWorker
from inspection.io.senders import FakeSender
from inspection.io.nfqueue import FakeQueue
from inspection.output.eve import EveWriter
from inspection.policy.verdict import FlowPolicy, PolicyConfig
from tests.unit.live.test_live_worker import events, queued

T0 = 1_700_000_000.0
CLOSED_TIMEOUT = 60.0   # Suricata's default for closed TCP flows


def closed_connections(n: int, first_port: int = 41000):
    frames = []
    for i in range(n):
        c = TcpConversation("192.0.2.10", "192.0.2.20", first_port + i, 8080)
        frames += list(c.handshake()) + list(c.send(b"hello\n")) + list(c.close())
    return frames


def worker_with(n: int):
    """A worker that has seen `n` whole connections at T0, its clock in the test's hands."""
    out = io.BytesIO()
    eve = EveWriter(out)
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True), eve.write)
    now = [T0]
    q = FakeQueue(queued(closed_connections(n)))
    w = LiveWorker(q, engine, FlowPolicy(PolicyConfig()), FakeSender(), eve.write, clock=lambda: now[0])
    while w.run_once(0):
        pass
    assert len(engine.flows) == n
    return w, q, now, out


def timed_out(out: io.BytesIO) -> int:
    return sum(1 for e in events(out) if e["event_type"] == "flow" and e["flow"]["reason"] == "timeout")


def test_due_flows_end_a_slice_per_gap_between_batches():
    w, q, now, out = worker_with(3 * EXPIRE_SLICE + 5)
    now[0] = T0 + CLOSED_TIMEOUT + 2
    ended = []
    while len(w.engine.flows):
        assert w.run_once(0) == 0                # nothing queued: a gap
        ended.append(w.engine.flows.counters.timeouts)
    assert ended == [EXPIRE_SLICE, 2 * EXPIRE_SLICE, 3 * EXPIRE_SLICE, 3 * EXPIRE_SLICE + 5]
    assert timed_out(out) == 3 * EXPIRE_SLICE + 5


def test_a_waiting_packet_goes_before_flows_that_are_barely_due():
    w, q, now, out = worker_with(30)
    now[0] = T0 + CLOSED_TIMEOUT + EXPIRE_LAG / 2   # due, for less than EXPIRE_LAG
    q.pending += queued(closed_connections(1, first_port=42000)[:1], start_id=10_000)
    assert w.run_once(0) == 1
    assert q.sent[-1].packet_id == 10_000
    assert w.engine.flows.counters.timeouts == 0      # the packet had the worker to itself
    w.run_once(0)                                     # the gap after it
    assert w.engine.flows.counters.timeouts == EXPIRE_SLICE
    assert w.counters.expiry_behind == 0


def test_with_no_gap_for_the_lag_slices_follow_the_batches():
    w, q, now, out = worker_with(60)
    now[0] = T0 + CLOSED_TIMEOUT + 2 + EXPIRE_LAG
    busy = queued(closed_connections(4, first_port=43000), start_id=10_000)
    q.pending += busy[:3]
    assert w.run_once(0) == 3
    # a new flow takes at least one packet: a batch ends as many flows as it had packets, and a slice
    assert w.engine.flows.counters.timeouts == 3 + EXPIRE_SLICE
    q.pending += busy[3:5]
    w.run_once(0)
    assert w.engine.flows.counters.timeouts == 3 + 2 + 2 * EXPIRE_SLICE
    # counted and reported: an operator sees a queue that leaves the worker no gaps
    assert w.counters.expiry_behind == 2
    assert w.stats_event().body.tree()["live"]["expiry_behind"] == 2


def test_a_flow_end_that_fails_is_counted_and_the_other_flows_still_end():
    w, q, now, out = worker_with(EXPIRE_SLICE)
    engine = w.engine
    real_end, calls = engine._end_flow, []

    def end_flow(flow, reason):
        calls.append(flow)
        if len(calls) == 3:
            raise ValueError("a parser failed on its last bytes")
        real_end(flow, reason)

    engine._end_flow = end_flow
    now[0] = T0 + CLOSED_TIMEOUT + 2
    for _ in range(5):
        w.run_once(0)              # never raises: the worker keeps its queue
    assert len(engine.flows) == 0  # none lost from the timing wheel behind the one that failed
    assert w.counters.engine_errors == 1
    assert len(calls) == EXPIRE_SLICE and timed_out(out) == EXPIRE_SLICE - 1
