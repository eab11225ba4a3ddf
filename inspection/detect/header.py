"""Where a rule is evaluated (its scope) and the checks outside its payload.

Suricata sorts rules into kinds that run at different moments, and the
alert counts depend on it: an IP-only rule (addresses and protocol, nothing
else) runs on the first packet of each direction of a flow; a packet rule
(payload content, or packet keywords such as ``flow``, ``flags``, ``dsize``)
on every packet, payload or not; a rule on application buffers once per
transaction; a ``tcp-stream`` rule on the reassembled stream. `scope_of`
makes that decision once per rule; `HeaderCheck` then answers, per packet or
transaction, everything the payload verifier does not look at: protocol and
application protocol, addresses and ports, flow state and direction options,
TCP flags, ICMP type and code, ``ip_proto``, fragments.

Keywords whose state we do not keep yet (``stream_size``, ``xbits``,
``flowint``, ``app-layer-event``, ``tls.version``) make `scope_of` refuse
the rule: a rule with a condition we cannot evaluate is skipped with its
reason, never run as if the condition held.
"""
from __future__ import annotations

import enum

from signatures.buffers import Buffer
from signatures.model import FlowbitCommand, FlowOption, Protocol, Rule, TcpFlagMode
from signatures.netspec import Intervals, intervals_contain

from inspection.detect.errors import UnsupportedRule
from inspection.flow.table import Flow, FlowState
from inspection.model import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Direction, Packet

IPPROTO_SCTP = 132
L4_PROTOS = _L4 = {Protocol.TCP: (IPPROTO_TCP,), Protocol.TCP_PKT: (IPPROTO_TCP,), Protocol.TCP_STREAM: (IPPROTO_TCP,),
       Protocol.UDP: (IPPROTO_UDP,), Protocol.ICMP: (IPPROTO_ICMP, IPPROTO_ICMPV6),
       Protocol.ICMPV4: (IPPROTO_ICMP,), Protocol.ICMPV6: (IPPROTO_ICMPV6,), Protocol.SCTP: (IPPROTO_SCTP,)}
# Suricata keeps a rule IP-only when its flowbits only write (set/unset/toggle), as ET's reputation lists do
_WRITE_FLOWBITS = frozenset({FlowbitCommand.SET, FlowbitCommand.UNSET, FlowbitCommand.TOGGLE})
_DIRECTION_ONLY = frozenset({FlowOption.TO_SERVER, FlowOption.TO_CLIENT})
# Suricata's names for what we call `http` (HTTP/1.x): ``http1`` is HTTP/1 only, ``http`` any version
_ALP_ALIASES = {"http1": "http"}
# What else a flow of these protocols is to a rule header (Suricata's AppProtoEquals):
# ``http`` rules see HTTP/2 flows, DNS-over-HTTP/2 flows are also http2 and dns
_HTTP2_FLOWS = {"http2": frozenset(), "doh2": frozenset({"http2", "dns"})}
_FUZZY = {"http": frozenset({"http2", "doh2"}), "http2": frozenset({"doh2"}), "dns": frozenset({"doh2"})}
_PAYLOAD_BUFFERS = frozenset({Buffer.PAYLOAD, Buffer.STREAM, Buffer.BASE64_DATA})


class Scope(enum.Enum):
    IP_ONLY = "ip-only"       # first packet of each flow direction
    PACKET = "packet"         # every packet (payload items need a payload)
    STREAM = "stream"         # reassembled TCP stream data
    TX = "tx"                 # application transactions (http, tls, dns records, bodies)
    EVENT = "event"           # a decoder, stream or app-layer event (decode-event, stream-event, app-layer-event)


def event_key(rule: Rule) -> str:
    """The event an EVENT rule waits for, named as `anomaly_key` names engine events."""
    return rule.events[0] if rule.events else rule.app_layer_events[0].lower()


def anomaly_key(event: str, app_proto: str | None) -> str:
    """An engine event's key: ``decoder.ipv4.trunc_pkt``, ``stream.x``, ``http.x`` for
    the app-layer event X of protocol http (``app-layer-event:http.x``), or a protocol
    detection event's lowercased name (``app-layer-event:applayer_mismatch_...``)."""
    return f"{app_proto}.{event.lower()}" if app_proto else event.lower()


