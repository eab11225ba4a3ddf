"""DNS parser and EVE "dns" v3 output, checked against Suricata 8's behaviour."""
from __future__ import annotations

import dataclasses
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspection.applayer.dns import (
    DnsMessage, DnsTcpParser, DnsUdpParser, probe_dns_is_request, probe_dns_tcp, probe_dns_udp,
)
from inspection.applayer.dns_rdata import (
    RdataAddress, RdataName, RdataOpt, RdataSoa, RdataSrv, RdataTxt, address_text, bytes_to_text,
)
from inspection.model import Anomaly, AnomalyKind, Direction
from inspection.output.eve_dns import dns_to_eve

TS, TC = Direction.TO_SERVER, Direction.TO_CLIENT
A, NS, CNAME, SOA, NULL, PTR, MX, TXT, AAAA, SRV, OPT, SSHFP = 1, 2, 5, 6, 10, 12, 15, 16, 28, 33, 41, 44


# --- message builder ---------------------------------------------------------

def dname(text: str) -> bytes:
    """Uncompressed wire name; '' is the root."""
    out = b"".join(bytes([len(p)]) + p.encode() for p in text.split(".") if p)
    return out + b"\x00"


def ptr(offset: int) -> bytes:
    return struct.pack(">H", 0xC000 | offset)


def question(name: bytes | str, qtype: int = A, qclass: int = 1) -> bytes:
    name = dname(name) if isinstance(name, str) else name
    return name + struct.pack(">HH", qtype, qclass)


def rr(name: bytes | str, rtype: int, rdata: bytes, ttl: int = 300, rclass: int = 1) -> bytes:
    name = dname(name) if isinstance(name, str) else name
    return name + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def message(id: int = 0x1234, flags: int = 0x0100, qd=(), an=(), ns=(), ar=()) -> bytes:
    head = struct.pack(">HHHHHH", id, flags, len(qd), len(an), len(ns), len(ar))
    return head + b"".join(qd) + b"".join(an) + b"".join(ns) + b"".join(ar)


def txt(*strings: bytes) -> bytes:
    return b"".join(bytes([len(s)]) + s for s in strings)


def soa_rdata(mname: str, rname: str, *nums: int) -> bytes:
    return dname(mname) + dname(rname) + struct.pack(">5I", *nums)


def tcp_frame(msg: bytes) -> bytes:
    return struct.pack(">H", len(msg)) + msg


def records(out) -> list[DnsMessage]:
    return [o for o in out if isinstance(o, DnsMessage)]


def anomalies(out) -> list[tuple[str, int | None]]:
    return [(o.event, o.tx_id) for o in out if isinstance(o, Anomaly)]


QUERY = message(flags=0x0100, qd=[question("www.example.com")])
# The answer name points at the question name (offset 12), the usual compression.
RESPONSE = message(flags=0x8180, qd=[question("www.example.com")], an=[
    rr(ptr(12), CNAME, dname("web.example.net"), ttl=60),
    rr(dname("web.example.net"), A, bytes([192, 0, 2, 1])),
    rr(dname("web.example.net"), A, bytes([192, 0, 2, 2])),
])


# --- query/response and EVE layout --------------------------------------------

def test_query_and_response_are_separate_transactions():
    p = DnsUdpParser()
    q = p.feed(TS, QUERY, 1.0)
    r = p.feed(TC, RESPONSE, 1.1)
    assert [m.tx_id for m in records(q) + records(r)] == [0, 1]
    assert anomalies(q + r) == []
    req, resp = records(q)[0], records(r)[0]
    assert (req.message_type, req.direction, req.qr, req.rd) == ("request", TS, False, True)
    assert (resp.message_type, resp.qr, resp.ra, resp.rcode_name) == ("response", True, True, "NOERROR")
    assert resp.answers[0].rrname == b"www.example.com"
    assert resp.answers[0].rdata == RdataName(b"web.example.net")


