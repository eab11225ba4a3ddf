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

One held segment per flow; the queue keeps it (its verdict comes later, by id).
"""
from __future__ import annotations

from dataclasses import dataclass

from inspection.io.nfqueue import Verdict, VerdictMsg
from inspection.model import Direction

__all__ = ["HOLD_MAX_AGE", "SegmentHolds"]

HOLD_MAX_AGE = 0.02   # seconds a held segment waits for the next one before it is released


@dataclass(slots=True)
class HoldCounters:
    held: int = 0        # data segments held for the packet after them
    released: int = 0    # ... released when that packet came (or the flow ended)
    dropped: int = 0     # ... dropped with it: the body's end was blocked
    expired: int = 0     # ... released after `max_age` with nothing after them


class SegmentHolds:
    __slots__ = ("max_age", "counters", "_held")

    def __init__(self, max_age: float = HOLD_MAX_AGE) -> None:
        self.max_age = max_age
        self.counters = HoldCounters()
        # flow id -> (packet id, since, direction, the IP packet)
        self._held: dict[int, tuple[int, float, Direction, bytes]] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, flow_id: int, packet_id: int, direction: Direction, now: float, packet: bytes) -> None:
        """Keep `packet_id` without a verdict (the caller settled any earlier one first)."""
        self._held[flow_id] = (packet_id, now, direction, packet)
        self.counters.held += 1

    def peek(self, flow_id: int, direction: Direction) -> bytes | None:
        """The IP packet held for the flow in `direction`: a reset to its receiver must carry its
        sequence number (the first byte the receiver lacks), or the receiver ignores it."""
        h = self._held.get(flow_id)
        return h[3] if h is not None and h[2] is direction else None

    def settle(self, flow_id: int, direction: Direction, blocked: bool) -> VerdictMsg | None:
        """The next packet of `direction` came: the held segment's verdict, dropped with a
        blocked packet, else accepted. None if nothing is held for that flow and direction."""
        h = self._held.get(flow_id)
        if h is None or h[2] is not direction:
            return None
        del self._held[flow_id]
        if blocked:
            self.counters.dropped += 1
            return VerdictMsg(h[0], Verdict.DROP)
        self.counters.released += 1
        return VerdictMsg(h[0], Verdict.ACCEPT)

    def forget(self, flow_id: int) -> VerdictMsg | None:
        """The flow ended (or was handed back): its held segment is released."""
        h = self._held.pop(flow_id, None)
        if h is None:
            return None
        self.counters.released += 1
        return VerdictMsg(h[0], Verdict.ACCEPT)

    def expired(self, now: float) -> list[VerdictMsg]:
        """Segments held `max_age` or longer, released."""
        if not self._held:
            return []
        cut = now - self.max_age
        due = [fid for fid, h in self._held.items() if h[1] <= cut]
        out = [VerdictMsg(self._held.pop(fid)[0], Verdict.ACCEPT) for fid in due]
        self.counters.expired += len(out)
        return out

    def next_due(self, now: float) -> float | None:
        """Seconds until the oldest held segment is due, None if none is held."""
        if not self._held:
            return None
        return max(0.0, min(h[1] for h in self._held.values()) + self.max_age - now)
