"""Detector: every block must match, rule-level checks, the header callback, skipped rules."""
from __future__ import annotations

from signatures.buffers import Buffer

from inspection.detect.engine import Detector
from inspection.model import Direction

from tests.unit.detect._helpers import rule

HTTP = "alert http any any -> any any"


def sids(detector: Detector, buffers, **kw) -> list[int]:
    return [m.sid for m in detector.inspect(buffers, **kw)]


def test_all_blocks_must_match():
    d = Detector([rule('http.method; content:"POST"; http.uri; content:"/login";', 1, HTTP)])
    assert sids(d, {Buffer.HTTP_METHOD: b"POST", Buffer.HTTP_URI: b"/login"}) == [1]
    assert sids(d, {Buffer.HTTP_METHOD: b"GET", Buffer.HTTP_URI: b"/login"}) == []
    assert sids(d, {Buffer.HTTP_URI: b"/login"}) == []           # a buffer the rule needs is absent


def test_flow_direction():
    d = Detector([rule('flow:to_server; content:"x";', 1), rule('flow:to_client; content:"x";', 2),
                  rule('content:"x";', 3)])
    buf = {Buffer.PAYLOAD: b"x"}
    assert sids(d, buf, direction=Direction.TO_SERVER) == [1, 3]
    assert sids(d, buf, direction=Direction.TO_CLIENT) == [2, 3]
    assert sids(d, buf) == [1, 2, 3]                              # direction unknown: not checked


def test_dsize_and_urilen():
    d = Detector([rule('dsize:>3; content:"x";', 1), rule('urilen:<5; http.uri; content:"/";', 2, HTTP)])
    assert sids(d, {Buffer.PAYLOAD: b"x123"}) == [1]
    assert sids(d, {Buffer.PAYLOAD: b"x12"}) == []
    assert sids(d, {Buffer.PAYLOAD: b"x12"}, packet_size=10) == [1]
    assert sids(d, {Buffer.HTTP_URI: b"/abc"}) == [2]
    assert sids(d, {Buffer.HTTP_URI: b"/abcd"}) == []


def test_header_check_callback_decides_what_the_detector_cannot():
    rules = [rule('content:"x";', 1), rule('content:"x";', 2, "alert udp any any -> any 53")]
    d = Detector(rules)
    seen = []

    def header(r):
        seen.append(r.sid)
        return r.sid != 2

    assert sids(d, {Buffer.PAYLOAD: b"x"}, header_check=header) == [1]
    assert seen == [1, 2]
    assert sids(d, {Buffer.PAYLOAD: b"y"}, header_check=header) == []
    assert seen == [1, 2]                                         # not a candidate: never asked


def test_rules_without_payload_items_match_on_their_header():
    d = Detector([rule('dsize:0;', 1), rule('flow:established;', 2)])
    assert sids(d, {Buffer.PAYLOAD: b""}) == [1, 2]
    assert sids(d, {Buffer.PAYLOAD: b""}, header_check=lambda r: False) == []


def test_unsupported_rules_are_skipped_with_a_reason_and_never_run():
    rules = [rule('pcre:"/(?R)/";', 1), rule('content:"x";', 2)]
    d = Detector(rules)
    assert [(s.index, s.keyword) for s in d.skipped] == [(0, "pcre")]
    assert "recursion" in d.skipped[0].reason
    assert sids(d, {Buffer.PAYLOAD: b"x"}) == [2]


def test_byte_extract_values_cross_blocks():
    r = rule('http.header; byte_extract:1,0,n,string,dec; http.uri; content:"/"; isdataat:n;', 1, HTTP)
    d = Detector([r])
    assert sids(d, {Buffer.HTTP_HEADER: b"3", Buffer.HTTP_URI: b"/abcd"}) == [1]
    assert sids(d, {Buffer.HTTP_HEADER: b"9", Buffer.HTTP_URI: b"/abcd"}) == []


def test_scan_counts():
    d = Detector([rule('content:"abc";', 1), rule('content:"zzz";', 2), rule('content:!"q";', 3)])
    scan = d.scan({Buffer.PAYLOAD: b"abc"})
    assert [m.sid for m in scan.matches] == [1, 3]
    assert scan.candidates == 2 and scan.exhausted == () and scan.work >= 2
