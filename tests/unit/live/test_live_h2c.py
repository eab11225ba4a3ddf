"""HTTP/2 in cleartext on the live path: a blocked URL category is stopped at the request's
HEADERS frame, as an HTTP/1 request is at its head, not when the stream is logged."""
from __future__ import annotations

from firmware.bench.frames import TcpConversation
from inspection.applayer.http2 import PREFACE
from inspection.io.nfqueue import Verdict
from inspection.policy.tcpreset import parse_tcp
from inspection.policy.verdict import PolicyConfig
from tests.unit.applayer.test_http2 import DATA, END_HEADERS, END_STREAM, HEADERS, SETTINGS, Peer, frame, \
    settings_frame
from tests.unit.live.test_live_enforce import judges, make   # noqa: F401 - judges is a fixture
from tests.unit.live.test_live_worker import CLI_PORT, SRV_PORT, queued


def h2c(host: str, port: int = 40500, *, upgrade: bool = False):
    """A prior-knowledge (or Upgrade: h2c) GET to `host`, its response streamed after the request."""
    c = TcpConversation("192.0.2.10", "192.0.2.20", port, 80)
    cli, srv = Peer(), Peer()
    frames = list(c.handshake())
    if upgrade:
        frames += c.send(b"GET /up HTTP/1.1\r\nHost: www.example.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                         b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
        frames += c.send(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                         + settings_frame((3, 128)), from_client=False)
        frames += c.send(PREFACE + settings_frame((3, 100)))
        sid = 3
    else:
        frames += c.send(PREFACE + settings_frame((3, 100), (4, 65535)))
        frames += c.send(settings_frame((3, 128)) + frame(SETTINGS, 1, 0), from_client=False)
        sid = 1
    req = cli.block([(":method", "GET"), (":path", "/login"), (":scheme", "http"), (":authority", host)])
    frames += c.send(frame(SETTINGS, 1, 0) + frame(HEADERS, END_HEADERS | END_STREAM, sid, req))
    resp = srv.block([(":status", "200"), ("content-type", "text/html")])
    frames += c.send(frame(HEADERS, END_HEADERS, sid, resp) + frame(DATA, END_STREAM, sid, b"<html>login</html>"),
                     from_client=False)
    return queued(frames)


def _request(pkts):
    """The client's last data segment: the one with the request's HEADERS frame."""
    return [p for p in pkts if parse_tcp(p.payload).payload_len and p.physin == CLI_PORT][-1]


def test_a_blocked_category_over_h2c_is_stopped_at_the_request_headers(judges):
    pkts = h2c("phish.example.test")
    w, q, sender, evs = make(judges, packets=pkts)
    req = _request(pkts)
    verdicts = {v.packet_id: v for v in q.sent}
    # the HEADERS frame itself is stopped: the server never sees the request
    assert verdicts[req.packet_id].verdict is Verdict.REPEAT
    assert verdicts[req.packet_id].mark == PolicyConfig().block_mark
    # an HTTP/2 client would not read an HTTP/1.1 block page: both ends are reset instead
    assert w.counters.block_pages_sent == 0
    assert sorted(ifx for ifx, _ in sender.frames) == [CLI_PORT, SRV_PORT]
    assert all(parse_tcp(f[14:]).flags & 0x04 for _, f in sender.frames)
    alerts = [e["alert"] for e in evs if e["event_type"] == "alert"]
    assert [(a["action"], a["category"]) for a in alerts] == [("blocked", "phishing")]   # once, not twice
    # what the server answers after the block is dropped, never reaches the client
    assert all(verdicts[p.packet_id].verdict is Verdict.DROP for p in pkts if p.packet_id > req.packet_id
               and parse_tcp(p.payload).payload_len)


def test_a_blocked_category_after_an_h2c_upgrade_is_stopped_at_its_stream(judges):
    pkts = h2c("phish.example.test", 40501, upgrade=True)
    w, q, sender, evs = make(judges, packets=pkts)
    req = _request(pkts)
    assert {v.packet_id: v.verdict for v in q.sent}[req.packet_id] is Verdict.REPEAT
    alerts = [e["alert"] for e in evs if e["event_type"] == "alert"]
    assert [(a["action"], a["category"]) for a in alerts] == [("blocked", "phishing")]


def test_an_allowed_h2c_request_passes_and_is_looked_up_once(judges):
    pkts = h2c("www.example.test", 40502)
    w, q, sender, evs = make(judges, packets=pkts)
    assert all(v.verdict is Verdict.ACCEPT for v in q.sent) and not sender.frames
    w.engine.finish()
    assert w.engine.urlcat.counters.lookups == 1       # the head's look-up is not counted twice
