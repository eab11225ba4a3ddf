"""cab, szdd, binhex, tnef and iso built byte by byte: the scanner finds the listed file inside."""
from __future__ import annotations

import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.files.model import VerdictKind
from inspection.files.unpack import UnpackError, identify
from inspection.files.unpack_legacy import unpack_binhex, unpack_cab, unpack_iso, unpack_szdd, unpack_tnef
from tests.unit.files.test_scanner import EVIL, scanner


def cab(files: dict[str, bytes], mszip: bool) -> bytes:
    stream = b"".join(files.values())
    if mszip:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = b"CK" + c.compress(stream) + c.flush()
    else:
        block = stream
    file_table = b""
    off = 0
    for name, d in files.items():
        file_table += struct.pack("<IIHHHH", len(d), off, 0, 0, 0, 0x20) + name.encode() + b"\0"
        off += len(d)
    coff_files = 36 + 8
    data_at = coff_files + len(file_table)
    header = b"MSCF" + struct.pack("<IIIIIBBHHHHH", 0, 0, 0, coff_files, 0, 3, 1, 1, len(files), 0, 0, 0)
    folder = struct.pack("<IHH", data_at, 1, 1 if mszip else 0)
    cfdata = struct.pack("<IHH", 0, len(block), len(stream)) + block
    return header + folder + file_table + cfdata


def test_cab_stored_and_mszip():
    for mszip in (False, True):
        data = cab({"readme.txt": b"hello", "bin\\tool.exe": EVIL}, mszip)
        assert identify(data) == "cab"
        res = scanner().scan(data, "x.cab")
        assert res.verdict is VerdictKind.MALICIOUS, mszip
        assert [m.path for m in res.members] == ["x.cab/readme.txt", "x.cab/bin/tool.exe"]


def test_cab_lzx_is_named_not_guessed():
    data = bytearray(cab({"a": EVIL}, False))
    data[44 - 8 + 6] = 3          # the folder's compression type: LZX
    res = scanner().scan(bytes(data), "lzx.cab")
    assert res.verdict is VerdictKind.UNSCANNED and res.all_reasons() == ("unscanned: unsupported compression: lzx",)


def szdd(payload: bytes) -> bytes:
    out = b"SZDD\x88\xf0\x27\x33A" + b"e" + struct.pack("<I", len(payload))
    # eight literals, a copy of 5 bytes from the window start (4096-16, where the literals went), literals
    tokens = [(True, bytes([b])) for b in payload[:8]] + [(False, bytes([0xF0, 0xF0 | 2]))]
    tokens += [(True, bytes([b])) for b in payload[13:]]
    body = b""
    for i in range(0, len(tokens), 8):
        group = tokens[i:i + 8]
        body += bytes([sum(1 << j for j, (lit, _) in enumerate(group) if lit)]) + b"".join(t for _, t in group)
    return out + body


def test_szdd():
    payload = EVIL[:8] + EVIL[:5] + EVIL[13:]
    data = szdd(payload)
    (m,) = list(unpack_szdd(data, "TOOL.EX_", 1 << 20))
    assert m.name == "TOOL.EXe" and m.data == payload
    assert list(unpack_szdd(data[:-3], "t", 1 << 20))[0].reason == "truncated"


_HQX = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"


def binhex(fname: bytes, fork: bytes) -> bytes:
    raw = bytes([len(fname)]) + fname + b"\0" + b"APPLMACS" + b"\0\0" + struct.pack(">II", len(fork), 0) + b"\0\0"
    raw += fork + b"\0\0" + b"\0\0"
    rle = raw.replace(b"\x90", b"\x90\x00")
    bits = "".join(f"{b:08b}" for b in rle)
    bits += "0" * (-len(bits) % 6)
    text = bytes(_HQX[int(bits[i:i + 6], 2)] for i in range(0, len(bits), 6))
    lines = b"\n".join(text[i:i + 64] for i in range(0, len(text), 64))
    return b"(This file must be converted with BinHex 4.0)\n:" + lines + b":\n"


