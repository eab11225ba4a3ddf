"""DNS over UDP and TCP: message parser, `DnsMessage` record, flow parsers.

Sans-IO and modelled on Suricata 8 so the EVE "dns" events match its output:

- Every DNS message that parses is its own transaction. Transaction ids count
  0, 1, 2 ... per flow in message order, requests and responses alike (a query
  and its response do not share a transaction; Suricata 8 does not pair them,
  so there is no "unsolicited response" either).
- Data from the client is parsed as a request, data from the server as a
  response. A request with QR set is dropped with `not_a_request`; a response
  without QR is kept and flagged `not_a_response`.
- A message whose header fails the plausibility check (too short, more
  records than bytes, a request without questions, trailing data after an
  empty header) is ignored silently on UDP (junk before the first real query)
  and ends parsing of the flow on TCP. A message that fails later is dropped
  with `malformed_data`. Events that belong to no new message are attached to
  the flow's most recent transaction (`tx_id` None when there is none yet).
- TCP messages carry a two-byte length prefix; a zero length is skipped. After
  a gap the stream is resynchronised by probing, as Suricata does.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from inspection.applayer.dns_rdata import (
    Incomplete, NameFlag, Rdata, WireError, WireReader, rcode_name, rrtype_name,
)
from inspection.model import Anomaly, AnomalyKind, AppOutput, Direction

APP_PROTO = "dns"
HEADER_LEN = 12
MAX_TCP_MESSAGE = 0xFFFF

QR, AA, TC, RD, RA, Z, AD, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010

# Suricata's DNS app-layer event names.
EV_MALFORMED = "malformed_data"
EV_NOT_REQUEST = "not_a_request"
EV_NOT_RESPONSE = "not_a_response"
EV_Z_FLAG = "z_flag_set"
EV_INVALID_OPCODE = "invalid_opcode"
EV_NAME_TOO_LONG = "name_too_long"
EV_INFINITE_LOOP = "infinite_loop"
EV_TOO_MANY_LABELS = "too_many_labels"
EV_INVALID_ADDITIONALS = "invalid_additionals"
EV_INVALID_AUTHORITIES = "invalid_authorities"


@dataclass(frozen=True, slots=True)
class DnsQuery:
    rrname: bytes
    rrtype: int
    rrclass: int
    rrname_truncated: bool = False

    @property
    def rrtype_name(self) -> str:
        return rrtype_name(self.rrtype)


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One answer, authority or additional resource record."""

    rrname: bytes
    rrtype: int
    rrclass: int
    ttl: int
    rdata: Rdata
    rrname_truncated: bool = False

    @property
    def rrtype_name(self) -> str:
        return rrtype_name(self.rrtype)


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """One DNS message (request or response) as one transaction.

    `direction` is the direction of the packet that carried it; messages from
    the client are requests, messages from the server responses. `events`
    holds the app-layer event names raised while parsing this message (they
    are also returned as `Anomaly` values next to the record).
    """

    event_type: ClassVar[str] = "dns"
    app_proto: ClassVar[str] = APP_PROTO

    direction: Direction
    tx_id: int
    id: int
    flags: int
    queries: tuple[DnsQuery, ...] = ()
    answers: tuple[DnsRecord, ...] = ()
    authorities: tuple[DnsRecord, ...] = ()
    additionals: tuple[DnsRecord, ...] = ()
    events: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.flags <= 0xFFFF or not 0 <= self.id <= 0xFFFF:
            raise ValueError("DNS id and flags are 16-bit")
        if self.tx_id < 0:
            raise ValueError("tx_id must be >= 0")
        object.__setattr__(self, "direction", Direction(self.direction))

    @property
    def message_type(self) -> str:
        return "request" if self.direction is Direction.TO_SERVER else "response"

    @property
    def qr(self) -> bool:
        return bool(self.flags & QR)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def aa(self) -> bool:
        return bool(self.flags & AA)

    @property
    def tc(self) -> bool:
        return bool(self.flags & TC)

    @property
    def rd(self) -> bool:
        return bool(self.flags & RD)

    @property
    def ra(self) -> bool:
        return bool(self.flags & RA)

    @property
    def z(self) -> bool:
        return bool(self.flags & Z)

    @property
    def ad(self) -> bool:
        return bool(self.flags & AD)

    @property
    def cd(self) -> bool:
        return bool(self.flags & CD)

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @property
    def rcode_name(self) -> str:
        return rcode_name(self.flags)