def scope_of(rule: Rule) -> Scope:
    """The moment `rule` is evaluated; raises `UnsupportedRule` for conditions we do not evaluate."""
    for name, keyword in (("stream_size", "stream_size"), ("xbits", "xbits"), ("flowints", "flowint"),
                          ("tls_version", "tls.version")):
        if getattr(rule, name):
            raise UnsupportedRule(keyword, "its state is not tracked yet, so the condition cannot be evaluated")
    if rule.events or rule.app_layer_events:
        if len(rule.events) + len(rule.app_layer_events) > 1 or rule.buffers:
            raise UnsupportedRule("decode-event" if rule.events else "app-layer-event",
                                  "only one event per rule, without payload items, is supported")
        return Scope.EVENT
    buffers = {b.buffer for b in rule.buffers}
    if buffers - _PAYLOAD_BUFFERS or rule.urilen is not None:   # urilen reads the HTTP URI
        return Scope.TX
    flow = rule.flow
    if rule.protocol is Protocol.TCP_STREAM or (flow is not None and FlowOption.ONLY_STREAM in flow):
        if not buffers:
            raise UnsupportedRule("flow", "a stream-only rule without content has nothing to inspect")
        return Scope.STREAM
    if (not buffers and flow is None and rule.app_proto is None and not rule.app_layer_protocols
            and rule.protocol is not Protocol.TCP_PKT
            and rule.src_ports.is_any and rule.dst_ports.is_any
            and all(fb.command in _WRITE_FLOWBITS for fb in rule.flowbits)
            and rule.dsize is None and rule.tcp_flags is None and rule.itype is None and rule.icode is None
            and rule.ip_proto is None):
        return Scope.IP_ONLY
    return Scope.PACKET


def pd_only(rule: Rule) -> bool:
    """Suricata's protocol-detection-only rule: `app-layer-protocol` and nothing else to test
    on a packet (no payload, no packet keywords, no app-layer header protocol; ``flow`` with a
    direction only; flowbits only written). It is tried only on the packet that learns a
    direction's protocol, not on every packet of the flow."""
    flow = rule.flow
    return (bool(rule.app_layer_protocols) and not rule.buffers and rule.app_proto is None
            and (flow is None or flow.options <= _DIRECTION_ONLY)
            and all(fb.command in _WRITE_FLOWBITS for fb in rule.flowbits)
            and rule.dsize is None and rule.tcp_flags is None and rule.itype is None and rule.icode is None
            and rule.ip_proto is None and rule.urilen is None and rule.protocol is not Protocol.TCP_STREAM)


class _Header:
    """One rule's header, flattened once for the per-packet check."""

    __slots__ = ("app", "l4", "alps", "flow_opts", "pkt_checks", "sports", "dports", "src4", "src6", "dst4", "dst6",
                 "bidir", "tx_both", "pd", "any_http")

    # None means any (nothing to check). An address's "any" is told by its v4 set alone: the v6 set is
    # read only when the v4 one is set, so it stays a plain set and the per-packet check tests one None.
    sports: Intervals | None
    dports: Intervals | None
    src4: Intervals | None
    src6: Intervals
    dst4: Intervals | None
    dst6: Intervals

    def __init__(self, rule: Rule) -> None:
        p = rule.protocol
        self.app = "http2" if p is Protocol.HTTP2 else p.app_proto
        self.any_http = p is Protocol.HTTP   # ``http`` is either version, ``http1`` only HTTP/1 (Suricata 7)
        self.l4 = _L4.get(p) if self.app is None else None
        self.alps = rule.app_layer_protocols
        self.flow_opts = rule.flow.options if rule.flow is not None else None
        self.pkt_checks = (rule.tcp_flags is not None or rule.itype is not None or rule.icode is not None
                           or rule.ip_proto is not None)
        self.sports = None if rule.src_ports.is_any else rule.src_ports.ranges
        self.dports = None if rule.dst_ports.is_any else rule.dst_ports.ranges
        self.src4 = None if rule.src.is_any else rule.src.ipv4
        self.src6 = rule.src.ipv6
        self.dst4 = None if rule.dst.is_any else rule.dst.ipv4
        self.dst6 = rule.dst.ipv6
        self.bidir = rule.bidirectional
        self.tx_both = rule.transactional   # ``=>``: the header names the request's direction
        self.pd = pd_only(rule)

    def endpoints(self, src: bytes, sport: int, dst: bytes, dport: int) -> bool:
        if self.sports is not None and not _in(self.sports, sport):
            return False
        if self.dports is not None and not _in(self.dports, dport):
            return False
        if self.src4 is not None and not _in(self.src4 if len(src) == 4 else self.src6, int.from_bytes(src, "big")):
            return False
        return self.dst4 is None or _in(self.dst4 if len(dst) == 4 else self.dst6, int.from_bytes(dst, "big"))


_in = intervals_contain


