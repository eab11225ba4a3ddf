"""Legacy OLE documents with active content become notices; archives are rebuilt member by member; limits hold."""
from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import zipfile

from inspection.files.sanitize import ActionKind, InputKind, LimitKind, SanitizeLimits, sanitize
from inspection.files.sanitize.ole import _biff, _dde_fields, _ppt
from tests.unit.files.sanitize import builders, oletools_helpers as ot


def test_ole_with_vba_becomes_a_notice_with_the_original_hash():
    data = builders.VBA_PROJECT        # an OLE file with a VBA storage, like a .doc with macros
    assert ot.vba(data, "x.doc")
    result = sanitize(data, "invoice.doc")
    assert result.kind is InputKind.OLE and result.is_notice and "VBA" in result.notice
    text = result.data.decode("utf-8")
    assert hashlib.sha256(data).hexdigest() in text and "invoice.doc" in text
    assert result.suggested_name == "invoice.doc.removed.txt"
    assert not ot.vba(result.data, "invoice.doc.removed.txt") and ot.dde(result.data, "n.txt") == ""


def _rec(rtype: int, body: bytes) -> bytes:
    return struct.pack("<HH", rtype, len(body)) + body


def test_biff_macro_sheet_encryption_and_dde_links():
    sheet = lambda dt: _rec(0x85, struct.pack("<IBB", 0, 0, dt) + b"\x03\x00abc")
    assert _biff(sheet(0) + sheet(2)) == []
    assert _biff(sheet(0) + sheet(1)) == ["Excel 4 macro sheet"]
    assert _biff(sheet(6)) == ["VBA module sheet"]
    assert _biff(_rec(0x2F, b"\x01\x00") + sheet(1)) == ["encryption"]
    assert _biff(_rec(0x1AE, struct.pack("<HH", 1, 0x0401))) == []            # own workbook
    assert _biff(_rec(0x1AE, struct.pack("<HH", 0, 5) + b"\x00cmd\x03c")) == ["external or DDE link"]
    assert _biff(b"\x85\x00\xff\xff") == []                                    # truncated record: no crash


def test_ppt_vba_info_atom():
    atom = lambda ref, has: struct.pack("<HHI", 0x2, 0x400, 12) + struct.pack("<III", ref, has, 2)
    container = lambda body: struct.pack("<HHI", 0xF, 0x3FF, len(body)) + body
    doc = lambda body: struct.pack("<HHI", 0xF, 0x3E8, len(body)) + body
    assert _ppt(doc(container(atom(3, 1)))) == ["VBA macros"]
    assert _ppt(doc(container(atom(0, 0)))) == []
    assert _ppt(b"\x0f\x00\xe8\x03\xff\xff\xff\xff") == []


def test_word_dde_fields_in_8bit_and_utf16():
    assert _dde_fields(b"xx\x13 DDEAUTO c:\\cmd.exe \x14res\x15")
    assert _dde_fields("\x13 DDE excel x\x15".encode("utf-16-le"))
    assert not _dde_fields(b"\x13 PAGE \x14 1\x15")


def _zip(members: dict[str, bytes]) -> bytes:
    return builders.zip_of(members)


def test_zip_members_are_sanitised_and_renamed():
    archive = _zip({"a/report.docm": builders.docm(), "b/readme.txt": b"hello", "c/x.doc": builders.VBA_PROJECT})
    result = sanitize(archive, "mail.zip")
    assert result.kind is InputKind.ZIP and result.changed
    z = zipfile.ZipFile(io.BytesIO(result.data))
    assert z.testzip() is None
    assert sorted(z.namelist()) == ["a/report.docx", "b/readme.txt", "c/x.doc.removed.txt"]
    assert z.read("b/readme.txt") == b"hello"
    assert not ot.vba(z.read("a/report.docx"), "r.docx")
    assert any(a.target.startswith("a/report.docm!word/vbaProject.bin") for a in result.actions)
    assert any(a.kind is ActionKind.REPLACED_WITH_NOTICE and a.target.startswith("c/x.doc") for a in result.actions)


def test_clean_zip_is_passed_byte_for_byte():
    archive = _zip({"a.txt": b"a", "b.pdf": builders.pdf([b"<< /Type /Catalog >>"])})
    result = sanitize(archive, "ok.zip")
    assert not result.changed and result.data == archive


def test_encrypted_zip_member_becomes_a_notice_member():
    archive = bytearray(_zip({"secret.doc": b"x" * 10, "plain.txt": b"p"}))
    cd = archive.find(b"PK\x01\x02")                      # mark the first member encrypted in the central directory
    archive[cd + 8] |= 1
    result = sanitize(bytes(archive), "e.zip")
    names = zipfile.ZipFile(io.BytesIO(result.data)).namelist()
    assert "secret.doc.removed.txt" in names and "plain.txt" in names
    assert any("encrypted" in a.detail for a in result.actions)


def test_gzip_and_tar_are_rebuilt():
    rtf = builders.rtf_with_object_and_dde()
    g = sanitize(gzip.compress(rtf), "doc.rtf.gz")
    assert g.kind is InputKind.GZIP and g.changed
    assert ot.rtf_objects(gzip.decompress(g.data)) == 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as t:
        for name, body in (("x/book.xlsm", builders.xlsm()), ("x/n.txt", b"n")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
    r = sanitize(buf.getvalue(), "x.tar")
    assert r.kind is InputKind.TAR and r.changed
    with tarfile.open(fileobj=io.BytesIO(r.data)) as t:
        assert sorted(t.getnames()) == ["x/book.xlsx", "x/n.txt"]
        assert not ot.vba(t.extractfile("x/book.xlsx").read(), "b.xlsx")


def test_limits_are_enforced_and_named():
    nested = b"hello"
    for i in range(4):
        nested = _zip({f"level{i}.zip" if i else "a.txt": nested})
    deep = sanitize(nested, "n.zip", SanitizeLimits(max_depth=2))
    assert deep.limit_hit is LimitKind.DEPTH and deep.is_notice
    many = sanitize(_zip({f"{i}.txt": b"x" for i in range(5)}), "m.zip", SanitizeLimits(max_members=4))
    assert many.limit_hit is LimitKind.MEMBERS
    bomb = sanitize(_zip({"zeros.bin": bytes(1 << 20)}), "b.zip", SanitizeLimits(max_expanded_bytes=1000))
    assert bomb.limit_hit is LimitKind.EXPANDED_BYTES and len(bomb.data) < 2000
    big = sanitize(builders.pdf_with_javascript(), "p.pdf", SanitizeLimits(max_input_bytes=100))
    assert big.limit_hit is LimitKind.INPUT_BYTES and big.is_notice
    other = sanitize(b"\x89PNG" + bytes(500), "i.png", SanitizeLimits(max_input_bytes=100))
    assert not other.changed and other.kind is InputKind.OTHER     # types we do not disarm pass at any size
    assert deep.summary()["limit_hit"] == "max_depth" and deep.summary()["limits"]["max_depth"] == 2
