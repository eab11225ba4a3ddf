"""HTTP content-coding decoders (gzip, deflate, layered), sans-IO and bounded.

`ContentDecoder` undoes a chain of content codings incrementally. It is as
tolerant as browsers and libhtp are, because evasions rely on exactly that:

* "deflate" may be zlib-wrapped or raw, "gzip" may really be either; the
  format is sniffed from the first bytes, not trusted from the header;
* gzip header flags are honoured but CRCs and trailers are never checked;
* a body that does not decode at all is passed through raw (with a
  ``GZIP_DECOMPRESSION_FAILED`` event), which is what browsers show;
* data after the end of a compressed stream is ignored;
* "lzma" (the LZMA-alone format libhtp supports) only when enabled.

Output of every layer is capped (`limit`, ``COMPRESSION_BOMB``). Input is fed
to the inflaters in fixed, stream-aligned blocks so that the output (and the
point where a corrupt stream fails) does not depend on how the caller chunked
the body: fed whole or one byte at a time, the decoded bytes are identical.

`BodyStream` sits on top: it turns one message body into `BodyChunk`s,
applying the decoder and the per-message emission cap.
"""
from __future__ import annotations

import enum
import lzma
import zlib
from typing import TYPE_CHECKING, Callable

from inspection.model import BodyChunk, Direction

if TYPE_CHECKING:
    from typing import TypeAlias
    _Inflater: TypeAlias = zlib._Decompress | lzma.LZMADecompressor   # zlib's class has no public name

BLOCK = 8192                 # inflater input granularity (bytes of compressed input)
_MAX_GZIP_HEADER = 1 << 16   # FEXTRA/FNAME/FCOMMENT beyond this: not gzip
_GZIP_MAGIC = b"\x1f\x8b\x08"

GZIP, DEFLATE, LZMA = "gzip", "deflate", "lzma"

# Modes a layer can decode with, after sniffing.
_M_GZIP, _M_ZLIB, _M_RAW, _M_LZMA = "gzip", "zlib", "raw", "lzma"


def parse_content_encoding(value: bytes | None, max_layers: int) -> tuple[list[str], list[str]]:
    """Codings named by a (merged) Content-Encoding value, in the order applied.

    Unknown tokens ("identity", "foo") are skipped; libhtp-style loose matching
    ("x-gzip", "gzip_x" -> gzip). Returns (codings, events).
    """
    if not value:
        return [], []
    events: list[str] = []
    codings: list[str] = []
    tokens = value.replace(b"\x00", b"").replace(b",", b" ").split()
    for token in tokens:
        t = token.lower()
        if b"gzip" in t:
            coding = GZIP
            if t not in (b"gzip", b"x-gzip"):
                events.append("ABNORMAL_CE_HEADER")
        elif b"deflate" in t:
            coding = DEFLATE
            if t not in (b"deflate", b"x-deflate"):
                events.append("ABNORMAL_CE_HEADER")
        elif t == b"lzma":
            coding = LZMA
        else:
            if t not in (b"identity", b"inflate"):
                events.append("ABNORMAL_CE_HEADER")
            continue
        if len(codings) >= max_layers:
            events.append("TOO_MANY_ENCODING_LAYERS")
            break
        codings.append(coding)
    return codings, events


class _Ls(enum.Enum):
    SNIFF = "sniff"   # collecting the first bytes to tell the format
    RUN = "run"       # inflating
    PASS = "pass"     # not decodable: raw passthrough
    DONE = "done"     # end of stream or cap reached: input ignored


