"""The content scanner on containers the tests build: nesting, limits, reasons."""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import tarfile
import zipfile

from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.files.hashlist import parse_hash_list
from inspection.files.model import VerdictKind
from inspection.files.scanner import ContentScanner, FileMeta, MatchTimeout
from inspection.files.scanner_model import ScanLimits, ScanResult
from inspection.files.unpack import UNPACKERS, UnpackError, identify

EVIL = b"MZ" + b"\x90evil payload\x00" * 40
EVIL_SHA = hashlib.sha256(EVIL).hexdigest()
HASHES = parse_hash_list(f"# test list\n{EVIL_SHA}  Test-Evil\n", "test.sha256")


def zip_of(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def scanner(**limits) -> ContentScanner:
    return ContentScanner(HASHES, limits=ScanLimits(**limits))


def find(res: ScanResult, suffix: str) -> ScanResult:
    stack = [res]
    while stack:
        r = stack.pop()
        if r.path.endswith(suffix):
            return r
        stack.extend(r.members)
    raise AssertionError(f"no member {suffix} in {res}")


def test_plain_files_clean_and_hash_hit():
    s = scanner()
    clean = s.scan(b"hello world\n", "a.txt")
    assert clean.verdict is VerdictKind.CLEAN and clean.reasons == () and clean.type == "text"
    bad = s.scan(EVIL, "x.exe")
    assert bad.verdict is VerdictKind.MALICIOUS and bad.reasons == ("hash:test.sha256:Test-Evil",)
    assert bad.sha256 == EVIL_SHA and bad.type == "pe"


def test_hash_hit_inside_nested_zip_gzip_tar():
    inner_tar = tar_of({"dir/readme.txt": b"fine", "dir/tool.exe": EVIL})
    tgz = gzip.compress(inner_tar)
    outer = zip_of({"docs/a.txt": b"nothing", "bundle.tgz": tgz})
    res = scanner().scan(outer, "outer.zip")
    assert res.verdict is VerdictKind.MALICIOUS
    hit = find(res, "outer.zip/bundle.tgz/bundle.tar/dir/tool.exe")
    assert hit.reasons == ("hash:test.sha256:Test-Evil",) and hit.verdict is VerdictKind.MALICIOUS
    assert find(res, "dir/readme.txt").verdict is VerdictKind.CLEAN
    assert [m.type for m in res.members] == ["text", "gzip"]
    assert "hash:test.sha256:Test-Evil" in res.all_reasons()


def test_bz2_and_xz_and_stored_zip():
    for data, name in ((bz2.compress(EVIL), "x.bz2"), (lzma.compress(EVIL), "x.xz"),
                       (zip_of({"e": EVIL}, zipfile.ZIP_STORED), "x.zip"),
                       (zip_of({"e": EVIL}, zipfile.ZIP_BZIP2), "y.zip")):
        assert scanner().scan(data, name).verdict is VerdictKind.MALICIOUS, name
    two = scanner().scan(gzip.compress(EVIL[:100]) + gzip.compress(EVIL[100:]), "two.gz")   # gzip members join
    assert two.verdict is VerdictKind.MALICIOUS and two.members[0].path == "two.gz/two"


def test_zip_bomb_member_cut_while_reading():
    bomb = zip_of({"zeros.bin": b"\0" * (8 << 20)})
    assert len(bomb) < 100_000
    s = scanner(max_file_size=1 << 20)
    res = s.scan(bomb, "bomb.zip")
    (m,) = res.members
    assert m.verdict is VerdictKind.UNSCANNED and m.reasons == ("unscanned: too large",)
    assert res.verdict is VerdictKind.UNSCANNED and s.counters.too_large == 1
    assert s.counters.bytes_scanned < 2 << 20   # the 8 MB were never held or scanned


def test_gzip_bomb_capped():
    s = scanner(max_file_size=1 << 20)
    res = s.scan(gzip.compress(b"\0" * (4 << 20)), "z.gz")
    assert res.verdict is VerdictKind.UNSCANNED and "unscanned: too large" in res.all_reasons()


def test_scan_size_limit_stops_unpacking():
    members = {f"f{i}": bytes([i]) * 60_000 for i in range(10)}
    s = scanner(max_scan_size=200_000)
    res = s.scan(zip_of(members), "many.zip")
    assert res.verdict is VerdictKind.UNSCANNED
    assert "unscanned: scan size limit" in res.all_reasons() and s.counters.scan_size_limit >= 1


def test_depth_limit():
    data = EVIL
    for i in range(5):
        data = zip_of({f"level{i}": data})
    res = scanner(max_depth=3).scan(data, "deep.zip")
    assert res.verdict is VerdictKind.UNSCANNED
    assert "unscanned: too deep" in res.all_reasons()
    assert scanner(max_depth=5).scan(data, "deep.zip").verdict is VerdictKind.MALICIOUS


def test_member_limit():
    s = scanner(max_members=5)
    res = s.scan(zip_of({f"m{i}.txt": b"x" for i in range(20)}), "wide.zip")
    assert len(res.members) == 5
    assert res.verdict is VerdictKind.UNSCANNED and "unscanned: too many members" in res.reasons
    assert s.counters.too_many_members == 1


def test_time_budget_with_a_fake_clock():
    ticks = iter(range(0, 10_000, 10))
    s = ContentScanner(HASHES, limits=ScanLimits(max_seconds=25), clock=lambda: next(ticks))
    res = s.scan(zip_of({f"m{i}": b"x" for i in range(10)}), "slow.zip")
    assert "unscanned: time budget" in res.reasons and res.verdict is VerdictKind.UNSCANNED
    assert len(res.members) < 10 and s.counters.time_budget == 1


def test_zip_entry_missing_from_central_directory_is_still_read():
    both = zip_of({"a.txt": b"hello" * 50, "b.exe": EVIL})
    only_a = zip_of({"a.txt": b"hello" * 50})
    local = both[: both.index(b"PK\x01\x02")]          # both entries' local headers and data
    directory = bytearray(only_a[only_a.index(b"PK\x01\x02"):])   # lists a.txt only
    eocd = directory.rindex(b"PK\x05\x06")
    directory[eocd + 16:eocd + 20] = len(local).to_bytes(4, "little")
    data = local + bytes(directory)
    assert [i.filename for i in zipfile.ZipFile(io.BytesIO(data)).infolist()] == ["a.txt"]
    res = scanner().scan(data, "doctored.zip")
    assert res.verdict is VerdictKind.MALICIOUS
    assert any("b.exe (local entry at" in m.path for m in res.members)


def test_encrypted_zip_member_is_unscanned():
    data = bytearray(zip_of({"secret.exe": b"ciphertext"}))   # zipfile cannot encrypt: set the flag bit
    data[6] |= 1
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 1
    res = scanner().scan(bytes(data), "enc.zip")
    (m,) = res.members
    assert m.reasons == ("unscanned: encrypted",) and res.verdict is VerdictKind.UNSCANNED


def test_unsupported_containers_are_never_clean():
    for head, kind in ((b"Rar!\x1a\x07\x01\x00", "rar"), (b"Rar!\x1a\x07\x00", "rar"),
                       (b"\x00\x00-lh5-", "lha"), (b"\0" * 7 + b"**ACE**", "ace")):
        res = scanner().scan(head + b"\0" * 64, "x")
        assert res.verdict is VerdictKind.UNSCANNED
        assert res.reasons == (f"unscanned: unsupported container: {kind}",)


def test_corrupt_container_is_unscanned_with_reason():
    res = scanner().scan(b"PK\x05\x06" + b"\xff" * 100, "broken.zip")
    assert res.verdict is VerdictKind.UNSCANNED and res.reasons[0].startswith("unscanned: corrupt zip")
    res = scanner().scan(b"PK\x03\x04\x14\x00", "cut.zip")
    assert res.verdict is VerdictKind.UNSCANNED
    assert res.all_reasons() == ("unscanned: truncated zip: no central directory", "unscanned: truncated")
    res = scanner().scan(b"\x1f\x8b\x08\x00" + b"\x00" * 20, "broken.gz")
    assert res.verdict is VerdictKind.UNSCANNED and res.reasons[0].startswith("unscanned: corrupt gzip")


def test_mail_attachment_base64_and_mbox():
    import base64
    b64 = base64.encodebytes(EVIL).decode()
    mail = ("From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
            "--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"tool.exe\"\r\n\r\n" + b64 + "--XX--\r\n").encode()
    res = scanner().scan(mail, "m.eml")
    assert res.type == "mail" and res.verdict is VerdictKind.MALICIOUS
    assert find(res, "part2-tool.exe").verdict is VerdictKind.MALICIOUS
    mbox = b"From a@example.com Mon Jan  1 00:00:00 2024\n" + mail.replace(b"\r\n", b"\n")
    res = scanner().scan(mbox, "box")
    assert res.type == "mbox" and res.verdict is VerdictKind.MALICIOUS


def test_mail_header_name_with_comment_still_unpacked():
    import base64
    mail = (b"From: a@example.com\nTo: b@example.com\nMIME-Version: 1.0\n"
            b"Content-Type(x): multipart/mixed; boundary=\"Y\"\n\n--Y\nContent-Type: application/octet-stream\n"
            b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(EVIL) + b"--Y--\n")
    assert scanner().scan(mail, "c.eml").verdict is VerdictKind.MALICIOUS


def test_html_data_uri_and_pdf_streams():
    import base64
    import zlib
    html = b"<html><a href=\"data:application/octet-stream;base64," + base64.b64encode(EVIL) + b"\">x</a></html>"
    assert scanner().scan(html, "p.html").verdict is VerdictKind.MALICIOUS
    flate = zlib.compress(EVIL)
    pdf = (b"%PDF-1.4\n1 0 obj\n<< /Length " + str(len(flate)).encode() + b" /Filter /FlateDecode >>\nstream\n"
           + flate + b"\nendstream\nendobj\n2 0 obj\n<< /Length 4 >>\nstream\nabcd\nendstream\nendobj\n%%EOF\n")
    res = scanner().scan(pdf, "d.pdf")
    assert res.verdict is VerdictKind.MALICIOUS and [m.size for m in res.members] == [len(EVIL), 4]


def test_pdf_javascript_is_suspicious_and_unknown_filter_unscanned():
    pdf = b"%PDF-1.4\n1 0 obj\n<< /S /JavaScript /JS (app.alert(1)) >>\nendobj\n%%EOF\n"
    res = scanner().scan(pdf, "js.pdf")
    assert res.verdict is VerdictKind.SUSPICIOUS and res.reasons == ("suspicious: pdf javascript",)
    pdf = b"%PDF-1.4\n1 0 obj\n<< /Length 3 /Filter /LZWDecode >>\nstream\nabc\nendstream\nendobj\n"
    res = scanner().scan(pdf, "lzw.pdf")
    assert res.verdict is VerdictKind.UNSCANNED
    assert "unscanned: unsupported pdf filter: LZWDecode" in res.all_reasons()


def test_cpio_newc():
    def entry(name: bytes, data: bytes, mode=0o100644) -> bytes:
        fields = [0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields) + name + b"\0"
        hdr += b"\0" * (-len(hdr) % 4)
        return hdr + data + b"\0" * (-len(data) % 4)
    archive = entry(b"bin/tool", EVIL) + entry(b"TRAILER!!!", b"")
    res = scanner().scan(archive, "a.cpio")
    assert res.type == "cpio" and res.verdict is VerdictKind.MALICIOUS


class FakeMatcher:
    """Matches when a marker is in the bytes; records the metadata it saw."""

    def __init__(self, timeout: bool = False) -> None:
        self.seen: list[FileMeta] = []
        self.timeout = timeout

    def match(self, data: bytes, meta: FileMeta, timeout: float) -> list[str]:
        self.seen.append(meta)
        if self.timeout:
            raise MatchTimeout()
        return ["yara:fake.yar:marker"] if b"MARKER" in data else []


def test_matchers_get_member_metadata_and_timeouts_are_unscanned():
    fake = FakeMatcher()
    s = ContentScanner(matchers=[fake])
    res = s.scan(zip_of({"sub/Thing.EXE": b"MZ..MARKER.."}), "outer.zip")
    assert res.verdict is VerdictKind.MALICIOUS and find(res, "Thing.EXE").reasons == ("yara:fake.yar:marker",)
    meta = fake.seen[1]
    assert (meta.filename, meta.filepath, meta.extension, meta.filetype) == \
        ("Thing.EXE", "outer.zip/sub/Thing.EXE", ".exe", "pe")
    res = ContentScanner(matchers=[FakeMatcher(timeout=True)]).scan(b"data", "f")
    assert res.verdict is VerdictKind.UNSCANNED and res.reasons == ("unscanned: time budget",)


def test_oversized_file_still_checked_against_hashes():
    s = scanner(max_file_size=100)
    res = s.scan(EVIL, "big.exe")
    assert res.verdict is VerdictKind.MALICIOUS and res.reasons == ("hash:test.sha256:Test-Evil", "unscanned: too large")
    res = s.scan(b"x" * 200, "big.bin")
    assert res.verdict is VerdictKind.UNSCANNED and res.reasons == ("unscanned: too large",)


def test_to_verdict_and_json():
    res = scanner().scan(zip_of({"a": EVIL}), "z.zip")
    v = res.to_verdict()
    assert v.kind is VerdictKind.MALICIOUS and v.reason == "hash:test.sha256:Test-Evil"
    j = res.to_json()
    assert j["reasons"] == ["hash:test.sha256:Test-Evil"] and j["members"][0]["path"] == "z.zip/a"
    clean = scanner().scan(b"ok", "ok.txt").to_verdict()
    assert clean.kind is VerdictKind.CLEAN and clean.reason == "no detection"


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(UNPACKERS)), st.binary(max_size=600))
def test_unpackers_take_garbage_without_raising(kind, blob):
    try:
        for m in UNPACKERS[kind](blob, "x", 1 << 16):
            assert m.data is None or len(m.data) <= 1 << 16
    except UnpackError:
        pass


