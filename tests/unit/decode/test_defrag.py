"""IP fragment reassembly: ordering, Suricata's overlap policies (its own
defrag unit tests transcribed), limits, and Hypothesis properties."""
from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspection.decode.defrag import (
    EVENT_MEMCAP,
    EVENT_TIMEOUT,
    PIECE_COST,
    TRACKER_COST,
    Defragmenter,
    Fragment,
    OverlapPolicy,
    Reassembled,
)
from inspection.errors import ConfigError
from inspection.model import AnomalyKind

SRC4, DST4 = bytes([1, 1, 1, 1]), bytes([2, 2, 2, 2])
SRC6, DST6 = bytes([1]) * 16, bytes([2]) * 16
ICMP, UDP, ICMPV6 = 1, 17, 58


def frag(offset: int, more: bool, data: bytes, *, family: int = 4, ident: int = 1, proto: int | None = None,
         ts: float = 0.0, vlan: tuple[int, ...] = ()) -> Fragment:
    src, dst = (SRC4, DST4) if family == 4 else (SRC6, DST6)
    if proto is None:
        proto = ICMP if family == 4 else ICMPV6
    return Fragment(family, src, dst, ident, proto, offset, more, data, ts, vlan)


def feed(d: Defragmenter, frags: list[Fragment]) -> tuple[list[Reassembled], list[str]]:
    done, events = [], []
    for f in frags:
        r, anomalies = d.add(f)
        assert all(a.kind is AnomalyKind.DECODE for a in anomalies)
        events.extend(a.event for a in anomalies)
        if r is not None:
            done.append(r)
    return done, events


def mem_of(d: Defragmenter) -> int:
    """memuse recomputed from the held pieces (white box, for the invariant)."""
    return sum(TRACKER_COST + sum(PIECE_COST + len(p.data) for p in t.pieces) for t in d._trackers.values())


# -- ordering --------------------------------------------------------------

SIMPLE = [(0, True, b"A" * 8), (8, True, b"B" * 8), (16, False, b"C" * 3)]


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_simple_any_order(family: int, order: tuple[int, ...]) -> None:
    d = Defragmenter()
    frags = [frag(*SIMPLE[i], family=family, ts=float(n)) for n, i in enumerate(order)]
    for f in frags[:-1]:
        assert d.add(f) == (None, [])
    r, anomalies = d.add(frags[-1])
    assert anomalies == []
    assert r == Reassembled(family, frags[0].src, frags[0].dst, frags[0].proto, b"A" * 8 + b"B" * 8 + b"CCC",
                            2.0, 3)
    assert len(d) == 0 and d.memuse == 0
    assert d.counters.fragments == 3 and d.counters.reassembled == 1 and d.counters.trackers == 1


def test_duplicate_fragment_is_an_overlap_and_harmless() -> None:
    d = Defragmenter()
    done, events = feed(d, [frag(0, True, b"A" * 8), frag(0, True, b"A" * 8), frag(8, False, b"B" * 4)])
    assert [r.data for r in done] == [b"A" * 8 + b"BBBB"]
    assert done[0].fragments == 3
    assert events == ["decoder.ipv4.frag_overlap"]
    assert d.counters.overlaps == 1 and d.counters.ignored == 1


def test_fragment_after_no_mf_piece_is_not_part_of_datagram() -> None:
    # Suricata DefragMfIpv4Test / DefragMfIpv6Test
    for family in (4, 6):
        d = Defragmenter()
        done, _ = feed(d, [frag(16, True, b"C" * 8, family=family), frag(0, True, b"A" * 8, family=family),
                           frag(8, False, b"B" * 8, family=family)])
        assert [r.data for r in done] == [b"A" * 8 + b"B" * 8]


def test_stray_fragment_beyond_the_end_does_not_hold_reassembly_back() -> None:
    d = Defragmenter()
    done, _ = feed(d, [frag(64, True, b"Z" * 8), frag(0, True, b"A" * 8), frag(8, False, b"B" * 8)])
    assert [r.data for r in done] == [b"A" * 8 + b"B" * 8]


