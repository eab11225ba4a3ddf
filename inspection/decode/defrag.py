"""IPv4 and IPv6 fragment reassembly, after Suricata's defrag (src/defrag.c).

Sans-IO: `Defragmenter.add` takes one `Fragment` (already decoded by the IP
decoder) and returns the reassembled datagram once the last fragment has been
seen and no hole is left. Time is the fragments' own timestamps and the `now`
handed to `expire`; no clock is read.

Trackers are keyed by (family, src, dst, ident, vlan) plus the protocol for
IPv4. Each keeps its fragments in a list sorted by offset (equal offsets in
arrival order). Overlaps are resolved when a fragment is inserted, as Suricata
does it: per `OverlapPolicy` the new fragment is trimmed on the left, an
existing one is trimmed (`_Piece.ltrim`) or dropped; reassembly then copies the
pieces in list order, later ones overwriting. Suricata's choices are kept (the
Sturges/Novak target-based results depend on them) except where they lose bytes
that some fragment carried, which Hypothesis found with consistent overlapping
fragments: a wholly trimmed piece is dropped at once, BSD trims the following
piece only where the new fragment really covers it, LINUX does not add up its
left trims, and the copy stops at the end of the first piece without MF rather
than at its start (holes are looked for only up to there, so a stray fragment
past the end of the datagram cannot hold reassembly back either).

Limits, each counted in `DefragCounters` when hit and reported as an anomaly:
`memcap` (bytes held, with a fixed cost per tracker and per fragment; the least
recently active other trackers are evicted first), `max_fragments` per tracker
(the tracker is dropped, like Suricata when its fragment pool runs dry),
`max_datagram` (fragment end past it: Suricata's IPv4 check counts a 20-byte
header) and `timeout` (seconds of inactivity; `expire` and the next fragment for
the same key discard a stale tracker).
"""
from __future__ import annotations

import enum
import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from operator import attrgetter

from inspection.decode.checksum import fold, ones_sum
from inspection.errors import ConfigError
from inspection.model import Anomaly, AnomalyKind

TRACKER_COST = 192      # estimated bytes per tracker (object, key, dict slot)
PIECE_COST = 96         # estimated bytes per held fragment besides its data
IPV4_HEADER_LEN = 20    # Suricata's too-large check for IPv4 counts a minimal header

EVENT_MEMCAP = "defrag.memcap"
EVENT_TIMEOUT = "defrag.timeout"


class OverlapPolicy(enum.Enum):
    """How overlapping fragment data is resolved (Suricata's defrag policies)."""

    FIRST = "first"
    LAST = "last"
    BSD = "bsd"
    LINUX = "linux"
    WINDOWS = "windows"
    SOLARIS = "solaris"


@dataclass(frozen=True, slots=True)
class Fragment:
    """One IP fragment: addresses packed, offset in bytes, `data` the bytes
    after the IPv4 header or after the IPv6 fragment header."""

    family: int
    src: bytes
    dst: bytes
    ident: int
    proto: int
    offset: int
    more: bool
    data: bytes
    ts: float
    vlan: tuple[int, ...] = ()
    # first fragments decoded from the captured frame itself: the frame up to the
    # fragmentable part, where the IP header starts in it, and (IPv6) where the
    # next-header byte naming the fragment header is; for the reassembled packet
    head: bytes = b""
    ip_at: int = 0
    nh_at: int = 0


@dataclass(frozen=True, slots=True)
class Reassembled:
    """A whole datagram: `data` is the upper-layer payload, `proto` the IPv4
    protocol or the next header of the IPv6 first fragment, `ts` the time of the
    fragment that completed it, `fragments` how many fragments reached it."""

    family: int
    src: bytes
    dst: bytes
    proto: int
    data: bytes
    ts: float
    fragments: int
    first: Fragment | None = field(default=None, compare=False)   # the offset-0 fragment, for `rebuild_frame`


