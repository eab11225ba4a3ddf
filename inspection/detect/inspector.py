"""Binds the detector to the engine: which buffers a packet or a transaction
offers, and the rule-header checks the detector leaves to its caller
(protocol, addresses, ports, flow state, flowbits).

Sans-IO like the engine: it is handed flows, packets and records and returns
`Hit`s; the engine turns them into `alert` events.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

from inspection.applayer.dns import DnsMessage
from inspection.applayer.http_tx import HttpTransaction
from inspection.applayer.tls import TlsRecord
from inspection.detect.engine import Detector
from inspection.detect.thresholds import Outcome, ThresholdTable
from inspection.flow.table import Flow, FlowState
from inspection.model import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, BodyChunk, Direction, Packet
from signatures.buffers import Buffer
from signatures.model import Action, Flowbit, FlowbitCommand, Protocol, Rule

_L4 = {Protocol.TCP: IPPROTO_TCP, Protocol.TCP_PKT: IPPROTO_TCP, Protocol.TCP_STREAM: IPPROTO_TCP,
       Protocol.UDP: IPPROTO_UDP}


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule matched on this flow in `direction`; `record` is the transaction it matched, if any."""

    rule: Rule
    direction: Direction
    record: object | None

    @property
    def blocked(self) -> bool:
        return self.rule.action in (Action.DROP, Action.REJECT)


class FlowDetectState:
    """What detection keeps per flow: flowbits, and HTTP bodies on their way to
    file.data / http.request_body rules (bodies may end before or after their
    transaction is logged, so each side waits for the other)."""

    __slots__ = ("flowbits", "bodies", "done_bodies", "waiting_txs")

    def __init__(self) -> None:
        self.flowbits: set[str] = set()
        self.bodies: dict[tuple[int, Direction], bytearray] = {}
        self.done_bodies: dict[tuple[int, Direction], bytes] = {}
        self.waiting_txs: dict[int, HttpTransaction] = {}


def _state(flow: Flow) -> FlowDetectState:
    st = flow.detect
    if st is None:
        st = flow.detect = FlowDetectState()
    return st