class _Layer:
    """Undoes one content coding; emits bytes for the next layer."""

    __slots__ = ("coding", "limit", "lzma_ok", "events", "_mode", "_inflater", "_held", "_pending",
                 "_block0", "_out", "_state", "_candidates")

    def __init__(self, coding: str, limit: int, lzma_ok: bool, events: list[str]) -> None:
        self.coding = coding
        self.limit = limit
        self.lzma_ok = lzma_ok
        self.events = events
        self._mode = ""
        self._inflater: _Inflater | None = None   # made with each candidate mode
        self._held = bytearray()      # raw input kept until the first block decodes
        self._pending = bytearray()   # compressed input not yet a full block
        self._block0 = True
        self._out = 0
        self._state = _Ls.SNIFF
        self._candidates: list[tuple[str, int]] = []

    def feed(self, data: bytes) -> bytes:
        if self._state is _Ls.PASS:
            return data
        if self._state is _Ls.DONE or not data:
            return b""
        if self._state is _Ls.SNIFF:
            self._held += data
            if not self._sniff(final=False):
                return b""
            return self._run_pending(final=False)
        if self._block0:
            self._held += data
        self._pending += data
        return self._run_pending(final=False)

    def flush(self) -> bytes:
        """The message's framing ended: decode what is held (a short body is
        less than one block), but stay open for bytes that may still join."""
        if self._state is _Ls.SNIFF:
            if not self._held or not self._sniff(final=True):
                return b""
        if self._state in (_Ls.RUN, _Ls.PASS):
            return self._run_pending(final=True)
        return b""

    def finish(self) -> bytes:
        if self._state is _Ls.SNIFF:
            if not self._held:
                self._state = _Ls.DONE
                return b""
            self._sniff(final=True)
        if self._state is _Ls.DONE:
            return b""
        out = self._run_pending(final=True)
        if self._state is _Ls.RUN:
            self._state = _Ls.DONE
        return out

    # -- sniffing -------------------------------------------------------

    def _sniff(self, final: bool) -> bool:
        """Decide the decoding mode from the first bytes; False while undecided."""
        head = bytes(self._held[:3])
        if self.coding == LZMA:
            if not self.lzma_ok:
                return self._passthrough_decided()
            self._candidates = [(_M_LZMA, 0)]
        elif len(head) < 3 and not final:
            return False
        elif head == _GZIP_MAGIC:
            hdr = _gzip_header_len(self._held)
            if hdr is None:
                if not final and len(self._held) < _MAX_GZIP_HEADER:
                    return False
                self._candidates = [(_M_RAW, 0)]
            else:
                self._candidates = [(_M_GZIP, hdr), (_M_RAW, 0)]
        elif _is_zlib_header(head):
            self._candidates = [(_M_ZLIB, 2), (_M_RAW, 0)]
        else:
            self._candidates = [(_M_RAW, 0)]
        self._start_candidate()
        return True

    def _passthrough_decided(self) -> bool:
        self._state = _Ls.PASS
        self._pending = self._held
        self._held = bytearray()
        return True

    def _start_candidate(self) -> None:
        mode, skip = self._candidates.pop(0)
        self._mode = mode
        if mode == _M_LZMA:
            self._inflater = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE, memlimit=16 << 20)
        else:
            self._inflater = zlib.decompressobj(-15)
        self._pending = bytearray(self._held[skip:])
        self._state = _Ls.RUN

    # -- inflating --------------------------------------------------------

    def _run_pending(self, final: bool) -> bytes:
        if self._state is _Ls.PASS:
            data = bytes(self._pending)
            self._pending = bytearray()
            return data
        out: list[bytes] = []
        while self._state is _Ls.RUN and (len(self._pending) >= BLOCK or (final and self._pending)):
            block = bytes(self._pending[:BLOCK])
            del self._pending[:BLOCK]
            produced = self._inflate(block, final and not self._pending)
            if produced is None:                      # decode error
                if self._block0:
                    return b"".join(out) + self._retry_or_pass(final)
                self.events.append("GZIP_DECOMPRESSION_FAILED")
                self._state = _Ls.PASS
                rest = block + bytes(self._pending)
                self._pending = bytearray()
                out.append(rest)
                break
            out.append(produced)
            if self._block0:
                self._block0 = False
                self._held = bytearray()
        return b"".join(out)

    def _inflate(self, block: bytes, last: bool) -> bytes | None:
        inflater: _Inflater = self._inflater  # type: ignore[assignment]  # RUN: a candidate made it
        room = self.limit - self._out
        if room <= 0:
            self._state = _Ls.DONE
            return b""
        try:
            data = inflater.decompress(block, room)
        except (zlib.error, lzma.LZMAError, EOFError):
            return None
        self._out += len(data)
        if inflater.eof:
            self._state = _Ls.DONE
        elif self._out >= self.limit:
            self.events.append("COMPRESSION_BOMB")
            self._state = _Ls.DONE
        return data

    def _retry_or_pass(self, final: bool) -> bytes:
        """The first block failed: try the next sniffed format, else pass raw."""
        self._out = 0
        if self._candidates:
            self._start_candidate()
            return self._run_pending(final)
        self.events.append("GZIP_DECOMPRESSION_FAILED")
        self._state = _Ls.PASS
        data = bytes(self._held)
        self._held = bytearray()
        self._pending = bytearray()
        self._block0 = False
        return data