@dataclass(slots=True)
class DefragCounters:
    fragments: int = 0              # fragments handed to add() (atomic ones excluded)
    reassembled: int = 0
    trackers: int = 0               # trackers created
    timeouts: int = 0               # trackers discarded incomplete after `timeout`
    overlaps: int = 0               # fragments that overlapped held data
    ignored: int = 0                # fragments dropped whole: duplicate, empty, invalid
    invalid_length: int = 0         # IPv6 fragment with MF whose length is not a multiple of 8
    too_large: int = 0
    memcap_evictions: int = 0       # trackers evicted to make room
    memcap_drops: int = 0           # fragments dropped because even eviction did not make room
    max_fragments_drops: int = 0    # trackers dropped for holding `max_fragments`


class _Piece:
    """A held fragment: `data` already trimmed at insert, `ltrim` bytes of it
    later given up to a fragment that the policy prefers."""

    __slots__ = ("offset", "data", "ltrim", "more", "proto")

    def __init__(self, offset: int, data: bytes, more: bool, proto: int) -> None:
        self.offset = offset
        self.data = data
        self.ltrim = 0
        self.more = more
        self.proto = proto


class _Tracker:
    __slots__ = ("pieces", "seen_last", "last_ts", "mem", "count", "max_len", "max_end", "first")

    def __init__(self, ts: float) -> None:
        self.first: Fragment | None = None
        self.pieces: list[_Piece] = []
        self.seen_last = False
        self.last_ts = ts
        self.mem = TRACKER_COST
        self.count = 0
        self.max_len = 0        # longest piece ever held: bounds how far back an overlap can start
        self.max_end = 0        # furthest end ever held: nothing can overlap a fragment starting there


_OFFSET = attrgetter("offset")
# Insert outcomes of one policy step.
_NEXT, _INSERT, _DROP = 0, 1, 2
# Policies for which fragments lying wholly after the new one are no-ops (Suricata walks on).
_WALK_ON = (OverlapPolicy.LINUX, OverlapPolicy.WINDOWS)


