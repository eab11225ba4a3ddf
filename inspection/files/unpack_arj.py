"""ARJ archives: stored, methods 1-3 (LZ77 + static Huffman blocks, the
scheme LHA's -lh5-/-lh6- also use) and method 4 (LZ77 with unary-prefixed
lengths and pointers).

Same contract as `unpack`. Garbled (password) entries: ``encrypted``.
Decoding runs in Python, bit by bit (about 1 MB/s), so compressed members
over `MAX_DECODE` (8 MB) are "too large" whatever `cap` allows: the time
budget is only checked between members.
"""
from __future__ import annotations

from collections.abc import Iterator

from inspection.files.huffman import CanonicalCode
from inspection.files.unpack_base import Member, UnpackError

__all__ = ["MAX_DECODE", "unpack_arj"]

_NC, _NP, _NT = 510, 17, 19          # literal/length codes, pointer codes, code-length codes
_THRESHOLD = 3
MAX_DECODE = 8 << 20


class _Bits:
    """MSB-first bit reader; reading past the end gives zeros and sets `over`."""

    __slots__ = ("data", "pos", "over")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.over = data, 0, False

    def bits(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | self.bit()
        return v

    def bit(self) -> int:
        byte = self.pos >> 3
        if byte >= len(self.data):
            self.over = True
            return 0
        b = (self.data[byte] >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return b


class _Single:
    """A code with one symbol: ARJ sends the symbol instead of the lengths; no bits are read."""

    __slots__ = ("symbol",)

    def __init__(self, symbol: int) -> None:
        self.symbol = symbol

    def decode(self, r: _Bits) -> int:
        return self.symbol


def _huffman(lengths: list[int], single: int | None = None) -> CanonicalCode | _Single:
    """ARJ's make_table: a canonical code (shorter first, then by symbol)."""
    if single is not None:
        return _Single(single)
    return CanonicalCode(lengths, max_bits=16, what="arj", need_symbols=True)


def _pt_lengths(r: _Bits, nn: int, nbit: int, special: int) -> CanonicalCode | _Single:
    n = r.bits(nbit)
    if n == 0:
        return _huffman([0] * nn, single=r.bits(nbit))
    if n > nn:
        raise UnpackError("corrupt arj: table size")
    lengths: list[int] = []
    while len(lengths) < n:
        c = r.bits(3)
        if c == 7:
            while r.bit():
                c += 1
                if c > 16:
                    raise UnpackError("corrupt arj: code length")
        lengths.append(c)
        if len(lengths) == special:
            lengths += [0] * r.bits(2)
    return _huffman((lengths + [0] * nn)[:nn])


def _c_lengths(r: _Bits, pt: CanonicalCode | _Single) -> CanonicalCode | _Single:
    n = r.bits(9)
    if n == 0:
        return _huffman([0] * _NC, single=r.bits(9))
    lengths: list[int] = []
    while len(lengths) < n:
        c = pt.decode(r)
        if c <= 2:
            lengths += [0] * (1 if c == 0 else r.bits(4) + 3 if c == 1 else r.bits(9) + 20)
        else:
            lengths.append(c - 2)
    return _huffman((lengths + [0] * _NC)[:_NC])


def _decode_huffman(data: bytes, size: int) -> bytes:
    r = _Bits(data)
    out = bytearray()
    block = 0
    c_code = p_code = None
    while len(out) < size:
        if block == 0:
            block = r.bits(16)
            pt = _pt_lengths(r, _NT, 5, 3)
            c_code = _c_lengths(r, pt)
            p_code = _pt_lengths(r, _NP, 5, -1)
        block -= 1
        c = c_code.decode(r)   # type: ignore[union-attr]
        if c < 256:
            out.append(c)
        else:
            length = c - (256 - _THRESHOLD)
            j = p_code.decode(r)   # type: ignore[union-attr]
            dist = j if j == 0 else (1 << (j - 1)) + r.bits(j - 1)
            _copy(out, dist, length)
        if r.over:
            raise UnpackError("truncated arj member")
    return bytes(out[:size])


def _copy(out: bytearray, dist: int, length: int) -> None:
    start = len(out) - dist - 1
    if start < 0:
        raise UnpackError("corrupt arj: pointer before start")
    for i in range(length):
        out.append(out[start + i])


def _unary(r: _Bits, start: int, stop: int) -> int:
    plus, pwr, width = 0, 1 << start, start
    while width < stop:
        if not r.bit():
            break
        plus += pwr
        pwr <<= 1
        width += 1
    return (r.bits(width) if width else 0) + plus


def _decode_fast(data: bytes, size: int) -> bytes:
    """Method 4."""
    r = _Bits(data)
    out = bytearray()
    while len(out) < size:
        c = _unary(r, 0, 7)
        if c == 0:
            out.append(r.bits(8))
        else:
            _copy(out, _unary(r, 9, 13), c - 1 + _THRESHOLD)
        if r.over:
            raise UnpackError("truncated arj member")
    return bytes(out[:size])


def unpack_arj(data: bytes, name: str, cap: int) -> Iterator[Member]:
    pos, first = 0, True
    while True:
        if data[pos:pos + 2] != b"\x60\xea":
            if first:
                raise UnpackError("corrupt arj: no header")
            raise UnpackError("truncated arj: header missing")
        size = int.from_bytes(data[pos + 2:pos + 4], "little")
        if size == 0:
            return
        hdr = data[pos + 4:pos + 4 + size]
        if len(hdr) < 30 or size > 2600:
            raise UnpackError("corrupt arj: bad header")
        pos += 4 + size + 4
        while (ext := int.from_bytes(data[pos:pos + 2], "little")) != 0:   # extended headers
            pos += 2 + ext + 4
            if pos > len(data):
                raise UnpackError("truncated arj: extended header")
        pos += 2
        if first:              # the archive's own header: no data follows
            first = False
            continue
        fhs, flags, method, ftype = hdr[0], hdr[4], hdr[5], hdr[6]
        csize, osize = int.from_bytes(hdr[12:16], "little"), int.from_bytes(hdr[16:20], "little")
        fname = hdr[fhs:hdr.find(b"\x00", fhs)].decode("latin-1") if fhs < len(hdr) else "member"
        body = data[pos:pos + csize]
        pos += csize
        if ftype == 3:         # directory
            continue
        if flags & 0x01:
            yield Member(fname, None, "encrypted", osize)
        elif osize > cap or (method != 0 and osize > MAX_DECODE):
            yield Member(fname, None, "too large", osize)
        elif len(body) < csize:
            yield Member(fname, None, "truncated", osize)
        elif method == 0:
            yield Member(fname, body[:osize])
        elif method in (1, 2, 3, 4):
            try:
                out = _decode_huffman(body, osize) if method < 4 else _decode_fast(body, osize)
            except UnpackError as e:
                yield Member(fname, None, f"corrupt member: {e}", osize)
                continue
            yield Member(fname, out)
        else:
            yield Member(fname, None, f"unsupported compression: arj method {method}", osize)