def test_key_separates_proto_vlan_ident_and_family() -> None:
    d = Defragmenter()
    # Suricata DefragTestBadProto: the IPv4 protocol is part of the key.
    done, _ = feed(d, [frag(0, True, b"A" * 8), frag(8, True, b"B" * 8, proto=UDP), frag(16, False, b"C" * 3)])
    assert done == []
    # DefragVlanTest / QinQ: different VLAN ids never meet.
    done, _ = feed(d, [frag(0, True, b"A" * 8, ident=2, vlan=(1, 1)), frag(8, False, b"B", ident=2, vlan=(1, 2))])
    assert done == []
    done, _ = feed(d, [frag(0, True, b"A" * 8, ident=3), frag(8, False, b"B", ident=4)])
    assert done == []
    assert len(d) == 6


def test_ipv6_proto_comes_from_first_fragment_and_is_not_keyed() -> None:
    d = Defragmenter()
    done, _ = feed(d, [frag(8, False, b"B" * 8, family=6, proto=44), frag(0, True, b"A" * 8, family=6, proto=UDP)])
    assert [(r.proto, r.data) for r in done] == [(UDP, b"A" * 8 + b"B" * 8)]


def test_atomic_fragment_is_returned_at_once() -> None:
    d = Defragmenter()
    r, anomalies = d.add(frag(0, False, b"hello", family=6, proto=UDP, ts=5.0))
    assert r == Reassembled(6, SRC6, DST6, UDP, b"hello", 5.0, 1)
    assert anomalies == [] and len(d) == 0 and d.counters.fragments == 0


def test_late_duplicate_after_completion_starts_a_tracker_that_times_out() -> None:
    d = Defragmenter(timeout=30)
    done, _ = feed(d, [frag(0, True, b"A" * 8), frag(8, False, b"B")])
    assert len(done) == 1
    r, anomalies = d.add(frag(8, False, b"B", ts=1.0))
    assert r is None and anomalies == [] and len(d) == 1
    assert d.expire(31.0) == []
    assert [a.event for a in d.expire(31.5)] == [EVENT_TIMEOUT]
    assert len(d) == 0 and d.memuse == 0 and d.counters.timeouts == 1


# -- Sturges/Novak "Target-Based Fragmentation Reassembly" ----------------
# Suricata DefragDoSturgesNovakTest: 17 fragments, letter = 8-byte block.

NOVAK = [(0, "A", 24), (32, "B", 16), (48, "C", 24), (80, "D", 8), (104, "E", 16), (120, "F", 24),
         (144, "G", 16), (160, "H", 16), (176, "I", 8),
         (8, "J", 32), (48, "K", 24), (72, "L", 24), (96, "M", 24), (128, "N", 8), (152, "O", 8),
         (160, "P", 8), (176, "Q", 16)]
NOVAK_EXPECTED = {
    OverlapPolicy.BSD: "AAAJJBCCCLLLMMMFFFGGHHIQ",
    OverlapPolicy.LINUX: "AAAJJBKKKLLLMMMFFFGGPHQQ",
    OverlapPolicy.WINDOWS: "AAAJBBCCCLLLMEEFFFGGHHIQ",
    OverlapPolicy.SOLARIS: "AAAJBBCCCLLLMMMFFFGGHHIQ",
    OverlapPolicy.FIRST: "AAAJBBCCCLDLMEEFFFGGHHIQ",
    OverlapPolicy.LAST: "AJJJJBKKKLLLMMMFNFGOPHQQ",
}


def blocks(letters: str) -> bytes:
    return b"".join(c.encode() * 8 for c in letters)


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("policy", list(OverlapPolicy))
def test_sturges_novak(policy: OverlapPolicy, family: int) -> None:
    d = Defragmenter(policy=policy)
    frags = [frag(off, i < 16, letter.encode() * n, family=family) for i, (off, letter, n) in enumerate(NOVAK)]
    overlaps = 0
    for i, f in enumerate(frags[:-1]):
        r, anomalies = d.add(f)
        assert r is None
        if i < 9:
            assert anomalies == []
        overlaps += len(anomalies)
    assert overlaps > 0
    r, _ = d.add(frags[-1])
    assert r is not None
    assert r.data == blocks(NOVAK_EXPECTED[policy])
    assert len(r.data) == 192
    assert len(d) == 0 and d.memuse == 0


def test_novak_results_differ_between_policies() -> None:
    assert len(set(NOVAK_EXPECTED.values())) == len(OverlapPolicy)


