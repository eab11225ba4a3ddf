"""Garbage, truncated and garbled inputs never raise: they pass through or become a notice."""
from __future__ import annotations

import zipfile
import io

from hypothesis import HealthCheck, given, settings, strategies as st

from inspection.files.sanitize import SanitizeLimits, SanitizeResult, sanitize
from tests.unit.files.sanitize import builders

SAMPLES = {
    "docm": builders.docm(),
    "xlsm": builders.xlsm(),
    "pdf": builders.pdf_with_javascript(),
    "rtf": builders.rtf_with_object_and_dde(),
    "ole": builders.VBA_PROJECT[:8192],
}
MAGICS = [b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"%PDF-1.4\n", b"{\\rtf1", b"\x1f\x8b\x08\x00",
          b"<?xml version='1.0'?><?mso-application progid=\"Word.Document\"?>", b""]
LIMITS = SanitizeLimits(max_input_bytes=1 << 20, max_members=50, max_expanded_bytes=4 << 20, max_depth=3)


def _check(result: SanitizeResult, original: bytes) -> None:
    assert isinstance(result, SanitizeResult)
    assert result.changed or result.data == original
    if result.is_notice:
        result.data.decode("utf-8")
    elif result.changed and result.data[:4] == b"PK\x03\x04":
        assert zipfile.ZipFile(io.BytesIO(result.data)).testzip() is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MAGICS), st.binary(max_size=2048), st.sampled_from(["a.docm", "b.csv", "c.pdf", ""]))
def test_garbage_behind_a_magic_never_raises(magic, tail, name):
    data = magic + tail
    _check(sanitize(data, name, LIMITS), data)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_truncated_and_garbled_samples_never_raise(kind, data):
    sample = SAMPLES[kind]
    cut = data.draw(st.integers(0, len(sample)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(0, cut - 1)), st.integers(0, 255)), max_size=8))
    body = bytearray(sample[:cut])
    for pos, value in flips:
        if pos < len(body):
            body[pos] = value
    _check(sanitize(bytes(body), f"x.{kind}", LIMITS), bytes(body))


def test_sanitising_twice_changes_nothing_the_second_time():
    for kind, sample in SAMPLES.items():
        first = sanitize(sample, f"x.{kind}")
        if first.is_notice:
            continue
        second = sanitize(first.data, first.suggested_name or f"x.{kind}")
        assert not second.changed, (kind, second.actions)
