"""POP3 application parser (RFC 1939, with STLS from RFC 2595).

Sans-IO, one instance per flow. Client commands are read line by line and
queued (clients may pipeline); each server reply answers the oldest. A
``+OK`` to RETR or TOP, to CAPA, or to LIST/UIDL without an argument starts a
multi-line reply ended by a line holding a single dot (dot-stuffed). A
retrieved message goes through the MIME walker, so its attachments become
files (app_proto pop3, direction to_client). After ``+OK`` to STLS the flow
turns into TLS (`tunnel`).

One transaction per command and its reply (Suricata 8 logs POP3 the same
way); the PASS argument and SASL exchanges after AUTH are not kept. Problems are anomalies, never raised.
"""
from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from inspection.applayer.mail_message import DotBlock, EmailSummary, LineReader, MessageFiles
from inspection.model import Anomaly, AnomalyKind, AppOutput, Direction

__all__ = ["Pop3Parser", "Pop3Transaction", "probe_pop3"]

APP = "pop3"
MAX_LINE = 4096
MAX_PENDING = 256
MAX_ARGS = 8
POP3_PORTS = frozenset({110})
_TS, _TC = Direction.TO_SERVER, Direction.TO_CLIENT
_MESSAGE_CMDS = frozenset({b"RETR", b"TOP"})
_ALWAYS_MULTI = frozenset({b"RETR", b"TOP", b"CAPA"})
_MULTI_WITHOUT_ARG = frozenset({b"LIST", b"UIDL"})


@dataclass(frozen=True, slots=True)
class Pop3Transaction:
    """One command and its reply (`status` None: no reply was seen)."""

    event_type: ClassVar[str] = "pop3"
    tx_id: int
    direction: Direction
    command: str
    args: tuple[str, ...]
    status: str | None
    header: str | None
    email: EmailSummary | None


class _Mode(enum.Enum):
    STATUS = "status"      # a reply's first line
    BLOCK = "block"        # a multi-line reply
    TUNNEL = "tunnel"


class _Cmd:
    __slots__ = ("tx_id", "verb", "args", "status", "header", "msg")

    def __init__(self, tx_id: int, verb: bytes, args: list[bytes]) -> None:
        self.tx_id, self.verb = tx_id, verb
        self.args = tuple(a.decode("utf-8", "replace")[:256] for a in args[:MAX_ARGS])
        self.status: str | None = None
        self.header: str | None = None
        self.msg: MessageFiles | None = None


