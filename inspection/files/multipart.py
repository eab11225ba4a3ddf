"""multipart/form-data bodies split into their parts, incrementally (sans-IO).

An upload form sends each file as one part of the request body; the parts
are what a user uploaded, so each part with a filename is a file of its own
(Suricata does the same; parts without a filename are form fields).

`MultipartSplitter.feed` takes body bytes as they come and returns
`PartStart` / `PartData` / `PartEnd` events; the result does not depend on
how the body was cut. Buffers are bounded: part data is passed on at once
except for a tail as long as the delimiter, and a part's header block may
not exceed `max_header` bytes (``MULTIPART_INVALID_HEADER``; the part is
skipped). Line ends may be CRLF or bare LF, as libhtp allows.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from inspection.applayer.http_headers import content_disposition_filename

__all__ = ["PartData", "PartEnd", "PartStart", "MultipartSplitter", "multipart_boundary"]

_MAX_BOUNDARY = 200
_BOUNDARY = re.compile(rb"""boundary\s*=\s*(?:"([^"]*)"|([^;,\s]*))""", re.I)


def multipart_boundary(content_type: bytes | str | None) -> bytes | None:
    """The boundary of a multipart/form-data Content-Type value, else None."""
    if not content_type:
        return None
    ct = content_type.encode("latin-1") if isinstance(content_type, str) else content_type
    if not ct.strip().lower().startswith(b"multipart/form-data"):
        return None
    m = _BOUNDARY.search(ct)
    if m is None:
        return None
    b = m.group(1) if m.group(1) is not None else m.group(2)
    return b if 0 < len(b) <= _MAX_BOUNDARY else None


@dataclass(frozen=True, slots=True)
class PartStart:
    filename: str | None      # None: a form field, not a file
    content_type: str | None


@dataclass(frozen=True, slots=True)
class PartData:
    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    complete: bool            # False: the body ended before the part's closing delimiter


PartEvent = PartStart | PartData | PartEnd


class _S(enum.Enum):
    PREAMBLE = "preamble"     # before the first delimiter
    AFTER_DELIM = "after"     # just past a delimiter: "--" closes, else the line ends
    HEADERS = "headers"
    DATA = "data"
    SKIP = "skip"             # a part whose header block was too long: data ignored
    EPILOGUE = "epilogue"


