"""`utm inspect -c suricata.yaml`: the Suricata keys we honour, warnings for the rest,
and the alert X-Forwarded-For handling and IPv6 compression they switch on."""
from __future__ import annotations

import json

import pytest

from firmware.cli.main import main
from inspection.config import EngineConfig, XffConfig
from inspection.config_file import apply_config_file, read_config_file
from inspection.errors import ConfigError
from inspection.output.eve import format_ip, xff_address
from firmware.bench.frames import TcpConversation
from tests.unit.engine.test_inspect_cli import write_pcap

RULE = 'alert http any any -> any any (msg:"body"; file.data; content:"hello"; metadata: k v; sid:1;)\n'
REQ_RULE = 'alert http any any -> any any (msg:"uri"; http.uri; content:"/x"; sid:2;)\n'


def conversation(xff: str | None, v6: bool = False):
    c = TcpConversation("2001:db8::10" if v6 else "192.0.2.10", "2001:db8::80" if v6 else "198.51.100.80",
                        40002, 80, start=1_700_000_000.0)
    req = b"GET /x HTTP/1.1\r\nHost: a.example\r\n" + (b"X-Forwarded-For: " + xff.encode() + b"\r\n" if xff else b"") \
        + b"X-Real-Client: 203.0.113.9\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    return list(c.handshake()) + list(c.send(req)) + list(c.send(resp, from_client=False)) + list(c.close())


def inspect(tmp_path, pkts, conf: str | None, *extra: str, rules: str = RULE):
    pcap = write_pcap(tmp_path / "in.pcap", pkts)
    (tmp_path / "t.rules").write_text(rules)
    argv = ["inspect", "-q", "-k", "none", "-r", str(pcap), "-S", str(tmp_path / "t.rules"), "-l", str(tmp_path / "o")]
    if conf is not None:
        (tmp_path / "suricata.yaml").write_text(conf)
        argv += ["-c", str(tmp_path / "suricata.yaml")]
    rc = main(argv + list(extra))
    events = [json.loads(l) for l in (tmp_path / "o" / "eve.json").read_text().splitlines()]
    return rc, [e for e in events if e["event_type"] == "alert"], events


XFF_CONF = """%YAML 1.1
---
include: ../not/there.yaml
outputs:
  - fast:
      enabled: yes
  - eve-log:
      enabled: yes
      filetype: regular
      types:
        - alert:
            metadata: no
            xff:
              enabled: yes
              mode: {mode}
              deployment: {deployment}
              header: {header}
"""


@pytest.mark.parametrize("mode,deployment,field,want", [
    ("overwrite", "forward", "dest_ip", "192.0.2.1"),     # response alert: the client is the destination
    ("overwrite", "reverse", "dest_ip", "192.0.2.2"),
    ("extra-data", "reverse", "alert.xff", "192.0.2.2"),
])
def test_xff_modes(tmp_path, capsys, mode, deployment, field, want):
    rc, (alert,), _ = inspect(tmp_path, conversation("192.0.2.1, 192.0.2.2"),
                              XFF_CONF.format(mode=mode, deployment=deployment, header="X-Forwarded-For"))
    assert rc == 0
    got = alert["alert"].get("xff") if field == "alert.xff" else alert[field]
    assert got == want
    assert "metadata" not in alert["alert"]     # metadata: no
    err = capsys.readouterr().err
    assert "include ../not/there.yaml: no such file" in err
    assert err.count("unknown setting(s) ignored") == 1 and "outputs.fast" in err and "outputs.eve.filetype" in err


def test_xff_overwrite_to_server_alert_replaces_src_and_custom_header(tmp_path):
    conf = XFF_CONF.format(mode="overwrite", deployment="reverse", header="X-Real-Client")
    rc, (alert,), _ = inspect(tmp_path, conversation(None), conf, rules=REQ_RULE)
    assert rc == 0 and alert["direction"] == "to_server"
    assert alert["src_ip"] == "203.0.113.9" and alert["dest_ip"] == "198.51.100.80"


def test_xff_ignores_an_address_that_is_not_an_ip(tmp_path):
    conf = XFF_CONF.format(mode="overwrite", deployment="forward", header="X-Forwarded-For")
    rc, (alert,), _ = inspect(tmp_path, conversation("unknown, 192.0.2.2"), conf)
    assert alert["dest_ip"] == "192.0.2.10" and "xff" not in alert["alert"]


