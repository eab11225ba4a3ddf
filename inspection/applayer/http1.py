"""HTTP/1.x application parser: a sans-IO state machine per direction.

`Http1Parser` gets the in-order stream bytes of one flow and returns
`HttpTransaction` records (one per request/response pair), `BodyChunk`s of
de-chunked, content-decoded bodies, and `Anomaly` events named after
libhtp/Suricata's HTTP events. It never raises on traffic and gives the same
results whether data arrives whole or one byte at a time: a decision that
depends on bytes not seen yet waits for them (or for `close`).

Lenient where browsers and libhtp are (that is what evasions target): bare LF
and lone CR line ends in responses, header folding, junk around status lines,
loose Transfer-Encoding/Content-Encoding matching, HTTP/0.9. As in libhtp,
bytes after a finished message that do not start a new one (a status line
"http...", a request line with a known method) still belong to that message's
body; so a transaction is emitted when the next response starts, at a gap, or
at `close`, not the moment its body ends.

Bounded: head sections by ``max_header_bytes``, emitted body bytes per message
by ``body_limit``, decompressed bytes by ``decompress_limit``, open
transactions by `MAX_PENDING_TX`; bodies are streamed, never buffered whole,
and every rescan of a growing buffer resumes where the last one stopped.
"""
from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from inspection.applayer import http_headers as hh
from inspection.applayer.http_decode import BodyStream, parse_content_encoding
from inspection.model import Anomaly, AnomalyKind, AppOutput, Direction

__all__ = ["Http1Parser", "HttpTransaction", "probe_http"]

APP = "http"
_TS, _TC = Direction.TO_SERVER, Direction.TO_CLIENT
MAX_PENDING_TX = 512          # open transactions before the oldest idle one is flushed early
MAX_AWAITING = 1 << 16        # flushed requests still holding their place in the response order
_JUNK_BEFORE_STATUS = 4096    # junk before a status line after which it is a headerless body
_MAX_CHUNK_LINE = 1024
_HTTP09_MAX_JUNK = 16         # libhtp: whitespace allowed after a protocol-less request line
_NON_WS = re.compile(rb"[^ \t\r\n\x0b\x0c]")
_EOL = re.compile(rb"[\r\n]")
_RESYNC = {
    _TS: re.compile(rb"\n(?=[ \t]*(?:" + b"|".join(re.escape(m) for m in sorted(hh.KNOWN_METHODS)) + rb")[ \t])"),
    _TC: re.compile(rb"\n(?=[ \t]*HTTP/)", re.I),
}


def _s(b: bytes | None) -> str | None:
    return None if b is None else b.decode("latin-1")


@dataclass(frozen=True, slots=True)
class HttpTransaction:
    """One HTTP request/response pair, as logged in EVE "http" events.

    Strings are the wire bytes decoded as latin-1. `uri` is the raw
    request-target, `normalized_uri` its libhtp-style normalisation (path
    percent-decoded, dot segments removed, query kept). `response_length` is
    Suricata's ``http.length``: response body bytes on the wire (chunk framing
    included, before decompression); `response_body_len` excludes framing.
    `complete` is False for a transaction flushed unfinished (gap, close).
    """

    event_type: ClassVar[str] = "http"
    tx_id: int
    direction: Direction = Direction.TO_SERVER
    method: str | None = None
    uri: str | None = None
    normalized_uri: str | None = None
    protocol: str | None = None
    request_line: str | None = None
    host: str | None = None
    port: int | None = None
    user_agent: str | None = None
    referer: str | None = None
    xff: str | None = None
    request_headers: tuple[tuple[str, str], ...] = ()
    request_body_len: int = 0
    request_body_truncated: bool = False
    status: int | None = None
    response_protocol: str | None = None
    response_line: str | None = None
    content_type: str | None = None
    redirect: str | None = None
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body_len: int = 0
    response_length: int = 0
    response_body_truncated: bool = False
    http09: bool = False
    request_seen: bool = True
    response_seen: bool = False
    complete: bool = True


# Shared, read-only stand-ins for the header structures of a logged transaction.
_NO_FIELDS: tuple[tuple[bytes, bytes], ...] = ()
_NO_MAP = MappingProxyType({})


