"""The offline/inline inspection pipeline for one worker: decode, defragment,
track flows, reassemble TCP, detect and parse application protocols.

Sans-IO: frames and their timestamps come in through `process`, events go out
through the `emit` callable; the clock is the packet timestamp.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from inspection.applayer.dns import probe_dns_is_request
from inspection.applayer.dispatch import FAILED, HOLDERS, AppState, TcpDetector, udp_parser_for
from inspection.applayer.memory import MEMCAP_EVENT, AppMemory
from inspection.config import ChecksumMode, EngineConfig
from inspection.counters import EngineCounters
from inspection.decode import decode_frame
from inspection.decode.defrag import Defragmenter, OverlapPolicy, rebuild_frame
from inspection.decode.transport import decode_l4
from inspection.engine_files import BODY_BUFFERS, LiveFileQuestions
from inspection.files.model import FileLimits, FileRecord, with_signature_hits
from inspection.files.tracker import FileContext, FileEvent, FileTracker
from inspection.flow.table import EndReason, Flow, FlowState, FlowTable, Timeouts, flow_key
from inspection.model import (IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TH_ACK, TH_SYN, Anomaly,
                              AnomalyKind, BodyChunk, Direction, HoldsBytes, Packet)
from inspection.stream.policy import HostPolicies
from inspection.stream.tcp import DATA, GAP, StreamConfig, StreamCounters, TcpSession, TcpState

if TYPE_CHECKING:  # the engine runs without rules; detection is handed in
    from inspection.detect.inspector import RuleInspector
    from inspection.policy.urlcat import UrlCategorizer

# IP protocols that get a flow, as in Suricata (IGMP, OSPF, ... are decoded but not tracked).
FLOW_PROTOS = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, 50, 132})
# per-packet comparisons read these as globals, not as Enum class attributes (a metaclass lookup each)
_TCP_CLOSED, _TCP_ESTABLISHED = TcpState.CLOSED, TcpState.ESTABLISHED
_FLOW_CLOSED, _FLOW_ESTABLISHED = FlowState.CLOSED, FlowState.ESTABLISHED
AUTO_CHECKSUM_SAMPLE = 1000     # packets looked at before `auto` decides
AUTO_CHECKSUM_BAD_SHARE = 0.1   # more bad checksums than this: the capture was offloaded


@dataclass(slots=True)
class EngineEvent:
    """Something to log. `direction` orients src/dest relative to `flow`."""

    event_type: str
    ts: float
    pcap_cnt: int | None
    flow: Flow | None
    direction: Direction
    body: object
    packet: Packet | None = None
    frame: tuple[int, bytes] | None = None   # (link type, captured bytes) of the packet an alert fired on
    payload: bytes | None = None             # that packet's payload, for the alert's ``payload``
    extra: dict | None = None   # fields added at the top level of the event (URL category, app type)


@dataclass(slots=True)
class EngineStats:
    packets: int = 0
    bytes: int = 0
    bad_checksum: int = 0
    last_ts: float = 0.0
    checksum_auto_disabled: bool = False
    alerts: int = 0


class Engine(LiveFileQuestions):
    def __init__(self, cfg: EngineConfig, emit: Callable[[EngineEvent], None],
                 inspector: "RuleInspector | None" = None, urlcat: "UrlCategorizer | None" = None) -> None:
        self.cfg = cfg
        self.inspector = inspector
        self.urlcat = urlcat
        self._emit = emit
        self.stats = EngineStats()
        self._validate = cfg.checksum is not ChecksumMode.NONE
        self._checked = 0
        self._checked_bad = 0
        self.flows = FlowTable(self._flow_ended, memcap=cfg.flow_memcap, timeouts={
            IPPROTO_TCP: Timeouts(*cfg.tcp_timeouts),
            IPPROTO_UDP: Timeouts(*cfg.udp_timeouts),
            0: Timeouts(*cfg.other_timeouts),
        })
        self.stream_cfg = StreamConfig(depth=cfg.stream_depth, midstream=cfg.midstream,
                                       async_oneside=cfg.async_oneside, memcap=cfg.stream_memcap,
                                       ack_gated=not cfg.stream_inline)
        self.stream_counters = StreamCounters()
        self._host_policies = HostPolicies(cfg.host_os_policy)
        self.defrag = Defragmenter(timeout=cfg.defrag_timeout, memcap=cfg.defrag_memcap,
                                   policy=OverlapPolicy(cfg.defrag_policy if cfg.defrag_policy != "bsd-right"
                                                        else "bsd"))
        # the parser hands on body bytes for inspection and for file tracking: up to the larger cap
        self._detector = TcpDetector(dns_ports=cfg.dns_tcp_ports, limit=cfg.app_detect_limit,
                                     http_body_limit=max(cfg.http_body_limit, cfg.file_size_limit),
                                     http_lzma=cfg.http_lzma, http_layers=cfg.http_decompress_layers,
                                     http2=cfg.http2)
        self.app_memory: AppMemory[Flow] = AppMemory(cfg.app_layer_memcap)
        self.files = FileContext(FileLimits(max_size=cfg.file_size_limit, hashes=cfg.file_hashes))
        # flow -> its file tracker, only while a file is on its way (idle flows pay nothing)
        self._trackers: dict[Flow, FileTracker] = {}
        # rules that matched a body, per flow and (tx_id, direction): its files are logged malicious
        self._file_hits: dict[Flow, dict[tuple[int, Direction], list[str]]] = {}
        self._body_rules: tuple[object, bool] | None = None   # (inspector, it has body rules)
        self._next_expire = 0.0
        # flows time out once a second of packet time, inside `process`; the live worker turns
        # this off and ends them itself, a slice at a time between its batches
        self.expire_inline = True
        self._cur: Packet | None = None
        self._frame: tuple[int, bytes] | None = None
        self._started = 0.0
        self._links: dict[int, int] = {}
        self._families: dict[tuple[int, int], int] = {}
        self._flows_by_proto: dict[int, int] = {}
        self._app_flows: dict[str, int] = {}
        self._app_txs: dict[str, int] = {}
        self.flow: Flow | None = None   # the flow of the packet just processed (the live verdict needs it)

    # -- input ---------------------------------------------------------------------------------
    def process(self, linktype: int, data: bytes, ts: float, wire_len: int) -> None:
        st = self.stats
        self.flow = None
        st.packets += 1
        st.bytes += wire_len
        if ts > st.last_ts:
            if not self._started:
                self._started = ts
            st.last_ts = ts
        pkt = decode_frame(linktype, data, ts, st.packets, wire_len, self._validate)
        self._frame = (linktype, data)
        links = self._links
        links[linktype] = links.get(linktype, 0) + 1
        fam = self._families
        k = (pkt.family, pkt.proto)
        fam[k] = fam.get(k, 0) + 1
        self._cur = pkt
        if ts >= self._next_expire:
            self._next_expire = ts + 1.0
            if self.expire_inline:
                self.flows.expire(ts)
            for a in self.defrag.expire(ts):
                self._anomaly(a, None, pkt)
        self._handle(pkt)

    def _handle(self, pkt: Packet) -> None:
        """Defragment, then track the packet's flow; then its tunnelled packet, if any."""
        self._cur = pkt
        if pkt.fragment is not None:
            done, anomalies = self.defrag.add(pkt.fragment)  # type: ignore[arg-type]
            for a in anomalies:
                self._anomaly(a, None, pkt)
            if done is None:
                return
            pkt.fragment = None
            pkt.reassembled = True
            decode_l4(pkt, done.proto, done.data, self._validate)
            if self._frame is not None and pkt is self._cur and self.inspector is not None:
                whole = rebuild_frame(done)      # alerts show the reassembled packet
                if whole is not None:
                    self._frame = (self._frame[0], whole)
        if pkt.anomalies:
            self._decode_anomalies(pkt)
        if not pkt.l4_ok:
            return
        if self._validate and self.cfg.checksum is ChecksumMode.AUTO and self._checked < AUTO_CHECKSUM_SAMPLE:
            self._auto_checksum(pkt)
        if pkt.proto in FLOW_PROTOS:
            self._flow_packet(pkt)
        if pkt.inner is not None:  # Teredo: the outer UDP flow and the inner IPv6 flow both count
            self._handle(pkt.inner)

    def _decode_anomalies(self, pkt: Packet) -> None:
        log_checksums = self.cfg.checksum is ChecksumMode.ALL
        for a in pkt.anomalies:
            if a.event.endswith("invalid_checksum"):
                # counted always; logged one by one only when validation was asked
                # for (-k all): captures with offloaded checksums would drown the log
                self.stats.bad_checksum += 1
                if not log_checksums:
                    continue
            self._anomaly(a, None, pkt)

    def _auto_checksum(self, pkt: Packet) -> None:
        self._checked += 1
        if not pkt.checksum_ok:
            self._checked_bad += 1
        if self._checked == AUTO_CHECKSUM_SAMPLE and self._checked_bad > AUTO_CHECKSUM_BAD_SHARE * self._checked:
            self._validate = False
            self.stats.checksum_auto_disabled = True

    # -- flows ---------------------------------------------------------------------------------
    def _flow_packet(self, pkt: Packet) -> None:
        key = flow_key(pkt, self.cfg.vlan_tracking)
        flows = self.flows
        flow = flows.get(key)
        if flow is None:
            flow = flows.create(key, pkt, self._starts_reversed(pkt))
            self._flows_by_proto[pkt.proto] = self._flows_by_proto.get(pkt.proto, 0) + 1
        if pkt is self._cur:
            self.flow = flow
        d = flow.direction_of(pkt)
        if d:
            flow.pkts_tc += 1
            flow.bytes_tc += pkt.wire_len
            first_this_way = flow.pkts_tc == 1
        else:
            flow.pkts_ts += 1
            flow.bytes_ts += pkt.wire_len
            first_this_way = flow.pkts_ts == 1
        flow.last = pkt.ts
        before = flow.state
        proto = pkt.proto
        if not pkt.checksum_ok and self._validate and proto == IPPROTO_TCP:
            # as in Suricata, only TCP stream tracking refuses bad checksums: the packet
            # rules still see the packet (a sender-side capture with offloading)
            if self.inspector is not None:
                self._detect_packet(flow, pkt, d, before)
            return
        if proto == IPPROTO_TCP:
            if d:
                flow.flags_tc |= pkt.tcp_flags
            else:
                flow.flags_ts |= pkt.tcp_flags
            self._tcp(flow, pkt, d)
        elif proto == IPPROTO_UDP:
            if flow.state == FlowState.NEW and flow.pkts_ts and flow.pkts_tc:
                flow.state = FlowState.ESTABLISHED
            if pkt.payload:
                self._udp(flow, pkt, d)
        else:
            if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6) and first_this_way:
                icmp = flow.icmp or [None, None, None, None]
                icmp[2 * d], icmp[2 * d + 1] = pkt.icmp_type, pkt.icmp_code
                flow.icmp = icmp
            if flow.state == FlowState.NEW and flow.pkts_ts and flow.pkts_tc:
                flow.state = FlowState.ESTABLISHED
        if self.inspector is not None:
            self._detect_packet(flow, pkt, d, before)

    def _starts_reversed(self, pkt: Packet) -> bool:
        if pkt.proto == IPPROTO_TCP:
            return pkt.tcp_flags & (TH_SYN | TH_ACK) == (TH_SYN | TH_ACK)
        if pkt.proto == IPPROTO_UDP:
            dns = self.cfg.dns_udp_ports
            if pkt.sport in dns:
                # a response first (mDNS and LLMNR use the same port both ways)
                return pkt.dport not in dns or probe_dns_is_request(pkt.payload) is False
            return False
        return False

    def _detect_packet(self, flow: Flow, pkt: Packet, d: Direction, before: FlowState) -> None:
        ins = self.inspector
        hits = ins.progress(flow, d)  # type: ignore[union-attr]
        if hits:
            self._alerts(flow, hits)
        hits = ins.packet(flow, pkt, d, before)  # type: ignore[union-attr]
        if hits:
            self._alerts(flow, hits)

    def _alerts(self, flow: Flow | None, hits: list, pkt: Packet | None = None) -> None:
        """Alert events for `hits` on the current packet (or `pkt`, for an alert without a flow)."""
        if pkt is None:
            pkt = self._cur
        if flow is not None:
            flow.alerted = True
        frame = self._frame if pkt is not None and pkt is self._cur else None
        payload = pkt.payload if pkt is not None else None
        for h in hits:
            self.stats.alerts += 1
            if flow is not None and h.record is not None:
                self._note_file_hit(flow, h)
            self._emit(EngineEvent("alert", pkt.ts if pkt else flow.last,  # type: ignore[union-attr]
                                   pkt.pcap_cnt if pkt else None, flow, h.direction, h,
                                   packet=pkt if flow is None else None, frame=frame, payload=payload))

    def _tcp(self, flow: Flow, pkt: Packet, d: Direction) -> None:
        sess = flow.tcp
        if sess is None:
            sess = flow.tcp = TcpSession(self.stream_cfg, self.stream_counters)
            if self._host_policies:   # each direction's receiver decides overlaps (target-based)
                pol = self._host_policies.for_address
                sess.policies = (pol(flow.srv), pol(flow.cli))
        out = sess.packet(pkt, d)
        if sess.anomalies:
            for a in sess.anomalies:
                self._anomaly(a, flow, pkt)
            sess.anomalies = ()
        st = sess.state
        if st >= _TCP_CLOSED:
            flow.state = _FLOW_CLOSED
        elif st >= _TCP_ESTABLISHED:
            flow.state = _FLOW_ESTABLISHED
        if out:
            self._stream_out(flow, out, pkt.ts)

    def _stream_out(self, flow: Flow, out: list, ts: float) -> None:
        ins = self.inspector
        wanted = ins is not None and ins.stream_wanted(flow)
        if wanted and ins is not None:
            for kind, dd, x in out:
                if kind == DATA:
                    hits = ins.stream(flow, dd, x)
                    if hits:
                        self._alerts(flow, hits)
                elif kind == GAP:
                    ins.stream_gap(flow, dd, x)
        app = flow.app
        if app is None:
            app = flow.app = AppState()
        if app.done:
            return
        det = self._detector
        ports = (flow.cport, flow.sport)
        may_reverse = flow.tcp is not None and flow.tcp.midstream and app.proto is None
        flip = False
        res: list | None
        for kind, dd, x in out:
            if flip:
                dd = dd.other
            if kind == DATA:
                res = det.feed(app, dd, x, ts, ports, may_reverse)
                if app.reversed and may_reverse:
                    may_reverse, flip = False, True
                    flow.swap()
                    if flow.tcp is not None:
                        flow.tcp.swap()
            elif kind == GAP:
                res = det.gap(app, dd, x, ts)
            else:
                eos = getattr(app.parser, "end_of_stream", None)
                res = eos(dd, ts) if eos is not None else None
            if res:
                self._app_outputs(flow, res)
            if app.done:
                break
        parser = app.parser
        if type(parser) in HOLDERS and self.app_memory.account(flow, parser.held()):   # type: ignore[union-attr]
            self._shed()
        if app.done or (parser is not None and getattr(parser, "done", False)):
            app.done = True
            if flow.tcp is not None and not wanted:
                flow.tcp.stop(Direction.TO_SERVER)
                flow.tcp.stop(Direction.TO_CLIENT)

    def _shed(self) -> None:
        """Past the app-layer memcap: the flows that have held bytes the longest forget them
        (inspection.applayer.memory), each with an anomaly event; their events belong to no
        packet, as a flow's end does."""
        mem = self.app_memory
        cur, self._cur = self._cur, None
        try:
            for flow in mem.victims():
                app = flow.app
                parser: HoldsBytes | None = app.parser if app is not None else None   # type: ignore[assignment]
                if parser is None or type(parser) not in HOLDERS:   # switched (a tunnel): holds nothing
                    mem.account(flow, 0)
                    continue
                self._anomaly(Anomaly(AnomalyKind.APPLAYER, MEMCAP_EVENT, parser.app_proto), flow, None)
                res = parser.shed(flow.last)
                mem.account(flow, parser.held())
                if res:
                    self._app_outputs(flow, res)
        finally:
            self._cur = cur

    def _udp(self, flow: Flow, pkt: Packet, d: Direction) -> None:
        app = flow.app
        if app is None:
            app = flow.app = AppState()
            found = udp_parser_for((flow.cport, flow.sport), self.cfg.dns_udp_ports)
            if found is None:
                app.proto, app.done = FAILED, True
            else:
                app.proto, app.parser = found
            app.decided(Direction.TO_SERVER, app.proto)   # by port: both directions at once
            app.decided(Direction.TO_CLIENT, app.proto)
            if found is None:
                return
        if app.parser is None or app.done:
            return
        res = app.parser.feed(d, pkt.payload, pkt.ts)
        if res:
            self._app_outputs(flow, res)

    def _app_outputs(self, flow: Flow, outputs: list) -> None:
        pkt = self._cur
        ins = self.inspector
        for r in outputs:
            if isinstance(r, Anomaly):
                self._anomaly(r, flow, pkt)
            elif isinstance(r, BodyChunk):
                if ins is not None and r.app_proto in ("http", "http2"):   # body rules are HTTP's; mail bodies are files only
                    hits = ins.body_chunk(flow, r)
                    if hits:
                        self._alerts(flow, hits)
                self._file_body(flow, r)
            else:
                et = r.event_type
                if et != "dns" or r.direction is Direction.TO_SERVER:
                    self._app_txs[et] = self._app_txs.get(et, 0) + 1
                extra = cat_hits = None
                if self.urlcat is not None and et in ("http", "tls", "dns"):
                    extra, cat_hits = self.urlcat.record(r)
                self._emit(EngineEvent(et, pkt.ts if pkt else flow.last, pkt.pcap_cnt if pkt else None,
                                       flow, r.direction, r, extra=extra))
                if cat_hits:
                    self._alerts(flow, cat_hits)
                if ins is not None:
                    hits = ins.record(flow, r, pkt)
                    if hits:
                        self._alerts(flow, hits)
                tracker = self._trackers.get(flow) if self._trackers else None
                if tracker is not None:
                    self._file_outputs(flow, tracker, tracker.record(r))

    # -- files (the live path's questions about them: inspection.engine_files) ------------------
    def raise_alerts(self, flow: Flow | None, hits: list) -> None:
        """Alerts decided outside the engine (the live path's file and early category checks)."""
        if hits:
            self._alerts(flow, hits)

    def _file_body(self, flow: Flow, chunk: BodyChunk) -> None:
        tracker = self._trackers.get(flow)
        if tracker is None:
            tracker = self._trackers[flow] = FileTracker(self.files)
        self._file_outputs(flow, tracker, tracker.body(chunk))

    def _note_file_hit(self, flow: Flow, hit: object) -> None:
        """A rule that read a body (``file.data``, ``http.request_body``) matched: the files
        that body carried are malicious by signature (``signature:gid:sid``)."""
        rule = getattr(hit, "rule", None)
        if rule is None or not any(b.buffer in BODY_BUFFERS for b in rule.buffers):
            return
        key = (hit.record.tx_id, hit.direction)  # type: ignore[attr-defined]
        self._file_hits.setdefault(flow, {}).setdefault(key, []).append(f"signature:{rule.gid}:{rule.sid}")

    def _file_outputs(self, flow: Flow, tracker: FileTracker, outputs: list) -> None:
        if tracker.idle:
            self._trackers.pop(flow, None)   # nothing on its way: no tracker kept
        if not outputs:
            return
        pkt = self._cur
        hits = self._file_hits.get(flow) if self._file_hits else None
        for r in outputs:
            if isinstance(r, Anomaly):
                self._anomaly(r, flow, pkt)
            else:
                reasons = hits.get((r.tx_id, r.direction)) if hits else None
                if reasons:
                    if r.file.verdict.sanitised is not None and self.files.disarmer is not None:
                        self.files.disarmer.undone(r.file.verdict)
                    r = FileEvent(with_signature_hits(r.file, reasons), r.record)
                elif r.file.verdict.sanitised is not None:
                    r = FileEvent(self._store_copy(r.file), r.record)
                self._emit(EngineEvent("fileinfo", pkt.ts if pkt else flow.last, pkt.pcap_cnt if pkt else None,
                                       flow, r.direction, r))

    def _store_copy(self, f: FileRecord) -> FileRecord:
        """A sanitised file's verdict is final here: its disarmed copy is stored, or the file
        goes back to suspicious (see `inspection.files.disarm`)."""
        d = self.files.disarmer
        if d is not None:
            return replace(f, verdict=d.commit(f.verdict))
        from inspection.files.disarm import no_store   # the sanitiser loads only when it is used
        return replace(f, verdict=no_store(f.verdict))

    def _anomaly(self, a: Anomaly, flow: Flow | None, pkt: Packet | None) -> None:
        if a.direction is not None:
            d = a.direction
        elif flow is not None and pkt is not None and pkt.l4_ok:
            d = flow.direction_of(pkt)
        else:
            d = Direction.TO_SERVER
        ts = pkt.ts if pkt is not None else (flow.last if flow is not None else self.stats.last_ts)
        self._emit(EngineEvent("anomaly", ts, pkt.pcap_cnt if pkt else None, flow, d, a, pkt))
        ins = self.inspector
        if ins is not None and ins.detector.event_rules:
            hits = ins.event(flow, pkt, a, d)
            if hits:
                self._alerts(flow, hits, pkt)

    def _flow_ended(self, flow: Flow, reason: EndReason) -> None:
        cur, self._cur = self._cur, None  # events of an ending flow belong to no packet
        try:
            self._end_flow(flow, reason)
        finally:
            self._cur = cur

    def _end_flow(self, flow: Flow, reason: EndReason) -> None:
        if flow.tcp is not None and (flow.app is None or not flow.app.done):
            out = flow.tcp.flush()
            if out:
                self._stream_out(flow, out, flow.last)
        app = flow.app
        if app is not None and app.parser is not None:
            res = app.parser.close(flow.last)
            if res:
                self._app_outputs(flow, res)
        self.app_memory.release(flow)
        if self.inspector is not None:   # before the files: a body rule's match marks its file
            hits = self.inspector.flush(flow)
            if hits:
                self._alerts(flow, hits)
        tracker = self._trackers.get(flow) if self._trackers else None
        if tracker is not None:
            self._file_outputs(flow, tracker, tracker.flush())
            self._trackers.pop(flow, None)   # also one the live path released (never idle)
        if self._file_hits:
            self._file_hits.pop(flow, None)
        if app is not None and app.proto is not None and app.proto != FAILED:
            self._app_flows[app.proto] = self._app_flows.get(app.proto, 0) + 1
        self._emit(EngineEvent("flow", flow.last, None, flow, Direction.TO_SERVER, reason))

    # -- end -----------------------------------------------------------------------------------
    def finish(self) -> None:
        """End of input: every remaining flow ends with reason `shutdown`."""
        self._cur = None
        self.flows.shutdown()
        self.emit_stats()

    # -- counters ------------------------------------------------------------------------------
    def counters(self) -> EngineCounters:
        """A snapshot of every counter (packets, decoder families, flows, stream, defrag, alerts, app layer)."""
        st = self.stats
        fc, sc, dc, am = self.flows.counters, self.stream_counters, self.defrag.counters, self.app_memory
        invalid = sum(n for (fam, _), n in self._families.items() if not fam)
        return EngineCounters(
            uptime=st.last_ts - self._started if self._started else 0.0,
            packets=st.packets, bytes=st.bytes, links=dict(self._links), families=dict(self._families),
            invalid=invalid, flows=dict(self._flows_by_proto),
            flow_counters={"timeouts": fc.timeouts, "memcap_prunes": fc.memcap_prunes,
                           "emergency_mode_entered": fc.emergency_entered, "active_peak": fc.active_peak},
            tcp={"segments": sc.segments, "ooo_segments": sc.ooo_segments, "retransmissions": sc.retransmissions,
                 "reassembly_gap": sc.gaps, "overlap_diff_data": sc.overlaps_different,
                 "depth_reached": sc.depth_reached, "memcap_drops": sc.memcap_drops,
                 "invalid_checksum": st.bad_checksum},
            defrag={k: getattr(dc, k) for k in ("fragments", "reassembled", "timeouts", "overlaps",
                                               "memcap_evictions", "memcap_drops")},
            alerts=st.alerts, app_flows=dict(self._app_flows), app_txs=dict(self._app_txs),
            app_memcap={"held": am.held, "held_peak": am.peak, "sheds": am.sheds})

    def emit_stats(self) -> None:
        """Write a `stats` event with `counters()` (at the end of a capture; periodically when live)."""
        self._emit(EngineEvent("stats", self.stats.last_ts, None, None, Direction.TO_SERVER, self.counters()))
