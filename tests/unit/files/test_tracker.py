"""File tracker: which bodies become files, hashes, multipart parts,
truncation, gaps and limits, and pairing with the transaction record."""
from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings, strategies as st

from inspection.files.model import FileLimits, FileState, VerdictKind
from inspection.files.multipart import MultipartSplitter, PartData, PartEnd, PartStart, multipart_boundary
from inspection.files.sniff import sniff
from inspection.files.tracker import FileContext, FileEvent, FileTracker
from inspection.model import BodyChunk, Direction

TS, TC = Direction.TO_SERVER, Direction.TO_CLIENT


class Rec:
    """Stand-in transaction record (what the engine passes on)."""

    event_type = "http"

    def __init__(self, tx_id: int) -> None:
        self.tx_id = tx_id
        self.direction = TS


def chunks(tx, d, data: bytes, *, step=7, name="/f", method="GET", ctype=None, truncated=False):
    out = [BodyChunk("http", tx, d, data[i:i + step], filename=name, method=method, content_type=ctype)
           for i in range(0, len(data), step)]
    out.append(BodyChunk("http", tx, d, b"", True, truncated, name, method=method, content_type=ctype))
    return out


def run(tracker, items):
    out = []
    for it in items:
        out += tracker.body(it) if isinstance(it, BodyChunk) else tracker.record(it)
    return [e for e in out if isinstance(e, FileEvent)]


def test_response_body_is_one_file_with_streamed_hashes():
    data = b"MZ" + bytes(range(256)) * 40
    t = FileTracker(FileContext())
    ev = run(t, chunks(0, TC, data[:100], step=13)[:-1] + [Rec(0)] + chunks(0, TC, data[100:], step=101))
    assert len(ev) == 1
    f = ev[0].file
    assert ev[0].record.tx_id == 0
    assert f.filename == "/f" and f.size == len(data) and f.state is FileState.CLOSED and not f.gaps
    assert f.md5 == hashlib.md5(data).hexdigest()
    assert f.sha1 == hashlib.sha1(data).hexdigest()
    assert f.sha256 == hashlib.sha256(data).hexdigest()
    assert f.mime_type == "application/x-dosexec"
    assert f.verdict.kind is VerdictKind.UNSCANNED and f.verdict.reason == "no scanner configured"
    assert t.idle


def test_stray_bytes_after_the_logged_transaction_still_join_its_file():
    # libhtp/Suricata: until the next response, stray lines are body ("Hello World!" + CRLF is 14 bytes)
    t = FileTracker(FileContext())
    ev = run(t, chunks(0, TC, b"Hello World!", name="/s")[:-1] + [Rec(0)]
             + chunks(0, TC, b"\r\n", name="/s"))
    assert [(e.file.size, e.file.md5) for e in ev] == [(14, hashlib.md5(b"Hello World!\r\n").hexdigest())]
    assert t.idle


def test_request_file_waits_for_its_transaction_record():
    t = FileTracker(FileContext())
    assert run(t, chunks(3, TS, b"payload", method="PUT", name="/up")) == []
    assert not t.idle
    ev = run(t, [Rec(3)])
    assert [e.file.filename for e in ev] == ["/up"] and ev[0].record.tx_id == 3
    assert t.idle


def test_get_request_body_is_not_a_file_but_post_is():
    t = FileTracker(FileContext())
    assert run(t, chunks(0, TS, b"x=1", method="GET") + [Rec(0)]) == []
    assert len(run(t, chunks(1, TS, b"x=1", method="POST") + [Rec(1)])) == 1


def test_truncated_body_keeps_only_sha256():
    t = FileTracker(FileContext())
    ev = run(t, [Rec(0)] + chunks(0, TC, b"partial", truncated=True))
    f = ev[0].file
    assert f.state is FileState.TRUNCATED and f.md5 is None and f.sha1 is None
    assert f.sha256 == hashlib.sha256(b"partial").hexdigest()


def test_gap_counts_in_size_and_drops_hashes():
    t = FileTracker(FileContext())
    items = [Rec(0), BodyChunk("http", 0, TC, b"abc", filename="/g"),
             BodyChunk("http", 0, TC, b"", filename="/g", gap=10),
             BodyChunk("http", 0, TC, b"def", filename="/g"),
             BodyChunk("http", 0, TC, b"", True, False, "/g")]
    f = run(t, items)[0].file
    assert f.size == 16 and f.gaps and f.state is FileState.TRUNCATED
    assert f.md5 is None and f.sha256 is None


def test_size_limit_truncates_and_is_counted():
    ctx = FileContext(FileLimits(max_size=10))
    t = FileTracker(ctx)
    f = run(t, [Rec(0)] + chunks(0, TC, b"0123456789abcdef", step=4))[0].file
    assert f.state is FileState.TRUNCATED and f.size == 16
    assert f.sha256 == hashlib.sha256(b"0123456789").hexdigest()
    assert ctx.counters.size_limit == 1


def test_open_files_limit_is_counted():
    ctx = FileContext(FileLimits(max_open=1))
    t = FileTracker(ctx)
    t.body(BodyChunk("http", 0, TS, b"a", filename="/a", method="POST"))
    t.body(BodyChunk("http", 1, TS, b"b", filename="/b", method="POST"))
    assert ctx.counters.open_limit == 1
    ev = [e for e in t.flush() if isinstance(e, FileEvent)]
    assert [e.file.filename for e in ev] == ["/a"]