class _Tx:
    """Mutable transaction under construction."""

    __slots__ = ("tx_id", "method", "uri", "protocol", "request_line", "req_fields", "req_map", "host", "port",
                 "norm_uri", "is09", "req_done", "req_complete", "req_body_len", "req_truncated", "expect_continue",
                 "resp_seen", "status", "resp_protocol", "response_line", "resp_fields", "resp_map", "resp_done",
                 "resp_complete", "resp_body_len", "resp_message_len", "resp_truncated", "events", "emitted",
                 "request_seen")

    def __init__(self, tx_id: int) -> None:
        self.tx_id = tx_id
        self.method = self.uri = self.protocol = self.request_line = self.host = self.norm_uri = None
        self.resp_protocol = self.response_line = None
        self.port: int | None = None
        self.status: int | None = None
        self.req_fields: list[tuple[bytes, bytes]] = []
        self.resp_fields: list[tuple[bytes, bytes]] = []
        self.req_map: dict[bytes, list[bytes]] = {}
        self.resp_map: dict[bytes, list[bytes]] = {}
        self.is09 = self.req_done = self.req_complete = self.req_truncated = self.expect_continue = False
        self.resp_seen = self.resp_done = self.resp_complete = self.resp_truncated = self.emitted = False
        self.request_seen = True
        self.req_body_len = self.resp_body_len = self.resp_message_len = 0
        self.events: set[str] | None = None   # anomaly names already raised (created on first)

    def filename(self, response: bool) -> str | None:
        cd = (self.resp_map if response else self.req_map).get(b"content-disposition")
        name = hh.content_disposition_filename(cd[0]) if cd else None
        if name is None and self.norm_uri is not None:
            name = self.norm_uri.partition(b"?")[0] or None
        return _s(name)

    def record(self) -> HttpTransaction:
        req, resp = self.req_map, self.resp_map
        ua, ref, xff = req.get(b"user-agent"), req.get(b"referer"), req.get(b"x-forwarded-for")
        ctype, loc = resp.get(b"content-type"), resp.get(b"location")
        return HttpTransaction(
            tx_id=self.tx_id, method=_s(self.method), uri=_s(self.uri), normalized_uri=_s(self.norm_uri),
            protocol=_s(self.protocol), request_line=_s(self.request_line), host=_s(self.host), port=self.port,
            user_agent=_s(ua[0]) if ua else None, referer=_s(ref[0]) if ref else None,
            xff=_s(xff[0]) if xff else None,
            request_headers=tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in self.req_fields),
            request_body_len=self.req_body_len, request_body_truncated=self.req_truncated,
            status=self.status, response_protocol=_s(self.resp_protocol), response_line=_s(self.response_line),
            content_type=_s(ctype[0].split(b";", 1)[0].strip()) if ctype else None,
            redirect=_s(loc[0]) if loc else None,
            response_headers=tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in self.resp_fields),
            response_body_len=self.resp_body_len, response_length=self.resp_message_len,
            response_body_truncated=self.resp_truncated, http09=self.is09, request_seen=self.request_seen,
            response_seen=self.resp_seen, complete=self.req_complete and self.resp_complete,
        )


def probe_http(data: bytes, direction: Direction) -> bool | None:
    """Does a stream starting with `data` look like HTTP/1.x? None: too few bytes to tell."""
    start = _NON_WS.search(data)
    if start is None:
        return None if len(data) < 64 else False
    pos = start.start()
    if direction is _TS:
        return hh.looks_like_request_line(data, pos, final=False)
    head = data[pos : pos + 5].upper()
    if head == b"HTTP/":
        return True
    return None if b"HTTP/".startswith(head) else False


class _St(enum.IntEnum):  # IntEnum: hashed in C, these are dict keys on the hot path
    LINE = enum.auto()          # waiting for a request/status line
    HEADERS = enum.auto()
    TRAILERS = enum.auto()
    BODY_CL = enum.auto()
    CHUNK_SIZE = enum.auto()
    CHUNK_DATA = enum.auto()
    CHUNK_END = enum.auto()
    BODY_CLOSE = enum.auto()    # response body delimited by the end of the stream
    AFTER = enum.auto()         # message over; stray lines still join its body (libhtp)
    AWAIT_09 = enum.auto()      # protocol-less request line: HTTP/0.9 or missing protocol?
    WAIT_CONNECT = enum.auto()  # request data held until the CONNECT is answered
    DESYNC = enum.auto()        # after a gap: looking for the next start line
    TUNNEL = enum.auto()        # CONNECT/Upgrade succeeded: not HTTP any more
    DEAD = enum.auto()          # gave up on this direction (limit exceeded)


_BODY = frozenset({_St.BODY_CL, _St.CHUNK_SIZE, _St.CHUNK_DATA, _St.CHUNK_END, _St.TRAILERS, _St.BODY_CLOSE})
_ESCAPES = {_St.LINE, _St.DESYNC, _St.DEAD, _St.TUNNEL, _St.WAIT_CONNECT}
# Allowed transitions; anything else is a parser bug, reported as PARSER_STATE_ERROR.
_NEXT: dict[_St, set[_St]] = {
    _St.LINE: {_St.HEADERS, _St.AWAIT_09, _St.BODY_CLOSE} | _ESCAPES,
    _St.HEADERS: set(_BODY) | {_St.AFTER} | _ESCAPES,
    _St.TRAILERS: {_St.AFTER} | _ESCAPES,
    _St.BODY_CL: {_St.AFTER} | _ESCAPES,
    _St.CHUNK_SIZE: {_St.CHUNK_DATA, _St.TRAILERS, _St.BODY_CLOSE} | _ESCAPES,
    _St.CHUNK_DATA: {_St.CHUNK_END} | _ESCAPES,
    _St.CHUNK_END: {_St.CHUNK_SIZE} | _ESCAPES,
    _St.BODY_CLOSE: _ESCAPES,
    _St.AFTER: _ESCAPES,
    _St.AWAIT_09: {_St.HEADERS} | _ESCAPES,
    _St.WAIT_CONNECT: _ESCAPES,
    _St.DESYNC: _ESCAPES,
    _St.TUNNEL: set(),
    _St.DEAD: {_St.TUNNEL},
}


