"""Live driver: queued packets in, verdicts out, the same Engine as for captures.

One `LiveWorker` per queue (one per process). Each batch from the queue goes
through the engine packet by packet; alerts that fire on a packet decide its
verdict through `FlowPolicy`; blocked TCP flows are reset at both ends with
frames sent out of the bridge ports (`FrameSender`). Nothing that traffic
does raises out of here: an engine failure on a packet is counted and the
packet accepted (fail open), as STYLE habit 4 asks.
"""
from __future__ import annotations

import dataclasses
import os
import resource
import time
from typing import TYPE_CHECKING, Callable

from inspection.applayer.dns import DnsMessage
from inspection.applayer.http_tx import HttpTransaction
from inspection.applayer.tls import TlsRecord
from inspection.engine import Engine, EngineEvent
from inspection.flow.table import Flow
from inspection.io.answers import PLACEHOLDER_MAC, Answers, FrameSender  # noqa: F401 - FrameSender: re-exported
from inspection.io.drops import drop_record
from inspection.io.holds import SegmentHolds
from inspection.io.live_stats import LiveCounters, LiveStats
from inspection.io.nfqueue import PacketQueue, QueuedPacket, Verdict, VerdictMsg, kernel_stats, kernel_view
from inspection.model import IPPROTO_TCP, IPPROTO_UDP, TH_ACK, TH_FIN, TH_RST, TH_SYN, Direction
from inspection.files.model import VerdictKind
from inspection.files.scan import NoScanner
from inspection.policy.exclusions import ExcludedHit, ExclusionFilter
from inspection.policy.blockhost import BlockHost
from inspection.policy.blockpage import block_page
from inspection.policy.dnsblock import DnsAnswerError, dns_answer_frame, dns_stream_answer
from inspection.policy.filehit import FileBlockHit
from inspection.policy.hits import allowed, hit_view
from inspection.policy.tcpreset import ResetError
from inspection.policy.urlcat import CategoryHit
from inspection.policy.verdict import Action, FlowFacts, FlowPolicy, HitView, Reason

if TYPE_CHECKING:
    from inspection.detect.inspector import RuleInspector

LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_RAW = 228, 229, 101
_LINKTYPES = {0x0800: LINKTYPE_IPV4, 0x86DD: LINKTYPE_IPV6}
RELEASE_AFTER = 0.05   # seconds from handing a flow back to closing its open files (see _released)
EXPIRE_SLICE = 16      # flows looked at in one gap between batches (about 13 µs per flow that ends)
EXPIRE_LAG = 1.0       # seconds flows may stay due before slices follow every batch (see run_once)


_EARLY_HTTP = ("http", "http2", "doh2")   # parsers with `heads(Direction)`: HTTP/1, h2c (also carrying DoH)
_FIRST_BLOCK = (Reason.BLOCKED_RULE, Reason.BLOCKED_CATEGORY, Reason.BLOCKED_FILE, Reason.PAGE_CLOSED)
_DROP_REASONS = {Reason.BLOCKED_RULE: "rules", Reason.BLOCKED_CATEGORY: "category", Reason.BLOCKED_FILE: "file",
                 Reason.DNS_ANSWERED: "dns answered"}


