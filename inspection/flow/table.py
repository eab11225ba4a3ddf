"""Bidirectional flow table with per-state timeouts, a memory cap and
emergency pruning.

Time is the packet timestamp handed in; the table never reads a clock.
Expiry uses a lazy timing wheel: each flow sits in the bucket of the whole
second at which it could first time out; when that second passes, the flow is
re-checked against its real last-seen time and either ends or moves to a later
bucket. Packets only touch their own flow, and an idle flow costs one slot in
the wheel.
"""
from __future__ import annotations

import enum
import heapq
import math
import zlib
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from inspection.model import IPPROTO_TCP, IPPROTO_UDP, Direction, Packet

if TYPE_CHECKING:
    from inspection.applayer.dispatch import AppState
    from inspection.detect.inspector import FlowDetectState
    from inspection.stream.tcp import TcpSession

_TO_SERVER, _TO_CLIENT = Direction.TO_SERVER, Direction.TO_CLIENT   # globals: no Enum lookup per packet


class FlowState(enum.IntEnum):
    NEW = 0
    ESTABLISHED = 1
    CLOSED = 2

    @property
    def eve_name(self) -> str:
        return self.name.lower()


class EndReason(enum.Enum):
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    MEMCAP = "memcap"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds of inactivity after which a flow in each state ends."""

    new: float
    established: float
    closed: float

    def of(self, state: FlowState) -> float:
        return (self.new, self.established, self.closed)[state]


# Suricata's defaults (flow-timeouts in suricata.yaml).
DEFAULT_TIMEOUTS = {
    IPPROTO_TCP: Timeouts(60, 600, 60),
    IPPROTO_UDP: Timeouts(30, 300, 0),
    0: Timeouts(30, 300, 0),
}
EMERGENCY_TIMEOUTS = {
    IPPROTO_TCP: Timeouts(10, 100, 5),
    IPPROTO_UDP: Timeouts(10, 100, 0),
    0: Timeouts(10, 100, 0),
}

# Bytes charged per tracked flow against flow.memcap: the flow, its TCP session
# and an idle parser (measured by `utm bench`: about 1.2-2.9 KB RSS per idle
# flow, rounded down because pymalloc overhead is shared). Stream out-of-order
# data, defragmentation and parser buffers have their own caps.
FLOW_COST = 2048


class Flow:
    """One bidirectional conversation. The client is the side that opened it."""

    __slots__ = ("flow_id", "key", "proto", "family", "cli", "srv", "cport", "sport", "vlan", "start", "last",
                 "pkts_ts", "pkts_tc", "bytes_ts", "bytes_tc", "state", "tcp", "app", "alerted", "flags_ts",
                 "flags_tc", "ended", "icmp", "detect")

    def __init__(self, flow_id: int, key: tuple, pkt: Packet, swap: bool) -> None:
        self.flow_id = flow_id
        self.key = key
        self.proto = pkt.proto
        self.family = pkt.family
        if swap:
            self.cli, self.srv, self.cport, self.sport = pkt.dst, pkt.src, pkt.dport, pkt.sport
        else:
            self.cli, self.srv, self.cport, self.sport = pkt.src, pkt.dst, pkt.sport, pkt.dport
        self.vlan = pkt.vlan
        self.start = pkt.ts
        self.last = pkt.ts
        # counters per direction as plain slots: idle flows are many, lists cost 72 bytes each
        self.pkts_ts = self.pkts_tc = self.bytes_ts = self.bytes_tc = 0
        self.state = FlowState.NEW
        self.tcp: TcpSession | None = None   # created lazily
        self.app: AppState | None = None     # created on first payload
        self.alerted = False
        self.flags_ts = self.flags_tc = 0     # TCP flags seen each way
        self.ended = False
        self.icmp: list | None = None   # ICMP type and code seen first each way
        self.detect: FlowDetectState | None = None   # only when rules are loaded

    def direction_of(self, pkt: Packet) -> Direction:
        if pkt.src == self.cli and pkt.sport == self.cport and (pkt.src != pkt.dst or pkt.dport == self.sport):
            return _TO_SERVER
        return _TO_CLIENT

    def swap(self) -> None:
        """Reverse client and server (the first packet came from the server)."""
        self.cli, self.srv, self.cport, self.sport = self.srv, self.cli, self.sport, self.cport
        self.pkts_ts, self.pkts_tc = self.pkts_tc, self.pkts_ts
        self.bytes_ts, self.bytes_tc = self.bytes_tc, self.bytes_ts
        self.flags_ts, self.flags_tc = self.flags_tc, self.flags_ts
        if self.icmp is not None:
            self.icmp = self.icmp[2:] + self.icmp[:2]


@dataclass(slots=True)
class FlowCounters:
    created: int = 0
    timeouts: int = 0
    memcap_prunes: int = 0
    emergency_entered: int = 0
    active_peak: int = 0


def flow_key(pkt: Packet, use_vlan: bool = True) -> tuple:
    """Direction-independent key: protocol, ordered endpoint pair, VLAN ids
    (unless `use_vlan` is off: a capture point that tags only one direction)."""
    vlan = pkt.vlan if use_vlan else ()
    a = (pkt.src, pkt.sport)
    b = (pkt.dst, pkt.dport)
    if a <= b:
        return (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport, vlan)
    return (pkt.proto, pkt.dst, pkt.dport, pkt.src, pkt.sport, vlan)


PRUNE_LOOK = 32   # flows a create over the memory cap looks at, at most, before it evicts one


def _last(flow: Flow) -> float:
    return flow.last


class FlowTable:
    """Flows by key; `lookup` creates, `expire` and `prune` end them.

    Ended flows are handed to `on_end(flow, reason)` so that the engine can
    flush their parsers and log them.
    """

    def __init__(self, on_end: Callable[[Flow, EndReason], None], *, memcap: int = 256 << 20,
                 timeouts: dict[int, Timeouts] | None = None, emergency_recovery: float = 0.3) -> None:
        self._flows: dict[tuple, Flow] = {}
        # second -> flows that may expire then; deques: expiry slices and prunes take from the front
        # of a bucket that a flood fills with tens of thousands of flows
        self._buckets: dict[int, deque[Flow]] = {}
        self._seconds: list[int] = []                # heap of the buckets' seconds
        self._on_end = on_end
        self._memcap = memcap
        self._timeouts = timeouts or DEFAULT_TIMEOUTS
        self._emergency = False
        self._recovery = emergency_recovery
        self._next_id = 1
        self.counters = FlowCounters()

    def __len__(self) -> int:
        return len(self._flows)

    def __iter__(self) -> Iterator[Flow]:
        return iter(list(self._flows.values()))

    def timeout_of(self, flow: Flow) -> float:
        """The idle time that ends `flow` now: in emergency the shorter of its own and the
        emergency one (configured timeouts below the emergency ones stay as they are)."""
        t = self._wheel_timeout(flow)
        if self._emergency:
            e = EMERGENCY_TIMEOUTS.get(flow.proto) or EMERGENCY_TIMEOUTS[0]
            return min(t, e.of(flow.state))
        return t

    def _wheel_timeout(self, flow: Flow) -> float:
        """Where a flow goes on the wheel: always by the configured timeouts, so that the wheel's
        front stays the soonest due in one order for the prune; in emergency the shorter
        timeouts apply when a flow is looked at (its second comes, or a prune takes it)."""
        t = self._timeouts.get(flow.proto) or self._timeouts[0]
        return t.of(flow.state)

    def get(self, key: tuple) -> Flow | None:
        return self._flows.get(key)

    def create(self, key: tuple, pkt: Packet, swap: bool) -> Flow:
        if (len(self._flows) + 1) * FLOW_COST > self._memcap:
            self._prune(pkt.ts)
        flow = Flow(self._flow_id(pkt), key, pkt, swap)
        self._flows[key] = flow
        c = self.counters
        c.created += 1
        if len(self._flows) > c.active_peak:
            c.active_peak = len(self._flows)
        self._schedule(flow, pkt.ts + self._wheel_timeout(flow), pkt.ts)
        return flow

    def _schedule(self, flow: Flow, deadline: float, now: float) -> None:
        sec = max(math.floor(deadline), math.floor(now) + 1) if deadline > now else math.floor(deadline)
        bucket = self._buckets.get(sec)
        if bucket is None:
            self._buckets[sec] = deque((flow,))
            heapq.heappush(self._seconds, sec)
        else:
            bucket.append(flow)

    def _flow_id(self, pkt: Packet) -> int:
        # A positive 51-bit id (exact in JSON doubles), unique per flow in a run
        # and stable across runs of the same input.
        n = self._next_id
        self._next_id += 1
        h = zlib.crc32(pkt.src + pkt.dst + pkt.sport.to_bytes(2, "big") + pkt.dport.to_bytes(2, "big"))
        return ((h & 0xFFFFF) << 31 | n) & ((1 << 51) - 1)

    def next_due(self) -> int | None:
        """The second at which the oldest flows may time out (look then), None if no flow."""
        return self._seconds[0] if self._seconds else None

    def expire(self, now: float, budget: int | None = None) -> None:
        """End every flow idle for longer than its state's timeout; with a `budget`, look at no
        more than that many due flows (oldest first) and leave the rest for the next call.

        A second's bucket can hold every flow that started in one second (thousands in a busy
        office), each ending with its flow event: tens of milliseconds at once, in which the
        live path's packets would wait."""
        seconds, buckets = self._seconds, self._buckets
        while seconds and seconds[0] <= now:
            if budget is not None and budget <= 0:
                return
            bucket = buckets[seconds[0]]
            if budget is None or budget >= len(bucket):
                due = list(buckets.pop(heapq.heappop(seconds)))
                if budget is not None:
                    budget -= len(due)
            else:                       # the rest stays: nothing joins a bucket that is due
                popleft = bucket.popleft
                due = [popleft() for _ in range(budget)]
                budget = 0
            for i, flow in enumerate(due):
                if flow.ended:
                    continue
                if flow.last + self.timeout_of(flow) <= now:
                    try:
                        self._end(flow, EndReason.TIMEOUT)
                    except BaseException:
                        for rest in due[i + 1:]:   # back on the wheel: looked at by the next call
                            self._schedule(rest, rest.last + self._wheel_timeout(rest), now)
                        raise
                    self.counters.timeouts += 1
                else:
                    self._schedule(flow, flow.last + self._wheel_timeout(flow), now)
        if self._emergency:
            self._emergency_front(now, budget)
            if len(self._flows) * FLOW_COST < self._memcap * (1 - self._recovery):
                self._emergency = False

    def _emergency_front(self, now: float, budget: int | None) -> None:
        """In emergency the shorter timeouts end flows before their second on the wheel comes:
        the front is looked at (at most `budget` flows) until a flow is not over yet."""
        while budget is None or budget > 0:
            taken = self._take_front()
            if taken is None:
                return
            flow, sec = taken
            if budget is not None:
                budget -= 1
            if flow.last + self.timeout_of(flow) <= now:
                self._end(flow, EndReason.TIMEOUT)
                self.counters.timeouts += 1
            elif flow.last + self._wheel_timeout(flow) < sec + 1:   # idle, not over yet: so is the rest
                self._buckets[sec].appendleft(flow)
                return
            else:                                                  # active since: its place is further on
                self._schedule(flow, flow.last + self._wheel_timeout(flow), now)

    def _take_front(self) -> tuple[Flow, int] | None:
        """The first flow still tracked at the front of the wheel, taken off it, and its second."""
        seconds, buckets = self._seconds, self._buckets
        while seconds:
            sec = seconds[0]
            bucket = buckets[sec]
            if not bucket:
                del buckets[heapq.heappop(seconds)]
                continue
            flow = bucket.popleft()
            if not flow.ended:
                return flow, sec
        return None

    def _prune(self, now: float) -> None:
        """Memory cap reached: emergency timeouts, and room for the new flow.

        Flows come off the front of the timing wheel (soonest due first, oldest first within a
        second): one past its emergency timeout ends as a timeout, one idle since it was put there
        is evicted, one active since goes back on the wheel where it now belongs. If PRUNE_LOOK
        of them were all active, the least recently active of those is evicted. A create pays
        for a bounded look, never a sort of the whole table: at 131,000 flows, ending the oldest
        5% at once (with their flow events) stopped the live path for about a tenth of a second."""
        if not self._emergency:
            self._emergency = True
            self.counters.emergency_entered += 1
        looked: list[Flow] = []
        try:
            while len(looked) < PRUNE_LOOK and (len(self._flows) + 1) * FLOW_COST > self._memcap:
                taken = self._take_front()
                if taken is None:
                    break
                flow, sec = taken
                if flow.last + self.timeout_of(flow) <= now:
                    self._end(flow, EndReason.TIMEOUT)
                    self.counters.timeouts += 1
                elif flow.last + self._wheel_timeout(flow) < sec + 1:   # idle since: among the soonest due
                    self._end(flow, EndReason.MEMCAP)
                    self.counters.memcap_prunes += 1
                else:
                    looked.append(flow)
            if looked and (len(self._flows) + 1) * FLOW_COST > self._memcap:
                victim = min(looked, key=_last)
                looked.remove(victim)
                self._end(victim, EndReason.MEMCAP)
                self.counters.memcap_prunes += 1
        finally:
            for flow in looked:          # back on the wheel, where they belong now
                self._schedule(flow, flow.last + self._wheel_timeout(flow), now)

    def _end(self, flow: Flow, reason: EndReason) -> None:
        flow.ended = True
        del self._flows[flow.key]
        self._on_end(flow, reason)

    def end(self, flow: Flow, reason: EndReason) -> None:
        if not flow.ended:
            self._end(flow, reason)

    def shutdown(self) -> None:
        """End every remaining flow (end of input), oldest first."""
        for flow in sorted(self._flows.values(), key=lambda f: f.start):
            self._end(flow, EndReason.SHUTDOWN)
        self._buckets.clear()
        self._seconds.clear()