class Defragmenter:
    """Fragment trackers with an overlap policy, timeouts and a memory cap."""

    def __init__(self, *, timeout: float = 60.0, memcap: int = 32 << 20, max_datagram: int = 65535,
                 max_fragments: int = 1024, policy: OverlapPolicy = OverlapPolicy.BSD) -> None:
        if not timeout > 0:
            raise ConfigError("defrag.timeout", "must be positive")
        if memcap < TRACKER_COST + PIECE_COST:
            raise ConfigError("defrag.memcap", f"must be at least {TRACKER_COST + PIECE_COST}")
        if max_datagram < 1:
            raise ConfigError("defrag.max_datagram", "must be positive")
        if max_fragments < 1:
            raise ConfigError("defrag.max_fragments", "must be positive")
        if not isinstance(policy, OverlapPolicy):
            raise ConfigError("defrag.policy", f"unknown policy {policy!r}")
        self._timeout = timeout
        self._memcap = memcap
        self._max_datagram = max_datagram
        self._max_fragments = max_fragments
        self._policy = policy
        self._trackers: dict[tuple, _Tracker] = {}    # least recently active first
        self._mem = 0
        self.counters = DefragCounters()

    @property
    def memuse(self) -> int:
        return self._mem

    def __len__(self) -> int:
        return len(self._trackers)

    def add(self, frag: Fragment) -> tuple[Reassembled | None, list[Anomaly]]:
        """Take one fragment; return the datagram if it completed one, and the
        anomalies this fragment raised."""
        fam = frag.family
        prefix = "decoder.ipv4." if fam == 4 else "decoder.ipv6."
        if frag.offset == 0 and not frag.more and fam in (4, 6):
            return Reassembled(fam, frag.src, frag.dst, frag.proto, frag.data, frag.ts, 1, frag), []
        c = self.counters
        c.fragments += 1
        out: list[Anomaly] = []
        if fam not in (4, 6) or frag.offset < 0 or not math.isfinite(frag.ts):
            c.ignored += 1
            return None, [_anomaly(prefix + "frag_ignored")]
        n = len(frag.data)
        if fam == 6 and frag.more and n % 8:
            c.invalid_length += 1
            out.append(_anomaly("decoder.ipv6.frag_invalid_length"))
        if frag.offset + n + (IPV4_HEADER_LEN if fam == 4 else 0) > self._max_datagram:
            c.too_large += 1
            out.append(_anomaly(prefix + "frag_pkt_too_large"))
            return None, out

        key = (fam, frag.src, frag.dst, frag.ident, frag.proto if fam == 4 else -1, frag.vlan)
        t = self._trackers.get(key)
        if t is not None and frag.ts - t.last_ts > self._timeout:
            self._drop(key)
            c.timeouts += 1
            out.append(_anomaly(EVENT_TIMEOUT))
            t = None
        if t is not None and len(t.pieces) >= self._max_fragments:
            self._drop(key)
            c.max_fragments_drops += 1
            out.append(_anomaly(prefix + "frag_ignored"))
            return None, out
        need = PIECE_COST + n + (TRACKER_COST if t is None else 0)
        if self._mem + need > self._memcap and not self._make_room(key, t, need):
            c.memcap_drops += 1
            out.append(_anomaly(EVENT_MEMCAP))
            return None, out

        fresh = t is None
        if t is None:
            t = _Tracker(frag.ts)
            before = 0
        else:
            del self._trackers[key]             # re-inserted below: most recently active last
            before = t.mem
        inserted, overlap = self._insert(t, frag)
        if inserted and frag.offset == 0 and t.first is None:
            t.first = frag
        if overlap:
            c.overlaps += 1
            out.append(_anomaly(prefix + "frag_overlap"))
        if not inserted:
            c.ignored += 1
        self._mem += t.mem - before
        if not t.pieces:                        # nothing held (yet, or any more)
            self._mem -= t.mem
            return None, out
        if fresh:
            c.trackers += 1
        t.count += 1
        if frag.ts > t.last_ts:
            t.last_ts = frag.ts
        self._trackers[key] = t
        if inserted and t.seen_last:
            done = _reassemble(t)
            if done is not None:
                data, proto = done
                self._drop(key)
                c.reassembled += 1
                return Reassembled(fam, frag.src, frag.dst, proto if fam == 6 else frag.proto, data,
                                   frag.ts, t.count, t.first), out
        return None, out

    def expire(self, now: float) -> list[Anomaly]:
        """Discard trackers idle for more than `timeout` seconds before `now`.

        Trackers are kept in order of last activity, so this stops at the first
        one still live (timestamps that run backwards may delay an expiry until
        the trackers before it go)."""
        out: list[Anomaly] = []
        trackers = self._trackers
        while trackers:
            key = next(iter(trackers))
            if not now - trackers[key].last_ts > self._timeout:
                break
            self._drop(key)
            self.counters.timeouts += 1
            out.append(_anomaly(EVENT_TIMEOUT))
        return out

    # -- internals ---------------------------------------------------------

    def _drop(self, key: tuple) -> None:
        t = self._trackers.pop(key)
        self._mem -= t.mem

    def _make_room(self, key: tuple, own: _Tracker | None, need: int) -> bool:
        """Evict the least recently active trackers other than `key` until `need`
        more bytes fit; give up at once if even evicting all of them would not do."""
        own_mem = own.mem if own is not None else 0
        if own_mem + need > self._memcap:
            return False
        victims = []
        freed = 0
        for victim, tracker in self._trackers.items():
            if self._mem - freed + need <= self._memcap:
                break
            if victim != key:
                victims.append(victim)
                freed += tracker.mem
        for victim in victims:
            self._drop(victim)
        self.counters.memcap_evictions += len(victims)
        return True

    def _insert(self, t: _Tracker, frag: Fragment) -> tuple[bool, bool]:
        """Suricata's DefragInsertFrag: resolve overlaps per policy, then hold
        the (trimmed) fragment. Returns (inserted, overlapped)."""
        pieces = t.pieces
        off, data, policy = frag.offset, frag.data, self._policy
        n = len(data)
        end = off + n
        ltrim = 0
        overlap = False
        if pieces and off < t.max_end:
            count = len(pieces)
            # Suricata starts at the last piece before the first one at >= off, or
            # at the first piece when there is none (always for off == 0).
            i = bisect_left(pieces, off, key=_OFFSET) if off > 0 else count
            if 0 < i < count:
                p = i - 1
            else:
                # From the first piece: those ending at or before `off` are no-ops.
                p = bisect_right(pieces, off - t.max_len, key=_OFFSET) if i == count else 0
            while p < len(pieces):
                prev = pieces[p]
                plen = len(prev.data)
                pend = prev.offset + plen
                if off < pend and prev.offset < end:
                    overlap = True
                elif prev.offset >= end and policy in _WALK_ON:
                    break       # nothing after this can change for LINUX/WINDOWS
                nxt = pieces[p + 1] if p + 1 < len(pieces) else None
                step, ltrim = _STEPS[policy](prev, nxt, off, end, ltrim)
                if step == _DROP:
                    return False, overlap
                if step == _INSERT:
                    # Drop what is wholly given up (or skipped) now. Suricata only
                    # drops `prev`; a BSD-trimmed `next` it keeps goes on claiming
                    # its bytes and can trim their last holder away (a hole of
                    # unwritten bytes), so it is dropped here too.
                    for q in (p + 1, p):
                        if q < len(pieces):
                            pc = pieces[q]
                            if pc.ltrim >= len(pc.data) or pc.ltrim < 0:
                                del pieces[q]
                                t.mem -= PIECE_COST + len(pc.data)
                    break
                p += 1
        if ltrim >= n:
            return False, overlap
        kept = data[ltrim:] if ltrim else data
        piece = _Piece(off + ltrim, kept, frag.more, frag.proto)
        pieces.insert(bisect_right(pieces, piece.offset, key=_OFFSET), piece)
        t.mem += PIECE_COST + len(kept)
        if len(kept) > t.max_len:
            t.max_len = len(kept)
        if end > t.max_end:
            t.max_end = end
        if not frag.more:
            t.seen_last = True
        return True, overlap


