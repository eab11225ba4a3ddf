"""The frames the box sends on its own behalf, for the live worker.

Resets to both ends of a blocked flow (ICMP port unreachable to the sender of
a blocked UDP flow), the block page (or a DNS answer over
TCP) to the client with a reset to the server, the ACK of the client's FIN
after it, and the block host's SYN-ACK or reset. Each is built from the
queued packet it answers and the ends' MAC addresses and bridge ports, learnt
from the flow's own packets (`learn`), and queued in `out`: the worker sends
them after the batch's verdicts, so packets of the batch released before
them reach the client first (a reset would otherwise be out of window).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from inspection.flow.table import Flow
from inspection.io.nfqueue import QueuedPacket
from inspection.model import TH_FIN, Direction
from inspection.policy.blockhost import BlockHost
from inspection.policy.blockpage import block_page_frames, close_ack_frame
from inspection.policy.icmpreject import unreachable_frame
from inspection.policy.tcpreset import ResetError, reset_frames

if TYPE_CHECKING:
    from inspection.model import Packet

__all__ = ["PLACEHOLDER_MAC", "UNREACHABLE_PER_S", "Answers", "FrameSender"]

PLACEHOLDER_MAC = bytes.fromhex("0275746d0001")   # locally administered ("utm")
# ICMP errors sent per second at most: a UDP source can be forged, and a flood of blocked flows
# must not turn the box into a reflector (the kernel limits its own errors the same way)
UNREACHABLE_PER_S = 100


class FrameSender(Protocol):
    def send(self, ifindex: int, frame: bytes) -> None: ...


class Counters(Protocol):      # the worker's LiveCounters, as far as answers count
    reset_errors: int
    resets_sent: int
    unreachables_sent: int
    unreachable_errors: int
    unreachables_limited: int
    block_pages_sent: int
    page_closes_acked: int
    dns_answers_sent: int
    block_host_handshakes: int
    block_host_resets: int


class Answers:
    __slots__ = ("sender", "counters", "out", "ends", "_icmp_second", "_icmp_sent")

    def __init__(self, sender: FrameSender | None, counters: Counters) -> None:
        self.sender = sender
        self.counters = counters
        self._icmp_second, self._icmp_sent = -1, 0   # the whole second (monotonic) and its errors
        self.out: list[tuple[int, bytes]] = []        # (bridge port ifindex, frame), sent after the verdicts
        # per flow: (MAC, ifindex) of each end, learnt from the packets' source addresses
        self.ends: dict[int, list[tuple[bytes, int] | None]] = {}

    def learn(self, flow: Flow, qp: QueuedPacket, d: Direction) -> None:
        if len(qp.hwaddr) != 6 or not qp.physin:
            return
        ends = self.ends.get(flow.flow_id)
        if ends is None:
            ends = self.ends[flow.flow_id] = [None, None]
        ends[int(d)] = (qp.hwaddr, qp.physin)

    def forget(self, flow_id: int) -> None:
        self.ends.pop(flow_id, None)

    def reset(self, flow: Flow, qp: QueuedPacket, d: int, held: bytes | None = None) -> None:
        """RSTs to both ends: to the sender out of the packet's in-port, to the receiver out of its
        out-port. `held`: a segment of the sender held back and dropped with this packet; the
        receiver's reset starts at its sequence number (a later one would be ignored)."""
        c = self.counters
        if self.sender is None:
            return
        ends = self.ends.get(flow.flow_id) or [None, None]
        sender_end, receiver_end = ends[d], ends[1 - d]
        if sender_end is None:
            c.reset_errors += 1
            return
        # the receiver's MAC is known once it has sent a packet; else only the sender is reset,
        # from a locally administered placeholder address
        receiver_mac = receiver_end[0] if receiver_end is not None else PLACEHOLDER_MAC
        try:
            to_sender, to_receiver = reset_frames(qp.payload, sender_end[0], receiver_mac)
            if held is not None:
                to_receiver = reset_frames(held, sender_end[0], receiver_mac)[1]
        except ResetError:
            c.reset_errors += 1
            return
        self.out.append((qp.physin or sender_end[1], to_sender))
        c.resets_sent += 1
        port = qp.physout or (receiver_end[1] if receiver_end is not None else 0)
        if receiver_end is not None and port:
            self.out.append((port, to_receiver))
            c.resets_sent += 1
        else:
            c.reset_errors += 1

    def unreachable(self, flow: Flow, qp: QueuedPacket, d: int, now: float) -> None:
        """ICMP port unreachable to the sender of a blocked UDP flow's datagram, out of its in-port,
        as if from the other end (its MAC once it has sent something, else the placeholder).
        At most UNREACHABLE_PER_S in a second (`now`, monotonic); past that, counted only."""
        c = self.counters
        if self.sender is None:
            return
        second = int(now)
        if second != self._icmp_second:
            self._icmp_second, self._icmp_sent = second, 0
        if self._icmp_sent >= UNREACHABLE_PER_S:
            c.unreachables_limited += 1
            return
        if not qp.physin:         # no port to send it out of: nothing to build
            c.unreachable_errors += 1
            return
        other = (self.ends.get(flow.flow_id) or [None, None])[1 - d]
        try:
            frame = unreachable_frame(qp.payload, qp.hwaddr, other[0] if other is not None else PLACEHOLDER_MAC)
        except ResetError:
            c.unreachable_errors += 1
            return
        self.out.append((qp.physin, frame))
        self._icmp_sent += 1
        c.unreachables_sent += 1

    def close_ack(self, flow: Flow, qp: QueuedPacket, pkt: Packet) -> None:
        """The client closed after the block page: its FIN is acknowledged as by the server."""
        if self.sender is None or not pkt.tcp_flags & TH_FIN or len(qp.hwaddr) != 6:
            return   # a RST needs no answer
        server = (self.ends.get(flow.flow_id) or [None, None])[1]
        try:
            frame = close_ack_frame(qp.payload, qp.hwaddr, server[0] if server is not None else PLACEHOLDER_MAC)
        except ResetError:
            self.counters.reset_errors += 1
            return
        self.out.append((qp.physin, frame))
        self.counters.page_closes_acked += 1

    def page(self, flow: Flow, qp: QueuedPacket, page: bytes, *, dns: bool = False, to_host: bool = False) -> bool:
        """`page` to the client as the server's answer (with FIN), a RST to the server (none when the
        box itself was the server: the block host). `dns`: a DNS answer over TCP, counted as such.
        False if it could not be sent."""
        c = self.counters
        ends = self.ends.get(flow.flow_id) or [None, None]
        client, server = ends[0], ends[1]
        if self.sender is None or client is None:
            c.reset_errors += 1
            return False
        server_mac = server[0] if server is not None else PLACEHOLDER_MAC
        try:
            to_client, to_server = block_page_frames(qp.payload, client[0], server_mac, page)
        except (ResetError, ValueError):
            c.reset_errors += 1
            return False
        self.out.append((qp.physin or client[1], to_client))
        if dns:
            c.dns_answers_sent += 1
        else:
            c.block_pages_sent += 1
        port = qp.physout or (server[1] if server is not None else 0)
        if to_host:
            pass             # the box was the server: nobody beyond the bridge to reset
        elif server is not None and port:
            self.out.append((port, to_server))
            c.resets_sent += 1
        else:
            c.reset_errors += 1
        return True

    def answer_syn(self, host: BlockHost, qp: QueuedPacket) -> bytes | None:
        """A SYN to the block address: the box's SYN-ACK (port 80; returned as an IP packet for the
        engine, which must see the handshake) or a reset (other ports; None returned)."""
        try:
            frame, synack = host.answer_syn(qp.payload, qp.hwaddr, PLACEHOLDER_MAC)
        except ResetError:
            self.counters.reset_errors += 1
            return None
        self.out.append((qp.physin, frame))
        if synack is None:
            self.counters.block_host_resets += 1
        else:
            self.counters.block_host_handshakes += 1
        return synack

    def refuse(self, host: BlockHost, qp: QueuedPacket) -> None:
        """A reset to the client for what it sent the block host that the page does not answer."""
        try:
            self.out.append((qp.physin, host.refuse(qp.payload, qp.hwaddr, PLACEHOLDER_MAC)))
            self.counters.block_host_resets += 1
        except ResetError:
            self.counters.reset_errors += 1