def test_binhex():
    data = binhex(b"tool.exe", EVIL + b"\x90\x90")
    assert identify(data) == "binhex"
    (m,) = list(unpack_binhex(data, "x.hqx", 1 << 20))
    assert m.name == "tool.exe" and m.data == EVIL + b"\x90\x90"
    assert scanner().scan(binhex(b"t", EVIL), "x.hqx").verdict is VerdictKind.MALICIOUS


def tnef(attachments: list[tuple[bytes, bytes]]) -> bytes:
    def attr(level: int, aid: int, body: bytes) -> bytes:
        return bytes([level]) + struct.pack("<II", aid, len(body)) + body + struct.pack("<H", sum(body) & 0xFFFF)
    out = b"\x78\x9f\x3e\x22\x01\x00" + attr(1, 0x00089006, b"\x01\x00\x01\x00")
    for title, body in attachments:
        out += attr(2, 0x00069002, b"\x01\x00\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00")
        out += attr(2, 0x00018010, title + b"\0")
        out += attr(2, 0x0006800F, body)
    return out


def test_tnef():
    data = tnef([(b"notes.txt", b"hi"), (b"tool.exe", EVIL)])
    assert identify(data) == "tnef"
    assert [(m.name, m.data) for m in unpack_tnef(data, "winmail.dat", 1 << 20)] == \
        [("notes.txt", b"hi"), ("tool.exe", EVIL)]
    assert scanner().scan(data, "winmail.dat").verdict is VerdictKind.MALICIOUS


def iso(files: dict[bytes, bytes]) -> bytes:
    bs = 2048

    def record(name: bytes, lba: int, size: int, flags: int) -> bytes:
        body = b"\0" + struct.pack("<I", lba) + struct.pack(">I", lba) + struct.pack("<I", size) \
            + struct.pack(">I", size) + b"\0" * 7 + bytes([flags, 0, 0]) + b"\1\0\0\1" + bytes([len(name)]) + name
        body += b"\0" * (len(body) % 2)
        return bytes([len(body) + 1]) + body
    data_lba = 19
    entries = record(b"\x00", 18, bs, 2) + record(b"\x01", 18, bs, 2)
    blobs = b""
    for name, d in files.items():
        entries += record(name + b";1", data_lba + len(blobs) // bs, len(d), 0)
        blobs += d + b"\0" * (-len(d) % bs)
    pvd = bytearray(bs)
    pvd[0:6] = b"\x01CD001"
    pvd[128:130] = struct.pack("<H", bs)
    pvd[156:156 + 34] = record(b"\x00", 18, bs, 2)[:34]
    term = b"\xffCD001" + b"\0" * (bs - 6)
    return b"\0" * (16 * bs) + bytes(pvd) + term + entries.ljust(bs, b"\0") + blobs


def test_iso9660():
    data = iso({b"README.TXT": b"hello", b"TOOL.EXE": EVIL})
    assert identify(data) == "iso"
    assert [(m.name, m.data) for m in unpack_iso(data, "x.iso", 1 << 20)] == \
        [("README.TXT", b"hello"), ("TOOL.EXE", EVIL)]
    assert scanner().scan(data, "x.iso").verdict is VerdictKind.MALICIOUS


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([(unpack_cab, lambda: cab({"a": EVIL}, True)), (unpack_szdd, lambda: szdd(EVIL)),
                        (unpack_binhex, lambda: binhex(b"a", EVIL)), (unpack_tnef, lambda: tnef([(b"a", EVIL)])),
                        (unpack_iso, lambda: iso({b"A": EVIL}))]),
       st.integers(min_value=0, max_value=60_000), st.integers(min_value=1, max_value=255))
def test_damaged_legacy_containers_never_raise(case, where, flip):
    unpack, build = case
    data = bytearray(build())
    at = where % len(data)
    data[at] ^= flip
    for blob in (bytes(data), bytes(data[:at])):
        try:
            for m in unpack(blob, "x", 1 << 16):
                assert m.data is None or len(m.data) <= 1 << 16
        except UnpackError:
            pass