# --- wire format -------------------------------------------------------------

class HeaderInvalid(WireError):
    """Internal: the header is implausible; the message is not DNS."""


_HEADER = struct.Struct("!6H")


class _Header(NamedTuple):
    id: int
    flags: int
    qdcount: int
    ancount: int
    nscount: int
    arcount: int


class ParsedMessage(NamedTuple):
    """A message body as parsed, before it becomes a transaction."""

    header: _Header
    queries: tuple[DnsQuery, ...]
    answers: tuple[DnsRecord, ...]
    authorities: tuple[DnsRecord, ...]
    additionals: tuple[DnsRecord, ...]
    invalid_authorities: bool
    invalid_additionals: bool
    name_flags: int


def _header(data: bytes) -> _Header:
    if len(data) < HEADER_LEN:
        raise Incomplete("header")
    return _Header._make(_HEADER.unpack_from(data))


def _header_plausible(h: _Header, length: int) -> tuple[bool, bool]:
    """Suricata's probe_header_validity: (is_dns, is_request)."""
    records = h.qdcount + h.ancount + h.nscount + h.arcount
    if 2 * records > length:
        return False, False
    if records == 0 and length > HEADER_LEN:
        return False, False
    is_request = not h.flags & QR
    if is_request and h.qdcount == 0:
        return False, False
    return True, is_request


def _records(rd: WireReader, pos: int, count: int) -> tuple[list[DnsRecord], int]:
    end = len(rd.msg)
    out: list[DnsRecord] = []
    for _ in range(count):
        name, nf, pos = rd.name(pos, end)
        rrtype = rd.u16(pos, end)
        rrclass = rd.u16(pos + 2, end)
        ttl = rd.u32(pos + 4, end)
        rdlen = rd.u16(pos + 8, end)
        start, pos = pos + 10, pos + 10 + rdlen
        if pos > end:
            raise Incomplete("rdata")
        out.append(DnsRecord(name, rrtype, rrclass, ttl, rd.rdata(rrtype, start, pos),
                             bool(nf & NameFlag.TRUNCATED)))
    return out, pos


def parse_message(data: bytes, *, validate: bool = True) -> ParsedMessage:
    """Parse one complete DNS message.

    Raises `HeaderInvalid` (with `validate`), `Incomplete` or `Malformed`.
    The authority and additional sections may fail without failing the
    message; that is reported in `invalid_authorities`/`invalid_additionals`.
    """
    if len(data) < HEADER_LEN:
        raise HeaderInvalid("short") if validate else Incomplete("header")
    h = _header(data)
    if validate and not _header_plausible(h, len(data))[0]:
        raise HeaderInvalid("implausible counts")
    rd = WireReader(data)
    end = len(data)
    pos = HEADER_LEN
    queries = []
    for _ in range(h.qdcount):
        name, nf, pos = rd.name(pos, end)
        queries.append(DnsQuery(name, rd.u16(pos, end), rd.u16(pos + 2, end),
                                bool(nf & NameFlag.TRUNCATED)))
        pos += 4
    answers, pos = _records(rd, pos, h.ancount)
    authorities: list[DnsRecord] = []
    additionals: list[DnsRecord] = []
    invalid_auth = invalid_add = False
    try:
        authorities, pos = _records(rd, pos, h.nscount)
    except WireError:
        invalid_auth = True
    if not invalid_auth:
        try:
            additionals, pos = _records(rd, pos, h.arcount)
        except WireError:
            invalid_add = True
    return ParsedMessage(h, tuple(queries), tuple(answers), tuple(authorities),
                         tuple(additionals), invalid_auth, invalid_add, rd.name_flags)


