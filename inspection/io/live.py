"""Live driver: queued packets in, verdicts out, the same Engine as for captures.

One `LiveWorker` per queue (one per process). Each batch from the queue goes
through the engine packet by packet; alerts that fire on a packet decide its
verdict through `FlowPolicy`; blocked TCP flows are reset at both ends with
frames sent out of the bridge ports (`FrameSender`). Nothing that traffic
does raises out of here: an engine failure on a packet is counted and the
packet accepted (fail open), as STYLE habit 4 asks.
"""
from __future__ import annotations

import resource
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

from inspection.engine import Engine, EngineEvent
from inspection.flow.table import Flow
from inspection.io.nfqueue import PacketQueue, QueuedPacket, Verdict, VerdictMsg, kernel_stats
from inspection.model import IPPROTO_TCP, Direction
from inspection.policy.tcpreset import ResetError, reset_frames
from inspection.policy.verdict import Action, FlowFacts, FlowPolicy, HitView

if TYPE_CHECKING:
    from inspection.detect.inspector import RuleInspector

LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_RAW = 228, 229, 101
_LINKTYPES = {0x0800: LINKTYPE_IPV4, 0x86DD: LINKTYPE_IPV6}
PLACEHOLDER_MAC = bytes.fromhex("0275746d0001")   # locally administered ("utm")


class FrameSender(Protocol):
    def send(self, ifindex: int, frame: bytes) -> None: ...


@dataclass
class FakeSender:
    """Records frames instead of sending them (tests)."""

    frames: list[tuple[int, bytes]] = field(default_factory=list)

    def send(self, ifindex: int, frame: bytes) -> None:
        self.frames.append((ifindex, frame))


class AfPacketSender:
    """Raw Ethernet frames out of one interface each, through one AF_PACKET socket."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._names: dict[int, str] = {}

    def send(self, ifindex: int, frame: bytes) -> None:
        name = self._names.get(ifindex)
        if name is None:
            name = self._names[ifindex] = socket.if_indextoname(ifindex)
        self._sock.sendto(frame, (name, 0))

    def close(self) -> None:
        self._sock.close()


@dataclass(slots=True)
class LiveCounters:
    batches: int = 0
    packets: int = 0
    bytes: int = 0
    bytes_bypassed_marked: int = 0   # bytes of packets whose verdict handed their flow back
    engine_errors: int = 0           # packets the engine failed on (accepted, counted)
    resets_sent: int = 0
    reset_errors: int = 0            # a reset could not be built or sent (no MAC known yet, ...)
    reloads: int = 0
    reload_errors: int = 0


class AllowedHit:
    """A blocking rule's hit in detect-only mode: logged the same, with ``action: allowed``."""

    __slots__ = ("_hit",)

    def __init__(self, hit: object) -> None:
        self._hit = hit

    def __getattr__(self, name: str) -> object:
        return getattr(self._hit, name)

    @property
    def blocked(self) -> bool:
        return False


