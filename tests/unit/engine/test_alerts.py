"""`utm inspect -S`: rules matched on packets and transactions become EVE alerts."""
from __future__ import annotations

import json

from firmware.cli.main import main
from tests.unit.engine.test_inspect_cli import http_conversation, write_pcap

RULES = r'''
alert http any any -> any any (msg:"uri seen"; flow:established,to_server; http.uri; content:"/index.html"; classtype:web-application-attack; sid:1; rev:2;)
alert tcp any any -> any 80 (msg:"payload seen"; content:"User-Agent|3a| demo"; sid:2;)
drop http any any -> any any (msg:"body seen"; file.data; content:"xxxxxxxx"; sid:3;)
alert http any any -> any any (msg:"not there"; http.uri; content:"/nothing"; sid:4;)
alert http any any -> any any (msg:"set"; http.method; content:"GET"; flowbits:set,got; flowbits:noalert; sid:5;)
alert http any any -> any any (msg:"after set"; flowbits:isset,got; http.stat_code; content:"200"; sid:6;)
alert udp any any -> any any (msg:"wrong protocol"; content:"GET"; sid:7;)
alert http any any -> any any (msg:"bad rule"; asn1:oversize_length 1; sid:8;)
'''


def run(tmp_path, capsys):
    pcap = write_pcap(tmp_path / "in.pcap", http_conversation())
    rules = tmp_path / "t.rules"
    rules.write_text(RULES)
    rc = main(["inspect", "-r", str(pcap), "-S", str(rules), "-l", str(tmp_path / "out"), "-k", "none"])
    events = [json.loads(l) for l in (tmp_path / "out" / "eve.json").read_text().splitlines()]
    return rc, events, capsys.readouterr().out


def test_alerts_for_packets_transactions_and_bodies(tmp_path, capsys):
    rc, events, out = run(tmp_path, capsys)
    assert rc == 0
    alerts = [e for e in events if e["event_type"] == "alert"]
    sids = sorted(a["alert"]["signature_id"] for a in alerts)
    assert sids == [1, 2, 3, 6]
    uri = next(a for a in alerts if a["alert"]["signature_id"] == 1)
    assert uri["alert"]["category"] == "Web Application Attack" and uri["alert"]["severity"] == 1
    assert uri["alert"]["rev"] == 2 and uri["alert"]["action"] == "allowed"
    assert uri["http"]["url"] == "/index.html?q=1" and uri["direction"] == "to_server"
    body = next(a for a in alerts if a["alert"]["signature_id"] == 3)
    assert body["alert"]["action"] == "blocked" and body["direction"] == "to_client"
    (flow,) = [e for e in events if e["event_type"] == "flow"]
    assert flow["flow"]["alerted"] is True
    assert "rules: 7 loaded, 1 skipped (asn1=1); alerts: 4" in out


def test_unreadable_rule_file_exits_2(tmp_path, capsys):
    pcap = write_pcap(tmp_path / "in.pcap", http_conversation())
    rc = main(["inspect", "-r", str(pcap), "-S", str(tmp_path / "none.rules"), "-l", str(tmp_path)])
    assert rc == 2 and "none.rules" in capsys.readouterr().err
