"""TCP reassembly: order, retransmission, overlap policy, gaps, depth, midstream."""
from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from inspection.model import TH_ACK, TH_FIN, TH_PSH, TH_RST, TH_SYN, Direction, Packet
from inspection.stream.tcp import DATA, GAP, StreamConfig, StreamCounters, TcpSession, TcpState

C, S = Direction.TO_SERVER, Direction.TO_CLIENT
ISN_C, ISN_S = 1000, 0xFFFFFF00  # the server's sequence numbers wrap


def seg(seq: int, flags: int = TH_PSH, payload: bytes = b"", ack: int = 0) -> Packet:
    p = Packet(0.0, 0, 60 + len(payload))
    p.seq, p.ack, p.tcp_flags, p.payload = seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, payload
    return p


def session(**kw) -> TcpSession:
    kw.setdefault("ack_gated", False)
    return TcpSession(StreamConfig(**kw), StreamCounters())


def handshake(s: TcpSession) -> None:
    s.packet(seg(ISN_C, TH_SYN), C)
    s.packet(seg(ISN_S, TH_SYN | TH_ACK, ack=ISN_C + 1), S)
    s.packet(seg(ISN_C + 1, TH_ACK, ack=ISN_S + 1), C)
    assert s.state == TcpState.ESTABLISHED


def collect(out, d=None) -> bytes:
    return b"".join(x for k, dd, x in out if k == DATA and (d is None or dd == d))


def test_in_order_data_both_ways_with_sequence_wrap():
    s = session()
    handshake(s)
    got = collect(s.packet(seg(ISN_C + 1, payload=b"GET / HTTP/1.1\r\n\r\n"), C))
    assert got == b"GET / HTTP/1.1\r\n\r\n"
    out = []
    for i, part in enumerate([b"a" * 200, b"b" * 100]):  # crosses 2**32 on the server side
        out += s.packet(seg(ISN_S + 1 + i * 200, payload=part), S)
    assert collect(out, S) == b"a" * 200 + b"b" * 100


def test_out_of_order_is_delivered_once_the_hole_fills():
    s = session()
    handshake(s)
    assert s.packet(seg(ISN_C + 6, payload=b"world"), C) == []
    out = s.packet(seg(ISN_C + 1, payload=b"hello"), C)
    assert collect(out) == b"helloworld"
    assert s.counters.ooo_segments == 1


def test_first_data_wins_and_different_overlap_is_an_anomaly():
    s = session()
    handshake(s)
    s.packet(seg(ISN_C + 1, payload=b"abcdef"), C)
    out = s.packet(seg(ISN_C + 4, payload=b"XYZghi"), C)
    assert collect(out) == b"ghi"
    assert [a.event for a in s.anomalies] == ["stream.reassembly_overlap_different_data"]


def test_identical_retransmission_is_silent():
    s = session()
    handshake(s)
    s.packet(seg(ISN_C + 1, payload=b"abcdef"), C)
    assert s.packet(seg(ISN_C + 1, payload=b"abcdef"), C) == []
    assert not s.anomalies
    assert s.counters.retransmissions == 1


def test_acked_but_unseen_bytes_become_a_gap_and_parsing_resumes():
    s = session()
    handshake(s)
    s.packet(seg(ISN_C + 1, payload=b"aaaa"), C)
    s.packet(seg(ISN_C + 9, payload=b"cccc"), C)          # bytes 4..8 lost
    out = s.packet(seg(ISN_S + 1, TH_ACK, ack=ISN_C + 13), S)
    assert [(k, d, x) for k, d, x in out] == [(GAP, C, 4), (DATA, C, b"cccc")]
    assert "stream.reassembly_seq_gap" in [a.event for a in s.anomalies]


def test_flush_at_flow_end_declares_holes():
    s = session()
    handshake(s)
    s.packet(seg(ISN_C + 11, payload=b"tail"), C)
    out = s.flush()
    assert out == [(GAP, C, 10), (DATA, C, b"tail")]


