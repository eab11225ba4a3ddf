"""What SMTP, POP3 and IMAP share: a dot-terminated block reader, a bounded
line reader, and `MessageFiles`, which runs one mail message through the
MIME walker and turns its attachments into `BodyChunk`s (one named body per
attachment, decoded) for the file tracker, plus the EVE ``email`` summary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from inspection.files.mime import MimeLimits, MimeWalker, PartData, PartEnd, PartStart
from inspection.files.mime_fields import decode_words, split_addresses
from inspection.model import Anomaly, AnomalyKind, AppOutput, BodyChunk, Direction

__all__ = ["DotBlock", "EmailSummary", "LineReader", "MessageFiles"]

MAX_ATTACHMENT_NAMES = 64


@dataclass(frozen=True, slots=True)
class EmailSummary:
    """The EVE ``email`` object: the message's own header fields and the
    names of its attachments. `status` is how far parsing got (PARSE_DONE,
    BODY_STARTED, HEADER_STARTED)."""

    status: str
    from_: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str | None = None
    message_id: str | None = None
    attachments: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()


class LineReader:
    """Complete lines out of a byte stream, one at a time (the caller may
    switch modes between two lines and `take` the rest). A line longer than
    `limit` is dropped up to its end and reported once as None, however the
    stream was cut. Consumed
    bytes are released in one go, so reading stays linear."""

    __slots__ = ("limit", "buf", "_pos", "_skipping")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()
        self._pos = 0
        self._skipping = False

    def lines_until(self, stop: Callable[[], bool]) -> Iterator[bytes | None]:
        """Lines (with their line end) now complete in `buf`, until `stop()`."""
        buf = self.buf
        try:
            while not stop():
                lf = buf.find(b"\n", self._pos)
                if lf < 0:
                    if len(buf) - self._pos > self.limit:
                        del buf[:]
                        self._pos = 0
                        if not self._skipping:
                            self._skipping = True
                            yield None
                    return
                start, self._pos = self._pos, lf + 1
                if self._skipping:
                    self._skipping = False
                    continue
                yield bytes(buf[start: lf + 1]) if lf + 1 - start <= self.limit else None
        finally:
            if self._pos:
                del buf[: self._pos]
                self._pos = 0

    def take(self) -> bytes:
        """Everything not read yet (a mode switch hands it to another reader)."""
        rest = bytes(self.buf[self._pos:])
        self.buf.clear()
        self._pos = 0
        self._skipping = False
        return rest


class DotBlock:
    """A multi-line block ended by a line holding a single dot (SMTP DATA,
    POP3 multi-line replies), with dot-unstuffing. Lenient as servers are:
    bare LF line ends count."""

    __slots__ = ("bol",)

    def __init__(self) -> None:
        self.bol = True    # at the start of a line

    def feed(self, buf: bytearray) -> tuple[bytes, bool]:
        """Consume from `buf` what can be decided; returns (content, ended)."""
        out = bytearray()
        pos, n = 0, len(buf)
        ended = False
        while pos < n:
            if self.bol:
                if buf[pos] == 0x2E:
                    if n - pos < 2:
                        break
                    nxt = buf[pos + 1]
                    if nxt == 0x0A:
                        pos, ended = pos + 2, True
                        break
                    if nxt == 0x0D:
                        if n - pos < 3:
                            break
                        if buf[pos + 2] == 0x0A:
                            pos, ended = pos + 3, True
                            break
                    pos += 1     # a stuffed dot
                self.bol = False
            j = buf.find(b"\n.", pos)     # only a line starting with a dot needs a look
            if j < 0:
                out += buf[pos:]
                self.bol = buf[n - 1] == 0x0A
                pos = n
                break
            out += buf[pos: j + 1]
            pos = j + 1
            self.bol = True
        del buf[:pos]
        if ended:
            self.bol = True
        return bytes(out), ended


class MessageFiles:
    """One message through the MIME walker: attachments as BodyChunks of
    transaction `tx_id`, MIME anomalies under `app_proto`."""

    __slots__ = ("app_proto", "tx_id", "direction", "walker", "_open", "_lost")

    def __init__(self, app_proto: str, tx_id: int, direction: Direction, limits: MimeLimits | None = None) -> None:
        self.app_proto, self.tx_id, self.direction = app_proto, tx_id, direction
        self.walker = MimeWalker(limits)
        self._open: str | None = None      # name of the attachment being passed on
        self._lost = False                 # a gap: the rest of the message is not walked

    def feed(self, data: bytes) -> list[AppOutput]:
        if self._lost or not data:
            return []
        return self._convert(self.walker.feed(data))

    def gap(self, length: int) -> list[AppOutput]:
        """Bytes missing: an open attachment gets the hole and ends TRUNCATED;
        the walker's place in the message is unknown, so walking stops."""
        out: list[AppOutput] = []
        if self._lost:
            return out
        self._lost = True
        if self._open is not None:
            out.append(self._chunk(b"", gap=length))
            out.append(self._chunk(b"", final=True, truncated=True))
            self._open = None
        return out

    def finish(self, truncated: bool) -> tuple[list[AppOutput], EmailSummary]:
        """End of the message (`truncated`: cut off before its end)."""
        w = self.walker
        status = w.status
        out: list[AppOutput] = []
        if not self._lost:
            out = self._convert(w.finish(cut=truncated))
            if not truncated and not self._lost:
                status = w.status
        if self._open is not None:     # only after a cut: finish() ends what it opened
            out.append(self._chunk(b"", final=True, truncated=True))
            self._open = None
        return out, self.summary(status)

    def summary(self, status: str) -> EmailSummary:
        h = self.walker.headers
        return EmailSummary(
            status=status,
            from_=decode_words(h[b"from"]) if b"from" in h else None,
            to=split_addresses(h[b"to"]) if b"to" in h else (),
            cc=split_addresses(h[b"cc"]) if b"cc" in h else (),
            subject=decode_words(h[b"subject"]) if b"subject" in h else None,
            message_id=decode_words(h[b"message-id"]) if b"message-id" in h else None,
            attachments=tuple(self.walker.attachments[:MAX_ATTACHMENT_NAMES]),
            urls=tuple(self.walker.urls.urls))

    def _convert(self, events: list) -> list[AppOutput]:
        out: list[AppOutput] = []
        for ev in events:
            if isinstance(ev, PartData):
                if self._open is not None:
                    out.append(self._chunk(ev.data))
            elif isinstance(ev, PartStart):
                self._open = ev.filename
            elif isinstance(ev, PartEnd):
                if self._open is not None:
                    out.append(self._chunk(b"", final=True, truncated=not ev.complete))
                self._open = None
        w = self.walker
        if w.anomalies:
            for name in w.anomalies:
                out.append(Anomaly(AnomalyKind.APPLAYER, name, self.app_proto, self.direction, self.tx_id))
            w.anomalies.clear()
        return out

    def _chunk(self, data: bytes, *, final: bool = False, truncated: bool = False, gap: int = 0) -> BodyChunk:
        return BodyChunk(self.app_proto, self.tx_id, self.direction, data, final=final, truncated=truncated,
                         filename=self._open, gap=gap, content_type="message/rfc822")