MAGICS = [b"PK\x03\x04", b"\x1f\x8b\x08", b"BZh9", b"\xfd7zXZ\x00", b"%PDF-1.4\n", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
          b"From: a\nTo: b\n\n", b"070701", b"<html>", b"", b"7z\xbc\xaf\x27\x1c\x00\x04", b"MSCF\0\0\0\0",
          b"\x78\x9f\x3e\x22", b"SZDD\x88\xf0\x27\x33", b"{\\rtf1 {\\objdata ", b"begin 644 x\n"]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MAGICS), st.binary(max_size=800))
def test_scanner_never_raises_on_garbage(magic, blob):
    res = scanner().scan(magic + blob, "g")
    assert res.verdict in VerdictKind
    assert identify(magic + blob)


def _first_in_table(data: bytes) -> str | None:
    """The magic table walked in order, as identify did before it looked by first byte."""
    from inspection.files.unpack import _MAGIC
    return next((kind for offset, magic, kind in _MAGIC if data.startswith(magic, offset)), None)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_magic_lookup_finds_what_the_table_in_order_finds(data):
    from inspection.files.unpack import _MAGIC, _magic_kind
    # signatures at their offsets, over each other and over random bytes: the first in the table wins
    buf = bytearray(data.draw(st.binary(max_size=0x9100)))
    for offset, magic, _ in data.draw(st.lists(st.sampled_from(_MAGIC), max_size=3)):
        if len(buf) < offset + len(magic):
            buf += bytes(offset + len(magic) - len(buf))
        buf[offset:offset + len(magic)] = magic
    cut = data.draw(st.integers(min_value=0, max_value=len(buf)))
    for b in (bytes(buf), bytes(buf[:cut])):
        assert _magic_kind(b) == _first_in_table(b)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.integers(min_value=0, max_value=255))
