"""Tunnels whose inner packet is what gets inspected: GRE (IP, Ethernet,
ERSPAN type I/II/III) and Teredo (IPv6 in UDP port 3544).

The packet view is overwritten with the inner packet, as Suricata does for
the flows it tracks; the outer header only contributes ERSPAN's VLAN id.
"""
from __future__ import annotations

from typing import Callable

from inspection.model import Anomaly, AnomalyKind, Packet

GRE_IPV4, GRE_IPV6, GRE_ETH, GRE_ERSPAN2, GRE_ERSPAN3 = 0x0800, 0x86DD, 0x6558, 0x88BE, 0x22EB
GRE_PPP = 0x880B   # enhanced GRE (version 1, RFC 2637): PPTP's PPP frames
TEREDO_PORT = 3544
MAX_DEPTH = 3

# Set by inspection.decode: ethertype dispatch and the two IP decoders.
Ether = Callable[[Packet, bytes, int, int, bool], None]
IpDec = Callable[[Packet, bytes, int, bool], None]


def _bad(pkt: Packet, event: str) -> None:
    pkt.anomalies.append(Anomaly(AnomalyKind.DECODE, event))


def _reset(pkt: Packet) -> None:
    pkt.family, pkt.src, pkt.dst, pkt.proto, pkt.sport, pkt.dport = 0, b"", b"", 0, 0, 0
    pkt.payload, pkt.l4_ok, pkt.fragment = b"", False, None


def decode_gre(pkt: Packet, data: bytes, validate: bool, ether: Ether, ip4: IpDec, ip6: IpDec,
               ppp: Callable[[Packet, bytes, bool], None] | None = None) -> None:
    if len(data) < 4:
        _bad(pkt, "decoder.gre.pkt_too_small")
        return
    flags, ver = data[0], data[1] & 0x07
    proto = (data[2] << 8) | data[3]
    if ver not in (0, 1):
        _bad(pkt, "decoder.gre.wrong_version")
        return
    off = 4
    if flags & 0x80:   # checksum present
        off += 4
    if flags & 0x20:   # key present
        off += 4
    has_seq = bool(flags & 0x10)
    if has_seq:
        off += 4
    if ver == 1 and data[1] & 0x80:   # enhanced GRE: acknowledgment number present
        off += 4
    if len(data) < off:
        _bad(pkt, "decoder.gre.pkt_too_small")
        return
    _reset(pkt)
    pkt.wire_len = len(data) - off  # flows count the tunnelled packet, as Suricata does
    if proto == GRE_IPV4:
        ip4(pkt, data, off, validate)
    elif proto == GRE_IPV6:
        ip6(pkt, data, off, validate)
    elif proto == GRE_ETH:
        _inner_ethernet(pkt, data, off, validate, ether)
    elif proto == GRE_ERSPAN2:
        if not has_seq:   # ERSPAN type I: no ERSPAN header at all
            _inner_ethernet(pkt, data, off, validate, ether)
            return
        if len(data) < off + 8:
            _bad(pkt, "decoder.erspan.header_too_small")
            return
        vlan = ((data[off] << 8) | data[off + 1]) & 0x0FFF
        if vlan:
            pkt.vlan = pkt.vlan + (vlan,)
        _inner_ethernet(pkt, data, off + 8, validate, ether)
    elif proto == GRE_ERSPAN3:
        if len(data) < off + 12:
            _bad(pkt, "decoder.erspan.header_too_small")
            return
        extra = 8 if data[off + 11] & 0x01 else 0  # optional platform sub-header
        _inner_ethernet(pkt, data, off + 12 + extra, validate, ether)
    elif proto == GRE_PPP and ppp is not None:
        ppp(pkt, data[off:], validate)
    # other GRE payloads (WCCP, ...): nothing to inspect


def _inner_ethernet(pkt: Packet, data: bytes, off: int, validate: bool, ether: Ether) -> None:
    if len(data) - off < 14:
        _bad(pkt, "decoder.ethernet.pkt_too_small")
        return
    ether(pkt, data, off + 14, (data[off + 12] << 8) | data[off + 13], validate)


def looks_like_teredo(payload: bytes) -> bool:
    """An IPv6 header (after optional Teredo auth/origin indications) whose
    payload length matches the datagram: Suricata's Teredo heuristic."""
    off = 0
    if payload[:2] == b"\x00\x01" and len(payload) >= 4:      # authentication indicator
        off = 13 + payload[2] + payload[3]
    if payload[off:off + 2] == b"\x00\x00":                    # origin indication
        off += 8
    if len(payload) < off + 40 or payload[off] >> 4 != 6:
        return False
    if payload[off + 6] == 59:  # no next header: a bubble, not traffic
        return False
    return 40 + int.from_bytes(payload[off + 4:off + 6], "big") == len(payload) - off


def decode_teredo(pkt: Packet, payload: bytes, validate: bool, ip6: IpDec) -> bool:
    """Decode the IPv6 packet inside a Teredo datagram as `pkt.inner`; the
    outer UDP packet stays what it is (its flow is tracked too, as Suricata does)."""
    if not looks_like_teredo(payload):
        return False
    off = 0
    if payload[:2] == b"\x00\x01":
        off = 13 + payload[2] + payload[3]
    if payload[off:off + 2] == b"\x00\x00":
        off += 8
    inner = Packet(pkt.ts, pkt.pcap_cnt, len(payload) - off)
    inner.tunnel_depth = pkt.tunnel_depth
    ip6(inner, payload, off, validate)
    pkt.inner = inner
    return True
