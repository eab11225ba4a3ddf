"""PE overlays (self-extracting archives), packers named, OneNote attachments."""
from __future__ import annotations

import struct

from inspection.files.model import VerdictKind
from inspection.files.unpack_pe import pe_layout
from tests.unit.files.test_scanner import EVIL, find, scanner, zip_of


def pe(sections: list[bytes], overlay: bytes = b"") -> bytes:
    head = bytearray(0x40)
    head[0:2] = b"MZ"
    head[0x3C:0x40] = struct.pack("<I", 0x40)
    fh = b"PE\0\0" + struct.pack("<HHIIIHH", 0x14C, len(sections), 0, 0, 0, 0xE0, 0x102)
    opt = struct.pack("<H", 0x10B) + b"\0" * (0xE0 - 2)
    table = b""
    raw = 0x400
    for i, name in enumerate(sections):
        table += name.ljust(8, b"\0") + struct.pack("<IIII", 0x1000, 0x1000 * (i + 1), 0x200, raw + 0x200 * i) \
            + b"\0" * 16
    body = bytes(head) + fh + opt + table
    body = body.ljust(raw, b"\0") + b"\xcc" * (0x200 * len(sections))
    return body + overlay


def test_layout_and_plain_pe_is_clean():
    data = pe([b".text", b".data"])
    assert pe_layout(data) == (0x800, [b".text", b".data"])
    assert scanner().scan(data, "a.exe").verdict is VerdictKind.CLEAN


def test_self_extracting_zip_overlay_is_scanned():
    data = pe([b".text"], b"\0" * 10 + zip_of({"payload/tool.exe": EVIL}))
    res = scanner().scan(data, "setup.exe")
    assert res.type == "pe" and res.verdict is VerdictKind.MALICIOUS
    assert find(res, "setup.exe/overlay/payload/tool.exe").reasons == ("hash:test.sha256:Test-Evil",)


def test_packed_and_installer_executables_are_never_clean():
    res = scanner().scan(pe([b"UPX0", b"UPX1"]), "packed.exe")
    assert res.verdict is VerdictKind.UNSCANNED and res.all_reasons() == ("unscanned: unsupported packer: upx",)
    nsis = pe([b".text"], b"\0\0\0\0\xef\xbe\xad\xdeNullsoftInst" + b"\0" * 64)
    assert scanner().scan(nsis, "setup.exe").all_reasons() == ("unscanned: unsupported packer: nsis",)


def test_onenote_attachment():
    guid = bytes.fromhex("e716e3bd65261145a4c48d4d0b7a9eac")
    one = bytes.fromhex("e4525c7b8cd8a74daeb15378d02996d3") + b"\0" * 100 + guid + struct.pack("<Q", len(EVIL)) \
        + b"\0" * 12 + EVIL + b"\0" * 40
    res = scanner().scan(one, "notes.one")
    assert res.type == "onenote" and res.verdict is VerdictKind.MALICIOUS
    assert find(res, "attachment1").reasons == ("hash:test.sha256:Test-Evil",)
