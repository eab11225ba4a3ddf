"""SMTP application parser (RFC 5321, with PIPELINING, CHUNKING and STARTTLS).

Sans-IO, one instance per flow. Client commands and server replies are read
line by line (bounded: `MAX_LINE`); replies are matched to commands in order
(pipelining), which decides what DATA and STARTTLS lead to: after a 354 the
client sends the message, dot-stuffed and ended by a line holding a single
dot; after a 220 to STARTTLS the flow turns into TLS (`tunnel`, handed back to
detection as an HTTP CONNECT is). BDAT chunks are read by their length.

One transaction per mail, as Suricata: from the first command after the last
mail (any but RSET and QUIT; so the greeting's EHLO and a session that only
turns to TLS have one too) to the end of the message, RSET, the next MAIL,
STARTTLS or flow end. The message goes through the MIME walker
(`MessageFiles`): attachments come out as decoded `BodyChunk`s for the file
tracker and the transaction carries the EVE ``email`` summary. Problems are
anomalies under Suricata's SMTP event names; nothing raises on traffic.

Without the server side (a one-sided capture) a DATA command is taken as
accepted once the client goes on sending, after `MAX_DATA_WAIT` bytes or at
flow end.
"""
from __future__ import annotations

import enum
import re
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from inspection.applayer.mail_message import DotBlock, EmailSummary, LineReader, MessageFiles
from inspection.model import Anomaly, AnomalyKind, AppOutput, Direction

__all__ = ["SmtpParser", "SmtpTransaction", "probe_smtp"]

APP = "smtp"
MAX_LINE = 4096            # bytes of one command or reply line
MAX_PENDING_CMDS = 256     # commands waiting for their reply
MAX_RCPT = 256             # recipients kept per transaction (more are counted, not kept)
MAX_DATA_WAIT = 64 << 10   # client bytes held after DATA until the server's reply decides
MAX_FIELD = 1024           # characters kept of helo / mail_from / one rcpt_to
SMTP_PORTS = frozenset({25, 587, 2525})
_TS, _TC = Direction.TO_SERVER, Direction.TO_CLIENT
_ADDR = re.compile(rb"<[^>]*>")
_BDAT = re.compile(rb"^\s*(\d{1,15})(\s+LAST)?\s*$", re.I)
_NO_NEW_TX = frozenset({b"RSET", b"QUIT"})


@dataclass(frozen=True, slots=True)
class SmtpTransaction:
    """One mail: the envelope and, once the message was seen, its summary."""

    event_type: ClassVar[str] = "smtp"
    tx_id: int
    direction: Direction
    helo: str | None
    mail_from: str | None
    rcpt_to: tuple[str, ...]
    email: EmailSummary | None


class _Mode(enum.Enum):
    COMMAND = "command"
    DATA_WAIT = "data_wait"    # DATA sent, its reply not seen yet
    DATA = "data"
    BDAT = "bdat"
    TUNNEL = "tunnel"          # STARTTLS accepted: nothing more is SMTP


class _Tx:
    __slots__ = ("tx_id", "mail_from", "rcpt", "msg")

    def __init__(self, tx_id: int) -> None:
        self.tx_id = tx_id
        self.mail_from: str | None = None
        self.rcpt: list[str] = []
        self.msg: MessageFiles | None = None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")[:MAX_FIELD]


def _address(arg: bytes) -> str:
    """``FROM:<a@b> SIZE=10`` -> ``<a@b>`` (ESMTP parameters dropped)."""
    _, _, rest = arg.partition(b":")
    rest = rest.strip()
    m = _ADDR.match(rest)
    return _text(m.group(0) if m is not None else rest.split(None, 1)[0] if rest else b"")