class Pop3Parser:
    """POP3 parser bound to one flow (see the module docstring)."""

    app_proto = APP

    __slots__ = ("_cl", "_sv", "_mode", "_cmds", "_cur", "_next_tx", "_dot", "_block", "_greeted", "_sasl",
                 "tunnel", "tunnel_data")

    def __init__(self) -> None:
        self._cl = LineReader(MAX_LINE)
        self._sv = LineReader(MAX_LINE)
        self._mode = _Mode.STATUS
        self._cmds: deque[_Cmd] = deque()
        self._cur: _Cmd | None = None          # the command whose multi-line reply is being read
        self._next_tx = 0
        self._dot = DotBlock()
        self._block = bytearray()
        self._greeted = False
        self._sasl = False        # AUTH got a "+ " challenge: client lines are credentials, not commands
        self.tunnel = False
        self.tunnel_data: list[tuple[Direction, bytes]] | tuple = ()

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]:
        out: list[AppOutput] = []
        if self._mode is _Mode.TUNNEL:
            self.tunnel_data = [*self.tunnel_data, (direction, data)]
        elif direction is _TS:
            self._client(data, out)
        else:
            self._server(data, out)
        return out

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]:
        out: list[AppOutput] = []
        if direction is _TS:
            self._cl.take()
        elif self._mode is _Mode.BLOCK and self._cur is not None and self._cur.msg is not None:
            out.extend(self._cur.msg.gap(length))
            self._dot.bol = False
        else:
            self._sv.take()
        return out

    def close(self, ts: float) -> list[AppOutput]:
        out: list[AppOutput] = []
        if self._cur is not None:
            self._log(self._cur, out, truncated=True)
            self._cur = None
        while self._cmds:
            self._log(self._cmds.popleft(), out)
        return out

    # -- client -----------------------------------------------------------------------------

    def _client(self, data: bytes, out: list[AppOutput]) -> None:
        cl = self._cl
        cl.buf += data
        for line in cl.lines_until(lambda: False):
            if line is None:
                out.append(Anomaly(AnomalyKind.APPLAYER, "TOO_MANY_BYTES_IN_LINE", APP, _TS))
                continue
            words = line.split()
            if not words or self._sasl:
                continue        # SASL responses are neither commands nor logged
            verb = words[0].upper()[:16]
            args = [] if verb == b"PASS" else words[1:]
            if len(self._cmds) >= MAX_PENDING:
                self._log(self._cmds.popleft(), out)
                out.append(Anomaly(AnomalyKind.APPLAYER, "TOO_MANY_PENDING_COMMANDS", APP, _TS))
            self._cmds.append(_Cmd(self._next_tx, verb, args))
            self._next_tx += 1

    # -- server -----------------------------------------------------------------------------

    def _server(self, data: bytes, out: list[AppOutput]) -> None:
        while data and self._mode is not _Mode.TUNNEL:
            if self._mode is _Mode.BLOCK:
                data = self._read_block(data, out)
            else:
                data = self._status_lines(data, out)
        if data and self._mode is _Mode.TUNNEL:
            self.tunnel_data = [*self.tunnel_data, (_TC, data)]

    def _status_lines(self, data: bytes, out: list[AppOutput]) -> bytes:
        sv = self._sv
        sv.buf += data
        for line in sv.lines_until(lambda: self._mode is not _Mode.STATUS):
            if line is None:
                out.append(Anomaly(AnomalyKind.APPLAYER, "TOO_MANY_BYTES_IN_LINE", APP, _TC))
                continue
            self._status(line.rstrip(b"\r\n"), out)
        return sv.take() if self._mode is not _Mode.STATUS else b""

    def _status(self, line: bytes, out: list[AppOutput]) -> None:
        word, _, rest = line.partition(b" ")
        ok = word.upper() == b"+OK"
        if not ok and word.upper() != b"-ERR" and word != b"+":
            out.append(Anomaly(AnomalyKind.APPLAYER, "INVALID_RESPONSE", APP, _TC))
            return
        if not self._greeted and not self._cmds:
            self._greeted = True       # the server's greeting
            return
        self._greeted = True
        if not self._cmds:
            out.append(Anomaly(AnomalyKind.APPLAYER, "UNEXPECTED_RESPONSE", APP, _TC))
            return
        if word == b"+":
            self._sasl = True      # a challenge: the command goes on
            return
        self._sasl = False
        cmd = self._cmds.popleft()
        cmd.status = word.decode("latin-1")
        cmd.header = rest.decode("utf-8", "replace")[:1024]
        multi = ok and (cmd.verb in _ALWAYS_MULTI or (cmd.verb in _MULTI_WITHOUT_ARG and not cmd.args))
        if multi:
            if cmd.verb in _MESSAGE_CMDS:
                cmd.msg = MessageFiles(APP, cmd.tx_id, _TC)
            self._cur, self._dot, self._mode = cmd, DotBlock(), _Mode.BLOCK
            return
        self._log(cmd, out)
        if ok and cmd.verb == b"STLS":
            self._mode = _Mode.TUNNEL
            self.tunnel = True
            rest_cl = self._cl.take()
            if rest_cl:
                self.tunnel_data = [*self.tunnel_data, (_TS, rest_cl)]

    def _read_block(self, data: bytes, out: list[AppOutput]) -> bytes:
        buf = self._block
        buf += data
        content, ended = self._dot.feed(buf)
        cur = self._cur
        if content and cur is not None and cur.msg is not None:
            out.extend(cur.msg.feed(content))
        if not ended:
            return b""
        rest, self._block = bytes(buf), bytearray()
        if cur is not None:
            self._log(cur, out)
        self._cur, self._mode = None, _Mode.STATUS
        return rest

    def _log(self, cmd: _Cmd, out: list[AppOutput], truncated: bool = False) -> None:
        email = None
        if cmd.msg is not None:
            files, email = cmd.msg.finish(truncated)
            out.extend(files)
        out.append(Pop3Transaction(cmd.tx_id, _TS, cmd.verb.decode("latin-1"), cmd.args, cmd.status,
                                   cmd.header, email))


_CLIENT_FIRST = (b"CAPA", b"APOP ", b"STLS", b"AUTH ", b"USER ")
_SURE_CLIENT_FIRST = (b"CAPA", b"APOP ", b"STLS")


def probe_pop3(buf: bytes, d: Direction, ports: tuple[int, int] = (0, 0), other: bytes = b"") -> bool | None:
    """``+OK`` greeting, or a first command only POP3 sends. Off the POP3
    port a ``+OK`` (Redis answers so too) or a USER/AUTH (FTP's, SMTP's) is
    settled by the other side (`other`): a POP3 command, or a ``+OK``."""
    on_port = ports[1] in POP3_PORTS
    if d is _TC:
        if len(buf) < 4:
            return None if b"+OK "[: len(buf)] == buf.upper() else False
        if buf[:3].upper() != b"+OK" or buf[3:4] not in (b" ", b"\r", b"\n"):
            return False
        if on_port:
            return True
        if len(other) < 4:
            return None
        return any(other[:5].upper().startswith(p) for p in _CLIENT_FIRST)
    head = buf[:5].upper()
    if len(buf) < 5 and any(p.startswith(head) for p in _CLIENT_FIRST):
        return None
    if any(head.startswith(p) for p in _SURE_CLIENT_FIRST):
        return True
    if any(head.startswith(p) for p in _CLIENT_FIRST):
        if on_port:
            return True
        if len(other) < 3:
            return None
        return other[:3].upper() == b"+OK"
    return False
