"""The rule model: everything a Suricata-flavoured rule says, typed and validated.

A `Rule` is immutable and self-contained: variables are already resolved into
`AddressSpec`/`PortSpec`, content patterns are bytes, every option is a typed
field. The matcher compiler reads only this; it never sees rule text. Payload
items live in `signatures.matches` and are re-exported here so one import
gives the whole vocabulary.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Iterator

from signatures.buffers import Buffer, TransformKind
from signatures.matches import (
    Base64Decode, BufferBlock, ByteExtract, ByteJump, ByteOp, ByteTest, ContentMatch, Endian,
    FastPattern, IsDataAt, JumpFrom, Match, NumBase, PcreFlag, PcreMatch, SizeCheck, SizeOp, Transform, ValueRef,
)
from signatures.netspec import AddressSpec, PortSpec, Variables

__all__ = [
    "Action", "Protocol", "Target", "FlowOption", "Flow", "FlowbitCommand", "Flowbit", "XbitTrack", "Xbit",
    "FlowIntOp", "FlowInt", "ThresholdType", "Track", "Threshold", "Reference", "AppLayerProtocol",
    "TcpFlagMode", "TcpFlags", "StreamSide", "StreamSize", "Rule",
    # re-exported
    "AddressSpec", "PortSpec", "Variables", "Buffer", "TransformKind", "Transform", "BufferBlock", "Match",
    "ContentMatch", "PcreMatch", "PcreFlag", "IsDataAt", "ByteTest", "ByteJump", "ByteExtract", "Base64Decode",
    "ByteOp", "Endian", "NumBase", "JumpFrom", "FastPattern", "SizeCheck", "SizeOp", "ValueRef",
]

_NAME = re.compile(r"[A-Za-z0-9_.\-]+\Z")
_BIT_NAME = re.compile(r"[A-Za-z0-9_.\-/]+\Z")   # flowbits: "/" too, for traffic/id/... tags


class Action(enum.Enum):
    ALERT = "alert"
    DROP = "drop"
    REJECT = "reject"
    REJECTSRC = "rejectsrc"
    REJECTDST = "rejectdst"
    REJECTBOTH = "rejectboth"
    PASS = "pass"


class Protocol(enum.Enum):
    """The header protocol: packet level (ip, tcp, ...) or an application layer (http, dns, ...)."""

    IP = "ip"
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    ICMPV4 = "icmpv4"
    ICMPV6 = "icmpv6"
    SCTP = "sctp"
    PKTHDR = "pkthdr"
    TCP_PKT = "tcp-pkt"
    TCP_STREAM = "tcp-stream"
    HTTP = "http"
    HTTP1 = "http1"
    HTTP2 = "http2"
    TLS = "tls"
    DNS = "dns"
    SMTP = "smtp"
    FTP = "ftp"
    FTP_DATA = "ftp-data"
    SSH = "ssh"
    SMB = "smb"
    DCERPC = "dcerpc"
    DHCP = "dhcp"
    IMAP = "imap"
    POP3 = "pop3"
    NFS = "nfs"
    NTP = "ntp"
    TFTP = "tftp"
    IKE = "ike"
    KRB5 = "krb5"
    SNMP = "snmp"
    SIP = "sip"
    RFB = "rfb"
    MQTT = "mqtt"
    RDP = "rdp"
    QUIC = "quic"
    PGSQL = "pgsql"
    TELNET = "telnet"
    MODBUS = "modbus"
    DNP3 = "dnp3"
    ENIP = "enip"
    BITTORRENT_DHT = "bittorrent-dht"
    WEBSOCKET = "websocket"
    LDAP = "ldap"

    @property
    def app_proto(self) -> str | None:
        """The application protocol the header selects (``http`` for http1/http2), if any."""
        if self in _PACKET_PROTOS:
            return None
        return "http" if self in (Protocol.HTTP1, Protocol.HTTP2) else self.value


_PACKET_PROTOS = frozenset({Protocol.IP, Protocol.TCP, Protocol.UDP, Protocol.ICMP, Protocol.ICMPV4,
                            Protocol.ICMPV6, Protocol.SCTP, Protocol.PKTHDR, Protocol.TCP_PKT,
                            Protocol.TCP_STREAM})


class Target(enum.Enum):
    """``target``: which side of the alert is the target (for EVE ``source``/``target``)."""

    SRC_IP = "src_ip"
    DEST_IP = "dest_ip"


class FlowOption(enum.Enum):
    __hash__ = object.__hash__   # members are singletons: hash in C on the packet path
    ESTABLISHED = "established"
    NOT_ESTABLISHED = "not_established"
    STATELESS = "stateless"
    TO_SERVER = "to_server"
    TO_CLIENT = "to_client"
    ONLY_STREAM = "only_stream"
    NO_STREAM = "no_stream"
    ONLY_FRAG = "only_frag"
    NO_FRAG = "no_frag"


_FLOW_EXCLUSIVE = (
    frozenset({FlowOption.ESTABLISHED, FlowOption.NOT_ESTABLISHED, FlowOption.STATELESS}),
    frozenset({FlowOption.TO_SERVER, FlowOption.TO_CLIENT}),
    frozenset({FlowOption.ONLY_STREAM, FlowOption.NO_STREAM}),
    frozenset({FlowOption.ONLY_FRAG, FlowOption.NO_FRAG}),
)


@dataclass(frozen=True, slots=True)
class Flow:
    """``flow``: state, direction and stream conditions; contradictory sets are rejected."""

    options: frozenset[FlowOption]

    def __post_init__(self) -> None:
        if not self.options or not all(isinstance(o, FlowOption) for o in self.options):
            raise ValueError("flow needs at least one FlowOption")
        for group in _FLOW_EXCLUSIVE:
            if len(group & self.options) > 1:
                raise ValueError("conflicting flow options " + ",".join(sorted(o.value for o in group & self.options)))

    def __contains__(self, option: object) -> bool:
        return option in self.options

    @property
    def to_server(self) -> bool:
        return FlowOption.TO_SERVER in self.options

    @property
    def to_client(self) -> bool:
        return FlowOption.TO_CLIENT in self.options

    @property
    def established(self) -> bool:
        return FlowOption.ESTABLISHED in self.options


class FlowbitCommand(enum.Enum):
    SET = "set"
    UNSET = "unset"
    TOGGLE = "toggle"
    ISSET = "isset"
    ISNOTSET = "isnotset"

    @property
    def is_condition(self) -> bool:
        return self in (FlowbitCommand.ISSET, FlowbitCommand.ISNOTSET)


@dataclass(frozen=True, slots=True)
class Flowbit:
    """``flowbits:cmd,a`` or a group: ``a&b`` (all of them) or ``a|b`` (any, conditions only)."""

    command: FlowbitCommand
    names: tuple[str, ...]
    any_of: bool = False

    def __post_init__(self) -> None:
        if not self.names or not all(isinstance(n, str) and _BIT_NAME.match(n) for n in self.names):
            raise ValueError("flowbit names must be non-empty [A-Za-z0-9_.-/]")
        if self.any_of and not self.command.is_condition:
            raise ValueError("'|' groups are only allowed with isset/isnotset")


class XbitTrack(enum.Enum):
    IP_SRC = "ip_src"
    IP_DST = "ip_dst"
    IP_PAIR = "ip_pair"
    TX = "tx"


@dataclass(frozen=True, slots=True)
class Xbit:
    """``xbits:cmd,name,track ip_src[,expire N]``: a flowbit kept per host, pair or transaction."""

    command: FlowbitCommand
    name: str
    track: XbitTrack
    expire: int | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"bad xbit name {self.name!r}")
        if self.expire is not None and self.expire < 1:
            raise ValueError("xbits expire must be positive")


class FlowIntOp(enum.Enum):
    ADD = "+"
    SUB = "-"
    ASSIGN = "="
    EQ = "=="
    NE = "!="
    LT = "<"
    GT = ">"
    LE = "<="
    GE = ">="
    ISSET = "isset"
    NOTSET = "notset"

    @property
    def takes_value(self) -> bool:
        return self not in (FlowIntOp.ISSET, FlowIntOp.NOTSET)


@dataclass(frozen=True, slots=True)
class FlowInt:
    """``flowint:name,op[,value]``: a per-flow integer; `value` may name another flowint."""

    name: str
    op: FlowIntOp
    value: int | str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"bad flowint name {self.name!r}")
        if self.op.takes_value != (self.value is not None):
            raise ValueError(f"flowint {self.op.value} {'needs' if self.op.takes_value else 'takes no'} value")


class ThresholdType(enum.Enum):
    LIMIT = "limit"
    THRESHOLD = "threshold"
    BOTH = "both"
    DETECTION_FILTER = "detection_filter"


class Track(enum.Enum):
    BY_SRC = "by_src"
    BY_DST = "by_dst"
    BY_RULE = "by_rule"
    BY_BOTH = "by_both"
    BY_FLOW = "by_flow"


@dataclass(frozen=True, slots=True)
class Threshold:
    """``threshold`` or ``detection_filter`` (type DETECTION_FILTER): count events per track per seconds."""

    type: ThresholdType
    track: Track
    count: int
    seconds: int

    def __post_init__(self) -> None:
        if not isinstance(self.type, ThresholdType) or not isinstance(self.track, Track):
            raise TypeError("threshold needs a ThresholdType and a Track")
        if self.count < 1 or self.seconds < 1:
            raise ValueError("threshold count and seconds must be positive")


@dataclass(frozen=True, slots=True)
class Reference:
    """``reference:kind,value`` (``url,example.com/x``, ``cve,2021-1234``, ``md5,...``)."""

    kind: str
    value: str

    def __post_init__(self) -> None:
        if not self.kind or not self.value:
            raise ValueError("reference needs a kind and a value")


APP_LAYER_PROTOCOL_MODES = frozenset({"original", "final", "exact", "to_server", "to_client", "direction",
                                      "either"})


@dataclass(frozen=True, slots=True)
class AppLayerProtocol:
    """``app-layer-protocol:[!]name[,mode]``; `mode` is Suricata's (``final``, ``exact``, ``to_server``...)."""

    name: str
    negated: bool = False
    mode: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"bad app-layer protocol {self.name!r}")
        if self.mode is not None and self.mode not in APP_LAYER_PROTOCOL_MODES:
            raise ValueError(f"unknown app-layer-protocol mode {self.mode!r}")


