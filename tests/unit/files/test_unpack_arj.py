"""ARJ: fixtures made with Debian's arj (data/arj/README.md); damage never raises."""
from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.files.hashlist import parse_hash_list
from inspection.files.model import VerdictKind
from inspection.files.scanner import ContentScanner
from inspection.files.unpack import UnpackError, identify
from inspection.files.unpack_arj import unpack_arj

DATA = Path(__file__).parent / "data" / "arj"
TEXT, TOOL = (DATA / "text.txt").read_bytes(), (DATA / "tool.bin").read_bytes()


def test_methods_1_and_4_decode_exactly():
    for name in ("t1.arj", "t4.arj"):
        data = (DATA / name).read_bytes()
        assert identify(data) == "arj"
        assert [(m.name, m.data) for m in unpack_arj(data, name, 1 << 20)] == [("text.txt", TEXT), ("tool.bin", TOOL)]


def test_hash_found_inside_and_password_entry_named():
    scanner = ContentScanner(parse_hash_list(hashlib.sha256(TOOL).hexdigest() + " Arj-Test\n", "l"))
    assert scanner.scan((DATA / "t1.arj").read_bytes(), "t1.arj").verdict is VerdictKind.MALICIOUS
    res = scanner.scan((DATA / "enc.arj").read_bytes(), "enc.arj")
    assert res.verdict is VerdictKind.UNSCANNED and res.all_reasons() == ("unscanned: encrypted",)


def test_member_over_cap_is_not_decoded():
    members = list(unpack_arj((DATA / "t1.arj").read_bytes(), "t1.arj", 2000))
    assert [(m.name, m.reason) for m in members] == [("text.txt", "too large"), ("tool.bin", None)]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["t1.arj", "t4.arj"]), st.integers(min_value=0, max_value=5000),
       st.integers(min_value=1, max_value=255))
def test_damaged_arj_never_raises(name, where, flip):
    data = bytearray((DATA / name).read_bytes())
    at = where % len(data)
    data[at] ^= flip
    for blob in (bytes(data), bytes(data[:at])):
        try:
            for m in unpack_arj(blob, name, 1 << 16):
                assert m.data is None or len(m.data) <= 1 << 16
        except UnpackError:
            pass
