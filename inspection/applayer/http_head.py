"""Reading HTTP/1.x header blocks: the head states of `http1.Http1Parser`.

A head (or a chunked body's trailer block) is split in one go when it is plain
CRLF lines, else line by line with libhtp's leniencies; its fields then decide
what follows: request framing and host, or for a response the framing, an
interim 1xx, a refused CONNECT or 100-continue, a tunnel. Like `http_body`,
a mixin working on the parser's own state (`_sides`, `_lim`) and calling back
into it (`_event`, `_goto`, `_need_more`, `_too_long`, `_finish`, `_run`,
`_tunnel`); the state table in `http_state` binds `_head`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from inspection.applayer import http_headers as hh
from inspection.applayer.http_state import BODY, Side, St
from inspection.applayer.http_tx import LoggedTx, TxBuilder
from inspection.model import Direction

if TYPE_CHECKING:
    from inspection.applayer.http1 import _Limits

__all__ = ["HeadReader"]

_TS, _TC = Direction.TO_SERVER, Direction.TO_CLIENT


class HeadReader:
    """Head-state handlers, mixed into `Http1Parser` (see the module docstring)."""

    __slots__ = ()

    # The parser's state and methods this uses, for the type checker only: an annotation without a value
    # makes no class attribute (the parser's slots hold them), and the stubs do not exist at run time.
    _lim: _Limits
    _sides: tuple[Side, Side]

    if TYPE_CHECKING:
        def _event(self, tx: TxBuilder | LoggedTx | None, d: Direction, name: str) -> None: ...
        def _goto(self, side: Side, st: St) -> None: ...
        def _need_more(self, side: Side, resume: int) -> None: ...
        def _too_long(self, side: Side, partial: bool = True) -> bool: ...
        def _finish(self, side: Side, complete: bool) -> None: ...
        def _run(self, side: Side, final: bool) -> None: ...
        def _tunnel(self, tx: TxBuilder) -> None: ...
        def _body_complete(self, side: Side) -> None: ...

    def _head(self, side: Side, final: bool) -> bool:
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

    def _head_fast(self, side: Side) -> bool:
        found = hh.plain_head(side.buf, side.pos, self._lim.header - side.head_len)
        if found is None:
            return False
        block, side.pos = found
        return self._head_done(side, block)

    def _head_done(self, side: Side, block: bytes | None = None) -> bool:
        tx: TxBuilder | None   # a side's transaction while it reads a head is a builder (see `Side.tx`)
        response, tx = side.d is _TC, side.tx  # type: ignore[assignment]
        assert tx is not None
        side.head_len = 0   # counted only while a head is read (and an idle side keeps no int over 256)
        self._apply_head(side, tx, block)
        if side.st is St.TRAILERS:
            self._body_complete(side)
        elif response:
            self._response_headers(side, tx)
        else:
            self._request_headers(side, tx)
        return True

    def _apply_head(self, side: Side, tx: TxBuilder, block: bytes | None) -> None:
        """Store the fields of a head (or trailer) block read as `block` or as `side.lines`."""
        response = side.d is _TC
        if block is None:
            fields, events = hh.parse_header_lines(side.lines, response)
            clean = False
        else:
            fields, events, clean = hh.parse_header_block(block, response)
        side.lines = ()
        if side.st is St.TRAILERS:
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

    def _framing(self, side: Side, tx: TxBuilder, fmap: dict[bytes, list[bytes]]) -> tuple[str, int]:
        kind, length, events = hh.framing(fmap, side.d is _TC)
        for name in events:
            self._event(tx, side.d, name)
        return kind, length

    def _resolve_request(self, tx: TxBuilder) -> None:
        host, port, events = hh.resolve_host(tx.method, tx.uri, tx.protocol, tx.req_map.get(b"host"),
                                             self._lim.server_port)
        tx.host, tx.port = host, port
        if tx.uri is not None and tx.norm_uri is None:
            tx.norm_uri, more = hh.normalize_uri(tx.uri)
            events += more
        for name in events:
            self._event(tx, _TS, name)

    def _request_headers(self, side: Side, tx: TxBuilder) -> None:
        self._resolve_request(tx)
        tx.expect_continue = any(b"100-continue" in v.lower() for v in tx.req_map.get(b"expect", ()))
        kind, length = self._framing(side, tx, tx.req_map)
        if kind == "length":
            side.remaining = length
            self._goto(side, St.BODY_CL)
        elif kind == "chunked":
            self._goto(side, St.CHUNK_SIZE)
        else:
            self._body_complete(side)

    def _response_headers(self, side: Side, tx: TxBuilder) -> None:
        status, fmap = tx.status or 0, tx.resp_map
        framed = b"content-length" in fmap or b"transfer-encoding" in fmap
        if (tx.method == b"CONNECT" and 200 <= status < 300) or (status == 101 and not framed):
            self._tunnel(tx)
            return
        if 100 <= status < 200 and status != 101 and not framed:
            tx.resp_fields, tx.resp_map = [], {}   # interim (100 Continue...): the final response follows
            side.junk = side.head_len = 0
            self._goto(side, St.LINE)
            return
        req = self._sides[_TS]
        if tx.method == b"CONNECT" and req.st is St.WAIT_CONNECT:
            self._goto(req, St.LINE)              # refused CONNECT: requests go on
            self._run(req, final=False)
        if 400 <= status < 500 and tx.expect_continue and req.tx is tx and req.st in BODY \
                and tx.req_body_len == 0:
            self._finish(req, complete=True)   # the client will not send the body
        # 204 and 304 have no body unless framing headers announce one (libhtp, browsers)
        if tx.method == b"HEAD" or (status in (204, 304) and not framed):
            self._goto(side, St.AFTER)
            return
        kind, length = self._framing(side, tx, fmap)
        if kind == "chunked":
            if (hh.parse_protocol(tx.resp_protocol) or (1, 1)) < (1, 1):
                self._event(tx, _TC, "RESPONSE_CHUNKED_OLD_PROTO")
            self._goto(side, St.CHUNK_SIZE)
        elif kind == "length":
            side.remaining = length
            self._goto(side, St.BODY_CL)
        else:
            self._goto(side, St.AFTER if kind == "none" else St.BODY_CLOSE)