def test_eve_layout_request():
    (req,) = records(DnsUdpParser().feed(TS, QUERY, 0.0))
    assert dns_to_eve(req) == {
        "version": 3, "type": "request", "tx_id": 0, "id": 0x1234, "flags": "100", "rd": True,
        "opcode": 0, "rcode": "NOERROR",
        "queries": [{"rrname": "www.example.com", "rrtype": "A"}],
    }


def test_eve_layout_response_with_grouped_answers():
    p = DnsUdpParser()
    p.feed(TS, QUERY, 0.0)
    (resp,) = records(p.feed(TC, RESPONSE, 0.0))
    eve = dns_to_eve(resp)
    assert list(eve) == ["version", "type", "tx_id", "id", "flags", "qr", "rd", "ra", "opcode", "rcode",
                         "queries", "answers", "grouped"]
    assert eve["flags"] == "8180" and eve["tx_id"] == 1 and eve["type"] == "response"
    assert eve["answers"] == [
        {"rrname": "www.example.com", "rrtype": "CNAME", "ttl": 60, "rdata": "web.example.net"},
        {"rrname": "web.example.net", "rrtype": "A", "ttl": 300, "rdata": "192.0.2.1"},
        {"rrname": "web.example.net", "rrtype": "A", "ttl": 300, "rdata": "192.0.2.2"},
    ]
    assert eve["grouped"] == {"CNAME": ["web.example.net"], "A": ["192.0.2.1", "192.0.2.2"]}
    json.dumps(eve)


def _response(*answers: bytes, ns=(), ar=(), flags=0x8180, qtype=A) -> DnsMessage:
    wire = message(flags=flags, qd=[question("q.example", qtype)], an=list(answers), ns=list(ns), ar=list(ar))
    (msg,) = records(DnsUdpParser().feed(TC, wire, 0.0))
    return msg


def test_aaaa_printed_uncompressed_like_suricata():
    addr = bytes.fromhex("2a00145040010818000000000000200e")
    eve = dns_to_eve(_response(rr("q.example", AAAA, addr), qtype=AAAA))
    assert eve["answers"][0]["rdata"] == "2a00:1450:4001:0818:0000:0000:0000:200e"
    assert eve["grouped"] == {"AAAA": ["2a00:1450:4001:0818:0000:0000:0000:200e"]}
    assert address_text(b"\x01\x02") == ""


def test_mx_ptr_ns_names():
    msg = _response(rr("q.example", MX, struct.pack(">H", 10) + dname("mail.example")),
                    rr("1.2.0.192.in-addr.arpa", PTR, dname("host.example")),
                    rr("q.example", NS, dname("ns1.example")))
    assert [dns_to_eve(msg)["answers"][i]["rdata"] for i in range(3)] == ["mail.example", "host.example", "ns1.example"]
    assert dns_to_eve(msg)["grouped"] == {"MX": ["mail.example"], "PTR": ["host.example"], "NS": ["ns1.example"]}


def test_txt_logs_one_entry_per_string():
    msg = _response(rr("q.example", TXT, txt(b"v=spf1 -all", b"", b"second")), qtype=TXT)
    eve = dns_to_eve(msg)
    assert msg.answers[0].rdata == RdataTxt((b"v=spf1 -all", b"", b"second"))
    assert [a["rdata"] for a in eve["answers"]] == ["v=spf1 -all", "", "second"]
    assert eve["grouped"]["TXT"] == ["v=spf1 -all", "", "second"]


def test_nxdomain_with_soa_authority():
    soa = soa_rdata("ns-110.awsdns-13.com", "awsdns-hostmaster.amazon.com", 1, 7200, 900, 1209600, 86400)
    msg = _response(ns=[rr("oisf.net", SOA, soa, ttl=899)], flags=0x8183)
    eve = dns_to_eve(msg)
    assert eve["rcode"] == "NXDOMAIN" and "answers" not in eve and "grouped" not in eve
    assert eve["authorities"] == [{"rrname": "oisf.net", "rrtype": "SOA", "ttl": 899, "soa": {
        "mname": "ns-110.awsdns-13.com", "rname": "awsdns-hostmaster.amazon.com", "serial": 1,
        "refresh": 7200, "retry": 900, "expire": 1209600, "minimum": 86400}}]
    assert isinstance(msg.authorities[0].rdata, RdataSoa)


