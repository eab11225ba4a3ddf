"""Binds the detector to the engine: when a packet, the stream or a
transaction is inspected and with which buffers (a transaction's are built
in `txbuffers`), and the rule-header checks the detector leaves to its
caller (protocol, addresses, ports, flow state, flowbits).

Sans-IO like the engine: it is handed flows, packets and records and returns
`Hit`s; the engine turns them into `alert` events.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

from inspection.applayer.dns import DnsMessage
from inspection.applayer.http_tx import HttpTransaction
from inspection.applayer.ssh import SshRecord
from inspection.applayer.tls import TlsRecord
from inspection.detect.engine import Detector
from inspection.detect.flowbits import apply_flowbits, flowbits_ok
from inspection.detect.header import HeaderCheck, Scope, anomaly_key, established
from inspection.detect.iponly import IpOnlyIndex
from inspection.detect.thresholds import Outcome, ThresholdTable
from inspection.detect.txbuffers import field_bytes, http_request_buffers, http_response_buffers, tls_buffers
from inspection.detect.vars import keep_vars
from inspection.flow.table import Flow, FlowState
from inspection.model import IPPROTO_TCP, IPPROTO_UDP, Anomaly, BodyChunk, Direction, Packet
from signatures.buffers import Buffer
from signatures.model import Action, Rule


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule matched on this flow in `direction`; `record` is the transaction it matched, if any."""

    rule: Rule
    direction: Direction
    record: object | None
    stream: bytes | None = None   # for a stream match: the stream data inspected (gaps marked), as logged
    timeout: bool = False         # found when the flow ended, not on a packet
    # pcre captures (Suricata's vars): this rule's alert vars, the packet's pkt vars, the flow's flow vars
    context: tuple[tuple[str, bytes], ...] = ()
    pktvars: tuple[tuple[str, bytes], ...] = ()
    flowvars: tuple[tuple[str, bytes], ...] = ()

    @property
    def blocked(self) -> bool:
        return self.rule.action in (Action.DROP, Action.REJECT)


