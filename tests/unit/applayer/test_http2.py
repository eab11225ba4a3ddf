"""HTTP/2 (h2c) parser: frames, HPACK, streams as HTTP transactions, limits.

Conversations are built here with the `hpack` encoder and a tiny frame
writer; no capture bytes live in the repository.
"""
from __future__ import annotations

import base64
from collections import defaultdict

import hpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspection.applayer import http2 as h2mod
from inspection.applayer.dispatch import AppState, TcpDetector
from inspection.applayer.http2 import PREFACE, Http2Parser, is_h2c_upgrade, probe_http2
from inspection.applayer.http_tx import HttpTransaction
from inspection.model import Anomaly, BodyChunk, Direction
from inspection.output.eve_http import http_to_eve

C, S = Direction.TO_SERVER, Direction.TO_CLIENT
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)
END_STREAM, END_HEADERS, PADDED, PRIO = 0x1, 0x4, 0x8, 0x20


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload


def settings_frame(*pairs: tuple[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(i.to_bytes(2, "big") + v.to_bytes(4, "big") for i, v in pairs))


class Peer:
    """One side's HPACK encoder (its dynamic table lives across blocks, as on the wire)."""

    def __init__(self) -> None:
        self.enc = hpack.Encoder()

    def block(self, headers: list[tuple[str, str]]) -> bytes:
        return self.enc.encode(headers)


def simple_conversation(body: bytes = b"hello world", path: str = "/index.html?q=1") -> list[tuple[Direction, bytes]]:
    cli, srv = Peer(), Peer()
    req = cli.block([(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "WWW.Example.com"),
                     ("user-agent", "demo/2.0"), ("cookie", "a=b")])
    resp = srv.block([(":status", "200"), ("content-type", "text/plain; charset=utf-8"), ("server", "h2test")])
    return [
        (C, PREFACE + settings_frame((3, 100), (4, 65535))),
        (S, settings_frame((3, 128)) + frame(SETTINGS, 1, 0)),
        (C, frame(SETTINGS, 1, 0) + frame(HEADERS, END_HEADERS | END_STREAM, 1, req)),
        (S, frame(HEADERS, END_HEADERS, 1, resp) + frame(DATA, 0, 1, body[:5]) + frame(DATA, END_STREAM, 1, body[5:])),
    ]


def run(conv, cuts=None, parser=None):
    p = parser or Http2Parser()
    out = []
    for i, (d, seg) in enumerate(conv):
        step = cuts[i] if cuts else len(seg) or 1
        for k in range(0, len(seg), step):
            out += p.feed(d, seg[k:k + step], 0.0)
    out += p.close(0.0)
    return out


def key(out) -> tuple:
    """What must not depend on how the bytes were split: records, events, whole bodies."""
    return txs(out), events(out), bodies(out)


def txs(out) -> list[HttpTransaction]:
    return [o for o in out if isinstance(o, HttpTransaction)]


def events(out) -> list[str]:
    return [o.event for o in out if isinstance(o, Anomaly)]


def bodies(out) -> dict:
    b: dict = defaultdict(bytes)
    for o in out:
        if isinstance(o, BodyChunk):
            b[(o.tx_id, o.direction)] += o.data
    return dict(b)


def test_probe_needs_the_whole_preface_from_the_client():
    assert probe_http2(PREFACE + b"\x00", C) is True
    assert probe_http2(PREFACE[:10], C) is None
    assert probe_http2(b"GET / HTTP/1.1\r\n", C) is False
    assert probe_http2(PREFACE, S) is False


def test_stream_becomes_an_http_transaction():
    out = run(simple_conversation())
    (tx,) = txs(out)
    assert (tx.method, tx.uri, tx.normalized_uri, tx.protocol) == ("GET", "/index.html?q=1", "/index.html?q=1", "HTTP/2")
    assert tx.host == "www.example.com" and tx.user_agent == "demo/2.0" and tx.status == 200
    assert tx.content_type == "text/plain" and tx.response_body_len == 11 and tx.complete
    assert ("cookie", "a=b") in tx.request_headers and not any(n.startswith(":") for n, _ in tx.request_headers)
    assert tx.http2 is not None and tx.http2.stream_id == 1
    assert dict(tx.http2.request_settings) == {"SETTINGS_MAX_CONCURRENT_STREAMS": 100,
                                               "SETTINGS_INITIAL_WINDOW_SIZE": 65535}
    assert bodies(out) == {(0, S): b"hello world"}
    assert events(out) == []
    eve = http_to_eve(tx)
    assert eve["protocol"] == "HTTP/2" and eve["url"] == "/index.html?q=1"
    assert eve["http2"]["stream_id"] == 1
    assert eve["http2"]["response"]["settings"] == [{"settings_id": "SETTINGS_MAX_CONCURRENT_STREAMS",
                                                     "settings_value": 128}]


def test_byte_by_byte_equals_whole():
    conv = simple_conversation()
    assert key(run(conv, [1] * len(conv))) == key(run(conv))


def test_continuation_padding_and_priority():
    cli, srv = Peer(), Peer()
    block = cli.block([(":method", "POST"), (":path", "/up"), (":authority", "h"), ("content-type", "application/x")])
    padded = bytes([3]) + (0x80000000).to_bytes(4, "big") + bytes([41]) + block[:4] + b"\0\0\0"
    conv = [(C, PREFACE + frame(HEADERS, PADDED | PRIO, 1, padded) + frame(CONT, 0, 1, block[4:6])
             + frame(CONT, END_HEADERS, 1, block[6:]) + frame(DATA, PADDED | END_STREAM, 1, b"\x02abc\0\0")),
            (S, frame(HEADERS, END_HEADERS | END_STREAM, 1, srv.block([(":status", "204")])))]
    out = run(conv)
    (tx,) = txs(out)
    assert tx.method == "POST" and tx.uri == "/up" and tx.status == 204 and tx.http2.priority == 41
    assert bodies(out) == {(0, C): b"abc"} and tx.request_body_len == 3


def test_interleaved_streams_each_get_their_transaction():
    cli, srv = Peer(), Peer()
    conv = [(C, PREFACE + frame(HEADERS, END_HEADERS | END_STREAM, 1, cli.block([(":method", "GET"), (":path", "/a")]))
             + frame(HEADERS, END_HEADERS | END_STREAM, 3, cli.block([(":method", "GET"), (":path", "/b")]))),
            (S, frame(HEADERS, END_HEADERS, 3, srv.block([(":status", "404")])) + frame(DATA, 0, 3, b"B")
             + frame(HEADERS, END_HEADERS, 1, srv.block([(":status", "200")])) + frame(DATA, END_STREAM, 1, b"A")
             + frame(DATA, END_STREAM, 3, b"B"))]
    out = run(conv)
    got = {t.uri: (t.status, t.http2.stream_id) for t in txs(out)}
    assert got == {"/a": (200, 1), "/b": (404, 3)}
    assert sorted(bodies(out).values()) == [b"A", b"BB"]


def test_rst_stream_ends_the_transaction_with_its_error_code():
    cli = Peer()
    conv = [(C, PREFACE + frame(HEADERS, END_HEADERS, 1, cli.block([(":method", "POST"), (":path", "/x")]))
             + frame(RST, 0, 1, (8).to_bytes(4, "big")))]
    (tx,) = txs(run(conv))
    assert tx.http2.request_error == "CANCEL" and not tx.complete and tx.status is None
    assert http_to_eve(tx)["http2"]["request"]["error_code"] == "CANCEL"


def test_long_data_frame_is_streamed_and_counted():
    cli, srv = Peer(), Peer()
    big = b"Z" * (h2mod.FRAME_CAP + 5000)
    conv = [(C, PREFACE + frame(HEADERS, END_HEADERS | END_STREAM, 1, cli.block([(":method", "GET"), (":path", "/")]))),
            (S, frame(HEADERS, END_HEADERS, 1, srv.block([(":status", "200")])) + frame(DATA, END_STREAM, 1, big))]
    out = run(conv, [1400, 1400])
    assert events(out) == ["long_frame_data"]
    assert bodies(out) == {(0, S): big}
    assert txs(out)[0].response_body_len == len(big)


def test_long_header_frame_is_skipped_not_held():
    conv = [(C, PREFACE + frame(HEADERS, END_HEADERS, 1, b"\x00" * (h2mod.FRAME_CAP + 1)) + frame(PING, 0, 0, b"8bytes!!"))]
    out = run(conv)
    assert "long_frame_data" in events(out) and "invalid_header" in events(out)
    assert txs(out) == []


def test_bad_magic_hpack_garbage_and_wrong_lengths_are_events():
    assert events(run([(C, b"PRI * HTTP/2.1\r\n\r\nSM\r\n\r\n")])) == ["invalid_client_magic"]
    out = run([(C, PREFACE + frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff\xff")
                + frame(WINDOW, 0, 1, b"\0\0") + frame(SETTINGS, 0, 0, b"\0\0\0") + frame(DATA, 0, 0, b"x")
                + frame(DATA, 0, 9, b"x"))])
    assert set(events(out)) == {"invalid_header", "invalid_frame_length", "invalid_frame_header",
                                "invalid_frame_data"}


def test_stream_cap_is_counted(monkeypatch):
    monkeypatch.setattr(h2mod, "MAX_STREAMS", 3)
    cli = Peer()
    payload = PREFACE + b"".join(frame(HEADERS, END_HEADERS, 2 * i + 1, cli.block([(":method", "GET"), (":path", f"/{i}")]))
                                 for i in range(5))
    out = run([(C, payload)])
    assert events(out) == ["too_many_streams"]
    assert len(txs(out)) == 3   # flushed at close, the others never held


def test_reused_stream_id_is_an_event():
    cli = Peer()
    hdr = cli.block([(":method", "GET"), (":path", "/")])
    out = run([(C, PREFACE + frame(HEADERS, END_HEADERS, 1, hdr) + frame(RST, 0, 1, b"\0\0\0\0")
                + frame(HEADERS, END_HEADERS, 1, hdr))])
    assert "stream_id_reuse" in events(out)


def test_push_promise_opens_the_promised_stream():
    cli, srv = Peer(), Peer()
    promised = srv.block([(":method", "GET"), (":path", "/style.css"), (":authority", "h")])
    conv = [(C, PREFACE + frame(HEADERS, END_HEADERS | END_STREAM, 1, cli.block([(":method", "GET"), (":path", "/")]))),
            (S, frame(PUSH, END_HEADERS, 1, (2).to_bytes(4, "big") + promised)
             + frame(HEADERS, END_HEADERS | END_STREAM, 1, srv.block([(":status", "200")]))
             + frame(HEADERS, END_HEADERS, 2, srv.block([(":status", "200")])) + frame(DATA, END_STREAM, 2, b"css"))]
    got = {t.uri: t.http2.stream_id for t in txs(run(conv))}
    assert got == {"/": 1, "/style.css": 2}


def upgrade_tx(settings_value: str = base64.urlsafe_b64encode(b"\x00\x03\x00\x00\x00\x64").decode().rstrip("=")):
    return HttpTransaction(tx_id=0, method="GET", uri="/robots.txt", normalized_uri="/robots.txt",
                           protocol="HTTP/1.1", host="h", status=101,
                           request_headers=(("Host", "h"), ("Connection", "Upgrade, HTTP2-Settings"),
                                            ("Upgrade", "h2c"), ("HTTP2-Settings", settings_value)))


def test_upgrade_request_is_stream_one():
    up = upgrade_tx()
    assert is_h2c_upgrade(up) and not is_h2c_upgrade(HttpTransaction(tx_id=0, status=101))
    srv = Peer()
    p = Http2Parser(upgrade=up, first_tx_id=1)
    out = run([(S, settings_frame() + frame(HEADERS, END_HEADERS, 1, srv.block([(":status", "200")]))
                + frame(DATA, END_STREAM, 1, b"User-agent: *")), (C, PREFACE + settings_frame())], parser=p)
    (tx,) = txs(out)
    assert (tx.tx_id, tx.uri, tx.status, tx.protocol, tx.http2.stream_id) == (1, "/robots.txt", 200, "HTTP/2", 1)
    assert dict(tx.http2.request_settings) == {"SETTINGS_MAX_CONCURRENT_STREAMS": 100}
    assert bodies(out) == {(1, S): b"User-agent: *"}
    assert events(run([], parser=Http2Parser(upgrade=upgrade_tx("!!!")))) == ["invalid_http1_settings"]


def test_detector_switches_an_upgraded_flow_to_http2():
    det = TcpDetector(dns_ports=frozenset({53}), limit=4096, http_body_limit=1 << 20)
    app = AppState()
    srv = Peer()
    req = (b"GET /robots.txt HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
    out = det.feed(app, C, req, 0.0, (40000, 80))
    out += det.feed(app, S, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                    + settings_frame() + frame(HEADERS, END_HEADERS | END_STREAM, 1, srv.block([(":status", "200")])),
                    0.0, (40000, 80))
    assert app.proto == "http2" and app.orig == "http"
    out += det.feed(app, C, PREFACE + settings_frame(), 0.0, (40000, 80))
    recs = txs(out) + txs(app.parser.close(0.0))
    assert [(t.protocol, t.status) for t in recs] == [("HTTP/1.1", 101), ("HTTP/2", 200)]


def test_prior_knowledge_is_detected_from_the_preface():
    det = TcpDetector(dns_ports=frozenset({53}), limit=4096, http_body_limit=1 << 20)
    app = AppState()
    for d, seg in simple_conversation():
        det.feed(app, d, seg, 0.0, (40000, 80))
    assert app.proto == "http2" and isinstance(app.parser, Http2Parser)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_chunking_equals_whole(data):
    conv = simple_conversation(body=b"b" * 300)
    cuts = [data.draw(st.integers(1, len(seg))) for _, seg in conv]
    assert key(run(conv, cuts)) == key(run(conv))


@settings(max_examples=300, deadline=None)
@given(segments=st.lists(st.tuples(st.sampled_from([C, S]), st.binary(max_size=300)), max_size=10),
       preface=st.booleans(), gap=st.booleans())
def test_garbage_never_raises(segments, preface, gap):
    p = Http2Parser(body_limit=64)
    out = p.feed(C, PREFACE, 0.0) if preface else []
    for i, (d, seg) in enumerate(segments):
        out += p.feed(d, seg, 0.0)
        if gap and i == 1:
            out += p.gap(d, 10, 0.0)
    out += p.close(0.0)
    ids = [t.tx_id for t in txs(out)]
    assert len(ids) == len(set(ids))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_garbled_conversation_never_raises(data):
    conv = simple_conversation()
    i = data.draw(st.integers(0, len(conv) - 1))
    d, seg = conv[i]
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(seg) - 1), st.integers(0, 255)), max_size=8))
    mutated = bytearray(seg)
    for pos, value in flips:
        mutated[pos] = value
    conv = conv[:i] + [(d, bytes(mutated))] + conv[i + 1:]
    assert key(run(conv, [3] * len(conv))) == key(run(conv))