def test_flow_end_closes_open_files_truncated_without_record():
    t = FileTracker(FileContext())
    t.body(BodyChunk("http", 0, TC, b"half", filename="/x"))
    ev = [e for e in t.flush() if isinstance(e, FileEvent)]
    assert ev[0].file.state is FileState.TRUNCATED and ev[0].record is None
    assert t.idle


UPLOAD = (b"preamble\r\n--XyZ\r\n"
          b"Content-Disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n"
          b"--XyZ\r\n"
          b"Content-Disposition: form-data; name=\"f1\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n"
          b"first file\r\n-XyZ not a delimiter\r\n"
          b"--XyZ\r\n"
          b"Content-Disposition: form-data; name=\"f2\"; filename=\"b.bin\"\r\n\r\n"
          b"\x00\x01second\r\n"
          b"--XyZ--\r\nepilogue")


@pytest.mark.parametrize("step", [1, 3, 64, len(UPLOAD)])
def test_multipart_upload_splits_into_file_parts(step):
    t = FileTracker(FileContext())
    ev = run(t, chunks(0, TS, UPLOAD, step=step, method="POST",
                       ctype='multipart/form-data; boundary="XyZ"') + [Rec(0)])
    got = {e.file.filename: e.file for e in ev}
    assert list(got) == ["a.txt", "b.bin"]
    assert got["a.txt"].md5 == hashlib.md5(b"first file\r\n-XyZ not a delimiter").hexdigest()
    assert got["b.bin"].md5 == hashlib.md5(b"\x00\x01second").hexdigest()
    assert all(f.state is FileState.CLOSED for f in got.values())


def test_multipart_part_cut_off_is_truncated_with_anomaly():
    t = FileTracker(FileContext())
    body = b"--B\r\nContent-Disposition: form-data; name=f; filename=c.txt\r\n\r\nunfinished"
    out = []
    for c in chunks(0, TS, body, method="POST", ctype="multipart/form-data; boundary=B"):
        out += t.body(c)
    out += t.record(Rec(0))
    files = [e.file for e in out if isinstance(e, FileEvent)]
    assert [(f.filename, f.state, f.size) for f in files] == [("c.txt", FileState.TRUNCATED, 10)]
    assert any(getattr(e, "event", None) == "MULTIPART_NO_FILEDATA" for e in out)


def test_multipart_lf_only_and_long_header_is_bounded():
    s = MultipartSplitter(b"b", max_header=64)
    ev = s.feed(b"--b\nContent-Disposition: form-data; filename=x\n\nDATA\n--b\n" + b"H" * 100)
    assert ev[:3] == [PartStart("x", None), PartData(b"DATA"), PartEnd(True)]
    assert ev[3:] == [PartStart(None, None)] and "MULTIPART_INVALID_HEADER" in s.anomalies


def test_boundary_only_for_form_data():
    assert multipart_boundary("multipart/form-data; boundary=abc") == b"abc"
    assert multipart_boundary('Multipart/Form-Data;boundary="a b"') == b"a b"
    assert multipart_boundary("multipart/mixed; boundary=abc") is None
    assert multipart_boundary("text/plain") is None


def test_sniff_table():
    assert sniff(b"") is None
    assert sniff(b"%PDF-1.7\n").mime_type == "application/pdf"
    assert sniff(b"  <!DOCTYPE html><html>").mime_type == "text/html"
    assert sniff(b"plain words\n").description == "ASCII text"
    assert sniff("gr\u00fc\u00dfe".encode()).description.startswith("Unicode text")
    assert sniff(b"\x00\x01\x02\x03").description == "data"


def _split(data: bytes, cuts: list[int]) -> tuple[list, list[str]]:
    s = MultipartSplitter(b"XyZ", max_header=128)
    out, pos = [], 0
    for c in sorted(cuts) + [len(data)]:
        out += s.feed(data[pos:c])
        pos = max(pos, c)
    out += s.finish()
    merged: list = []
    for ev in out:   # data events may be cut differently; compare the bytes per part
        if isinstance(ev, PartData) and merged and isinstance(merged[-1], PartData):
            merged[-1] = PartData(merged[-1].data + ev.data)
        else:
            merged.append(ev)
    return merged, s.anomalies


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=8), st.integers(0, 2**16))
def test_multipart_garbled_and_cut_anywhere_gives_the_same_parts(noise, cuts, seed):
    rnd = random.Random(seed)
    data = bytearray(UPLOAD)
    for b in noise[:20]:
        data[rnd.randrange(len(data))] = b
    data = bytes(data) + noise
    whole = _split(data, [])
    assert _split(data, cuts) == whole
    assert _split(data, list(range(len(data)))) == whole


def test_header_overflow_does_not_swallow_the_next_delimiter():
    """Hypothesis found it: a header block that never ends and overflows right before a
    delimiter line lost that delimiter when the body came whole, not when it came in pieces."""
    body = (b"--XyZ\r\nX-Long: " + b"a" * 101 + b"\r\nX-More: b\r\n--XyZ\r\n"
            b"Content-Disposition: form-data; name=\"f\"; filename=\"k.txt\"\r\n\r\nkept\r\n--XyZ--\r\n")
    whole = _split(body, [])
    assert whole == _split(body, list(range(len(body))))
    assert PartData(b"kept") in whole[0] and whole[1] == ["MULTIPART_INVALID_HEADER"]
