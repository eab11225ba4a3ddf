"""The HTTP/1.x parser's state table and per-direction parse state.

One table says, for each state of a direction, which states may follow and
which `Http1Parser` method reads in it; `http1` binds the names once at import
(a misspelt name fails there) and reports any transition outside the table as
``PARSER_STATE_ERROR``. The table lives apart from the parser so that the
modules reading bodies and heads can name states without importing it.
"""
from __future__ import annotations

import enum

from inspection.applayer.http_decode import BodyStream
from inspection.applayer.http_tx import LoggedTx, TxBuilder
from inspection.model import Direction

__all__ = ["BODY", "NO_BYTES", "Side", "St", "TABLE"]


class St(enum.IntEnum):  # IntEnum: hashed in C, these are dict keys on the hot path
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


BODY = frozenset({St.BODY_CL, St.CHUNK_SIZE, St.CHUNK_DATA, St.CHUNK_END, St.TRAILERS, St.BODY_CLOSE})
_ESCAPES = {St.LINE, St.DESYNC, St.DEAD, St.TUNNEL, St.WAIT_CONNECT}

# State -> (allowed next states, Http1Parser method reading in it: handler(parser, side, final) -> progressed).
# Anything not allowed is a parser bug. TUNNEL and DEAD read nothing.
TABLE: dict[St, tuple[set[St], str | None]] = {
    St.LINE: ({St.HEADERS, St.AWAIT_09, St.BODY_CLOSE} | _ESCAPES, "_line"),
    St.HEADERS: (set(BODY) | {St.AFTER} | _ESCAPES, "_head"),
    St.TRAILERS: ({St.AFTER} | _ESCAPES, "_head"),
    St.BODY_CL: ({St.AFTER} | _ESCAPES, "_counted"),
    St.CHUNK_SIZE: ({St.CHUNK_DATA, St.TRAILERS, St.BODY_CLOSE} | _ESCAPES, "_chunk_size"),
    St.CHUNK_DATA: ({St.CHUNK_END} | _ESCAPES, "_counted"),
    St.CHUNK_END: ({St.CHUNK_SIZE} | _ESCAPES, "_chunk_end"),
    St.BODY_CLOSE: (_ESCAPES, "_body_close"),
    St.AFTER: (_ESCAPES, "_after"),
    St.AWAIT_09: ({St.HEADERS} | _ESCAPES, "_await_09"),
    St.WAIT_CONNECT: (_ESCAPES, "_wait_connect"),
    St.DESYNC: (_ESCAPES, "_desync"),
    St.TUNNEL: (set(), None),
    St.DEAD: ({St.TUNNEL}, None),
}

# An idle side's buffer: shared and immutable; a bytearray is made only while bytes are held.
NO_BYTES = b""


class Side:
    """Parse state of one direction."""

    __slots__ = ("d", "st", "buf", "pos", "scan", "crs", "fast", "tx", "lines", "head_len", "remaining", "body",
                 "junk", "bol", "in_junk_line")

    def __init__(self, d: Direction) -> None:
        self.d = d
        self.st = St.LINE
        self.buf: bytearray | bytes = NO_BYTES
        self.pos = 0
        self.scan = 0          # no line end in buf[pos:scan] (keeps line search linear)
        self.crs = 0           # request side: CRs ending buf[:scan], maybe the coming line end
        self.fast = True       # the one-shot fast head split may still be tried
        # A LoggedTx only in AFTER (and DEAD reached from it): in the states that read start lines and heads
        # the transaction is a builder, which mypy cannot see (hence a few ignores in http1 and http_head).
        self.tx: TxBuilder | LoggedTx | None = None
        self.lines: list[bytes] | tuple[()] = ()
        self.head_len = self.remaining = self.junk = 0
        self.body: BodyStream | None = None
        self.bol = True
        self.in_junk_line = False