def test_srv_sshfp_null_unknown_and_opt():
    srv = struct.pack(">HHH", 20, 1, 5060) + dname("sip.example")
    sshfp = bytes([1, 1]) + bytes.fromhex("198c34a92fc0b2ab")
    null = b"VACKD\x03\xc5\xe9\x01"
    msg = _response(rr("_sip._udp.example", SRV, srv), rr("q.example", SSHFP, sshfp),
                    rr("q.example", NULL, null), rr("q.example", 99, b"v=spf1"),
                    ar=[rr("", OPT, b"", rclass=1232, ttl=0),
                        rr("", OPT, struct.pack(">HH", 10, 2) + b"\xab\xcd", ttl=0)])
    eve = dns_to_eve(msg)
    assert eve["answers"][0]["srv"] == {"priority": 20, "weight": 1, "port": 5060, "name": "sip.example"}
    assert eve["answers"][1]["sshfp"] == {"fingerprint": "19:8c:34:a9:2f:c0:b2:ab", "algo": 1, "type": 1}
    assert eve["answers"][2]["rdata"] == "VACKD\x03\\xc5\\xe9\x01"
    assert eve["answers"][3] == {"rrname": "q.example", "rrtype": "SPF", "ttl": 300}
    assert eve["grouped"]["SRV"][0]["port"] == 5060 and "SPF" not in eve["grouped"]
    # the OPT record without options is not logged, the one with options is
    assert eve["additionals"] == [{"rrname": "", "rrtype": "OPT", "ttl": 0, "opt": [{"code": 10, "data": "abcd"}]}]
    assert isinstance(msg.answers[0].rdata, RdataSrv) and isinstance(msg.additionals[1].rdata, RdataOpt)


def test_unknown_type_and_rcode_names():
    msg = _response(rr("q.example", 4000, b"\x00"), flags=0x800B, qtype=4000)
    eve = dns_to_eve(msg)
    assert eve["queries"][0]["rrtype"] == "4000" and eve["rcode"] == "11"
    assert eve["answers"] == [{"rrname": "q.example", "rrtype": "4000", "ttl": 300}]
    assert eve["grouped"] == {}


def test_non_utf8_names_escaped_like_suricata():
    assert bytes_to_text("é.example".encode()) == "é.example"
    assert bytes_to_text(b"a\xffb\x01") == "a\\xffb\x01"
    wire = message(qd=[question(b"\x04a\xffbc\x00")])
    (req,) = records(DnsUdpParser().feed(TS, wire, 0.0))
    assert req.queries[0].rrname == b"a\xffbc"
    assert dns_to_eve(req)["queries"][0]["rrname"] == "a\\xffbc"


# --- compression pointers --------------------------------------------------------

def test_forward_pointer_is_accepted():
    # First question's name points forward at the second question's name.
    second_at = 12 + 2 + 4
    wire = message(id=36356, qd=[question(ptr(second_at)), question("codemonkey.net")])
    (req,) = records(DnsUdpParser().feed(TS, wire, 0.0))
    assert [q.rrname for q in req.queries] == [b"codemonkey.net", b"codemonkey.net"]
    assert req.events == ()


def test_self_pointer_without_prior_pointer_is_malformed():
    p = DnsUdpParser()
    out = p.feed(TS, message(qd=[question(ptr(12))]), 0.0)
    assert records(out) == [] and anomalies(out) == [("malformed_data", None)]
    # a later good query is tx 0; the malformed event is attached to it after
    assert records(p.feed(TS, QUERY, 0.0))[0].tx_id == 0
    assert anomalies(p.feed(TS, message(qd=[question(ptr(12))]), 0.0)) == [("malformed_data", 0)]


def _answer_head(count: int = 1) -> bytes:
    return struct.pack(">HHHHHH", 7, 0x8180, 1, count, 0, 0) + question("q.example")


