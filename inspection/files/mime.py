"""An incremental MIME walker: a mail message in, its attachments out, decoded.

Sans-IO and line-oriented: `MimeWalker.feed` takes message bytes as they come
(after SMTP/POP3 dot-unstuffing) and returns `PartStart` / `PartData` /
`PartEnd` events (the same events as the multipart/form-data splitter, so the
file tracker handles both alike) for every leaf entity that carries a file
name; `PartData` holds decoded bytes (base64, quoted-printable, or as sent
for 7bit/8bit/binary). The result does not depend on how the input was cut.

Walks nested multiparts (a stack of boundaries; a closing outer boundary also
closes the inner ones) and message/rfc822 entities. The top entity's header
fields that the EVE ``email`` object shows are kept in `headers`, the URLs
named in text/plain and text/html parts in `urls` (see `mime_urls`).

Bounded: one buffered line (`max_line`; longer body lines are decoded in
pieces, longer header lines cut: MIME_LONG_LINE), `max_header` bytes of one
entity's header block (MIME_LONG_HEADER: the rest of the block is skipped),
`max_depth` nested entities (MIME_DEPTH_LIMIT: deeper ones are not walked),
`max_parts` entities per message (MIME_PARTS_LIMIT: later ones ignored).
Decode problems are counted (`counters`) and named in `anomalies` (Suricata's
MIME event names, drained by the caller); nothing here raises on input.
"""
from __future__ import annotations

import binascii
import enum
import re
from dataclasses import dataclass, field

from inspection.files.mime_fields import Field, field_name, filename_of, parse_field
from inspection.files.mime_urls import UrlCollector
from inspection.files.multipart import PartData, PartEnd, PartEvent, PartStart

__all__ = ["MimeCounters", "MimeLimits", "MimeWalker", "PartData", "PartEnd", "PartStart", "EMAIL_FIELDS"]

EMAIL_FIELDS = frozenset({b"from", b"to", b"cc", b"subject", b"message-id", b"date", b"x-mailer", b"reply-to"})
_ENTITY_FIELDS = frozenset({b"content-type", b"content-transfer-encoding", b"content-disposition"})
_MAX_BOUNDARY = 200
_MAX_FIELD = 4096            # bytes kept of one header value
_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_B64_OR_PAD = bytes(c for c in range(256) if c not in _B64 + b"=")
_NOT_GARBAGE = _B64 + b"= \t\r\n"    # deleted, what is left of a base64 line is garbage
_WS = b" \t\r\n"
_QP_ESC = re.compile(rb"=([0-9A-Fa-f]{2})")
_URL_TYPES = frozenset({"text/plain", "text/html"})   # parts whose URLs go to `urls`


@dataclass(frozen=True, slots=True)
class MimeLimits:
    max_line: int = 8 << 10
    max_header: int = 64 << 10
    max_depth: int = 16
    max_parts: int = 256

    def __post_init__(self) -> None:
        if self.max_line < 80 or self.max_header < 256 or self.max_depth < 1 or self.max_parts < 1:
            raise ValueError("MIME limits out of range")


@dataclass(slots=True)
class MimeCounters:
    parts: int = 0
    attachments: int = 0
    base64_errors: int = 0      # bytes outside the base64 alphabet (line breaks and spaces excepted)
    qp_errors: int = 0          # '=' not followed by two hex digits or a line end
    limits: dict[str, int] = field(default_factory=dict)


class _S(enum.Enum):
    HEADERS = "headers"       # an entity's header block
    BODY = "body"             # a leaf entity's content
    PREAMBLE = "preamble"     # a multipart before its first delimiter
    EPILOGUE = "epilogue"     # after a multipart's closing delimiter
    SKIP = "skip"             # content not walked (limits); delimiters are still followed


class _Enc(enum.Enum):
    IDENTITY = "identity"
    BASE64 = "base64"
    QP = "quoted-printable"


