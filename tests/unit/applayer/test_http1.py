"""HTTP/1.x parser, content decoding and EVE mapping.

Conversations are written inline as (direction, bytes) segments. The
corpus-marked test replays suricata-verify's http-evader captures (EICAR
hidden behind chunking, encoding and header evasions) when the corpus is
present; no capture bytes live in this repository.
"""
from __future__ import annotations

import gzip
import os
import random
import struct
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspection.applayer.http1 import Http1Parser, HttpTransaction, probe_http
from inspection.applayer.http_decode import ContentDecoder, parse_content_encoding
from inspection.applayer.http_headers import normalize_uri
from inspection.model import Anomaly, AnomalyKind, BodyChunk, Direction
from inspection.output.eve_http import http_to_eve

C, S = Direction.TO_SERVER, Direction.TO_CLIENT
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GAP = "gap"


# -- helpers ---------------------------------------------------------------------


@dataclass
class Result:
    txs: list[HttpTransaction] = field(default_factory=list)
    bodies: dict = field(default_factory=lambda: defaultdict(bytes))
    finals: dict = field(default_factory=dict)   # (tx_id, direction) -> truncated
    events: list = field(default_factory=list)   # (tx_id, event)

    def tx(self, tx_id: int) -> HttpTransaction:
        return next(t for t in self.txs if t.tx_id == tx_id)

    def body(self, tx_id: int, d: Direction = S) -> bytes:
        return self.bodies.get((tx_id, d), b"")

    def names(self) -> list[str]:
        return [e for _, e in self.events]

    def key(self) -> tuple:
        return self.txs, dict(self.bodies), self.finals, sorted(self.events)


def collect(out: list, res: Result | None = None) -> Result:
    res = res or Result()
    for o in out:
        if isinstance(o, HttpTransaction):
            res.txs.append(o)
        elif isinstance(o, BodyChunk):
            assert o.app_proto == "http"
            assert (o.tx_id, o.direction) not in res.finals, "data after the final chunk"
            res.bodies[(o.tx_id, o.direction)] += o.data
            if o.final:
                res.finals[(o.tx_id, o.direction)] = o.truncated
        else:
            assert isinstance(o, Anomaly) and o.kind is AnomalyKind.APPLAYER and o.app_proto == "http"
            res.events.append((o.tx_id, o.event))
    return res


def run(conv, cuts=None, close: bool = True, **kw) -> Result:
    """Feed a conversation; `cuts[i]` splits segment i into pieces of that size."""
    p = Http1Parser(**kw)
    out: list = []
    for i, (d, data) in enumerate(conv):
        if d == GAP:
            out += p.gap(data[0], data[1], 0.0)
            continue
        step = (cuts[i] if cuts else 0) or len(data) or 1
        for j in range(0, len(data), step):
            out += p.feed(d, data[j : j + step], float(i))
    if close:
        out += p.close(99.0)
    return collect(out)


def req(path: str = "/", extra: bytes = b"", method: bytes = b"GET") -> bytes:
    return method + b" " + path.encode() + b" HTTP/1.1\r\nHost: example.com\r\n" + extra + b"\r\n"


