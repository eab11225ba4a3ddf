"""Hostile bytes never raise out of the detector: every rule shape, every buffer, any data."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from signatures.buffers import Buffer

from inspection.detect.engine import Detector
from inspection.detect.transforms import apply_transforms

from tests.unit.detect._helpers import rule

HTTP = "alert http any any -> any any"
RULES = [
    rule('content:"|00|"; byte_test:4,>,1000,0,relative,little;', 1),
    rule('content:"L"; byte_jump:2,0,relative,multiplier 2,align,post_offset -3; content:"X"; within:4;', 2),
    rule('byte_jump:1,0,from_end,post_offset -1; isdataat:!1,relative;', 3),
    rule('content:"n="; byte_extract:3,0,n,relative,string,hex; content:"Z"; distance:n; within:2;', 4),
    rule('content:"n="; byte_extract:2,0,m,relative,string,oct,multiplier 3,align 4; isdataat:m,relative;', 5),
    rule('content:"v"; byte_test:10,=,0,0,relative,string,dec; byte_test:1,!^,0x41,-1,relative;', 6),
    rule('pcre:"/(a|b)*c/"; pcre:"/^\\d/R"; content:"x"; distance:-2; within:4;', 7),
    rule('content:"b64,"; base64_decode:bytes 20,relative; base64_data; content:"MZ"; depth:2;', 8),
    rule('http.uri; url_decode; compress_whitespace; content:"/ a"; http.header; header_lowercase; '
         'content:"host:";', 9, HTTP),
    rule('http.uri; xor:"0d0a"; to_sha256; bsize:32; content:"|00|";', 10, HTTP),
    rule('content:"a"; content:"a"; within:1; content:"b"; within:3;', 11),
]
DETECTOR = Detector(RULES, budget=500)
BYTES = st.binary(max_size=200) | st.text(alphabet="aLbXnZv=b64,0123456789 %\n", max_size=200).map(str.encode)


@settings(max_examples=400, deadline=None)
@given(BYTES, BYTES, BYTES)
def test_any_bytes_give_a_result(payload, uri, header):
    buffers = {Buffer.PAYLOAD: payload, Buffer.HTTP_URI: uri, Buffer.HTTP_HEADER: header}
    scan = DETECTOR.scan(buffers)
    assert all(1 <= m.sid <= 11 for m in scan.matches)
    for cut in (len(payload) // 2, 1):
        DETECTOR.scan({Buffer.PAYLOAD: payload[:cut]})


@settings(max_examples=200, deadline=None)
@given(BYTES)
def test_every_transform_accepts_any_bytes(data):
    for r in RULES:
        for b in r.buffers:
            assert isinstance(apply_transforms(data, b.transforms), bytes)