class RuleInspector:
    def __init__(self, detector: Detector, *, body_limit: int = 1 << 20) -> None:
        self.detector = detector
        self.body_limit = body_limit
        self._ip: dict[bytes, ipaddress.IPv4Address | ipaddress.IPv6Address] = {}
        self.thresholds = ThresholdTable()   # threshold / detection_filter state of every flow

    # -- what is inspected ---------------------------------------------------------------------
    def packet(self, flow: Flow, pkt: Packet, d: Direction) -> list[Hit]:
        if not pkt.payload:
            return []
        return self._run(flow, d, {Buffer.PAYLOAD: pkt.payload}, None, len(pkt.payload))

    def record(self, flow: Flow, rec: object) -> list[Hit]:
        if isinstance(rec, HttpTransaction):
            hits = self._run(flow, Direction.TO_SERVER, http_request_buffers(rec), rec, None)
            if rec.status is not None:
                hits += self._run(flow, Direction.TO_CLIENT, http_response_buffers(rec), rec, None)
            st = flow.detect
            if st is not None:
                req = st.done_bodies.pop((rec.tx_id, Direction.TO_SERVER), b"")
                resp = st.done_bodies.pop((rec.tx_id, Direction.TO_CLIENT), b"")
                if req or resp:
                    hits += self._bodies(flow, rec, req, resp)
                if any(k[0] == rec.tx_id for k in st.bodies):
                    st.waiting_txs[rec.tx_id] = rec  # its body is still arriving
            return hits
        if isinstance(rec, TlsRecord):
            return self._run(flow, Direction.TO_SERVER, tls_buffers(rec), rec, None)
        if isinstance(rec, DnsMessage):
            if rec.direction is not Direction.TO_SERVER:
                return []
            hits: list[Hit] = []
            for q in rec.queries:
                hits += self._run(flow, rec.direction, {Buffer.DNS_QUERY: q.rrname}, rec, None)
            return hits
        return []

    def body_chunk(self, flow: Flow, chunk: BodyChunk) -> list[Hit]:
        """Collect decoded body bytes (up to the body limit per message); a finished
        body is inspected with its transaction, whichever of the two comes last."""
        st = _state(flow)
        key = (chunk.tx_id, chunk.direction)
        buf = st.bodies.get(key)
        if buf is None:
            buf = st.bodies[key] = bytearray()
        room = self.body_limit - len(buf)
        if room > 0:
            buf += chunk.data[:room]
        if not chunk.final:
            return []
        done = bytes(st.bodies.pop(key))
        tx = st.waiting_txs.pop(chunk.tx_id, None)
        if tx is None:
            st.done_bodies[key] = done
            return []
        req, resp = (done, b"") if chunk.direction == Direction.TO_SERVER else (b"", done)
        return self._bodies(flow, tx, req, resp)

    def _bodies(self, flow: Flow, rec: HttpTransaction, request: bytes, response: bytes) -> list[Hit]:
        hits: list[Hit] = []
        if request:
            hits += self._run(flow, Direction.TO_SERVER, {Buffer.HTTP_REQUEST_BODY: request}, rec, None)
        if response:
            hits += self._run(flow, Direction.TO_CLIENT, {Buffer.FILE_DATA: response}, rec, None)
        return hits

    # -- matching ------------------------------------------------------------------------------
    def _run(self, flow: Flow, d: Direction, buffers: Mapping[Buffer, bytes], rec: object | None,
             size: int | None) -> list[Hit]:
        bits = flow.detect.flowbits if flow.detect is not None else set()

        def header(rule: Rule) -> bool:
            return self._header_ok(rule, flow, d) and _flowbits_ok(rule, bits)

        hits = []
        for m in self.detector.inspect(buffers, direction=d, header_check=header, packet_size=size):
            rule = m.rule
            if rule.flowbits:
                bits = _state(flow).flowbits = _apply_flowbits(rule, bits)
            if rule.noalert:  # flowbits:noalert or noalert
                continue
            if rule.threshold is not None and not self._threshold_alerts(rule, flow, d):
                continue  # held back by threshold/detection_filter; its flowbits are already applied
            hits.append(Hit(rule, d, rec))
        return hits

    def _threshold_alerts(self, rule: Rule, flow: Flow, d: Direction) -> bool:
        """Whether this match alerts; `flow.last` is the current packet's timestamp."""
        src, dst = (flow.cli, flow.srv) if d == Direction.TO_SERVER else (flow.srv, flow.cli)
        return self.thresholds.check(rule, src, dst, flow.flow_id, flow.last) is Outcome.ALERT

    def _header_ok(self, rule: Rule, flow: Flow, d: Direction) -> bool:
        p = rule.protocol
        app = flow.app.proto if flow.app is not None else None
        if p.app_proto is not None:
            if app != p.app_proto:
                return False
        elif p in _L4:
            if flow.proto != _L4[p]:
                return False
        elif p in (Protocol.ICMP, Protocol.ICMPV4, Protocol.ICMPV6) and flow.proto not in (IPPROTO_ICMP,
                                                                                            IPPROTO_ICMPV6):
            return False
        for alp in rule.app_layer_protocols:
            if (app == alp.name) == alp.negated:
                return False
        f = rule.flow
        if f is not None:
            if f.established and flow.state != FlowState.ESTABLISHED and flow.state != FlowState.CLOSED:
                return False
        if d == Direction.TO_SERVER:
            src, sport, dst, dport = flow.cli, flow.cport, flow.srv, flow.sport
        else:
            src, sport, dst, dport = flow.srv, flow.sport, flow.cli, flow.cport
        if self._endpoints_ok(rule, src, sport, dst, dport):
            return True
        return rule.bidirectional and self._endpoints_ok(rule, dst, dport, src, sport)

    def _endpoints_ok(self, rule: Rule, src: bytes, sport: int, dst: bytes, dport: int) -> bool:
        if not rule.src_ports.is_any and not rule.src_ports.contains(sport):
            return False
        if not rule.dst_ports.is_any and not rule.dst_ports.contains(dport):
            return False
        if not rule.src.is_any and not rule.src.contains(self._addr(src)):
            return False
        return rule.dst.is_any or rule.dst.contains(self._addr(dst))

    def _addr(self, raw: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        a = self._ip.get(raw)
        if a is None:
            if len(self._ip) > 65536:
                self._ip.clear()
            a = self._ip[raw] = ipaddress.ip_address(raw)
        return a


def _flowbits_ok(rule: Rule, bits: set[str]) -> bool:
    for fb in rule.flowbits:
        cmd = fb.command
        if cmd is FlowbitCommand.ISSET and not _any_or_all(fb, bits, True):
            return False
        if cmd is FlowbitCommand.ISNOTSET and not _any_or_all(fb, bits, False):
            return False
    return True


def _any_or_all(fb: Flowbit, bits: set[str], present: bool) -> bool:
    hits = [(n in bits) == present for n in fb.names]
    return any(hits) if fb.any_of else all(hits)


def _apply_flowbits(rule: Rule, bits: set[str]) -> set[str]:
    bits = set(bits)
    for fb in rule.flowbits:
        for n in fb.names:
            if fb.command is FlowbitCommand.SET:
                bits.add(n)
            elif fb.command is FlowbitCommand.UNSET:
                bits.discard(n)
            elif fb.command is FlowbitCommand.TOGGLE:
                bits ^= {n}
    return bits


# -- buffers of each transaction type ----------------------------------------------------------
def _b(s: str | None) -> bytes | None:
    return None if s is None else s.encode("latin-1", "replace")


def _headers(pairs: tuple[tuple[str, str], ...], skip: frozenset[str] = frozenset()) -> bytes:
    return b"".join(_b(f"{n}: {v}\r\n") for n, v in pairs if n.lower() not in skip)  # type: ignore[misc]


def _header(pairs: tuple[tuple[str, str], ...], name: str) -> bytes | None:
    for n, v in pairs:
        if n.lower() == name:
            return _b(v)
    return None


def http_request_buffers(tx: HttpTransaction) -> dict[Buffer, bytes]:
    out: dict[Buffer, bytes | None] = {
        Buffer.HTTP_URI: _b(tx.normalized_uri or tx.uri),
        Buffer.HTTP_URI_RAW: _b(tx.uri),
        Buffer.HTTP_HOST: _b(tx.host.lower()) if tx.host else None,
        Buffer.HTTP_HOST_RAW: _header(tx.request_headers, "host"),
        Buffer.HTTP_METHOD: _b(tx.method),
        Buffer.HTTP_USER_AGENT: _b(tx.user_agent),
        Buffer.HTTP_HEADER: _headers(tx.request_headers, frozenset({"cookie"})) or None,
        Buffer.HTTP_HEADER_RAW: _headers(tx.request_headers) or None,
        Buffer.HTTP_COOKIE: _header(tx.request_headers, "cookie"),
        Buffer.HTTP_REFERER: _b(tx.referer),
        Buffer.HTTP_REQUEST_LINE: _b(tx.request_line),
        Buffer.HTTP_PROTOCOL: _b(tx.protocol),
        Buffer.HTTP_ACCEPT: _header(tx.request_headers, "accept"),
        Buffer.HTTP_CONNECTION: _header(tx.request_headers, "connection"),
    }
    return {k: v for k, v in out.items() if v is not None}


def http_response_buffers(tx: HttpTransaction) -> dict[Buffer, bytes]:
    out: dict[Buffer, bytes | None] = {
        Buffer.HTTP_STAT_CODE: _b(str(tx.status)) if tx.status is not None else None,
        Buffer.HTTP_HEADER: _headers(tx.response_headers, frozenset({"set-cookie"})) or None,
        Buffer.HTTP_HEADER_RAW: _headers(tx.response_headers) or None,
        Buffer.HTTP_COOKIE: _header(tx.response_headers, "set-cookie"),
        Buffer.HTTP_CONTENT_TYPE: _header(tx.response_headers, "content-type"),
        Buffer.HTTP_RESPONSE_LINE: _b(tx.response_line),
        Buffer.HTTP_SERVER: _header(tx.response_headers, "server"),
        Buffer.HTTP_LOCATION: _b(tx.redirect),
    }
    line = tx.response_line
    if line:
        parts = line.split(" ", 2)
        if len(parts) == 3:
            out[Buffer.HTTP_STAT_MSG] = _b(parts[2])
    return {k: v for k, v in out.items() if v is not None}


def tls_buffers(rec: TlsRecord) -> dict[Buffer, bytes]:
    out: dict[Buffer, bytes | None] = {
        Buffer.TLS_SNI: _b(rec.sni),
        Buffer.TLS_CERT_SUBJECT: _b(rec.subject),
        Buffer.TLS_CERT_ISSUER: _b(rec.issuerdn),
        Buffer.TLS_CERT_SERIAL: _b(rec.serial),
        Buffer.TLS_CERT_FINGERPRINT: _b(rec.fingerprint),
        Buffer.JA3_HASH: _b(rec.ja3_hash),
        Buffer.JA3_STRING: _b(rec.ja3),
        Buffer.JA3S_HASH: _b(rec.ja3s_hash),
        Buffer.JA3S_STRING: _b(rec.ja3s),
        Buffer.JA4_HASH: _b(rec.ja4),
    }
    return {k: v for k, v in out.items() if v is not None}
