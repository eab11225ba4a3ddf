"""Zip method 6 (implode): a small encoder in the test writes literals and one long match."""
from __future__ import annotations

import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.files.explode import explode
from inspection.files.model import VerdictKind
from inspection.files.unpack_base import UnpackError
from tests.unit.files.test_scanner import EVIL, scanner

UNIFORM_TREE = bytes([3]) + b"\xf5" * 4      # 64 codes of 6 bits: 4 runs of 16


class _Writer:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def raw(self, value: int, n: int) -> None:          # least significant bit first
        self.bits += [(value >> i) & 1 for i in range(n)]

    def code(self, symbol: int) -> None:               # 6-bit canonical code, inverted, most significant first
        self.bits += [((symbol >> i) & 1) ^ 1 for i in range(5, -1, -1)]

    def bytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(sum(bits[i + j] << j for j in range(8)) for i in range(0, len(bits), 8))


def implode(prefix: bytes, repeat_len: int, suffix: bytes) -> tuple[bytes, bytes]:
    """Literals of `prefix`, a match copying it again for `repeat_len` bytes, literals of `suffix`."""
    w = _Writer()
    for b in prefix:
        w.raw(1, 1)
        w.raw(b, 8)
    dist = len(prefix) - 1
    w.raw(0, 1)
    w.raw(dist & 0x3F, 6)
    w.code(dist >> 6)
    n = repeat_len - 2
    if n >= 63:
        w.code(63)
        w.raw(n - 63, 8)
    else:
        w.code(n)
    for b in suffix:
        w.raw(1, 1)
        w.raw(b, 8)
    plain = prefix + (prefix * (repeat_len // len(prefix) + 1))[:repeat_len] + suffix
    return UNIFORM_TREE * 2 + w.bytes(), plain


def zip_imploded(name: bytes, packed: bytes, plain: bytes) -> bytes:
    crc = zlib.crc32(plain)
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 10, 0, 6, 0, 0, crc, len(packed), len(plain), len(name), 0)
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 10, 10, 0, 6, 0, 0, crc, len(packed), len(plain),
                          len(name), 0, 0, 0, 0, 0, 0) + name
    body = local + name + packed
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(body), 0)
    return body + central + eocd


def test_explode_literals_and_long_match():
    packed, plain = implode(b"ABCDEFGH", 150, EVIL)
    assert explode(packed, len(plain), 0) == plain


def test_imploded_zip_member_is_scanned():
    w = _Writer()
    for b in EVIL:
        w.raw(1, 1)
        w.raw(b, 8)
    packed = UNIFORM_TREE * 2 + w.bytes()
    res = scanner().scan(zip_imploded(b"TOOL.EXE", packed, EVIL), "old.zip")
    assert res.verdict is VerdictKind.MALICIOUS and res.members[0].reasons == ("hash:test.sha256:Test-Evil",)
    bad = zip_imploded(b"TOOL.EXE", packed[:-20], EVIL)
    assert scanner().scan(bad, "cut.zip").members[0].verdict is VerdictKind.UNSCANNED


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=4000), st.sampled_from([0, 2, 4, 6]))
def test_garbage_never_raises(blob, size, flags):
    try:
        assert len(explode(blob, size, flags)) == size
    except UnpackError:
        pass
