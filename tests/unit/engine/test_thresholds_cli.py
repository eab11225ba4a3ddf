"""`utm inspect -S` with threshold and detection_filter rules: how many alerts an operator sees."""
from __future__ import annotations

import json

import pytest

from firmware.bench.frames import TcpConversation
from firmware.cli.main import main
from tests.unit.engine.test_inspect_cli import CLI, SRV, write_pcap

CLI2 = "192.0.2.20"
T0 = 1_700_000_000.0
# (client, seconds after T0): five requests from CLI, two from CLI2, then two from CLI
# again after every 60 s window has passed. Each is its own connection to SRV.
VISITS = [(CLI, 0), (CLI, 1), (CLI, 2), (CLI, 3), (CLI, 4), (CLI2, 5), (CLI2, 6), (CLI, 100), (CLI, 101)]

URI = 'alert http any any -> any any (msg:"m"; http.uri; content:"/index.html"; {} sid:10; rev:1;)'
# several response segments per connection carry the body's x's
BODY = 'alert tcp any 80 -> any any (msg:"m"; content:"xxxxxxxxxx"; {} sid:11; rev:1;)'


def visit(client: str, start: float, port: int) -> list:
    c = TcpConversation(client, SRV, port, 80, start=start)
    req = b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
    body = b"x" * 4000
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    return list(c.handshake()) + list(c.send(req)) + list(c.send(resp, from_client=False)) + list(c.close())


def traffic() -> list:
    pkts = []
    for i, (client, at) in enumerate(VISITS):
        pkts += visit(client, T0 + at, 40001 + i)
    return sorted(pkts, key=lambda p: p[0])


def inspect(tmp_path, rules: str, capsys):
    pcap = write_pcap(tmp_path / "in.pcap", traffic())
    (tmp_path / "t.rules").write_text(rules + "\n")
    rc = main(["inspect", "-r", str(pcap), "-S", str(tmp_path / "t.rules"), "-l", str(tmp_path / "out"),
               "-k", "none"])
    assert rc == 0
    events = [json.loads(line) for line in (tmp_path / "out" / "eve.json").read_text().splitlines()]
    return [e for e in events if e["event_type"] == "alert"], capsys.readouterr().out


@pytest.mark.parametrize("rule, want", [
    # CLI: 2 of its first five, 2 more in its second window; CLI2: 2
    (URI.format("threshold: type limit, track by_src, count 2, seconds 60;"), 6),
    # one destination: every 2nd of the first seven, then the 2nd of the new window
    (URI.format("threshold: type threshold, track by_dst, count 2, seconds 60;"), 4),
    # once per window on the 3rd match: only CLI's first window has three
    (URI.format("threshold: type both, track by_src, count 3, seconds 60;"), 1),
    # after the 3rd: CLI's 4th and 5th
    (URI.format("detection_filter: track by_src, count 3, seconds 60;"), 2),
    # the CLI-SRV pair twice (two windows), the CLI2-SRV pair once
    (URI.format("threshold: type limit, track by_both, count 1, seconds 60;"), 3),
    # one per window for the whole rule
    (BODY.format("threshold: type limit, track by_rule, count 1, seconds 60;"), 2),
    # one per connection, although each connection matches several times
    (BODY.format("threshold: type limit, track by_flow, count 1, seconds 60;"), len(VISITS)),
])
def test_alert_counts(tmp_path, capsys, rule, want):
    alerts, _ = inspect(tmp_path, rule, capsys)
    assert len(alerts) == want


def test_every_match_alerts_without_a_threshold(tmp_path, capsys):
    uri, _ = inspect(tmp_path, URI.format(""), capsys)
    body, _ = inspect(tmp_path, BODY.format(""), capsys)
    assert len(uri) == len(VISITS) and len(body) > len(VISITS)


def test_by_src_alerts_name_their_source(tmp_path, capsys):
    alerts, _ = inspect(tmp_path, URI.format("threshold: type limit, track by_src, count 1, seconds 60;"), capsys)
    assert sorted(a["src_ip"] for a in alerts) == [CLI, CLI, CLI2]
    assert all(a["dest_ip"] == SRV for a in alerts)


def test_held_back_matches_still_set_flowbits(tmp_path, capsys):
    rules = "\n".join([
        'alert http any any -> any any (msg:"get"; http.method; content:"GET"; flowbits:set,seen;'
        ' threshold: type threshold, track by_src, count 100, seconds 60; sid:20; rev:1;)',
        'alert http any any -> any any (msg:"ok after get"; flowbits:isset,seen; http.stat_code; content:"200";'
        ' sid:21; rev:1;)',
    ])
    alerts, _ = inspect(tmp_path, rules, capsys)
    assert [a["alert"]["signature_id"] for a in alerts] == [21] * len(VISITS)


def test_summary_says_how_many_were_held_back(tmp_path, capsys):
    _, out = inspect(tmp_path, URI.format("threshold: type limit, track by_src, count 2, seconds 60;"), capsys)
    assert "alerts: 6 (3 more held back by threshold/detection_filter)" in out
    assert "thresholds_untracked" not in out   # a limit is listed only when it was hit
