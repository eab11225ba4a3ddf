"""The benchmark synthesizer: determinism, valid frames, and what tshark sees."""
from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.bench import frames, synth
from firmware.bench.frames import ACK, FIN, MSS, PSH, SYN, TcpConversation, tcp_packet, udp_packet
from firmware.bench.run import (count_tshark_fields, ensure_capture, parse_engine_summary,
                                run_measured)
from inspection.io.pcap import read_frames

SMALL_MB = 0.6
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")


# ---------------------------------------------------------------- an independent checker

def _ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def check_frame(frame: bytes) -> tuple[int, bytes, bytes, int, int, bytes]:
    """Verify every checksum and length of an Ethernet frame by recomputing it.

    Returns (protocol, src, dst, sport, dport, l4 header+payload)."""
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    ip = frame[14:]
    if ethertype == 0x0800:
        ihl = (ip[0] & 0x0F) * 4
        assert ip[0] >> 4 == 4 and ihl == 20
        total_len = struct.unpack_from("!H", ip, 2)[0]
        assert total_len == len(ip), "IPv4 total length"
        assert _ones_sum(ip[:ihl]) == 0xFFFF, "IPv4 header checksum"
        proto, src, dst = ip[9], ip[12:16], ip[16:20]
        l4 = ip[ihl:]
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(l4))
    else:
        assert ethertype == 0x86DD and ip[0] >> 4 == 6
        plen = struct.unpack_from("!H", ip, 4)[0]
        assert plen == len(ip) - 40, "IPv6 payload length"
        proto, src, dst = ip[6], ip[8:24], ip[24:40]
        l4 = ip[40:]
        pseudo = src + dst + struct.pack("!I3xB", len(l4), proto)
    assert proto in (6, 17)
    if proto == 17:
        assert struct.unpack_from("!H", l4, 4)[0] == len(l4), "UDP length"
        assert struct.unpack_from("!H", l4, 6)[0] != 0, "UDP checksum present"
    assert _ones_sum(pseudo + l4) == 0xFFFF, "transport checksum"
    sport, dport = struct.unpack_from("!HH", l4, 0)
    return proto, src, dst, sport, dport, l4


def tcp_fields(l4: bytes) -> tuple[int, int, int, bytes]:
    seq, ack, off, flags = struct.unpack_from("!IIBB", l4, 4)
    return seq, ack, flags, l4[(off >> 4) * 4:]


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synth.CaptureSummary]:
    path = tmp_path_factory.mktemp("bench") / "small.pcap"
    return path, synth.write_mixed(path, size_mb=SMALL_MB, seed=7)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- frames

@pytest.mark.parametrize("src,dst", [("192.0.2.1", "198.51.100.2"), ("2001:db8::1", "2001:db8:1::2")])
@pytest.mark.parametrize("payload", [b"", b"x", b"GET / HTTP/1.1\r\n\r\n", bytes(range(256)) * 5])
def test_tcp_and_udp_packets_have_valid_checksums(src: str, dst: str, payload: bytes) -> None:
    f = tcp_packet(src, dst, 40000, 80, 0xFFFFFFF0, 12345, ACK | PSH, payload, window=512)
    proto, s, d, sport, dport, l4 = check_frame(f)
    assert (proto, sport, dport) == (6, 40000, 80)
    assert tcp_fields(l4) == (0xFFFFFFF0, 12345, ACK | PSH, payload)
    u = udp_packet(src, dst, 5353, 53, payload)
    proto, _s, _d, sport, dport, l4 = check_frame(u)
    assert (proto, sport, dport, l4[8:]) == (17, 5353, 53, payload)


def test_family_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        tcp_packet("192.0.2.1", "198.51.100.2", 1, 2, 0, 0, SYN, v6=True)
    with pytest.raises(ValueError):
        udp_packet("192.0.2.1", "2001:db8::1", 1, 2)


