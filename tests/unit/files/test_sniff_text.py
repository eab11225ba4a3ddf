"""The text test of the type sniffer: one C pass agrees with the byte-by-byte rule it replaced."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.files.sniff import _TEXT_CONTROLS, _text_kind, sniff


def _by_bytes(head: bytes) -> bool:
    return all(b >= 0x20 or b in _TEXT_CONTROLS for b in head) and b"\x7f" not in head


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=512), st.text(max_size=200).map(lambda t: t.encode("utf-8")[:512]),
                 st.lists(st.sampled_from(list(b"\t\n\r\x0c\x1b\x08\x00\x7f\x1f az\xc3\xa9\xff")), max_size=64)
                 .map(bytes)))
def test_text_or_data_as_byte_by_byte(head):
    kind = _text_kind(head)
    assert (kind.description != "data") == (_by_bytes(head) and not _utf8_cut_early(head))


def _utf8_cut_early(head: bytes) -> bool:
    if head.isascii():
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(head) - 3
    return False


def test_examples():
    assert sniff(b"hello\tworld\r\n").mime_type == "text/plain"
    assert sniff(b"caf\xc3\xa9\n").description.startswith("Unicode text")
    assert sniff(b"abc\x00def").description == "data"
    assert sniff(b"abc\x7fdef").description == "data"
    assert sniff(b"\x1b[0m colour").mime_type == "text/plain"
