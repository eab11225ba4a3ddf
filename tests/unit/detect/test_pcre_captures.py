"""pcre captures (Suricata's pkt/flow/alert vars): parsed from the trailing list or named
groups, kept only when the whole rule matched, and logged as EVE does."""
from __future__ import annotations

import json

import pytest

from firmware.bench.frames import TcpConversation
from firmware.cli.main import main
from signatures.buffers import Buffer
from signatures.errors import RuleError
from signatures.options import parse_pcre

from inspection.detect.engine import Detector
from tests.unit.detect._helpers import result, rule
from tests.unit.engine.test_inspect_cli import write_pcap


def test_trailing_capture_list_is_parsed_and_names_may_hold_slashes():
    m, _ = parse_pcre(r'"/^(\w+) (\d+)/i, flow:ua/name,pkt:ver"')
    assert m.pattern == r"^(\w+) (\d+)" and m.captures == (("flow", "ua/name"), ("pkt", "ver"))
    m, _ = parse_pcre(r'"/a\/b/i"')
    assert m.pattern == r"a\/b" and m.captures == ()
    with pytest.raises(RuleError):
        parse_pcre(r'"/(a)/, flowx:name"')
    with pytest.raises(RuleError):
        parse_pcre(r'"!/(a)/, flow:name"')   # a negated pcre has nothing to capture


def test_captures_come_from_the_match_that_made_the_rule_match():
    # the first "id=" is followed by no "ok": the capture is the second one, where the rule matched
    res, ctx = result(r'content:"id="; pcre:"/(?P<pkt_id>\d+)/R"; content:"ok"; within:4;', b"id=11 no id=22 ok")
    assert res.value == "match" and ctx.captures == [("pkt", "id", b"22")]
    res, ctx = result(r'pcre:"/(?P<alert_x>\d+)/"; content:"zz";', b"123")
    assert res.value == "no_match" and not ctx.captures


def test_detector_returns_captures_with_the_match():
    r = rule(r'pcre:"/^(\w+)\/(\d)/, alert:name, flow:digit"; content:"xyz";')
    (m,) = Detector([r]).inspect({Buffer.PAYLOAD: b"abc/7 xyz"})
    assert m.captures == (("alert", "name", b"abc"), ("flow", "digit", b"7"))


RULES = r'''
alert http any any -> any any (msg:"ua"; http.user_agent; pcre:"/^(?P<alert_ua>[a-zA-Z]+)/"; sid:1;)
alert http any any -> any any (msg:"ver"; http.user_agent; pcre:"/^([a-zA-Z]+)\/(\d+)\.(\d+)/, alert:agent, flow:major, pkt:minor"; sid:2;)
alert http any any -> any any (msg:"never"; http.user_agent; pcre:"/(?P<flow_never>.+)/"; content:"absent"; sid:3;)
'''


def test_vars_on_alerts_end_to_end(tmp_path):
    c = TcpConversation("192.0.2.10", "198.51.100.80", 40003, 80, start=1_700_000_000.0)
    req = b"GET / HTTP/1.1\r\nHost: a.example\r\nUser-Agent: Demo/4.2\r\n\r\n"
    pkts = list(c.handshake()) + list(c.send(req)) + list(c.send(b"HTTP/1.1 204 No\r\n\r\n", from_client=False)) \
        + list(c.close())
    (tmp_path / "t.rules").write_text(RULES)
    rc = main(["inspect", "-q", "-k", "none", "-r", str(write_pcap(tmp_path / "in.pcap", pkts)),
               "-S", str(tmp_path / "t.rules"), "-l", str(tmp_path / "o")])
    assert rc == 0
    alerts = {e["alert"]["signature_id"]: e for e in map(json.loads, (tmp_path / "o" / "eve.json").read_text().splitlines())
              if e["event_type"] == "alert"}
    assert sorted(alerts) == [1, 2]
    assert alerts[1]["alert"]["context"] == {"ua": "Demo"}
    a2 = alerts[2]
    assert a2["alert"]["context"] == {"agent": "Demo"}
    assert a2["metadata"] == {"flowvars": [{"major": "4"}], "pktvars": [{"minor": "2"}]}


def test_flow_vars_are_bounded_per_flow():
    from inspection.detect.vars import MAX_FLOWVARS, keep_vars

    class St:
        flowvars = None
    st = St()
    caps = tuple(("flow", f"v{i}", b"x") for i in range(MAX_FLOWVARS + 5)) + (("pkt", "p", b"y"),)
    assert keep_vars(st, [(0, None, caps)]) == (("p", b"y"),)
    assert len(st.flowvars) == MAX_FLOWVARS
    keep_vars(st, [(0, None, (("flow", "v0", b"new"),))])
    assert st.flowvars["v0"] == b"new"