def _is_zlib_header(head: bytes) -> bool:
    if len(head) < 2:
        return False
    cmf, flg = head[0], head[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0 and not flg & 0x20


def _gzip_header_len(buf: bytes | bytearray) -> int | None:
    """Length of a gzip member header at the start of `buf`; None if incomplete."""
    n = len(buf)
    if n < 10:
        return None
    flags = buf[3]
    pos = 10
    if flags & 0x04:                      # FEXTRA
        if n < pos + 2:
            return None
        pos += 2 + (buf[pos] | buf[pos + 1] << 8)
    for bit in (0x08, 0x10):              # FNAME, FCOMMENT: NUL-terminated
        if flags & bit:
            end = buf.find(b"\x00", pos)
            if end < 0:
                return None
            pos = end + 1
    if flags & 0x02:                      # FHCRC
        pos += 2
    return pos if pos <= n else None


class ContentDecoder:
    """A chain of content-coding layers (outermost coding is undone first).

    `feed` and `finish` return decoded bytes; `events` collects event names
    (drain it after each call). `limit` caps the output of every layer.
    """

    __slots__ = ("events", "_layers")

    def __init__(self, codings: list[str], *, limit: int, lzma_ok: bool = False) -> None:
        self.events: list[str] = []
        # Codings are listed in the order applied; decoding runs in reverse.
        self._layers = [_Layer(c, limit, lzma_ok, self.events) for c in reversed(codings)]

    def feed(self, data: bytes) -> bytes:
        for layer in self._layers:
            if not data:
                return b""
            data = layer.feed(data)
        return data

    def finish(self) -> bytes:
        return self._drain(end=True)

    def flush(self) -> bytes:
        """Decode everything held so far without ending the stream (see `_Layer.flush`)."""
        return self._drain(end=False)

    def _drain(self, *, end: bool) -> bytes:
        out = b""
        for layer in self._layers:
            produced = layer.feed(out) if out else b""
            out = produced + (layer.finish() if end else layer.flush())
        return out


class BodyStream:
    """Streams one message body out as `BodyChunk`s: decode, cap, count.

    `data` takes transfer-decoded (de-chunked) bytes; content codings are
    undone here and at most `room` decoded bytes are emitted, the rest only
    sets `truncated`. `on_event(name)` receives decoder event names.
    """

    __slots__ = ("tx_id", "direction", "filename", "room", "codings", "decoder", "opened", "truncated",
                 "broken", "dlimit", "lzma_ok", "on_event", "headers_seen", "method", "content_type", "app_proto",
                 "length")

    def __init__(self, tx_id: int, direction: Direction, filename: str | None, room: int,
                 codings: list[str], *, dlimit: int, lzma_ok: bool, on_event: Callable[[str], None],
                 method: str | None = None, content_type: str | None = None, app_proto: str = "http",
                 length: int | None = None) -> None:
        self.tx_id, self.direction, self.filename, self.room = tx_id, direction, filename, room
        self.length = length       # announced by Content-Length, identity coding only (BodyChunk.length)
        self.app_proto = app_proto   # "http2" for HTTP/2 streams (fileinfo's app_proto)
        self.method, self.content_type = method, content_type
        self.codings, self.dlimit, self.lzma_ok, self.on_event = codings, dlimit, lzma_ok, on_event
        self.decoder: ContentDecoder | None = None
        self.opened = self.truncated = self.broken = False
        self.headers_seen = False   # codings were taken from the message's headers

    def set_codings(self, codings: list[str]) -> None:
        """Codings learnt late (junk before the headers was passed on raw)."""
        if self.decoder is None and not self.codings:
            self.codings = codings

    def data(self, raw: bytes, out: list) -> None:
        if self.broken or self.room <= 0:
            self.truncated = True
            return
        if self.codings:
            if self.decoder is None:
                self.decoder = ContentDecoder(self.codings, limit=self.dlimit, lzma_ok=self.lzma_ok)
            raw = self.decoder.feed(raw)
            self._drain()
        self._emit(raw, out)

    def gap(self, out: list, length: int = 0) -> None:
        """Bytes are missing: a compressed stream cannot go on, a plain one can
        (a gap chunk tells file tracking how many bytes went missing)."""
        self.truncated = self.opened = True
        if self.decoder is not None:
            self._emit(self.decoder.finish(), out)
            self._drain()
            self.decoder = None
            self.broken = True
        elif length > 0 and not self.broken and self.room > 0:
            out.append(BodyChunk(self.app_proto, self.tx_id, self.direction, b"", False, False, self.filename, length,
                                 self.method, self.content_type))

    def flush(self, out: list) -> None:
        """The framed body is complete: pass on what the decoders hold, so
        the decoded bytes come before the transaction is logged."""
        if self.decoder is not None and not self.broken:
            self._emit(self.decoder.flush(), out)
            self._drain()

    def finish(self, out: list, truncated: bool = False) -> None:
        """End of the body: flush the decoders and close the chunk stream."""
        if self.decoder is not None and not self.broken:
            self._emit(self.decoder.finish(), out)
            self._drain()
        self.decoder = None
        self.truncated |= truncated
        if self.opened:
            out.append(BodyChunk(self.app_proto, self.tx_id, self.direction, b"", True, self.truncated, self.filename, 0,
                                 self.method, self.content_type))
        self.opened = False
        self.broken = True
        self.room = 0

    def _drain(self) -> None:
        if self.decoder is not None and self.decoder.events:
            for name in self.decoder.events:
                self.on_event(name)
            self.decoder.events.clear()

    def _emit(self, data: bytes, out: list) -> None:
        if not data:
            return
        if len(data) > self.room:
            data = data[: self.room]
            self.truncated = True
            if not data:
                return
        self.room -= len(data)
        self.opened = True
        out.append(BodyChunk(self.app_proto, self.tx_id, self.direction, data, False, False, self.filename, 0,
                             self.method, self.content_type, self.length))
