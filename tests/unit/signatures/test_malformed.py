"""Rules Suricata refuses (MalformedRule) or that we cannot honour (UnsupportedRule), with the keyword named."""
from __future__ import annotations

import pytest

from signatures.errors import MalformedRule, RuleError, UnsupportedRule
from signatures.parser import parse_rule
from tests.unit.signatures._helpers import rule_text

HTTP = "alert http any any -> any any"


@pytest.mark.parametrize("text, keyword", [
    # header
    ('alert tcp any any -> any (msg:"x"; sid:1;)', "header"),
    ('alert tcp any any any any any (msg:"x"; sid:1;)', "direction"),
    ('alert tcp any any <- any any (msg:"x"; sid:1;)', "direction"),
    ('bogus tcp any any -> any any (msg:"x"; sid:1;)', "action"),
    ('alert tcp !any any -> any any (msg:"x"; sid:1;)', "address"),
    ('alert tcp 1.2.3.999 any -> any any (msg:"x"; sid:1;)', "address"),
    ('alert tcp [1.2.3.4 any -> any any (msg:"x"; sid:1;)', "header"),
    ('alert tcp $NOPE any -> any any (msg:"x"; sid:1;)', "variable"),
    ('alert tcp $HTTP_PORTS any -> any any (msg:"x"; sid:1;)', "variable"),
    ('alert tcp any 70000 -> any any (msg:"x"; sid:1;)', "port"),
    ('alert tcp any 90:80 -> any any (msg:"x"; sid:1;)', "port"),
    ('alert tcp any !any -> any any (msg:"x"; sid:1;)', "port"),
    ('alert tcp any any -> any any msg:"x"; sid:1;', "rule"),
    ('alert tcp any any -> any any (msg:"x"; sid:1;) trailing', "rule"),
    # required options
    ('alert tcp any any -> any any (sid:1;)', "msg"),
    ('alert tcp any any -> any any (msg:"x"; sid:1; app-layer-protocol:http,sideways;)', "app-layer-protocol"),
    ('alert tcp any any -> any any (msg:"x";)', "sid"),
    ('alert tcp any any -> any any (msg:"x"; sid:0;)', "sid"),
    ('alert tcp any any -> any any (msg:"x"; sid:abc;)', "sid"),
    ('alert tcp any any -> any any (msg:"x"; sid:1; sid:2;)', "sid"),
    ('alert tcp any any -> any any (msg:x; sid:1;)', "msg"),
    ('alert tcp any any -> any any (msg:"a;b"; sid:1;)', "rule"),
    ('alert tcp any any -> any any (msg:"x"; sid:1; priority:0;)', "priority"),
    ('alert tcp any any -> any any (msg:"x"; sid:1; classtype:no-such-class;)', "classtype"),
    ('alert tcp any any -> any any (msg:"x"; sid:1; BAD KEY:1;)', "rule"),
])
def test_malformed_header_and_rule_options(text, keyword):
    with pytest.raises(MalformedRule) as e:
        parse_rule(text)
    assert e.value.keyword == keyword


