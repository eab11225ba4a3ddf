"""What every unpacker shares: the member it yields, its one error, bounded reads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import IO

__all__ = ["Member", "UnpackError", "read_capped"]

_CHUNK = 1 << 16


class UnpackError(Exception):
    """A container that cannot be read (corrupt, truncated, not what it claimed)."""


@dataclass(frozen=True, slots=True)
class Member:
    """One file inside a container. `data` is None when it was not read;
    `reason` says why (``encrypted``, ``too large``, ``unsupported compression: implode``)."""

    name: str
    data: bytes | None
    reason: str | None = None
    size: int = 0     # declared size when `data` is None

    def __post_init__(self) -> None:
        if (self.data is None) == (self.reason is None):
            raise ValueError("a member has either data or a reason")


def read_capped(stream: IO[bytes], cap: int) -> bytes | None:
    """Up to `cap` bytes of `stream`; None if it has more (the caller says "too large")."""
    buf = bytearray()
    while True:
        chunk = stream.read(min(_CHUNK, cap + 1 - len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > cap:
            return None