def test_self_pointer_after_a_pointer_is_infinite_loop_event():
    head = _answer_head()
    at = len(head)
    rdata_at = at + 2 + 10
    # The answer name points into its own rdata, where a pointer points at itself.
    wire = head + ptr(rdata_at) + struct.pack(">HHIH", A, 1, 5, 4) + ptr(rdata_at) + b"\x00\x00"
    out = DnsUdpParser().feed(TC, wire, 0.0)
    (msg,) = records(out)
    assert msg.answers[0].rrname == b"" and msg.events == ("infinite_loop",)
    assert anomalies(out) == [("infinite_loop", 0)]
    # A name that is itself a pointer to itself: nothing followed yet, so malformed.
    wire = head + ptr(at) + struct.pack(">HHIH", A, 1, 5, 4) + b"\x01\x02\x03\x04"
    assert anomalies(DnsUdpParser().feed(TC, wire, 0.0)) == [("malformed_data", None)]


def test_pointer_cycle_terminates_with_too_many_labels():
    head = _answer_head()
    c1 = len(head) + 2 + 10
    # CNAME rdata holds two pointers pointing at each other: c1 -> c1+2 -> c1 -> ...
    wire = head + ptr(12) + struct.pack(">HHIH", CNAME, 1, 5, 4) + ptr(c1 + 2) + ptr(c1)
    out = DnsUdpParser().feed(TC, wire, 0.0)
    (msg,) = records(out)
    assert msg.answers[0].rdata.truncated
    assert msg.events == ("name_too_long", "too_many_labels")
    assert anomalies(out) == [("name_too_long", 0), ("too_many_labels", 0)]
    assert dns_to_eve(msg)["answers"][0]["rdata_truncated"] is True


def test_long_name_truncated_to_1025():
    labels = ".".join("x" * 63 for _ in range(20))  # 1279 characters
    (req,) = records(DnsUdpParser().feed(TS, message(qd=[question(labels)]), 0.0))
    assert len(req.queries[0].rrname) == 1025 and req.queries[0].rrname_truncated
    assert "name_too_long" in req.events
    q = dns_to_eve(req)["queries"][0]
    assert q["rrname_truncated"] is True and len(q["rrname"]) == 1025


# --- flags and events ------------------------------------------------------------

def test_z_flag_is_logged_and_raises_event():
    out = DnsUdpParser().feed(TS, message(flags=0x0140, qd=[question("www.google.com")]), 0.0)
    (req,) = records(out)
    assert req.z and dns_to_eve(req)["z"] is True
    assert anomalies(out) == [("z_flag_set", 0)]


def test_invalid_opcode_event_both_directions():
    p = DnsUdpParser()
    q = p.feed(TS, message(id=1, flags=0x4900, qd=[question("suricata.io")]), 0.0)
    r = p.feed(TC, message(id=1, flags=0xC800, qd=[question("suricata.io")],
                           an=[rr(ptr(12), A, bytes([127, 0, 0, 1]), ttl=0)]), 0.0)
    assert anomalies(q) == [("invalid_opcode", 0)] and anomalies(r) == [("invalid_opcode", 1)]
    eve = dns_to_eve(records(r)[0])
    assert (eve["opcode"], eve["flags"], eve["rcode"]) == (9, "c800", "NOERROR")
    a = [o for o in q if isinstance(o, Anomaly)][0]
    assert (a.kind, a.app_proto, a.direction) == (AnomalyKind.APPLAYER, "dns", TS)


def test_unsolicited_response_is_its_own_transaction():
    p = DnsUdpParser()
    out = p.feed(TS, message(id=0x99AB, qd=[question("a.example")]), 0.0)
    out += p.feed(TC, message(id=0x9941, flags=0x8180, qd=[question("a.example")]), 0.0)
    out += p.feed(TC, message(id=0x99AB, flags=0x8180, qd=[question("a.example")]), 0.0)
    assert [(m.id, m.tx_id, m.message_type) for m in records(out)] == [
        (0x99AB, 0, "request"), (0x9941, 1, "response"), (0x99AB, 2, "response")]
    assert anomalies(out) == []


