"""When rules run: IP-only rules once per direction, packet rules on every packet
(payload or not), flowbits seen in rule order, `pass` passing the whole flow,
and the `stats` event at the end of a capture."""
from __future__ import annotations

from firmware.bench.frames import TcpConversation
from tests.unit.engine.test_inspect_cli import CLI, SRV, http_conversation, of, run


def alerts(events):
    return sorted((a["pcap_cnt"], a["alert"]["signature_id"]) for a in of(events, "alert"))


def run_rules(tmp_path, rules: str, packets=None):
    packets = packets or http_conversation()
    (tmp_path / "t.rules").write_text(rules)
    return run(tmp_path, packets, "-S", str(tmp_path / "t.rules"), "-k", "none")


def test_ip_only_rule_alerts_once_per_direction(tmp_path):
    rc, events = run_rules(tmp_path, f'alert ip {CLI} any <> {SRV} any (msg:"pair"; sid:1;)\n'
                                     f'alert ip [203.0.113.0/24] any -> any any (msg:"elsewhere"; sid:2;)\n')
    assert rc == 0
    hits = alerts(events)
    assert [sid for _, sid in hits] == [1, 1]           # first packet each way: the SYN and the SYN-ACK
    assert [n for n, _ in hits] == [1, 2]
    assert {a["direction"] for a in of(events, "alert")} == {"to_server", "to_client"}


def test_packet_rules_see_packets_without_payload(tmp_path):
    rc, events = run_rules(tmp_path, 'alert tcp any any -> any any (msg:"syn"; flags:S; sid:1;)\n'
                                     'alert tcp any any -> any any (msg:"fin"; flags:+F; flow:to_server; sid:2;)\n'
                                     'alert tcp any any -> any any (msg:"empty"; dsize:0; flow:to_client; sid:3;)\n')
    hits = alerts(events)
    assert [n for n, sid in hits if sid == 1] == [1]
    assert len([1 for _, sid in hits if sid == 2]) == 1
    assert [sid for _, sid in hits].count(3) >= 2      # SYN-ACK and the bare ACKs from the server


def test_established_starts_after_the_handshake(tmp_path):
    rc, events = run_rules(tmp_path, 'alert tcp any any -> any any (msg:"est"; flow:established,to_server; sid:1;)\n'
                                     'alert tcp any any -> any any (msg:"new"; flow:not_established; sid:2;)\n')
    hits = alerts(events)
    # packets 1-3 are the handshake: the ACK completing it is not yet established (as in Suricata)
    assert [n for n, sid in hits if sid == 2] == [1, 2, 3]
    assert min(n for n, sid in hits if sid == 1) == 4


def test_flowbits_are_seen_by_later_rules_on_the_same_packet(tmp_path):
    rc, events = run_rules(tmp_path, '''
alert tcp any any -> any any (msg:"set"; content:"GET "; flowbits:set,a; sid:1;)
alert tcp any any -> any any (msg:"isset"; content:"GET "; flowbits:isset,a; sid:2;)
alert tcp any any -> any any (msg:"unset"; content:"GET "; flowbits:unset,a; sid:3;)
alert tcp any any -> any any (msg:"gone"; content:"GET "; flowbits:isset,a; sid:4;)
alert tcp any any -> any any (msg:"notset"; content:"GET "; flowbits:isnotset,a; sid:5;)
''')
    assert sorted(sid for _, sid in alerts(events)) == [1, 2, 3, 5]


def test_pass_rule_silences_the_whole_flow(tmp_path):
    other = TcpConversation(CLI, SRV, 40002, 80, start=1_700_000_100.0)
    packets = http_conversation() + list(other.handshake()) + list(other.send(b"GET / HTTP/1.1\r\n\r\n"))
    rc, events = run_rules(tmp_path, 'alert tcp any any -> any any (msg:"get"; content:"GET "; sid:1;)\n'
                                     'pass tcp any 40001 -> any any (msg:"trusted"; sid:2;)\n', packets)
    hits = of(events, "alert")
    assert [(a["src_port"], a["alert"]["signature_id"]) for a in hits] == [(40002, 1)]
    assert len(of(events, "http")) == 2                 # passed flows are still logged