def test_inet_checksum_matches_the_reference() -> None:
    for data in (b"\x45\x00\x00\x1c", b"\xff\xff", b"\x01", bytes(range(251)), b"\x00\x00"):
        c = frames.inet_checksum(data)
        padded = data + b"\0" * (len(data) % 2)
        assert _ones_sum(padded + c.to_bytes(2, "big")) == 0xFFFF


def test_conversation_tracks_sequence_numbers_and_time() -> None:
    conv = TcpConversation("10.0.0.1", "192.0.2.80", 40001, 80, start=100.0,
                           isn_client=0xFFFFFFFE, isn_server=7)
    request, response = b"q" * 100, b"r" * (3 * MSS + 10)
    pkts = [*conv.handshake(), *conv.send(request), *conv.send(response, from_client=False),
            *conv.close()]
    times = [t for t, _ in pkts]
    assert times == sorted(times) and times[0] == 100.0
    segs = []
    for _t, f in pkts:
        _p, src, _d, _sp, _dp, l4 = check_frame(f)
        segs.append((src == bytes([10, 0, 0, 1]), *tcp_fields(l4)))
    (c0, syn_seq, _, f0, _), (_, synack_seq, synack_ack, f1, _), (_, _, ack2, f2, _) = segs[:3]
    assert (f0, f1, f2) == (SYN, SYN | ACK, ACK)
    assert synack_ack == 0xFFFFFFFF and ack2 == synack_seq + 1
    client_data = b"".join(p for c, _s, _a, _f, p in segs if c)
    server_data = b"".join(p for c, _s, _a, _f, p in segs if not c)
    assert client_data == request and server_data == response
    assert max(len(p) for *_x, p in segs) == MSS
    # every data segment starts where the previous one of its side ended (mod 2**32)
    expect = {True: 0xFFFFFFFF, False: 8}
    for c, seq, _a, flags, p in segs[3:]:
        assert seq == expect[c]
        expect[c] = (seq + len(p) + (1 if flags & FIN else 0)) & 0xFFFFFFFF
    assert [f & (FIN | ACK) for *_x, f, _p in segs[-3:]] == [FIN | ACK, FIN | ACK, ACK]


# ---------------------------------------------------------------- captures

def test_same_seed_same_bytes_across_processes(small: tuple[Path, synth.CaptureSummary], tmp_path: Path) -> None:
    path, _summary = small
    again = tmp_path / "again.pcap"
    code = (f"from firmware.bench import synth; synth.write_mixed({str(again)!r}, size_mb={SMALL_MB}, seed=7)")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert sha256(again) == sha256(path)
    other = tmp_path / "other.pcap"
    synth.write_mixed(other, size_mb=SMALL_MB, seed=8)
    assert sha256(other) != sha256(path)


def test_idle_capture_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    synth.write_idle_flows(a, flows=300)
    synth.write_idle_flows(b, flows=300)
    assert sha256(a) == sha256(b)


def test_summary_matches_the_file(small: tuple[Path, synth.CaptureSummary]) -> None:
    path, s = small
    got = list(read_frames(path))
    assert s.packets == len(got)
    assert s.frame_bytes == sum(len(f.data) for f in got)
    assert s.file_bytes == path.stat().st_size >= SMALL_MB * synth.MB
    assert [f.ts for f in got] == sorted(f.ts for f in got)
    assert s.flows > 20 and 0 < s.ipv6_flows < s.flows
    assert s.http_requests > 0 and s.tls_sni > 0 and s.dns_queries > 0


def test_every_frame_is_valid(small: tuple[Path, synth.CaptureSummary]) -> None:
    path, _ = small
    families, protos = set(), set()
    for f in read_frames(path):
        assert len(f.data) <= 14 + 40 + 20 + MSS
        proto, src, *_ = check_frame(f.data)
        families.add(len(src))
        protos.add(proto)
    assert families == {4, 16} and protos == {6, 17}