class SmtpParser:
    """SMTP parser bound to one flow (see the module docstring)."""

    app_proto = APP

    __slots__ = ("_cl", "_sv", "_mode", "_cmds", "_tx", "_helo", "_next_tx", "_dot", "_data", "_wait", "_bdat",
                 "_bdat_last", "_greeted", "_desync", "tunnel", "tunnel_data")

    def __init__(self) -> None:
        self._cl = LineReader(MAX_LINE)
        self._sv = LineReader(MAX_LINE)
        self._mode = _Mode.COMMAND
        self._cmds: deque[bytes] = deque()
        self._tx: _Tx | None = None
        self._helo: str | None = None
        self._next_tx = 0
        self._dot = DotBlock()
        self._data = bytearray()
        self._wait = bytearray()
        self._bdat = 0
        self._bdat_last = False
        self._greeted = False
        self._desync = False      # client bytes were lost (stream depth, one-sided): replies may not match
        self.tunnel = False
        self.tunnel_data: list[tuple[Direction, bytes]] | tuple = ()

    # -- AppParser --------------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]:
        out: list[AppOutput] = []
        if self._mode is _Mode.TUNNEL:
            self.tunnel_data = [*self.tunnel_data, (direction, data)]
            return out
        if direction is _TS:
            self._client(data, out)
        else:
            self._server(data, out)
        return out

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]:
        out: list[AppOutput] = []
        if direction is _TC:
            self._sv.take()
            self._cmds.clear()
            if self._mode is _Mode.DATA_WAIT:    # the reply may have been in the hole
                self._start_data(out)
            return out
        mode = self._mode
        tx = self._tx
        if mode in (_Mode.DATA, _Mode.BDAT) and tx is not None and tx.msg is not None:
            out.extend(tx.msg.gap(length))
            if mode is _Mode.BDAT:
                self._bdat = max(0, self._bdat - length)
            else:
                self._dot.bol = False
        elif mode is _Mode.DATA_WAIT:
            self._wait.clear()
        else:
            self._cl.take()
        return out

    def held(self) -> int:
        """Bytes kept: the client's bytes after DATA waiting for the reply, partial lines."""
        return len(self._wait) + len(self._data) + len(self._cl.buf) + len(self._sv.buf)

    def shed(self, ts: float) -> list[AppOutput]:
        """Forget what `held` counts (the app-layer memcap), as after gaps of that many bytes."""
        out: list[AppOutput] = []
        n = len(self._wait) + len(self._data) + len(self._cl.buf)
        if n:
            out += self.gap(_TS, n, ts)
        if self._sv.buf:
            out += self.gap(_TC, len(self._sv.buf), ts)
        self._wait, self._data = bytearray(), bytearray()   # freed (clear() keeps the memory)
        self._cl.take()
        self._sv.take()
        return out

    def close(self, ts: float) -> list[AppOutput]:
        out: list[AppOutput] = []
        if self._mode is _Mode.DATA_WAIT:     # no reply seen: the client's bytes decide
            self._start_data(out)
        if self._mode in (_Mode.DATA, _Mode.BDAT):
            self._end_mail(out, truncated=True)
        elif self._tx is not None:
            self._log(out)
        self._mode = _Mode.TUNNEL if self.tunnel else _Mode.COMMAND
        return out

    # -- client -----------------------------------------------------------------------------

    def _client(self, data: bytes, out: list[AppOutput]) -> None:
        while data:
            mode = self._mode
            if mode is _Mode.DATA:
                data = self._message(data, out)
            elif mode is _Mode.BDAT:
                data = self._chunk(data, out)
            elif mode is _Mode.DATA_WAIT:
                self._wait += data
                data = b""
                if len(self._wait) > MAX_DATA_WAIT:
                    self._start_data(out)
            elif mode is _Mode.TUNNEL:
                self.tunnel_data = [*self.tunnel_data, (_TS, data)]
                return
            else:
                data = self._commands(data, out)

    def _commands(self, data: bytes, out: list[AppOutput]) -> bytes:
        """Command lines until one switches the mode; returns the bytes after it."""
        cl = self._cl
        cl.buf += data
        for line in cl.lines_until(lambda: self._mode is not _Mode.COMMAND):
            if line is None:
                out.append(self._anomaly("MAX_COMMAND_LINE_LEN_EXCEEDED", _TS))
                self._cmds.append(b"")     # the server still answers it
                continue
            self._command(line.rstrip(b"\r\n"), out)
        return cl.take() if self._mode is not _Mode.COMMAND else b""

    def _command(self, line: bytes, out: list[AppOutput]) -> None:
        self._desync = False
        verb, _, arg = line.strip().partition(b" ")
        verb = verb.upper()
        if len(self._cmds) >= MAX_PENDING_CMDS:
            self._cmds.popleft()
            out.append(self._anomaly("INVALID_PIPELINED_SEQUENCE", _TS))
        if verb not in _NO_NEW_TX:
            self._open_tx()           # as Suricata: any command but RSET/QUIT opens a transaction
        if verb in (b"EHLO", b"HELO"):
            self._helo = _text(arg.strip())
        elif verb == b"MAIL":
            if self._tx is not None and self._tx.mail_from is not None:
                self._log(out)        # a mail that never got to DATA
            self._open_tx().mail_from = _address(arg)
        elif verb == b"RCPT":
            tx = self._open_tx()
            if len(tx.rcpt) < MAX_RCPT:
                tx.rcpt.append(_address(arg))
        elif verb == b"RSET":
            if self._tx is not None:
                self._log(out)
        elif verb == b"DATA":
            self._open_tx()
            self._mode = _Mode.DATA_WAIT
        elif verb == b"BDAT":
            m = _BDAT.match(arg)
            if m is None:
                out.append(self._anomaly("BDAT_CHUNK_LEN_EXCEEDED", _TS))
            else:
                tx = self._open_tx()
                if tx.msg is None:
                    tx.msg = MessageFiles(APP, tx.tx_id, _TS)
                self._bdat, self._bdat_last = int(m.group(1)), m.group(2) is not None
                self._mode = _Mode.BDAT
                if self._bdat == 0 and self._bdat_last:
                    self._end_mail(out, truncated=False)
        self._cmds.append(verb)

    def _open_tx(self) -> _Tx:
        if self._tx is None:
            self._tx = _Tx(self._next_tx)
            self._next_tx += 1
        return self._tx

    def _start_data(self, out: list[AppOutput]) -> None:
        """DATA was accepted (354, or taken as such): the held bytes are the message."""
        tx = self._open_tx()
        tx.msg = MessageFiles(APP, tx.tx_id, _TS)
        self._dot = DotBlock()
        self._mode = _Mode.DATA
        held, self._wait = bytes(self._wait), bytearray()
        if held:
            self._client(held, out)

    def _message(self, data: bytes, out: list[AppOutput]) -> bytes:
        buf = self._data
        buf += data
        content, ended = self._dot.feed(buf)
        tx = self._tx
        if content and tx is not None and tx.msg is not None:
            out.extend(tx.msg.feed(content))
        if not ended:
            return b""
        rest, self._data = bytes(buf), bytearray()
        self._cmds.append(b".")     # the end of the message gets a reply of its own
        self._end_mail(out, truncated=False)
        return rest

    def _chunk(self, data: bytes, out: list[AppOutput]) -> bytes:
        n = min(self._bdat, len(data))
        tx = self._tx
        if n and tx is not None and tx.msg is not None:
            out.extend(tx.msg.feed(data[:n]))
        self._bdat -= n
        if self._bdat == 0:
            if self._bdat_last:
                self._end_mail(out, truncated=False)
            else:
                self._mode = _Mode.COMMAND
        return data[n:]

    def _end_mail(self, out: list[AppOutput], truncated: bool) -> None:
        self._mode = _Mode.COMMAND
        self._data = bytearray()
        self._log(out, truncated)

    def _log(self, out: list[AppOutput], truncated: bool = False) -> None:
        tx, self._tx = self._tx, None
        if tx is None:
            return
        email = None
        if tx.msg is not None:
            files, email = tx.msg.finish(truncated)
            out.extend(files)
        out.append(SmtpTransaction(tx.tx_id, _TS, self._helo, tx.mail_from, tuple(tx.rcpt), email))

    # -- server -----------------------------------------------------------------------------

    def _server(self, data: bytes, out: list[AppOutput]) -> None:
        sv = self._sv
        sv.buf += data
        for line in sv.lines_until(lambda: self._mode is _Mode.TUNNEL):
            if line is None:
                out.append(self._anomaly("MAX_REPLY_LINE_LEN_EXCEEDED", _TC))
                continue
            code, sep = line[:3], line[3:4]
            if not code.isdigit() or sep not in (b" ", b"-", b"\r", b"\n", b""):
                out.append(self._anomaly("INVALID_REPLY", _TC))
                continue
            if sep != b"-":
                self._reply(int(code), out)
        if self._mode is _Mode.TUNNEL:
            rest = sv.take()
            if rest:
                self.tunnel_data = [*self.tunnel_data, (_TC, rest)]

    def _reply(self, code: int, out: list[AppOutput]) -> None:
        if not self._greeted:
            self._greeted = True
            if not self._cmds or code in (220, 554):
                return             # the greeting (or the refusal to greet)
        if self._mode is _Mode.DATA:
            # the server answers a message it has whole: the rest of ours never came
            # (stream depth reached, bytes missing); the mail ends here, cut short
            self._desync = True
            self._end_mail(out, truncated=True)
            return
        if not self._cmds:
            if not self._desync:
                out.append(self._anomaly("UNABLE_TO_MATCH_REPLY_WITH_REQUEST", _TC))
            return
        verb = self._cmds.popleft()
        if verb == b"DATA" and self._mode is _Mode.DATA_WAIT:
            if code == 354:
                self._start_data(out)
            else:
                self._mode = _Mode.COMMAND     # refused: what the client sent next are commands
                held, self._wait = bytes(self._wait), bytearray()
                if self._tx is not None:
                    self._log(out)
                if held:
                    self._client(held, out)
        elif verb == b"STARTTLS" and code == 220:
            if self._tx is not None:
                self._log(out)
            self._mode = _Mode.TUNNEL
            self.tunnel = True
            rest = self._cl.take()
            if rest:
                self.tunnel_data = [*self.tunnel_data, (_TS, rest)]

    def _anomaly(self, name: str, d: Direction) -> Anomaly:
        return Anomaly(AnomalyKind.APPLAYER, name, APP, d, self._tx.tx_id if self._tx is not None else None)


_CLIENT_FIRST = (b"EHLO ", b"HELO ")


def probe_smtp(buf: bytes, d: Direction, ports: tuple[int, int] = (0, 0), other: bytes = b"") -> bool | None:
    """A client's EHLO/HELO, or a 220 greeting on an SMTP port. A 220
    elsewhere may be FTP's: then the client's first command (`other`, the
    bytes seen the other way) decides; until it comes, undecided."""
    if d is _TS:
        head = buf[:5].upper()
        if len(head) < 5:
            return None if any(p.startswith(head) for p in _CLIENT_FIRST) else False
        return head in _CLIENT_FIRST
    if len(buf) < 4:
        return None if b"220 "[: len(buf)] == buf or b"220-"[: len(buf)] == buf else False
    if buf[:4] not in (b"220 ", b"220-"):
        return False
    if ports[1] in SMTP_PORTS:
        return True
    if len(other) < 5:
        return None
    return other[:5].upper() in _CLIENT_FIRST
