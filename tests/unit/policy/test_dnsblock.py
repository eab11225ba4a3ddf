"""DNS answers for blocked names (pure): the frame, the message, bad input as a typed error."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.bench.frames import CLIENT_MAC, SERVER_MAC, udp_packet
from firmware.bench.synth import dns_query
from inspection.applayer.dns import parse_message
from inspection.errors import ConfigError
from inspection.policy.dnsblock import TTL, DnsAnswerError, DnsBlockConfig, answer_message, dns_answer_frame
from inspection.policy.tcpreset import _csum

CFG = DnsBlockConfig("198.51.100.7", "2001:db8::7")


def parse(msg: bytes):
    return parse_message(msg)


@pytest.mark.parametrize("qtype,rdata", [(1, bytes([198, 51, 100, 7])),
                                         (28, bytes.fromhex("20010db8000000000000000000000007"))])
def test_a_and_aaaa_get_the_block_address_with_a_short_ttl(qtype, rdata):
    msg = answer_message(dns_query(0x1234, "login.phish.example.test", qtype), CFG)
    qid, flags, qd, an = struct.unpack_from("!HHHH", msg)
    assert (qid, flags & 0x8000, flags & 0x000F, qd, an) == (0x1234, 0x8000, 0, 1, 1)
    assert msg.endswith(struct.pack("!HHHIH", 0xC00C, qtype, 1, TTL, len(rdata)) + rdata)


@pytest.mark.parametrize("qtype,cfg", [(65, CFG), (15, CFG), (28, DnsBlockConfig("198.51.100.7"))])
def test_other_types_and_a_family_without_an_address_get_nodata(qtype, cfg):
    msg = answer_message(dns_query(7, "phish.example.test", qtype), cfg)
    assert struct.unpack_from("!HHHHHH", msg)[1:] == (0x8180, 1, 0, 0, 0)


@pytest.mark.parametrize("src,dst", [("192.0.2.10", "192.0.2.53"), ("2001:db8::10", "2001:db8::53")])
def test_the_frame_goes_to_the_client_from_the_resolver_with_valid_checksums(src, dst):
    q = udp_packet(src, dst, 40000, 53, dns_query(9, "phish.example.test", 1), src_mac=CLIENT_MAC)
    f = dns_answer_frame(q[14:], CLIENT_MAC, SERVER_MAC, CFG)
    assert (f[:6], f[6:12]) == (CLIENT_MAC, SERVER_MAC)
    ip = f[14:]
    if ip[0] >> 4 == 4:
        assert _csum(ip[:20]) == 0
        s, d, off = ip[12:16], ip[16:20], 20
        pseudo = s + d + struct.pack("!BBH", 0, 17, len(ip) - off)
    else:
        s, d, off = ip[8:24], ip[24:40], 40
        pseudo = s + d + struct.pack("!IxxxB", len(ip) - off, 17)
    qip = q[14:]
    assert (s, d) == ((qip[16:20], qip[12:16]) if off == 20 else (qip[24:40], qip[8:24]))   # back to the client
    assert struct.unpack_from("!HH", ip, off) == (53, 40000)
    assert _csum(pseudo + ip[off:]) == 0
    rec = parse(ip[off + 8:])
    assert rec.answers[0].rdata.address == bytes([198, 51, 100, 7])   # the engine's own DNS parser reads it


@pytest.mark.parametrize("bad", [b"", b"\x45" + b"\0" * 30, dns_query(1, "x.test", 1)[:-3]])
def test_what_cannot_be_answered_is_a_typed_error(bad):
    with pytest.raises(DnsAnswerError):
        dns_answer_frame(udp_packet("192.0.2.1", "192.0.2.2", 1, 53, bad)[14:] if bad[:1] != b"\x45" else bad,
                         CLIENT_MAC, SERVER_MAC, CFG)


def test_a_response_is_not_answered():
    with pytest.raises(DnsAnswerError):
        answer_message(b"\x00\x01\x81\x80" + b"\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x00\x00\x01\x00\x01", CFG)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_garbage_gives_an_answer_or_a_typed_error(data):
    pkt = udp_packet("192.0.2.1", "192.0.2.2", 1, 53, data)[14:]
    for cut in (pkt, pkt[: len(pkt) // 2]):
        try:
            dns_answer_frame(cut, CLIENT_MAC, SERVER_MAC, CFG)
        except DnsAnswerError:
            pass


@pytest.mark.parametrize("values,v4,v6", [(["198.51.100.7"], "198.51.100.7", None),
                                          (["198.51.100.7,2001:db8::7"], "198.51.100.7", "2001:db8::7"),
                                          (["2001:db8::7"], None, "2001:db8::7")])
def test_config_from_the_option(values, v4, v6):
    c = DnsBlockConfig.parse(values)
    assert (c.v4, c.v6) == (v4, v6)
    assert DnsBlockConfig.parse([]) is None


@pytest.mark.parametrize("v4,v6", [("2001:db8::1", None), (None, "192.0.2.1"), ("nope", None), (None, None)])
def test_bad_config_is_a_config_error(v4, v6):
    with pytest.raises(ConfigError):
        DnsBlockConfig(v4, v6)


@pytest.mark.parametrize("value", ["224.0.0.1", "255.255.255.255", "0.0.0.0", "127.0.0.1", "fe80::1", "ff02::1",
                                   "198.51.100.7,198.51.100.8", "a.b.c.d"])
def test_an_address_no_host_beyond_the_router_can_have_is_refused(value):
    with pytest.raises(ConfigError):
        DnsBlockConfig.parse([value])


def _seg(data: bytes) -> bytes:
    from firmware.bench.frames import ACK, PSH, tcp_packet
    return tcp_packet("192.0.2.10", "192.0.2.53", 40000, 53, 100, 1, ACK | PSH, data)[14:]


def _framed(*msgs: bytes) -> bytes:
    return b"".join(struct.pack("!H", len(m)) + m for m in msgs)


def test_a_tcp_query_is_answered_from_the_stream_only_when_this_segment_ends_it():
    from inspection.policy.dnsblock import dns_stream_answer
    q = dns_query(5, "phish.example.test", 1)
    framed = _framed(q)
    answer = dns_stream_answer(_seg(framed[7:]), CFG, [q])           # the end of the reassembled query
    assert answer[2:4] == q[:2] and answer.endswith(bytes([198, 51, 100, 7]))
    for data, completed in ((framed[:7], [q]), (b"\xff" + framed[7:], [q]), (framed[7:], [])):
        with pytest.raises(DnsAnswerError):
            dns_stream_answer(_seg(data), CFG, completed)


def test_of_several_tcp_queries_in_one_segment_the_one_with_the_id_is_answered():
    from inspection.policy.dnsblock import dns_stream_answer
    a, aaaa, other = (dns_query(6, "phish.example.test", 1), dns_query(7, "phish.example.test", 28),
                      dns_query(8, "www.example.test", 1))
    for completed, pending, data in (([], 0, _framed(a, aaaa, other)),          # whole queries only
                                     ([a, aaaa, other], 0, _framed(a, aaaa, other)[5:]),   # a began earlier
                                     ([a, aaaa], 4, _framed(a, aaaa, other)[:-len(other) + 2])):   # more follows
        first = dns_stream_answer(_seg(data), CFG, completed, 6, pending)
        second = dns_stream_answer(_seg(data), CFG, completed, 7, pending)
        assert first[2:4] == b"\x00\x06" and first.endswith(bytes([198, 51, 100, 7]))
        assert second[2:4] == b"\x00\x07" and second.endswith(bytes.fromhex("20010db8000000000000000000000007"))
        with pytest.raises(DnsAnswerError):
            dns_stream_answer(_seg(data), CFG, completed, 9, pending)   # no such query here
    with pytest.raises(DnsAnswerError):   # the segment does not end the queries the stream completed
        dns_stream_answer(_seg(_framed(aaaa)), CFG, [a], 6)