def test_wrong_qr_bit_per_direction():
    p = DnsUdpParser()
    p.feed(TS, QUERY, 0.0)
    # a response sent by the client: dropped, event on the latest transaction
    out = p.feed(TS, RESPONSE, 0.0)
    assert records(out) == [] and anomalies(out) == [("not_a_request", 0)]
    # a query sent by the server: kept as a response, flagged
    out = p.feed(TC, QUERY, 0.0)
    (msg,) = records(out)
    assert msg.message_type == "response" and not msg.qr and anomalies(out) == [("not_a_response", 1)]


def test_junk_before_first_query_is_ignored():
    p = DnsUdpParser()
    assert p.feed(TS, b"\x30\x26\x02\x01\x01\x04\x06public\xa0\x19", 0.0) == []
    assert p.feed(TS, b"\x00" * 5, 0.0) == []
    (req,) = records(p.feed(TS, QUERY, 0.0))
    assert req.tx_id == 0


def test_broken_authorities_and_additionals_keep_the_message():
    bad_soa = rr("x.example", SOA, b"\x01")  # rdata too short for SOA
    msg = _response(rr(ptr(12), A, b"\x01\x02\x03\x04"), ns=[bad_soa], ar=[rr("y", A, b"\x01\x01\x01\x01")])
    assert msg.events == ("invalid_authorities",) and msg.authorities == () and msg.additionals == ()
    msg = _response(ar=[rr("y.example", MX, b"\x00")])
    assert msg.events == ("invalid_additionals",)


def test_truncated_body_is_malformed():
    out = DnsUdpParser().feed(TC, RESPONSE[:-3], 0.0)
    assert records(out) == [] and anomalies(out) == [("malformed_data", None)]


def test_dnsmessage_is_frozen_and_validated():
    (req,) = records(DnsUdpParser().feed(TS, QUERY, 0.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.id = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        DnsMessage(TS, 0, 0, 0x10000)
    assert DnsMessage.event_type == "dns" and req.event_type == "dns"


# --- probes ------------------------------------------------------------------------

def test_probes():
    assert probe_dns_udp(QUERY) and probe_dns_udp(RESPONSE)
    assert not probe_dns_udp(b"GET / HTTP/1.1\r\n\r\n") and not probe_dns_udp(QUERY[:11])
    assert not probe_dns_udp(message(flags=0x0100))  # request without question
    assert probe_dns_is_request(QUERY) is True and probe_dns_is_request(RESPONSE) is False
    assert probe_dns_is_request(b"\x00" * 40) is None
    assert probe_dns_tcp(tcp_frame(QUERY)[:13]) is None
    assert probe_dns_tcp(tcp_frame(QUERY)[:20]) is True  # header-only check on a partial message
    assert probe_dns_tcp(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 20) is False
    assert probe_dns_is_request(tcp_frame(RESPONSE), tcp=True) is False


# --- TCP -----------------------------------------------------------------------------

def test_tcp_several_messages_in_one_chunk_and_zero_length_skipped():
    p = DnsTcpParser()
    q2 = message(id=2, qd=[question("two.example")])
    out = p.feed(TS, tcp_frame(QUERY) + b"\x00\x00" + tcp_frame(q2), 0.0)
    assert [(m.id, m.tx_id) for m in records(out)] == [(0x1234, 0), (2, 1)]
    out = p.feed(TC, tcp_frame(RESPONSE), 0.0)
    assert [(m.message_type, m.tx_id) for m in records(out)] == [("response", 2)]


def test_tcp_message_split_across_chunks():
    p = DnsTcpParser()
    stream = tcp_frame(QUERY)
    assert p.feed(TS, stream[:1], 0.0) == []
    assert p.feed(TS, stream[1:9], 0.0) == []
    (req,) = records(p.feed(TS, stream[9:], 0.0))
    assert req.queries[0].rrname == b"www.example.com"


def test_tcp_bad_message_stops_parsing_the_flow():
    p = DnsTcpParser()
    p.feed(TS, tcp_frame(QUERY), 0.0)
    out = p.feed(TC, tcp_frame(RESPONSE[:-2]), 0.0)  # framed but truncated inside
    assert anomalies(out) == [("malformed_data", 0)]
    assert p.feed(TC, tcp_frame(RESPONSE), 0.0) == [] and p.feed(TS, tcp_frame(QUERY), 0.0) == []


def test_tcp_gap_resynchronises_on_next_message():
    p = DnsTcpParser()
    p.feed(TS, tcp_frame(QUERY)[:10], 0.0)
    p.gap(TS, 30, 0.0)
    (req,) = records(p.feed(TS, tcp_frame(QUERY), 0.0))
    assert req.tx_id == 0
    p.gap(TC, 100, 0.0)
    assert p.feed(TC, b"\x7f" * 50, 0.0) == []  # not DNS after the gap: skipped
    assert records(p.feed(TC, tcp_frame(RESPONSE), 0.0))[0].tx_id == 1
    assert p.close(0.0) == []


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_tcp_any_chunking_gives_the_same_records(data):
    stream = tcp_frame(QUERY) + tcp_frame(message(id=9, qd=[question("b.example", AAAA)])) + tcp_frame(QUERY)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=12)))
    p = DnsTcpParser()
    out = []
    for a, b in zip([0] + cuts, cuts + [len(stream)]):
        out += p.feed(TS, stream[a:b], 0.0)
    assert [(m.id, m.tx_id) for m in records(out)] == [(0x1234, 0), (9, 1), (0x1234, 2)]