@pytest.mark.parametrize("ftype", [PRIORITY, RST, PING, WINDOW, GOAWAY])
def test_short_control_frames_do_not_raise(ftype):
    out = run([(C, PREFACE + frame(ftype, 0, 0 if ftype in (PING, GOAWAY) else 1, b"\x01"))])
    assert txs(out) == []


# -- DNS over HTTP/2 (RFC 8484) ---------------------------------------------------------------

def doh_conversation(get: bool = True) -> list[tuple[Direction, bytes]]:
    from firmware.bench.synth import dns_query, dns_response
    q = dns_query(0, "www.example.org", 1)
    a = dns_response(0, "www.example.org", 1, None, [bytes([192, 0, 2, 7])])
    cli, srv = Peer(), Peer()
    if get:
        path = "/dns-query?dns=" + base64.urlsafe_b64encode(q).decode().rstrip("=")
        req = frame(HEADERS, END_HEADERS | END_STREAM, 1,
                    cli.block([(":method", "GET"), (":path", path), (":authority", "doh.example")]))
    else:
        req = (frame(HEADERS, END_HEADERS, 1, cli.block([(":method", "POST"), (":path", "/dns-query"),
                                                         ("content-type", "application/dns-message")]))
               + frame(DATA, 0, 1, q[:7]) + frame(DATA, END_STREAM, 1, q[7:]))
    resp = srv.block([(":status", "200"), ("content-type", "application/dns-message")])
    return [(C, PREFACE + req), (S, frame(HEADERS, END_HEADERS, 1, resp) + frame(DATA, END_STREAM, 1, a))]


