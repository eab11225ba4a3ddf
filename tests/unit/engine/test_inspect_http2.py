"""`utm inspect` on h2c captures built here: http rules, EVE http with `http2`, fileinfo, events."""
from __future__ import annotations

import hpack

from firmware.bench.frames import TcpConversation
from inspection.applayer.http2 import PREFACE
from tests.unit.applayer.test_http2 import END_HEADERS, END_STREAM, DATA, HEADERS, frame, settings_frame
from tests.unit.engine.test_inspect_cli import CLI, SRV, of, run, write_pcap

BODY = b"%PDF-1.4 malicious body " + b"x" * 4000

RULES = r'''
alert http any any -> any any (msg:"uri"; flow:established,to_server; http.uri; content:"/files/a.pdf"; sid:1;)
alert http1 any any -> any any (msg:"http1 only"; http.uri; content:"/files/a.pdf"; sid:2;)
alert http2 any any -> any any (msg:"http2 only"; http.method; content:"POST"; sid:3;)
alert http any any -> any any (msg:"host"; http.host; content:"www.example.com"; http.user_agent; content:"h2demo"; sid:4;)
alert http any any -> any any (msg:"status"; http.stat_code; content:"200"; http.header; content:"server|3a| h2srv"; sid:5;)
alert http any any -> any any (msg:"body"; file.data; content:"malicious body"; sid:6;)
alert http any any -> any any (msg:"request body"; http.request_body; content:"field=1"; sid:7;)
alert http2 any any -> any any (msg:"long frame"; app-layer-event:http2.long_frame_data; sid:8;)
alert tcp any any -> any any (msg:"fuzzy http"; app-layer-protocol:http; sid:9;)
alert tcp any any -> any any (msg:"exact http"; app-layer-protocol:http,exact; sid:10;)
alert http2 any any -> any any (msg:"h2 name"; flow:to_server; http2.header_name; content:":authority"; sid:11;)
alert http2 any any -> any any (msg:"h2 header"; http2.header; content:"server|3a| h2srv"; endswith; sid:12;)
alert http2 any any -> any any (msg:"h2 header whole line"; http2.header; content:":path|3a| /files"; startswith; sid:13;)
alert http2 any any -> any any (msg:"frame type"; http2.frametype:GOAWAY; sid:14;)
'''


def h2_packets(port=40100, big=False, upgrade=False):
    c = TcpConversation(CLI, SRV, port, 80, start=1_700_000_000.0)
    cli, srv = hpack.Encoder(), hpack.Encoder()
    pkts = list(c.handshake())
    if upgrade:
        pkts += c.send(b"GET /files/a.pdf HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: h2demo\r\n"
                       b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n")
        pkts += c.send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
                       from_client=False)
        pkts += c.send(PREFACE + settings_frame((4, 65535)))
    else:
        req = cli.encode([(":method", "GET"), (":path", "/files/a.pdf"), (":scheme", "http"),
                          (":authority", "www.example.com"), ("user-agent", "h2demo")])
        pkts += c.send(PREFACE + settings_frame((3, 100)) + frame(HEADERS, END_HEADERS | END_STREAM, 1, req))
    post = cli.encode([(":method", "POST"), (":path", "/form"), (":scheme", "http"), (":authority", "www.example.com"),
                       ("content-type", "application/x-www-form-urlencoded")])
    pkts += c.send(frame(HEADERS, END_HEADERS, 3, post) + frame(DATA, END_STREAM, 3, b"field=1"))
    body = BODY + (b"y" * 70000 if big else b"")
    resp = srv.encode([(":status", "200"), ("content-type", "application/pdf"), ("server", "h2srv")])
    pkts += c.send(settings_frame((3, 128)) + frame(HEADERS, END_HEADERS, 1, resp) + frame(DATA, END_STREAM, 1, body),
                   from_client=False)
    pkts += c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, srv.encode([(":status", "204")])), from_client=False)
    return pkts + list(c.close())


def inspect(tmp_path, pkts):
    rules = tmp_path / "t.rules"
    rules.write_text(RULES)
    rc, events = run(tmp_path, pkts, "-S", str(rules), "-k", "none")
    assert rc == 0
    return events


def sids(events):
    return sorted(a["alert"]["signature_id"] for a in of(events, "alert"))


def test_prior_knowledge_h2c_is_logged_and_matched(tmp_path):
    events = inspect(tmp_path, h2_packets())
    # not 2 (http1 only), not 10 (exact), not 14 (skipped: not implemented)
    assert sorted(set(sids(events))) == [1, 3, 4, 5, 6, 7, 9, 11, 12, 13]
    http = {e["http"]["url"]: e for e in of(events, "http")}
    assert set(http) == {"/files/a.pdf", "/form"}
    get = http["/files/a.pdf"]
    assert get["app_proto"] == "http2" and get["http"]["protocol"] == "HTTP/2" and get["http"]["status"] == 200
    assert get["http"]["http2"]["stream_id"] == 1 and http["/form"]["http"]["http2"]["stream_id"] == 3
    assert get["http"]["http2"]["request"]["settings"] == [{"settings_id": "SETTINGS_MAX_CONCURRENT_STREAMS",
                                                           "settings_value": 100}]
    files = of(events, "fileinfo")
    pdf = next(f for f in files if f["fileinfo"]["filename"] == "/files/a.pdf")
    assert pdf["app_proto"] == "http2" and pdf["fileinfo"]["size"] == len(BODY)
    alert = next(a for a in of(events, "alert") if a["alert"]["signature_id"] == 1)
    assert alert["http"]["url"] == "/files/a.pdf" and alert["app_proto"] == "http2"
    (flow,) = of(events, "flow")
    assert flow["app_proto"] == "http2"


