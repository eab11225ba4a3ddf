"""The app-layer memcap: what parsers hold for unfinished messages, all flows together,
stays under `app-layer.memcap`; the flows that held longest forget theirs first, each
with an APPLAYER_MEMCAP anomaly, and a head arriving now is still parsed."""
from __future__ import annotations

import pytest

from firmware.bench.frames import TcpConversation
from inspection.applayer.dns import DnsTcpParser
from inspection.applayer.http1 import Http1Parser
from inspection.applayer.http2 import PREFACE, Http2Parser
from inspection.applayer.smtp import SmtpParser
from inspection.applayer.tls import TlsParser
from inspection.config import ChecksumMode, EngineConfig
from inspection.engine import Engine
from inspection.errors import ConfigError
from inspection.io.live import LINKTYPE_IPV4
from inspection.model import Direction

TS, TC = Direction.TO_SERVER, Direction.TO_CLIENT
CAP = 200_000
PARTIAL = b"GET /slow HTTP/1.1\r\nHost: slow.example.test\r\nX-Pad: " + b"a" * 40_000   # no end of head


def engine(cap: int = CAP) -> tuple[Engine, list]:
    events: list = []
    return Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True, app_layer_memcap=cap),
                  events.append), events


def feed(eng: Engine, packets) -> list[int]:
    """Process `packets`; the app-layer bytes held after each one."""
    held = []
    for ts, frame in packets:
        eng.process(LINKTYPE_IPV4, frame[14:], ts, len(frame) - 14)
        held.append(eng.app_memory.held)
    return held


def conv(i: int, port: int = 80, start: float = 1_700_000_000.0) -> TcpConversation:
    return TcpConversation(f"192.0.2.{10 + i % 200}", "198.51.100.20", 20000 + i, port,
                           start=start + i * 0.01, mss=1400)


def slow_heads(n: int, port: int = 80, payload: bytes = PARTIAL) -> list:
    out: list = []
    for i in range(n):
        c = conv(i, port)
        out += list(c.handshake()) + list(c.send(payload))
    return out


def of(events, kind):
    return [e for e in events if e.event_type == kind]


def test_held_bytes_stay_under_the_cap_and_the_oldest_flows_give_way():
    eng, events = engine()
    held = feed(eng, slow_heads(12))       # 12 x 40 KB asked of a 200 KB cap
    assert max(held) <= CAP
    assert held[-1] > CAP - 45_000         # what is held is still used, up to the cap
    shed = [e for e in of(events, "anomaly") if e.body.event == "APPLAYER_MEMCAP"]
    assert eng.app_memory.sheds == len(shed) >= 7
    assert {e.body.app_proto for e in shed} == {"http"}
    ports = [e.flow.cport for e in shed]
    assert ports == sorted(ports) and ports[0] == 20000   # oldest first
    assert eng.counters().tree()["app_layer"]["memcap"] == {
        "held": eng.app_memory.held, "held_peak": eng.app_memory.peak, "sheds": len(shed)}


def test_without_the_cap_the_same_flows_hold_everything():
    eng, events = engine(cap=1 << 40)
    held = feed(eng, slow_heads(12))
    assert held[-1] >= 12 * 40_000
    assert not [e for e in of(events, "anomaly") if e.body.event == "APPLAYER_MEMCAP"]


def test_a_head_arriving_now_is_parsed_while_the_cap_is_full():
    eng, events = engine()
    feed(eng, slow_heads(12))
    c = conv(50)
    head = b"GET /fresh HTTP/1.1\r\nHost: fresh.example.test\r\nCookie: " + b"c" * 45_000 + b"\r\n\r\n"
    feed(eng, list(c.handshake()) + list(c.send(head)))   # 33 segments: held until its end
    eng.finish()
    fresh = [e.body for e in of(events, "http") if e.flow.cport == 20050]
    assert [(r.host, r.uri) for r in fresh] == [("fresh.example.test", "/fresh")]


def test_a_shed_flow_parses_its_next_request():
    eng, events = engine(cap=50_000)
    c = conv(0)
    feed(eng, list(c.handshake()) + list(c.send(PARTIAL)))
    other = conv(1)
    feed(eng, list(other.handshake()) + list(other.send(PARTIAL)))   # over the cap: flow 0 forgets
    assert [e.flow.cport for e in of(events, "anomaly") if e.body.event == "APPLAYER_MEMCAP"] == [20000]
    feed(eng, list(c.send(b"\r\n\r\nGET /next HTTP/1.1\r\nHost: next.example.test\r\n\r\n")))
    eng.finish()
    urls = [e.body.uri for e in of(events, "http") if e.flow.cport == 20000]
    assert "/next" in urls


