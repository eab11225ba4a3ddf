"""Canonical Huffman codes, as deflate builds them from code lengths, and deflate's bit reader.

The pure-Python decoders for the old formats (implode, deflate64, LZX,
ARJ) all read their codes this way; only the bit order differs, and the
bit reader passed to `decode` takes care of that.
"""
from __future__ import annotations

from typing import Protocol

from inspection.files.unpack_base import UnpackError

__all__ = ["BitSource", "CanonicalCode", "LsbBits"]


class BitSource(Protocol):
    def bit(self) -> int: ...


class LsbBits:
    """Deflate's bit order (least significant bit of each byte first), from byte `start`;
    reading past the end gives zeros and sets `over`."""

    __slots__ = ("data", "pos", "over")

    def __init__(self, data: bytes, start: int = 0) -> None:
        self.data, self.pos, self.over = data, start * 8, False

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            self.over = True
            return 0
        b = (self.data[byte] >> (self.pos & 7)) & 1
        self.pos += 1
        return b

    def bits(self, n: int) -> int:
        v = 0
        for i in range(n):
            v |= self.bit() << i
        return v


class CanonicalCode:
    """Symbols by code length (1..`max_bits`; 0 means unused), first code per length."""

    __slots__ = ("count", "first", "offset", "symbols", "what", "invert")

    def __init__(self, lengths: list[int], *, max_bits: int, what: str, invert: bool = False,
                 need_symbols: bool = False) -> None:
        self.what, self.invert = what, invert
        self.count = count = [0] * (max_bits + 1)
        for ln in lengths:
            if not 0 <= ln <= max_bits:
                raise UnpackError(f"corrupt {what}: code length {ln}")
            count[ln] += 1
        count[0] = 0
        self.symbols = [s for ln in range(1, max_bits + 1) for s, x in enumerate(lengths) if x == ln]
        self.first, self.offset = [0] * (max_bits + 1), [0] * (max_bits + 1)
        code = idx = 0
        for ln in range(1, max_bits + 1):
            code <<= 1
            self.first[ln], self.offset[ln] = code, idx
            code += count[ln]
            idx += count[ln]
        if code > (1 << max_bits):
            raise UnpackError(f"corrupt {what}: over-subscribed code")
        if need_symbols and not self.symbols:
            raise UnpackError(f"corrupt {what}: empty code")

    def decode(self, r: BitSource) -> int:
        code, flip = 0, 1 if self.invert else 0
        for ln in range(1, len(self.count)):
            code = (code << 1) | (r.bit() ^ flip)
            k = code - self.first[ln]
            if 0 <= k < self.count[ln]:
                return self.symbols[self.offset[ln] + k]
        raise UnpackError(f"corrupt {self.what}: undecodable code")