def test_idle_flows_stay_open(tmp_path: Path) -> None:
    path = tmp_path / "idle.pcap"
    s = synth.write_idle_flows(path, flows=500, shape="keepalive")
    tuples, flags_seen = set(), set()
    for f in read_frames(path):
        _p, src, dst, sport, dport, l4 = check_frame(f.data)
        flags_seen.add(tcp_fields(l4)[2])
        if dport == 80:
            tuples.add((src, sport))
    # handshake (3), request + ACK (2), response + ACK (2): an answered keep-alive connection
    assert len(tuples) == 500 and s.packets == 500 * 7
    assert not any(fl & (FIN | 0x04) for fl in flags_seen)
    base = synth.write_idle_flows(tmp_path / "base.pcap", flows=1, shape="keepalive")
    assert base.packets == 7
    connected = synth.write_idle_flows(tmp_path / "conn.pcap", flows=10)
    assert connected.packets == 10 * 3 and connected.http_requests == 0


# ---------------------------------------------------------------- tshark agrees

def tshark(path: Path, *args: str) -> str:
    assert TSHARK is not None
    out = subprocess.run([TSHARK, "-n", "-r", str(path), *args], check=True, capture_output=True)
    return out.stdout.decode()


@needs_tshark
def test_tshark_finds_nothing_malformed(small: tuple[Path, synth.CaptureSummary]) -> None:
    path, _ = small
    assert tshark(path, "-Y", "_ws.malformed") == ""
    checks = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
    bad = ("ip.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0"
           " || tcp.analysis.flags || _ws.expert.severity >= warning")
    assert tshark(path, *checks, "-Y", bad) == ""


@needs_tshark
def test_tshark_counts_match_the_summary(small: tuple[Path, synth.CaptureSummary]) -> None:
    path, s = small
    lines = tshark(path, "-T", "fields", "-e", "frame.number", "-e", "http.request", "-e",
                   "tls.handshake.extensions_server_name", "-e", "dns.flags.response").splitlines()
    assert len(lines) == s.packets
    cols = [line.split("\t") for line in lines]
    assert sum(1 for c in cols if c[1]) == s.http_requests
    assert sum(1 for c in cols if c[2]) == s.tls_sni
    assert sum(1 for c in cols if c[3] in ("0", "False")) == s.dns_queries


@needs_tshark
def test_bench_field_counting(small: tuple[Path, synth.CaptureSummary], tmp_path: Path) -> None:
    path, s = small
    out = tmp_path / "fields.txt"
    run = run_measured([TSHARK, "-n", "-r", str(path), "-T", "fields", "-e", "http.host", "-e",
                        "tls.handshake.extensions_server_name", "-e", "dns.qry.name"], out)
    assert run.returncode == 0 and run.peak_rss > 0 and run.wall_s > 0
    counts = count_tshark_fields(out)
    assert counts["http.host"] == s.http_requests and counts["tls sni"] == s.tls_sni
    assert counts["dns.qry.name"] == 2 * s.dns_queries   # the question is repeated in the answer


# ---------------------------------------------------------------- bench runner helpers

def test_engine_summary_parsing() -> None:
    text = "inspected 2 files\nflows: 12\npackets: 1,234\nMbit/s: 512.5\npackets/s: 99000 \n"
    assert parse_engine_summary(text) == {"packets": 1234.0, "Mbit/s": 512.5, "packets/s": 99000.0}


def test_peak_rss_is_the_childs_own(tmp_path: Path) -> None:
    grow = "b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096])"
    small_run = run_measured([sys.executable, "-c", "pass"], tmp_path / "a")
    big_run = run_measured([sys.executable, "-c", grow], tmp_path / "b")
    assert big_run.peak_rss - small_run.peak_rss > 60 << 20
    assert small_run.peak_rss < 40 << 20


def test_captures_are_cached_by_parameters(tmp_path: Path) -> None:
    calls = []

    def write(p: Path) -> synth.CaptureSummary:
        calls.append(p)
        return synth.write_idle_flows(p, flows=3)

    first = ensure_capture(tmp_path, "idle-3-s1", write)
    second = ensure_capture(tmp_path, "idle-3-s1", write)
    assert len(calls) == 1 and first[0] == second[0] and second[2] is None
    assert first[1] == second[1] and first[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first[0].name, first[0].with_suffix(".json").name])
