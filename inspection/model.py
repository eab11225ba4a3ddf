"""Shared vocabulary of the inspection engine.

Everything that crosses a module boundary inside `inspection` is one of these
types. Records emitted by the application parsers are frozen; the decoded packet
view is a mutable slotted object because the decoders fill it layer by layer on
the hot path (one allocation per packet).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol, Union

from firmware.base.values import value

# IP protocol numbers the engine tracks as flows.
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58

PROTO_NAMES = {IPPROTO_ICMP: "ICMP", IPPROTO_TCP: "TCP", IPPROTO_UDP: "UDP", IPPROTO_ICMPV6: "IPv6-ICMP"}

# TCP flag bits.
TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK, TH_URG, TH_ECE, TH_CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80


class Direction(enum.IntEnum):
    """Direction of data relative to the flow's client (the side that opened it)."""

    TO_SERVER = 0
    TO_CLIENT = 1

    @property
    def other(self) -> "Direction":
        return _OTHER[self]   # not Direction(1 - self): an enum call per use on the packet path

    @property
    def eve_name(self) -> str:
        return "to_server" if self is Direction.TO_SERVER else "to_client"


_OTHER = (Direction.TO_CLIENT, Direction.TO_SERVER)


class AnomalyKind(enum.Enum):
    """Where an anomaly was found; the EVE `anomaly.type` field."""

    DECODE = "decode"
    STREAM = "stream"
    APPLAYER = "applayer"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something malformed or suspicious, under a stable name.

    Decode and stream names follow Suricata's (``decoder.ipv4.trunc_pkt``,
    ``stream.reassembly_overlap_different_data``); application-layer names are
    the parser's own event names (``UNABLE_TO_MATCH_RESPONSE_TO_REQUEST``,
    ``invalid_opcode``) with `app_proto` set.
    """

    kind: AnomalyKind
    event: str
    app_proto: str | None = None
    direction: Direction | None = None
    tx_id: int | None = None

    def __post_init__(self) -> None:
        if not self.event:
            raise ValueError("anomaly needs an event name")


@dataclass(slots=True)
class Packet:
    """Decoded view of one captured frame (layer 3 and 4 headers plus payload).

    Addresses are kept as packed bytes (4 or 16) and formatted only when an
    event is written. `anomalies` collects decode-level findings; a packet whose
    `l4_ok` is False could not be decoded down to its transport header.
    """

    ts: float
    pcap_cnt: int
    wire_len: int
    family: int = 0                     # 4 or 6; 0 if no IP layer was found
    src: bytes = b""
    dst: bytes = b""
    proto: int = 0
    sport: int = 0
    dport: int = 0
    ip_len: int = 0                     # IP datagram length (header + payload)
    ttl: int = 0
    ip_id: int = 0
    vlan: tuple[int, ...] = ()
    tcp_flags: int = 0
    seq: int = 0
    ack: int = 0
    window: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    payload: bytes = b""
    l4_ok: bool = False
    checksum_ok: bool = True            # False only when validation ran and failed
    reassembled: bool = False           # built from IP fragments
    fragment: object | None = None      # inspection.decode.defrag.Fragment while not yet reassembled
    tunnel_depth: int = 0               # GRE/ERSPAN/Teredo layers peeled so far
    inner: "Packet | None" = None       # a tunnelled packet carried as payload (Teredo)
    anomalies: list[Anomaly] = field(default_factory=list)


class AppRecord(Protocol):
    """A finished (or flushed) application-layer record: an HTTP transaction,
    a TLS handshake summary, a DNS message. `event_type` names the EVE type.

    Read-only members: records are frozen, and most name their type in a ClassVar."""

    @property
    def event_type(self) -> str: ...

    @property
    def tx_id(self) -> int: ...

    @property
    def direction(self) -> Direction: ...


AppOutput = Union["AppRecord", Anomaly, "BodyChunk"]


@value
class BodyChunk:
    """Decoded message-body bytes of one transaction, in order.

    Emitted by parsers that carry files (HTTP, later mail) so that file
    extraction and `file.data` matching can follow without buffering whole
    bodies in the parser. `final` marks the end of that body; `truncated`
    says the body ended before it was complete (gap, flow end, limit).
    `gap` (with empty `data`) says that many body bytes are missing here.
    `method` and `content_type` are the request method and the message's
    Content-Type, which decide whether and how the body is a file (request
    bodies of POST/PUT, multipart uploads split into parts). `length` is the
    body's size as its Content-Length announces it when no content coding
    changes it (None: not known before the end).
    """

    app_proto: str
    tx_id: int
    direction: Direction
    data: bytes
    final: bool = False
    truncated: bool = False
    filename: str | None = None
    gap: int = 0
    method: str | None = None
    content_type: str | None = None
    length: int | None = None


class AppParser(Protocol):
    """Sans-IO application parser bound to one flow.

    `feed` gets in-order stream data (TCP) or one datagram (UDP) for one
    direction and returns what it completed. `gap` tells it `length` bytes are
    missing in that direction. `close` is called once at flow end and flushes
    unfinished transactions. None of them may raise on hostile input: problems
    are returned as `Anomaly` values.
    """

    app_proto: str

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]: ...

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]: ...

    def close(self, ts: float) -> list[AppOutput]: ...


class HoldsBytes(AppParser, Protocol):
    """A parser that keeps bytes of unfinished messages between calls (HTTP/1 and HTTP/2
    heads, DNS over TCP, TLS handshakes, SMTP after DATA): `held` counts them for the
    app-layer memcap, `shed` forgets them as if they were a gap (what it finished on the
    way is returned) and leaves `held` at 0 (inspection.applayer.memory)."""

    def held(self) -> int: ...

    def shed(self, ts: float) -> list[AppOutput]: ...