class TcpFlagMode(enum.Enum):
    EXACT = ""     # exactly these (ignoring the mask)
    PLUS = "+"     # these and maybe others
    ANY = "*"      # any of these
    NOT = "!"      # none of these


@dataclass(frozen=True, slots=True)
class TcpFlags:
    """``flags:[+*!]SA[,CE]``: TCP flag bits (FIN=0x01 ... CWR=0x80) and bits to ignore."""

    mode: TcpFlagMode
    flags: int
    ignore: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.flags <= 0xFF or not 0 <= self.ignore <= 0xFF:
            raise ValueError("tcp flags are one byte")


class StreamSide(enum.Enum):
    SERVER = "server"
    CLIENT = "client"
    BOTH = "both"
    EITHER = "either"


@dataclass(frozen=True, slots=True)
class StreamSize:
    """``stream_size:side,op,N``: bytes seen so far on one side of the TCP stream."""

    side: StreamSide
    check: SizeCheck


@dataclass(frozen=True, slots=True)
class Rule:
    """One loaded rule. Field names follow Suricata's keywords.

    `priority` is resolved: the ``priority`` option, else the classtype's, else 3.
    `buffers` holds every payload item, grouped per inspected buffer, rule order
    kept inside each group. `ignored` lists options that were accepted but have
    no effect on matching (``tag``, ``rawbytes``, ...), for transparency.
    """

    action: Action
    protocol: Protocol
    src: AddressSpec
    src_ports: PortSpec
    dst: AddressSpec
    dst_ports: PortSpec
    bidirectional: bool
    msg: str
    sid: int
    rev: int = 0
    gid: int = 1
    classtype: str | None = None
    priority: int = 3
    references: tuple[Reference, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    target: Target | None = None
    flow: Flow | None = None
    flowbits: tuple[Flowbit, ...] = ()
    xbits: tuple[Xbit, ...] = ()
    flowints: tuple[FlowInt, ...] = ()
    noalert: bool = False
    threshold: Threshold | None = None
    app_layer_protocols: tuple[AppLayerProtocol, ...] = ()
    app_layer_events: tuple[str, ...] = ()
    events: tuple[str, ...] = ()          # decoder/stream events, as logged (``decoder.ipv4.trunc_pkt``)
    dsize: SizeCheck | None = None
    urilen: SizeCheck | None = None
    urilen_raw: bool = False
    itype: SizeCheck | None = None
    icode: SizeCheck | None = None
    tcp_flags: TcpFlags | None = None
    stream_size: tuple[StreamSize, ...] = ()
    ip_proto: SizeCheck | None = None
    tls_version: int | None = None
    buffers: tuple[BufferBlock, ...] = ()
    ignored: tuple[str, ...] = ()
    # ``=>`` (Suricata 8): one transaction's request and response together; the
    # header's source is the client, and both bodies are there to inspect
    transactional: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.action, Action) or not isinstance(self.protocol, Protocol):
            raise TypeError("action and protocol must be enums")
        if not all(isinstance(x, AddressSpec) for x in (self.src, self.dst)):
            raise TypeError("src/dst must be AddressSpec")
        if not all(isinstance(x, PortSpec) for x in (self.src_ports, self.dst_ports)):
            raise TypeError("ports must be PortSpec")
        if not isinstance(self.msg, str):
            raise TypeError("msg must be str")
        for name in ("sid", "gid"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 0xFFFFFFFF:
                raise ValueError(f"{name} must be 1..2^32-1")
        if not 0 <= self.rev <= 0xFFFFFFFF:
            raise ValueError("rev must be 0..2^32-1")
        if not 1 <= self.priority <= 255:
            raise ValueError("priority must be 1..255")
        if not all(isinstance(b, BufferBlock) for b in self.buffers):
            raise TypeError("buffers must be BufferBlock")
        if len({(b.buffer, b.transforms) for b in self.buffers}) != len(self.buffers):
            raise ValueError("one block per (buffer, transforms)")
        if self.tls_version is not None and not 0 <= self.tls_version <= 0xFFFF:
            raise ValueError("tls_version is a 16-bit version number")

    @property
    def key(self) -> tuple[int, int]:
        """(gid, sid): what makes a rule unique in a ruleset."""
        return (self.gid, self.sid)

    def matches(self) -> Iterator[tuple[BufferBlock, Match]]:
        """Every payload item with its block, blocks in rule order."""
        for block in self.buffers:
            for m in block.matches:
                yield block, m

    @property
    def fast_pattern(self) -> tuple[Buffer, ContentMatch] | None:
        """The content the rule writer chose for the prefilter (``fast_pattern``), if any."""
        for block, m in self.matches():
            if isinstance(m, ContentMatch) and m.fast_pattern is not None:
                return block.buffer, m
        return None

    @property
    def app_proto(self) -> str | None:
        """The application protocol implied by the header or the buffers used."""
        if self.protocol.app_proto:
            return self.protocol.app_proto
        for b in self.buffers:
            if b.buffer.app_proto:
                return b.buffer.app_proto
        return None