def rebuild_frame(r: Reassembled) -> bytes | None:
    """The reassembled packet as Suricata logs it: the first fragment's frame up
    to its IP header (IPv6: without the fragment header), lengths set for the
    whole datagram, then the datagram's payload. None if the first fragment did
    not come from a captured frame (tunnelled) or the datagram is too large."""
    first = r.first
    if first is None or not first.head:
        return None
    head = bytearray(first.head)
    at = first.ip_at
    if r.family == 4:
        hlen = len(head) - at
        total = hlen + len(r.data)
        if total > 0xFFFF:
            return None
        head[at + 2:at + 4] = total.to_bytes(2, "big")
        head[at + 6:at + 8] = b"\0\0"          # no more fragments, offset 0
        head[at + 10:at + 12] = b"\0\0"
        head[at + 10:at + 12] = (~fold(ones_sum(bytes(head[at:]))) & 0xFFFF).to_bytes(2, "big")
    else:
        plen = len(head) - at - 40 + len(r.data)
        if plen > 0xFFFF:
            return None
        head[at + 4:at + 6] = plen.to_bytes(2, "big")
        head[first.nh_at] = r.proto
    return bytes(head) + r.data


def _anomaly(event: str) -> Anomaly:
    return Anomaly(AnomalyKind.DECODE, event)


def _reassemble(t: _Tracker) -> tuple[bytes, int] | None:
    """Suricata's Defrag{4,6}Reassemble: the payload if the pieces cover it
    without a hole, else None. Pieces are copied in list order, later ones
    overwriting. Suricata stops copying at the first piece starting after the
    start of a piece without MF; that loses the bytes of a piece lying inside a
    last fragment whose start was given up, so here the copy stops at the first
    piece starting at or past the end of the first piece without MF."""
    pieces = t.pieces
    if not pieces or pieces[0].offset != 0:
        return None
    covered = 0
    size = 0
    stop = -1
    proto = pieces[0].proto
    copy: list[_Piece] = []
    for pc in pieces:
        if 0 <= stop <= pc.offset:
            break
        if pc.offset > covered:
            return None
        dlen = len(pc.data)
        pend = pc.offset + dlen
        if pend > covered:
            covered = pend
        if pc.ltrim >= dlen:
            continue
        copy.append(pc)
        if pend > size:
            size = pend
        if pc.offset == 0:
            proto = pc.proto
        if not pc.more and stop < 0:
            stop = pend
    buf = bytearray(size)
    for pc in copy:
        s = pc.offset + pc.ltrim
        buf[s:pc.offset + len(pc.data)] = memoryview(pc.data)[pc.ltrim:]
    return bytes(buf), proto


