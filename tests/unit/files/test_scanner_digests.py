"""The scanner takes the hashes the tracker computed while the file streamed by (no second pass)."""
from __future__ import annotations

import hashlib
import io
import json

from firmware.bench.frames import TcpConversation
from inspection.config import ChecksumMode, EngineConfig
from inspection.engine import Engine

from inspection.files.model import FileRecord, FileState, VerdictKind
from inspection.files.hashlist import parse_hash_list
from inspection.files.scanner import ContentScanner
from inspection.files.scanner_stream import StreamScanner
from inspection.model import Direction
from inspection.output.eve import EveWriter
from tests.unit.files.test_scanner import EVIL, EVIL_SHA, HASHES


def test_given_digests_are_the_ones_looked_up():
    s = ContentScanner(HASHES)
    other = b"MZ" + b"\x90not the listed bytes\x00" * 40
    # the digests stand for the bytes: a listed SHA-256 given with other bytes is a hit, and the
    # listed bytes with another SHA-256 are not (proves the scanner did not hash them again)
    assert s.scan(other, "x.exe", (EVIL_SHA, None, None)).verdict is VerdictKind.MALICIOUS
    assert s.scan(EVIL, "x.exe", (hashlib.sha256(other).hexdigest(), None, None)).verdict is not \
        VerdictKind.MALICIOUS
    assert s.scan(EVIL, "x.exe").verdict is VerdictKind.MALICIOUS   # without digests: hashed here


def _record(data: bytes, state: FileState, sha256: str | None) -> FileRecord:
    return FileRecord(app_proto="http", tx_id=0, direction=Direction.TO_CLIENT, filename="/x.exe",
                      size=len(data), state=state, gaps=False, sha256=sha256,
                      md5=hashlib.md5(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest(), magic=None,
                      mime_type=None)


def test_a_closed_streamed_file_is_judged_with_the_trackers_hashes():
    scanner = StreamScanner(ContentScanner(HASHES))
    sess = scanner.open("http", "/x.exe", 1)
    sess.data(EVIL[:100])
    sess.data(EVIL[100:])
    assert sess.finish(_record(EVIL, FileState.CLOSED, EVIL_SHA)).kind is VerdictKind.MALICIOUS
    # a whole file whose recorded hash differs from its bytes: the record's hash is the one used
    sess = scanner.open("http", "/x.exe", 1)
    sess.data(EVIL)
    assert sess.finish(_record(EVIL, FileState.CLOSED, "00" * 32)).kind is not VerdictKind.MALICIOUS


def test_a_truncated_file_takes_the_trackers_sha256_of_the_bytes_seen():
    scanner = StreamScanner(ContentScanner(HASHES))
    sess = scanner.open("http", "/x.exe", 1)
    sess.data(EVIL)
    # the tracker's SHA-256 of a TRUNCATED file covers the bytes it fed the session: taken as is
    assert sess.finish(_record(EVIL, FileState.TRUNCATED, "00" * 32)).kind is not VerdictKind.MALICIOUS
    sess = scanner.open("http", "/x.exe", 1)
    sess.data(EVIL)
    # no SHA-256 from the tracker (a gap): hashed here from what the session holds
    assert sess.finish(_record(EVIL, FileState.TRUNCATED, None)).kind is VerdictKind.MALICIOUS


def test_a_file_cut_at_the_size_limit_is_judged_by_its_first_bytes():
    # end to end through the tracker: the hash of the bytes up to the limit is what is looked up
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40000, 80)
    body = EVIL + b"\0" * 5000
    frames = (list(c.handshake()) + list(c.send(b"GET /x.exe HTTP/1.1\r\nHost: a\r\n\r\n"))
              + list(c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body, from_client=False)))
    out = io.BytesIO()
    eve = EveWriter(out)
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, file_size_limit=len(EVIL)), eve.write, None)
    engine.files.scanner = StreamScanner(ContentScanner(HASHES))
    for ts, frame in frames:
        engine.process(1, frame, ts, len(frame))
    engine.finish()
    [fi] = [e["fileinfo"] for e in map(json.loads, out.getvalue().splitlines()) if e["event_type"] == "fileinfo"]
    assert fi["state"] == "TRUNCATED" and fi["sha256"] == EVIL_SHA
    assert fi["verdict"]["verdict"] == "malicious"


