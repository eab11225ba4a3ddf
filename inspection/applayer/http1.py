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
Cheap when idle, the usual state of a keep-alive connection (an office box
holds ~100k flows): no buffer, no lists, and once a transaction is logged only
a small `LoggedTx` for the stray lines that may still join its body.

Layout: this module has the public API, the plumbing (events, transitions,
logging) and start lines; `http_head` reads header blocks, `http_body`
bodies, `http_state` holds the state table and per-direction state, `http_tx`
the transaction records and `probe_http`.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import ClassVar

from inspection.applayer import http_headers as hh
from inspection.applayer.http_body import BodyReader
from inspection.applayer.http_head import HeadReader
from inspection.applayer.http_state import NO_BYTES, TABLE, Side, St
from inspection.applayer.http_tx import APP, NON_WS, HttpTransaction, LoggedTx, TxBuilder, probe_http
from inspection.model import Anomaly, AnomalyKind, AppOutput, Direction

__all__ = ["Http1Parser", "HttpTransaction", "probe_http"]

_TS, _TC = Direction.TO_SERVER, Direction.TO_CLIENT
_OPEN_ENDED = frozenset({St.CHUNK_SIZE, St.CHUNK_DATA, St.CHUNK_END, St.TRAILERS, St.BODY_CLOSE})
_PAST_HEAD = frozenset({St.BODY_CL, St.CHUNK_SIZE, St.CHUNK_DATA, St.CHUNK_END, St.TRAILERS, St.BODY_CLOSE, St.AFTER})
MAX_PENDING_TX = 512          # open transactions before the oldest idle one is flushed early
MAX_AWAITING = 1 << 16        # flushed requests still holding their place in the response order
_JUNK_BEFORE_STATUS = 4096    # junk before a status line after which it is a headerless body
_HTTP09_MAX_JUNK = 16         # libhtp: whitespace allowed after a protocol-less request line
_EOL = re.compile(rb"[\r\n]")
# The shared empty tuple that stands in for the transaction lists while nothing is in them, typed as
# such a list (as stream.tcp types its idle output): the parser appends only to lists it made.
_NO_TXS: list[TxBuilder] = ()   # type: ignore[assignment]
_RESYNC = {
    _TS: re.compile(rb"\n(?=[ \t]*(?:" + b"|".join(re.escape(m) for m in sorted(hh.KNOWN_METHODS)) + rb")[ \t])"),
    _TC: re.compile(rb"\n(?=[ \t]*HTTP/)", re.I),
}


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