class _Side:
    """Parse state of one direction."""

    __slots__ = ("d", "st", "buf", "pos", "scan", "crs", "fast", "tx", "lines", "head_len", "remaining", "body",
                 "junk", "bol", "in_junk_line")

    def __init__(self, d: Direction) -> None:
        self.d = d
        self.st = _St.LINE
        self.buf = bytearray()
        self.pos = 0
        self.scan = 0          # no line end in buf[pos:scan] (keeps line search linear)
        self.crs = 0           # request side: CRs ending buf[:scan], maybe the coming line end
        self.fast = True       # the one-shot fast head split may still be tried
        self.tx: _Tx | None = None
        self.lines: list[bytes] | tuple[()] = ()
        self.head_len = self.remaining = self.junk = 0
        self.body: BodyStream | None = None
        self.bol = True
        self.in_junk_line = False


@dataclass(frozen=True, slots=True)
class _Limits:
    body: int
    decompress: int
    header: int
    layers: int
    lzma: bool
    server_port: int | None


@functools.lru_cache(maxsize=64)
def _limits(*args: object) -> _Limits:
    """One shared (frozen) limits object per configuration, not one per flow."""
    return _Limits(*args)  # type: ignore[arg-type]


class Http1Parser:
    """HTTP/1.x parser bound to one TCP flow (see the module docstring).

    After a successful CONNECT or a 101 Upgrade `tunnel` is True and the rest
    of the flow is ignored (a caller may probe it for a new protocol).
    """

    app_proto: ClassVar[str] = APP

    def __init__(self, *, body_limit: int = 1 << 20, decompress_limit: int = 16 << 20,
                 max_header_bytes: int = 64 << 10, max_encoding_layers: int = 3, lzma: bool = False,
                 server_port: int | None = None) -> None:
        self._lim = _limits(max(0, body_limit), max(1, decompress_limit), max(256, max_header_bytes),
                            max(1, max_encoding_layers), lzma, server_port)
        self._sides = (_Side(_TS), _Side(_TC))   # indexed by Direction
        self._txs: list[_Tx] = []             # not yet emitted, in order
        self._awaiting: list[_Tx] = []  # requests whose response has not started (short: a list, not a deque)
        self._next_id = 0
        self._out: list[AppOutput] = []
        self._closed = False
        self.tunnel = False
        self.tunnel_data: list[tuple[Direction, bytes]] | tuple = ()   # bytes after the tunnel opened

    # -- public API ---------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]:
        side = self._sides[Direction(direction)]
        if self._closed or not data or side.st in (_St.TUNNEL, _St.DEAD):
            return []
        side.buf += data
        self._run(side, final=False)
        return self._take()

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]:
        side = self._sides[Direction(direction)]
        if self._closed or length <= 0 or side.st in (_St.TUNNEL, _St.DEAD):
            return []
        self._gap(side, length)
        self._run(side, final=False)
        return self._take()

    def close(self, ts: float) -> list[AppOutput]:
        if self._closed:
            return []
        for side in self._sides:
            if side.st is _St.AWAIT_09:
                self._become_09(side)
            if side.st not in (_St.TUNNEL, _St.DEAD):
                self._run(side, final=True)
            self._close_side(side)
        for tx in list(self._txs):
            self._emit(tx, force=True)
        self._closed = True
        return self._take()

    def end_of_stream(self, direction: Direction, ts: float) -> list[AppOutput]:
        """The connection closed in `direction` (FIN acknowledged): a body
        delimited by the close ends here, so its transaction can be logged now
        rather than when the flow times out."""
        if self._closed:
            return []
        side = self._sides[Direction(direction)]
        if side.st is _St.AWAIT_09:
            self._become_09(side)
        if side.st not in (_St.TUNNEL, _St.DEAD):
            self._run(side, final=True)
            self._close_side(side)
        return self._take()

    # -- plumbing ---------------------------------------------------------

    def _take(self) -> list[AppOutput]:
        out, self._out = self._out, []
        return out

    def _event(self, tx: _Tx | None, d: Direction, name: str) -> None:
        if tx is not None:
            if tx.events is None:
                tx.events = {name}
            elif name in tx.events:
                return
            else:
                tx.events.add(name)
        self._out.append(Anomaly(AnomalyKind.APPLAYER, name, APP, d, None if tx is None else tx.tx_id))

    def _goto(self, side: _Side, st: _St) -> None:
        if st is not side.st and st not in _NEXT[side.st]:
            self._event(side.tx, side.d, "PARSER_STATE_ERROR")
            st = _St.DEAD
        side.st = st
        if st is _St.AFTER and side.d is _TC and side.tx is not None:
            self._log_when_complete(side.tx)

    def _log_when_complete(self, tx: _Tx) -> None:
        """The response is over: log the transaction now, as Suricata does, if
        its request is over too. Stray lines may still join the response body
        (libhtp), so the body stream stays open until the next message."""
        req = self._sides[_TS]
        if tx.emitted or not (tx.req_done or (req.tx is tx and req.st is _St.AFTER)):
            return
        tx.emitted = True
        if not tx.req_done:
            tx.req_complete = True
        tx.resp_complete = True
        for side in self._sides:
            if side.tx is tx and side.body is not None:
                if side.d is _TS:
                    tx.req_truncated |= side.body.truncated
                else:
                    tx.resp_truncated |= side.body.truncated
        if tx in self._awaiting:
            self._awaiting.remove(tx)
        self._txs.remove(tx)
        self._out.append(tx.record())
        # The record holds what was learned; an idle keep-alive connection
        # should not keep the header structures alive until its next request.
        tx.req_fields = tx.resp_fields = _NO_FIELDS
        tx.req_map = tx.resp_map = _NO_MAP

    def _run(self, side: _Side, final: bool) -> None:
        handlers = _HANDLERS
        while True:
            handler = handlers.get(side.st)
            if handler is None or not handler(self, side, final):
                break
        if side.pos:
            del side.buf[: side.pos]
            side.scan = max(0, side.scan - side.pos)
            side.pos = 0

    def _new_tx(self) -> _Tx:
        if len(self._txs) >= MAX_PENDING_TX:   # flush the oldest one no side is working on
            busy = {side.tx for side in self._sides}
            oldest = next((tx for tx in self._txs if tx not in busy), None)
            if oldest is not None:
                self._emit(oldest, force=True, keep_slot=True)
        tx = _Tx(self._next_id)
        self._next_id += 1
        self._txs.append(tx)
        return tx

    def _emit(self, tx: _Tx, force: bool = False, keep_slot: bool = False) -> None:
        """Output the record of `tx` once both sides are done (or when forced).

        `keep_slot`: a request flushed before its response keeps its place in
        the response order, so later responses still pair with their requests.
        """
        if tx.emitted or not (force or (tx.req_done and tx.resp_done)):
            return
        tx.emitted = True
        if not keep_slot and tx in self._awaiting:
            self._awaiting.remove(tx)
        while len(self._awaiting) > MAX_AWAITING:
            self._awaiting.pop(0)
        self._txs.remove(tx)
        for side in self._sides:
            if side.tx is tx:
                self._end_body(side, truncated=True)
        self._out.append(tx.record())

    def _need_more(self, side: _Side, resume: int) -> None:
        """A line is incomplete: remember how far it was searched (and its trailing CRs)."""
        if side.d is _TS:
            start = max(side.pos, side.scan)
            if side.scan <= side.pos:
                side.crs = 0
            new = side.buf[start:resume]
            k = len(new) - len(new.rstrip(b"\r"))
            side.crs = side.crs + k if k == len(new) else k
        side.scan = resume

    def _too_long(self, side: _Side, partial: bool = True) -> bool:
        """Head bytes so far (plus the content of the unterminated line being read) over the cap?"""
        if side.head_len + (max(0, side.scan - side.pos - side.crs) if partial else 0) <= self._lim.header:
            return False
        self._event(side.tx, side.d, "REQUEST_FIELD_TOO_LONG" if side.d is _TS else "RESPONSE_FIELD_TOO_LONG")
        self._abort(side)
        self._goto(side, _St.DEAD)
        side.buf.clear()
        side.pos = side.scan = 0
        return True

    # -- start lines ------------------------------------------------------

    def _line(self, side: _Side, final: bool) -> bool:
        return self._request_line(side, final) if side.d is _TS else self._status_line(side, final)

    def _request_line(self, side: _Side, final: bool) -> bool:
        buf = side.buf
        while side.pos < len(buf):
            pos = side.pos
            checked = max(pos, side.scan)   # bytes before this were seen blank already
            end, nxt = hh.next_line(buf, pos, False, final, side.scan)
            if end == hh.NEED_MORE:
                self._need_more(side, nxt)
                if side.tx is None and _NON_WS.search(buf, checked):
                    side.tx = self._start_request()   # a response may match it before the line ends
                self._too_long(side)
                return False
            line = bytes(buf[pos:end])
            side.pos = nxt
            if hh.is_blank(line):
                continue
            tx = side.tx = side.tx or self._start_request()
            side.head_len, side.lines, side.fast = nxt - pos, (), True
            method, uri, proto, events = hh.split_request_line(line)
            tx.request_line, tx.method, tx.uri, tx.protocol = line, method, uri, proto
            for name in events:
                self._event(tx, _TS, name)
            if self._too_long(side, partial=False):
                return False
            if uri is None or proto is None:
                self._goto(side, _St.AWAIT_09)
            else:
                if hh.parse_protocol(proto) is None:
                    self._event(tx, _TS, "REQUEST_LINE_INVALID")
                self._goto(side, _St.HEADERS)
            return True
        return False

    def _start_request(self) -> _Tx:
        tx = self._new_tx()
        self._awaiting.append(tx)
        return tx

    def _await_09(self, side: _Side, final: bool) -> bool:
        if _NON_WS.search(side.buf, side.pos) or len(side.buf) - side.pos > _HTTP09_MAX_JUNK:
            self._event(side.tx, _TS, "REQUEST_LINE_MISSING_PROTOCOL")
            self._goto(side, _St.HEADERS)
            return True
        if final:
            self._become_09(side)
            return True
        return False

    def _become_09(self, side: _Side) -> None:
        tx = side.tx
        if tx is not None:
            tx.is09, tx.protocol = True, None
        self._finish(side, complete=True)

    def _status_line(self, side: _Side, final: bool) -> bool:
        buf = side.buf
        while side.pos < len(buf):
            if side.tx is None and self._awaiting:
                nxt_tx, req = self._awaiting[0], self._sides[_TS]
                if nxt_tx.is09 or (req.tx is nxt_tx and req.st is _St.AWAIT_09):
                    self._bind_response(side)
            if side.tx is not None and side.tx.is09:
                self._goto(side, _St.BODY_CLOSE)   # an HTTP/0.9 response is all body
                return True
            pos = side.pos
            if side.in_junk_line:
                # The rest of a line already known to be junk: up to its end of line.
                m = _EOL.search(buf, pos)
                side.in_junk_line = m is None
                if self._junk(side, len(buf) if m is None else m.start()):
                    return True
                continue
            end, nxt = hh.next_line(buf, pos, True, final, side.scan)
            if end == hh.NEED_MORE:
                self._need_more(side, nxt)
                if hh.looks_like_status_line(buf, pos, final) is False and _NON_WS.search(buf, pos, pos + 80):
                    side.in_junk_line = True
                    continue
                self._too_long(side)
                return False
            line = bytes(buf[pos:end])
            if hh.is_blank(line):
                if side.junk and self._junk(side, nxt):    # inside junk: keep every byte
                    return True
                side.pos = nxt
                continue
            tx = side.tx or self._bind_response(side)
            if tx.is09:
                continue
            if not hh.looks_like_status_line(line, 0, True):
                if self._junk(side, nxt):
                    return True
                continue
            side.head_len, side.lines, side.fast = nxt - side.pos, (), True
            side.pos = nxt
            if self._too_long(side, partial=False):
                return False
            proto, status, _msg = hh.split_status_line(line)
            tx.response_line, tx.resp_protocol, tx.status = line, proto, hh.parse_status(status)
            if hh.parse_protocol(proto) is None:
                self._event(tx, _TC, "RESPONSE_INVALID_PROTOCOL")
            if tx.status is None:
                self._event(tx, _TC, "RESPONSE_INVALID_STATUS")
            self._goto(side, _St.HEADERS)
            return True
        return False

    def _junk(self, side: _Side, end: int) -> bool:
        """Bytes before a status line are body (browsers and libhtp agree). True: state changed."""
        if side.tx is None:
            self._bind_response(side)
        n = end - side.pos
        self._deliver(side, bytes(side.buf[side.pos : end]), identity=True)
        side.pos = end
        side.junk += n
        if side.junk > _JUNK_BEFORE_STATUS:
            side.in_junk_line = False
            self._goto(side, _St.BODY_CLOSE)
            return True
        return False

    def _bind_response(self, side: _Side) -> _Tx:
        req = self._sides[_TS]
        tx = self._awaiting.pop(0) if self._awaiting else None
        if tx is not None and tx.emitted:     # its request was flushed early: answer on a fresh record
            tx = self._new_tx()
            tx.req_done, tx.request_seen = True, False
        elif tx is not None:
            if req.tx is tx and req.st is _St.AWAIT_09:
                self._become_09(req)
            elif tx.method is None:
                self._event(tx, _TS, "REQUEST_LINE_INCOMPLETE")
        else:
            tx = self._new_tx()
            tx.req_done, tx.request_seen = True, False
            self._event(tx, _TC, "UNABLE_TO_MATCH_RESPONSE_TO_REQUEST")
        tx.resp_seen = True
        side.tx, side.junk = tx, 0
        return tx

    # -- header blocks ----------------------------------------------------

    def _head(self, side: _Side, final: bool) -> bool:
        buf, response = side.buf, side.d is _TC
        if side.fast:
            side.fast = False
            if self._head_fast(side):
                return True
        while side.pos < len(buf):
            pos = side.pos
            end, nxt = hh.next_line(buf, pos, response, final, side.scan)
            if end == hh.NEED_MORE:
                self._need_more(side, nxt)
                self._too_long(side)
                return False
            if end == pos:
                side.pos = nxt
                return self._head_done(side)
            line = bytes(buf[pos:end])
            if hh.is_blank(line) and response:
                # A whitespace-only line ends the head unless a header line follows it.
                if nxt >= len(buf) and not final:
                    return False
                follows = True if nxt >= len(buf) or buf[nxt] in b"\r\n \t\x00" \
                    else hh.looks_like_header(buf, nxt, final)
                if follows is None:
                    return False
                side.pos = nxt
                if not follows:
                    return self._head_done(side)
                continue
            if side.lines:
                side.lines.append(line)
            else:
                side.lines = [line]   # allocated only while a head is being read line by line
            side.head_len += nxt - pos
            side.pos = nxt
            if self._too_long(side, partial=False):
                return False
        return False

    def _head_fast(self, side: _Side) -> bool:
        found = hh.plain_head(side.buf, side.pos, self._lim.header - side.head_len)
        if found is None:
            return False
        block, side.pos = found
        return self._head_done(side, block)

    def _head_done(self, side: _Side, block: bytes | None = None) -> bool:
        response, tx = side.d is _TC, side.tx
        assert tx is not None
        self._apply_head(side, tx, block)
        if side.st is _St.TRAILERS:
            self._body_complete(side)
        elif response:
            self._response_headers(side, tx)
        else:
            self._request_headers(side, tx)
        return True

    def _apply_head(self, side: _Side, tx: _Tx, block: bytes | None) -> None:
        """Store the fields of a head (or trailer) block read as `block` or as `side.lines`."""
        response = side.d is _TC
        if block is None:
            fields, events = hh.parse_header_lines(side.lines, response)
            clean = False
        else:
            fields, events, clean = hh.parse_header_block(block, response)
        side.lines = ()
        if side.st is _St.TRAILERS:
            (tx.resp_fields if response else tx.req_fields).extend(fields)
        else:
            fmap, more = hh.merge_fields(fields, response, clean)
            events += more
            if response:
                tx.resp_fields, tx.resp_map = fields, fmap
            else:
                tx.req_fields, tx.req_map = fields, fmap
        for name in events:
            self._event(tx, side.d, name)

    def _framing(self, side: _Side, tx: _Tx, fmap: dict[bytes, list[bytes]]) -> tuple[str, int]:
        kind, length, events = hh.framing(fmap, side.d is _TC)
        for name in events:
            self._event(tx, side.d, name)
        return kind, length

    def _resolve_request(self, tx: _Tx) -> None:
        host, port, events = hh.resolve_host(tx.method, tx.uri, tx.protocol, tx.req_map.get(b"host"),
                                             self._lim.server_port)
        tx.host, tx.port = host, port
        if tx.uri is not None:
            tx.norm_uri, more = hh.normalize_uri(tx.uri)
            events += more
        for name in events:
            self._event(tx, _TS, name)

    def _request_headers(self, side: _Side, tx: _Tx) -> None:
        self._resolve_request(tx)
        tx.expect_continue = any(b"100-continue" in v.lower() for v in tx.req_map.get(b"expect", ()))
        kind, length = self._framing(side, tx, tx.req_map)
        if kind == "length":
            side.remaining = length
            self._goto(side, _St.BODY_CL)
        elif kind == "chunked":
            self._goto(side, _St.CHUNK_SIZE)
        else:
            self._body_complete(side)

    def _response_headers(self, side: _Side, tx: _Tx) -> None:
        status, fmap = tx.status or 0, tx.resp_map
        framed = b"content-length" in fmap or b"transfer-encoding" in fmap
        if (tx.method == b"CONNECT" and 200 <= status < 300) or (status == 101 and not framed):
            self._tunnel(tx)
            return
        if 100 <= status < 200 and status != 101 and not framed:
            tx.resp_fields, tx.resp_map = [], {}   # interim (100 Continue...): the final response follows
            side.junk = side.head_len = 0
            self._goto(side, _St.LINE)
            return
        req = self._sides[_TS]
        if tx.method == b"CONNECT" and req.st is _St.WAIT_CONNECT:
            self._goto(req, _St.LINE)              # refused CONNECT: requests go on
            self._run(req, final=False)
        if 400 <= status < 500 and tx.expect_continue and req.tx is tx and req.st in _BODY \
                and tx.req_body_len == 0:
            self._finish(req, complete=True)   # the client will not send the body
        if tx.method == b"HEAD" or (status in (204, 304) and not hh.te_chunked(fmap)):
            self._goto(side, _St.AFTER)
            return
        kind, length = self._framing(side, tx, fmap)
        if kind == "chunked":
            if (hh.parse_protocol(tx.resp_protocol) or (1, 1)) < (1, 1):
                self._event(tx, _TC, "RESPONSE_CHUNKED_OLD_PROTO")
            self._goto(side, _St.CHUNK_SIZE)
        elif kind == "length":
            side.remaining = length
            self._goto(side, _St.BODY_CL)
        else:
            self._goto(side, _St.AFTER if kind == "none" else _St.BODY_CLOSE)

    def _tunnel(self, tx: _Tx) -> None:
        self.tunnel = True
        tx.req_done = tx.resp_done = tx.resp_complete = True
        for side in self._sides:
            if side.tx is not None and side.tx is not tx:
                self._abort(side)
            if side.pos < len(side.buf):  # the tunnel's first bytes, for whoever parses it next
                self.tunnel_data = [*self.tunnel_data, (side.d, bytes(side.buf[side.pos:]))]
            side.buf.clear()
            side.pos = 0
            side.tx = None
            side.st = _St.TUNNEL
        self._emit(tx)

    # -- bodies -----------------------------------------------------------

    def _body_for(self, side: _Side, tx: _Tx, identity: bool) -> BodyStream:
        body = side.body
        if body is not None and (identity or body.headers_seen):
            return body
        response = side.d is _TC
        codings: list[str] = []
        if not identity:
            ce = (tx.resp_map if response else tx.req_map).get(b"content-encoding")
            if ce:
                codings, events = parse_content_encoding(b", ".join(ce), self._lim.layers)
                for name in events:
                    self._event(tx, side.d, name)
        if body is None:
            body = side.body = BodyStream(tx.tx_id, side.d, tx.filename(response), self._lim.body, codings,
                                          dlimit=self._lim.decompress, lzma_ok=self._lim.lzma,
                                          on_event=lambda name: self._event(tx, side.d, name))
        else:
            body.set_codings(codings)
        body.headers_seen = not identity
        return body

    def _deliver(self, side: _Side, data: bytes, identity: bool = False) -> None:
        tx = side.tx
        assert tx is not None
        if side.d is _TS:
            tx.req_body_len += len(data)
        else:
            tx.resp_body_len += len(data)
            tx.resp_message_len += len(data)
        self._body_for(side, tx, identity).data(data, self._out)

    def _end_body(self, side: _Side, truncated: bool) -> None:
        body, tx = side.body, side.tx
        if body is None or tx is None:
            return
        body.finish(self._out, truncated)
        if side.d is _TS:
            tx.req_truncated |= body.truncated
        else:
            tx.resp_truncated |= body.truncated
        side.body = None

    def _counted(self, side: _Side, final: bool) -> bool:
        """BODY_CL and CHUNK_DATA: pass `remaining` bytes on as body."""
        avail = len(side.buf) - side.pos
        if not avail:
            return False
        n = min(avail, side.remaining)
        self._deliver(side, bytes(side.buf[side.pos : side.pos + n]))
        side.pos += n
        side.remaining -= n
        if side.remaining:
            return False
        self._counted_done(side, side.st)
        return True

    def _counted_done(self, side: _Side, st: _St) -> None:
        if st is _St.BODY_CL:
            self._body_complete(side)
        else:
            self._goto(side, _St.CHUNK_END)

    def _chunk_size(self, side: _Side, final: bool) -> bool:
        buf, pos = side.buf, side.pos
        if pos >= len(buf):
            return False
        lf = buf.find(b"\n", pos, pos + _MAX_CHUNK_LINE)
        nxt = lf + 1
        if lf < 0:
            if hh.chunk_line_invalid_prefix(buf, pos) or len(buf) - pos >= _MAX_CHUNK_LINE:
                return self._bad_chunk(side)
            if not final:
                return False
            lf = nxt = len(buf)
        size = hh.parse_chunk_size(bytes(buf[pos:lf]))
        if size is None:
            return self._bad_chunk(side)
        self._wire(side, nxt - pos)
        side.pos = nxt
        if size == 0:
            side.lines, side.head_len, side.fast = (), 0, True
            self._goto(side, _St.TRAILERS)
        elif size > 0:
            side.remaining = size
            self._goto(side, _St.CHUNK_DATA)
        return True

    def _bad_chunk(self, side: _Side) -> bool:
        if side.d is _TC:
            self._event(side.tx, _TC, "INVALID_RESPONSE_CHUNK_LEN")
            self._goto(side, _St.BODY_CLOSE)     # libhtp: the rest of the stream is the body
        else:
            self._event(side.tx, _TS, "INVALID_REQUEST_CHUNK_LEN")
            self._abort(side)
            side.bol = False
            self._goto(side, _St.DESYNC)
        return True

    def _wire(self, side: _Side, n: int) -> None:
        if side.d is _TC and side.tx is not None:
            side.tx.resp_message_len += n

    def _chunk_end(self, side: _Side, final: bool) -> bool:
        buf, pos = side.buf, side.pos
        if pos >= len(buf):
            return False
        lf = buf.find(b"\n", pos)
        end = len(buf) if lf < 0 else lf + 1
        self._wire(side, end - pos)
        side.pos = end
        if lf < 0:
            return False
        self._goto(side, _St.CHUNK_SIZE)
        return True

    def _body_close(self, side: _Side, final: bool) -> bool:
        if side.pos < len(side.buf):
            self._deliver(side, bytes(side.buf[side.pos :]))
            side.pos = len(side.buf)
        return False

    def _body_complete(self, side: _Side) -> None:
        """The framed body (and any trailers) ended."""
        side.in_junk_line = False
        if side.d is _TS and side.tx is not None and side.tx.method == b"CONNECT":
            self._finish(side, complete=True)
        else:
            self._goto(side, _St.AFTER)

    def _after(self, side: _Side, final: bool) -> bool:
        """Message over; until the next start line, stray lines join its body (libhtp).

        Responses take every line that does not start with "http"; requests
        skip whitespace and take lines not starting with a known method
        (``REQUEST_BODY_UNEXPECTED``).
        """
        buf, request = side.buf, side.d is _TS
        while side.pos < len(buf):
            pos = side.pos
            if not side.in_junk_line:
                if request:
                    m = _NON_WS.search(buf, pos)
                    if m is None:
                        side.pos = len(buf)
                        return False
                    pos = side.pos = m.start()
                    start = hh.looks_like_request_line(buf, pos, final)
                else:
                    start = hh.looks_like_status_line(buf, pos, final)
                if start is None:
                    return False
                if start:
                    self._finish(side, complete=True)
                    return True
                if request:
                    self._event(side.tx, _TS, "REQUEST_BODY_UNEXPECTED")
            lf = buf.find(b"\n", pos)
            end = len(buf) if lf < 0 else lf + 1
            side.in_junk_line = lf < 0
            self._deliver(side, bytes(buf[pos:end]))
            side.pos = end
        return False

    def _finish(self, side: _Side, complete: bool) -> None:
        """The message in progress on `side` is over (`complete` False: cut short)."""
        tx = side.tx
        if tx is None:
            return
        self._end_body(side, truncated=not complete)
        nxt = _St.LINE
        if side.d is _TS:
            tx.req_done, tx.req_complete = True, complete
            if tx.method == b"CONNECT" and not tx.resp_done:
                nxt = _St.WAIT_CONNECT
        else:
            tx.resp_done, tx.resp_complete = True, complete
        side.tx, side.head_len, side.junk, side.in_junk_line = None, 0, 0, False
        if side.st is not _St.DEAD:
            self._goto(side, nxt)
        self._emit(tx)

    def _abort(self, side: _Side) -> None:
        """Give up on the message in progress (gap, limit): it is incomplete."""
        self._finish(side, complete=False)

    def _wait_connect(self, side: _Side, final: bool) -> bool:
        if final or len(side.buf) - side.pos > self._lim.header:
            self._goto(side, _St.LINE)
            return True
        return False

    # -- gaps and the end of the stream ------------------------------------

    def _gap(self, side: _Side, length: int) -> None:
        if side.st is _St.AWAIT_09:
            self._become_09(side)
        st, tx = side.st, side.tx
        if tx is not None and len(side.buf) == side.pos and st in (_St.BODY_CL, _St.CHUNK_DATA, _St.BODY_CLOSE):
            skip = length if st is _St.BODY_CLOSE else min(length, side.remaining)
            length -= skip
            if side.d is _TS:
                tx.req_body_len += skip
            else:
                tx.resp_body_len += skip
                tx.resp_message_len += skip
            self._body_for(side, tx, False).gap(self._out)
            if st is not _St.BODY_CLOSE:
                side.remaining -= skip
                if not side.remaining:
                    self._counted_done(side, st)
            if not length:
                return
        # The gap breaks the framing: finish what can be finished, then resynchronise.
        if side.tx is not None:
            self._finish(side, complete=side.st is _St.AFTER)
        side.buf.clear()
        side.pos = side.scan = 0
        side.bol = True
        side.in_junk_line = False
        if side.st not in (_St.TUNNEL, _St.DEAD):
            self._goto(side, _St.DESYNC)

    def _desync(self, side: _Side, final: bool) -> bool:
        buf, pos = side.buf, side.pos
        if pos >= len(buf):
            return False
        if side.bol:
            found = hh.looks_like_request_line(buf, pos, final) if side.d is _TS \
                else hh.looks_like_status_line(buf, pos, final)
            if found is None:
                return False
            if found:
                self._goto(side, _St.LINE)
                return True
            side.bol = False
        m = _RESYNC[side.d].search(buf, pos)
        if m is None:
            side.pos = max(pos, len(buf) - 24)
            return False
        side.pos, side.bol = m.end(), True
        return True

    def _close_side(self, side: _Side) -> None:
        st, tx = side.st, side.tx
        if tx is None:
            return
        if st in (_St.HEADERS, _St.TRAILERS):
            self._apply_head(side, tx, None)
            if st is _St.HEADERS and side.d is _TS:
                self._resolve_request(tx)
        done = st in (_St.AFTER, _St.TRAILERS)
        if side.d is _TC:
            done = done or st is _St.BODY_CLOSE or (st is _St.LINE and side.junk > 0)
        self._finish(side, complete=done)


# State -> handler(parser, side, final) -> progressed. TUNNEL and DEAD have none.
_HANDLERS = {
    _St.LINE: Http1Parser._line, _St.HEADERS: Http1Parser._head, _St.TRAILERS: Http1Parser._head,
    _St.BODY_CL: Http1Parser._counted, _St.CHUNK_SIZE: Http1Parser._chunk_size,
    _St.CHUNK_DATA: Http1Parser._counted, _St.CHUNK_END: Http1Parser._chunk_end,
    _St.BODY_CLOSE: Http1Parser._body_close, _St.AFTER: Http1Parser._after, _St.AWAIT_09: Http1Parser._await_09,
    _St.DESYNC: Http1Parser._desync, _St.WAIT_CONNECT: Http1Parser._wait_connect,
}
