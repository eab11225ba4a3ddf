"""7z archives written by a small writer in the test (lzma module for the
coders): single and solid folders, LZMA/LZMA2/copy/deflate, BCJ x86, packed
headers, AES named as encrypted, damage never raises."""
from __future__ import annotations

import lzma
import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.files.model import VerdictKind
from inspection.files.unpack import UnpackError, identify
from inspection.files.unpack_7z import unpack_7z
from tests.unit.files.test_scanner import EVIL, scanner


def num(v: int) -> bytes:
    for i in range(9):
        if i == 8 or v >> (8 * i) < (1 << (7 - i)):
            first = ((0xFF << (8 - i)) & 0xFF) | (v >> (8 * i) if i < 8 else 0)
            return bytes([first]) + v.to_bytes(8, "little")[:i]
    raise AssertionError


LZMA1 = (b"\x03\x01\x01", bytes([93]) + (1 << 16).to_bytes(4, "little"))


def compress(method: str, data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Packed bytes and the folder's coders, outermost first."""
    if method == "lzma":
        c = lzma.LZMACompressor(lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA1, "dict_size": 1 << 16}])
        return c.compress(data) + c.flush(), [LZMA1]
    if method == "lzma2":
        c = lzma.LZMACompressor(lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 16}])
        return c.compress(data) + c.flush(), [(b"\x21", b"\x10")]
    if method == "bcj":
        c = lzma.LZMACompressor(lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_X86},
                                                          {"id": lzma.FILTER_LZMA1, "dict_size": 1 << 16}])
        return c.compress(data) + c.flush(), [(b"\x03\x03\x01\x03", b""), LZMA1]
    if method == "deflate":
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush(), [(b"\x04\x01\x08", b"")]
    if method == "aes":
        return data, [(b"\x06\xf1\x07\x01", b"\x00"), LZMA1]
    return data, [(b"\x00", b"")]


def folder_info(coders: list[tuple[bytes, bytes]], size: int) -> bytes:
    out = num(len(coders))
    for mid, props in coders:
        out += bytes([len(mid) | (0x20 if props else 0)]) + mid + (num(len(props)) + props if props else b"")
    for i in range(len(coders) - 1):          # coder i's input is coder i+1's output
        out += num(i) + num(i + 1)
    return out, [size] * len(coders)


def streams_info(packed: list[bytes], folders: list[tuple[list, int]], subs: list[list[int]] | None) -> bytes:
    out = b"\x06" + num(0) + num(len(packed)) + b"\x09" + b"".join(num(len(p)) for p in packed) + b"\x00"
    out += b"\x07\x0b" + num(len(folders)) + b"\x00"
    sizes = b""
    for coders, size in folders:
        f, s = folder_info(coders, size)
        out += f
        sizes += b"".join(num(x) for x in s)
    out += b"\x0c" + sizes + b"\x00"
    if subs is not None:
        out += b"\x08\x0d" + b"".join(num(len(s)) for s in subs) + b"\x09"
        out += b"".join(num(x) for s in subs for x in s[:-1]) + b"\x00"
    return out + b"\x00"


def seven_zip(files: dict[str, bytes], method: str = "lzma", solid: bool = False, packed_header: bool = False) -> bytes:
    packs, folders, subs = [], [], []
    groups = [list(files.items())] if solid else [[kv] for kv in files.items()]
    for group in groups:
        blob = b"".join(d for _, d in group)
        p, coders = compress(method, blob)
        packs.append(p)
        folders.append((coders, len(blob)))
        subs.append([len(d) for _, d in group])
    names = b"".join(n.encode("utf-16-le") + b"\0\0" for n in files)
    header = b"\x01\x04" + streams_info(packs, folders, subs)
    header += b"\x05" + num(len(files)) + b"\x11" + num(len(names) + 1) + b"\x00" + names + b"\x00\x00"
    body = b"".join(packs)
    if packed_header:
        hp, hc = compress("lzma", header)
        header = b"\x17" + streams_info([hp], [(hc, len(header))], None).replace(
            b"\x06" + num(0), b"\x06" + num(len(body)), 1)
        body += hp
    start = struct.pack("<QQI", len(body), len(header), 0)
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", 0) + start + body + header


def test_every_method_and_layout_finds_the_file():
    for method in ("lzma", "lzma2", "bcj", "deflate", "copy"):
        for solid in (False, True):
            for packed_header in (False, True):
                data = seven_zip({"docs/readme.txt": b"hello " * 100, "bin/tool.exe": EVIL}, method, solid,
                                 packed_header)
                assert identify(data) == "7z"
                members = list(unpack_7z(data, "x.7z", 1 << 20))
                assert [(m.name, m.data) for m in members] == \
                    [("docs/readme.txt", b"hello " * 100), ("bin/tool.exe", EVIL)], (method, solid, packed_header)
                assert scanner().scan(data, "x.7z").verdict is VerdictKind.MALICIOUS


def test_encrypted_and_capped():
    res = scanner().scan(seven_zip({"a.exe": EVIL}, "aes"), "enc.7z")
    assert res.verdict is VerdictKind.UNSCANNED and res.all_reasons() == ("unscanned: encrypted",)
    data = seven_zip({"small": b"x" * 100, "big": b"\0" * 300_000}, "lzma2", solid=True)
    members = list(unpack_7z(data, "x.7z", 200_000))
    assert [(m.name, m.reason) for m in members] == [("small", None), ("big", "too large")]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=255), st.booleans())
def test_damaged_7z_never_raises(where, flip, packed_header):
    data = bytearray(seven_zip({"a.txt": b"hello", "b.exe": EVIL}, "lzma", True, packed_header))
    at = where % len(data)
    data[at] ^= flip
    for blob in (bytes(data), bytes(data[:at])):
        try:
            for m in unpack_7z(blob, "x", 1 << 16):
                assert m.data is None or len(m.data) <= 1 << 16
        except UnpackError:
            pass
