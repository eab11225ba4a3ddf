"""Build the golden captures under tests/golden/<case>/input.pcap (deterministic).

    .venv/bin/python -m tests.golden.make_cases      # rewrite the captures
    .venv/bin/python -m pytest tests/golden --regen-golden   # then their expectations, after review

Each case exercises one family of behaviour end to end with traffic the
project builds itself (documentation addresses and example.com names only).
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

from firmware.bench.frames import ACK, PSH, RST, SYN, TcpConversation, tcp_packet, udp_packet
from firmware.bench.synth import dns_query, dns_response
from inspection.decode.checksum import checksum
from inspection.io.pcap import PcapWriter

HERE = Path(__file__).parent
T0 = 1_700_000_000.0
CLI, SRV = "192.0.2.10", "198.51.100.80"


def _write(case: str, packets: list[tuple[float, bytes]]) -> None:
    d = HERE / case
    d.mkdir(exist_ok=True)
    with (d / "input.pcap").open("wb") as fh:
        w = PcapWriter(fh)
        for ts, frame in packets:
            w.write(ts, frame)


def http_evasions() -> list[tuple[float, bytes]]:
    """Pipelined requests; chunked, gzip-in-chunked and 100-continue responses."""
    c = TcpConversation(CLI, SRV, 40100, 80, start=T0)
    body = b"<html>" + b"golden " * 200 + b"</html>"
    gz = gzip.compress(body, mtime=0)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(gz[i:i + 300]), gz[i:i + 300]) for i in range(0, len(gz), 300))
    reqs = (b"GET /a HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: golden\r\n\r\n"
            b"GET /b.gz HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
    resps = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
             b"5\r\nhello\r\n0\r\n\r\n"
             b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n"
             b"Content-Type: text/html\r\n\r\n" + chunks + b"0\r\n\r\n")
    post = (b"POST /upload HTTP/1.1\r\nHost: upload.example.com\r\nExpect: 100-continue\r\n"
            b"Content-Length: 11\r\n\r\n")
    pkts = list(c.handshake()) + list(c.send(reqs)) + list(c.send(resps, from_client=False))
    pkts += list(c.send(post)) + list(c.send(b"HTTP/1.1 100 Continue\r\n\r\n", from_client=False))
    pkts += list(c.send(b"hello world")) + list(c.send(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
                                                        from_client=False))
    return pkts + list(c.close())


def _fragments(frame: bytes, cut: int) -> list[bytes]:
    """Split an Ethernet/IPv4 frame's payload at `cut` (a multiple of 8) into two fragments."""
    eth, ip = frame[:14], frame[14:]
    hl = (ip[0] & 0x0F) * 4
    body = ip[hl:]
    out = []
    for off, more, data in ((0, True, body[:cut]), (cut, False, body[cut:])):
        hdr = bytearray(ip[:hl])
        struct.pack_into("!H", hdr, 2, hl + len(data))
        struct.pack_into("!H", hdr, 6, (0x2000 if more else 0) | (off // 8))
        struct.pack_into("!H", hdr, 10, 0)
        struct.pack_into("!H", hdr, 10, checksum(bytes(hdr)))
        out.append(eth + bytes(hdr) + data)
    return out


def encapsulations() -> list[tuple[float, bytes]]:
    """DNS over VLAN, QinQ and IPv6; a fragmented DNS query arriving last fragment first."""
    q = dns_query(0x0101, "vlan.example.com", 1)
    r = dns_response(0x0101, "vlan.example.com", 1, None, [bytes([203, 0, 113, 7])])
    pkts = []
    for i, tags in enumerate(((100,), (200, 300))):
        for j, (src, dst, sp, dp, payload) in enumerate(((CLI, "192.0.2.53", 5000 + i, 53, q),
                                                         ("192.0.2.53", CLI, 53, 5000 + i, r))):
            f = udp_packet(src, dst, sp, dp, payload)
            # each tag is a TPID (outer 802.1ad, inner 802.1Q) and a TCI, before the ethertype
            tags_bytes = b"".join(struct.pack("!HH", 0x88A8 if k < len(tags) - 1 else 0x8100, t)
                                  for k, t in enumerate(tags))
            pkts.append((T0 + i + j * 0.01, f[:12] + tags_bytes + f[12:]))
    q6 = dns_query(0x0202, "v6.example.net", 28)
    pkts.append((T0 + 3, udp_packet("2001:db8::10", "2001:db8::53", 5353, 53, q6)))
    big = dns_query(0x0303, "fragmented." + "x" * 40 + ".example.org", 1)
    frags = _fragments(udp_packet(CLI, "192.0.2.53", 5400, 53, big), 32)
    pkts += [(T0 + 4, frags[1]), (T0 + 4.001, frags[0])]
    return pkts


def tcp_anomalies() -> list[tuple[float, bytes]]:
    """Out-of-order delivery, an overlap with different bytes, a lost segment, a RST."""
    pkts = []
    isn_c, isn_s = 1000, 9000
    pkts.append((T0, tcp_packet(CLI, SRV, 40200, 80, isn_c, 0, SYN)))
    pkts.append((T0 + 0.001, tcp_packet(SRV, CLI, 80, 40200, isn_s, isn_c + 1, SYN | ACK)))
    pkts.append((T0 + 0.002, tcp_packet(CLI, SRV, 40200, 80, isn_c + 1, isn_s + 1, ACK)))
    req = b"GET /ooo HTTP/1.1\r\nHost: tcp.example.com\r\n\r\n"
    a, b = req[:20], req[20:]
    pkts.append((T0 + 0.003, tcp_packet(CLI, SRV, 40200, 80, isn_c + 1 + 20, isn_s + 1, ACK | PSH, b)))
    pkts.append((T0 + 0.004, tcp_packet(CLI, SRV, 40200, 80, isn_c + 1, isn_s + 1, ACK, a)))
    evil = b"X" * 10
    pkts.append((T0 + 0.005, tcp_packet(CLI, SRV, 40200, 80, isn_c + 1, isn_s + 1, ACK, evil)))  # overlap differs
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n" + b"y" * 30
    head, tail = resp[:40], resp[55:]   # bytes 40..55 never reach the capture
    s_next = isn_s + 1
    pkts.append((T0 + 0.006, tcp_packet(SRV, CLI, 80, 40200, s_next, isn_c + 1 + len(req), ACK, head)))
    pkts.append((T0 + 0.007, tcp_packet(SRV, CLI, 80, 40200, s_next + 55, isn_c + 1 + len(req), ACK | PSH, tail)))
    pkts.append((T0 + 0.008, tcp_packet(CLI, SRV, 40200, 80, isn_c + 1 + len(req), s_next + len(resp), ACK)))
    pkts.append((T0 + 0.009, tcp_packet(CLI, SRV, 40200, 80, isn_c + 1 + len(req), s_next + len(resp), RST | ACK)))
    return pkts


CASES = {"http-evasions": http_evasions, "encapsulations": encapsulations, "tcp-anomalies": tcp_anomalies}


def main() -> None:
    for name, build in CASES.items():
        _write(name, build())
        print(f"wrote {HERE / name / 'input.pcap'}")


if __name__ == "__main__":
    main()