class Http1Parser(HeadReader, BodyReader):
    """HTTP/1.x parser bound to one TCP flow (see the module docstring).

    After a successful CONNECT or a 101 Upgrade `tunnel` is True and the rest
    of the flow is ignored (a caller may probe it for a new protocol).
    """

    app_proto: ClassVar[str] = APP
    __slots__ = ("_lim", "_sides", "_txs", "_awaiting", "_next_id", "_out", "_closed", "tunnel", "tunnel_data",
                 "tunnel_tx")

    def __init__(self, *, body_limit: int = 1 << 20, decompress_limit: int = 16 << 20,
                 max_header_bytes: int = 64 << 10, max_encoding_layers: int = 3, lzma: bool = False,
                 server_port: int | None = None) -> None:
        self._lim = _limits(max(0, body_limit), max(1, decompress_limit), max(256, max_header_bytes),
                            max(1, max_encoding_layers), lzma, server_port)
        self._sides = (Side(_TS), Side(_TC))   # indexed by Direction
        # An idle connection is the common case (up to ~100k per box): the lists
        # below are made when something goes in and dropped for a shared empty
        # tuple when the last thing leaves.
        self._txs = _NO_TXS        # not yet emitted, in order
        self._awaiting = _NO_TXS   # requests whose response has not started (short: a list)
        self._next_id = 0
        self._out: list[AppOutput] = ()  # type: ignore[assignment]  # output of the call in progress
        self._closed = False
        self.tunnel = False
        self.tunnel_data: list[tuple[Direction, bytes]] | tuple = ()   # bytes after the tunnel opened
        self.tunnel_tx: HttpTransaction | None = None   # the request that opened it (h2c upgrade: stream 1)

    # -- public API ---------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]:
        side = self._sides[direction]   # an IntEnum or 0/1 indexes directly
        if self._closed or not data or side.st in (St.TUNNEL, St.DEAD):
            return []
        self._out = []
        if side.buf:
            side.buf += data
        else:   # nothing held: read `data` in place (no copy); `_run` copies what it leaves unread
            side.buf = data if type(data) is bytes else bytearray(data)
        self._run(side, final=False)
        return self._take()

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]:
        side = self._sides[direction]   # an IntEnum or 0/1 indexes directly
        if self._closed or length <= 0 or side.st in (St.TUNNEL, St.DEAD):
            return []
        self._out = []
        self._gap(side, length)
        self._run(side, final=False)
        return self._take()

    def close(self, ts: float) -> list[AppOutput]:
        if self._closed:
            return []
        self._out = []
        for side in self._sides:
            if side.st is St.AWAIT_09:
                self._become_09(side)
            if side.st not in (St.TUNNEL, St.DEAD):
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
        self._out = []
        side = self._sides[direction]   # an IntEnum or 0/1 indexes directly
        if side.st is St.AWAIT_09:
            self._become_09(side)
        if side.st not in (St.TUNNEL, St.DEAD):
            self._run(side, final=True)
            self._close_side(side)
        return self._take()

    def held(self) -> int:
        """Bytes kept for unfinished messages: unread data and the head lines read so far."""
        ts, tc = self._sides
        return len(ts.buf) + ts.head_len + len(tc.buf) + tc.head_len

    def shed(self, ts: float) -> list[AppOutput]:
        """Forget what `held` counts (the app-layer memcap): those bytes become a gap, so the
        message in progress ends incomplete and the side looks for the next start line."""
        self._out = []
        for side in self._sides:
            n = len(side.buf) - side.pos + side.head_len
            if not n or side.st in (St.TUNNEL, St.DEAD):
                continue
            side.buf, side.pos, side.scan, side.lines = NO_BYTES, 0, 0, ()
            self._gap(side, n)
            side.head_len = 0
        return self._take()

    def heads(self, direction: Direction) -> list[TxBuilder]:
        """Open transactions whose head in `direction` has been read (its body may
        still be arriving): detection inspects a request or response as soon as its
        headers are known, not when the whole transaction is logged."""
        if not self._txs:
            return []
        side = self._sides[direction]   # an IntEnum indexes directly (no Enum call per packet)
        req = direction is _TS
        out = []
        for tx in self._txs:
            if (tx.req_done if req else tx.resp_done) or (side.tx is tx and side.st in _PAST_HEAD):
                out.append(tx)
        return out

    def body_open_ended(self, direction: Direction) -> bool:
        """The message read in `direction` is in a body that no count ends: chunked (its last
        chunk may come in a segment of its own) or delimited by the close (its FIN may)."""
        return self._sides[direction].st in _OPEN_ENDED

    def body_complete(self, direction: Direction, tx_id: int) -> bool:
        """Whether the body of `tx_id`'s message in `direction` is complete by its
        framing (length, last chunk). The body stream itself stays open until the
        next message, since stray lines may still join it as in libhtp."""
        side = self._sides[direction]
        for tx in self._txs:
            if tx.tx_id == tx_id:
                done = tx.req_done if direction is _TS else tx.resp_done
                return done or (side.tx is tx and side.st is St.AFTER)
        return True   # logged already: both of its messages are over

    # -- plumbing ---------------------------------------------------------

    def _take(self) -> list[AppOutput]:
        out, self._out = self._out, ()  # type: ignore[assignment]  # (a literal: this runs on every call)
        return out

    def _event(self, tx: TxBuilder | LoggedTx | None, d: Direction, name: str) -> None:
        if tx is not None:
            if tx.events is None:
                tx.events = {name}
            elif name in tx.events:
                return
            else:
                tx.events.add(name)
        self._out.append(Anomaly(AnomalyKind.APPLAYER, name, APP, d, None if tx is None else tx.tx_id))

    def _goto(self, side: Side, st: St) -> None:
        if st is not side.st and st not in _NEXT[side.st]:
            self._event(side.tx, side.d, "PARSER_STATE_ERROR")
            st = St.DEAD
        side.st = st
        if st is St.AFTER and side.d is _TC and side.tx is not None:
            self._log_when_complete(side.tx)

    def _log_when_complete(self, tx: TxBuilder | LoggedTx) -> None:
        """The response is over: log the transaction now, as Suricata does, if
        its request is over too. Stray lines may still join the response body
        (libhtp), so the body stream stays open until the next message; the
        sides keep only a `LoggedTx` for it, since a keep-alive connection may
        sit idle like this for minutes."""
        req = self._sides[_TS]
        if tx.emitted or not (tx.req_done or (req.tx is tx and req.st is St.AFTER)):
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
        self._unlist(tx, awaiting=True)
        self._out.append(tx.record())
        stub = LoggedTx(tx)
        for side in self._sides:
            if side.tx is tx:
                side.tx = stub

    def _unlist(self, tx: TxBuilder, awaiting: bool) -> None:
        """`tx` is logged: off the open list (and with `awaiting` off the
        response order); an emptied list gives way to the shared empty tuple."""
        if awaiting and tx in self._awaiting:
            self._awaiting.remove(tx)
            if not self._awaiting:
                self._awaiting = _NO_TXS
        self._txs.remove(tx)
        if not self._txs:
            self._txs = _NO_TXS

    def _run(self, side: Side, final: bool) -> None:
        handlers = _HANDLERS
        while True:
            handler = handlers.get(side.st)
            if handler is None or not handler(self, side, final):
                break
        buf, pos = side.buf, side.pos
        if pos >= len(buf):
            side.buf = NO_BYTES   # all read: an idle side holds no buffer
            side.pos = side.scan = 0
            return
        if type(buf) is bytes:    # `feed` lent the caller's bytes: keep our own copy of the unread rest
            side.buf = bytearray(memoryview(buf)[pos:])
        elif pos:
            del buf[:pos]  # type: ignore[union-attr]  # not lent: our own bytearray
        else:
            return
        side.scan = max(0, side.scan - pos)
        side.pos = 0

    def _new_tx(self) -> TxBuilder:
        if len(self._txs) >= MAX_PENDING_TX:   # flush the oldest one no side is working on
            busy = {side.tx for side in self._sides}
            oldest = next((tx for tx in self._txs if tx not in busy), None)
            if oldest is not None:
                self._emit(oldest, force=True, keep_slot=True)
        tx = TxBuilder(self._next_id)
        self._next_id += 1
        if self._txs:
            self._txs.append(tx)
        else:
            self._txs = [tx]
        return tx

    def _emit(self, tx: TxBuilder | LoggedTx, force: bool = False, keep_slot: bool = False) -> None:
        """Output the record of `tx` once both sides are done (or when forced).

        `keep_slot`: a request flushed before its response keeps its place in
        the response order, so later responses still pair with their requests.
        """
        if tx.emitted or not (force or (tx.req_done and tx.resp_done)):
            return
        tx.emitted = True
        self._unlist(tx, awaiting=not keep_slot)
        while len(self._awaiting) > MAX_AWAITING:
            self._awaiting.pop(0)
        for side in self._sides:
            if side.tx is tx:
                self._end_body(side, truncated=True)
        self._out.append(tx.record())

    def _need_more(self, side: Side, resume: int) -> None:
        """A line is incomplete: remember how far it was searched (and its trailing CRs)."""
        if side.d is _TS:
            start = max(side.pos, side.scan)
            if side.scan <= side.pos:
                side.crs = 0
            new = side.buf[start:resume]
            k = len(new) - len(new.rstrip(b"\r"))
            side.crs = side.crs + k if k == len(new) else k
        side.scan = resume

    def _too_long(self, side: Side, partial: bool = True) -> bool:
        """Head bytes so far (plus the content of the unterminated line being read) over the cap?"""
        if side.head_len + (max(0, side.scan - side.pos - side.crs) if partial else 0) <= self._lim.header:
            return False
        self._event(side.tx, side.d, "REQUEST_FIELD_TOO_LONG" if side.d is _TS else "RESPONSE_FIELD_TOO_LONG")
        self._abort(side)
        self._goto(side, St.DEAD)
        side.buf = NO_BYTES
        side.pos = side.scan = 0
        return True

    # -- start lines ------------------------------------------------------

    def _line(self, side: Side, final: bool) -> bool:
        return self._request_line(side, final) if side.d is _TS else self._status_line(side, final)

    def _request_line(self, side: Side, final: bool) -> bool:
        buf = side.buf
        while side.pos < len(buf):
            pos = side.pos
            checked = max(pos, side.scan)   # bytes before this were seen blank already
            end, nxt = hh.next_line(buf, pos, False, final, side.scan)
            if end == hh.NEED_MORE:
                self._need_more(side, nxt)
                if side.tx is None and NON_WS.search(buf, checked):
                    side.tx = self._start_request()   # a response may match it before the line ends
                self._too_long(side)
                return False
            line = bytes(buf[pos:end])
            side.pos = nxt
            if hh.is_blank(line):
                continue
            tx: TxBuilder   # a side's transaction in LINE is a builder (see `Side.tx`)
            tx = side.tx = side.tx or self._start_request()  # type: ignore[assignment]
            side.head_len, side.lines, side.fast = nxt - pos, (), True
            method, uri, proto, events = hh.split_request_line(line)
            tx.request_line, tx.method, tx.uri, tx.protocol = line, method, uri, proto
            if uri is not None:   # known from here on, as in libhtp (a response may start before the headers end)
                tx.norm_uri, more = hh.normalize_uri(uri)
                events += more
            for name in events:
                self._event(tx, _TS, name)
            if self._too_long(side, partial=False):
                return False
            if uri is None or proto is None:
                self._goto(side, St.AWAIT_09)
            else:
                if hh.parse_protocol(proto) is None:
                    self._event(tx, _TS, "REQUEST_LINE_INVALID")
                self._goto(side, St.HEADERS)
            return True
        return False

    def _start_request(self) -> TxBuilder:
        tx = self._new_tx()
        if self._awaiting:
            self._awaiting.append(tx)
        else:
            self._awaiting = [tx]
        return tx

    def _await_09(self, side: Side, final: bool) -> bool:
        if NON_WS.search(side.buf, side.pos) or len(side.buf) - side.pos > _HTTP09_MAX_JUNK:
            self._event(side.tx, _TS, "REQUEST_LINE_MISSING_PROTOCOL")
            self._goto(side, St.HEADERS)
            return True
        if final:
            self._become_09(side)
            return True
        return False

    def _become_09(self, side: Side) -> None:
        tx = side.tx
        if tx is not None:   # in AWAIT_09: a builder (see `Side.tx`)
            tx.is09, tx.protocol = True, None  # type: ignore[union-attr]
        self._finish(side, complete=True)

    def _status_line(self, side: Side, final: bool) -> bool:
        buf = side.buf
        while side.pos < len(buf):
            if side.tx is None and self._awaiting:
                nxt_tx, req = self._awaiting[0], self._sides[_TS]
                if nxt_tx.is09 or (req.tx is nxt_tx and req.st is St.AWAIT_09):
                    self._bind_response(side)
            if side.tx is not None and side.tx.is09:
                self._goto(side, St.BODY_CLOSE)   # an HTTP/0.9 response is all body
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
                if hh.looks_like_status_line(buf, pos, final) is False and NON_WS.search(buf, pos, pos + 80):
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
            tx: TxBuilder   # a side's transaction in LINE is a builder (see `Side.tx`)
            tx = side.tx or self._bind_response(side)  # type: ignore[assignment]
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
            self._goto(side, St.HEADERS)
            return True
        return False

    def _junk(self, side: Side, end: int) -> bool:
        """Bytes before a status line are body (browsers and libhtp agree). True: state changed."""
        if side.tx is None:
            self._bind_response(side)
        n = end - side.pos
        self._deliver(side, bytes(side.buf[side.pos : end]), identity=True)
        side.pos = end
        side.junk += n
        if side.junk > _JUNK_BEFORE_STATUS:
            side.in_junk_line = False
            self._goto(side, St.BODY_CLOSE)
            return True
        return False

    def _bind_response(self, side: Side) -> TxBuilder:
        req = self._sides[_TS]
        tx = self._awaiting.pop(0) if self._awaiting else None
        if not self._awaiting:
            self._awaiting = _NO_TXS
        if tx is not None and tx.emitted:     # its request was flushed early: answer on a fresh record
            tx = self._new_tx()
            tx.req_done, tx.request_seen = True, False
        elif tx is not None:
            if req.tx is tx and req.st is St.AWAIT_09:
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

    def _tunnel(self, tx: TxBuilder) -> None:
        self.tunnel = True
        self.tunnel_tx = tx.record()
        tx.req_done = tx.resp_done = tx.resp_complete = True
        for side in self._sides:
            if side.tx is not None and side.tx is not tx:
                self._abort(side)
            if side.pos < len(side.buf):  # the tunnel's first bytes, for whoever parses it next
                self.tunnel_data = [*self.tunnel_data, (side.d, bytes(side.buf[side.pos:]))]
            side.buf = NO_BYTES
            side.pos = 0
            side.tx = None
            side.st = St.TUNNEL
        self._emit(tx)

    def _finish(self, side: Side, complete: bool) -> None:
        """The message in progress on `side` is over (`complete` False: cut short)."""
        tx = side.tx
        if tx is None:
            return
        self._end_body(side, truncated=not complete)
        nxt = St.LINE
        if side.d is _TS:
            tx.req_done, tx.req_complete = True, complete
            if tx.method == b"CONNECT" and not tx.resp_done:
                nxt = St.WAIT_CONNECT
        else:
            tx.resp_done, tx.resp_complete = True, complete
        side.tx, side.head_len, side.junk, side.in_junk_line = None, 0, 0, False
        if side.st is not St.DEAD:
            self._goto(side, nxt)
        self._emit(tx)

    def _abort(self, side: Side) -> None:
        """Give up on the message in progress (gap, limit): it is incomplete."""
        self._finish(side, complete=False)

    def _wait_connect(self, side: Side, final: bool) -> bool:
        if final or len(side.buf) - side.pos > self._lim.header:
            self._goto(side, St.LINE)
            return True
        return False

    # -- gaps and the end of the stream ------------------------------------

    def _gap(self, side: Side, length: int) -> None:
        if side.st is St.AWAIT_09:
            self._become_09(side)
        if not self._body_gap(side, length):
            return
        # The gap breaks the framing: finish what can be finished, then resynchronise.
        if side.tx is not None:
            self._finish(side, complete=side.st is St.AFTER)
        side.buf = NO_BYTES
        side.pos = side.scan = 0
        side.bol = True
        side.in_junk_line = False
        if side.st not in (St.TUNNEL, St.DEAD):
            self._goto(side, St.DESYNC)

    def _desync(self, side: Side, final: bool) -> bool:
        buf, pos = side.buf, side.pos
        if pos >= len(buf):
            return False
        if side.bol:
            found = hh.looks_like_request_line(buf, pos, final) if side.d is _TS \
                else hh.looks_like_status_line(buf, pos, final)
            if found is None:
                return False
            if found:
                self._goto(side, St.LINE)
                return True
            side.bol = False
        m = _RESYNC[side.d].search(buf, pos)
        if m is None:
            side.pos = max(pos, len(buf) - 24)
            return False
        side.pos, side.bol = m.end(), True
        return True

    def _close_side(self, side: Side) -> None:
        st, tx = side.st, side.tx
        if tx is None:
            return
        if st in (St.HEADERS, St.TRAILERS):   # reading a head: `tx` is a builder (see `Side.tx`)
            self._apply_head(side, tx, None)  # type: ignore[arg-type]
            if st is St.HEADERS and side.d is _TS:
                self._resolve_request(tx)  # type: ignore[arg-type]
        done = st in (St.AFTER, St.TRAILERS)
        if side.d is _TC:
            done = done or st is St.BODY_CLOSE or (st is St.LINE and side.junk > 0)
        self._finish(side, complete=done)


# The state table (http_state.TABLE), bound: allowed transitions, and the method reading in each state.
_NEXT: dict[St, set[St]] = {st: nxt for st, (nxt, _) in TABLE.items()}
_HANDLERS = {st: getattr(Http1Parser, name) for st, (_, name) in TABLE.items() if name is not None}