def test_linux_jeremy() -> None:
    # Suricata DefragTestJeremyLinux
    d = Defragmenter(policy=OverlapPolicy.LINUX)
    done, _ = feed(d, [frag(0, True, b"A" * 24), frag(40, True, b"B" * 48), frag(24, True, b"C" * 48),
                       frag(88, False, b"D" * 14)])
    assert [r.data for r in done] == [b"A" * 24 + b"C" * 48 + b"B" * 16 + b"D" * 14]


@pytest.mark.parametrize("family", [4, 6])
def test_bsd_fragment_after_no_mf(family: int) -> None:
    d = Defragmenter()
    done, _ = feed(d, [frag(24, False, b"A" * 16, family=family), frag(8, True, b"B" * 16, family=family),
                       frag(16, True, b"C" * 16, family=family), frag(0, True, b"D" * 8, family=family)])
    assert [r.data for r in done] == [b"D" * 8 + b"B" * 16 + b"C" * 8 + b"A" * 8]


@pytest.mark.parametrize("family", [4, 6])
def test_bsd_subsequent_overlaps_start_of_original(family: int) -> None:
    d = Defragmenter()
    done, _ = feed(d, [frag(8, False, b"E" * 24, family=family), frag(0, True, b"M" * 24, family=family)])
    assert [r.data for r in done] == [b"M" * 24 + b"E" * 8]


@pytest.mark.parametrize("family", [4, 6])
def test_bsd_subsequent_overlaps_start_of_original_2(family: int) -> None:
    d = Defragmenter()
    done, _ = feed(d, [frag(16, True, b"AABBCCDDAABBDDCC", family=family),
                       frag(8, True, b"AACCBBDDAACCDDBB", family=family),
                       frag(0, True, b"ZZZZZZZZ", family=family), frag(32, False, b"DDCCBBAA", family=family)])
    assert [r.data for r in done] == [b"ZZZZZZZZ" + b"AACCBBDDAACCDDBBAABBDDCCDDCCBBAA"]


@pytest.mark.parametrize("family", [4, 6])
def test_bsd_missing_fragment_is_not_reassembled(family: int) -> None:
    d = Defragmenter()
    done, _ = feed(d, [frag(16, True, b"AABBCCDDAABBDDCC", family=family), frag(40, True, b"AACCBBDD", family=family),
                       frag(8, True, b"AACCDDBBAADDBBCC", family=family), frag(0, True, b"ZZZZZZZZ", family=family),
                       frag(48, False, b"DDCCBBAA", family=family)])
    assert done == [] and len(d) == 1


@pytest.mark.parametrize("sizes", [
    # (offset, length) of consistent slices of one payload; the last one has no MF.
    [(0, 8), (0, 8), (0, 9), (0, 9), (8, 2)],
    [(8, 8), (24, 17), (8, 8), (8, 24), (16, 24), (0, 24)],
    [(0, 8), (8, 8), (16, 8), (24, 8), (32, 8), (0, 8), (40, 48), (32, 48), (40, 49)],
])
@pytest.mark.parametrize("policy", list(OverlapPolicy))
def test_consistent_overlaps_that_lost_bytes_in_suricata(sizes: list[tuple[int, int]], policy: OverlapPolicy) -> None:
    total = max(a + n for a, n in sizes)
    payload = bytes(range(1, total + 1))
    d = Defragmenter(policy=policy)
    done, _ = feed(d, [frag(a, a + n < total, payload[a:a + n]) for a, n in sizes])
    assert [r.data for r in done] == [payload]


# -- malformed input and limits -------------------------------------------

def test_empty_fragment_is_ignored() -> None:
    # Suricata DefragNoDataIpv4Test
    d = Defragmenter()
    assert d.add(frag(8, False, b"")) == (None, [])
    assert len(d) == 0 and d.memuse == 0 and d.counters.ignored == 1


