"""SSH: the identification strings ("banners") of both sides, then nothing.

``SSH-protoversion-softwareversion SP comments CR LF`` (RFC 4253 section 4.2)
is all there is to see in clear text: after it the key exchange starts and the
rest is encrypted. The parser records each side's banner, emits one `ssh`
record (Suricata's EVE ``ssh`` event: client and server proto_version and
software_version) when both are known, or at flow end with what it has, and is
then `done` so reassembly can stop. A server may send other lines before its
banner; a client may not, but we are lenient. Lines are bounded: a side that
sends more than `MAX_PREAMBLE` bytes without a banner is given up on, with an
anomaly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from inspection.model import Anomaly, AnomalyKind, AppOutput, Direction

APP = "ssh"
BANNER_PREFIX = b"SSH-"
MAX_BANNER = 255        # RFC 4253: at most 255 characters, CR LF included
MAX_PREAMBLE = 8192     # bytes a server may send before its banner before we give up


def probe_ssh(data: bytes, direction: Direction) -> bool | None:
    """True: starts with an SSH identification string ("SSH-2.0-", "SSH-1.99-"); None: too short."""
    if len(data) < len(BANNER_PREFIX):
        return None if BANNER_PREFIX.startswith(data) else False
    if not data.startswith(BANNER_PREFIX):
        return False
    rest = data[len(BANNER_PREFIX):len(BANNER_PREFIX) + 5]
    if not rest:
        return None
    return rest[:1].isdigit()


@dataclass(frozen=True, slots=True)
class SshBanner:
    proto_version: str
    software_version: str
    comments: str = ""


def parse_banner(line: bytes) -> SshBanner | None:
    """``SSH-2.0-OpenSSH_8.9 Ubuntu`` -> its parts; None if the line is not a banner."""
    if not line.startswith(BANNER_PREFIX):
        return None
    body = line[len(BANNER_PREFIX):].rstrip(b"\r\n").decode("latin-1")
    proto, sep, rest = body.partition("-")
    if not sep or not proto:
        return None
    software, _, comments = rest.partition(" ")
    return SshBanner(proto, software, comments)


@dataclass(frozen=True, slots=True)
class SshRecord:
    """Both sides' identification (either may be None if the flow ended first)."""

    event_type: ClassVar[str] = APP
    tx_id: int
    direction: Direction
    client: SshBanner | None
    server: SshBanner | None


class SshParser:
    """Reads each direction up to its banner line, then ignores the encrypted rest."""

    app_proto = APP

    def __init__(self) -> None:
        self._buf = [bytearray(), bytearray()]
        self._seen = [0, 0]
        self._banner: list[SshBanner | None] = [None, None]
        self._closed = [False, False]      # banner read, or given up on
        self._emitted = False
        self.done = False

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]:
        if self._closed[direction] or self._emitted:
            return []
        out: list[AppOutput] = []
        buf = self._buf[direction]
        buf += data
        while not self._closed[direction]:
            nl = buf.find(b"\n")
            if nl < 0:   # a partial line: bounded by the banner length, or by the preamble allowance
                if buf.startswith(BANNER_PREFIX) and len(buf) > MAX_BANNER:
                    out.append(self._give_up(direction, "long_banner"))
                elif self._seen[direction] + len(buf) > MAX_PREAMBLE:
                    out.append(self._give_up(direction, "invalid_banner"))
                break
            line = bytes(buf[:nl + 1])
            del buf[:nl + 1]
            self._seen[direction] += len(line)
            if line.startswith(BANNER_PREFIX):
                banner = parse_banner(line) if len(line) <= MAX_BANNER else None
                if banner is None:
                    out.append(self._give_up(direction, "long_banner" if len(line) > MAX_BANNER else "invalid_banner"))
                else:
                    self._banner[direction] = banner
                    self._closed[direction] = True
                    buf.clear()
            elif self._seen[direction] > MAX_PREAMBLE:
                out.append(self._give_up(direction, "invalid_banner"))
        if all(self._closed):
            out.extend(self._emit())
        return out

    def _give_up(self, direction: Direction, event: str) -> Anomaly:
        self._closed[direction] = True
        self._buf[direction].clear()
        return Anomaly(AnomalyKind.APPLAYER, event, APP, direction)

    def _emit(self) -> list[AppOutput]:
        if self._emitted:
            return []
        self._emitted = True
        self.done = True
        client, server = self._banner
        if client is None and server is None:
            return []
        return [SshRecord(0, Direction.TO_SERVER, client, server)]

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]:
        if not self._closed[direction]:
            self._closed[direction] = True
            self._buf[direction].clear()
        return self._emit() if all(self._closed) else []

    def close(self, ts: float) -> list[AppOutput]:
        return self._emit()
