"""The HTTP buffers a transaction offers the rules, built once per message from its header lines."""
from __future__ import annotations

from inspection.applayer.http_tx import HttpTransaction
from inspection.detect.txbuffers import http_request_buffers, http_response_buffers
from signatures.buffers import Buffer

HEADERS = (("Host", "Example.TEST"), ("Cookie", "a=1"), ("User-Agent", "ua/1"), ("host", "second"),
           ("X-Name", "caf\u00e9 \u2603"), ("Content-Length", "0"))


def test_request_buffers_follow_the_header_lines():
    tx = HttpTransaction(tx_id=0, method="GET", uri="/a", request_line="GET /a HTTP/1.1", protocol="HTTP/1.1",
                         host="Example.TEST", user_agent="ua/1", request_headers=HEADERS)
    b = http_request_buffers(tx)
    raw = (b"Host: Example.TEST\r\nCookie: a=1\r\nUser-Agent: ua/1\r\nhost: second\r\n"
           b"X-Name: caf\xe9 ?\r\nContent-Length: 0\r\n")
    assert b[Buffer.HTTP_HEADER_RAW] == raw
    assert b[Buffer.HTTP_HEADER] == raw.replace(b"Cookie: a=1\r\n", b"")     # cookies have their own buffer
    assert b[Buffer.HTTP_COOKIE] == b"a=1"
    assert b[Buffer.HTTP_HOST_RAW] == b"Example.TEST"                       # the first of two Host lines
    assert b[Buffer.HTTP_HOST] == b"example.test"
    assert b[Buffer.HTTP_CONTENT_LEN] == b"0"
    assert b[Buffer.HTTP_START] == b"GET /a HTTP/1.1\r\n" + raw + b"\r\n"
    assert Buffer.HTTP_ACCEPT not in b and Buffer.HTTP_CONTENT_TYPE not in b


def test_response_buffers_without_cookies_or_headers():
    tx = HttpTransaction(tx_id=0, status=200, response_line="HTTP/1.1 200 OK",
                         response_headers=(("Server", "s"), ("Set-Cookie", "x"), ("Set-Cookie", "y")))
    b = http_response_buffers(tx)
    assert b[Buffer.HTTP_HEADER] == b"Server: s\r\n"
    assert b[Buffer.HTTP_HEADER_RAW] == b"Server: s\r\nSet-Cookie: x\r\nSet-Cookie: y\r\n"
    assert b[Buffer.HTTP_COOKIE] == b"x" and b[Buffer.HTTP_SERVER] == b"s" and b[Buffer.HTTP_STAT_MSG] == b"OK"
    bare = http_response_buffers(HttpTransaction(tx_id=1, status=204, response_line="HTTP/1.1 204 No Content"))
    assert Buffer.HTTP_HEADER not in bare and Buffer.HTTP_HEADER_RAW not in bare
    assert bare[Buffer.HTTP_START] == b"HTTP/1.1 204 No Content\r\n\r\n"
