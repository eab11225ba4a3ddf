"""Binds the detector to the engine: which buffers a packet or a transaction
offers, and the rule-header checks the detector leaves to its caller
(protocol, addresses, ports, flow state, flowbits).

Sans-IO like the engine: it is handed flows, packets and records and returns
`Hit`s; the engine turns them into `alert` events.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from inspection.applayer.dns import DnsMessage
from inspection.applayer.http_tx import HttpTransaction
from inspection.applayer.tls import TlsRecord
from inspection.detect.engine import Detector
from inspection.detect.header import HeaderCheck, Scope, established
from inspection.detect.iponly import IpOnlyIndex
from inspection.flow.table import Flow, FlowState
from inspection.model import IPPROTO_TCP, BodyChunk, Direction, Packet
from signatures.buffers import Buffer
from signatures.model import Action, Flowbit, FlowbitCommand, Rule


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
    """What detection keeps per flow: flowbits, whether a ``pass`` rule matched, and HTTP
    bodies on their way to file.data / http.request_body rules (bodies may end
    before or after their transaction is logged, so each side waits for the other)."""

    __slots__ = ("flowbits", "passed", "bodies", "done_bodies", "waiting_txs")

    def __init__(self) -> None:
        self.flowbits: set[str] = set()
        self.passed = False
        self.bodies: dict[tuple[int, Direction], bytearray] = {}
        self.done_bodies: dict[tuple[int, Direction], bytes] = {}
        self.waiting_txs: dict[int, HttpTransaction] = {}


def _state(flow: Flow) -> FlowDetectState:
    st = flow.detect
    if st is None:
        st = flow.detect = FlowDetectState()
    return st


class RuleInspector:
    """Runs the detector at the moments Suricata does (see `header.Scope`) and applies
    the rule header, flowbits and ``pass`` to what it finds."""

    def __init__(self, detector: Detector, *, body_limit: int = 1 << 20) -> None:
        self.detector = detector
        self.body_limit = body_limit
        self.header = HeaderCheck()
        self.ip_only = IpOnlyIndex(detector.ip_only) if detector.ip_only else None
        self._bare = detector.has_bare_packet_rules

    # -- what is inspected ---------------------------------------------------------------------
    def packet(self, flow: Flow, pkt: Packet, d: Direction, before: FlowState | None = None) -> list[Hit]:
        """Every packet of a flow: IP-only rules on the first one each way, packet rules on all.

        `before` is the flow's state before this packet (TCP's established test uses it)."""
        st = flow.detect
        if st is not None and st.passed:
            return []
        first = (flow.pkts_tc if d else flow.pkts_ts) == 1
        payload = pkt.payload
        if not payload and not self._bare and not (first and self.ip_only is not None):
            return []
        est = established(before if before is not None and flow.proto == IPPROTO_TCP else flow.state)
        found: list[tuple[int, Rule]] = []
        if first and self.ip_only is not None:
            src, dst = (flow.srv, flow.cli) if d else (flow.cli, flow.srv)
            header = self.header
            for idx in sorted(self.ip_only.candidates(pkt.family, src, dst)):
                rule = self.detector.rules[idx]
                if header(rule, flow, d, pkt, est):
                    found.append((idx, rule))
        buffers = {Buffer.PAYLOAD: payload} if payload else {}
        found += self._matches(flow, d, buffers, pkt, len(payload), Scope.PACKET, est)
        return self._hits(flow, d, found, None)

    def record(self, flow: Flow, rec: object) -> list[Hit]:
        st = flow.detect
        if st is not None and st.passed:
            return []
        if isinstance(rec, HttpTransaction):
            hits = self._tx(flow, Direction.TO_SERVER, http_request_buffers(rec), rec)
            if rec.status is not None:
                hits += self._tx(flow, Direction.TO_CLIENT, http_response_buffers(rec), rec)
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
            return self._tx(flow, Direction.TO_SERVER, tls_buffers(rec), rec)
        if isinstance(rec, DnsMessage):
            if rec.direction is not Direction.TO_SERVER:
                return []
            hits: list[Hit] = []
            for q in rec.queries:
                hits += self._tx(flow, rec.direction, {Buffer.DNS_QUERY: q.rrname}, rec)
            return hits
        return []

    def body_chunk(self, flow: Flow, chunk: BodyChunk) -> list[Hit]:
        """Collect decoded body bytes (up to the body limit per message); a finished
        body is inspected with its transaction, whichever of the two comes last."""
        st = _state(flow)
        if st.passed:
            return []
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
            hits += self._tx(flow, Direction.TO_SERVER, {Buffer.HTTP_REQUEST_BODY: request}, rec)
        if response:
            hits += self._tx(flow, Direction.TO_CLIENT, {Buffer.FILE_DATA: response}, rec)
        return hits

    # -- matching ------------------------------------------------------------------------------
    def _tx(self, flow: Flow, d: Direction, buffers: Mapping[Buffer, bytes], rec: object) -> list[Hit]:
        found = self._matches(flow, d, buffers, None, None, Scope.TX, established(flow.state))
        return self._hits(flow, d, found, rec)

    def _matches(self, flow: Flow, d: Direction, buffers: Mapping[Buffer, bytes], pkt: Packet | None,
                 size: int | None, scope: Scope, est: bool) -> list[tuple[int, Rule]]:
        header = self.header
        st = flow.detect
        bits = st.flowbits if st is not None else _NO_BITS
        out: list[tuple[int, Rule]] = []

        def check(rule: Rule) -> bool:
            return header(rule, flow, d, pkt, est) and (not rule.flowbits or _flowbits_ok(rule, bits))

        def matched(rule: Rule) -> None:
            nonlocal bits
            if rule.flowbits:
                bits = _state(flow).flowbits = _apply_flowbits(rule, bits)

        for m in self.detector.inspect(buffers, direction=d, header_check=check, packet_size=size, scope=scope,
                                       on_match=matched):
            out.append((m.index, m.rule))
        return out

    def _hits(self, flow: Flow, d: Direction, found: list[tuple[int, Rule]], rec: object | None) -> list[Hit]:
        """Alerts from what matched: a ``pass`` match passes the whole flow and silences the
        packet (Suricata applies pass before drop, reject and alert), ``noalert`` rules only
        set their flowbits."""
        if not found:
            return []
        if any(rule.action is Action.PASS for _, rule in found):
            _state(flow).passed = True
            return []
        found.sort(key=lambda x: x[0])
        return [Hit(rule, d, rec) for _, rule in found if not rule.noalert]


_NO_BITS: frozenset[str] = frozenset()


def _flowbits_ok(rule: Rule, bits: "set[str] | frozenset[str]") -> bool:
    for fb in rule.flowbits:
        cmd = fb.command
        if cmd is FlowbitCommand.ISSET and not _any_or_all(fb, bits, True):
            return False
        if cmd is FlowbitCommand.ISNOTSET and not _any_or_all(fb, bits, False):
            return False
    return True


def _any_or_all(fb: Flowbit, bits: "set[str] | frozenset[str]", present: bool) -> bool:
    hits = [(n in bits) == present for n in fb.names]
    return any(hits) if fb.any_of else all(hits)


def _apply_flowbits(rule: Rule, bits: "set[str] | frozenset[str]") -> set[str]:
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