class MultipartSplitter:
    """Splits one multipart/form-data body (see the module docstring)."""

    __slots__ = ("_delim", "_buf", "_st", "_lines", "_head_len", "_max_header", "_first", "anomalies")

    def __init__(self, boundary: bytes, max_header: int = 8 << 10) -> None:
        self._delim = b"--" + boundary
        self._buf = bytearray()
        self._st = _S.PREAMBLE
        self._lines: list[bytes] = []
        self._head_len = 0
        self._max_header = max_header
        self._first = True           # nothing read yet: a delimiter may start the body without a line end
        self.anomalies: list[str] = []   # event names, drained by the caller

    def feed(self, data: bytes) -> list[PartEvent]:
        out: list[PartEvent] = []
        if self._st is _S.EPILOGUE or not data:
            return out
        self._buf += data
        while self._step(out):
            pass
        return out

    def finish(self) -> list[PartEvent]:
        """End of the body: a part still open ends incomplete."""
        out: list[PartEvent] = []
        if self._st in (_S.DATA, _S.SKIP):
            if self._st is _S.DATA and self._buf:
                out.append(PartData(bytes(self._buf)))
            out.append(PartEnd(complete=False))
            self.anomalies.append("MULTIPART_NO_FILEDATA")
        elif self._st is _S.HEADERS:
            self.anomalies.append("MULTIPART_INVALID_HEADER")
        self._buf = bytearray()
        self._st = _S.EPILOGUE
        return out

    # -- states -----------------------------------------------------------------

    def _step(self, out: list[PartEvent]) -> bool:
        st = self._st
        if st is _S.PREAMBLE:
            return self._preamble()
        if st is _S.AFTER_DELIM:
            return self._after_delim()
        if st is _S.HEADERS:
            return self._headers(out)
        if st in (_S.DATA, _S.SKIP):
            return self._data(out)
        self._buf = bytearray()
        return False

    def _preamble(self) -> bool:
        buf, delim = self._buf, self._delim
        if self._first:
            if len(buf) < len(delim) and delim.startswith(bytes(buf)):
                return False
            self._first = False
            if buf.startswith(delim):
                del buf[: len(delim)]
                self._st = _S.AFTER_DELIM
                return True
        i = buf.find(b"\n" + delim)
        if i < 0:
            keep = len(delim)
            if len(buf) > keep:
                del buf[: len(buf) - keep]
            return False
        del buf[: i + 1 + len(delim)]
        self._st = _S.AFTER_DELIM
        return True

    def _after_delim(self) -> bool:
        buf = self._buf
        if len(buf) < 2:
            return False
        if buf.startswith(b"--"):
            self._st = _S.EPILOGUE
            self._buf = bytearray()
            return False
        lf = buf.find(b"\n")
        if lf < 0:
            if len(buf) > self._max_header:
                self.anomalies.append("MULTIPART_INVALID_HEADER")
                self._buf = bytearray()
                self._st = _S.PREAMBLE
            return False
        del buf[: lf + 1]     # transport padding after the delimiter
        self._st, self._lines, self._head_len = _S.HEADERS, [], 0
        return True

    def _headers(self, out: list[PartEvent]) -> bool:
        buf = self._buf
        while True:
            lf = buf.find(b"\n")
            # the header block may not pass `max_header`, however the bytes arrive: the
            # test is made before a line is taken, on the whole line or what is here of it
            if self._head_len + (lf + 1 if lf >= 0 else len(buf)) > self._max_header:
                self._overflow(out)
                return True
            if lf < 0:
                return False
            line = bytes(buf[:lf]).rstrip(b"\r")
            del buf[: lf + 1]
            self._head_len += lf + 1
            if not line:
                out.append(self._part_start())
                self._st = _S.DATA
                return True
            if line[:1] in b" \t" and self._lines:
                self._lines[-1] += b" " + line.strip()
            else:
                self._lines.append(line)

    def _overflow(self, out: list[PartEvent]) -> None:
        """Too long a header block: the part's data is skipped up to the next delimiter,
        which may be the very line that did not fit (the buffer is at a line start)."""
        self.anomalies.append("MULTIPART_INVALID_HEADER")
        self._buf[:0] = b"\n"
        self._lines = []
        self._st = _S.SKIP
        out.append(PartStart(None, None))

    def _part_start(self) -> PartStart:
        filename = ctype = None
        for line in self._lines:
            name, sep, value = line.partition(b":")
            if not sep:
                self.anomalies.append("MULTIPART_INVALID_HEADER")
                continue
            key = name.strip().lower()
            if key == b"content-disposition":
                fn = content_disposition_filename(value)
                if fn is not None:
                    filename = fn.decode("latin-1")
            elif key == b"content-type":
                ctype = value.strip().decode("latin-1")
        self._lines = []
        return PartStart(filename, ctype)

    def _data(self, out: list[PartEvent]) -> bool:
        buf, delim = self._buf, self._delim
        i = buf.find(b"\n" + delim)
        if i < 0:
            keep = len(delim) + 2     # a delimiter may be arriving, with its CRLF before it
            if len(buf) > keep:
                n = len(buf) - keep
                if self._st is _S.DATA:
                    out.append(PartData(bytes(buf[:n])))
                del buf[:n]
            return False
        end = i - 1 if i > 0 and buf[i - 1] == 0x0D else i
        if self._st is _S.DATA and end > 0:
            out.append(PartData(bytes(buf[:end])))
        out.append(PartEnd(complete=True))
        del buf[: i + 1 + len(delim)]
        self._st = _S.AFTER_DELIM
        return True
