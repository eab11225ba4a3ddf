"""Deflate64: zlib's deflate streams are Deflate64 streams when they never use
length 258 (code 285, whose meaning changed), so zlib writes the test data;
the changed codes are written by hand."""
from __future__ import annotations

import random
import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.files.inflate64 import inflate64
from inspection.files.model import VerdictKind
from inspection.files.unpack_base import UnpackError
from inspection.files.hashlist import parse_hash_list
from inspection.files.scanner import ContentScanner

PAYLOAD = b"MZ" + random.Random(5).randbytes(700)     # no repeat of 258 bytes: valid Deflate64 as zlib writes it


def raw_deflate(data: bytes, level: int = 6) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def no_long_matches(n: int, seed: int) -> bytes:
    """Text-like data whose repeats are shorter than 258 bytes."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefgh") for _ in range(rng.randint(1, 6))) for _ in range(50)]
    return b" ".join(rng.choice(words) for _ in range(n))


def test_matches_zlib_on_fixed_dynamic_and_stored_blocks():
    for level in (0, 1, 6, 9):
        data = no_long_matches(3000, level) + PAYLOAD
        assert inflate64(raw_deflate(data, level), len(data)) == data


def test_deflate64_only_codes():
    # fixed-Huffman block: literal 'A', then code 285 (length 3 + 16 extra bits), distance 1; end of block
    bits: list[int] = []

    def put(value: int, n: int, msb_first: bool = False) -> None:
        bits.extend(((value >> (n - 1 - i)) & 1) if msb_first else ((value >> i) & 1) for i in range(n))
    put(1, 1)
    put(1, 2)                                 # final, fixed
    put(0x30 + ord("A"), 8, True)             # literal 'A'
    put(0b11000101, 8, True)                  # 285 (280-287: 8-bit codes from 0b11000000)
    put(297, 16)                              # length 3 + 297 = 300
    put(0, 5, True)                           # distance code 0: 1
    put(0, 7, True)                           # end of block
    bits += [0] * (-len(bits) % 8)
    stream = bytes(sum(bits[i + j] << j for j in range(8)) for i in range(0, len(bits), 8))
    assert inflate64(stream, 301) == b"A" * 301


def zip_d64(name: bytes, packed: bytes, plain: bytes) -> bytes:
    crc = zlib.crc32(plain)
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 21, 0, 9, 0, 0, crc, len(packed), len(plain), len(name), 0)
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 21, 21, 0, 9, 0, 0, crc, len(packed), len(plain),
                          len(name), 0, 0, 0, 0, 0, 0) + name
    body = local + name + packed
    return body + central + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(body), 0)


def test_deflate64_zip_member_is_scanned():
    import hashlib
    scanner = ContentScanner(parse_hash_list(hashlib.sha256(PAYLOAD).hexdigest() + " D64-Test\n", "l"))
    res = scanner.scan(zip_d64(b"tool.exe", raw_deflate(PAYLOAD), PAYLOAD), "d64.zip")
    assert res.verdict is VerdictKind.MALICIOUS and res.members[0].reasons == ("hash:l:D64-Test",)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=3000))
def test_garbage_never_raises(blob, size):
    try:
        assert len(inflate64(blob, size)) == size
    except UnpackError:
        pass
