"""Protocol per direction (Suricata's app_proto_ts/app_proto_tc), `app-layer-protocol`
modes, and protocol-only rules that run once, on the packet that learns the protocol."""
from __future__ import annotations

import json

from firmware.bench.frames import TcpConversation
from firmware.cli.main import main
from tests.unit.engine.test_inspect_cli import write_pcap

CLI, SRV = "192.0.2.10", "198.51.100.22"


def http_to_ssh():
    c = TcpConversation(CLI, SRV, 40010, 22, start=1_700_000_000.0)
    return (list(c.handshake()) + list(c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
            + list(c.send(b"SSH-2.0-OpenSSH_6.6.1\r\n", from_client=False))
            + list(c.send(b"Protocol mismatch.\n", from_client=False))
            + list(c.send(b"bye\n", from_client=False)) + list(c.close()))


def ssh_session():
    c = TcpConversation(CLI, SRV, 40011, 2222, start=1_700_000_000.0)
    return (list(c.handshake()) + list(c.send(b"SSH-2.0-OpenSSH_6.6.1\r\n", from_client=False))
            + list(c.send(b"SSH-2.0-PuTTY_Release_0.60\r\n")) + list(c.send(b"\x00\x00\x01\x2c" + bytes(296)))
            + list(c.send(b"\x00\x00\x01\x2c" + bytes(296), from_client=False)) + list(c.close()))


def inspect(tmp_path, pkts, rules: str):
    (tmp_path / "t.rules").write_text(rules)
    rc = main(["inspect", "-q", "-k", "none", "-r", str(write_pcap(tmp_path / "in.pcap", pkts)),
               "-S", str(tmp_path / "t.rules"), "-l", str(tmp_path / "o")])
    assert rc == 0
    return [json.loads(l) for l in (tmp_path / "o" / "eve.json").read_text().splitlines()]


def sids(events):
    return sorted(e["alert"]["signature_id"] for e in events if e["event_type"] == "alert")


MISMATCH_RULES = """
alert tcp any any -> any any (msg:"http client, ssh server"; flow:to_client; app-layer-protocol:http1,to_server; app-layer-protocol:ssh,to_client; sid:1;)
alert tcp any any -> any any (msg:"ssh client"; app-layer-protocol:ssh,to_server; sid:2;)
alert tcp any any -> any any (msg:"flow is http"; flow:to_server; app-layer-protocol:http,final; sid:3;)
alert tcp any any -> any any (msg:"to client is not http"; flow:to_client; app-layer-protocol:!http; sid:4;)
alert tcp any any -> any any (msg:"either ssh"; app-layer-protocol:ssh,either; content:"mismatch"; sid:5;)
"""


def test_http_request_answered_by_an_ssh_banner(tmp_path):
    ev = inspect(tmp_path, http_to_ssh(), MISMATCH_RULES)
    # protocol-only rules alert once (not on every later packet); 5 has content, so it is a packet rule
    assert sids(ev) == [1, 3, 4, 5]
    (flow,) = [e for e in ev if e["event_type"] == "flow"]
    assert flow["app_proto"] == "http" and flow["app_proto_tc"] == "ssh" and "app_proto_ts" not in flow


SSH_RULES = """
alert tcp any any -> any any (msg:"ssh to server"; flow:to_server; app-layer-protocol:ssh; sid:10;)
alert tcp any any -> any any (msg:"ssh to client, exact"; flow:to_client; app-layer-protocol:ssh,exact; sid:11;)
alert tcp any any -> any any (msg:"not ssh"; app-layer-protocol:!ssh; sid:12;)
alert ssh any any -> any any (msg:"ssh header rule, every packet"; flow:to_server; sid:13;)
"""


def test_ssh_session_is_recognised_from_the_server_banner(tmp_path):
    ev = inspect(tmp_path, ssh_session(), SSH_RULES)
    (ssh,) = [e for e in ev if e["event_type"] == "ssh"]
    assert ssh["ssh"] == {"client": {"proto_version": "2.0", "software_version": "PuTTY_Release_0.60"},
                          "server": {"proto_version": "2.0", "software_version": "OpenSSH_6.6.1"}}
    assert ssh["app_proto"] == "ssh"
    got = sids(ev)
    assert got.count(10) == 1 and got.count(11) == 1 and 12 not in got
    assert got.count(13) > 1     # not protocol-only: it runs on every packet once the protocol is known


BANNER_RULES = """
alert ssh any any -> any any (msg:"putty client"; ssh.software; content:"PuTTY"; sid:20;)
alert ssh any any -> any any (msg:"server proto"; flow:to_client; ssh.proto; content:"2.0"; bsize:3; sid:21;)
alert ssh any any -> any any (msg:"openssh client?"; flow:to_server; ssh.software; content:"OpenSSH"; sid:22;)
"""


def test_ssh_sticky_buffers_read_each_sides_banner(tmp_path):
    ev = inspect(tmp_path, ssh_session(), BANNER_RULES)
    assert sids(ev) == [20, 21]
    putty = next(e for e in ev if e["event_type"] == "alert" and e["alert"]["signature_id"] == 20)
    assert putty["ssh"]["client"]["software_version"] == "PuTTY_Release_0.60" and putty["direction"] == "to_server"


def test_protocol_mismatch_is_an_app_layer_event_rules_can_match(tmp_path):
    rules = "alert tcp any any -> any any (msg:\"mismatch\"; app-layer-event:applayer_mismatch_protocol_both_directions; sid:30;)\n"
    ev = inspect(tmp_path, http_to_ssh(), rules)
    (a,) = [e for e in ev if e["event_type"] == "anomaly" and e["anomaly"]["event"].startswith("APPLAYER_")]
    assert a["anomaly"] == {"type": "applayer", "event": "APPLAYER_MISMATCH_PROTOCOL_BOTH_DIRECTIONS",
                            "app_proto": "http", "layer": "proto_detect"}
    assert sids(ev) == [30]
    ev = inspect(tmp_path, ssh_session(), rules)    # both sides speak SSH: no event
    assert not [e for e in ev if e["event_type"] == "anomaly"] and sids(ev) == []