class DnsProbe(NamedTuple):
    is_dns: bool
    is_request: bool
    incomplete: bool


def _probe(data: bytes, dlen: int) -> DnsProbe:
    data = data[:dlen]
    if len(data) < dlen:
        if len(data) < HEADER_LEN:
            return DnsProbe(False, False, False)
        ok, req = _header_plausible(_header(data), dlen)
        return DnsProbe(ok, req, False)
    try:
        parsed = parse_message(data, validate=False)
    except Incomplete:
        return DnsProbe(False, False, True)
    except WireError:
        return DnsProbe(False, False, False)
    ok, req = _header_plausible(parsed.header, dlen)
    return DnsProbe(ok, req, False)


def _probe_tcp(data: bytes) -> DnsProbe:
    if len(data) < 2:
        return DnsProbe(False, False, True)
    return _probe(data[2:], (data[0] << 8) | data[1])


def probe_dns_udp(data: bytes) -> bool:
    """Does this datagram hold a plausible DNS message (header and body)?"""
    return len(data) >= HEADER_LEN and _probe(data, len(data)).is_dns


def probe_dns_tcp(data: bytes) -> bool | None:
    """Does this stream start with a length-prefixed DNS message?

    None while fewer than 14 bytes are available; with a partial message only
    the header is checked, as Suricata does.
    """
    if len(data) < HEADER_LEN + 2:
        return None
    return _probe_tcp(data).is_dns


def probe_dns_is_request(data: bytes, *, tcp: bool = False) -> bool | None:
    """For flow orientation: True if `data` looks like a DNS request, False if
    a DNS response, None if it does not look like DNS (or is too short)."""
    if tcp:
        if len(data) < HEADER_LEN + 2:
            return None
        p = _probe_tcp(data)
    else:
        if len(data) < HEADER_LEN:
            return None
        p = _probe(data, len(data))
    return p.is_request if p.is_dns else None


# --- per-flow state ------------------------------------------------------------

class _Transactions:
    """Transaction numbering and event attachment shared by both directions."""

    __slots__ = ("next_tx",)

    def __init__(self) -> None:
        self.next_tx = 0

    @property
    def last_tx(self) -> int | None:
        return self.next_tx - 1 if self.next_tx else None

    def late_event(self, event: str, direction: Direction) -> Anomaly:
        return Anomaly(AnomalyKind.APPLAYER, event, APP_PROTO, direction, self.last_tx)

    def handle(self, direction: Direction, data: bytes, *, tcp: bool) -> tuple[bool, list[AppOutput]]:
        """Parse one message. Returns (keep parsing, outputs)."""
        try:
            parsed = parse_message(data)
        except HeaderInvalid:
            return not tcp, []
        except WireError:
            return False, [self.late_event(EV_MALFORMED, direction)]
        except Exception:  # pragma: no cover - defensive: hostile input never raises
            return False, [self.late_event(EV_MALFORMED, direction)]
        h = parsed.header
        if direction is Direction.TO_SERVER and h.flags & QR:
            return False, [self.late_event(EV_NOT_REQUEST, direction)]
        events = _events(parsed, direction)
        msg = DnsMessage(direction, self.next_tx, h.id, h.flags, parsed.queries, parsed.answers,
                         parsed.authorities, parsed.additionals, events)
        self.next_tx += 1
        out: list[AppOutput] = [msg]
        out.extend(Anomaly(AnomalyKind.APPLAYER, ev, APP_PROTO, direction, msg.tx_id) for ev in events)
        return True, out


def message_outputs(direction: Direction, data: bytes, tx_id: int) -> list[AppOutput]:
    """One whole DNS message carried by another protocol (DNS over HTTP/2 bodies and
    ``?dns=`` parameters) as transaction `tx_id` and its events; nothing if it is not DNS."""
    txs = _Transactions()
    txs.next_tx = tx_id
    return txs.handle(Direction(direction), data, tcp=True)[1]