def test_too_large() -> None:
    d = Defragmenter()
    # Suricata DefragTooLargeIpv4Test: 20 + 8183 * 8 + 71 > 65535.
    assert d.add(frag(8183 * 8, False, b"A" * 71))[1][0].event == "decoder.ipv4.frag_pkt_too_large"
    assert d.add(frag(8183 * 8, False, b"A" * 51))[1] == []
    assert d.add(frag(65528, False, b"A" * 8, family=6))[1][0].event == "decoder.ipv6.frag_pkt_too_large"
    assert d.add(frag(65520, True, b"A" * 8, family=6))[1] == []
    assert d.counters.too_large == 2
    small = Defragmenter(max_datagram=1000)
    assert small.add(frag(992, True, b"A" * 16, family=6))[1][0].event == "decoder.ipv6.frag_pkt_too_large"
    assert len(small) == 0


def test_ipv6_more_fragments_with_odd_length() -> None:
    d = Defragmenter()
    r, anomalies = d.add(frag(0, True, b"A" * 7, family=6))
    assert [a.event for a in anomalies] == ["decoder.ipv6.frag_invalid_length"]
    # Kept, as Suricata does: the event is the finding.
    r, anomalies = d.add(frag(7, False, b"B", family=6))
    assert r is not None and r.data == b"A" * 7 + b"B" and anomalies == []
    assert d.counters.invalid_length == 1


def test_invalid_fragment_values_are_ignored() -> None:
    d = Defragmenter()
    assert [a.event for a in d.add(frag(-8, True, b"A" * 8))[1]] == ["decoder.ipv4.frag_ignored"]
    assert d.add(Fragment(5, b"", b"", 0, 0, 8, True, b"x", 0.0))[0] is None
    assert d.add(frag(8, True, b"x" * 8, ts=float("nan")))[0] is None
    assert len(d) == 0 and d.counters.ignored == 3


def test_timeout_on_expire_and_on_access() -> None:
    # Suricata DefragTimeoutTest: 16 trackers, then time moves past the timeout.
    d = Defragmenter(timeout=60)
    for i in range(16):
        d.add(frag(0, True, bytes([65 + i]) * 16, ident=i, ts=100.0 + i))
    assert d.expire(160.0) == [] and len(d) == 16
    assert [a.event for a in d.expire(161.5)] == [EVENT_TIMEOUT] * 2
    assert len(d) == 14 and d.counters.timeouts == 2
    # The next fragment of a stale tracker starts over.
    r, anomalies = d.add(frag(16, False, b"x", ident=5, ts=200.0))
    assert r is None and [a.event for a in anomalies] == [EVENT_TIMEOUT]
    r, _ = d.add(frag(0, True, b"y" * 16, ident=5, ts=201.0))
    assert r is not None and r.data == b"y" * 16 + b"x" and r.fragments == 2
    assert len(d.expire(1000.0)) == 13 and len(d) == 0 and d.memuse == 0


def test_activity_keeps_a_tracker_alive() -> None:
    d = Defragmenter(timeout=10)
    d.add(frag(0, True, b"A" * 8, ident=1, ts=0.0))
    d.add(frag(0, True, b"A" * 8, ident=2, ts=1.0))
    d.add(frag(8, True, b"B" * 8, ident=1, ts=9.0))
    assert len(d.expire(15.0)) == 1 and len(d) == 1
    r, _ = d.add(frag(16, False, b"C", ident=1, ts=15.0))
    assert r is not None and r.data == b"A" * 8 + b"B" * 8 + b"C"


def test_memcap_evicts_oldest_trackers_then_drops() -> None:
    per = TRACKER_COST + PIECE_COST + 100
    d = Defragmenter(memcap=3 * per)
    for i in range(3):
        assert d.add(frag(0, True, b"x" * 100, ident=i, ts=float(i)))[1] == []
    assert d.memuse == 3 * per and len(d) == 3
    d.add(frag(8 * 13, True, b"y" * 8, ident=1, ts=3.0))             # ident 1 becomes the most recent
    assert d.counters.memcap_evictions == 1 and len(d) == 2            # ident 0 went
    assert {k[3] for k in d._trackers} == {1, 2}
    r, anomalies = d.add(frag(0, True, b"z" * 100, ident=9, ts=4.0))
    assert anomalies == [] and d.counters.memcap_evictions == 2          # ident 2 went, ident 1 stays
    assert {k[3] for k in d._trackers} == {1, 9}
    # Cannot fit even alone: dropped without evicting anybody.
    r, anomalies = d.add(frag(0, True, b"w" * (3 * per), ident=10, ts=5.0))
    assert r is None and [a.event for a in anomalies] == [EVENT_MEMCAP]
    assert d.counters.memcap_drops == 1 and {k[3] for k in d._trackers} == {1, 9}
    assert d.memuse == mem_of(d) <= 3 * per


