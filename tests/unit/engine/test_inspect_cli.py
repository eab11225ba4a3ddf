"""`utm inspect` end to end on captures the tests build: what an operator sees."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from firmware.bench.frames import ACK, TcpConversation, udp_packet
from firmware.bench.synth import dns_query, dns_response, tls_client_hello
from firmware.cli.main import main
from inspection.io.pcap import PcapWriter

CLI, SRV = "192.0.2.10", "198.51.100.80"


def write_pcap(path: Path, packets) -> Path:
    with path.open("wb") as fh:
        w = PcapWriter(fh)
        for ts, frame in packets:
            w.write(ts, frame)
    return path


def http_conversation(start=1_700_000_000.0, port=40001, v6=False):
    c = TcpConversation("2001:db8::10" if v6 else CLI, "2001:db8::80" if v6 else SRV, port, 80, start=start)
    req = b"GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: demo/1.0\r\n\r\n"
    body = b"<html>" + b"x" * 3000 + b"</html>"
    resp = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)
    pkts = list(c.handshake()) + list(c.send(req)) + list(c.send(resp, from_client=False)) + list(c.close())
    return pkts


def run(tmp_path: Path, packets=None, *args: str, pcaps=None) -> tuple[int, list[dict]]:
    files = pcaps or [write_pcap(tmp_path / "in.pcap", packets)]
    argv = ["inspect", "-q", "-l", str(tmp_path / "out")]
    for f in files:
        argv += ["-r", str(f)]
    rc = main(argv + list(args))
    eve = tmp_path / "out" / "eve.json"
    events = [json.loads(l) for l in eve.read_text().splitlines()] if eve.exists() else []
    return rc, events


def of(events, t):
    return [e for e in events if e["event_type"] == t]


def test_http_transaction_and_its_flow(tmp_path):
    rc, ev = run(tmp_path, http_conversation())
    assert rc == 0
    (h,) = of(ev, "http")
    assert h["http"]["hostname"] == "www.example.com"
    assert h["http"]["url"] == "/index.html?q=1"
    assert h["http"]["http_method"] == "GET" and h["http"]["status"] == 200
    assert h["http"]["http_content_type"] == "text/html"
    assert h["http"]["http_user_agent"] == "demo/1.0"
    assert (h["src_ip"], h["dest_port"], h["proto"], h["app_proto"]) == (CLI, 80, "TCP", "http")
    (f,) = of(ev, "flow")
    assert f["flow_id"] == h["flow_id"]
    assert f["flow"]["state"] == "closed" and f["flow"]["reason"] == "shutdown"
    assert f["flow"]["pkts_toserver"] + f["flow"]["pkts_toclient"] == len(http_conversation())
    assert f["tcp"]["syn"] and f["tcp"]["fin"]


def test_ipv6_http(tmp_path):
    rc, ev = run(tmp_path, http_conversation(v6=True))
    (h,) = of(ev, "http")
    assert h["src_ip"] == "2001:0db8:0000:0000:0000:0000:0000:0010"


def test_tls_sni_and_dns(tmp_path):
    import random
    c = TcpConversation(CLI, SRV, 40002, 443, start=1_700_000_000.0)
    pkts = list(c.handshake()) + list(c.send(tls_client_hello(random.Random(1), "secure.example.org"))) + list(c.close())
    q = dns_query(0x1234, "www.example.net", 1)
    r = dns_response(0x1234, "www.example.net", 1, None, [bytes([203, 0, 113, 5])])
    pkts += [(1_700_000_001.0, udp_packet(CLI, "192.0.2.53", 5353, 53, q)),
             (1_700_000_001.01, udp_packet("192.0.2.53", CLI, 53, 5353, r))]
    rc, ev = run(tmp_path, pkts)
    (t,) = of(ev, "tls")
    assert t["tls"]["sni"] == "secure.example.org"
    assert "ja3" in t["tls"] and "ja4" in t["tls"]
    d = of(ev, "dns")
    assert [x["dns"]["type"] for x in d] == ["request", "response"]
    assert d[1]["dns"]["answers"][0]["rdata"] == "203.0.113.5"
    assert d[1]["src_ip"] == "192.0.2.53"  # v3 layout: a response is logged in its own direction


def test_one_flow_table_across_files(tmp_path):
    pkts = http_conversation()
    a = write_pcap(tmp_path / "a.pcap", pkts[:5])
    b = write_pcap(tmp_path / "b.pcap", pkts[5:])
    rc, ev = run(tmp_path, pcaps=[a, b])
    assert rc == 0 and len(of(ev, "flow")) == 1 and len(of(ev, "http")) == 1


def test_idle_flow_times_out(tmp_path):
    first = http_conversation(port=40010)[:3]          # handshake only, then silence
    later = http_conversation(start=1_700_005_000.0, port=40011)
    rc, ev = run(tmp_path, first + later)
    reasons = sorted(f["flow"]["reason"] for f in of(ev, "flow"))
    assert reasons == ["shutdown", "timeout"]


def test_midstream_pickup_is_on_by_default_and_can_be_turned_off(tmp_path):
    pkts = http_conversation()[3:]  # no handshake: a session already open when capture started
    rc, ev = run(tmp_path, pkts)
    assert len(of(ev, "http")) == 1
    rc, ev = run(tmp_path, pkts, "--set", "stream.midstream=false")
    assert of(ev, "http") == []


def test_fragmented_dns_is_reassembled(tmp_path):
    q = dns_query(7, "fragmented.example.com", 1)
    frame = udp_packet(CLI, "192.0.2.53", 5555, 53, q)
    ip = frame[14:]
    ihl = 20
    body = ip[ihl:]
    cut = 16
    def frag(off, more, data):
        hdr = bytearray(ip[:ihl])
        struct.pack_into("!H", hdr, 2, ihl + len(data))
        struct.pack_into("!H", hdr, 6, (0x2000 if more else 0) | (off // 8))
        struct.pack_into("!H", hdr, 10, 0)
        from inspection.decode.checksum import checksum
        struct.pack_into("!H", hdr, 10, checksum(bytes(hdr)))
        return frame[:14] + bytes(hdr) + data
    pkts = [(1.0, frag(cut, False, body[cut:])), (1.1, frag(0, True, body[:cut]))]
    rc, ev = run(tmp_path, pkts)
    (d,) = of(ev, "dns")
    assert d["dns"]["queries"][0]["rrname"] == "fragmented.example.com"


def test_corrupt_capture_keeps_what_was_read_and_names_the_offset(tmp_path, capsys):
    p = write_pcap(tmp_path / "in.pcap", http_conversation())
    data = p.read_bytes()
    p.write_bytes(data[:-20])
    rc, ev = run(tmp_path, pcaps=[p])
    assert rc == 1
    err = capsys.readouterr().err
    assert "in.pcap" in err and "offset" in err
    assert of(ev, "flow")


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["inspect", "-r", str(tmp_path / "nope.pcap"), "-l", str(tmp_path)]) == 2
    assert "nope.pcap" in capsys.readouterr().err


def test_not_a_capture_is_a_clear_error(tmp_path, capsys):
    p = tmp_path / "x.pcap"
    p.write_bytes(b"hello world, not a pcap")
    rc, _ = run(tmp_path, pcaps=[p])
    assert rc == 1 and "not a pcap" in capsys.readouterr().err


def test_unknown_set_key_warns_once_and_bad_value_exits_2(tmp_path, capsys):
    pkts = http_conversation()
    rc, _ = run(tmp_path, pkts, "--set", "no.such.key=1", "--set", "no.such.key=2")
    assert rc == 0
    err = capsys.readouterr().err
    assert err.count("no.such.key") == 1
    rc, _ = run(tmp_path, pkts, "--set", "stream.midstream=perhaps")
    assert rc == 2 and "stream.midstream" in capsys.readouterr().err


def test_pcapng_is_read(tmp_path):
    def block(btype, body):
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 65535))
    for ts, frame in http_conversation():
        t = int(ts * 1e6)
        out += block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(frame), len(frame)) + frame)
    p = tmp_path / "in.pcapng"
    p.write_bytes(out)
    rc, ev = run(tmp_path, pcaps=[p])
    assert rc == 0 and len(of(ev, "http")) == 1
    assert of(ev, "http")[0]["timestamp"].startswith("2023-11-14T22:13:2")


def test_checksum_validation_modes(tmp_path):
    pkts = [(ts, bytearray(f)) for ts, f in http_conversation()]
    for _, f in pkts:
        f[14 + 20 + 16] ^= 0x5A  # break every TCP checksum field
    pkts = [(ts, bytes(f)) for ts, f in pkts]
    rc, ev = run(tmp_path, pkts, "-k", "all")
    assert of(ev, "http") == [] and of(ev, "anomaly")
    rc, ev = run(tmp_path, pkts, "-k", "none")
    assert len(of(ev, "http")) == 1 and of(ev, "anomaly") == []


@pytest.mark.parametrize("closer, state", [(0, "close_wait"), (1, "fin_wait1")])
def test_half_closed_session_is_named_from_the_servers_side(tmp_path, closer, state):
    """Suricata's names: the client's FIN leaves the server in close_wait; the server's own FIN is fin_wait1."""
    c = TcpConversation(CLI, SRV, 40200, 80, start=1_700_000_500.0)
    pkts = list(c.handshake()) + [c.frame(closer, 0x01 | ACK), c.frame(1 - closer, ACK)]
    rc, ev = run(tmp_path, pkts)
    (flow,) = of(ev, "flow")
    assert flow["tcp"]["state"] == state


def test_a_full_log_disk_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    pcap = write_pcap(tmp_path / "in.pcap", http_conversation())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "eve.json").symlink_to("/dev/full")   # every write: ENOSPC
    assert main(["inspect", "-q", "-l", str(tmp_path / "out"), "-r", str(pcap)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("utm inspect: cannot write the logs") and "No space left on device" in err