class MimeWalker:
    """Walks one message (see the module docstring)."""

    __slots__ = ("limits", "counters", "anomalies", "headers", "attachments", "_buf", "_scan", "_st", "_bounds",
                 "_depth", "_fields", "_cur", "_head_len", "_enc", "_file", "_b64", "_eol", "_mid_line",
                 "_top", "_done", "_skip_line", "_text", "urls")

    def __init__(self, limits: MimeLimits | None = None) -> None:
        self.limits = limits or MimeLimits()
        self.counters = MimeCounters()
        self.anomalies: list[str] = []
        self.headers: dict[bytes, bytes] = {}     # the top entity's EMAIL_FIELDS (first of each)
        self.attachments: list[str] = []
        self._buf = bytearray()
        self._scan = 0                # bytes of _buf already searched for a line end
        self._st = _S.HEADERS
        self._bounds: list[bytes] = []   # open multipart delimiters ("--" + boundary), innermost last
        self._depth = 0
        self._fields: dict[bytes, bytes] = {}
        self._cur: bytes | None = None   # field being read (folded lines join it)
        self._head_len = 0
        self._enc = _Enc.IDENTITY
        self._file = False            # the current leaf is an attachment
        self._text = False            # the current leaf is text whose URLs are collected
        self.urls = UrlCollector()
        self._b64 = b""               # base64 characters waiting for a full quantum
        self._eol = b""               # a line end held back: it is the delimiter's if a delimiter follows
        self._mid_line = False        # part of the current body line was already passed on
        self._top = True
        self._done = False
        self._skip_line = False       # an over-long header line: drop until its end

    # -- input --------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[PartEvent]:
        out: list[PartEvent] = []
        if self._done or not data:
            return out
        buf = self._buf
        buf += data
        while True:
            if self._st is _S.BODY and self._enc is not _Enc.QP and not self._mid_line and buf[:2] != b"--":
                self._bulk(out)
            lf = buf.find(b"\n", self._scan)
            if lf < 0:
                self._scan = len(buf)
                if len(buf) > self.limits.max_line:
                    self._long_line(out)
                return out
            line = bytes(buf[: lf + 1])
            del buf[: lf + 1]
            self._scan = 0
            self._line(line, out)

    def finish(self, cut: bool = False) -> list[PartEvent]:
        """End of the message: what is open ends; inside a multipart that is
        before its closing delimiter, so an open attachment is incomplete.
        `cut`: the transfer ended early (then that is no fault of the message)."""
        out: list[PartEvent] = []
        if self._done:
            return out
        if self._buf:
            line = bytes(self._buf)
            self._buf = bytearray()
            self._line(line, out)
        if self._st is _S.HEADERS and self._fields and not self._skip_line:
            self._end_headers(out)     # headers without a body
        if self._st is _S.BODY:
            self._end_leaf(out, complete=not self._bounds)
        if self._bounds and not cut:
            self.anomalies.append("MIME_MALFORMED_MSG")
        self._done = True
        return out

    @property
    def status(self) -> str:
        """How far the message got, under Suricata's ``email.status`` names."""
        if self._done:
            return "PARSE_DONE"
        return "HEADER_STARTED" if self._top else "BODY_STARTED"

    # -- lines --------------------------------------------------------------------------------

    def _bulk(self, out: list[PartEvent]) -> None:
        """Whole lines that cannot be delimiters (none starts with "--") go in
        one piece: line by line costs too much on a multi-megabyte attachment."""
        buf = self._buf
        j = buf.find(b"\n--")
        end = j + 1 if j >= 0 else buf.rfind(b"\n") + 1
        if end <= 0:
            return
        block = bytes(buf[:end])
        del buf[:end]
        self._scan = 0
        if not (self._file or self._text):
            return
        if self._enc is _Enc.BASE64:
            self._base64(block, out)
            return
        content = block[:-2] if block.endswith(b"\r\n") else block[:-1]
        data = self._eol + content
        self._eol = block[len(content):]
        if data:
            self._emit(data, out)

    def _long_line(self, out: list[PartEvent]) -> None:
        """A line longer than the line limit without its end yet."""
        buf = self._buf
        if self._st is _S.BODY:
            keep = 2 if self._enc is _Enc.QP else 0       # an escape may be cut in two
            piece = bytes(buf[: len(buf) - keep])
            del buf[: len(buf) - keep]
            self._scan = len(buf)
            self._mid_line = True
            self._body(piece, out, partial=True)
            return
        if self._st is _S.HEADERS and not self._skip_line:
            self._limit("MIME_LONG_LINE")
            self._skip_line = True
        buf.clear()
        self._scan = 0
        self._mid_line = True

    def _line(self, line: bytes, out: list[PartEvent]) -> None:
        continued, self._mid_line = self._mid_line, False
        if not continued and self._bounds and line[:2] == b"--" and self._delimiter(line, out):
            return
        st = self._st
        if st is _S.HEADERS:
            if self._skip_line:
                self._skip_line = False
                return
            self._header_line(line, out)
        elif st is _S.BODY:
            self._body(line, out, partial=False)

    def _delimiter(self, line: bytes, out: list[PartEvent]) -> bool:
        text = line.rstrip(_WS)
        for i in range(len(self._bounds) - 1, -1, -1):
            d = self._bounds[i]
            if not text.startswith(d):
                continue
            rest = text[len(d):]
            closing = rest.startswith(b"--")
            if rest and not closing and rest.strip(_WS):
                continue     # a longer boundary that only starts like this one
            if self._st is _S.BODY:
                self._end_leaf(out, complete=True)
            elif self._st is _S.HEADERS and (self._fields or self._head_len):
                self.anomalies.append("MIME_MALFORMED_MSG")   # a part without a body
            if i < len(self._bounds) - 1:
                self.anomalies.append("MIME_MALFORMED_MSG")   # inner multiparts never closed
            del self._bounds[i + 1:]
            self._eol = b""
            if closing:
                self._bounds.pop()
                self._st = _S.EPILOGUE
            else:
                self._depth = i + 1
                self._new_entity()
            return True
        return False

    def _new_entity(self) -> None:
        self._st = _S.HEADERS
        self._fields, self._cur, self._head_len, self._skip_line = {}, None, 0, False

    # -- headers ------------------------------------------------------------------------------

    def _header_line(self, line: bytes, out: list[PartEvent]) -> None:
        self._head_len += len(line)
        text = line.rstrip(b"\r\n")
        if not text:
            self._end_headers(out)
            return
        if self._head_len > self.limits.max_header:
            if self._head_len - len(line) <= self.limits.max_header:
                self._limit("MIME_LONG_HEADER")
            return
        if text[:1] in b" \t":
            cur = self._cur
            if cur is not None and len(self._fields[cur]) < _MAX_FIELD:
                self._fields[cur] = (self._fields[cur] + b" " + text.strip())[:_MAX_FIELD]
            return
        name, sep, value = text.partition(b":")
        if not sep:
            self._cur = None
            self.anomalies.append("MIME_INVALID_HEADER")
            return
        key = field_name(name)
        wanted = key in _ENTITY_FIELDS or (self._top and key in EMAIL_FIELDS)
        if wanted and key not in self._fields:
            self._fields[key] = value.strip()[:_MAX_FIELD]
            self._cur = key
        else:
            self._cur = None

    def _end_headers(self, out: list[PartEvent]) -> None:
        fields = self._fields
        if self._top:
            self.headers = {k: v for k, v in fields.items() if k in EMAIL_FIELDS}
            self._top = False
        self._fields, self._cur = {}, None
        c = self.counters
        c.parts += 1
        if c.parts > self.limits.max_parts:
            if c.parts == self.limits.max_parts + 1:
                self._limit("MIME_PARTS_LIMIT")
            self._st = _S.SKIP
            return
        ctype = parse_field(fields[b"content-type"]) if b"content-type" in fields else None
        mtype = ctype.value if ctype is not None else "text/plain"
        if mtype.startswith("multipart/"):
            boundary = ctype.params.get("boundary") if ctype is not None else None
            if not boundary or len(boundary) > _MAX_BOUNDARY:
                self.anomalies.append("MIME_LONG_BOUNDARY" if boundary else "MIME_MALFORMED_MSG")
                self._st = _S.SKIP
            elif len(self._bounds) >= self.limits.max_depth:
                self._limit("MIME_DEPTH_LIMIT")
                self._st = _S.SKIP
            else:
                self._bounds.append(b"--" + boundary)
                self._st = _S.PREAMBLE
            return
        disp = parse_field(fields[b"content-disposition"]) if b"content-disposition" in fields else None
        if mtype == "message/rfc822" and (disp is None or disp.value != "attachment"):
            if self._depth >= self.limits.max_depth:
                self._limit("MIME_DEPTH_LIMIT")
                self._st = _S.SKIP
            else:
                self._depth += 1
                self._new_entity()      # the enclosed message's own headers follow
            return
        self._leaf(fields, ctype, disp, out)

    def _leaf(self, fields: dict[bytes, bytes], ctype: Field | None, disp: Field | None,
              out: list[PartEvent]) -> None:
        cte = fields.get(b"content-transfer-encoding", b"").strip().lower()
        self._enc = _Enc.BASE64 if cte == b"base64" else _Enc.QP if cte == b"quoted-printable" else _Enc.IDENTITY
        self._b64, self._eol = b"", b""
        self._st = _S.BODY
        name = filename_of(disp, ctype)
        self._file = name is not None
        mtype = ctype.value if ctype is not None else "text/plain"
        self._text = name is None and mtype in _URL_TYPES
        if name is not None:
            self.counters.attachments += 1
            self.attachments.append(name)
            out.append(PartStart(name, ctype.value if ctype is not None else None))

    # -- bodies -------------------------------------------------------------------------------

    def _body(self, line: bytes, out: list[PartEvent], *, partial: bool) -> None:
        if not (self._file or self._text):
            return
        enc = self._enc
        if enc is _Enc.BASE64:
            self._base64(line, out)
            return
        if partial:
            content, eol = line, b""
        else:
            content = line.rstrip(b"\r\n")
            eol = line[len(content):]
        if enc is _Enc.QP:
            stripped = content.rstrip(b" \t") if not partial else content
            soft = not partial and stripped.endswith(b"=")
            content = self._qp(stripped[:-1] if soft else stripped)
            if soft:
                eol = b""
            elif eol:
                eol = b"\r\n"          # a hard line break is CRLF in the decoded text
        data = self._eol + content
        self._eol = eol
        if data:
            self._emit(data, out)

    def _base64(self, chunk: bytes, out: list[PartEvent]) -> None:
        clean = chunk.translate(None, _NOT_B64_OR_PAD)
        garbage = len(chunk.translate(None, _NOT_GARBAGE)) if len(clean) != len(chunk) else 0
        if garbage > 0:
            self.counters.base64_errors += garbage
            if "MIME_INVALID_BASE64" not in self.anomalies:
                self.anomalies.append("MIME_INVALID_BASE64")
        data = self._b64 + clean
        decoded = bytearray()
        while b"=" in data:      # padding ends a quantum; encoders that concatenate restart after it
            head, _, data = data.partition(b"=")
            decoded += _b64(head, pad=True)
            data = data.lstrip(b"=")
        whole = len(data) - len(data) % 4
        decoded += _b64(data[:whole], pad=False)
        self._b64 = data[whole:]
        if decoded:
            self._emit(bytes(decoded), out)

    def _qp(self, text: bytes) -> bytes:
        if b"=" not in text:
            return text
        out = _QP_ESC.sub(lambda m: bytes((int(m.group(1), 16),)), text)
        bad = out.count(b"=") - text.count(b"=3D") - text.count(b"=3d")
        if bad > 0:
            self.counters.qp_errors += bad
            if "MIME_INVALID_QP" not in self.anomalies:
                self.anomalies.append("MIME_INVALID_QP")
        return out

    def _emit(self, data: bytes, out: list[PartEvent]) -> None:
        if self._file:
            out.append(PartData(data))
        else:
            self.urls.feed(data)

    def _end_leaf(self, out: list[PartEvent], complete: bool) -> None:
        if self._text:
            self.urls.finish()
        if self._file:
            if self._enc is _Enc.BASE64 and self._b64:
                tail = _b64(self._b64, pad=True)
                if tail:
                    out.append(PartData(tail))
            out.append(PartEnd(complete=complete))
        self._file = self._text = False
        self._b64, self._eol = b"", b""

    def _limit(self, name: str) -> None:
        self.anomalies.append(name)
        lim = self.counters.limits
        lim[name] = lim.get(name, 0) + 1



def _b64(data: bytes, pad: bool) -> bytes:
    """Whole quanta decode; with `pad`, a 2- or 3-character tail too (a lone
    character carries no full byte and is dropped)."""
    if pad:
        rem = len(data) % 4
        if rem == 1:
            data = data[:-1]
        elif rem:
            data += b"=" * (4 - rem)
    if not data:
        return b""
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return b""