@pytest.mark.parametrize("get", [True, False])
def test_dns_over_http2_messages_are_dns_records(get):
    from inspection.applayer.dns import DnsMessage
    p = Http2Parser()
    out = run(doh_conversation(get), [5, 5], parser=p)
    dns = [o for o in out if isinstance(o, DnsMessage)]
    assert [(m.direction, m.queries[0].rrname, len(m.answers)) for m in dns] == [
        (C, b"www.example.org", 0), (S, b"www.example.org", 1)]
    assert p.doh and {m.tx_id for m in dns} == {txs(out)[0].tx_id}


def test_a_dns_parameter_that_is_not_dns_is_plain_http2():
    cli = Peer()
    p = Http2Parser()
    run([(C, PREFACE + frame(HEADERS, END_HEADERS | END_STREAM, 1,
                             cli.block([(":method", "GET"), (":path", "/x?dns=!!&dns=aGVsbG8")])))], parser=p)
    assert not p.doh


def test_bytes_held_across_open_streams_are_bounded(monkeypatch):
    monkeypatch.setattr(h2mod, "HELD_CAP", 2000)
    cli = Peer()
    frames = b"".join(frame(HEADERS, END_HEADERS, 2 * i + 1,
                            cli.block([(":method", "GET"), (":path", f"/{i}"), ("x-pad", "p" * 300 + str(i))]))
                      for i in range(10))
    p = Http2Parser()
    out = p.feed(C, PREFACE + frames, 0.0)
    assert events(out) == ["too_many_streams"] and p._held <= 2000
    recs = txs(p.close(0.0))
    assert len(recs) == 10 and sum(1 for t in recs if t.uri is None) >= 5   # kept, without their fields
    assert p._held == 0
