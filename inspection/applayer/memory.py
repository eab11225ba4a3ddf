"""The bytes app-layer parsers hold for unfinished messages, all flows together, capped.

Each parser bounds what one flow may hold (an HTTP/1 head 64 KB a side, an
HTTP/2 frame and header block, a DNS-over-TCP message 64 KB, a TLS handshake
message 256 KB, an SMTP client's bytes after DATA 64 KB), but nothing bounded
the sum: a host that opens thousands of connections and leaves a partial
head on each made the worker grow by 64-128 KB a flow until the flows timed
out, far past the other memory caps (`app-layer.memcap`, default 64 MB).

Holders are kept in the order they began to hold. Past the cap the oldest
are shed first (`HoldsBytes.shed`: the parser forgets those bytes as if they
were a gap), so bytes left waiting on purpose make room for a head that is
arriving now, and a flood of slow partial heads cannot push out the flows
behind it. Every shed is counted and logged (an `APPLAYER_MEMCAP` anomaly).
The trade: a host that fills the cap can have its own oldest flow shed, whose
head then goes unparsed (logged, with the flow); refusing the newest instead
would let it blind the box to every other device's next multi-segment head.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
MEMCAP_EVENT = "APPLAYER_MEMCAP"   # the anomaly of a flow made to forget what it held


class AppMemory(Generic[K]):
    """Held bytes per key (a flow), their sum, and the holders to shed past `cap`."""

    __slots__ = ("cap", "held", "peak", "sheds", "_holders")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.held = 0          # bytes held now, all flows
        self.peak = 0
        self.sheds = 0         # flows made to forget what they held
        self._holders: dict[K, int] = {}   # insertion order: the oldest holder first

    def account(self, key: K, n: int) -> bool:
        """`key` holds `n` bytes now. True if that puts the sum over the cap."""
        holders = self._holders
        old = holders.get(key) if holders else None   # (nothing held anywhere: the common case)
        if old is None:
            if not n:
                return False
            holders[key] = n
            old = 0
        elif n:
            holders[key] = n    # keeps its place: held since it began to hold
        else:
            del holders[key]
        held = self.held = self.held + n - old
        if held > self.peak:
            self.peak = held
        return held > self.cap

    def release(self, key: K) -> None:
        """`key` ended: what it held is freed with it."""
        if self._holders:
            n = self._holders.pop(key, 0)
            self.held -= n

    def victims(self) -> Iterator[K]:
        """Holders to shed, oldest first, while the sum is over the cap (the caller sheds each
        and accounts what it still holds before asking for the next)."""
        while self.held > self.cap and self._holders:
            key = next(iter(self._holders))
            self.sheds += 1
            yield key
            if self._holders.get(key):   # still holding after its shed (a parser bug): not offered
                self.held -= self._holders.pop(key)   # again, or this loop would never end

    def __len__(self) -> int:
        return len(self._holders)
