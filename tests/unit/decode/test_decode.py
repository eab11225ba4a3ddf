"""Frame decoding across link types and encapsulations; hostile bytes never raise."""
from __future__ import annotations

import struct

from hypothesis import given, settings, strategies as st

from firmware.bench.frames import ACK, PSH, SYN, tcp_packet, udp_packet
from inspection.decode import decode_frame
from inspection.model import IPPROTO_TCP, IPPROTO_UDP

V4 = ("192.0.2.10", "198.51.100.20")
V6 = ("2001:db8::10", "2001:db8:1::20")


def dec(frame: bytes, linktype: int = 1, validate: bool = True):
    return decode_frame(linktype, frame, 1.0, 1, len(frame), validate)


def events(p):
    return [a.event for a in p.anomalies]


def test_ethernet_ipv4_tcp():
    p = dec(tcp_packet(*V4, 40000, 80, 100, 200, ACK | PSH, b"hello"))
    assert (p.family, p.proto, p.sport, p.dport, p.seq, p.ack) == (4, IPPROTO_TCP, 40000, 80, 100, 200)
    assert p.payload == b"hello" and p.l4_ok and p.checksum_ok and not p.anomalies


def test_ethernet_ipv6_udp():
    p = dec(udp_packet(*V6, 5353, 53, b"q"))
    assert (p.family, p.proto, p.payload) == (6, IPPROTO_UDP, b"q")
    assert len(p.src) == 16


def _ip_of(frame: bytes) -> bytes:
    return frame[14:]


def test_vlan_qinq_and_pppoe_are_peeled():
    base = tcp_packet(*V4, 1, 2, 0, 0, SYN)
    ip = _ip_of(base)
    qinq = base[:12] + b"\x88\xa8\x00\x64\x81\x00\x00\xc8\x08\x00" + ip
    p = dec(qinq)
    assert p.vlan == (100, 200) and p.l4_ok
    pppoe = base[:12] + b"\x88\x64" + b"\x11\x00\x00\x01" + struct.pack("!H", len(ip) + 2) + b"\x00\x21" + ip
    assert dec(pppoe).l4_ok


def test_ieee_802_3_llc_snap_frames_carry_ip():
    base = tcp_packet(*V4, 1, 2, 0, 0, SYN)
    ip = _ip_of(base)
    snap = base[:12] + struct.pack("!H", len(ip) + 8) + b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + ip
    assert dec(snap).l4_ok
    llc_only = base[:12] + struct.pack("!H", 3) + b"\x42\x42\x03"  # spanning tree: not IP, not an error
    p = dec(llc_only)
    assert not p.l4_ok and not p.anomalies


def test_linux_sll_sll2_raw_and_null():
    ip = _ip_of(tcp_packet(*V4, 1, 2, 0, 0, SYN))
    sll = b"\x00\x00\x00\x01\x00\x06" + b"\x00" * 8 + b"\x08\x00" + ip
    assert dec(sll, 113).l4_ok
    sll2 = b"\x08\x00\x00\x00" + b"\x00\x00\x00\x02" + b"\x00\x01\x00\x06" + b"\x00" * 8 + ip
    assert dec(sll2, 276).l4_ok
    assert dec(ip, 101).l4_ok
    assert dec(ip, 228).l4_ok
    assert dec(b"\x02\x00\x00\x00" + ip, 0).l4_ok
    assert dec(b"\xff\x03\x00\x21" + ip, 9).l4_ok      # PPP with HDLC framing
    assert dec(b"\x21" + ip, 9).l4_ok                    # PPP, compressed protocol field


def test_ipv4_options_and_ipv6_extension_headers():
    frame = bytearray(tcp_packet(*V4, 1, 2, 0, 0, SYN))
    ip = bytes(frame[14:])
    # rebuild with a 4-byte option (NOP NOP NOP EOL): header length 24
    hdr = bytearray(ip[:20]) + b"\x01\x01\x01\x00"
    hdr[0] = 0x46
    struct.pack_into("!H", hdr, 2, len(ip) + 4)
    p = dec(bytes(hdr) + ip[20:], 101, validate=False)
    assert p.l4_ok and p.sport == 1
    v6 = _ip_of(udp_packet(*V6, 1000, 53, b"x"))
    # insert a hop-by-hop header (8 bytes) and a destination-options header
    hbh = bytes([60, 0]) + b"\x01\x04\x00\x00\x00\x00"
    dst = bytes([17, 0]) + b"\x01\x04\x00\x00\x00\x00"
    body = hbh + dst + v6[40:]
    hdr6 = bytearray(v6[:40])
    hdr6[6] = 0
    struct.pack_into("!H", hdr6, 4, len(body))
    p = dec(bytes(hdr6) + body, 101, validate=False)
    assert p.l4_ok and p.proto == IPPROTO_UDP and p.payload == b"x"


def test_truncation_is_a_named_anomaly():
    frame = tcp_packet(*V4, 1, 2, 0, 0, SYN, b"x" * 50)
    assert "decoder.ipv4.trunc_pkt" in events(dec(frame[:-10]))
    assert "decoder.ethernet.pkt_too_small" in events(dec(frame[:10]))
    assert "decoder.ipv6.pkt_too_small" in events(dec(udp_packet(*V6, 1, 2)[:30]))


def test_bad_checksums_only_when_validating():
    frame = bytearray(tcp_packet(*V4, 1, 2, 0, 0, ACK, b"payload"))
    frame[-1] ^= 0xFF
    p = dec(bytes(frame))
    assert not p.checksum_ok and "decoder.tcp.invalid_checksum" in events(p)
    assert dec(bytes(frame), validate=False).checksum_ok


def test_fragment_is_handed_to_the_defragmenter():
    frame = bytearray(udp_packet(*V4, 1, 2, b"x" * 40))
    struct.pack_into("!H", frame, 14 + 6, 0x2000)  # MF
    p = dec(bytes(frame), validate=False)
    assert p.fragment is not None and not p.l4_ok


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([0, 1, 101, 113, 228, 229, 276, 9999]))
def test_garbage_never_raises(data, linktype):
    dec(data, linktype)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 120), st.integers(0, 255), st.integers(0, 200))
def test_garbled_real_frames_never_raise(cut, xor, pos):
    frame = bytearray(tcp_packet(*V6, 1, 2, 0, 0, SYN, b"y" * 80))
    if pos < len(frame):
        frame[pos] ^= xor
    dec(bytes(frame[:len(frame) - cut]))


def test_enhanced_gre_carries_ppp_to_the_inner_ip_packet():
    """PPTP's GRE (version 1, key and ack present) with a PPP frame inside."""
    inner = udp_packet(*V4, 5000, 9999, b"in the tunnel")[14:]            # the inner IPv4 packet
    gre = struct.pack("!BBHHHII", 0x30, 0x81, 0x880B, len(inner) + 3, 7, 1, 0) + b"\xff\x03\x21" + inner
    outer_ip = bytearray(udp_packet("203.0.113.1", "203.0.113.2", 1, 1, b"")[14:34])
    outer_ip[9] = 47                                                       # GRE
    struct.pack_into("!H", outer_ip, 2, 20 + len(gre))
    struct.pack_into("!H", outer_ip, 10, 0)
    frame = udp_packet(*V4, 1, 1, b"")[:14] + bytes(outer_ip) + gre
    p = dec(frame, validate=False)
    assert (p.proto, p.sport, p.dport, p.payload) == (IPPROTO_UDP, 5000, 9999, b"in the tunnel")