def test_truncated_and_flipped_zip_never_raises(cut, flip):
    data = bytearray(zip_of({"a.txt": b"hello" * 50, "b.exe": EVIL}))
    cut %= len(data)
    data[cut] ^= flip
    res = scanner().scan(bytes(data[: max(cut, 4)]) if flip % 2 else bytes(data), "t.zip")
    if res.type == "zip":   # the listed file is found, or something is named as not read
        assert res.verdict is not VerdictKind.CLEAN


# -- Office samples from oletools' test data (BSD-2, see data/oletools/README.md) --------------

OLETOOLS = __import__("pathlib").Path(__file__).parent / "data" / "oletools"


def test_ooxml_with_vba_event_procedures_is_suspicious():
    res = scanner().scan((OLETOOLS / "oleform-PR314.docm").read_bytes(), "oleform-PR314.docm")
    assert res.type == "zip" and res.verdict is VerdictKind.SUSPICIOUS
    assert res.all_reasons() == ("suspicious: macro with auto-exec",)
    vba = find(res, "word/vbaProject.bin")
    assert vba.type == "ole" and any("/VBA/" in m.path for m in vba.members)


def test_encrypted_legacy_office_is_unscanned():
    res = scanner().scan((OLETOOLS / "encrypted.doc").read_bytes(), "encrypted.doc")
    assert res.type == "ole" and res.verdict is VerdictKind.UNSCANNED
    assert "unscanned: encrypted" in res.all_reasons()


