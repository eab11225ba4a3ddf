"""Rule scopes and the IP-only index."""
from __future__ import annotations

import ipaddress
import random

import pytest

from inspection.detect.errors import UnsupportedRule
from inspection.detect.header import Scope, pd_only, scope_of
from inspection.detect.iponly import IpOnlyIndex
from tests.unit.detect._helpers import rule


@pytest.mark.parametrize("header,options,scope", [
    ("alert ip 192.0.2.1 any -> any any", "", Scope.IP_ONLY),
    ("alert tcp [192.0.2.0/24,!192.0.2.9] any -> $HOME_NET any", "", Scope.IP_ONLY),
    ("alert tcp any any -> any 80", "", Scope.PACKET),               # ports make it a packet rule
    ("alert tcp any any -> any any", "flow:established;", Scope.PACKET),
    ("alert tcp any any -> any any", "flags:S;", Scope.PACKET),
    ("alert tcp any any -> any any", 'content:"x";', Scope.PACKET),
    ("alert http any any -> any any", "flow:to_server;", Scope.PACKET),   # app protocol, no buffer
    ("alert http any any -> any any", 'http.uri; content:"x";', Scope.TX),
    ("alert tcp-stream any any -> any any", 'content:"x";', Scope.STREAM),
    ("alert tcp any any -> any any", 'flow:only_stream; content:"x";', Scope.STREAM),
])
def test_scope(header, options, scope):
    assert scope_of(rule(options, header=header)) is scope


@pytest.mark.parametrize("options,keyword", [
    ("stream_size:server,>,10;", "stream_size"),
])
def test_conditions_we_cannot_evaluate_refuse_the_rule(options, keyword):
    with pytest.raises(UnsupportedRule) as e:
        scope_of(rule(options))
    assert e.value.keyword == keyword


def test_index_never_misses_a_rule_that_applies():
    rnd = random.Random(7)
    rules = []
    for i in range(300):
        nets = [f"10.{rnd.randrange(4)}.{rnd.randrange(256)}.0/{rnd.choice([24, 28, 32])}" for _ in range(5)]
        src, dst = ("[" + ",".join(nets) + "]", "any") if i % 3 else ("any", "[" + ",".join(nets) + "]")
        arrow = "<>" if i % 7 == 0 else "->"
        rules.append((i, rule("", sid=i + 1, header=f"alert ip {src} any {arrow} {dst} any")))
    rules.append((300, rule("", sid=301, header="alert ip any any -> any any")))
    index = IpOnlyIndex(rules)
    for _ in range(3000):
        s = ipaddress.IPv4Address(f"10.{rnd.randrange(4)}.{rnd.randrange(256)}.{rnd.randrange(256)}")
        d = ipaddress.IPv4Address(f"10.{rnd.randrange(4)}.{rnd.randrange(256)}.{rnd.randrange(256)}")
        want = {i for i, r in rules
                if (r.src.contains(s) and r.dst.contains(d)) or (r.bidirectional and r.src.contains(d)
                                                                  and r.dst.contains(s))}
        got = index.candidates(4, s.packed, d.packed)
        assert want <= got
        assert len(got) < 30           # and it is an index, not the whole list


def test_ipv6_addresses_use_their_own_map():
    r = rule("", header="alert ip 2001:db8::/32 any -> any any")
    index = IpOnlyIndex([(0, r)])
    assert index.candidates(6, ipaddress.IPv6Address("2001:db8::1").packed, bytes(16)) == {0}
    assert index.candidates(6, ipaddress.IPv6Address("2001:db9::1").packed, bytes(16)) == set()
    assert index.candidates(4, bytes(4), bytes(4)) == set()


@pytest.mark.parametrize("options,expected", [
    ("app-layer-protocol:http,to_server;", True),
    ("flow:to_client; app-layer-protocol:!http;", True),
    ("flowbits:set,x; app-layer-protocol:tls;", True),
    ("flow:established,to_client; app-layer-protocol:tls;", False),   # established is a packet test
    ('app-layer-protocol:tls; content:"x";', False),
    ("app-layer-protocol:tls; dsize:>5;", False),
    ("flowbits:isset,x; app-layer-protocol:tls;", False),
    ("flow:to_server;", False),
])
def test_protocol_only_rules(options, expected):
    assert pd_only(rule(options)) is expected
    assert scope_of(rule(options)) is Scope.PACKET