def test_max_fragments_drops_the_tracker() -> None:
    d = Defragmenter(max_fragments=4)
    for i in range(4):
        assert d.add(frag(8 + 8 * i, True, b"x" * 8))[1] == []
    r, anomalies = d.add(frag(0, True, b"y" * 8))
    assert r is None and [a.event for a in anomalies] == ["decoder.ipv4.frag_ignored"]
    assert d.counters.max_fragments_drops == 1 and len(d) == 0 and d.memuse == 0


def test_config_errors() -> None:
    for kw in ({"timeout": 0}, {"memcap": 10}, {"max_datagram": 0}, {"max_fragments": 0}, {"policy": "bsd"}):
        with pytest.raises(ConfigError):
            Defragmenter(**kw)


def test_many_small_fragments_are_linear_enough() -> None:
    # 1024 fragments in order, in reverse and with the last first: each must stay quick.
    data = bytes(range(256)) * 32
    for order in (range(1024), reversed(range(1024)), [1023, *range(1023)]):
        d = Defragmenter(max_fragments=1024)
        done, _ = feed(d, [frag(8 * i, i < 1023, data[8 * i:8 * i + 8]) for i in order])
        assert [r.data for r in done] == [data]


# -- Hypothesis -------------------------------------------------------------

fragments = st.builds(
    Fragment,
    family=st.sampled_from([4, 6, 0]),
    src=st.sampled_from([SRC4, SRC6, b""]),
    dst=st.sampled_from([DST4, DST6]),
    ident=st.integers(0, 3),
    proto=st.sampled_from([ICMP, UDP]),
    offset=st.one_of(st.integers(0, 64).map(lambda x: x * 8), st.integers(-16, 70000)),
    more=st.booleans(),
    data=st.binary(max_size=80),
    ts=st.floats(0, 500, allow_nan=False),
    vlan=st.sampled_from([(), (5,)]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fragments, max_size=40), st.sampled_from(list(OverlapPolicy)), st.integers(300, 3000),
       st.integers(1, 8))
def test_random_fragments_never_raise(frags: list[Fragment], policy: OverlapPolicy, memcap: int,
                                      max_fragments: int) -> None:
    d = Defragmenter(policy=policy, memcap=memcap, max_fragments=max_fragments, timeout=100)
    for f in frags:
        r, anomalies = d.add(f)
        if r is not None:
            assert len(r.data) <= 65535
        assert d.memuse == mem_of(d) <= memcap
    d.expire(1000.0)
    assert len(d) == 0 and d.memuse == 0