def test_upgraded_flow_request_is_stream_one(tmp_path):
    events = inspect(tmp_path, h2_packets(upgrade=True))
    http = [(e["http"]["protocol"], e["http"].get("status"), e["http"]["url"]) for e in of(events, "http")]
    assert ("HTTP/1.1", 101, "/files/a.pdf") in http and ("HTTP/2", 200, "/files/a.pdf") in http
    assert {1, 6}.issubset(sids(events))
    (flow,) = of(events, "flow")
    assert flow["app_proto"] == "http2" and flow["app_proto_orig"] == "http"


def test_frame_level_keywords_are_skipped_with_a_reason(tmp_path, capsys):
    from firmware.cli.main import main
    pcap = write_pcap(tmp_path / "in.pcap", h2_packets())
    rules = tmp_path / "t.rules"
    rules.write_text(RULES)
    assert main(["inspect", "-r", str(pcap), "-S", str(rules), "-l", str(tmp_path / "o"), "-k", "none"]) == 0
    assert "http2.frametype=1" in capsys.readouterr().out


def test_long_frame_is_an_anomaly_and_the_body_still_a_file(tmp_path):
    events = inspect(tmp_path, h2_packets(big=True))
    assert [a["anomaly"]["event"] for a in of(events, "anomaly")] == ["long_frame_data"]
    assert 8 in sids(events) and 6 in sids(events)
    pdf = next(f for f in of(events, "fileinfo") if f["fileinfo"]["filename"] == "/files/a.pdf")
    assert pdf["fileinfo"]["size"] == len(BODY) + 70000


DOH_RULES = r'''
alert tcp any any -> any any (msg:"fuzzy dns matches doh2"; app-layer-protocol:dns; sid:1;)
alert tcp any any -> any any (msg:"exact dns"; app-layer-protocol:dns,exact; sid:2;)
alert tcp any any -> any any (msg:"exact doh2"; app-layer-protocol:doh2,exact; sid:3;)
alert dns any any -> any any (msg:"query"; dns.query; content:"www.example.org"; sid:4;)
alert http any any -> any any (msg:"http sees doh2"; http.uri; content:"/dns-query"; sid:5;)
'''


def test_dns_over_http2_flow(tmp_path):
    from tests.unit.applayer.test_http2 import doh_conversation
    c = TcpConversation(CLI, SRV, 40200, 80, start=1_700_000_000.0)
    pkts = list(c.handshake())
    for d, seg in doh_conversation(get=False):
        pkts += c.send(seg, from_client=d == 0)
    pkts += list(c.close())
    rules = tmp_path / "t.rules"
    rules.write_text(DOH_RULES)
    rc, events = run(tmp_path, pkts, "-S", str(rules), "-k", "none")
    assert rc == 0
    assert sids(events) == [1, 3, 4, 5]
    (flow,) = of(events, "flow")
    assert flow["app_proto"] == "doh2"
    assert [e["dns"]["type"] for e in of(events, "dns")] == ["request", "response"]


def test_request_rules_run_before_the_stream_ends(tmp_path):
    """A request is inspected when its headers are read: the server never answers here."""
    c = TcpConversation(CLI, SRV, 40300, 80, start=1_700_000_000.0)
    req = hpack.Encoder().encode([(":method", "GET"), (":path", "/files/a.pdf"), (":authority", "www.example.com")])
    pkts = list(c.handshake()) + list(c.send(PREFACE + frame(HEADERS, END_HEADERS | END_STREAM, 1, req)))
    pkts += list(c.send(settings_frame(), from_client=False))
    rules = tmp_path / "t.rules"
    rules.write_text(RULES)
    rc, events = run(tmp_path, pkts, "-S", str(rules), "-k", "none")   # no close: the flow times out
    assert rc == 0
    (alert,) = [a for a in of(events, "alert") if a["alert"]["signature_id"] == 1]
    # on the client's ACK (the last packet), while the transaction itself is logged at flow end
    assert alert["pcap_cnt"] == len(pkts) and alert["http"]["url"] == "/files/a.pdf"
    (http,) = of(events, "http")
    assert http["http"]["url"] == "/files/a.pdf" and "pcap_cnt" not in http


def test_http2_can_be_disabled(tmp_path):
    rc, events = run(tmp_path, h2_packets(upgrade=True), "-k", "none", "--set", "app-layer.protocols.http2.enabled=no")
    assert rc == 0
    assert [(e["http"]["protocol"], e["http"]["status"]) for e in of(events, "http")] == [("HTTP/1.1", 101)]
    (flow,) = of(events, "flow")
    assert flow["app_proto"] != "http2"
