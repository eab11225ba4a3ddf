"""PKZIP 1.x "imploding" (zip method 6), decoded.

Shannon-Fano trees stored as run-length bit lengths, then a bit stream read
least significant bit first: a 1 bit is a literal (8 raw bits, or a code of
the literal tree when there is one), a 0 bit a match: raw low distance bits
(6, or 7 with the 8 KB dictionary), a distance-tree code for the high bits,
a length-tree code (63 adds 8 raw bits) plus the minimum match (2, or 3 with
a literal tree). Codes are canonical codes with every bit inverted, as
Info-ZIP's explode.c reads them. Pure Python, so about 1 MB/s: callers
bound the output size.
"""
from __future__ import annotations

from inspection.files.huffman import CanonicalCode, LsbBits
from inspection.files.unpack_base import UnpackError

__all__ = ["MAX_DECODE", "explode"]

MAX_DECODE = 8 << 20    # bytes decoded per entry at most (about 8 s)


def _sf_code(lengths: list[int]) -> CanonicalCode:
    """Implode's Shannon-Fano trees are canonical codes read with inverted bits."""
    return CanonicalCode(lengths, max_bits=16, what="implode", invert=True)


def _tree(data: bytes, pos: int, n: int) -> tuple[CanonicalCode, int]:
    if pos >= len(data):
        raise UnpackError("corrupt implode: tree missing")
    nbytes = data[pos] + 1
    lengths: list[int] = []
    for b in data[pos + 1:pos + 1 + nbytes]:
        lengths += [(b & 0x0F) + 1] * ((b >> 4) + 1)
    if len(lengths) != n or pos + 1 + nbytes > len(data):
        raise UnpackError("corrupt implode: tree size")
    return _sf_code(lengths), pos + 1 + nbytes


def explode(data: bytes, size: int, flags: int) -> bytes:
    """`size` bytes from an imploded stream; `flags` is the zip general purpose bit field."""
    big_dict, lit_tree = bool(flags & 0x2), bool(flags & 0x4)
    pos = 0
    literals = None
    if lit_tree:
        literals, pos = _tree(data, pos, 256)
    lengths, pos = _tree(data, pos, 64)
    distances, pos = _tree(data, pos, 64)
    low_bits, min_match = (7 if big_dict else 6), (3 if lit_tree else 2)
    r = LsbBits(data, pos)
    out = bytearray()
    while len(out) < size:
        if r.bit():
            out.append(literals.decode(r) if literals is not None else r.bits(8))
        else:
            dist = r.bits(low_bits)
            dist |= distances.decode(r) << low_bits
            length = lengths.decode(r)
            if length == 63:
                length += r.bits(8)
            length += min_match
            start = len(out) - dist - 1
            for i in range(length):       # before the start the dictionary reads as zeros
                out.append(out[start + i] if start + i >= 0 else 0)
        if r.over:
            raise UnpackError("truncated implode stream")
    return bytes(out[:size])