def test_ole_package_object_is_unpacked_and_hash_found():
    data = (OLETOOLS / "embedded-simple-2007.doc").read_bytes()
    res = scanner().scan(data, "e.doc")
    assert res.verdict is VerdictKind.CLEAN
    inner = find(res, "Ole10Native/simple-text-file.txt")
    listed = parse_hash_list(f"{inner.sha256} Embedded-Text\n", "t")
    hit = ContentScanner(listed).scan(data, "e.doc")
    assert hit.verdict is VerdictKind.MALICIOUS and hit.all_reasons() == ("hash:t:Embedded-Text",)


def test_rtf_embedded_package_object():
    native = (len(EVIL) + 100).to_bytes(4, "little") + b"\x02\x00" + b"tool.exe\x00" + b"C:\\tool.exe\x00" \
        + b"\x00\x00\x03\x00" + (12).to_bytes(4, "little") + b"C:\\tmp\\t.ex\x00" + len(EVIL).to_bytes(4, "little") \
        + EVIL
    ole1 = (0x0501).to_bytes(4, "little") + (2).to_bytes(4, "little")
    for s in (b"Package\x00", b"", b""):
        ole1 += len(s).to_bytes(4, "little") + s
    ole1 += len(native).to_bytes(4, "little") + native
    hexed = ole1.hex().encode()
    rtf = b"{\\rtf1{\\object\\objemb{\\*\\objclass Package}{\\*\\objdata " + b"\n".join(
        hexed[i:i + 64] for i in range(0, len(hexed), 64)) + b"}}}"
    res = scanner().scan(rtf, "doc.rtf")
    assert res.type == "rtf" and res.verdict is VerdictKind.MALICIOUS
    assert find(res, "object1/tool.exe").reasons == ("hash:test.sha256:Test-Evil",)