def test_depth_limits_what_is_delivered():
    s = session(depth=10)
    handshake(s)
    out = s.packet(seg(ISN_C + 1, payload=b"0123456789abcdef"), C)
    assert collect(out) == b"0123456789"
    assert s.packet(seg(ISN_C + 17, payload=b"more"), C) == []
    assert s.counters.depth_reached == 1


def test_no_handshake_means_no_reassembly_unless_midstream():
    s = session()
    assert s.packet(seg(5000, payload=b"data"), C) == []
    m = session(midstream=True)
    assert collect(m.packet(seg(5000, payload=b"data"), C)) == b"data"
    assert m.state == TcpState.ESTABLISHED


def test_data_on_syn_is_delivered():
    s = session()
    out = s.packet(seg(ISN_C, TH_SYN, payload=b"GET / HTTP/1.1\r\n\r\n"), C)
    assert collect(out) == b"GET / HTTP/1.1\r\n\r\n"


def test_fin_and_rst_close():
    s = session()
    handshake(s)
    s.packet(seg(ISN_C + 1, TH_FIN | TH_ACK, ack=ISN_S + 1), C)
    assert s.state == TcpState.CLOSING
    s.packet(seg(ISN_S + 1, TH_FIN | TH_ACK, ack=ISN_C + 2), S)
    assert s.state == TcpState.CLOSED
    r = session()
    handshake(r)
    r.packet(seg(ISN_S + 1, TH_RST), S)
    assert r.state == TcpState.CLOSED


def test_ack_of_fin_is_not_a_gap():
    s = session()
    handshake(s)
    s.packet(seg(ISN_C + 1, TH_FIN | TH_ACK | TH_PSH, payload=b"bye", ack=ISN_S + 1), C)
    assert s.packet(seg(ISN_S + 1, TH_ACK, ack=ISN_C + 5), S) == []
    assert s.counters.gaps == 0


def test_ooo_store_is_bounded_and_counted():
    s = session(memcap=10)
    handshake(s)
    s.packet(seg(ISN_C + 100, payload=b"x" * 8), C)
    s.packet(seg(ISN_C + 200, payload=b"y" * 8), C)
    assert s.counters.memcap_drops == 1
    assert "stream.reassembly_memcap" in [a.event for a in s.anomalies]


