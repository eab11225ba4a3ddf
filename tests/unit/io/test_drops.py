"""The `drop` object of a dropped packet: header fields as Suricata logs them, never a failure on junk."""
from __future__ import annotations

from hypothesis import given, strategies as st

from firmware.bench.frames import tcp_packet
from inspection.io.drops import drop_record


def test_ipv6_tcp_and_ipv4_udp_fields():
    v6 = tcp_packet("2001:db8::10", "2001:db8::20", 40000, 80, 7, 9, 0x12)[14:]
    d = drop_record(v6, "rules").tree()
    assert (d["len"], d["hoplimit"], d["tcpseq"], d["tcpack"], d["syn"], d["ack"], d["reason"]) == (
        len(v6), 64, 7, 9, True, True, "rules")
    assert "ipid" not in d
    udp = bytes.fromhex("4500001d00010000401100000a0000010a000002d431003500090000") + b"x"
    d = drop_record(udp, "dns answered").tree()
    assert (d["ttl"], d["ipid"], d["udplen"], d["reason"]) == (64, 1, 9, "dns answered") and "tcpseq" not in d


@given(st.binary(max_size=80))
def test_any_bytes_give_a_record(data):
    d = drop_record(data, "rules").tree()
    assert d["len"] == len(data) and d["reason"] == "rules"
