"""Deflate64 ("enhanced deflate", zip method 9), decoded.

Deflate with a 64 KB window, length code 285 meaning 3 + 16 extra bits
instead of 258, and distance codes 30 and 31 (14 extra bits). zlib does not
decode it; Windows writes it for large zips. Pure Python, bit by bit (about
1 MB/s): callers bound the output size (`MAX_DECODE`).
"""
from __future__ import annotations

from inspection.files.huffman import CanonicalCode, LsbBits
from inspection.files.unpack_base import UnpackError

__all__ = ["MAX_DECODE", "inflate64"]

MAX_DECODE = 8 << 20

_LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
             227, 3]
_LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 16]
_DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
              4097, 6145, 8193, 12289, 16385, 24577, 32769, 49153]
_DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14]
_CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]




def _code(lengths: list[int]) -> CanonicalCode:
    return CanonicalCode(lengths, max_bits=15, what="deflate64")


_FIXED = (_code([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8), _code([5] * 32))


def _dynamic(r: LsbBits) -> tuple[CanonicalCode, CanonicalCode]:
    hlit, hdist, hclen = r.bits(5) + 257, r.bits(5) + 1, r.bits(4) + 4
    cl = [0] * 19
    for i in range(hclen):
        cl[_CL_ORDER[i]] = r.bits(3)
    clc = _code(cl)
    lengths: list[int] = []
    while len(lengths) < hlit + hdist:
        sym = clc.decode(r)
        if sym < 16:
            lengths.append(sym)
        elif sym == 16:
            if not lengths:
                raise UnpackError("corrupt deflate64: repeat with no length")
            lengths += [lengths[-1]] * (3 + r.bits(2))
        elif sym == 17:
            lengths += [0] * (3 + r.bits(3))
        else:
            lengths += [0] * (11 + r.bits(7))
        if r.over:
            raise UnpackError("truncated deflate64 stream")
    if len(lengths) > hlit + hdist:
        raise UnpackError("corrupt deflate64: too many lengths")
    return _code(lengths[:hlit]), _code(lengths[hlit:])


def inflate64(data: bytes, size: int) -> bytes:
    """The first `size` bytes a Deflate64 stream decodes to."""
    r = LsbBits(data)
    out = bytearray()
    final = False
    while not final and len(out) < size:
        final = bool(r.bit())
        btype = r.bits(2)
        if btype == 0:
            r.pos = (r.pos + 7) & ~7
            at = r.pos >> 3
            n = int.from_bytes(data[at:at + 2], "little")
            if len(data) < at + 4 + n:
                raise UnpackError("truncated deflate64 stream")
            out += data[at + 4:at + 4 + n]
            r.pos = (at + 4 + n) * 8
            continue
        if btype == 3:
            raise UnpackError("corrupt deflate64: bad block type")
        lit, dist = _FIXED if btype == 1 else _dynamic(r)
        while len(out) < size:
            sym = lit.decode(r)
            if r.over:
                raise UnpackError("truncated deflate64 stream")
            if sym < 256:
                out.append(sym)
            elif sym == 256:
                break
            else:
                i = sym - 257
                if i >= len(_LEN_BASE):
                    raise UnpackError("corrupt deflate64: bad length code")
                length = _LEN_BASE[i] + r.bits(_LEN_EXTRA[i])
                d = dist.decode(r)
                distance = _DIST_BASE[d] + r.bits(_DIST_EXTRA[d])
                start = len(out) - distance
                if start < 0:
                    raise UnpackError("corrupt deflate64: distance before start")
                for k in range(length):
                    out.append(out[start + k])
    if len(out) < size:
        raise UnpackError("truncated deflate64 stream")
    return bytes(out[:size])