def test_app_layer_protocol_waits_for_detection(tmp_path):
    rc, events = run_rules(tmp_path, 'alert tcp any any -> any any (msg:"not http"; '
                                     'app-layer-protocol:!http; sid:1;)\n'
                                     'alert tcp any any -> any any (msg:"http"; flow:to_server; '
                                     'app-layer-protocol:http; sid:2;)\n')
    hits = alerts(events)
    # while the protocol is unknown (handshake, request not yet acknowledged) neither
    # `http` nor `!http` holds; afterwards only `http` does
    assert not [n for n, sid in hits if sid == 1]
    assert [n for n, sid in hits if sid == 2] and min(n for n, sid in hits if sid == 2) > 4


def test_stats_event_closes_the_log(tmp_path):
    rc, events = run_rules(tmp_path, 'alert tcp any any -> any any (msg:"get"; content:"GET "; sid:1;)\n')
    assert events[-1]["event_type"] == "stats"
    st = events[-1]["stats"]
    assert st["decoder"]["pkts"] == len(http_conversation()) and st["decoder"]["tcp"] == st["decoder"]["pkts"]
    assert st["flow"]["tcp"] == 1 and st["detect"]["alert"] == 1
    assert st["app_layer"]["flow"] == {"http": 1} and st["app_layer"]["tx"] == {"http": 1}


def test_stream_rules_match_across_segments_once(tmp_path):
    c = TcpConversation(CLI, SRV, 40003, 9000, start=1_700_000_200.0)
    packets = (list(c.handshake()) + list(c.send(b"hello EV")) + list(c.send(b"IL world")) + list(c.send(b"EVIL"))
               + list(c.send(b"ok", from_client=False)) + list(c.close()))
    rc, events = run_rules(tmp_path, 'alert tcp-stream any any -> any any (msg:"s"; content:"EVIL"; sid:1;)\n'
                                     'alert tcp-pkt any any -> any any (msg:"p"; content:"EVIL"; sid:2;)\n'
                                     'alert tcp any any -> any any (msg:"s2"; flow:only_stream; '
                                     'content:"hello EVIL"; sid:3;)\n', packets)
    sids = sorted(sid for _, sid in alerts(events))
    assert sids == [1, 2, 3]     # the split EVIL only on the stream; each stream rule once per direction


def test_request_rules_alert_before_the_transaction_completes(tmp_path):
    rc, events = run_rules(tmp_path, 'alert http any any -> any any (msg:"uri"; http.uri; content:"/index"; '
                                     'classtype:trojan-activity; sid:1;)\n'
                                     'alert http any any -> any any (msg:"code"; http.uri; content:"/index"; '
                                     'http.stat_code; content:"200"; sid:2;)\n')
    (http,) = of(events, "http")
    uri = next(a for a in of(events, "alert") if a["alert"]["signature_id"] == 1)
    both = next(a for a in of(events, "alert") if a["alert"]["signature_id"] == 2)
    # inspected on the first client packet after the request was read, not when the response ended
    assert uri["pcap_cnt"] < http["pcap_cnt"] and uri["direction"] == "to_server"
    assert uri["http"]["url"] == "/index.html?q=1" and uri["alert"]["stars"] == 3
    assert uri["flow"]["pkts_toserver"] + uri["flow"]["pkts_toclient"] < len(http_conversation())
    assert both["direction"] == "to_client" and both["http"]["status"] == 200


def test_body_rules_see_their_transaction_and_a_late_body(tmp_path):
    rc, events = run_rules(tmp_path, 'alert http any any -> any any (msg:"body+code"; http.stat_code; content:"200"; '
                                     'file.data; content:"<html>"; startswith; sid:1;)\n'
                                     'alert http any any -> any any (msg:"uri+body"; flow:to_client; http.uri; '
                                     'content:"/index"; file.data; content:"</html>"; sid:2;)\n')
    assert sorted(sid for _, sid in alerts(events)) == [1, 2]


def test_alerts_carry_their_packet_unless_turned_off(tmp_path):
    import base64
    packets = http_conversation()
    rc, events = run_rules(tmp_path, 'alert tcp any any -> any any (msg:"get"; content:"GET "; sid:1;)\n', packets)
    (a,) = of(events, "alert")
    assert base64.b64decode(a["packet"]) == packets[a["pcap_cnt"] - 1][1]
    assert a["packet_info"] == {"linktype": 1, "linktype_name": "EN10MB"}
    (tmp_path / "out" / "eve.json").unlink()
    rc, events = run(tmp_path, packets, "-S", str(tmp_path / "t.rules"), "--set", "outputs.eve.alert.packet=no")
    (a,) = of(events, "alert")
    assert "packet" not in a and "packet_info" not in a


