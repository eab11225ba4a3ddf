"""TCP reset frames for a blocked flow, built with struct (pure; no scapy in the data path).

Given the IP packet that was dropped (as NFQUEUE delivered it, no link header)
and the MAC addresses of both ends, `reset_frames` returns two Ethernet frames:
one to the sender, as if from the receiver, acknowledging what it sent, and
one to the receiver, as if from the sender, at the sequence number it expects
next. PLATFORM.md: sent through AF_PACKET out of the physin/physout ports they
reset both ends in about a millisecond with no address on the bridge.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from inspection.model import TH_ACK, TH_FIN, TH_RST, TH_SYN

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD


class ResetError(ValueError):
    """The dropped packet is not a TCP packet we can answer (truncated, not TCP, fragment)."""


@dataclass(frozen=True, slots=True)
class TcpFacts:
    version: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    payload_len: int


def parse_tcp(ip: bytes) -> TcpFacts:
    """The fields a reset needs from an IPv4/IPv6 TCP packet (no extension headers on IPv6)."""
    if not ip:
        raise ResetError("empty packet")
    v = ip[0] >> 4
    if v == 4:
        if len(ip) < 20:
            raise ResetError("short IPv4 header")
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        if ip[9] != 6:
            raise ResetError("not TCP")
        if struct.unpack_from("!H", ip, 6)[0] & 0x1FFF:
            raise ResetError("a fragment")
        src, dst, off, end = ip[12:16], ip[16:20], ihl, min(total, len(ip)) if total else len(ip)
    elif v == 6:
        if len(ip) < 40:
            raise ResetError("short IPv6 header")
        if ip[6] != 6:
            raise ResetError("not TCP (or IPv6 extension headers)")
        src, dst, off = ip[8:24], ip[24:40], 40
        end = 40 + struct.unpack_from("!H", ip, 4)[0]
        end = min(end, len(ip)) if end > 40 else len(ip)
    else:
        raise ResetError(f"IP version {v}")
    if len(ip) < off + 20:
        raise ResetError("short TCP header")
    sport, dport, seq, ack, doff_flags = struct.unpack_from("!HHIIH", ip, off)
    hlen = (doff_flags >> 12) * 4
    return TcpFacts(v, bytes(src), bytes(dst), sport, dport, seq, ack, doff_flags & 0xFF,
                    max(0, end - off - hlen))


def _csum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _tcp_segment(version: int, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
                 flags: int, payload: bytes = b"", window: int = 0, options: bytes = b"") -> bytes:
    """`options`: whole 32-bit words (a SYN-ACK's MSS)."""
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      (5 + len(options) // 4) << 4, flags, window, 0, 0) + options
    seg = hdr + payload
    if version == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(seg))
    else:
        pseudo = src + dst + struct.pack("!IxxxB", len(seg), 6)
    c = _csum(pseudo + seg)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload


def _ip(version: int, src: bytes, dst: bytes, segment: bytes) -> bytes:
    if version == 4:
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 0, 0x4000, 64, 6, 0, src, dst)
        return h[:10] + struct.pack("!H", _csum(h)) + h[12:] + segment
    return struct.pack("!IHBB16s16s", 6 << 28, len(segment), 6, 64, src, dst) + segment


def reset_frames(ip_packet: bytes, sender_mac: bytes, receiver_mac: bytes) -> tuple[bytes, bytes]:
    """(frame to the sender, frame to the receiver) resetting the packet's connection."""
    t = parse_tcp(ip_packet)
    if len(sender_mac) != 6 or len(receiver_mac) != 6:
        raise ResetError("MAC addresses must be 6 bytes")
    ethertype = ETH_IPV4 if t.version == 4 else ETH_IPV6
    consumed = t.payload_len + (1 if t.flags & TH_SYN else 0) + (1 if t.flags & TH_FIN else 0)
    # to the sender: from the receiver, acknowledging everything it sent
    back_seq = t.ack if t.flags & TH_ACK else 0
    back = _ip(t.version, t.dst, t.src, _tcp_segment(t.version, t.dst, t.src, t.dport, t.sport, back_seq,
                                                        t.seq + consumed, TH_RST | TH_ACK))
    # to the receiver: from the sender, at the sequence number the dropped packet carried
    fwd = _ip(t.version, t.src, t.dst, _tcp_segment(t.version, t.src, t.dst, t.sport, t.dport, t.seq, 0, TH_RST))
    eth_back = receiver_mac_to(sender_mac, receiver_mac, ethertype)
    eth_fwd = receiver_mac_to(receiver_mac, sender_mac, ethertype)
    return eth_back + back, eth_fwd + fwd


def receiver_mac_to(dst_mac: bytes, src_mac: bytes, ethertype: int) -> bytes:
    """An Ethernet header to `dst_mac` from `src_mac`."""
    return dst_mac + src_mac + struct.pack("!H", ethertype)