@settings(max_examples=80, deadline=None)
@given(data=st.binary(min_size=1, max_size=3000), seed=st.integers(0, 2**32), dup=st.booleans())
def test_any_segmentation_and_order_reassembles_the_original(data, seed, dup):
    rnd = random.Random(seed)
    cuts = sorted(rnd.sample(range(1, len(data)), min(len(data) - 1, rnd.randint(0, 20)))) if len(data) > 1 else []
    bounds = [0] + cuts + [len(data)]
    segs = [(bounds[i], data[bounds[i]:bounds[i + 1]]) for i in range(len(bounds) - 1)]
    if dup:
        segs += rnd.sample(segs, len(segs) // 2)
    rnd.shuffle(segs)
    s = session()
    handshake(s)
    out = []
    for off, part in segs:
        out += s.packet(seg(ISN_C + 1 + off, payload=part), C)
    out += s.flush()
    assert collect(out) == data
    assert not s.anomalies


def test_ids_mode_hands_data_over_when_the_peer_acknowledges_it():
    s = session(ack_gated=True)
    handshake(s)
    assert s.packet(seg(ISN_C + 1, payload=b"GET / HTTP/1.0\r\n\r\n"), C) == []
    out = s.packet(seg(ISN_S + 1, TH_ACK, ack=ISN_C + 11), S)       # half of it acknowledged
    assert collect(out) == b"GET / HTTP"
    out = s.packet(seg(ISN_S + 1, TH_ACK, ack=ISN_C + 19), S)
    assert collect(out) == b"/1.0\r\n\r\n"


def test_ids_mode_flushes_unacknowledged_data_at_the_end_and_when_too_much_waits():
    s = session(ack_gated=True, max_unacked=10)
    handshake(s)
    assert collect(s.packet(seg(ISN_C + 1, payload=b"0123456789AB"), C)) == b"0123456789AB"
    s.packet(seg(ISN_C + 13, payload=b"tail"), C)
    assert collect(s.flush()) == b"tail"


def test_both_fins_acknowledged_close_both_directions_once():
    from inspection.stream.tcp import EOF
    s = session(ack_gated=True)
    handshake(s)
    s.packet(seg(ISN_S + 1, TH_PSH | TH_ACK | TH_FIN, payload=b"body until close", ack=ISN_C + 1), S)
    out = s.packet(seg(ISN_C + 1, TH_ACK | TH_FIN, ack=ISN_S + 18), C)     # ACKs data and FIN
    assert collect(out, S) == b"body until close" and EOF not in [k for k, _, _ in out]
    out = s.packet(seg(ISN_S + 18, TH_ACK, ack=ISN_C + 2), S)
    assert [(k, d) for k, d, _ in out] == [(EOF, C), (EOF, S)]
    assert s.packet(seg(ISN_S + 18, TH_ACK, ack=ISN_C + 2), S) == []


def _held_overlap(policy: str, *segments: tuple[int, bytes]) -> bytes:
    """IDS mode: segments (in order, then the overlapping one) before any ACK, then the ACK."""
    s = session(ack_gated=True)
    s.policies = (policy, policy)
    handshake(s)
    for off, data in segments:
        s.packet(seg(ISN_C + 1 + off, payload=data), C)
    end = max(off + len(data) for off, data in segments)
    return collect(s.packet(seg(ISN_S + 1, TH_ACK, ack=ISN_C + 1 + end), S))


def test_overlap_policies_on_data_waiting_for_its_ack():
    # exact overlap: old Linux, Solaris, HP-UX 11 take the new copy; BSD, Windows the first
    for policy, want in (("old-linux", b"EVIL"), ("solaris", b"EVIL"), ("bsd", b"GOOD"), ("windows", b"GOOD"),
                         ("last", b"EVIL"), ("first", b"GOOD")):
        assert _held_overlap(policy, (0, b"GOOD"), (0, b"EVIL")) == want, policy
    # a segment starting before the held one: BSD and Linux take the new bytes, Solaris/first do not
    assert _held_overlap("bsd", (0, b"ab"), (2, b"cdef"), (1, b"bXY")) == b"abXYef"
    assert _held_overlap("first", (0, b"ab"), (2, b"cdef"), (1, b"bXY")) == b"abcdef"
    assert _held_overlap("solaris", (0, b"ab"), (2, b"cd"), (3, b"XYZ")) == b"abcXYZ"   # past its end: Solaris
    assert _held_overlap("bsd", (0, b"ab"), (2, b"cd"), (3, b"XYZ")) == b"abcdYZ"
    # inside the held one: every policy but last keeps the old bytes
    assert _held_overlap("linux", (0, b"GOOD"), (1, b"XXX")) == b"GOOD"


def test_delivered_bytes_are_never_replaced_whatever_the_policy():
    s = session()   # inline: handed over at once
    s.policies = ("last", "last")
    handshake(s)
    s.packet(seg(ISN_C + 1, payload=b"GOOD"), C)
    assert collect(s.packet(seg(ISN_C + 1, payload=b"EVIL"), C)) == b""
    assert [a.event for a in s.anomalies] == ["stream.reassembly_overlap_different_data"]


def test_host_os_policy_picks_the_most_specific_network():
    from inspection.config import EngineConfig
    from inspection.stream.policy import HostPolicies

    cfg, _ = EngineConfig.from_sets(["host-os-policy.windows=[0.0.0.0/0]", "host-os-policy.old-linux=[192.0.2.2]",
                                     "host-os-policy.linux=[2001:db8::/32]"])
    hp = HostPolicies(cfg.host_os_policy)
    assert hp.for_address(bytes([192, 0, 2, 2])) == "old-linux"
    assert hp.for_address(bytes([198, 51, 100, 1])) == "windows"
    assert hp.for_address(bytes.fromhex("20010db8" + "00" * 12)) == "linux"
    assert HostPolicies().for_address(bytes(4)) == "bsd"