def test_decode_event_rules_alert_on_the_damaged_packet(tmp_path):
    packets = http_conversation()
    ts, frame = packets[0]
    packets.insert(1, (ts + 0.0001, frame[:30]))        # an IPv4 header cut short
    rc, events = run_rules(tmp_path, 'alert pkthdr any any -> any any (msg:"trunc"; '
                                     'decode-event:ipv4.pkt_too_small; sid:1;)\n'
                                     'alert ip any any -> any any (msg:"other"; decode-event:ipv6.trunc_pkt; sid:2;)\n',
                           packets)
    assert [(n, sid) for n, sid in alerts(events)] == [(2, 1)]
    assert any(e["event_type"] == "anomaly" and e["anomaly"]["event"] == "decoder.ipv4.pkt_too_small" for e in events)


def test_ip_only_rules_with_flowbits_run_in_rule_order_with_the_rest(tmp_path):
    rc, events = run_rules(tmp_path, '''
alert ip any any -> any any (msg:"set"; flowbits:set,a; sid:1;)
alert tcp any any -> any any (msg:"isset"; flowbits:isset,a; flow:to_server; sid:2;)
alert ip any any -> any any (msg:"unset"; flowbits:unset,a; sid:3;)
alert tcp any any -> any any (msg:"gone"; flowbits:isset,a; flow:to_server; sid:4;)
''')
    first = [sid for n, sid in alerts(events) if n == 1]
    assert first == [1, 2, 3]     # on the SYN: set, seen by 2, unset before 4 looks


def test_traffic_flowbits_tag_the_flow_and_its_alerts(tmp_path):
    rc, events = run_rules(tmp_path, 'alert http any any -> any any (msg:"ua"; http.user_agent; content:"demo"; '
                                     'flowbits:set,traffic/id/demo-client; flowbits:set,traffic/label/test; sid:1;)\n')
    (a,) = of(events, "alert")
    (f,) = of(events, "flow")
    assert a["traffic"] == f["traffic"] == {"id": ["demo-client"], "label": ["test"]}


def test_http_start_names_and_header_lines(tmp_path):
    rc, events = run_rules(tmp_path, '''
alert http any any -> any any (msg:"start"; flow:to_server; http.start; content:"GET"; depth:3; content:"Host:"; distance:0; sid:1;)
alert http any any -> any any (msg:"names"; http.header_names; content:"|0d 0a|Host|0d 0a|"; sid:2;)
alert http any any -> any any (msg:"one line"; flow:to_server; http.request_header; content:"User-Agent: demo"; startswith; sid:3;)
alert http any any -> any any (msg:"lines are separate"; flow:to_server; http.request_header; content:"Host"; startswith; content:"User-Agent"; sid:4;)
''')
    assert sorted(sid for _, sid in alerts(events)) == [1, 2, 3]


def test_stream_data_waits_for_a_packet_its_way_or_the_flow_end(tmp_path):
    """A direction's stream is inspected on that direction's packets once acknowledged;
    what is still waiting when the flow ends is inspected then and says so."""
    c = TcpConversation(CLI, SRV, 40004, 9000, start=1_700_000_300.0)
    first = list(c.handshake()) + list(c.send(b"EVIL one"))      # data, then the server's ACK
    later = list(c.send(b"GOOD two"))                            # the client's next packet carries more data
    packets = first + later      # no FIN: GOOD's ACK is the last packet, the flow ends on shutdown
    rc, events = run_rules(tmp_path, 'alert tcp-stream any any -> any any (msg:"e"; content:"EVIL"; sid:1;)\n'
                                     'alert tcp-stream any any -> any any (msg:"g"; content:"GOOD"; sid:2;)\n'
                                     'alert tcp-pkt any any -> any any (msg:"p"; content:"EVIL"; sid:3;)\n', packets)
    by_sid = {a["alert"]["signature_id"]: a for a in of(events, "alert")}
    assert sorted(by_sid) == [1, 2, 3]
    evil, good, pkt = by_sid[1], by_sid[2], by_sid[3]
    assert evil["pcap_cnt"] == len(first) + 1 and evil["pkt_src"] == "wire/pcap"   # the client's next packet
    assert evil["stream"] == 1 and evil["payload_printable"] == "EVIL one"
    assert "pcap_cnt" not in good and good["pkt_src"] == "stream (flow timeout)"
    assert good["stream"] == 1 and good["payload_printable"] == "GOOD two"
    assert pkt["stream"] == 0 and pkt["payload_printable"] == "EVIL one" and pkt["pcap_cnt"] == len(first) - 1