class FlowDetectState:
    """What detection keeps per flow: flowbits, whether a ``pass`` rule matched, and HTTP
    bodies on their way to file.data / http.request_body rules (bodies may end
    before or after their transaction is logged, so each side waits for the other)."""

    __slots__ = ("flowbits", "passed", "bodies", "bodies_done", "done_bodies", "waiting_txs", "stream_tail",
                 "stream_alerted", "stream_pending", "stream_pending_len", "tx_seen", "pending",
                 "request_bodies", "flowvars")

    # Made for every inspected HTTP flow (tens of thousands on a box): shared empty
    # immutables until something is kept, containers only while they hold something.
    def __init__(self) -> None:
        self.flowbits: "set[str] | frozenset[str]" = _NO_BITS
        self.passed = False
        self.tx_seen: frozenset[tuple[int, Direction]] = _NO_KEYS       # HTTP heads already inspected
        self.pending: tuple[tuple[HttpTransaction, Direction], ...] = ()  # finished, not yet inspected that way
        self.stream_tail: list[bytes] | None = None        # per direction: the end of the stream so far
        self.stream_alerted: frozenset[tuple[int, Direction]] = _NO_KEYS
        # per direction: stream data (bytes) and gaps (int lengths) not inspected yet
        self.stream_pending: list[list[bytes | int]] | None = None
        self.stream_pending_len = 0
        self.bodies: dict[tuple[int, Direction], bytearray] | None = None
        self.done_bodies: dict[tuple[int, Direction], bytes] | None = None
        self.bodies_done: frozenset[tuple[int, Direction]] = _NO_KEYS   # inspected before their stream ended
        self.waiting_txs: dict[int, HttpTransaction] | None = None
        self.request_bodies: dict[int, bytes] | None = None   # kept for response rules that read them (`=>`)
        self.flowvars: dict[str, bytes] | None = None   # pcre captures kept on the flow (flow:NAME)


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
        self.wants_stream = detector.has_stream_rules
        self._tx_rules = detector.has_tx_rules       # else transactions are not inspected at all
        self._tx_dirs = detector.tx_rules_by_direction   # per direction: else that way is not inspected
        self._body_rules = detector.has_body_rules   # else bodies are not collected
        self._stream_ports = _ports_of(detector.rules[i] for i in detector.stream_rules)
        self.thresholds = ThresholdTable()   # threshold / detection_filter state of every flow

    # -- what is inspected ---------------------------------------------------------------------
    def packet(self, flow: Flow, pkt: Packet, d: Direction, before: FlowState | None = None) -> list[Hit]:
        """Every packet of a flow: IP-only rules on the first one each way, packet rules on all.

        `before` is the flow's state before this packet (TCP's established test uses it).
        The first packet going a way whose protocol was just decided also runs the
        protocol-only rules (`header.pd_only`)."""
        app = flow.app
        if app is None or not app.pd_pending[d]:
            return self._packet(flow, pkt, d, before)
        app.pd_pending[d] = False
        app.pd_now = d
        try:
            return self._packet(flow, pkt, d, before)
        finally:
            app.pd_now = None

    def _packet(self, flow: Flow, pkt: Packet, d: Direction, before: FlowState | None) -> list[Hit]:
        st = flow.detect
        if st is not None and st.passed:
            return []
        first = (flow.pkts_tc if d else flow.pkts_ts) == 1
        payload = pkt.payload
        ends = (pkt.proto, pkt.sport, pkt.dport) if pkt.proto in _PORTED else (pkt.proto, 0, 0)
        cands = self.detector.packet_candidates(payload, ends) if payload or self._bare else set()
        extra = None
        if first and self.ip_only is not None:   # run in rule order with the rest (flowbits order)
            src, dst = (flow.srv, flow.cli) if d else (flow.cli, flow.srv)
            extra = self.ip_only.candidates(pkt.family, src, dst) or None
        if not cands and not extra:
            return []   # most packets end here: no candidate after the prefilter and the port groups
        est = established(before if before is not None and flow.proto == IPPROTO_TCP else flow.state)
        buffers = {Buffer.PAYLOAD: payload} if payload else {}
        found = self._matches(flow, d, buffers, pkt, len(payload), Scope.PACKET, est, only=frozenset(cands),
                              extra=extra)
        return self._hits(flow, d, found, None)

    def event(self, flow: Flow | None, pkt: Packet | None, a: Anomaly, d: Direction) -> list[Hit]:
        """An engine event (decoder, stream, app layer): the rules waiting for it, checked
        against its flow, or its packet if it has none."""
        idxs = self.detector.event_rules.get(anomaly_key(a.event, a.app_proto))
        if not idxs:
            return []
        if flow is None:
            if pkt is None:
                return []
            rules = self.detector.rules
            return [Hit(r, d, None) for r in (rules[i] for i in idxs)
                    if self.header.packet_only(r, pkt) and r.action is not Action.PASS and not r.noalert
                    and (r.threshold is None or self._threshold_alerts(r, pkt.src, pkt.dst, 0, pkt.ts))]
        st = flow.detect
        if st is not None and st.passed:
            return []
        found = self._matches(flow, d, {}, pkt, None, Scope.EVENT, established(flow.state), only=frozenset(idxs))
        return self._hits(flow, d, found, None)

    def stream_wanted(self, flow: Flow) -> bool:
        """Whether any stream rule may apply to this flow (by its ports): only those
        flows keep reassembling raw stream data after their parser is done."""
        if not self.wants_stream:
            return False   # the common case: one attribute test on the per-packet path
        ports = self._stream_ports
        return ports is None or flow.sport in ports or flow.cport in ports

    def stream(self, flow: Flow, d: Direction, data: bytes) -> list[Hit]:
        """Reassembled stream data in direction `d` for ``tcp-stream`` / ``only_stream``
        rules. It waits for the next packet going the same way (`progress`) or the
        flow's end (`flush`), as Suricata inspects a direction's raw stream on that
        direction's packets once the data is acknowledged; past `STREAM_PENDING_MAX`
        waiting bytes it is inspected at once."""
        st = _state(flow)
        if st.passed:
            return []
        pending = st.stream_pending
        if pending is None:
            pending = st.stream_pending = [[], []]
        pending[d].append(data)
        st.stream_pending_len += len(data)
        if st.stream_pending_len > STREAM_PENDING_MAX:
            return self._inspect_stream(flow, st, pending, d)
        return []

    def stream_gap(self, flow: Flow, d: Direction, length: int) -> None:
        """`length` bytes are missing: nothing before the gap may join what follows it."""
        st = _state(flow)
        if not st.passed:
            if st.stream_pending is None:
                st.stream_pending = [[], []]
            st.stream_pending[d].append(length)

    def _inspect_stream(self, flow: Flow, st: FlowDetectState, pending: list[list[bytes | int]], d: Direction,
                        timeout: bool = False) -> list[Hit]:
        """The pending stream data of direction `d` (`pending` is ``st.stream_pending``, passed
        by the caller that found it set). The last `STREAM_OVERLAP` bytes are inspected again
        with the next data, so a pattern split across segments (or across chunks inspected on
        different packets) is found; a gap starts afresh. Each rule alerts once per flow
        direction, as the same bytes are seen more than once."""
        items = pending[d]
        pending[d] = []
        st.stream_pending_len = sum(len(x) for x in pending[1 - d] if not isinstance(x, int))
        tail = st.stream_tail
        if tail is None:
            tail = st.stream_tail = [b"", b""]
        est = established(flow.state)
        found: list[tuple[int, Rule, tuple]] = []
        seen = st.stream_alerted
        for item in items:
            if isinstance(item, int):
                tail[d] = b""
                continue
            window = tail[d] + item
            tail[d] = window[-STREAM_OVERLAP:]
            for i, r, caps in self._matches(flow, d, {Buffer.STREAM: window, Buffer.PAYLOAD: window}, None,
                                            None, Scope.STREAM, est, only=self.detector.stream_rules):
                if (i, d) not in seen:
                    seen = seen | {(i, d)}
                    found.append((i, r, caps))
        if not found:
            return []
        st.stream_alerted = seen
        shown = _shown_stream(items)
        return [replace(h, stream=shown, timeout=timeout) for h in self._hits(flow, d, found, None)]

    def progress(self, flow: Flow, d: Direction) -> list[Hit]:
        """Transactions in direction `d`, run when a packet goes that way (as Suricata
        inspects a flow's transactions for the direction of the packet at hand): HTTP
        requests or responses whose head is complete, then finished transactions not
        inspected that way yet."""
        st = flow.detect
        if st is not None and st.passed:
            return []
        hits: list[Hit] = []
        if st is not None and st.stream_pending is not None and st.stream_pending[d]:
            hits += self._inspect_stream(flow, st, st.stream_pending, d)
        if not self._tx_rules:
            return hits   # no rule reads a transaction: what follows could only find nothing
        if st is not None and st.pending:
            keep = []
            for rec, pd in st.pending:
                if pd == d:
                    hits += self._http(flow, d, rec)
                else:
                    keep.append((rec, pd))
            st.pending = tuple(keep)
        app = flow.app
        heads = getattr(app.parser, "heads", None) if app is not None and self._tx_dirs[d] else None
        if heads is not None:
            for tx in heads(d):
                key = (tx.tx_id, d)
                st = _state(flow)
                if key not in st.tx_seen:
                    st.tx_seen = st.tx_seen | {key}
                    hits += self._http(flow, d, tx.record())
        if st is not None and st.bodies:
            hits += self._ripe_bodies(flow, st, d)
        return hits

    def flush(self, flow: Flow) -> list[Hit]:
        """The flow ends: what waits for a packet in its direction is inspected now."""
        st = flow.detect
        if st is None or st.passed:
            return []
        hits: list[Hit] = []
        pending = st.stream_pending
        if pending is not None:
            for d in (Direction.TO_SERVER, Direction.TO_CLIENT):
                if pending[d]:
                    hits += self._inspect_stream(flow, st, pending, d, timeout=True)
        for rec, d in st.pending:
            hits += self._http(flow, d, rec)
        st.pending = ()
        return hits

    def record(self, flow: Flow, rec: object, pkt: Packet | None = None) -> list[Hit]:
        """A finished application record; `pkt` is the packet that completed it (the
        payload items of a DNS rule look at its payload)."""
        st = flow.detect
        if (st is not None and st.passed) or not self._tx_rules:
            return []
        if isinstance(rec, HttpTransaction):
            st = _state(flow)
            for d in (Direction.TO_SERVER, Direction.TO_CLIENT):
                if (d is Direction.TO_SERVER or rec.status is not None) and (rec.tx_id, d) not in st.tx_seen:
                    st.pending = (*st.pending, (rec, d))
            if st.tx_seen:
                st.tx_seen = st.tx_seen - {(rec.tx_id, Direction.TO_SERVER), (rec.tx_id, Direction.TO_CLIENT)}
            hits: list[Hit] = []
            if st.done_bodies:
                req = st.done_bodies.pop((rec.tx_id, Direction.TO_SERVER), b"")
                resp = st.done_bodies.pop((rec.tx_id, Direction.TO_CLIENT), b"")
                if not st.done_bodies:
                    st.done_bodies = None
                if req or resp:
                    hits += self._bodies(flow, rec, req, resp)
            # a body may still arrive (or finish decoding, or turn out to be a close-delimited
            # one) after its transaction is logged: keep the last few logged transactions
            waiting = st.waiting_txs
            if waiting is None:
                waiting = st.waiting_txs = {}
            waiting[rec.tx_id] = rec
            if len(waiting) > KEEP_LOGGED_TXS:
                del waiting[next(iter(waiting))]
            return hits
        if isinstance(rec, TlsRecord):   # client rules (SNI, JA3...), then server rules (certificate, JA3S)
            buffers = tls_buffers(rec)
            return (self._tx(flow, Direction.TO_SERVER, buffers, rec)
                    + self._tx(flow, Direction.TO_CLIENT, buffers, rec))
        if isinstance(rec, SshRecord):   # ssh.proto / ssh.software: the client's banner to the server, and back
            hits = []
            for d, banner in ((Direction.TO_SERVER, rec.client), (Direction.TO_CLIENT, rec.server)):
                if banner is not None:
                    hits += self._tx(flow, d, {Buffer.SSH_PROTO: field_bytes(banner.proto_version),
                                               Buffer.SSH_SOFTWARE: field_bytes(banner.software_version)}, rec)
            return hits
        if isinstance(rec, DnsMessage):
            if rec.direction is not Direction.TO_SERVER:
                return []
            hits = []
            payload = pkt.payload if pkt is not None and pkt.payload else None
            for q in rec.queries:
                buffers = {Buffer.DNS_QUERY: q.rrname}
                if payload is not None:
                    buffers[Buffer.PAYLOAD] = payload
                hits += self._tx(flow, rec.direction, buffers, rec)
            return hits
        return []

    def body_chunk(self, flow: Flow, chunk: BodyChunk) -> list[Hit]:
        """Collect decoded body bytes (up to the body limit per message). A body is
        inspected once: when its framing says it is complete (see `progress`) or when
        its stream ends, and once its transaction is known, whichever comes last."""
        if not self._body_rules:
            return []   # no rule reads a body: nothing is kept
        st = _state(flow)
        if st.passed:
            return []
        key = (chunk.tx_id, chunk.direction)
        if key in st.bodies_done:   # inspected already; only stray bytes can follow
            if chunk.final:
                st.bodies_done = st.bodies_done - {key}
            return []
        bodies = st.bodies
        if bodies is None:
            bodies = st.bodies = {}
        buf = bodies.get(key)
        if buf is None:
            buf = bodies[key] = bytearray()
        room = self.body_limit - len(buf)
        if room > 0:
            buf += chunk.data[:room]
        if not chunk.final:
            return []
        return self._body_ready(flow, st, key)

    def _ripe_bodies(self, flow: Flow, st: FlowDetectState, d: Direction) -> list[Hit]:
        """Bodies in direction `d` whose message is complete by its framing."""
        app = flow.app
        complete = getattr(app.parser, "body_complete", None) if app is not None else None
        if complete is None:
            return []
        hits: list[Hit] = []
        for key in [k for k in st.bodies or () if k[1] == d]:
            if complete(d, key[0]):
                st.bodies_done = st.bodies_done | {key}
                hits += self._body_ready(flow, st, key)
        return hits

    def _body_ready(self, flow: Flow, st: FlowDetectState, key: tuple[int, Direction]) -> list[Hit]:
        done = bytes(st.bodies.pop(key))  # type: ignore[union-attr]
        if not st.bodies:
            st.bodies = None
        tx_id, d = key
        tx = (st.waiting_txs.get(tx_id) if st.waiting_txs else None) or _open_tx(flow, tx_id, d)
        if tx is None:
            if st.done_bodies is None:
                st.done_bodies = {}
            st.done_bodies[key] = done
            return []
        req, resp = (done, b"") if d == Direction.TO_SERVER else (b"", done)
        return self._bodies(flow, tx, req, resp)

    def _bodies(self, flow: Flow, rec: HttpTransaction, request: bytes, response: bytes) -> list[Hit]:
        """Body rules only (their other buffers from the transaction); the rest ran on the heads."""
        hits: list[Hit] = []
        if request:
            if self.detector.request_body_at_response:
                st = _state(flow)
                kept = st.request_bodies
                if kept is None:
                    kept = st.request_bodies = {}
                kept[rec.tx_id] = request
                if len(kept) > KEEP_LOGGED_TXS:
                    del kept[next(iter(kept))]
            hits += self._http(flow, Direction.TO_SERVER, rec, (Buffer.HTTP_REQUEST_BODY, request))
        if response:
            hits += self._http(flow, Direction.TO_CLIENT, rec, (Buffer.FILE_DATA, response))
        return hits

    def _http(self, flow: Flow, d: Direction, rec: HttpTransaction,
              body: tuple[Buffer, bytes] | None = None) -> list[Hit]:
        """A request (`d` to_server) or a response with its request (to_client); with
        `body`, only the rules that inspect that body."""
        if not self._tx_dirs[d]:
            return []   # no transaction rule runs this way: no buffers to build
        buffers = http_request_buffers(rec)
        if d is Direction.TO_CLIENT:
            kept = flow.detect.request_bodies if flow.detect is not None else None
            if kept and rec.tx_id in kept:
                buffers[Buffer.HTTP_REQUEST_BODY] = kept[rec.tx_id]
            response = http_response_buffers(rec)
            for own in (Buffer.HTTP_START, Buffer.HTTP_HEADER_NAMES):   # this message's, or none
                if own not in response:
                    buffers.pop(own, None)
            buffers.update(response)
        head = buffers.get(Buffer.HTTP_START)
        if head is not None:   # payload items of an HTTP rule: the message as sent (head, then body)
            buffers[Buffer.PAYLOAD] = head
        if body is None:
            hits = self._tx(flow, d, buffers, rec)
            multi = Buffer.HTTP_REQUEST_HEADER if d is Direction.TO_SERVER else Buffer.HTTP_RESPONSE_HEADER
            if multi in self.detector.buffers_used:
                pairs = rec.request_headers if d is Direction.TO_SERVER else rec.response_headers
                hits += self._each_header(flow, d, buffers, rec, multi, pairs)
            if rec.http2 is not None:
                hits += self._http2_headers(flow, d, buffers, rec)
            return hits
        buffers[body[0]] = body[1]
        buffers[Buffer.PAYLOAD] = buffers.get(Buffer.PAYLOAD, b"") + body[1]
        return self._tx(flow, d, buffers, rec, require=body[0])

    def _each_header(self, flow: Flow, d: Direction, buffers: dict, rec: HttpTransaction, multi: Buffer,
                     pairs: tuple[tuple[str, str], ...]) -> list[Hit]:
        """``http.request_header`` / ``http.response_header`` are Suricata multi-buffers: each
        header line ("Name: value") is inspected on its own, and a rule alerts once per message
        if any line matches."""
        hits: list[Hit] = []
        seen: set[int] = set()
        for name, value in pairs:
            buffers[multi] = field_bytes(f"{name}: {value}")
            for h in self._tx(flow, d, buffers, rec, require=multi):
                if id(h.rule) not in seen:
                    seen.add(id(h.rule))
                    hits.append(h)
        return hits

    def _http2_headers(self, flow: Flow, d: Direction, buffers: dict, rec: HttpTransaction) -> list[Hit]:
        """``http2.header_name`` / ``http2.header``: multi-buffers over the HTTP/2 message's
        fields as decoded (pseudo-headers included), one alert per message at most."""
        h2 = rec.http2
        fields = h2.request_fields if d is Direction.TO_SERVER else h2.response_fields  # type: ignore[union-attr]
        hits: list[Hit] = []
        seen: set[int] = set()
        for multi in (Buffer.HTTP2_HEADER_NAME, Buffer.HTTP2_HEADER):
            if multi not in self.detector.buffers_used:
                continue
            for name, value in fields:
                buffers[multi] = field_bytes(name if multi is Buffer.HTTP2_HEADER_NAME else f"{name}: {value}")
                for h in self._tx(flow, d, buffers, rec, require=multi):
                    if id(h.rule) not in seen:
                        seen.add(id(h.rule))
                        hits.append(h)
            buffers.pop(multi, None)
        return hits

    # -- matching ------------------------------------------------------------------------------
    def _tx(self, flow: Flow, d: Direction, buffers: Mapping[Buffer, bytes], rec: object,
            require: Buffer | None = None) -> list[Hit]:
        cands = self.detector.candidates(buffers, Scope.TX, direction=d, require=require)
        if not cands:
            return []
        found = self._matches(flow, d, buffers, None, None, Scope.TX, established(flow.state), require,
                              only=frozenset(cands))
        return self._hits(flow, d, found, rec)

    def _matches(self, flow: Flow, d: Direction, buffers: Mapping[Buffer, bytes], pkt: Packet | None,
                 size: int | None, scope: Scope, est: bool, require: Buffer | None = None,
                 only: frozenset[int] | None = None, extra: set[int] | None = None
                 ) -> list[tuple[int, Rule, tuple]]:
        """(index, rule, pcre captures) of the rules that match, in rule order."""
        header = self.header
        st = flow.detect
        bits = st.flowbits if st is not None else _NO_BITS
        out: list[tuple[int, Rule, tuple]] = []

        def check(rule: Rule) -> bool:
            return header(rule, flow, d, pkt, est) and (not rule.flowbits or flowbits_ok(rule, bits))

        def matched(rule: Rule) -> None:
            nonlocal bits
            if rule.flowbits:
                bits = _state(flow).flowbits = apply_flowbits(rule, bits)

        for m in self.detector.inspect(buffers, direction=d, header_check=check, packet_size=size, scope=scope,
                                       on_match=matched, require=require, only=only, extra=extra):
            out.append((m.index, m.rule, m.captures))
        return out

    def _hits(self, flow: Flow, d: Direction, found: list[tuple[int, Rule, tuple]], rec: object | None) -> list[Hit]:
        """Alerts from what matched: a ``pass`` match passes the whole flow and silences the
        packet (Suricata applies pass before drop, reject and alert), ``noalert`` rules only
        set their flowbits. pcre captures are kept: flow vars on the flow, packet vars on
        every alert of this inspection, alert vars on their rule's alert."""
        if not found:
            return []
        found.sort(key=lambda x: x[0])
        pktvars: tuple[tuple[str, bytes], ...] = ()
        if any(caps for _, _, caps in found):
            pktvars = keep_vars(_state(flow), found)
        if any(rule.action is Action.PASS for _, rule, _ in found):
            _state(flow).passed = True
            return []
        st = flow.detect
        flowvars = tuple(st.flowvars.items()) if st is not None and st.flowvars else ()
        # noalert rules only set flowbits; thresholds hold back alerts, not the match itself
        src, dst = (flow.cli, flow.srv) if d == Direction.TO_SERVER else (flow.srv, flow.cli)
        return [Hit(rule, d, rec, context=tuple((n, v) for k, n, v in caps if k == "alert"), pktvars=pktvars,
                    flowvars=flowvars)
                for _, rule, caps in found   # `flow.last` is the current packet's time
                if not rule.noalert and (rule.threshold is None
                                         or self._threshold_alerts(rule, src, dst, flow.flow_id, flow.last))]

    def _threshold_alerts(self, rule: Rule, src: bytes, dst: bytes, flow_id: int, ts: float) -> bool:
        """Whether this match alerts under its threshold/detection_filter."""
        return self.thresholds.check(rule, src, dst, flow_id, ts) is Outcome.ALERT