def test_tcp_byte_by_byte():
    p = DnsTcpParser()
    out = []
    for b in tcp_frame(RESPONSE):
        out += p.feed(TC, bytes([b]), 0.0)
    (msg,) = records(out)
    assert dns_to_eve(msg)["grouped"]["A"] == ["192.0.2.1", "192.0.2.2"]


# --- hostile input never raises --------------------------------------------------------

def _exercise(out) -> None:
    for o in out:
        assert isinstance(o, (DnsMessage, Anomaly))
        if isinstance(o, DnsMessage):
            json.dumps(dns_to_eve(o))


VALID = [QUERY, RESPONSE, message(flags=0x8183, qd=[question("n.example")], ns=[
    rr(ptr(12), SOA, soa_rdata("ns.example", "h.example", 1, 2, 3, 4, 5))])]


@settings(max_examples=300)
@given(st.binary(max_size=600), st.sampled_from([TS, TC]))
def test_garbage_never_raises(data, direction):
    _exercise(DnsUdpParser().feed(direction, data, 0.0))
    _exercise(DnsTcpParser().feed(direction, data, 0.0))
    probe_dns_udp(data), probe_dns_tcp(data), probe_dns_is_request(data, tcp=True)


@settings(max_examples=300)
@given(st.sampled_from(VALID), st.data())
def test_truncated_and_garbled_messages_never_raise(wire, data):
    cut = data.draw(st.integers(0, len(wire)))
    _exercise(DnsUdpParser().feed(TC, wire[:cut], 0.0))
    garbled = bytearray(wire)
    for pos, val in data.draw(st.lists(st.tuples(st.integers(0, len(wire) - 1), st.integers(0, 255)), max_size=8)):
        garbled[pos] = val
    _exercise(DnsUdpParser().feed(TC, bytes(garbled), 0.0))
    p = DnsTcpParser()
    stream = tcp_frame(bytes(garbled)) + tcp_frame(wire)
    _exercise(p.feed(TS, stream[:cut], 0.0) + p.feed(TS, stream[cut:], 0.0) + p.close(0.0))


@settings(max_examples=100)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_tcp_random_chunks_never_raise(chunks):
    p = DnsTcpParser()
    for i, c in enumerate(chunks):
        _exercise(p.feed(TS if i % 2 else TC, c, 0.0))
        if i % 7 == 3:
            p.gap(TS, len(c), 0.0)
    _exercise(p.close(0.0))


def test_rdata_types_are_as_named():
    msg = _response(rr(ptr(12), A, b"\x01\x02\x03\x04"))
    assert msg.answers[0].rdata == RdataAddress(b"\x01\x02\x03\x04")
