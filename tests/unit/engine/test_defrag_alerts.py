"""An alert on a reassembled datagram shows the whole packet, as Suricata logs it:
the first fragment's headers with the lengths of the whole datagram (IPv6
without its fragment header, IPv4 with a valid header checksum)."""
from __future__ import annotations

import base64
import struct

from firmware.bench.frames import udp_packet
from inspection.decode.checksum import checksum
from tests.unit.engine.test_inspect_cli import CLI, of, run

V6_CLI, V6_SRV = "2001:db8::10", "2001:db8::53"
BODY = b"A" * 64 + b"MARKER" + b"B" * 58


def _v4_fragments(frame: bytes, cut: int) -> list[bytes]:
    eth, ip = frame[:14], frame[14:]
    body = ip[20:]
    out = []
    for off, more, data in ((0, True, body[:cut]), (cut, False, body[cut:])):
        hdr = bytearray(ip[:20])
        struct.pack_into("!HH", hdr, 6, (0x2000 if more else 0) | (off // 8), hdr[8] << 8 | hdr[9])
        struct.pack_into("!H", hdr, 2, 20 + len(data))
        struct.pack_into("!H", hdr, 10, 0)
        struct.pack_into("!H", hdr, 10, checksum(bytes(hdr)))
        out.append(eth + bytes(hdr) + data)
    return out


def _v6_fragments(frame: bytes, cut: int) -> list[bytes]:
    eth, ip = frame[:14], frame[14:]
    body, nxt = ip[40:], ip[6]
    out = []
    for off, more, data in ((0, True, body[:cut]), (cut, False, body[cut:])):
        hdr = bytearray(ip[:40])
        hdr[6] = 44
        struct.pack_into("!H", hdr, 4, 8 + len(data))
        fh = struct.pack("!BBHI", nxt, 0, off | (1 if more else 0), 0x1234)
        out.append(eth + bytes(hdr) + fh + data)
    return out


def _alert_packet(tmp_path, frames):
    (tmp_path / "t.rules").write_text('alert udp any any -> any any (msg:"m"; content:"MARKER"; sid:1;)\n')
    pkts = [(1.0 + i / 10, f) for i, f in enumerate(frames)]
    rc, ev = run(tmp_path, pkts, "-S", str(tmp_path / "t.rules"), "-k", "none")
    (a,) = of(ev, "alert")
    return base64.b64decode(a["packet"])


def test_ipv4_alert_shows_the_reassembled_datagram(tmp_path):
    whole = udp_packet(CLI, "192.0.2.53", 5555, 9999, BODY)
    got = _alert_packet(tmp_path, _v4_fragments(whole, 64)[::-1])    # last fragment first
    ip = got[14:]
    assert len(got) == len(whole) and ip[20:] == whole[34:]
    assert struct.unpack_from("!H", ip, 2)[0] == len(whole) - 14 and struct.unpack_from("!H", ip, 6)[0] == 0
    assert checksum(ip[:20]) == 0          # a header with a valid checksum sums to zero


def test_ipv6_alert_shows_the_datagram_without_its_fragment_header(tmp_path):
    whole = udp_packet(V6_CLI, V6_SRV, 5555, 9999, BODY)
    got = _alert_packet(tmp_path, _v6_fragments(whole, 64))
    assert got == whole
