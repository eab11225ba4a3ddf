"""Held data segments: the live path's answer to a body whose end may come on its own.

A file is judged at the packet that completes it. With a Content-Length that
packet carries the last bytes, so holding it keeps the file from the client
until the verdict. A chunked body (the last chunk) or a body delimited by the
close (the FIN) can end in a packet with no data of the file: by then the
client would hold every byte. So while such a body is being judged, the worker
holds its latest data segment, without a verdict, until the next packet of that
direction settles it: released (accepted) if that packet is, dropped if that
packet is blocked (the file's end with a malicious verdict). A segment held
`max_age` without a next packet is released: the sender is waiting (a window,
Nagle's algorithm holding a small last chunk back until it is acknowledged),
and the body is not complete without what follows anyway.

One held segment per flow and direction; the queue keeps it (its verdict comes later, by id),
so held segments take queue slots: at most `max_held` at once (a quarter of the
default queue length), past that a segment goes with its verdict as before the
holds existed, counted as `over_limit`.
"""
from __future__ import annotations

from dataclasses import dataclass

from inspection.io.nfqueue import Verdict, VerdictMsg
from inspection.model import Direction

__all__ = ["HOLD_MAX_AGE", "SegmentHolds"]

HOLD_MAX_AGE = 0.02   # seconds a held segment waits for the next one before it is released
MAX_HELD = 1024       # held segments at once (the queue holds 4096 packets by default)


@dataclass(slots=True)
class HoldCounters:
    held: int = 0        # data segments held for the packet after them
    released: int = 0    # ... released when that packet came (or the flow ended)
    dropped: int = 0     # ... dropped with it: the body's end was blocked
    expired: int = 0     # ... released after `max_age` with nothing after them
    over_limit: int = 0  # segments not held because `max_held` were held already


class SegmentHolds:
    __slots__ = ("max_age", "max_held", "counters", "_held")

    def __init__(self, max_age: float = HOLD_MAX_AGE, max_held: int = MAX_HELD) -> None:
        self.max_age = max_age
        self.max_held = max_held
        self.counters = HoldCounters()
        # (flow id, direction) -> (packet id, since, the IP packet)
        self._held: dict[tuple[int, Direction], tuple[int, float, bytes]] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, flow_id: int, packet_id: int, direction: Direction, now: float, packet: bytes) -> bool:
        """Keep `packet_id` without a verdict (the caller settled any earlier one first); False
        (counted) when `max_held` segments are held already: the caller gives its verdict now."""
        key = (flow_id, direction)
        if key in self._held:
            return False      # not settled first (a caller bug): the held one keeps its place
        if len(self._held) >= self.max_held:
            self.counters.over_limit += 1
            return False
        self._held[key] = (packet_id, now, packet)
        self.counters.held += 1
        return True

    def peek(self, flow_id: int, direction: Direction) -> bytes | None:
        """The IP packet held for the flow in `direction`: a reset to its receiver must carry its
        sequence number (the first byte the receiver lacks), or the receiver ignores it."""
        h = self._held.get((flow_id, direction))
        return h[2] if h is not None else None

    def settle(self, flow_id: int, direction: Direction, blocked: bool) -> VerdictMsg | None:
        """The next packet of `direction` came: the held segment's verdict, dropped with a
        blocked packet, else accepted. None if nothing is held for that flow and direction."""
        h = self._held.pop((flow_id, direction), None)
        if h is None:
            return None
        if blocked:
            self.counters.dropped += 1
            return VerdictMsg(h[0], Verdict.DROP)
        self.counters.released += 1
        return VerdictMsg(h[0], Verdict.ACCEPT)

    def forget(self, flow_id: int) -> list[VerdictMsg]:
        """The flow ended: its held segments are released."""
        out = []
        for d in (Direction.TO_SERVER, Direction.TO_CLIENT):
            h = self._held.pop((flow_id, d), None)
            if h is not None:
                out.append(VerdictMsg(h[0], Verdict.ACCEPT))
        self.counters.released += len(out)
        return out

    def expired(self, now: float) -> list[VerdictMsg]:
        """Segments held `max_age` or longer, released."""
        if not self._held:
            return []
        cut = now - self.max_age
        due = [key for key, h in self._held.items() if h[1] <= cut]
        out = [VerdictMsg(self._held.pop(key)[0], Verdict.ACCEPT) for key in due]
        self.counters.expired += len(out)
        return out

    def next_due(self, now: float) -> float | None:
        """Seconds until the oldest held segment is due, None if none is held."""
        if not self._held:
            return None
        return max(0.0, min(h[1] for h in self._held.values()) + self.max_age - now)