def _ports_of(rules) -> frozenset[int] | None:
    """Every port named by these rules' headers, or None if one of them allows any port."""
    out: set[int] = set()
    for r in rules:
        named = False
        for spec in (r.src_ports, r.dst_ports):
            if spec.is_any:
                continue
            if sum(hi - lo + 1 for lo, hi in spec.ranges) > 1024:
                return None
            out.update(p for lo, hi in spec.ranges for p in range(lo, hi + 1))
            named = True
        if not named:
            return None
    return frozenset(out)


def _open_tx(flow: Flow, tx_id: int, d: Direction) -> HttpTransaction | None:
    """The transaction `tx_id` as the parser has it now, if still open (its head read)."""
    app = flow.app
    heads = getattr(app.parser, "heads", None) if app is not None else None
    if heads is not None:
        for tx in heads(d):
            if tx.tx_id == tx_id:
                return tx.record()
    return None


_NO_BITS: frozenset[str] = frozenset()
_NO_KEYS: frozenset[tuple[int, Direction]] = frozenset()
_PORTED = frozenset({IPPROTO_TCP, IPPROTO_UDP, 132})
KEEP_LOGGED_TXS = 2     # logged HTTP transactions kept per flow for bodies that end after them
STREAM_SHOWN = 4096      # bytes of stream data an alert shows (Suricata's payload-buffer-size)


def _shown_stream(items: list[bytes | int]) -> bytes:
    """The inspected stream data as an alert shows it: gaps as "[N bytes missing]"."""
    out = bytearray()
    for item in items:
        out += b"[%d bytes missing]" % item if isinstance(item, int) else item
        if len(out) >= STREAM_SHOWN:
            break
    return bytes(out[:STREAM_SHOWN])


STREAM_PENDING_MAX = 256 << 10   # stream bytes that may wait for a packet in their direction
STREAM_OVERLAP = 1024   # bytes of a stream inspected again with the next data (longest split pattern found)


# -- buffers of each transaction type ----------------------------------------------------------