def test_a_chunk_the_caller_changes_afterwards_is_scanned_as_it_was():
    scanner = StreamScanner(ContentScanner(HASHES))
    sess = scanner.open("http", "/x.exe", 1)
    chunk = bytearray(EVIL)
    sess.data(chunk)           # kept by reference only when immutable
    chunk[:] = b"\0" * len(chunk)
    assert sess.finish(_record(EVIL, FileState.TRUNCATED, None)).kind is VerdictKind.MALICIOUS


# -- files the scan reads nothing of but their digests are not held ----------------------------

def _stream(scanner: StreamScanner, data: bytes, state: FileState = FileState.CLOSED) -> VerdictKind:
    sess = scanner.open("http", "/f.bin", 1)
    for i in range(0, len(data), 65536):
        sess.data(data[i:i + 65536])
    return sess.finish(_record(data, state, hashlib.sha256(data).hexdigest())).kind


def _zip(members: dict[str, bytes]) -> bytes:
    import zipfile
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    return b.getvalue()


def test_streamed_verdicts_match_the_whole_file_scan_with_or_without_holding_it():
    import random
    big_evil = b"MZ" + random.Random(1).randbytes(200_000)
    listed = parse_hash_list(f"{hashlib.sha256(big_evil).hexdigest()}  Big-Evil\n{EVIL_SHA}  Test-Evil\n", "l.sha256")
    samples = {
        "listed pe": big_evil,
        "random data": random.Random(2).randbytes(300_000),
        "zip with a listed member": _zip({"a.txt": b"x" * 5000, "e.exe": EVIL}),
        "pdf with javascript": b"%PDF-1.4\n" + b"1 0 obj << /S /JavaScript /JS (app.alert(1)) >>\n" * 200,
        "unsupported container": b"Rar!\x1a\x07\x00" + bytes(10_000),
    }
    whole = ContentScanner(listed)
    streamed = StreamScanner(ContentScanner(listed))
    for what, data in samples.items():
        want = whole.scan(data, "/f.bin").verdict
        assert _stream(streamed, data) is want, what
    # the samples cover each way a verdict is reached
    assert [_stream(streamed, d) for d in samples.values()] == [
        VerdictKind.MALICIOUS, VerdictKind.CLEAN, VerdictKind.MALICIOUS, VerdictKind.SUSPICIOUS, VerdictKind.UNSCANNED]


def test_a_large_file_only_hashed_is_not_kept_in_memory():
    import random
    import tracemalloc
    scanner = StreamScanner(ContentScanner(HASHES))
    chunks = [random.Random(i).randbytes(65536) for i in range(8)]   # reused: 64 MB streamed
    sess = scanner.open("http", "/big.iso", 1)
    tracemalloc.start()
    try:
        for _ in range(128):
            for c in chunks:
                sess.data(c)
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert held < 1 << 20          # the head only, not 64 MB of chunk references
    rec = FileRecord(app_proto="http", tx_id=0, direction=Direction.TO_CLIENT, filename="/big.iso",
                     size=64 << 20, state=FileState.CLOSED, gaps=False, sha256="00" * 32, md5=None, sha1=None,
                     magic=None, mime_type=None)
    assert sess.finish(rec).kind is VerdictKind.CLEAN


def test_the_tracker_computes_md5_and_sha1_only_when_asked_or_the_hash_list_needs_them():
    from inspection.files.model import FileLimits
    from inspection.files.tracker import FileContext, FileTracker
    from tests.unit.files.test_tracker import Rec, chunks, run

    data = b"some file body " * 100
    t = FileTracker(FileContext(FileLimits(hashes=("sha256",))))
    f = run(t, [Rec(0)] + chunks(0, Direction.TO_CLIENT, data, step=500))[0].file
    assert f.sha256 == hashlib.sha256(data).hexdigest() and f.md5 is None and f.sha1 is None
    md5_list = parse_hash_list(f"{hashlib.md5(data).hexdigest()}:{len(data)}:Md5-Listed\n", "l.hdb")
    ctx = FileContext(FileLimits(hashes=("sha256",)), StreamScanner(ContentScanner(md5_list)))
    f = run(FileTracker(ctx), [Rec(0)] + chunks(0, Direction.TO_CLIENT, data, step=500))[0].file
    assert f.md5 == hashlib.md5(data).hexdigest() and f.sha1 is None
    assert f.verdict.kind is VerdictKind.MALICIOUS
