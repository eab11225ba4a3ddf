"""The scanner takes the hashes the tracker computed while the file streamed by (no second pass)."""
from __future__ import annotations

import hashlib
import io
import json

from firmware.bench.frames import TcpConversation
from inspection.config import ChecksumMode, EngineConfig
from inspection.engine import Engine

from inspection.files.model import FileRecord, FileState, VerdictKind
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