def test_a_flow_that_ends_gives_back_what_it_held():
    eng, _ = engine(cap=1 << 40)
    feed(eng, slow_heads(3))
    assert eng.app_memory.held > 0
    eng.finish()
    assert eng.app_memory.held == 0 and len(eng.app_memory) == 0


def test_dns_over_tcp_messages_are_capped_too():
    eng, events = engine()
    query_head = (60_000).to_bytes(2, "big") + b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    held = feed(eng, slow_heads(8, port=53, payload=query_head + b"\x00" * 40_000))
    assert max(held) <= CAP
    shed = [e.body for e in of(events, "anomaly") if e.body.event == "APPLAYER_MEMCAP"]
    assert shed and {a.app_proto for a in shed} == {"dns"}


def test_http2_frames_are_capped_too():
    eng, events = engine()
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    partial = PREFACE + settings + b"\x00\xff\xff\x01\x04\x00\x00\x00\x01" + b"h" * 40_000   # HEADERS, 64 KB
    held = feed(eng, slow_heads(8, payload=partial))
    assert max(held) <= CAP
    shed = [e.body for e in of(events, "anomaly") if e.body.event == "APPLAYER_MEMCAP"]
    assert shed and {a.app_proto for a in shed} == {"http2"}


def test_tls_handshakes_are_capped_too():
    eng, events = engine()
    message = b"\x01\x00\xff\xfc" + b"\x00" * 40_000            # the first 40 KB of a 64 KB ClientHello,
    hello = b"".join(b"\x16\x03\x01\x3f\xfc" + message[i:i + 0x3FFC]   # in records of 16 KB
                     for i in range(0, len(message), 0x3FFC))
    held = feed(eng, slow_heads(8, port=443, payload=hello))
    assert max(held) <= CAP
    shed = [e.body for e in of(events, "anomaly") if e.body.event == "APPLAYER_MEMCAP"]
    assert shed and {a.app_proto for a in shed} == {"tls"}


@pytest.mark.parametrize("make, data, least", [
    (Http1Parser, {TS: PARTIAL, TC: b"HTTP/1.1 200 OK\r\nServer: " + b"s" * 3000}, len(PARTIAL) + 3000),
    (DnsTcpParser, {TS: (900).to_bytes(2, "big") + b"\x00" * 500, TC: (900).to_bytes(2, "big") + b"\x01" * 300},
     800),
    (TlsParser, {TS: b"\x16\x03\x01\x3f\xfc\x01\x00\xff\xfc" + b"\x00" * 9000,         # a 64 KB ClientHello,
                 TC: b"\x16\x03\x03\x00\x40" + b"\x02" * 30}, 9000),                     # partial records
    (SmtpParser, {TC: b"220 hi\r\n250 ok\r\n250 ok\r\n", TS: b"EHLO a\r\nMAIL FROM:<a@b>\r\nDATA\r\n" + b"m" * 5000},
     5000),                                                                            # DATA not answered yet
    (Http2Parser, {TS: PREFACE + b"\x00\x10\x00\x01\x04\x00\x00\x00\x01" + b"h" * 2000,     # HEADERS frames
                   TC: b"\x00\x10\x00\x01\x04\x00\x00\x00\x01" + b"r" * 1000}, 3000),       # of 4 KB, partial
])
def test_each_parser_counts_what_it_holds_and_sheds_all_of_it(make, data, least):
    p = make()
    for d, b in data.items():
        p.feed(d, b, 0.0)
    assert p.held() >= least
    p.shed(1.0)
    assert p.held() == 0
    p.shed(2.0)             # nothing left: shedding again is harmless
    assert p.held() == 0


def test_the_cap_is_a_setting():
    cfg, unknown = EngineConfig.from_sets(["app-layer.memcap=16mb"])
    assert cfg.app_layer_memcap == 16 << 20 and not unknown
    assert EngineConfig().app_layer_memcap == 64 << 20
    with pytest.raises(ConfigError, match="at least"):    # 0 would forget every head in several segments
        EngineConfig.from_sets(["app-layer.memcap=0"])


def test_utm_inspect_counts_the_sheds_in_its_summary(tmp_path):
    from inspection.io.offline import inspect_files
    from tests.unit.engine.test_inspect_cli import write_pcap

    pcap = write_pcap(tmp_path / "slow.pcap", slow_heads(6))
    cfg, _ = EngineConfig.from_sets(["app-layer.memcap=100kb"], EngineConfig(checksum=ChecksumMode.NONE))
    summary = inspect_files([pcap], cfg, tmp_path)
    assert summary.limits["app_layer.memcap_sheds"] >= 3
    assert (tmp_path / "eve.json").read_text().count("APPLAYER_MEMCAP") == summary.limits["app_layer.memcap_sheds"]