@st.composite
def split(draw: st.DrawFn, overlapping: bool) -> tuple[bytes, list[tuple[int, bool, bytes]]]:
    """The original payload and fragments carrying slices of it (8-byte aligned,
    the last one without MF), in a random order."""
    units = draw(st.integers(1, 40))
    tail = draw(st.integers(1, 8))
    payload = draw(st.binary(min_size=units * 8 + tail - 8, max_size=units * 8 + tail - 8).filter(bool))
    n = len(payload)
    cuts = sorted(draw(st.sets(st.integers(1, (n - 1) // 8), max_size=12))) if n > 8 else []
    bounds = [0, *(c * 8 for c in cuts), n]
    pieces = [(a, b < n, payload[a:b]) for a, b in zip(bounds, bounds[1:])]
    if overlapping:
        for _ in range(draw(st.integers(0, 8))):
            a = draw(st.integers(0, max(0, (n - 1) // 8))) * 8
            b = min(n - 1, a + draw(st.integers(1, 6)) * 8)
            if b > a:
                pieces.append((a, True, payload[a:b]))
    return payload, draw(st.permutations(pieces))


@settings(max_examples=300, deadline=None)
@given(split(overlapping=False), st.sampled_from(list(OverlapPolicy)), st.sampled_from([4, 6]))
def test_random_split_in_random_order_reassembles(case: tuple, policy: OverlapPolicy, family: int) -> None:
    payload, pieces = case
    d = Defragmenter(policy=policy)
    done, events = feed(d, [frag(a, more, data, family=family) for a, more, data in pieces])
    assert [r.data for r in done] == [payload]
    assert events == [] and len(d) == 0 and d.memuse == 0


@settings(max_examples=300, deadline=None)
@given(split(overlapping=True), st.sampled_from(list(OverlapPolicy)))
def test_consistent_overlaps_never_corrupt(case: tuple, policy: OverlapPolicy) -> None:
    payload, pieces = case
    d = Defragmenter(policy=policy)
    done, _ = feed(d, [frag(a, more, data) for a, more, data in pieces])
    assert all(r.data == payload for r in done)
    assert d.memuse == mem_of(d)


# -- reference captures ------------------------------------------------------

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus"
EVASION = CORPUS / "suricata-verify" / "tests" / "ipv6-evasion"


def pcap_fragments(path: Path) -> list[Fragment]:
    """Minimal Ethernet/IPv4/IPv6 walk to the fragment header (test-only; the
    real decoder lives in inspection.decode.ip)."""
    from inspection.io.pcap import read_frames

    out = []
    for fr in read_frames(path):
        b, i = fr.data, 14
        if fr.linktype != 1 or len(b) < i:
            continue
        etype = struct.unpack_from("!H", b, 12)[0]
        if etype == 0x0800 and len(b) >= i + 20:
            vhl, total, ident, fo, proto = b[i], *struct.unpack_from("!HHH", b, i + 2), b[i + 9]
            hl = (vhl & 15) * 4
            if fo & 0x3FFF:
                out.append(Fragment(4, b[i + 12:i + 16], b[i + 16:i + 20], ident, proto, (fo & 0x1FFF) * 8,
                                    bool(fo & 0x2000), b[i + hl:i + total], fr.ts))
        elif etype == 0x86DD and len(b) >= i + 40:
            plen, nxt = struct.unpack_from("!HB", b, i + 4)
            src, dst, end, j = b[i + 8:i + 24], b[i + 24:i + 40], i + 40 + plen, i + 40
            while nxt in (0, 43, 60) and j + 8 <= end:
                nxt, j = b[j], j + (b[j + 1] + 1) * 8
            if nxt == 44 and j + 8 <= end:
                fo, ident = struct.unpack_from("!HI", b, j + 2)
                if fo >> 3 or fo & 1:
                    out.append(Fragment(6, src, dst, ident, b[j], (fo >> 3) * 8, bool(fo & 1), b[j + 8:end], fr.ts))
    return out


def udp6_checksum_ok(r: Reassembled) -> bool:
    pseudo = r.src + r.dst + struct.pack("!IxxxB", len(r.data), 17)
    blob = pseudo + r.data + b"\0" * (len(r.data) % 2)
    s = sum(struct.unpack(f"!{len(blob) // 2}H", blob))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


@pytest.mark.corpus
def test_zeek_ipv6_fragmented_dns() -> None:
    path = CORPUS / "zeek-traces" / "Traces" / "ipv6-fragmented-dns.pcap"
    if not path.exists():
        pytest.skip("corpus absent")
    d = Defragmenter()
    done, events = feed(d, pcap_fragments(path))
    assert done and events == []
    for r in done:
        assert r.proto == UDP and struct.unpack_from("!H", r.data, 4)[0] == len(r.data)
        assert udp6_checksum_ok(r)


@pytest.mark.corpus
@pytest.mark.parametrize("case, event", [
    *((n, "decoder.ipv6.frag_overlap") for n in (2, 3, 4, 6, 8, 17, 18, 29)),
    *((n, "decoder.ipv6.frag_pkt_too_large") for n in (15, 16, 33)),
    *((n, "decoder.ipv6.frag_invalid_length") for n in (23, 24, 33)),
])
def test_suricata_verify_ipv6_malformed_fragments(case: int, event: str) -> None:
    """suricata-verify expects exactly one alert on this decode event."""
    tdir = EVASION / f"ipv6-malformed-fragments-{case}"
    pcaps = sorted(tdir.glob("*.pcap")) if tdir.exists() else []
    if not pcaps:
        pytest.skip("corpus absent")
    _, events = feed(Defragmenter(), pcap_fragments(pcaps[0]))
    assert events.count(event) == 1