def test_alert_payload_can_be_turned_off(tmp_path):
    (tmp_path / "t.rules").write_text('alert tcp-pkt any any -> any any (msg:"p"; content:"GET"; sid:1;)\n')
    rc, events = run(tmp_path, http_conversation(), "-S", str(tmp_path / "t.rules"), "-k", "none",
                     "--set", "outputs.eve.alert.payload=no")
    (a,) = of(events, "alert")
    assert "payload" not in a and "payload_printable" not in a and "stream" not in a


def _post_and_reply():
    c = TcpConversation(CLI, SRV, 40005, 80, start=1_700_000_400.0)
    body = b'{"cmd":"run"}'
    req = (b"POST /api HTTP/1.1\r\nHost: h.example\r\nContent-Length: " + str(len(body)).encode()
           + b"\r\n\r\n" + body)
    resp = b"HTTP/1.1 500 Oops\r\nContent-Length: 12\r\n\r\nstack trace!"
    return list(c.handshake()) + list(c.send(req)) + list(c.send(resp, from_client=False)) + list(c.close())


def test_transactional_rule_sees_request_and_response_bodies_together(tmp_path):
    rc, events = run_rules(tmp_path, f'''
alert http {CLI} any => {SRV} any (msg:"both"; http.request_body; content:"run"; http.stat_code; content:"500"; file.data: to_client; content:"stack"; sid:1;)
alert http {SRV} any => {CLI} any (msg:"header is the request's way"; http.request_body; content:"run"; file.data; content:"stack"; sid:2;)
alert http any any => any any (msg:"not this body"; http.request_body; content:"run"; file.data; content:"nothing"; sid:3;)
''', _post_and_reply())
    hits = of(events, "alert")
    assert [a["alert"]["signature_id"] for a in hits] == [1]
    assert hits[0]["http"]["status"] == 500


def test_transactional_rule_syntax():
    from signatures.errors import MalformedRule, UnsupportedRule
    from signatures.parser import parse_rule
    r = parse_rule('alert http any any => any any (msg:"x"; file.data: to_client; content:"a"; sid:1;)')
    assert r.transactional and not r.bidirectional
    import pytest
    with pytest.raises(UnsupportedRule):
        parse_rule('alert http any any => any any (msg:"x"; file.data: to_server; content:"a"; sid:1;)')
    with pytest.raises(MalformedRule):
        parse_rule('alert http any any => any any (msg:"x"; flow:to_server; content:"a"; sid:1;)')


def test_packet_rules_see_a_segment_with_a_bad_checksum(tmp_path):
    """As in Suricata, a bad TCP checksum keeps a segment out of the stream, not away
    from the packet rules (captures taken on the sender have offloaded checksums)."""
    c = TcpConversation(CLI, SRV, 40006, 25, start=1_700_000_600.0)
    pkts = list(c.handshake()) + list(c.send(b"EHLO client.example\r\n"))
    ts, frame = pkts[3]
    bad = bytearray(frame)
    bad[14 + 20 + 16] ^= 0xFF                      # the TCP checksum
    pkts[3] = (ts, bytes(bad))
    (tmp_path / "t.rules").write_text('alert tcp any any -> any 25 (msg:"helo"; content:"EHLO "; sid:1;)\n'
                                      'alert tcp-stream any any -> any 25 (msg:"s"; content:"EHLO "; sid:2;)\n')
    rc, events = run(tmp_path, pkts, "-S", str(tmp_path / "t.rules"), "-k", "all")
    assert [a["alert"]["signature_id"] for a in of(events, "alert")] == [1]