class HeaderCheck:
    """The non-payload conditions of rules, checked against a flow, a direction and the current packet."""

    def __init__(self) -> None:
        self._headers: dict[int, _Header] = {}   # id(rule) -> its flattened header (rules outlive the check)

    def _header(self, rule: Rule) -> _Header:
        h = self._headers.get(id(rule))
        if h is None:
            h = self._headers[id(rule)] = _Header(rule)
        return h

    def __call__(self, rule: Rule, flow: Flow, d: Direction, pkt: Packet | None, est: bool) -> bool:
        """`est`: the flow counts as established for this packet (see `established`)."""
        h = self._headers.get(id(rule)) or self._header(rule)
        app = flow.app.proto if flow.app is not None else None
        if h.app is not None:
            if app != h.app and not (app in _HTTP2_FLOWS and (h.any_http or h.app in _HTTP2_FLOWS[app])):
                return False
        elif h.l4 is not None and flow.proto not in h.l4:
            return False
        if h.alps:
            if h.pd and (pkt is None or flow.app is None or flow.app.pd_now is not d):
                return False
            if not _alps_ok(h.alps, flow, app, d):
                return False
        if h.flow_opts is not None and not _flow_ok(h.flow_opts, est, pkt):
            return False
        if h.pkt_checks and pkt is not None and not _packet_ok(rule, pkt):
            return False
        if d == Direction.TO_SERVER or h.tx_both:
            src, sport, dst, dport = flow.cli, flow.cport, flow.srv, flow.sport
        else:
            src, sport, dst, dport = flow.srv, flow.sport, flow.cli, flow.cport
        if h.endpoints(src, sport, dst, dport):
            return True
        return h.bidir and h.endpoints(dst, dport, src, sport)

    def packet_only(self, rule: Rule, pkt: Packet) -> bool:
        """The header of a rule against a packet that has no flow (decoder events on
        fragments, packets that could not be decoded to a flow)."""
        h = self._header(rule)
        if h.app is not None or h.alps or h.flow_opts is not None or rule.flowbits:
            return False
        if h.l4 is not None and pkt.proto not in h.l4:
            return False
        if not _packet_ok(rule, pkt):
            return False
        if not pkt.src or not pkt.dst:
            return h.src4 is None and h.dst4 is None
        if h.endpoints(pkt.src, pkt.sport, pkt.dst, pkt.dport):
            return True
        return h.bidir and h.endpoints(pkt.dst, pkt.dport, pkt.src, pkt.sport)


def _alps_ok(alps: tuple, flow: Flow, app: str | None, d: Direction) -> bool:
    """`app-layer-protocol` options against the flow's protocols. Modes as Suricata's: the
    protocol of the packet's direction (default, ``direction``, ``exact``), of one direction
    (``to_server``/``to_client``), of the flow (``final``), before a tunnel (``original``),
    of either direction (``either``). A protocol not known yet decides nothing: neither
    ``http`` nor ``!http`` matches."""
    if app is None:
        return False
    a = flow.app
    dirs = a.dir_proto  # type: ignore[union-attr]
    for alp in alps:
        want = _ALP_ALIASES.get(alp.name, alp.name)
        mode = alp.mode
        fuzzy = _FUZZY.get(alp.name) if mode not in ("exact", "original", "either") else None
        if fuzzy and (dirs[d] or app) in fuzzy:
            want = dirs[d] or app   # Suricata's AppProtoEquals: ``http`` covers HTTP/2 unless ``exact``
        if mode == "original":
            seen = (a.orig or app) == want  # type: ignore[union-attr]
        elif mode == "either":
            seen = want in dirs or app == want or a.orig == want  # type: ignore[union-attr]
        elif mode == "final":
            seen = app == want
        elif mode == "to_server" or mode == "to_client":
            got = dirs[Direction.TO_SERVER if mode == "to_server" else Direction.TO_CLIENT]
            if got is None:
                return False
            seen = got == want
        else:   # the packet's direction; until that direction is decided, the flow's protocol
            seen = (dirs[d] or app) == want
        if seen == alp.negated:
            return False
    return True


def established(state: FlowState) -> bool:
    """``flow:established`` for a flow in `state`. For TCP the caller passes the state
    before the current packet: as in Suricata, the ACK completing the handshake is
    not yet an established packet, while a UDP reply is."""
    return state == FlowState.ESTABLISHED or state == FlowState.CLOSED


def _flow_ok(options: frozenset[FlowOption], est: bool, pkt: Packet | None) -> bool:
    if FlowOption.ESTABLISHED in options and not est:
        return False
    if FlowOption.NOT_ESTABLISHED in options and est:
        return False
    if pkt is not None:
        if FlowOption.ONLY_FRAG in options and not pkt.reassembled:
            return False
        if FlowOption.NO_FRAG in options and pkt.reassembled:
            return False
    return True


def _packet_ok(rule: Rule, pkt: Packet) -> bool:
    tf = rule.tcp_flags
    if tf is not None:
        if pkt.proto != IPPROTO_TCP:
            return False
        got = pkt.tcp_flags & ~tf.ignore & 0xFF
        mode = tf.mode
        if mode is TcpFlagMode.EXACT and got != tf.flags:
            return False
        if mode is TcpFlagMode.PLUS and got & tf.flags != tf.flags:
            return False
        if mode is TcpFlagMode.ANY and not got & tf.flags:
            return False
        if mode is TcpFlagMode.NOT and got & tf.flags:
            return False
    if rule.itype is not None or rule.icode is not None:
        if pkt.proto not in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            return False
        if rule.itype is not None and not rule.itype.matches(pkt.icmp_type):
            return False
        if rule.icode is not None and not rule.icode.matches(pkt.icmp_code):
            return False
    if rule.ip_proto is not None and not rule.ip_proto.matches(pkt.proto):
        return False
    return True
