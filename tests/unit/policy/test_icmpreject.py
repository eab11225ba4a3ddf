"""ICMP port-unreachable frames: valid checksums, swapped addresses, the datagram quoted."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.bench.frames import tcp_packet, udp_packet
from inspection.decode import decode_frame
from inspection.policy.icmpreject import QUOTE_V4, QUOTE_V6, unreachable_frame
from inspection.policy.tcpreset import ResetError

CLIENT_MAC, SERVER_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


@pytest.mark.parametrize("cli,srv,kind", [("192.0.2.10", "198.51.100.53", (3, 3)),
                                          ("2001:db8::10", "2001:db8:1::53", (1, 4))])
def test_the_sender_gets_port_unreachable_from_the_destination(cli, srv, kind):
    ip = udp_packet(cli, srv, 40000, 53, b"EVIL query")[14:]
    frame = unreachable_frame(ip, CLIENT_MAC, SERVER_MAC)
    p = decode_frame(1, frame, 0.0, 1, len(frame), True)
    assert p.checksum_ok and not p.anomalies
    assert frame[:6] == CLIENT_MAC and frame[6:12] == SERVER_MAC
    assert (p.icmp_type, p.icmp_code) == kind
    assert (ipaddress.ip_address(p.src), ipaddress.ip_address(p.dst)) == (ipaddress.ip_address(srv),
                                                                          ipaddress.ip_address(cli))
    assert p.payload == ip     # the whole (small) datagram is quoted: the sender finds its socket by it


@pytest.mark.parametrize("cli,srv,cap", [("192.0.2.10", "198.51.100.53", QUOTE_V4),
                                         ("2001:db8::10", "2001:db8:1::53", QUOTE_V6)])
def test_a_large_datagram_is_quoted_only_up_to_the_limit(cli, srv, cap):
    ip = udp_packet(cli, srv, 40000, 443, b"x" * 3000)[14:]
    frame = unreachable_frame(ip, CLIENT_MAC, SERVER_MAC)
    p = decode_frame(1, frame, 0.0, 1, len(frame), True)
    assert p.checksum_ok and p.payload == ip[:cap]


@pytest.mark.parametrize("ip", [
    b"",
    tcp_packet("192.0.2.10", "198.51.100.1", 1, 2, 0, 0, 0x10)[14:],            # not UDP: TCP gets resets
    udp_packet("192.0.2.10", "255.255.255.255", 68, 67, b"dhcp")[14:],          # broadcast
    udp_packet("192.0.2.10", "224.0.0.251", 5353, 5353, b"mdns")[14:],          # multicast
    udp_packet("0.0.0.0", "198.51.100.1", 68, 67, b"x")[14:],                   # no single host sent it
    udp_packet("2001:db8::10", "ff02::fb", 5353, 5353, b"mdns")[14:],           # IPv6 multicast
    udp_packet("::", "2001:db8::1", 1, 2, b"x")[14:],
])
def test_what_must_not_get_an_error_is_refused(ip):
    with pytest.raises(ResetError):
        unreachable_frame(ip, CLIENT_MAC, SERVER_MAC)


def test_a_later_fragment_gets_no_error():
    ip = bytearray(udp_packet("192.0.2.10", "198.51.100.1", 1, 2, b"x" * 40)[14:])
    ip[6:8] = (185).to_bytes(2, "big")      # fragment offset 185 * 8
    with pytest.raises(ResetError):
        unreachable_frame(bytes(ip), CLIENT_MAC, SERVER_MAC)


@given(st.binary(max_size=120), st.sampled_from([0x45, 0x46, 0x60]))
@settings(max_examples=400, deadline=None)
def test_hostile_bytes_give_a_frame_or_a_reset_error_never_a_crash(tail, first):
    try:
        frame = unreachable_frame(bytes([first]) + tail, CLIENT_MAC, SERVER_MAC)
    except ResetError:
        return
    p = decode_frame(1, frame, 0.0, 1, len(frame), True)
    assert p.checksum_ok and p.proto in (1, 58)


@given(st.sampled_from(["192.0.2.10", "2001:db8::10"]), st.lists(st.tuples(st.integers(0, 47), st.integers(0, 255)),
                                                                  max_size=6), st.integers(0, 60))
@settings(max_examples=400, deadline=None)
def test_a_datagram_with_damaged_header_fields_never_crashes(src, edits, cut):
    dst = "198.51.100.53" if ":" not in src else "2001:db8:1::53"
    ip = bytearray(udp_packet(src, dst, 40000, 53, b"q" * 20)[14:])
    for pos, val in edits:
        if pos not in (9, 6):    # keep it UDP (IPv4 protocol, IPv6 next header) to reach the quoting
            ip[pos] = val
    ip = ip[:len(ip) - cut] if cut < len(ip) else ip
    try:
        frame = unreachable_frame(bytes(ip), CLIENT_MAC, SERVER_MAC)
    except ResetError:
        return
    p = decode_frame(1, frame, 0.0, 1, len(frame), True)
    assert p.checksum_ok and not [a for a in p.anomalies if "checksum" in a.event]