def test_uuencoded_file_and_inline_uuencode_in_mail():
    import binascii
    lines = b"".join(binascii.b2a_uu(EVIL[i:i + 45]) for i in range(0, len(EVIL), 45))
    uu = b"begin 644 tool.exe\n" + lines + b"`\nend\n"
    res = scanner().scan(uu, "tool.uu")
    assert res.type == "uu" and res.verdict is VerdictKind.MALICIOUS
    mail = b"From: a@example.com\nTo: b@example.com\nSubject: see attached\n\nHere it is:\n\n" + uu
    res = scanner().scan(mail, "m.eml")
    assert res.type == "mail" and res.verdict is VerdictKind.MALICIOUS
    assert find(res, "part1/tool.exe").reasons == ("hash:test.sha256:Test-Evil",)


def test_base64_attachment_hidden_by_a_bad_boundary_is_still_scanned():
    import base64
    # the declared boundary never occurs: a strict parser sees one text body
    mail = (b"From: a@example.com\nTo: b@example.com\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=\"declared\"\n\n--other\n"
            b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
            + base64.encodebytes(EVIL) + b"--other--\n")
    res = scanner().scan(mail, "odd.eml")
    assert res.verdict is VerdictKind.MALICIOUS
    assert find(res, "base64-block1").reasons == ("hash:test.sha256:Test-Evil",)
    # a well-formed message does not get its attachment twice
    good = mail.replace(b"--other", b"--declared")
    res = scanner().scan(good, "good.eml")
    assert res.verdict is VerdictKind.MALICIOUS and not any("base64-block" in m.path for m in res.members)


def test_auto_exec_names_outside_a_vba_project_are_not_suspicious():
    res = scanner().scan(zip_of({"src/VBA/module.bas": b"Sub Document_Open()\nEnd Sub\n"}), "code.zip")
    assert res.verdict is VerdictKind.CLEAN