# Policy steps: (prev, next, off, end, ltrim) -> (step, ltrim). Transcribed from
# the switch in Suricata's DefragInsertFrag; `prev.ltrim = -1` marks Suricata's
# `prev->skip` (the piece is removed on _INSERT).

def _bsd(prev: _Piece, nxt: _Piece | None, off: int, end: int, ltrim: int) -> tuple[int, int]:
    pend = prev.offset + len(prev.data)
    if off < pend:
        if prev.offset <= off:
            # Prefer the data already held: trim the new fragment's start.
            if pend > end:
                return _DROP, ltrim
            # Suricata trims `next` even when it starts before the kept part of
            # the new fragment (pend), which loses the bytes in between.
            if nxt is not None and end > nxt.offset >= pend:
                nxt.ltrim = end - nxt.offset
            return _INSERT, pend - off
        # The new fragment starts first: it wins the start of the held one.
        if off <= prev.offset and end > prev.offset + prev.ltrim:
            prev.ltrim = max(prev.ltrim, end - prev.offset)
        if nxt is not None and end > nxt.offset:
            nxt.ltrim = end - nxt.offset
        return _INSERT, ltrim
    return _NEXT, ltrim


def _linux(prev: _Piece, nxt: _Piece | None, off: int, end: int, ltrim: int) -> tuple[int, int]:
    pend = prev.offset + len(prev.data)
    if prev.offset + prev.ltrim < off + ltrim < pend:
        ltrim = pend - off      # Suricata adds this to the trim so far, skipping bytes nobody holds
    if off + ltrim < prev.offset + prev.ltrim < end:
        prev.ltrim += end - (prev.offset + prev.ltrim)
        return _INSERT, ltrim
    if off + ltrim <= prev.offset + prev.ltrim and end >= pend:
        prev.ltrim = -1
        return _INSERT, ltrim
    return _NEXT, ltrim


def _windows(prev: _Piece, nxt: _Piece | None, off: int, end: int, ltrim: int) -> tuple[int, int]:
    pend = prev.offset + len(prev.data)
    if off >= prev.offset and end <= pend:
        return _DROP, ltrim
    if off < prev.offset and end > pend:
        prev.ltrim = -1
        return _INSERT, ltrim
    if prev.offset + prev.ltrim < off + ltrim < pend:
        return _INSERT, ltrim + pend - off
    if off == prev.offset and end > pend:
        return _INSERT, ltrim + pend - off
    return _NEXT, ltrim


def _solaris(prev: _Piece, nxt: _Piece | None, off: int, end: int, ltrim: int) -> tuple[int, int]:
    pend = prev.offset + len(prev.data)
    if off < pend:
        if off >= prev.offset:
            ltrim = pend - off
        if off < prev.offset and end >= pend:
            prev.ltrim = -1
        return _INSERT, ltrim
    return _NEXT, ltrim


def _first(prev: _Piece, nxt: _Piece | None, off: int, end: int, ltrim: int) -> tuple[int, int]:
    pend = prev.offset + len(prev.data)
    if off >= prev.offset and end <= pend:
        return _DROP, ltrim
    if off < prev.offset:
        return _INSERT, ltrim
    if off < pend:
        return _INSERT, pend - off
    return _NEXT, ltrim


def _last(prev: _Piece, nxt: _Piece | None, off: int, end: int, ltrim: int) -> tuple[int, int]:
    if off <= prev.offset:
        if end > prev.offset:
            prev.ltrim = end - prev.offset
        return _INSERT, ltrim
    return _NEXT, ltrim


_STEPS = {
    OverlapPolicy.BSD: _bsd,
    OverlapPolicy.LINUX: _linux,
    OverlapPolicy.WINDOWS: _windows,
    OverlapPolicy.SOLARIS: _solaris,
    OverlapPolicy.FIRST: _first,
    OverlapPolicy.LAST: _last,
}

__all__ = ["OverlapPolicy", "Fragment", "Reassembled", "DefragCounters", "Defragmenter",
           "EVENT_MEMCAP", "EVENT_TIMEOUT"]
