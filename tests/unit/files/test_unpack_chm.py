"""CHM: a help file built in the test (directory, a plain file, an LZX section
of uncompressed blocks); verbatim/aligned LZX blocks are checked on ClamAV's
clam.chm by the corpus test. Damage never raises."""
from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.files.model import VerdictKind
from inspection.files.unpack import identify
from inspection.files.unpack_base import UnpackError
from inspection.files.unpack_chm import lzx_decode, unpack_chm
from tests.unit.files.test_scanner import EVIL, find, scanner

RESET_TABLE = ("::DataSpace/Storage/MSCompressed/Transform/{7FC28940-9D31-11D0-9B27-00A0C91E9C7C}/"
               "InstanceData/ResetTable")


class _LzxWriter:
    """16-bit little-endian words, most significant bit first."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def put(self, value: int, n: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def words(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 16)
        out = b""
        for i in range(0, len(bits), 16):
            w = sum(b << (15 - j) for j, b in enumerate(bits[i:i + 16]))
            out += struct.pack("<H", w)
        return out


def lzx_uncompressed(payload: bytes) -> bytes:
    w = _LzxWriter()
    w.put(0, 1)                   # no E8 translation
    w.put(3, 3)                   # uncompressed block
    w.put(len(payload) >> 8, 16)
    w.put(len(payload) & 0xFF, 8)
    head = w.words()              # aligned to 16 bits
    return head + struct.pack("<III", 1, 1, 1) + payload + b"\0" * (len(payload) & 1)


def encint(v: int) -> bytes:
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    return bytes(reversed(out))


def chm(plain: dict[str, bytes], compressed: dict[str, bytes]) -> bytes:
    section1 = b"".join(compressed.values())
    stream = lzx_uncompressed(section1)
    control = struct.pack("<I4sIIIII", 6, b"LZXC", 2, 1, 1, 1, 0)
    reset = struct.pack("<IIIIQQQ", 2, 1, 8, 0x28, len(section1), len(stream), 0x8000) + struct.pack("<Q", 0)
    blobs = {**plain, "::DataSpace/Storage/MSCompressed/Content": stream,
             "::DataSpace/Storage/MSCompressed/ControlData": control, RESET_TABLE: reset}
    entries, content, off = b"", b"", 0
    for name, body in blobs.items():
        entries += encint(len(name)) + name.encode() + encint(0) + encint(off) + encint(len(body))
        content += body
        off += len(body)
    off = 0
    for name, body in compressed.items():
        entries += encint(len(name)) + name.encode() + encint(1) + encint(off) + encint(len(body))
        off += len(body)
    chunk_size = 4096
    chunk = b"PMGL" + struct.pack("<IIii", chunk_size - 0x14 - len(entries), 0, -1, -1) + entries
    chunk = chunk.ljust(chunk_size, b"\0")
    itsp = b"ITSP" + struct.pack("<IIIIIiiiiII", 1, 0x54, 10, chunk_size, 2, 1, -1, 0, 0, 0xFFFFFFFF, 1)
    itsp = itsp.ljust(0x54, b"\0")
    dir_off = 0x60
    content_off = dir_off + len(itsp) + len(chunk)
    header = b"ITSF" + struct.pack("<IIII", 3, 0x60, 1, 0) + b"\0" * 4 + b"\0" * 32
    header += struct.pack("<QQQQQ", 0, 0, dir_off, len(itsp) + len(chunk), content_off)
    return header.ljust(0x60, b"\0") + itsp + chunk + content


def test_plain_and_lzx_files():
    data = chm({"/readme.htm": b"<html>hi</html>"}, {"/tool.exe": EVIL, "/page.htm": b"<p>x</p>"})
    assert identify(data) == "chm"
    got = {m.name: m.data for m in unpack_chm(data, "h.chm", 1 << 20)}
    assert got == {"readme.htm": b"<html>hi</html>", "tool.exe": EVIL, "page.htm": b"<p>x</p>"}
    res = scanner().scan(data, "h.chm")
    assert res.verdict is VerdictKind.MALICIOUS and find(res, "h.chm/tool.exe").reasons == ("hash:test.sha256:Test-Evil",)


def test_lzx_uncompressed_block_round_trip():
    assert lzx_decode(lzx_uncompressed(b"abc" * 10), 30, 16) == b"abc" * 10


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=5000), st.sampled_from([15, 16, 17, 21]))
def test_lzx_garbage_never_raises(blob, size, bits):
    try:
        assert len(lzx_decode(blob, size, bits)) == size
    except UnpackError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=255))
def test_damaged_chm_never_raises(where, flip):
    data = bytearray(chm({"/a.htm": b"x"}, {"/b.exe": EVIL}))
    at = where % len(data)
    data[at] ^= flip
    for blob in (bytes(data), bytes(data[:at])):
        try:
            for m in unpack_chm(blob, "x.chm", 1 << 16):
                assert m.data is None or len(m.data) <= 1 << 16
        except UnpackError:
            pass