class LiveStats:
    """The `stats` event body: the engine's tree plus a ``live`` branch."""

    def __init__(self, engine_tree: dict, live: dict) -> None:
        self._tree = engine_tree
        self._live = live

    def tree(self) -> dict:
        return {**self._tree, "live": self._live}


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
        self._hits: list[tuple[Flow | None, object]] = []
        # per flow: (MAC, ifindex) of each end, learnt from the packets' source addresses
        self._ends: dict[int, list[tuple[bytes, int] | None]] = {}
        engine._emit = self._on_event   # the engine was built with a placeholder; events pass through here

    # -- events --------------------------------------------------------------------------------
    def _on_event(self, ev: EngineEvent) -> None:
        if ev.event_type == "alert":
            hit = ev.body
            if hit.blocked and self.policy.allows(HitView(True, hit.rule.classtype)):  # type: ignore[attr-defined]
                ev.body = AllowedHit(hit)
            self._hits.append((ev.flow, ev.body))
        elif ev.event_type == "flow" and ev.flow is not None:
            self.policy.forget(ev.flow.flow_id)
            self._ends.pop(ev.flow.flow_id, None)
        self._emit_out(ev)

    # -- packets -------------------------------------------------------------------------------
    def run_once(self, timeout: float) -> int:
        """One batch: receive, decide, send the verdicts. Returns the batch size."""
        batch = self.queue.receive(self.max_batch, timeout)
        if not batch:
            self.engine.flows.expire(self.clock())
            return 0
        c = self.counters
        c.batches += 1
        now = self.clock()
        self.queue.verdicts([self.handle(p, now) for p in batch])
        return len(batch)

    def handle(self, qp: QueuedPacket, now: float) -> VerdictMsg:
        c = self.counters
        c.packets += 1
        size = len(qp.payload)
        c.bytes += size
        engine = self.engine
        self._hits.clear()
        try:
            engine.process(_LINKTYPES.get(qp.hw_protocol, LINKTYPE_RAW), qp.payload, now, qp.cap_len or size)
        except Exception:   # noqa: BLE001 - hostile input must never stop the data path
            c.engine_errors += 1
            return VerdictMsg(qp.packet_id, Verdict.ACCEPT)
        flow = engine.flow
        facts = None
        if flow is not None:
            app = flow.app
            parser = app.parser if app is not None else None
            facts = FlowFacts(flow_id=flow.flow_id, is_tcp=flow.proto == IPPROTO_TCP,
                              bytes_total=flow.bytes_ts + flow.bytes_tc,
                              tls_handshake_done=bool(app is not None and app.proto == "tls"
                                                      and getattr(parser, "done", False)),
                              file_in_transit=engine.file_in_transit(flow))
            self._learn(flow, qp)
        hits = [HitView(h.blocked, h.rule.classtype) for f, h in self._hits  # type: ignore[attr-defined]
                if f is None or f is flow]
        d = self.policy.decide(facts, hits)
        if d.reset and flow is not None:
            self._reset(flow, qp)
        if d.action is Action.BYPASS:
            c.bytes_bypassed_marked += size
        return VerdictMsg(qp.packet_id, Verdict.ACCEPT if d.accepted else Verdict.DROP, d.mark)

    def _learn(self, flow: Flow, qp: QueuedPacket) -> None:
        if len(qp.hwaddr) != 6 or not qp.physin:
            return
        ends = self._ends.get(flow.flow_id)
        if ends is None:
            ends = self._ends[flow.flow_id] = [None, None]
        pkt = self.engine._cur
        d = flow.direction_of(pkt) if pkt is not None and pkt.l4_ok else Direction.TO_SERVER
        ends[int(d)] = (qp.hwaddr, qp.physin)

    def _reset(self, flow: Flow, qp: QueuedPacket) -> None:
        """RSTs to both ends: to the sender out of the packet's in-port, to the receiver out of its out-port."""
        c = self.counters
        if self.sender is None:
            return
        ends = self._ends.get(flow.flow_id) or [None, None]
        pkt = self.engine._cur
        d = int(flow.direction_of(pkt)) if pkt is not None and pkt.l4_ok else 0
        sender_end, receiver_end = ends[d], ends[1 - d]
        if sender_end is None:
            c.reset_errors += 1
            return
        # the receiver's MAC is known once it has sent a packet; else only the sender is reset,
        # from a locally administered placeholder address
        receiver_mac = receiver_end[0] if receiver_end is not None else PLACEHOLDER_MAC
        try:
            to_sender, to_receiver = reset_frames(qp.payload, sender_end[0], receiver_mac)
        except ResetError:
            c.reset_errors += 1
            return
        try:
            self.sender.send(qp.physin or sender_end[1], to_sender)
            c.resets_sent += 1
            out = qp.physout or (receiver_end[1] if receiver_end is not None else 0)
            if receiver_end is not None and out:
                self.sender.send(out, to_receiver)
                c.resets_sent += 1
            else:
                c.reset_errors += 1
        except OSError:
            c.reset_errors += 1

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
            "detect_only_hits": pc.detect_only_hits, "resets_sent": c.resets_sent, "reset_errors": c.reset_errors,
            "engine_errors": c.engine_errors, "reloads": c.reloads, "reload_errors": c.reload_errors,
            "queue": {"received": qc.received, "verdicts": qc.verdicts, "enobufs": qc.enobufs,
                      "decode_errors": qc.decode_errors, "send_errors": qc.send_errors},
            "kernel_queue": kernel_stats(queue_num) if queue_num is not None else None,
            "worker_restarts": restarts,
            "memory_max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
        return EngineEvent("stats", self.clock(), None, None, Direction.TO_SERVER,
                           LiveStats(e.counters().tree(), live))