class LiveWorker:
    """Reads batches from a queue, runs the engine, sends verdicts."""

    def __init__(self, queue: PacketQueue, engine: Engine, policy: FlowPolicy, sender: FrameSender | None,
                 emit: Callable[[EngineEvent], None], *, max_batch: int = 64,
                 clock: Callable[[], float] = time.time) -> None:
        self.queue = queue
        self.engine = engine
        self.policy = policy
        self.sender = sender
        self._emit_out = emit
        self.max_batch = max_batch
        self.clock = clock
        self.counters = LiveCounters()
        self.exclusions = ExclusionFilter()      # swapped with the policy on reload (firmware.live)
        self._hits: list[tuple[Flow | None, HitView]] = []
        # per flow: HTTP requests already looked up (at their head) -> the category that blocked them
        self._requests: dict[int, dict[int | str, CategoryHit | None]] = {}
        self._early = ""   # the app proto ("http", "http2") whose request heads' category hits are being raised
        self._bad_files: list[FileBlockHit] = []  # malicious files finished on the packet at hand
        self._page: CategoryHit | None = None    # the category whose page answers the packet at hand
        self._qp: QueuedPacket | None = None     # the packet at hand
        self._dns_pending: tuple[int, bytes] | None = None   # (port, frame) answering its DNS query
        self._dns_frame: tuple[int, bytes] | None = None     # the same, once the query is blocked
        self._dns_stream: bytes | None = None    # answers to the segment's blocked DNS queries over TCP
        self._fileinfos = 0                      # fileinfo events of packets' own flows (judged files)
        self.answers = Answers(sender, self.counters)   # resets, pages...: sent after the verdicts
        self._block_t: float | None = None       # when the batch's first blocking alert fired
        # flows handed back, with when: their open files are closed and judged RELEASE_AFTER
        # later or when the queue is idle, whichever comes first. Scanning what a file holds
        # takes tens of ms; done at once it would hold the flow's packets still in the queue
        # (queued before the kernel saw the mark) and stall the very download it released
        self._released: list[tuple[float, Flow]] = []
        self._host: tuple[object, BlockHost | None] = (None, None)   # (its DnsBlockConfig, the block host)
        self._host_secret = os.urandom(16)
        self._to_host = False                    # the packet at hand goes to the block address
        # the latest data segment of a chunked or close-delimited body being judged, per flow
        self.holds = SegmentHolds()
        self._freed: list[VerdictMsg] = []       # held segments settled by the packet at hand
        self._at: Flow | None = None             # the packet at hand's flow, once the engine took it
        self._judging = False                    # ... and a file of it is being judged (file_in_transit)
        engine._emit = self._on_event   # the engine was built with a placeholder; events pass through here
        engine.expire_inline = False    # flows end in slices between batches (run_once)
        # the clock at the latest batch or empty receive: how long the next receive may wait
        # for due flows, without reading the clock once more per batch
        self._now = 0.0

    # -- events --------------------------------------------------------------------------------
    def _on_event(self, ev: EngineEvent) -> None:
        et = ev.event_type
        if et == "alert":
            if ev.flow is not None and self.policy.is_blocked(ev.flow.flow_id):
                return   # a blocked flow's packets are dropped: what they still match is noise
            hit = ev.body
            if isinstance(hit, CategoryHit) and not self._early and ev.flow is not None \
                    and self._seen_request(ev.flow.flow_id, hit.record):
                return   # raised already when the request's head (the client hello) arrived
            dns_answer = None
            if isinstance(hit, CategoryHit) and hit.blocked and isinstance(hit.record, DnsMessage):
                # with --dns-block-answer the box answers the query itself (the block page's
                # address); else it passes: the connection that follows gets the block page (HTTP)
                # or the resets (TLS), and dropping the query would only look like an outage
                dns_answer = self._dns_answer(ev.flow, hit.record.id)
                if dns_answer is None:
                    hit = ev.body = dataclasses.replace(hit, blocked=False)
            # an HTTP/2 client would not read an HTTP/1.1 block page: its flow is reset both ways
            view = hit_view(hit, self._early == "http")
            if dns_answer == "udp":
                view = dataclasses.replace(view, dns_answer=True)
            elif dns_answer == "tcp":   # answered in the stream, as the page answers a request
                view = dataclasses.replace(view, http_request=True)
            why = self.exclusions.check(hit, ev.flow, view.blocking)
            if why is not None:   # never enforced, still logged: `action: allowed`, `excluded: why`
                ev.body = ExcludedHit(hit, why)
                view = dataclasses.replace(view, blocking=False)
            elif view.blocking and self.policy.allows(view):
                ev.body = allowed(hit)
                view = dataclasses.replace(view, blocking=False)
            elif view.blocking and view.http_request and self._page is None:
                self._page = hit   # type: ignore[assignment]
            elif view.blocking and view.dns_answer:
                self._dns_frame = self._dns_pending
            if view.blocking and self._block_t is None:
                self._block_t = time.perf_counter()
            self._hits.append((ev.flow, view))
        elif et == "fileinfo" and ev.flow is not None and ev.flow is self.engine.flow:
            f = ev.body.file   # type: ignore[attr-defined]
            self._fileinfos += 1
            if f.verdict.kind is VerdictKind.MALICIOUS:
                self._bad_files.append(FileBlockHit(f, f.direction, ev.body.record))   # type: ignore[attr-defined]
        elif et == "flow" and ev.flow is not None:
            if self.holds:
                self._freed += self.holds.forget(ev.flow.flow_id)
            self.policy.forget(ev.flow.flow_id)
            self.answers.forget(ev.flow.flow_id)
            self._requests.pop(ev.flow.flow_id, None)
        self.log(ev)

    def log(self, ev: EngineEvent) -> None:
        """Write `ev` to the EVE log. A log that cannot be written (its disk full, say) loses the
        event, counted as `events_lost` with the error, and never the verdict: blocking goes on."""
        try:
            self._emit_out(ev)
        except OSError as e:
            c = self.counters
            c.events_lost += 1
            c.log_error = e.strerror or str(e)

    def _dns_answer(self, flow: Flow | None, qid: int) -> str | None:
        """Can the box answer the query at hand (--dns-block-answer on, a query it can parse)?
        "udp": its answer frame is built now (only the query is dropped). "tcp": the query ended
        in this segment (whole, or the end of one, or among several); its answer joins those of the
        segment's other blocked queries, which go to the client in the stream like the block page
        (with the server's FIN; the resolver is reset; a query of the segment that was not blocked
        goes unanswered, and the client asks it again on a new connection, RFC 7766). None: it
        passes as without the option."""
        cfg = self.policy.cfg.dns_block
        qp = self._qp
        self._dns_pending = None
        if cfg is None or qp is None or flow is None or len(qp.hwaddr) != 6:
            return None
        try:
            if flow.proto == IPPROTO_TCP:
                parser = flow.app.parser if flow.app is not None else None
                answer = dns_stream_answer(qp.payload, cfg, getattr(parser, "queries", ()), qid,
                                           getattr(parser, "pending", 0))
                self._dns_stream = (self._dns_stream or b"") + answer
                return "tcp"
            frame = dns_answer_frame(qp.payload, qp.hwaddr, PLACEHOLDER_MAC, cfg)
        except (DnsAnswerError, ResetError):
            self.counters.dns_answer_errors += 1
            return None
        self._dns_pending = (qp.physin, frame)
        return "udp"

    def _seen_request(self, flow_id: int, record: object) -> bool:
        seen = self._requests.get(flow_id)
        if not seen:
            return False
        if isinstance(record, TlsRecord):
            return "tls" in seen
        return isinstance(record, HttpTransaction) and record.tx_id in seen

    def _early_sni(self, flow: Flow, parser: object) -> None:
        """A client hello's SNI in a blocked category: the flow is reset before the server answers."""
        seen = self._requests.setdefault(flow.flow_id, {})
        if "tls" in seen:
            return
        hello = getattr(parser, "client_hello", None)
        if hello is None:
            return
        seen["tls"] = None
        db = self.engine.urlcat.db if self.engine.urlcat is not None else None
        if not hello.sni or db is None:
            return
        sni = hello.sni.decode("ascii", "replace")
        cats = db.lookup(sni, None)
        if cats and cats[0].blocked:
            others = tuple(x.name for x in cats[1:] if x.blocked)
            self.engine.raise_alerts(flow, [CategoryHit(cats[0], sni, Direction.TO_SERVER, None, others)])

    def _early_categories(self, flow: Flow) -> None:
        """Look up each HTTP request (HTTP/1 or h2c) as soon as its head is read (the transaction is
        logged only later): a blocked category then stops the request itself."""
        app = flow.app
        parser = app.parser if app is not None else None
        if app is not None and app.proto == "tls":
            self._early_sni(flow, parser)
            return
        heads = getattr(parser, "heads", None)
        if heads is None or app is None or app.proto not in _EARLY_HTTP:
            return
        seen = self._requests.setdefault(flow.flow_id, {})
        for tx in heads(Direction.TO_SERVER):
            if tx.tx_id in seen:
                continue
            # not counted here: the counters count the transaction once, when it is logged
            _, hits = self.engine.urlcat.record(tx.record(), count=False)   # type: ignore[union-attr]
            seen[tx.tx_id] = hits[0] if hits else None
            if hits:
                self._early = app.proto or ""
                try:
                    self.engine.raise_alerts(flow, hits)
                finally:
                    self._early = ""

    # -- packets -------------------------------------------------------------------------------
    def run_once(self, timeout: float) -> int:
        """One batch: receive, decide, send the verdicts. Returns the batch size.

        Flows past their timeout end in the gaps between batches, EXPIRE_SLICE at a time: a
        receive finds nothing waiting, a slice ends, the loop comes back. Ended all at once (the
        engine's own way, once a second), a busy second's flows paused every packet for tens of
        milliseconds. When the queue leaves no gap for EXPIRE_LAG, slices follow the batches."""
        holds = self.holds
        wait = timeout
        held_due = holds.next_due(time.monotonic()) if holds else None
        if held_due is not None:
            wait = min(wait, held_due)
        flows_due = self.engine.flows.next_due()
        if flows_due is not None:
            wait = max(0.0, min(wait, flows_due - self._now))
        batch = self.queue.receive(self.max_batch, wait)
        if not batch:
            if self._released:
                self._release_files(float("inf"))
            self._now = now = self.clock()
            self._expire(now, EXPIRE_SLICE)
            if holds:
                self._send(holds.expired(time.monotonic()))
            return 0
        c = self.counters
        c.batches += 1
        self._now = now = self.clock()
        out: list[VerdictMsg] = []
        freed = self._freed
        for p in batch:
            v = self.handle(p, now)
            if freed:             # a held segment goes before the packet that settled it
                out += freed
                freed.clear()
            if v is not None:
                out.append(v)
        if holds:
            out += holds.expired(time.monotonic())
        self._send(out)
        if self.answers.out:
            self.flush_frames()
        if self._released and self._released[0][0] + RELEASE_AFTER <= time.monotonic():
            self._release_files(time.monotonic() - RELEASE_AFTER)
        if flows_due is not None and flows_due <= now - EXPIRE_LAG:
            # no gap for a while: a new flow takes at least one packet, so ending as many
            # (and a slice more) after each batch keeps up
            c.expiry_behind += 1
            self._expire(now, len(batch) + EXPIRE_SLICE)
        self._block_t = None
        return len(batch)

    def _expire(self, now: float, budget: int) -> None:
        """End at most `budget` flows past their timeout (after the verdicts: no packet waits)."""
        try:
            self.engine.flows.expire(now, budget)
        except Exception:   # noqa: BLE001 - a flow's end (its parsers' last bytes) must not stop the worker
            self.counters.engine_errors += 1
        if self._freed:       # held segments of the flows that ended
            self._send(self._freed[:])
            self._freed.clear()

    def _send(self, verdicts: list[VerdictMsg]) -> None:
        # a batch verdict settles every waiting packet below its id: not while one is held
        if verdicts:
            self.queue.verdicts(verdicts, batch=not self.holds)

    def _release_files(self, before: float) -> None:
        """Close and judge the open files of flows handed back before `before` (monotonic)."""
        due = [f for t, f in self._released if t <= before]
        self._released = [(t, f) for t, f in self._released if t > before]
        for flow in due:
            try:
                self.engine.release_files(flow)
            except Exception:   # noqa: BLE001 - as in `handle`: counted, never out of the data path
                self.counters.engine_errors += 1

    def flush_frames(self) -> None:
        """Send the resets and block pages decided in the last batch (after its verdicts)."""
        out, self.answers.out = self.answers.out, []
        c = self.counters
        for ifindex, frame in out:
            try:
                self.sender.send(ifindex, frame)   # type: ignore[union-attr]
            except OSError:
                c.reset_errors += 1
        if self._block_t is not None:
            us = int((time.perf_counter() - self._block_t) * 1e6)
            c.blocks_timed += 1
            c.block_us_total += us
            c.block_us_max = max(c.block_us_max, us)

    def handle(self, qp: QueuedPacket, now: float) -> VerdictMsg | None:
        """The packet's verdict, or None while it is held (inspection.io.holds): the latest data
        segment of a chunked or close-delimited body being judged waits for the packet after it."""
        v = self._verdict(qp, now)
        flow, pkt = self._at, self.engine._cur
        if flow is None or pkt is None or flow.proto != IPPROTO_TCP:
            return v
        holds = self.holds
        if holds:
            prev = holds.settle(flow.flow_id, flow.direction_of(pkt), v.verdict is not Verdict.ACCEPT)
            if prev is not None:
                self._freed.append(prev)
        if self._judging and pkt.payload and v.verdict is Verdict.ACCEPT and v.mark is None and not self._to_host \
                and self.engine.open_ended_file(flow) and self._files_judgeable(flow) \
                and holds.hold(flow.flow_id, qp.packet_id, flow.direction_of(pkt), time.monotonic(), qp.payload):
            return None
        return v

    def _verdict(self, qp: QueuedPacket, now: float) -> VerdictMsg:
        c = self.counters
        c.packets += 1
        size = len(qp.payload)
        c.bytes += size
        engine = self.engine
        self._hits.clear()
        self._bad_files.clear()
        self._page = None
        self._qp, self._dns_frame, self._dns_stream, self._at, self._judging = qp, None, None, None, False
        t0 = time.perf_counter()
        try:
            engine.process(_LINKTYPES.get(qp.hw_protocol, LINKTYPE_RAW), qp.payload, now, qp.cap_len or size)
            flow = engine.flow
            if flow is not None and flow.app is not None and flow.proto == IPPROTO_TCP:
                pkt = engine._cur
                # a request's head (or a client hello) comes with data: only then can there be a new one
                if pkt is not None and pkt.payload and engine.urlcat is not None and engine.urlcat.db is not None:
                    self._early_categories(flow)
                judged = len(engine.judge_complete_files(flow))
                n = self._fileinfos
                if engine.end_at_fin(flow):
                    # a body delimited by the close ends with this packet's FIN: judged while the FIN
                    # is held; its file goes out with its transaction, or now if that is not logged yet
                    engine.judge_complete_files(flow)
                    judged += self._fileinfos - n
                if judged:   # this packet completed a file: it was held while the file was judged
                    us = int((time.perf_counter() - t0) * 1e6)
                    c.files_judged_live += judged
                    c.hold_us_total += us
                    c.hold_us_max = max(c.hold_us_max, us)
                if self._bad_files:
                    bad, self._bad_files = self._bad_files, []
                    engine.raise_alerts(flow, bad)   # type: ignore[arg-type]
        except Exception:   # noqa: BLE001 - hostile input must never stop the data path
            c.engine_errors += 1
            return VerdictMsg(qp.packet_id, Verdict.ACCEPT)
        self._at = flow
        host = self._block_host()
        self._to_host = host is not None and host.targets(qp.payload)
        if self._to_host and self._answer_syn(host, flow, qp, now):   # type: ignore[arg-type]
            return VerdictMsg(qp.packet_id, Verdict.DROP)
        facts = None
        unjudged = False
        if flow is not None:
            app = flow.app
            parser = app.parser if app is not None else None
            total = flow.bytes_ts + flow.bytes_tc
            judging = engine.file_in_transit(flow)
            if judging and total > self.policy.cfg.inspect_depth and not self._files_judgeable(flow):
                judging, unjudged = False, True
            self._judging = judging
            facts = FlowFacts(flow_id=flow.flow_id, is_tcp=flow.proto == IPPROTO_TCP,
                              is_udp=flow.proto == IPPROTO_UDP, bytes_total=total,
                              tls_handshake_done=bool(app is not None and app.proto == "tls"
                                                      and getattr(parser, "done", False)),
                              file_in_transit=judging,
                              client_close=self.policy.is_paged(flow.flow_id) and self._client_close(flow))
            self._learn(flow, qp)
        hits = [h for f, h in self._hits if f is None or f is flow] if self._hits else ()
        bypassed = self.policy.counters.bypassed_flows
        d = self.policy.decide(facts, hits)
        why = None if d.accepted else _DROP_REASONS.get(d.reason)
        if why is not None:     # the first packet dropped for a flow (the rest go in the kernel)
            self.log(EngineEvent("drop", now, None, flow, self._direction(flow), drop_record(qp.payload, why),
                                 packet=self.engine._cur))
        if self.policy.counters.bypassed_flows > bypassed:   # handed back by this verdict
            c.files_unjudged_bypassed += unjudged
            self._released.append((time.monotonic(), flow))   # type: ignore[arg-type]
        if d.reason is Reason.BLOCKED_FILE:
            c.files_blocked += 1
        if d.block_page and flow is not None and self._page is not None:
            if self._block_page(flow, qp, self._page):
                # dropped without the block mark: the flow stays visible until the client's FIN
                # (answered below, `close_ack`), which then blocks it in the kernel
                return VerdictMsg(qp.packet_id, Verdict.DROP)
            self.policy.page_failed(flow.flow_id)
        elif d.reset and flow is not None:
            self._reset(flow, qp)
        elif d.close_ack and flow is not None:
            self._close_ack(flow, qp)
        elif d.unreachable and flow is not None:
            self.answers.unreachable(flow, qp, int(self._direction(flow)), time.monotonic())
        elif d.reason is Reason.DNS_ANSWERED and self._dns_frame is not None:
            self.answers.out.append(self._dns_frame)
            c.dns_answers_sent += 1
        if self._to_host:
            return self._host_rest(flow, qp)
        if d.action is Action.BYPASS:
            c.bytes_bypassed_marked += size
        if not d.accepted and d.mark is not None and d.reason in _FIRST_BLOCK:
            # NF_REPEAT with the block mark: the ruleset (netconfig's UTM-FWD) saves it to the
            # connmark and drops this and every later packet of the flow in the kernel
            return VerdictMsg(qp.packet_id, Verdict.REPEAT, d.mark)
        return VerdictMsg(qp.packet_id, Verdict.ACCEPT if d.accepted else Verdict.DROP, d.mark)

    def _direction(self, flow: Flow | None) -> Direction:
        pkt = self.engine._cur
        return flow.direction_of(pkt) if flow is not None and pkt is not None and pkt.l4_ok else Direction.TO_SERVER

    def _block_host(self) -> BlockHost | None:
        """The block host of the DNS answers configured now (they change with a reload)."""
        cfg = self.policy.cfg.dns_block
        if self._host[0] is not cfg:
            self._host = (cfg, BlockHost(cfg, self._host_secret) if cfg is not None else None)
        return self._host[1]

    def _answer_syn(self, host: BlockHost, flow: Flow | None, qp: QueuedPacket, now: float) -> bool:
        """A SYN to the block address: the box answers it (SYN-ACK on port 80, else a reset).
        The SYN-ACK also goes through the engine, so the request that follows is parsed as on
        any connection and its blocked Host gets the page. False for what is no SYN."""
        pkt = self.engine._cur
        if self.sender is None or flow is None or pkt is None or not pkt.l4_ok or len(qp.hwaddr) != 6 \
                or not pkt.tcp_flags & TH_SYN or pkt.tcp_flags & TH_ACK:
            return False
        self._learn(flow, qp)
        synack = self.answers.answer_syn(host, qp)
        if synack is not None:
            self.engine.process(LINKTYPE_RAW, synack, now, len(synack))
        return True

    def _host_rest(self, flow: Flow | None, qp: QueuedPacket) -> VerdictMsg:
        """Whatever else goes to the block address is dropped; data the page did not answer
        (another Host, no category database) gets a reset so the client does not wait."""
        pkt = self.engine._cur
        if (self.sender is not None and flow is not None and pkt is not None and pkt.l4_ok and pkt.payload
                and flow.proto == IPPROTO_TCP and not self.policy.is_paged(flow.flow_id) and len(qp.hwaddr) == 6):
            self.answers.refuse(self._host[1], qp)   # type: ignore[arg-type]
        return VerdictMsg(qp.packet_id, Verdict.DROP)

    def _files_judgeable(self, flow: Flow) -> bool:
        """Can anything still change the verdict of the flow's open file: a file scanner, or
        rules that read bodies (or matched one already)? If not, keeping the flow queued past the
        depth would only hash the rest for the log: it is handed back like any other flow (its
        file is then logged TRUNCATED when the flow ends)."""
        e = self.engine
        return not isinstance(e.files.scanner, NoScanner) or e.rules_judge_files(flow)

    def _learn(self, flow: Flow, qp: QueuedPacket) -> None:
        self.answers.learn(flow, qp, self._direction(flow))

    def _reset(self, flow: Flow, qp: QueuedPacket) -> None:
        d = self._direction(flow)
        self.answers.reset(flow, qp, int(d), self.holds.peek(flow.flow_id, d) if self.holds else None)

    def _client_close(self, flow: Flow) -> bool:
        pkt = self.engine._cur
        return bool(pkt is not None and pkt.l4_ok and pkt.tcp_flags & (TH_FIN | TH_RST)
                    and flow.direction_of(pkt) is Direction.TO_SERVER)

    def _close_ack(self, flow: Flow, qp: QueuedPacket) -> None:
        pkt = self.engine._cur
        if pkt is not None:
            self.answers.close_ack(flow, qp, pkt)

    def _block_page(self, flow: Flow, qp: QueuedPacket, hit: CategoryHit) -> bool:
        """The page (or the DNS answer over TCP) to the client, a RST to the server; False if it
        could not be sent."""
        if isinstance(hit.record, DnsMessage) and self._dns_stream is not None:
            return self.answers.page(flow, qp, self._dns_stream, dns=True, to_host=self._to_host)
        host = getattr(hit.record, "host", None) or hit.target.partition("/")[0]
        cat = hit.category
        page = block_page(cat.name, host, cat.label_en or None, cat.label_ja or None)
        return self.answers.page(flow, qp, page, to_host=self._to_host)

    # -- reload and stats ----------------------------------------------------------------------
    def swap_inspector(self, inspector: "RuleInspector | None") -> None:
        """New rules: open flows restart detection state (flowbits, stream positions) under them."""
        self.engine.inspector = inspector
        for flow in self.engine.flows:
            flow.detect = None
        self.counters.reloads += 1

    def stats_event(self, restarts: int = 0, queue_num: int | None = None) -> EngineEvent:
        e = self.engine
        pc, qc, c = self.policy.counters, self.queue.counters, self.counters
        live = {
            "packets": c.packets, "bytes": c.bytes, "batches": c.batches,
            "flows_active": len(e.flows), "flows_bypassed": pc.bypassed_flows, "flows_blocked": pc.blocked_flows,
            "queued_bytes": c.bytes, "bypass_verdict_bytes": c.bytes_bypassed_marked,
            "verdicts": {"accept": pc.accepted, "drop": pc.dropped, **{f"reason_{k}": v
                                                                      for k, v in pc.by_reason.items()}},
            "detect_only_hits": pc.detect_only_hits, "excluded": self.exclusions.tree(),
            "resets_sent": c.resets_sent, "reset_errors": c.reset_errors,
            "unreachables_sent": c.unreachables_sent, "unreachable_errors": c.unreachable_errors,
            "unreachables_limited": c.unreachables_limited,
            "block_pages_sent": c.block_pages_sent, "page_closes_acked": c.page_closes_acked,
            "dns_answers_sent": c.dns_answers_sent, "dns_answer_errors": c.dns_answer_errors,
            "files_blocked": c.files_blocked, "segments_held": dataclasses.asdict(self.holds.counters),
            "block_host_handshakes": c.block_host_handshakes, "block_host_resets": c.block_host_resets,
            "files_judged_live": c.files_judged_live, "file_hold_us_max": c.hold_us_max,
            "file_hold_us_total": c.hold_us_total, "files_unjudged_bypassed": c.files_unjudged_bypassed,
            "files_too_large": e.files.counters.announced_large,
            # bytes of open files held for the scanner now, their peak, files that passed the cap
            "scan_held_bytes": getattr(e.files.scanner, "held", 0),
            "scan_held_peak": getattr(e.files.scanner, "held_peak", 0),
            "scan_memcap_files": getattr(e.files.scanner, "memcap_files", 0),
            "digest_waits": getattr(e.files.digests, "waits", 0),   # the digest thread fell behind
            "blocks_timed": c.blocks_timed,
            "block_us_max": c.block_us_max, "block_us_total": c.block_us_total,
            "engine_errors": c.engine_errors, "reloads": c.reloads, "reload_errors": c.reload_errors,
            "events_lost": c.events_lost, "log_error": c.log_error,
            "expiry_behind": c.expiry_behind,
            "queue": {"received": qc.received, "verdicts": qc.verdicts, "enobufs": qc.enobufs,
                      "decode_errors": qc.decode_errors, "send_errors": qc.send_errors},
            "kernel_queue": kernel_view(kernel_stats(queue_num), qc.received) if queue_num is not None else None,
            "worker_restarts": restarts,
            "memory_max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
        return EngineEvent("stats", self.clock(), None, None, Direction.TO_SERVER,
                           LiveStats(e.counters().tree(), live))
