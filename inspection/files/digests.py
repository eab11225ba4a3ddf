"""Where a tracked file's digests are computed: the seam the live path uses to hash off the packet loop.

The tracker hands each chunk of a file to `Digests.feed` with that file's
hash objects, and calls `settle` before it reads a digest. `InlineDigests`
(the default, and all an offline run needs) hashes at once; the live worker
plugs in `inspection.io.digest_thread.ThreadDigests`, which hashes on a
thread of its own so a queued download's bytes are hashed on the other core
while the loop gives verdicts.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

__all__ = ["Digests", "InlineDigests"]


class Digests(Protocol):
    def feed(self, hashers: Sequence[Any], data: bytes) -> None:
        """Update each of `hashers` with `data`, in the order chunks are fed for them."""
        ...

    def settle(self) -> None:
        """Return once everything fed so far is hashed."""
        ...


class InlineDigests:
    def feed(self, hashers: Sequence[Any], data: bytes) -> None:
        for h in hashers:
            h.update(data)

    def settle(self) -> None:
        pass