def resp(body: bytes = b"hello", extra: bytes = b"", status: bytes = b"200 OK") -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = [b"%x;ext=1\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\nX-Trailer: yes\r\n\r\n"


def raw_deflate(data: bytes) -> bytes:
    co = zlib.compressobj(wbits=-15)
    return co.compress(data) + co.flush()


SIMPLE = [(C, req("/index.html", b"User-Agent: ua/1\r\nReferer: http://ref/\r\nX-Forwarded-For: 1.2.3.4\r\n")),
          (S, resp(b"hello", b"Content-Type: text/html; charset=utf-8\r\nLocation: /next\r\n"))]

# Conversations exercising most paths; used for the chunking-invariance properties.
CONVERSATIONS = {
    "simple": SIMPLE,
    "keepalive": [(C, req("/1")), (S, resp(b"one")), (C, req("/2")), (S, resp(b"two")),
                  (C, req("/3")), (S, resp(b"three"))],
    "pipelined": [(C, req("/a") + req("/b", method=b"HEAD") + req("/c")),
                  (S, resp(b"A" * 10) + b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n" + resp(b"C" * 3))],
    "chunked": [(C, b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"q" * 20)),
                (S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(EICAR))],
    "gzip": [(C, req()), (S, resp(gzip.compress(EICAR * 50), b"Content-Encoding: gzip\r\n"))],
    "layered": [(C, req()), (S, resp(zlib.compress(gzip.compress(EICAR)),
                                     b"Content-Encoding: gzip\r\nContent-Encoding: deflate\r\n"))],
    "continue": [(C, b"POST /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
                 (S, b"HTTP/1.1 100 Continue\r\n\r\n"), (C, b"data"),
                 (S, b"HTTP/1.1 100 Continue\r\n\r\n" + resp(b"ok"))],
    "http09": [(C, b"GET /old\r\n"), (S, b"<html>raw</html>")],
    "missing-protocol": [(C, b"GET /\nFakeHeader\nHost: localhost\nUser-Agent: myscript\n\n"), (S, b"<!DOCTYPE x>\n")],
    "bare-lf-folding": [(C, b"\r\n\r\nGET /f HTTP/1.0\nHost: h\nX-Long: a\n  b\n\n"),
                        (S, b"HTTP/1.0 200 OK\nContent-Type: text/plain\nX-F: 1\n\t2\n\nclose-delimited body")],
    "evasions": [(C, req("/e")),
                 (S, b"\r\n HTTP/1.1 200 ok\rContent-type: x\r\n Transfer-Encoding: chunked\r\n\r\n"
                     + chunked(EICAR, 5) + b"junk after the body\r\n")],
    "connect": [(C, b"CONNECT host:443 HTTP/1.1\r\nHost: host:443\r\n\r\n\x16\x03\x01"),
                (S, b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03")],
    "unmatched": [(S, resp(b"orphan"))],
}


# -- basic transactions ------------------------------------------------------------


def test_simple_get_fields_body_and_eve():
    r = run(SIMPLE)
    (tx,) = r.txs
    assert (tx.tx_id, tx.direction, tx.event_type) == (0, C, "http")
    assert (tx.method, tx.uri, tx.protocol, tx.host, tx.port) == ("GET", "/index.html", "HTTP/1.1", "example.com", None)
    assert (tx.user_agent, tx.referer, tx.xff) == ("ua/1", "http://ref/", "1.2.3.4")
    assert (tx.status, tx.content_type, tx.redirect, tx.response_length) == (200, "text/html", "/next", 5)
    assert tx.request_line == "GET /index.html HTTP/1.1" and tx.response_line == "HTTP/1.1 200 OK"
    assert tx.request_headers[0] == ("Host", "example.com") and tx.complete
    assert r.body(0) == b"hello" and r.finals == {(0, S): False}
    assert r.events == []


def test_body_chunks_carry_filename_from_content_disposition_or_path():
    r = run([(C, req("/dl/a%20b.exe?x=1")), (S, resp(b"MZ"))])
    assert r.txs[0].normalized_uri == "/dl/a b.exe?x=1"
    p = Http1Parser()
    out = p.feed(C, req("/x"), 0) + p.feed(S, resp(b"d", b'Content-Disposition: attachment; filename="e.txt"\r\n'), 0)
    assert {o.filename for o in out if isinstance(o, BodyChunk)} == {"e.txt"}
    p = Http1Parser()
    p.feed(C, req("/dl/file.bin?x=1"), 0)
    chunks = [o for o in p.feed(S, resp(b"data"), 0) if isinstance(o, BodyChunk)]
    assert chunks[0].filename == "/dl/file.bin"
    # a request body is named by the path only (Suricata), its Content-Disposition does not count
    p = Http1Parser()
    out = p.feed(C, req("/up", b'Content-Disposition: attachment; filename="x.txt"\r\nContent-Length: 2\r\n',
                        b"PUT") + b"hi", 0)
    assert [(o.filename, o.method) for o in out if isinstance(o, BodyChunk)] == [("/up", "PUT")]


def test_body_chunks_carry_the_announced_length_only_when_it_is_the_files_size():
    def lengths(response: bytes, cut: int = 0) -> set:
        p = Http1Parser()
        out = p.feed(C, req("/f.bin"), 0)
        step = cut or len(response)
        for i in range(0, len(response), step):
            out += p.feed(S, response[i:i + step], 0)
        return {o.length for o in out if isinstance(o, BodyChunk) and o.data}

    assert lengths(resp(b"x" * 5000), cut=700) == {5000}            # every chunk: the whole body's length
    assert lengths(resp(gzip.compress(b"x" * 5000), b"Content-Encoding: gzip\r\n")) == {None}   # decoded: unknown
    assert lengths(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"x" * 50)) == {None}
    assert lengths(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 50) == {None}


def test_keep_alive_assigns_tx_ids_in_order():
    r = run(CONVERSATIONS["keepalive"])
    assert [(t.tx_id, t.uri, r.body(t.tx_id)) for t in r.txs] == [(0, "/1", b"one"), (1, "/2", b"two"),
                                                                    (2, "/3", b"three")]


def test_transaction_is_logged_when_its_response_completes_and_stray_lines_join_its_body():
    p = Http1Parser()
    p.feed(C, req("/1") + req("/2"), 0)
    first = collect(p.feed(S, resp(b"a"), 0))
    assert [t.uri for t in first.txs] == ["/1"]      # logged at once, as Suricata does
    stray = collect(p.feed(S, b"junk line\r\n", 0))
    assert stray.txs == [] and stray.body(0) == b"junk line\r\n"   # libhtp: joins the finished body
    second = collect(p.feed(S, resp(b"b"), 0))
    assert [t.uri for t in second.txs] == ["/2"]
    assert collect(p.close(1)).txs == []


@pytest.mark.parametrize("response", [b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n",
                                      resp(b"hello", b"Content-Type: text/plain\r\n")])
def test_idle_keep_alive_parser_holds_no_buffers_lists_or_transaction(response):
    # ~100k idle keep-alive flows per box: after an answered request only a
    # stub of the logged transaction may remain (stray lines still join its body).
    p = Http1Parser()
    p.feed(C, req("/idle", b"User-Agent: " + b"u" * 300 + b"\r\n"), 0)
    (tx,) = collect(p.feed(S, response, 0)).txs
    assert tx.uri == "/idle" and tx.complete
    assert p._txs == () and p._awaiting == () and p._out == ()
    for side in p._sides:
        assert side.buf == b"" and not isinstance(side.buf, bytearray)
        assert side.lines == () and side.head_len == 0
        assert side.tx is not None and side.tx.tx_id == tx.tx_id
        assert not hasattr(side.tx, "request_line") and not hasattr(side.tx, "resp_fields")
    assert p._sides[C].tx is p._sides[S].tx
    stray = collect(p.feed(S, b"junk\r\n", 0))
    assert stray.body(0) == b"junk\r\n" and stray.txs == []


def test_bytes_left_unread_are_copied_not_borrowed():
    p = Http1Parser()
    data = bytearray(b"GET /a HT")
    p.feed(C, data, 0)
    data[:] = b"XXXXXXXXX"
    p.feed(C, b"TP/1.1\r\nHost: h\r\n", 0)
    p.feed(C, b"\r\n", 0)
    (tx,) = collect(p.feed(S, resp(b"ok"), 0)).txs
    assert (tx.method, tx.uri, tx.host) == ("GET", "/a", "h")


def test_pipelining_matches_responses_in_order_and_head_has_no_body():
    r = run(CONVERSATIONS["pipelined"])
    assert [(t.method, t.uri, t.status, t.response_length) for t in r.txs] == [
        ("GET", "/a", 200, 10), ("HEAD", "/b", 200, 0), ("GET", "/c", 200, 3)]
    assert r.body(0) == b"A" * 10 and r.body(1) == b"" and r.body(2) == b"CCC"


def test_no_body_statuses_and_close_delimited_body():
    conv = [(C, req("/1") + req("/2") + req("/3")),
            (S, b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"
                b"HTTP/1.0 200 OK\r\n\r\nuntil the end")]
    r = run(conv)
    assert [(t.status, t.response_length) for t in r.txs] == [(204, 0), (304, 0), (200, 13)]
    assert r.body(2) == b"until the end" and r.txs[2].complete


def test_no_body_status_with_framing_headers_has_the_framed_body():
    # libhtp and browsers: a 204/304 that announces a body gets it (an evasion otherwise)
    conv = [(C, req("/1") + req("/2")),
            (S, b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"
                b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")]
    r = run(conv)
    assert [(t.status, t.response_body_len) for t in r.txs] == [(204, 5), (304, 2)]
    assert r.body(0) == b"hello" and r.body(1) == b"hi"


def test_chunked_both_directions_with_extensions_and_trailers():
    r = run(CONVERSATIONS["chunked"])
    (tx,) = r.txs
    assert r.body(0, C) == b"q" * 20 and r.body(0, S) == EICAR
    assert ("X-Trailer", "yes") in tx.response_headers and ("X-Trailer", "yes") in tx.request_headers
    assert tx.request_body_len == 20 and tx.response_body_len == len(EICAR)
    # Suricata's http.length counts the chunk framing (not the trailer section).
    assert tx.response_length == len(chunked(EICAR)) - len(b"X-Trailer: yes\r\n\r\n")
    assert r.events == []


@pytest.mark.parametrize("size_line, expected", [
    (b"00f", EICAR[:15]), (b"F ; name=val", EICAR[:15]), (b"\tf", EICAR[:15]), (b"fx", EICAR[:15]),
])
def test_lenient_chunk_size_lines(size_line, expected):
    body = size_line + b"\r\n" + EICAR[:15] + b"\r\n\r\n0\r\n\r\n"
    r = run([(C, req()), (S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)])
    assert r.body(0) == expected


def test_invalid_chunk_length_falls_back_to_the_raw_stream():
    r = run([(C, req()), (S, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + EICAR)])
    assert r.body(0) == b"zz\r\n" + EICAR
    assert "INVALID_RESPONSE_CHUNK_LEN" in r.names()


# -- content coding -----------------------------------------------------------------


@pytest.mark.parametrize("coding, encode", [
    (b"gzip", gzip.compress), (b"x-gzip", gzip.compress), (b"deflate", zlib.compress),
    (b"deflate", raw_deflate), (b"gzip", raw_deflate), (b"deflate", gzip.compress),
])
def test_single_coding_is_sniffed_and_decoded(coding, encode):
    r = run([(C, req()), (S, resp(encode(EICAR * 3), b"Content-Encoding: " + coding + b"\r\n"))])
    assert r.body(0) == EICAR * 3
    assert r.txs[0].response_length == len(encode(EICAR * 3))   # wire bytes, before decompression


@pytest.mark.parametrize("headers", [b"Content-Encoding: gzip, deflate\r\n",
                                     b"Content-Encoding: gzip\r\nContent-Encoding: deflate\r\n"])
def test_layered_codings_are_undone_in_reverse_order(headers):
    r = run([(C, req()), (S, resp(zlib.compress(gzip.compress(EICAR)), headers))])
    assert r.body(0) == EICAR


def test_decompression_failure_passes_the_raw_bytes_through():
    r = run([(C, req()), (S, resp(b'{"plain": "json, not gzip"}', b"Content-Encoding: gzip\r\n"))])
    assert r.body(0) == b'{"plain": "json, not gzip"}'
    assert "GZIP_DECOMPRESSION_FAILED" in r.names()


def test_layer_limit_and_abnormal_coding_names():
    codings, events = parse_content_encoding(b"gzip, gzip, gzip, gzip, foo", 3)
    assert codings == ["gzip"] * 3 and events == ["TOO_MANY_ENCODING_LAYERS"]
    assert parse_content_encoding(b"identity, gzip_x", 3) == (["gzip"], ["ABNORMAL_CE_HEADER"])


def test_decompress_limit_caps_a_bomb():
    bomb = gzip.compress(b"\0" * (4 << 20))
    r = run([(C, req()), (S, resp(bomb, b"Content-Encoding: gzip\r\n"))], decompress_limit=1 << 20,
            body_limit=8 << 20)
    assert len(r.body(0)) == 1 << 20 and "COMPRESSION_BOMB" in r.names()


def test_decoder_output_does_not_depend_on_chunking_even_when_corrupt():
    data = bytearray(gzip.compress(random.Random(7).randbytes(30000) + EICAR * 500))
    data[20000] ^= 0x55
    outs = []
    for step in (1, 13, 4096, len(data)):
        d = ContentDecoder(["gzip"], limit=1 << 24)
        out = b"".join(d.feed(bytes(data[i : i + step])) for i in range(0, len(data), step)) + d.finish()
        outs.append((out, tuple(d.events)))
    assert len(set(outs)) == 1


# -- interim responses, HTTP/0.9, odd request lines -----------------------------------


def test_100_continue_and_several_interim_responses_belong_to_one_transaction():
    r = run(CONVERSATIONS["continue"])
    (tx,) = r.txs
    assert (tx.status, tx.request_body_len, r.body(0, C), r.body(0)) == (200, 4, b"data", b"ok")


def test_expectation_refused_means_no_request_body():
    conv = [(C, b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
            (S, resp(b"no", status=b"417 Expectation Failed")), (C, req("/next")), (S, resp(b"yes"))]
    r = run(conv)
    assert [(t.uri, t.status, t.request_body_len) for t in r.txs] == [("/f", 417, 0), ("/next", 200, 0)]


def test_http09_request_gets_a_raw_response_and_no_protocol():
    r = run(CONVERSATIONS["http09"])
    (tx,) = r.txs
    assert (tx.method, tx.uri, tx.protocol, tx.http09, tx.status) == ("GET", "/old", None, True, None)
    assert r.body(0) == b"<html>raw</html>" and r.events == []
    assert "protocol" not in http_to_eve(tx)


def test_missing_protocol_with_headers_is_not_http09():
    r = run(CONVERSATIONS["missing-protocol"])
    (tx,) = r.txs
    assert (tx.protocol, tx.http09, tx.user_agent, tx.host) == (None, False, "myscript", "localhost")
    assert r.names() == ["REQUEST_LINE_MISSING_PROTOCOL", "REQUEST_FIELD_MISSING_COLON"]
    assert r.body(0) == b"<!DOCTYPE x>\n"   # a response without status line is body


def test_invalid_protocol_is_flagged_and_still_logged():
    r = run([(C, b"GET /path junk\r\nHost: h\r\n\r\n"), (S, resp(b"x"))])
    assert (r.txs[0].protocol, r.txs[0].status) == ("junk", 200)
    assert "REQUEST_LINE_INVALID" in r.names()


def test_response_without_request():
    r = run(CONVERSATIONS["unmatched"])
    (tx,) = r.txs
    assert (tx.uri, tx.method, tx.status, tx.request_seen, tx.complete) == (None, None, 200, False, False)
    assert r.events == [(0, "UNABLE_TO_MATCH_RESPONSE_TO_REQUEST")]


@pytest.mark.parametrize("line, event", [
    (b"  GET / HTTP/1.1", "REQUEST_LINE_LEADING_WHITESPACE"),
    (b"GET\t/ HTTP/1.1", "METHOD_DELIM_NON_COMPLIANT"),
])
def test_request_line_delimiter_events(line, event):
    assert event in run([(C, line + b"\r\nHost: h\r\n\r\n"), (S, resp())]).names()


def test_header_events():
    conv = [(C, b"POST / HTTP/1.1\r\nBad Name: 1\r\nnocolon\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx"),
            (S, b"HTTP/1.1 2xx OK\r\nContent-Length: 0\r\n\r\n")]
    names = run(conv).names()
    for event in ("REQUEST_HEADER_INVALID", "REQUEST_FIELD_MISSING_COLON",
                  "DUPLICATE_CONTENT_LENGTH_FIELD_IN_REQUEST", "MISSING_HOST_HEADER", "RESPONSE_INVALID_STATUS"):
        assert event in names


def test_host_from_absolute_uri_and_port_from_host_header():
    r = run([(C, b"GET http://Proxy.Example:8080/p?q HTTP/1.1\r\nHost: proxy.example:8080\r\n\r\n"), (S, resp())])
    assert (r.txs[0].host, r.txs[0].port, r.txs[0].normalized_uri) == ("proxy.example", 8080, "/p?q")
    r = run([(C, req("/", b"", b"GET").replace(b"example.com", b"WWW.Example.COM:81")), (S, resp())])
    assert (r.txs[0].host, r.txs[0].port) == ("www.example.com", 81)


def test_lenient_line_endings_folding_and_leading_crlf():
    r = run(CONVERSATIONS["bare-lf-folding"])
    (tx,) = r.txs
    assert ("X-Long", "a b") in tx.request_headers and ("X-F", "1 2") in tx.response_headers
    assert r.body(0) == b"close-delimited body" and tx.content_type == "text/plain"


def test_response_evasions_lone_cr_folded_name_and_trailing_junk():
    r = run(CONVERSATIONS["evasions"])
    assert r.body(0) == EICAR + b"junk after the body\r\n"
    assert r.txs[0].status == 200


def test_junk_before_the_status_line_joins_the_body():
    r = run([(C, req()), (S, b"SIP/2.0 200 ok\r\n" + resp(EICAR))])
    assert EICAR in r.body(0) and r.txs[0].status == 200


# -- tunnels, limits, gaps, close ------------------------------------------------------


def test_connect_success_stops_parsing():
    p = Http1Parser()
    r = collect(p.feed(C, CONVERSATIONS["connect"][0][1], 0) + p.feed(S, CONVERSATIONS["connect"][1][1], 0))
    assert p.tunnel and [(t.method, t.status, t.host, t.port) for t in r.txs] == [("CONNECT", 200, "host", 443)]
    assert p.feed(C, req("/inside"), 0) == [] and p.feed(S, resp(), 0) == [] and p.close(1) == []


def test_refused_connect_and_upgrade():
    r = run([(C, b"CONNECT h:443 HTTP/1.1\r\n\r\n" + req("/after")),
             (S, resp(b"denied", status=b"407 Proxy Auth") + resp(b"fine"))])
    assert [(t.uri, t.status) for t in r.txs] == [("h:443", 407), ("/after", 200)]
    p = Http1Parser()
    p.feed(C, req("/ws", b"Upgrade: websocket\r\n"), 0)
    out = collect(p.feed(S, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello", 0))
    assert p.tunnel and out.txs[0].status == 101


def test_deep_pipelining_is_bounded_but_keeps_responses_paired():
    n = 700   # more open requests than the parser keeps (MAX_PENDING_TX)
    conv = [(C, b"".join(req("/%d" % i) for i in range(n))),
            (S, b"".join(resp(b"%d" % i) for i in range(n)))]
    r = run(conv)
    paired = [t for t in r.txs if t.request_seen and t.response_seen]
    assert paired and all(r.body(t.tx_id) == t.uri[1:].encode() for t in paired)
    assert sum(t.request_seen for t in r.txs) == n and sum(t.response_seen for t in r.txs) == n


def test_header_section_cap_gives_up_on_the_direction():
    p = Http1Parser(max_header_bytes=1024)
    out = p.feed(C, b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 5000, 0)
    out += p.feed(C, b"b" * 100_000, 0) + p.feed(C, b"\r\n\r\n" + req("/later"), 0)
    r = collect(out + p.close(1))
    assert "REQUEST_FIELD_TOO_LONG" in r.names()
    assert [t.complete for t in r.txs] == [False]


def test_body_limit_truncates_output_but_keeps_framing():
    conv = [(C, req("/big") + req("/small")), (S, resp(b"x" * 5000) + resp(b"tail"))]
    r = run(conv, body_limit=1000)
    assert len(r.body(0)) == 1000 and r.finals[(0, S)] is True and r.txs[0].response_body_truncated
    assert r.body(1) == b"tail" and r.txs[1].response_body_len == 4


def test_gap_inside_content_length_body():
    body = b"A" * 70
    conv = [(C, req("/1") + req("/2")), (S, resp(body)[:-40]), (GAP, (S, 14)), (S, body[-26:] + resp(b"next"))]
    r = run(conv)
    assert r.finals[(0, S)] is True and r.txs[0].response_body_truncated
    assert len(r.body(0)) == 56 and r.txs[0].response_body_len == 70
    assert (r.txs[1].uri, r.body(1)) == ("/2", b"next")


def test_gap_in_headers_resyncs_at_the_next_status_line():
    conv = [(C, req("/1") + req("/2")), (S, b"HTTP/1.1 200 OK\r\nContent-Le"), (GAP, (S, 30)),
            (S, b"garbage\r\nmore garbage\r\n" + resp(b"two"))]
    r = run(conv)
    assert [(t.uri, t.status, t.complete) for t in r.txs] == [("/1", 200, False), ("/2", 200, True)]
    assert r.body(1) == b"two"


def test_close_flushes_unfinished_transactions():
    r = run([(C, req("/done") + req("/pending")), (S, resp(b"ok") + b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\npart")])
    assert [(t.uri, t.complete) for t in r.txs] == [("/done", True), ("/pending", False)]
    assert r.body(1) == b"part" and r.finals[(1, S)] is True
    r = run([(C, req("/never-answered"))])
    assert [(t.uri, t.status, t.complete, t.response_seen) for t in r.txs] == [("/never-answered", None, False, False)]


def test_probe():
    assert probe_http(b"GET / HTTP/1.1\r\n", C) is True
    assert probe_http(b"GE", C) is None and probe_http(b"", C) is None
    assert probe_http(b"\x16\x03\x01\x02\x00", C) is False
    assert probe_http(b"HTTP/1.1 200 OK", S) is True and probe_http(b"HTT", S) is None
    assert probe_http(b"SSH-2.0", S) is False


@pytest.mark.parametrize("uri, norm", [
    ("/a/./b/../c", "/a/c"), ("/%7Euser/%41", "/~user/A"), ("/../../etc", "/etc"), ("/x?a=%41", "/x?a=%41"),
    ("http://h/p/../q#frag", "/q"),
])
def test_normalized_uri(uri, norm):
    assert normalize_uri(uri.encode())[0].decode() == norm


def test_double_encoded_uri_event():
    assert "DOUBLE_ENCODED_URI" in run([(C, req("/evil%2527sqli")), (S, resp())]).names()


# -- EVE ----------------------------------------------------------------------------------


def test_http_to_eve_layout_and_omissions():
    r = run(SIMPLE)
    assert http_to_eve(r.txs[0]) == {
        "hostname": "example.com", "url": "/index.html", "http_user_agent": "ua/1", "xff": "1.2.3.4",
        "http_content_type": "text/html", "http_refer": "http://ref/", "http_method": "GET",
        "protocol": "HTTP/1.1", "status": 200, "redirect": "/next", "length": 5,
    }
    eve = http_to_eve(run([(C, b"GET / HTTP/1.0\r\nHost: h:8080\r\n\r\n")]).txs[0], log_headers=True)
    assert eve == {"hostname": "h:8080", "http_port": 8080, "url": "/", "http_method": "GET", "protocol": "HTTP/1.0",
                   "length": 0, "request_headers": [{"name": "Host", "value": "h:8080"}], "response_headers": []}


# -- properties ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_byte_by_byte_equals_whole(name):
    conv = CONVERSATIONS[name]
    whole = run(conv)
    assert run(conv, [1] * len(conv)).key() == whole.key()
    assert whole.txs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(CONVERSATIONS)), data=st.data())
def test_any_chunking_equals_whole(name, data):
    conv = CONVERSATIONS[name]
    cuts = [data.draw(st.integers(1, max(1, len(seg)))) for _, seg in conv]
    assert run(conv, cuts).key() == run(conv).key()


@settings(max_examples=300, deadline=None)
@given(segments=st.lists(st.tuples(st.sampled_from([C, S, GAP]), st.binary(max_size=300)), max_size=12),
       limits=st.sampled_from([{}, {"max_header_bytes": 300, "body_limit": 10}]))
def test_garbage_never_raises(segments, limits):
    conv = [(GAP, (C if len(b) % 2 else S, len(b) + 1)) if d == GAP else (d, b) for d, b in segments]
    r = run(conv, **limits)
    assert all(isinstance(t.tx_id, int) for t in r.txs)
    assert len({t.tx_id for t in r.txs}) == len(r.txs)


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(CONVERSATIONS)), data=st.data())
def test_truncated_and_garbled_conversations_never_raise(name, data):
    conv = list(CONVERSATIONS[name])
    i = data.draw(st.integers(0, len(conv) - 1))
    d, seg = conv[i]
    cut = data.draw(st.integers(0, len(seg)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(0, len(seg) - 1)), st.integers(0, 255)), max_size=8))
    mutated = bytearray(seg[:cut])
    for pos, value in flips:
        if pos < len(mutated):
            mutated[pos] = value
    conv = conv[:i] + [(d, bytes(mutated))]
    whole = run(conv)
    assert run(conv, [3] * len(conv)).key() == whole.key()


TOKENS = [
    b"GET / HTTP/1.1\r\n", b"POST /p HTTP/1.0\r\n", b"HEAD /h HTTP/1.1\r\n", b"CONNECT h:1 HTTP/1.1\r\n",
    b"GET /09\r\n", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 100 Continue\r\n", b"HTTP/1.0 204 x\n", b"HTTP/1.1 101 Up\r\n",
    b"Host: a:1\r\n", b"Content-Length: 5\r\n", b"Content-Length: x\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Content-Encoding: gzip\r\n", b"Content-Encoding: deflate, gzip\r\n", b"Expect: 100-continue\r\n",
    b" folded\r\n", b"\r\n", b"\n", b"\r", b" \r\n", b"5\r\nhello\r\n", b"0\r\n\r\n", b"zz\r\n", b"hello",
    gzip.compress(EICAR), raw_deflate(EICAR), b"\x00", b"HTTP/", b"junk\r\n",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv=st.lists(st.tuples(st.sampled_from([C, S]), st.lists(st.sampled_from(TOKENS), min_size=1, max_size=8)
                               .map(b"".join)), max_size=8),
       gap=st.none() | st.tuples(st.integers(0, 7), st.sampled_from([C, S]), st.integers(1, 40)),
       data=st.data())
def test_token_soup_is_deterministic_and_stays_in_the_state_table(conv, gap, data):
    if gap is not None and gap[0] <= len(conv):
        conv = conv[: gap[0]] + [(GAP, (gap[1], gap[2]))] + conv[gap[0] :]
    cuts = [data.draw(st.integers(1, 8)) for _ in conv]
    whole = run(conv, body_limit=64, max_header_bytes=300)
    assert run(conv, cuts, body_limit=64, max_header_bytes=300).key() == whole.key()
    assert "PARSER_STATE_ERROR" not in whole.names()


# -- suricata-verify http-evader replay (needs ../shared/corpus) ----------------------------

CORPUS = Path(os.environ.get("UTM_CORPUS", Path(__file__).resolve().parents[4] / "shared" / "corpus"))
EVADER = CORPUS / "suricata-verify" / "tests" / "http-evader"


def _tcp_streams(path: Path) -> list[tuple[Direction, bytes]]:
    """Ordered TCP payload of an Ethernet/IPv4 capture of one connection (retransmissions dropped)."""
    from inspection.io.pcap import read_frames

    segments, nxt, client = [], {}, None
    for frame in read_frames(path):
        d = frame.data
        if frame.linktype != 1 or d[12:14] != b"\x08\x00" or d[23] != 6:
            continue
        ihl = (d[14] & 15) * 4
        t = 14 + ihl
        sport, seq, flags = struct.unpack_from(">H", d, t)[0], struct.unpack_from(">I", d, t + 4)[0], d[t + 13]
        payload = d[t + (d[t + 12] >> 4) * 4 : 14 + struct.unpack_from(">H", d, 16)[0]]
        if flags & 0x02:
            client = client if client is not None or flags & 0x10 else sport
            nxt[sport] = (seq + 1) & 0xFFFFFFFF
            continue
        start = nxt.setdefault(sport, seq)
        skip = (start - seq) & 0xFFFFFFFF
        if skip < len(payload):
            segments.append((C if sport == client else S, payload[skip:]))
            nxt[sport] = (seq + len(payload)) & 0xFFFFFFFF
    return segments


@pytest.mark.corpus
@pytest.mark.skipif(not EVADER.is_dir(), reason="no suricata-verify corpus")
def test_http_evader_cases_reveal_eicar():
    cases = sorted(p for p in EVADER.iterdir() if (p / "input.pcap").is_file())
    assert cases
    missed = []
    for n, case in enumerate(cases):
        conv = _tcp_streams(case / "input.pcap")
        r = run(conv, lzma=True)
        if not any(EICAR in body for (_, d), body in r.bodies.items() if d is S):
            missed.append(case.name)
        if n % 25 == 0:   # a sample also byte-by-byte
            assert run(conv, [1] * len(conv), lzma=True).key() == r.key(), case.name
    assert missed == []


def test_short_compressed_body_is_decoded_before_its_transaction_is_logged():
    # detection pairs a body with its transaction: the decoded bytes must not wait for the next message
    p = Http1Parser()
    p.feed(C, req("/z"), 0.0)
    out = p.feed(S, resp(gzip.compress(EICAR), extra=b"Content-Encoding: gzip\r\n"), 0.0)
    kinds = [(type(o).__name__, getattr(o, "data", None)) for o in out]
    assert kinds == [("BodyChunk", EICAR), ("HttpTransaction", None)]


def test_request_path_is_known_before_the_request_head_ends():
    # a response may start (and be a file named by the path) while request headers still arrive
    p = Http1Parser()
    p.feed(C, b"GET /dl/a.bin?x=1 HTTP/1.1\r\nHost: h\r\nX-Slow: ", 0.0)
    out = p.feed(S, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 0.0)
    assert [o.filename for o in out if isinstance(o, BodyChunk)] == ["/dl/a.bin"]


def test_head_after_junk_names_the_body():
    p = Http1Parser()
    p.feed(C, req("/path"), 0.0)
    out = p.feed(S, b"SIP/2.0 200 ok\r\nHTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename=\"e.txt\"\r\n"
                    b"Content-Length: 4\r\n\r\ndata", 0.0)
    names = [(o.data, o.filename) for o in out if isinstance(o, BodyChunk)]
    assert names == [(b"SIP/2.0 200 ok\r\n", "/path"), (b"data", "e.txt")]
