"""TCP session tracking and per-direction reassembly.

`TcpSession.packet` takes one decoded segment and returns what became
deliverable in order: data chunks and gaps, per direction. Policies:

- bytes handed to the parsers are never replaced; while they wait for the
  peer's ACK, an overlapping segment with different bytes replaces them where
  the receiver's OS would (`policy.use_new_data`, Suricata's target-based
  table; ``bsd`` unless ``host-os-policy`` says otherwise), and raises
  ``stream.reassembly_overlap_different_data``;
- out-of-order segments wait in a bounded per-session store;
- a gap is declared when the peer acknowledges bytes that were never seen,
  or when the flow ends with segments still waiting (the parser resyncs);
- each direction is reassembled up to `depth` bytes, after which the
  direction is only tracked, never buffered.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from inspection.model import TH_ACK, TH_FIN, TH_RST, TH_SYN, Anomaly, AnomalyKind, Direction, Packet
from inspection.stream.policy import DEFAULT_POLICY, use_new_data

MASK = 0xFFFFFFFF
HALF = 0x80000000
TAIL_KEEP = 16 * 1024           # delivered bytes kept to compare retransmissions against
DATA, GAP, EOF = 0, 1, 2        # kinds of reassembly output (EOF: the direction is closed)
# placeholder between calls: a tuple, so that appending outside a call is an error
_NO_OUT: list[tuple[int, Direction, object]] = ()   # type: ignore[assignment]


class TcpState(enum.IntEnum):
    NONE = 0            # no handshake seen and midstream pickup off: not reassembled
    SYN_SENT = 1
    SYN_RECV = 2
    ESTABLISHED = 3
    CLOSING = 4         # one FIN seen
    CLOSED = 5          # both FINs or a RST


# the states as plain globals: an Enum class attribute costs a metaclass lookup (~50 ns) and
# `_packet` reads several per segment
_NONE, _SYN_SENT, _SYN_RECV, _ESTABLISHED, _CLOSING, _CLOSED = TcpState
_TO_SERVER = Direction.TO_SERVER


@dataclass(slots=True)
class StreamConfig:
    depth: int = 1 << 20
    midstream: bool = False
    async_oneside: bool = False
    memcap: int = 64 << 20
    max_ooo_segments: int = 2048
    # IDS mode (offline): in-order data reaches the parsers once the peer has
    # acknowledged it, as in Suricata, so events carry the acknowledging packet.
    # Inline mode hands data over at once.
    ack_gated: bool = True
    max_unacked: int = 256 * 1024


@dataclass(slots=True)
class StreamCounters:
    segments: int = 0
    ooo_segments: int = 0
    retransmissions: int = 0
    overlaps_different: int = 0
    gaps: int = 0
    depth_reached: int = 0
    memcap_drops: int = 0
    memuse: int = 0          # bytes held in out-of-order stores right now


class Stream:
    """One direction: what was delivered, what waits, where it ends."""

    __slots__ = ("base", "next", "ooo", "tail", "fin", "fin_acked", "depth_hit", "reassemble", "unacked",
                 "unacked_len")

    def __init__(self) -> None:
        self.base: int | None = None     # absolute sequence number of relative offset 0
        self.next = 0                    # relative offset of the next byte to deliver
        self.ooo: dict[int, bytes] | None = None
        self.tail = b""
        self.fin: int | None = None      # relative offset of the FIN
        self.fin_acked = False
        self.depth_hit = False
        self.reassemble = True
        self.unacked: list[bytes] | None = None   # delivered in order, waiting for the peer's ACK
        self.unacked_len = 0

    def rel(self, seq: int) -> int:
        """Relative offset of `seq`, unwrapped around `next` (may be negative)."""
        d = (seq - self.base - self.next) & MASK  # type: ignore[operator]
        if d >= HALF:
            d -= 1 << 32
        return self.next + d


class TcpSession:
    """Both directions of one TCP connection plus the handshake state."""

    __slots__ = ("state", "streams", "cfg", "counters", "out", "anomalies", "midstream", "eof_sent", "policies")

    def __init__(self, cfg: StreamConfig, counters: StreamCounters) -> None:
        self.state = TcpState.NONE
        self.streams = (Stream(), Stream())
        self.cfg = cfg
        self.counters = counters
        self.out: list[tuple[int, Direction, object]] = _NO_OUT
        self.anomalies: list[Anomaly] | tuple = ()   # the engine takes them after each call
        self.midstream = False   # picked up without seeing the handshake
        self.eof_sent = False
        # overlap policy of each direction's receiver (the server for to-server data), see policy.py
        self.policies: tuple[str, str] = (DEFAULT_POLICY, DEFAULT_POLICY)

    # -- packets -------------------------------------------------------------------------------
    def packet(self, pkt: Packet, d: Direction) -> list[tuple[int, Direction, object]]:
        """Process one segment; return (kind, direction, bytes-or-gap-length) items in order."""
        out: list[tuple[int, Direction, object]] = []
        self.out = out
        try:
            return self._packet(pkt, d, out)
        finally:
            self.out = _NO_OUT  # the caller owns the list; an idle session keeps no data alive

    def _packet(self, pkt: Packet, d: Direction, out: list) -> list[tuple[int, Direction, object]]:
        flags = pkt.tcp_flags
        s = self.streams[d]
        st = self.state
        if flags & TH_RST:
            if st != _NONE and s.base is not None and pkt.payload:
                self._data(s, d, pkt.seq, pkt.payload)
            self.state = _CLOSED
            self._eof()  # nothing will be acknowledged now
            return out
        if flags & TH_SYN:
            self._syn(pkt, d, s)
            return out
        if st == _SYN_SENT and not self.cfg.async_oneside:
            return out  # no SYN/ACK yet: like Suricata, data and FIN from here on are not trusted
        if st == _NONE:
            if not self.cfg.midstream:
                return out
            self.state = st = _ESTABLISHED
            self.midstream = True
        if s.base is None:
            if st == _SYN_SENT and not self.cfg.async_oneside and d == _TO_SERVER:
                return out
            s.base = pkt.seq
            s.next = 0
        if st in (_SYN_SENT, _SYN_RECV) and (flags & TH_ACK or pkt.payload):
            if st == _SYN_RECV or self.cfg.async_oneside:
                self.state = _ESTABLISHED
        if flags & TH_ACK:
            self._ack(d.other, pkt.ack)
        if pkt.payload:
            self._data(s, d, pkt.seq, pkt.payload)
        if flags & TH_FIN:
            rel = s.rel(pkt.seq) + len(pkt.payload)
            if s.fin is None:
                s.fin = rel
            other = self.streams[d.other]
            self.state = _CLOSED if other.fin is not None else _CLOSING
        if s.fin_acked and self.streams[d.other].fin_acked and not self.eof_sent:
            self._eof()
        return out

    def _eof(self) -> None:
        """Both directions are closed: hand over what waits and say so, once."""
        if self.eof_sent:
            return
        self.eof_sent = True
        for dd in (Direction.TO_SERVER, Direction.TO_CLIENT):
            ss = self.streams[dd]
            if ss.unacked:
                self._release(ss, dd, ss.next)
            if ss.base is not None and ss.reassemble:
                self.out.append((EOF, dd, 0))

    def _syn(self, pkt: Packet, d: Direction, s: Stream) -> None:
        isn1 = (pkt.seq + 1) & MASK
        if pkt.tcp_flags & TH_ACK:  # SYN/ACK from the server
            if s.base is None or s.next == 0:
                s.base, s.next = isn1, 0
            if self.state in (_NONE, _SYN_SENT):
                self.state = _SYN_RECV
        else:
            if s.base is None or (s.next == 0 and self.state <= _SYN_SENT):
                s.base, s.next = isn1, 0
            if self.state == _NONE:
                self.state = _SYN_SENT
        if pkt.payload:  # TCP Fast Open or data on SYN
            self._data(s, d, isn1, pkt.payload)

    def _ack(self, d: Direction, ack: int) -> None:
        """The peer acknowledged up to `ack` in direction `d`: bytes missing below it are a gap."""
        s = self.streams[d]
        if s.base is None or not s.reassemble:
            return
        rel = s.rel(ack)
        if s.fin is not None and rel > s.fin:
            s.fin_acked = True
        if s.unacked:
            self._release(s, d, rel)
        if s.tail:
            # Acknowledged bytes are never retransmitted by a correct sender;
            # like Suricata, keep for comparison only what is not yet acknowledged.
            keep = s.next - rel
            if keep <= 0:
                s.tail = b""
            elif keep < len(s.tail):
                s.tail = s.tail[-keep:]
        if s.depth_hit:
            return
        limit = rel
        if s.fin is not None and rel >= s.fin:
            limit = s.fin
        if limit <= s.next or limit - s.next > HALF:
            return
        if s.ooo:
            first = min(s.ooo)
            if first < limit:
                limit = first
        if limit > s.next:
            self._gap(s, d, limit - s.next)

    # -- data ----------------------------------------------------------------------------------
    def _data(self, s: Stream, d: Direction, seq: int, data: bytes) -> None:
        c = self.counters
        c.segments += 1
        if s.depth_hit or not s.reassemble:
            return
        rel = s.rel(seq)
        end = rel + len(data)
        nxt = s.next
        if end <= nxt:
            c.retransmissions += 1
            if self._compare(s, d, rel, data) and s.unacked:
                self._overlap(s, d, rel, data)
            return
        if rel > nxt:
            self._store(s, rel, data)
            return
        if rel < nxt:
            c.retransmissions += 1
            if self._compare(s, d, rel, data[:nxt - rel]) and s.unacked:
                self._overlap(s, d, rel, data[:nxt - rel], end)
            data = data[nxt - rel:]
        self._deliver(s, d, data)
        if s.ooo:
            self._drain(s, d)

    def _deliver(self, s: Stream, d: Direction, data: bytes) -> None:
        room = self.cfg.depth - s.next
        if len(data) >= room:
            data = data[:room]
            s.depth_hit = True
            self.counters.depth_reached += 1
            self._drop_ooo(s)
        s.next += len(data)
        if data:
            if len(data) >= TAIL_KEEP:
                s.tail = data[-TAIL_KEEP:]
            else:
                s.tail = (s.tail + data)[-TAIL_KEEP:]
            if not self.cfg.ack_gated:
                self.out.append((DATA, d, data))
                return
            if s.unacked is None:
                s.unacked = []
            s.unacked.append(data)
            s.unacked_len += len(data)
            if s.unacked_len > self.cfg.max_unacked:  # the peer's ACKs are not in the capture
                self._release(s, d, s.next)

    def _release(self, s: Stream, d: Direction, upto: int) -> None:
        """Hand over unacknowledged data below relative offset `upto`."""
        start = s.next - s.unacked_len
        if upto <= start:
            return
        pending = s.unacked
        out = self.out
        while pending and start < upto:
            chunk = pending[0]
            if start + len(chunk) <= upto:
                out.append((DATA, d, chunk))
                pending.pop(0)
                start += len(chunk)
                s.unacked_len -= len(chunk)
                if not pending:
                    s.unacked = None  # idle streams hold no list
            else:
                k = upto - start
                out.append((DATA, d, chunk[:k]))
                pending[0] = chunk[k:]
                s.unacked_len -= k
                start = upto

    def _compare(self, s: Stream, d: Direction, rel: int, data: bytes) -> bool:
        """Overlapping bytes should match what was delivered; True (and an anomaly) if not."""
        tail_start = s.next - len(s.tail)
        lo = max(rel, tail_start)
        hi = min(rel + len(data), s.next)
        if hi <= lo:
            return False
        if data[lo - rel:hi - rel] != s.tail[lo - tail_start:hi - tail_start]:
            self.counters.overlaps_different += 1
            self._anomaly(Anomaly(AnomalyKind.STREAM, "stream.reassembly_overlap_different_data", direction=d))
            return True
        return False

    def _overlap(self, s: Stream, d: Direction, rel: int, data: bytes, seg_end: int | None = None) -> None:
        """Different bytes overlap data still waiting for its ACK: each held segment takes
        the new bytes where the receiver's policy says so. `seg_end` is where the whole
        new segment ends (its bytes past `next` are delivered as usual)."""
        policy = self.policies[d]
        new_end = seg_end if seg_end is not None else rel + len(data)
        pending = s.unacked
        pos = s.next - s.unacked_len
        tail_start = s.next - len(s.tail)
        for i, chunk in enumerate(pending):  # type: ignore[arg-type]
            cs, ce = pos, pos + len(chunk)
            pos = ce
            lo, hi = max(cs, rel), min(ce, rel + len(data))
            if hi <= lo or chunk[lo - cs:hi - cs] == data[lo - rel:hi - rel]:
                continue
            if not use_new_data(policy, rel, new_end, cs, ce):
                continue
            new = data[lo - rel:hi - rel]
            pending[i] = chunk[:lo - cs] + new + chunk[hi - cs:]  # type: ignore[index]
            t_lo = max(lo, tail_start)
            if t_lo < hi:   # keep the comparison copy in step
                s.tail = s.tail[:t_lo - tail_start] + new[t_lo - lo:] + s.tail[hi - tail_start:]

    def _store(self, s: Stream, rel: int, data: bytes) -> None:
        c = self.counters
        if s.ooo is None:
            s.ooo = {}
        old = s.ooo.get(rel)
        if old is not None:
            if len(old) >= len(data):
                if old[:len(data)] != data:
                    c.overlaps_different += 1
                    self._anomaly(Anomaly(AnomalyKind.STREAM, "stream.reassembly_overlap_different_data"))
                return
            c.memuse -= len(old)
        elif c.memuse + len(data) > self.cfg.memcap or len(s.ooo) >= self.cfg.max_ooo_segments:
            c.memcap_drops += 1
            self._anomaly(Anomaly(AnomalyKind.STREAM, "stream.reassembly_memcap"))
            return
        c.ooo_segments += 1
        c.memuse += len(data)
        s.ooo[rel] = data

    def _drain(self, s: Stream, d: Direction) -> None:
        ooo = s.ooo
        while ooo and not s.depth_hit:
            first = min(ooo)
            if first > s.next:
                return
            data = ooo.pop(first)
            self.counters.memuse -= len(data)
            end = first + len(data)
            if end <= s.next:
                self._compare(s, d, first, data)
                continue
            if first < s.next:
                self._compare(s, d, first, data[:s.next - first])
                data = data[s.next - first:]
            self._deliver(s, d, data)

    def _gap(self, s: Stream, d: Direction, length: int) -> None:
        if s.unacked:
            self._release(s, d, s.next)
        self.counters.gaps += 1
        self._anomaly(Anomaly(AnomalyKind.STREAM, "stream.reassembly_seq_gap", direction=d))
        s.next += length
        s.tail = b""
        self.out.append((GAP, d, length))
        if s.next >= self.cfg.depth:
            s.depth_hit = True
            self._drop_ooo(s)
        elif s.ooo:
            self._drain(s, d)

    def _drop_ooo(self, s: Stream) -> None:
        if s.ooo:
            self.counters.memuse -= sum(len(v) for v in s.ooo.values())
            s.ooo = None

    # -- end of flow ---------------------------------------------------------------------------
    def flush(self) -> list[tuple[int, Direction, object]]:
        """Flow ends: deliver what waits behind holes, declaring the holes as gaps."""
        out: list[tuple[int, Direction, object]] = []
        self.out = out
        try:
            self._flush()
        finally:
            self.out = _NO_OUT
        return out

    def _flush(self) -> None:
        for d in (Direction.TO_SERVER, Direction.TO_CLIENT):
            s = self.streams[d]
            while s.ooo and not s.depth_hit:
                first = min(s.ooo)
                if first > s.next:
                    self._gap(s, d, first - s.next)
                else:
                    self._drain(s, d)
            self._drop_ooo(s)
            if s.unacked:
                self._release(s, d, s.next)

    def _anomaly(self, a: Anomaly) -> None:
        if isinstance(self.anomalies, list):
            self.anomalies.append(a)
        else:
            self.anomalies = [a]

    def swap(self) -> None:
        """The flow's client and server were the wrong way round."""
        self.streams = (self.streams[1], self.streams[0])
        self.policies = (self.policies[1], self.policies[0])

    def stop(self, d: Direction) -> None:
        """Nothing more to learn in direction `d` (parser done): track only."""
        s = self.streams[d]
        s.reassemble = False
        s.tail = b""
        s.unacked, s.unacked_len = None, 0
        self._drop_ooo(s)
