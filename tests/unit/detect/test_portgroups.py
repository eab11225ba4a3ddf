"""The port index only ever narrows candidates to rules that may apply."""
from __future__ import annotations

import random

from inspection.detect.header import L4_PROTOS
from inspection.detect.portgroups import PortGroups
from tests.unit.detect._helpers import rule

HEADERS = ["alert tcp any any -> any 80", "alert tcp any 3389 -> any any", "alert udp any any -> any 53",
           "alert tcp any any <> any [8000:8010]", "alert ip any any -> any any", "alert tcp any any -> any !80",
           "alert tcp any 1024: -> any 445", "alert icmp any any -> any any", "alert tcp any any -> any any"]


def test_narrowing_keeps_every_rule_whose_ports_match():
    rules = [(i, rule('content:"x";', sid=i + 1, header=h)) for i, h in enumerate(HEADERS)]
    groups = PortGroups((i, r, frozenset(L4_PROTOS[r.protocol]) if r.protocol in L4_PROTOS else None)
                        for i, r in rules)
    everything = {i for i, _ in rules}
    rnd = random.Random(3)
    for _ in range(2000):
        proto = rnd.choice([6, 17, 1])
        sport, dport = rnd.choice([80, 53, 3389, 445, 8005, 40000]), rnd.choice([80, 53, 3389, 445, 8005, 40000])
        got = groups.narrow(set(everything), proto, sport, dport)
        for i, r in rules:
            l4 = L4_PROTOS.get(r.protocol)
            if l4 is not None and proto not in l4:
                assert i not in got
                continue
            fits = r.src_ports.contains(sport) and r.dst_ports.contains(dport)
            fits |= r.bidirectional and r.src_ports.contains(dport) and r.dst_ports.contains(sport)
            if fits:
                assert i in got, (HEADERS[i], proto, sport, dport)
    # UDP between two ephemeral ports: only the `ip any` rule can apply
    assert groups.narrow(set(everything), 17, 40000, 40000) == {4}


def test_wide_port_specs_are_tested_not_waved_through():
    """`1024:` and `!80` cover too many ports to index; they must still drop out
    for packets whose ports they exclude (DNS packets and ET's P2P rules)."""
    hdrs = ["alert udp any 1024: -> any 1024:", "alert tcp any any -> any !80", "alert udp any any <> any 1024:"]
    rules = [(i, rule('content:"x";', sid=i + 1, header=h)) for i, h in enumerate(hdrs)]
    groups = PortGroups((i, r, frozenset(L4_PROTOS[r.protocol])) for i, r in rules)
    assert groups.narrow({0, 1, 2}, 17, 40000, 53) == {2}       # the bidirectional one fits the reply way
    assert groups.narrow({0, 1, 2}, 17, 53, 53) == set()
    assert groups.narrow({0, 1, 2}, 17, 40000, 40001) == {0, 2}
    assert groups.narrow({0, 1, 2}, 6, 40000, 80) == set() and groups.narrow({1}, 6, 40000, 81) == {1}


def test_ip_proto_narrows_like_a_header_protocol():
    from inspection.detect.engine import Detector
    det = Detector([rule("ip_proto:41;", sid=1, header="alert ip any any -> any any"),
                    rule("flags:S;", sid=2, header="alert tcp any any -> any any")])
    assert det.packet_candidates(b"", (6, 40000, 80)) == {1}     # only the TCP rule (index 1) for TCP packets
    assert det.packet_candidates(b"", (41, 0, 0)) == {0}


def test_cached_port_classes_answer_as_a_fresh_computation():
    """The group is cached per port class (named ports, and the segments between wide
    specs' bounds): any port must get what computing its group afresh gives."""
    hdrs = [*HEADERS, "alert udp any 1024: -> any 1024:", "alert tcp any any -> any [1000:1100,!1050]",
            "alert tcp any ![1:1023] <> any 25"]
    rules = [(i, rule('content:"x";', sid=i + 1, header=h)) for i, h in enumerate(hdrs)]
    groups = PortGroups((i, r, frozenset(L4_PROTOS[r.protocol]) if r.protocol in L4_PROTOS else None)
                        for i, r in rules)
    edges = [0, 1, 24, 25, 26, 52, 53, 79, 80, 81, 999, 1000, 1023, 1024, 1025, 1049, 1050, 1051, 1100, 1101,
             3389, 7999, 8000, 8010, 8011, 40000, 65535]
    rnd = random.Random(5)
    ports = edges + [rnd.randrange(65536) for _ in range(300)]
    for _ in range(3000):
        proto, sport, dport = rnd.choice([6, 17, 1, 41]), rnd.choice(ports), rnd.choice(ports)
        assert groups.group(proto, sport, dport).allowed == groups._allowed(proto, sport, dport), (proto, sport, dport)
    assert groups.cache_resets == 0