def test_xff_off_by_default(tmp_path):
    rc, (alert,), _ = inspect(tmp_path, conversation("192.0.2.1"), None)
    assert alert["dest_ip"] == "192.0.2.10" and "xff" not in alert["alert"] and alert["alert"]["metadata"]


def test_ipv6_compress_from_config_and_set(tmp_path):
    _, (a,), events = inspect(tmp_path, conversation(None, v6=True), None)
    assert a["src_ip"] == "2001:0db8:0000:0000:0000:0000:0000:0080"   # Suricata's default: written out in full
    conf = "outputs:\n  - eve-log:\n      ipv6-compress: yes\n"
    _, (a,), events = inspect(tmp_path, conversation(None, v6=True), conf)
    assert a["src_ip"] == "2001:db8::80" and all(e.get("src_ip", "2001:db8::") .startswith("2001:db8::")
                                                  for e in events if e["event_type"] != "stats")
    _, (a,), _ = inspect(tmp_path, conversation(None, v6=True), None, "--set", "outputs.eve.ipv6-compress=yes")
    assert a["dest_ip"] == "2001:db8::10"


def test_set_wins_over_the_file_and_bad_values_exit_2(tmp_path, capsys):
    conf = XFF_CONF.format(mode="overwrite", deployment="forward", header="X-Forwarded-For")
    _, (a,), _ = inspect(tmp_path, conversation("192.0.2.1"), conf, "--set", "outputs.eve.alert.xff.enabled=no")
    assert a["dest_ip"] == "192.0.2.10"
    bad = XFF_CONF.format(mode="sideways", deployment="forward", header="X-Forwarded-For")
    pcap = write_pcap(tmp_path / "in.pcap", conversation(None))
    (tmp_path / "bad.yaml").write_text(bad)
    capsys.readouterr()
    assert main(["inspect", "-q", "-r", str(pcap), "-c", str(tmp_path / "bad.yaml"), "-l", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "outputs.eve.alert.xff.mode" in err and len(err.strip().splitlines()) <= 2 and "Traceback" not in err


def test_not_yaml_and_missing_file_exit_2(tmp_path, capsys):
    pcap = write_pcap(tmp_path / "in.pcap", conversation(None))
    (tmp_path / "c.yaml").write_text("outputs: [unclosed\n")
    for conf in (tmp_path / "c.yaml", tmp_path / "missing.yaml"):
        assert main(["inspect", "-q", "-r", str(pcap), "-c", str(conf), "-l", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML" in err and "cannot read" in err


def test_vars_from_the_config_reach_the_rules(tmp_path):
    conf = "vars:\n  address-groups:\n    HOME_NET: \"[192.0.2.0/24]\"\n  port-groups:\n    HTTP_PORTS: \"[80,8080]\"\n"
    rule = 'alert http $HOME_NET any -> any $HTTP_PORTS (msg:"home"; http.uri; content:"/x"; sid:3;)\n'
    _, alerts, _ = inspect(tmp_path, conversation(None), conf, rules=rule)
    assert [a["alert"]["signature_id"] for a in alerts] == [3]
    _, alerts, _ = inspect(tmp_path, conversation(None), None, rules=rule)   # default HOME_NET: no 192.0.2/24
    assert alerts == []


def test_includes_are_read_in_order_and_bounded(tmp_path):
    (tmp_path / "base.yaml").write_text("stream:\n  midstream: false\n  reassembly:\n    depth: 2mb\n")
    (tmp_path / "top.yaml").write_text("include: base.yaml\nstream:\n  midstream: true\n")
    cfg, cf = apply_config_file(tmp_path / "top.yaml", EngineConfig())
    assert cfg.midstream is True and cfg.stream_depth == 2 << 20 and not cf.warnings
    (tmp_path / "loop.yaml").write_text("include: loop.yaml\n")
    cf = read_config_file(tmp_path / "loop.yaml")
    assert any("levels" in w for w in cf.warnings)


def test_xff_helpers():
    assert xff_address("192.0.2.1, 192.0.2.2", "forward") == "192.0.2.1"
    assert xff_address("192.0.2.1,2001:db8::1", "reverse") == "2001:db8::1"
    assert xff_address("", "reverse") is None and xff_address("a, b", "forward") is None
    assert format_ip(bytes(15) + b"\x01", compress=True) == "::1"
    with pytest.raises(ConfigError):
        XffConfig(mode="both")
    with pytest.raises(ConfigError):
        EngineConfig.from_sets(["outputs.eve.alert.xff.deployment=sideways"])
