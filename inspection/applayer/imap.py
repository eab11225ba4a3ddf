"""IMAP application parser (RFC 9051/3501): enough to take messages out of
FETCH responses and APPEND commands.

Sans-IO, one instance per flow. Both directions are read as lines that may
carry literals: a line ending in ``{N}`` (or ``{N+}``, ``~{N}``) is followed
by exactly N bytes, then the line goes on. Lengths are read as digits, never
trusted beyond the data: a literal is streamed, not buffered. A literal that
is a whole message (server: after ``BODY[]``, ``BODY[]<n>``, ``RFC822``,
``BINARY[]``; client: the message of APPEND) goes through the MIME walker,
so its attachments become files (app_proto imap). After a tagged OK to
STARTTLS the flow turns into TLS (`tunnel`).

One transaction per tagged command, logged at its tagged completion (or at
flow end); messages fetched by a command belong to the oldest command still
open. Suricata only detects IMAP (no parser, no log); the ``imap`` event here
is this project's own, documented in docs/mail.md.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import ClassVar

from inspection.applayer.mail_message import EmailSummary, LineReader, MessageFiles
from inspection.model import Anomaly, AnomalyKind, AppOutput, Direction

__all__ = ["ImapParser", "ImapTransaction", "probe_imap"]

APP = "imap"
MAX_LINE = 8192
MAX_OPEN = 256
MAX_LITERAL = 1 << 40        # a length beyond this is not believed (INVALID_LITERAL); the line is skipped
_TS, _TC = Direction.TO_SERVER, Direction.TO_CLIENT
_LITERAL = re.compile(rb"~?\{(\d{1,20})\+?\}\r?\n$")
_WHOLE_MESSAGE = re.compile(rb"(?:BODY\[\](?:<\d+>)?|BINARY\[\](?:<\d+>)?|RFC822)\s*$", re.I)
_TAG_OK = re.compile(rb"^(\S+) (OK|NO|BAD)\b", re.I)


@dataclass(frozen=True, slots=True)
class ImapTransaction:
    """A tagged command and how it completed (`status` None: not seen).
    `messages` counts messages taken out of its FETCH/APPEND literals;
    `email` summarises the first of them."""

    event_type: ClassVar[str] = "imap"
    tx_id: int
    direction: Direction
    tag: str
    command: str
    status: str | None
    messages: int
    email: EmailSummary | None


class _Read(enum.Enum):
    LINE = "line"
    LITERAL = "literal"
    TUNNEL = "tunnel"


class _Cmd:
    __slots__ = ("tx_id", "tag", "command", "messages", "email")

    def __init__(self, tx_id: int, tag: bytes, command: bytes) -> None:
        self.tx_id = tx_id
        self.tag = tag.decode("latin-1")[:64]
        self.command = command.decode("latin-1")[:64]
        self.messages = 0
        self.email: EmailSummary | None = None


class _Side:
    """One direction: its line reader and the literal being read."""

    __slots__ = ("d", "lines", "read", "left", "msg", "head")

    def __init__(self, d: Direction) -> None:
        self.d = d
        self.lines = LineReader(MAX_LINE)
        self.read = _Read.LINE
        self.left = 0                          # literal bytes still to come
        self.msg: MessageFiles | None = None   # the literal is a message being walked
        self.head = b""                        # the first line of a command continued by literals


class ImapParser:
    """IMAP parser bound to one flow (see the module docstring)."""

    app_proto = APP

    __slots__ = ("_sides", "_open", "_next_tx", "_starttls", "tunnel", "tunnel_data")

    def __init__(self) -> None:
        self._sides = (_Side(_TS), _Side(_TC))
        self._open: dict[str, _Cmd] = {}     # tag -> open command, in order
        self._next_tx = 0
        self._starttls: str | None = None
        self.tunnel = False
        self.tunnel_data: list[tuple[Direction, bytes]] | tuple = ()

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]:
        out: list[AppOutput] = []
        side = self._sides[direction]
        while data:
            if side.read is _Read.TUNNEL or self.tunnel:
                self.tunnel_data = [*self.tunnel_data, (direction, data)]
                break
            if side.read is _Read.LITERAL:
                data = self._literal(side, data, out)
            else:
                data = self._lines(side, data, out)
        return out

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]:
        side = self._sides[direction]
        out: list[AppOutput] = []
        if side.read is _Read.LITERAL:
            n = min(length, side.left)
            if side.msg is not None:
                out.extend(side.msg.gap(n))
            side.left -= n
            if side.left == 0:
                self._end_literal(side, out, truncated=True)
        else:
            side.lines.take()
        return out

    def close(self, ts: float) -> list[AppOutput]:
        out: list[AppOutput] = []
        for side in self._sides:
            if side.read is _Read.LITERAL:
                self._end_literal(side, out, truncated=True)
        for cmd in list(self._open.values()):
            self._log(cmd, None, out)
        self._open.clear()
        return out

    # -- reading ----------------------------------------------------------------------------

    def _lines(self, side: _Side, data: bytes, out: list[AppOutput]) -> bytes:
        lr = side.lines
        lr.buf += data
        for line in lr.lines_until(lambda: side.read is not _Read.LINE or self.tunnel):
            if line is None:
                out.append(Anomaly(AnomalyKind.APPLAYER, "TOO_MANY_BYTES_IN_LINE", APP, side.d))
                continue
            self._line(side, line, out)
        return lr.take() if side.read is not _Read.LINE or self.tunnel else b""

    def _line(self, side: _Side, line: bytes, out: list[AppOutput]) -> None:
        first = not side.head
        if first:
            side.head = line[:256]
        m = _LITERAL.search(line)
        if m is not None:
            n = int(m.group(1))
            if n > MAX_LITERAL:
                out.append(Anomaly(AnomalyKind.APPLAYER, "INVALID_LITERAL", APP, side.d))
                side.head = b""
                return
            before = line[: m.start()]
            if side.d is _TS and first:
                self._command(side.head, out)
            if n:
                side.read, side.left = _Read.LITERAL, n
                if self._is_message(side, before):
                    cmd = self._owner(side)
                    tx_id = cmd.tx_id if cmd is not None else self._next_tx
                    side.msg = MessageFiles(APP, tx_id, side.d)
            return
        head, side.head = side.head, b""
        if side.d is _TS:
            if first:
                self._command(head, out)
        elif first:
            self._response(head.rstrip(b"\r\n"), out)

    def _is_message(self, side: _Side, before: bytes) -> bool:
        if side.d is _TC:
            return side.head.startswith(b"* ") and _WHOLE_MESSAGE.search(before) is not None
        words = side.head.split(None, 2)
        return len(words) >= 2 and words[1].upper() == b"APPEND"

    def _owner(self, side: _Side) -> _Cmd | None:
        if side.d is _TS:
            return next(reversed(self._open.values()), None) if self._open else None
        return next(iter(self._open.values()), None) if self._open else None

    def _literal(self, side: _Side, data: bytes, out: list[AppOutput]) -> bytes:
        n = min(side.left, len(data))
        if side.msg is not None:
            out.extend(side.msg.feed(data[:n]))
        side.left -= n
        if side.left == 0:
            self._end_literal(side, out, truncated=False)
        return data[n:]

    def _end_literal(self, side: _Side, out: list[AppOutput], truncated: bool) -> None:
        side.read, side.left = _Read.LINE, 0
        msg, side.msg = side.msg, None
        if msg is None:
            return
        files, email = msg.finish(truncated)
        out.extend(files)
        cmd = self._owner(side)
        if cmd is not None:
            cmd.messages += 1
            if cmd.email is None:
                cmd.email = email
        else:
            out.append(ImapTransaction(msg.tx_id, _TS, "", "", None, 1, email))
            self._next_tx = max(self._next_tx, msg.tx_id + 1)

    # -- commands and completions -----------------------------------------------------------

    def _command(self, line: bytes, out: list[AppOutput]) -> None:
        last = next(reversed(self._open.values()), None) if self._open else None
        if last is not None and (last.command == "AUTHENTICATE"
                                 or (last.command == "IDLE" and line.strip().upper() == b"DONE")):
            return    # AUTHENTICATE's SASL responses (credentials: never logged), IDLE's DONE
        words = line.split(None, 3)
        if len(words) < 2:
            out.append(Anomaly(AnomalyKind.APPLAYER, "INVALID_COMMAND", APP, _TS))
            return
        tag, verb = words[0], words[1].upper()
        if verb == b"UID" and len(words) > 2:
            verb = b"UID " + words[2].upper()
        if len(self._open) >= MAX_OPEN:
            oldest = next(iter(self._open))
            self._log(self._open.pop(oldest), None, out)
            out.append(Anomaly(AnomalyKind.APPLAYER, "TOO_MANY_OPEN_COMMANDS", APP, _TS))
        cmd = _Cmd(self._next_tx, tag, verb)
        self._next_tx += 1
        if cmd.tag in self._open:
            self._log(self._open.pop(cmd.tag), None, out)
        self._open[cmd.tag] = cmd
        if verb == b"STARTTLS":
            self._starttls = cmd.tag

    def _response(self, line: bytes, out: list[AppOutput]) -> None:
        if line.startswith((b"* ", b"+")) or not line:
            return
        m = _TAG_OK.match(line)
        if m is None:
            out.append(Anomaly(AnomalyKind.APPLAYER, "INVALID_RESPONSE", APP, _TC))
            return
        tag = m.group(1).decode("latin-1")
        cmd = self._open.pop(tag, None)
        if cmd is None:
            out.append(Anomaly(AnomalyKind.APPLAYER, "UNEXPECTED_RESPONSE", APP, _TC))
            return
        status = m.group(2).upper().decode("ascii")
        self._log(cmd, status, out)
        if tag == self._starttls and status == "OK":
            self.tunnel = True
            for side in self._sides:
                side.read = _Read.TUNNEL
                rest = side.lines.take()
                if rest:    # the TLS handshake's first bytes, for whoever parses it next
                    self.tunnel_data = [*self.tunnel_data, (side.d, rest)]

    def _log(self, cmd: _Cmd, status: str | None, out: list[AppOutput]) -> None:
        out.append(ImapTransaction(cmd.tx_id, _TS, cmd.tag, cmd.command, status, cmd.messages, cmd.email))


def probe_imap(buf: bytes, d: Direction, ports: tuple[int, int] = (0, 0)) -> bool | None:
    """The server's untagged greeting ``* OK`` / ``* PREAUTH`` (IMAP only)."""
    if d is _TS:
        return False
    for g in (b"* OK ", b"* PREAUTH "):
        if buf[: len(g)].upper() == g:
            return True
        if len(buf) < len(g) and g.startswith(buf.upper()):
            return None
    return False