@pytest.mark.parametrize("options, keyword", [
    # content syntax
    ('content:abc;', "content"),
    ('content:"";', "content"),
    ('content:"|41 4|";', "content"),
    ('content:"|4G|";', "content"),
    ('content:"|41";', "content"),
    (r'content:"a\xb";', "content"),
    ('content:"a"b";', "content"),
    ('uricontent:"";', "uricontent"),
    # modifiers without / with the wrong content
    ('nocase;', "nocase"),
    ('depth:4;', "depth"),
    ('content:"a"; nocase; nocase;', "nocase"),
    ('content:"a"; depth:x;', "depth"),
    ('content:"abcd"; depth:3;', "depth"),
    ('content:"abcd"; within:3;', "within"),
    ('content:"a"; content:"abcd"; within:-1;', "within"),
    ('content:"a"; depth:-1;', "depth"),
    ('content:"a"; depth:5; distance:0;', "distance"),
    ('content:"a"; within:5; offset:1;', "offset"),
    ('content:"a"; startswith; depth:5;', "depth"),
    ('content:"a"; distance:0; startswith;', "startswith"),
    ('content:"a"; nocase:1;', "nocase"),
    # fast_pattern
    ('content:"a"; fast_pattern; content:"b"; fast_pattern;', "fast_pattern"),
    ('content:!"a"; fast_pattern:only;', "fast_pattern"),
    ('content:"a"; content:!"b"; distance:0; fast_pattern;', "fast_pattern"),
    ('content:!"abc"; fast_pattern; depth:5;', "depth"),
    ('content:"abc"; fast_pattern:only; offset:1;', "offset"),
    ('content:"abc"; fast_pattern:2,5;', "fast_pattern"),
    ('content:"abc"; fast_pattern:boo;', "fast_pattern"),
    # pcre
    ('pcre:"x";', "pcre"),
    ('pcre:"/x/Rq";', "pcre"),
    ('pcre:"//";', "pcre"),
    ('pcre:"/x/R";', "pcre"),
    ('pcre:"/x/UH";', "pcre"),
    ('pcre:"/x/BU";', "pcre"),
    # isdataat / byte_*
    ('isdataat:abc;', "isdataat"),
    ('isdataat:1,sideways;', "isdataat"),
    ('byte_test:1,<,4;', "byte_test"),
    ('byte_test:9,<,4,0;', "byte_test"),
    ('byte_test:1,?,4,0;', "byte_test"),
    ('byte_test:2,=,nope,0;', "byte_test"),
    ('byte_test:1,=,1,0,hex;', "byte_test"),
    ('byte_test:1,=,1,0,big,little;', "byte_test"),
    ('byte_jump:2;', "byte_jump"),
    ('byte_jump:2,0,from_beginning,from_end;', "byte_jump"),
    ('byte_extract:2,0;', "byte_extract"),
    ('byte_extract:2,0,v; byte_extract:2,0,v;', "byte_extract"),
    ('base64_decode:bytes -1;', "base64_decode"),
    ('base64_data; content:"x";', "base64_data"),
    # buffers and their constraints
    ('bsize:10;', "bsize"),
    ('dsize:4; content:"abcdef";', "dsize"),
    ('dotprefix; content:"a";', "dotprefix"),
    ('dns.query; xor:"abc"; content:"a";', "xor"),
    ('dsize:1; dsize:2;', "dsize"),
    ('dsize:abc;', "dsize"),
    ('dsize:10<>5;', "dsize"),
    # rule-level options
    ('flow:established,not_established;', "flow"),
    ('flow:to_server,to_client;', "flow"),
    ('flow:sideways;', "flow"),
    ('flow:established; flow:to_server;', "flow"),
    ('flowbits:set;', "flowbits"),
    ('flowbits:frob,x;', "flowbits"),
    ('flowbits:set,a|b;', "flowbits"),
    ('flowbits:isset,a|b&c;', "flowbits"),
    ('xbits:set,x;', "xbits"),
    ('flowint:x;', "flowint"),
    ('threshold:type limit, track by_src, count 1;', "threshold"),
    ('threshold:type sometimes, track by_src, count 1, seconds 5;', "threshold"),
    ('threshold:type limit, track by_moon, count 1, seconds 5;', "threshold"),
    ('threshold:type limit, track by_src, count 0, seconds 5;', "threshold"),
    ('threshold:type limit, track by_src, count 1, seconds 5; detection_filter:track by_src, count 1, seconds 5;',
     "detection_filter"),
    ('target:both;', "target"),
    ('reference:nocomma;', "reference"),
    ('urilen:5,weird;', "urilen"),
    ('flags:Q;', "flags"),
    ('stream_size:server,~,5;', "stream_size"),
    ('ip_proto:notaproto;', "ip_proto"),
    ('noalert:1;', "noalert"),
    ('app-layer-event:a b;', "app-layer-event"),
])
def test_malformed_payload_options(options, keyword):
    with pytest.raises(MalformedRule) as e:
        parse_rule(rule_text(options))
    assert e.value.keyword == keyword, e.value


@pytest.mark.parametrize("options, header, keyword", [
    ('http.uri; content:"x"; http_uri;', HTTP, "http_uri"),  # same buffer: harmless
])
def test_accepted_edge_cases(options, header, keyword):
    parse_rule(rule_text(options, header))


@pytest.mark.parametrize("options, header, keyword", [
    ('http.host; content:"Evil.com";', HTTP, "http.host"),
    ('pcre:"/Evil/W";', HTTP, "pcre"),
    ('http.uri; content:"a"; content:"b"; http_header;', HTTP, "http_header"),
    ('content:"a"; http_uri; http_header;', HTTP, "http_header"),
    ('http.uri; pcre:"/x/H";', HTTP, "pcre"),
    ('http.uri; uricontent:"x";', HTTP, "uricontent"),
    ('http.uri; content:"x";', "alert dns any any -> any any", "protocol"),
    ('http.uri; content:"x"; tls.sni; content:"y";', "alert tcp any any -> any any", "protocol"),
    ('http.uri; bsize:3; content:"abcd";', HTTP, "bsize"),
    ('http.uri; bsize:1; bsize:2;', HTTP, "bsize"),
    ('tls.version:9.9;', "alert tls any any -> any any", "tls.version"),
])
def test_malformed_in_context(options, header, keyword):
    with pytest.raises(MalformedRule) as e:
        parse_rule(rule_text(options, header))
    assert e.value.keyword == keyword, e.value


@pytest.mark.parametrize("text, keyword", [
    ('alert foo any any -> any any (msg:"x"; sid:1;)', "protocol"),
    (rule_text('asn1:oversize_length 100;'), "asn1"),
    (rule_text('ftpbounce;'), "ftpbounce"),
    (rule_text('byte_math:bytes 2, offset 0, oper +, rvalue 1, result x;'), "byte_math"),
    (rule_text('lua:script.lua;'), "lua"),
    (rule_text('completely_new_keyword:1;'), "completely_new_keyword"),
    (rule_text('threshold:type backoff, track by_flow, count 1, seconds 1;'), "threshold"),
])
def test_unsupported(text, keyword):
    with pytest.raises(UnsupportedRule) as e:
        parse_rule(text)
    assert e.value.keyword == keyword
    assert isinstance(e.value, RuleError) and e.value.reason