def _events(parsed: ParsedMessage, direction: Direction) -> tuple[str, ...]:
    flags, nf = parsed.header.flags, parsed.name_flags
    events = []
    if parsed.invalid_additionals:
        events.append(EV_INVALID_ADDITIONALS)
    if parsed.invalid_authorities:
        events.append(EV_INVALID_AUTHORITIES)
    if direction is Direction.TO_CLIENT and not flags & QR:
        events.append(EV_NOT_RESPONSE)
    if flags & Z:
        events.append(EV_Z_FLAG)
    if (flags >> 11) & 0xF >= 7:
        events.append(EV_INVALID_OPCODE)
    if nf & NameFlag.TRUNCATED:
        events.append(EV_NAME_TOO_LONG)
    if nf & NameFlag.INFINITE_LOOP:
        events.append(EV_INFINITE_LOOP)
    if nf & NameFlag.LABEL_LIMIT:
        events.append(EV_TOO_MANY_LABELS)
    return tuple(events)


class DnsUdpParser:
    """DNS over UDP: one datagram per `feed` call."""

    app_proto = APP_PROTO

    def __init__(self) -> None:
        self._txs = _Transactions()

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]:
        _, out = self._txs.handle(Direction(direction), bytes(data), tcp=False)
        return out

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]:
        return []

    def close(self, ts: float) -> list[AppOutput]:
        return []


class DnsTcpParser:
    """DNS over TCP: in-order stream bytes, two-byte length framing.

    Buffers at most one message (65537 bytes) per direction. A message that
    fails to parse ends parsing of the whole flow, as in Suricata. `queries` are
    the client's messages that its latest data completed, in order, and `pending`
    the bytes it left of the next one: the live path answers a blocked query
    itself, whether it came in several segments or several came in one.
    """

    app_proto = APP_PROTO

    def __init__(self) -> None:
        self._txs = _Transactions()
        self._buf = {Direction.TO_SERVER: bytearray(), Direction.TO_CLIENT: bytearray()}
        self._gap = False       # one flag for both directions, as in Suricata
        self._failed = False
        self.queries: list[bytes] = []

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]:
        if self._failed or not data:
            return []
        direction = Direction(direction)
        if direction is Direction.TO_SERVER:
            self.queries = []
        buf = self._buf[direction]
        buf += data
        if self._gap:
            p = _probe_tcp(bytes(buf))
            if p.is_dns or p.incomplete:
                self._gap = False
            elif direction is Direction.TO_CLIENT:
                buf.clear()
                return []
            # Suricata's request side goes on parsing here.
        out: list[AppOutput] = []
        pos, n = 0, len(buf)
        while n - pos >= 2:
            size = (buf[pos] << 8) | buf[pos + 1]
            if size == 0:
                pos += 2
                continue
            if n - pos < size + 2:
                break
            msg = bytes(buf[pos + 2:pos + 2 + size])
            if direction is Direction.TO_SERVER:
                self.queries.append(msg)
            keep, produced = self._txs.handle(direction, msg, tcp=True)
            out.extend(produced)
            if not keep:
                self._fail()
                return out
            pos += size + 2
        del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of the client's next message received so far."""
        return len(self._buf[Direction.TO_SERVER])

    def _fail(self) -> None:
        self._failed = True
        for b in self._buf.values():
            b.clear()

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]:
        if length > 0 and not self._failed:
            self._gap = True
            self._buf[Direction(direction)].clear()
        return []

    def held(self) -> int:
        """Bytes of unfinished messages kept (both directions)."""
        return len(self._buf[Direction.TO_SERVER]) + len(self._buf[Direction.TO_CLIENT])

    def shed(self, ts: float) -> list[AppOutput]:
        """Forget what `held` counts (the app-layer memcap), as after a gap in both directions."""
        if not self._failed and self.held():
            self._gap = True
        self._buf = {Direction.TO_SERVER: bytearray(), Direction.TO_CLIENT: bytearray()}   # freed, not kept
        return []

    def close(self, ts: float) -> list[AppOutput]:
        for b in self._buf.values():
            b.clear()
        return []
