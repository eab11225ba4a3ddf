"""Reading HTTP/1.x message bodies: the body states of `http1.Http1Parser`.

Content-Length and chunked bodies, bodies delimited by the end of the stream,
libhtp's stray lines after a finished message (state AFTER) and gaps inside a
body. Kept apart from the parser's start-line and head handling to keep each
module readable; it is a mixin, not a component: the methods work on the
parser's own state (`_out`, `_lim`) and call back into it (`_event`, `_goto`,
`_finish`, `_abort`), and the state table in `http_state` binds them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from inspection.applayer import http_headers as hh
from inspection.applayer.http_decode import BodyStream, parse_content_encoding
from inspection.applayer.http_state import Side, St
from inspection.applayer.http_tx import NON_WS, LoggedTx, TxBuilder
from inspection.model import AppOutput, Direction

if TYPE_CHECKING:
    from inspection.applayer.http1 import _Limits

__all__ = ["BodyReader"]

_TS, _TC = Direction.TO_SERVER, Direction.TO_CLIENT
_MAX_CHUNK_LINE = 1024


class BodyReader:
    """Body-state handlers, mixed into `Http1Parser` (see the module docstring)."""

    __slots__ = ()

    # The parser's state and methods this uses, for the type checker only: an annotation without a value
    # makes no class attribute (the parser's slots hold them), and the stubs do not exist at run time.
    _lim: _Limits
    _out: list[AppOutput]

    if TYPE_CHECKING:
        def _event(self, tx: TxBuilder | LoggedTx | None, d: Direction, name: str) -> None: ...
        def _goto(self, side: Side, st: St) -> None: ...
        def _finish(self, side: Side, complete: bool) -> None: ...
        def _abort(self, side: Side) -> None: ...

    def _body_for(self, side: Side, tx: TxBuilder | LoggedTx, identity: bool) -> BodyStream:
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
            # Decoder events go to the side's transaction as it is when they
            # happen (a body always belongs to `side.tx`): once logged, that is
            # the side's `LoggedTx`, and the builder can be let go.
            ctype = (tx.resp_map if response else tx.req_map).get(b"content-type")
            # the first bytes of a counted body: what is still to come is all of it
            length = side.remaining if side.st is St.BODY_CL and not identity and not codings else None
            body = side.body = BodyStream(tx.tx_id, side.d, tx.filename(response), self._lim.body, codings,
                                          dlimit=self._lim.decompress, lzma_ok=self._lim.lzma,
                                          on_event=lambda name: self._event(side.tx, side.d, name),
                                          method=None if tx.method is None else tx.method.decode("latin-1"),
                                          content_type=ctype[0].decode("latin-1") if ctype else None,
                                          length=length)
        else:   # junk came before the head: the head's codings and file name apply from here on
            body.set_codings(codings)
            if not identity:
                body.filename = tx.filename(response)
                ctype = (tx.resp_map if response else tx.req_map).get(b"content-type")
                body.content_type = ctype[0].decode("latin-1") if ctype else None
        body.headers_seen = not identity
        return body

    def _deliver(self, side: Side, data: bytes, identity: bool = False) -> None:
        tx = side.tx
        assert tx is not None
        if side.d is _TS:
            tx.req_body_len += len(data)
        else:
            tx.resp_body_len += len(data)
            tx.resp_message_len += len(data)
        self._body_for(side, tx, identity).data(data, self._out)

    def _end_body(self, side: Side, truncated: bool) -> None:
        body, tx = side.body, side.tx
        if body is None or tx is None:
            return
        body.finish(self._out, truncated)
        if side.d is _TS:
            tx.req_truncated |= body.truncated
        else:
            tx.resp_truncated |= body.truncated
        side.body = None

    def _counted(self, side: Side, final: bool) -> bool:
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

    def _counted_done(self, side: Side, st: St) -> None:
        if st is St.BODY_CL:
            self._body_complete(side)
        else:
            self._goto(side, St.CHUNK_END)

    def _chunk_size(self, side: Side, final: bool) -> bool:
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
            self._goto(side, St.TRAILERS)
        elif size > 0:
            side.remaining = size
            self._goto(side, St.CHUNK_DATA)
        return True

    def _bad_chunk(self, side: Side) -> bool:
        if side.d is _TC:
            self._event(side.tx, _TC, "INVALID_RESPONSE_CHUNK_LEN")
            self._goto(side, St.BODY_CLOSE)     # libhtp: the rest of the stream is the body
        else:
            self._event(side.tx, _TS, "INVALID_REQUEST_CHUNK_LEN")
            self._abort(side)
            side.bol = False
            self._goto(side, St.DESYNC)
        return True

    def _wire(self, side: Side, n: int) -> None:
        if side.d is _TC and side.tx is not None:
            side.tx.resp_message_len += n

    def _chunk_end(self, side: Side, final: bool) -> bool:
        buf, pos = side.buf, side.pos
        if pos >= len(buf):
            return False
        lf = buf.find(b"\n", pos)
        end = len(buf) if lf < 0 else lf + 1
        self._wire(side, end - pos)
        side.pos = end
        if lf < 0:
            return False
        self._goto(side, St.CHUNK_SIZE)
        return True

    def _body_close(self, side: Side, final: bool) -> bool:
        if side.pos < len(side.buf):
            self._deliver(side, bytes(side.buf[side.pos :]))
            side.pos = len(side.buf)
        return False

    def _body_complete(self, side: Side) -> None:
        """The framed body (and any trailers) ended."""
        side.in_junk_line = False
        if side.body is not None:
            side.body.flush(self._out)
        if side.d is _TS and side.tx is not None and side.tx.method == b"CONNECT":
            self._finish(side, complete=True)
        else:
            self._goto(side, St.AFTER)

    def _after(self, side: Side, final: bool) -> bool:
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
                    m = NON_WS.search(buf, pos)
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

    def _body_gap(self, side: Side, length: int) -> int:
        """Skip what a gap of `length` bytes covers of a counted or close-delimited
        body whose buffered bytes were all read (its framing survives); returns
        how many gap bytes are left over."""
        st, tx = side.st, side.tx
        if tx is None or len(side.buf) != side.pos or st not in (St.BODY_CL, St.CHUNK_DATA, St.BODY_CLOSE):
            return length
        skip = length if st is St.BODY_CLOSE else min(length, side.remaining)
        if side.d is _TS:
            tx.req_body_len += skip
        else:
            tx.resp_body_len += skip
            tx.resp_message_len += skip
        self._body_for(side, tx, False).gap(self._out, skip)
        if st is not St.BODY_CLOSE:
            side.remaining -= skip
            if not side.remaining:
                self._counted_done(side, st)
        return length - skip
