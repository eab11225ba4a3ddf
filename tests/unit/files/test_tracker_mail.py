"""File tracker with mail parsers: every named attachment body is a file,
either way, and waits for its mail's transaction record; HTTP stays as it was."""
from __future__ import annotations

import hashlib

from inspection.applayer.mail_message import MessageFiles
from inspection.files.model import FileState
from inspection.files.tracker import FileContext, FileEvent, FileTracker
from inspection.model import BodyChunk, Direction

TS, TC = Direction.TO_SERVER, Direction.TO_CLIENT


class Mail:
    event_type = "smtp"
    direction = TS

    def __init__(self, tx_id: int) -> None:
        self.tx_id = tx_id


MSG = (b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Disposition: attachment; filename=a.txt\r\n"
       b"\r\nfirst\r\n--B\r\nContent-Disposition: attachment; filename=b.txt\r\n\r\nsecond\r\n--B--\r\n")


def test_attachments_of_one_mail_are_files_that_wait_for_the_mail_record():
    t = FileTracker(FileContext())
    m = MessageFiles("smtp", 3, TS)
    out = []
    for i in range(0, len(MSG), 5):
        for o in m.feed(MSG[i:i + 5]):
            if isinstance(o, BodyChunk):
                out += t.body(o)
    files, _ = m.finish(truncated=False)
    for o in files:
        out += t.body(o)
    assert out == [] and not t.idle           # closed, waiting for tx 3
    done = t.record(Mail(3))
    assert [(e.file.filename, e.file.state, e.file.sha256, e.file.app_proto) for e in done] == [
        ("a.txt", FileState.CLOSED, hashlib.sha256(b"first").hexdigest(), "smtp"),
        ("b.txt", FileState.CLOSED, hashlib.sha256(b"second").hexdigest(), "smtp")]
    assert all(isinstance(e, FileEvent) and e.record.tx_id == 3 for e in done) and t.idle


def test_a_to_server_http_body_without_post_is_still_no_file():
    t = FileTracker(FileContext())
    assert t.body(BodyChunk("http", 0, TS, b"data", final=True, filename="x", method="GET")) == []
    assert len(t.body(BodyChunk("pop3", 0, TC, b"data", final=True, filename="x"))) == 0   # waits for its record
    assert [e.file.filename for e in t.flush()] == ["x"]
