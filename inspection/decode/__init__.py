"""Frame decoding: link layer -> IP -> transport, dispatched through tables.

`decode_frame` never raises on hostile bytes: what it cannot decode is
recorded on the packet as a named anomaly and `pkt.l4_ok` stays False.
"""
from __future__ import annotations

from inspection.decode import transport, tunnel
from inspection.decode.ip import decode_ipv4, decode_ipv6
from inspection.model import Anomaly, AnomalyKind, Packet

ETH_IPV4, ETH_IPV6, ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD, ETH_PPPOE_SESS, ETH_MPLS, ETH_NSH = (
    0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100, 0x8864, 0x8847, 0x894F)
NSH_NEXT = {1: ETH_IPV4, 2: ETH_IPV6}  # 3 = Ethernet, handled below
MAX_VLAN_LAYERS = 3
MAX_MPLS_LABELS = 8


def _bad(pkt: Packet, event: str) -> None:
    pkt.anomalies.append(Anomaly(AnomalyKind.DECODE, event))


def _ethertype(pkt: Packet, data: bytes, off: int, etype: int, validate: bool) -> None:
    """Follow ethertypes through VLAN, PPPoE and MPLS down to IP."""
    vlans: list[int] = []
    while True:
        if etype == ETH_IPV4:
            break
        if etype == ETH_IPV6:
            break
        if etype in (ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD):
            if len(vlans) >= MAX_VLAN_LAYERS:
                _bad(pkt, "decoder.vlan.too_many_layers")
                return
            if len(data) - off < 4:
                _bad(pkt, "decoder.vlan.header_too_small")
                return
            vlans.append(((data[off] << 8) | data[off + 1]) & 0x0FFF)
            etype = (data[off + 2] << 8) | data[off + 3]
            off += 4
            continue
        if etype == ETH_PPPOE_SESS:
            if len(data) - off < 8:
                _bad(pkt, "decoder.pppoe.pkt_too_small")
                return
            if data[off] != 0x11 or data[off + 1] != 0:
                _bad(pkt, "decoder.pppoe.wrong_code")
                return
            ppp = (data[off + 6] << 8) | data[off + 7]
            off += 8
            if ppp == 0x0021:
                etype = ETH_IPV4
            elif ppp == 0x0057:
                etype = ETH_IPV6
            else:
                return  # LCP, IPCP and friends: not inspected
            continue
        if etype == ETH_MPLS:
            for _ in range(MAX_MPLS_LABELS):
                if len(data) - off < 4:
                    _bad(pkt, "decoder.mpls.header_too_small")
                    return
                bottom = data[off + 2] & 0x01
                off += 4
                if bottom:
                    break
            else:
                _bad(pkt, "decoder.mpls.too_many_labels")
                return
            if len(data) <= off:
                _bad(pkt, "decoder.mpls.pkt_too_small")
                return
            nib = data[off] >> 4
            etype = ETH_IPV4 if nib == 4 else ETH_IPV6 if nib == 6 else -1
            if etype < 0:
                _bad(pkt, "decoder.mpls.unknown_payload_type")
                return
            continue
        if etype == ETH_NSH:  # RFC 8300 network service header
            if len(data) - off < 8:
                _bad(pkt, "decoder.nsh.header_too_small")
                return
            hlen = (data[off + 1] & 0x3F) * 4
            nxt = data[off + 3]
            if hlen < 8 or len(data) - off < hlen:
                _bad(pkt, "decoder.nsh.bad_header_length")
                return
            off += hlen
            if nxt == 3:
                if len(data) - off < 14:
                    _bad(pkt, "decoder.ethernet.pkt_too_small")
                    return
                etype = (data[off + 12] << 8) | data[off + 13]
                off += 14
                continue
            etype = NSH_NEXT.get(nxt, -1)
            if etype < 0:
                _bad(pkt, "decoder.nsh.unsupported_next_protocol")
                return
            continue
        return  # ARP, LLDP, ...: not IP, nothing to inspect
    if vlans:
        pkt.vlan = tuple(vlans)
    if etype == ETH_IPV4:
        decode_ipv4(pkt, data, off, validate)
    else:
        decode_ipv6(pkt, data, off, validate)


def _ethernet(pkt: Packet, data: bytes, validate: bool) -> None:
    if len(data) < 14:
        _bad(pkt, "decoder.ethernet.pkt_too_small")
        return
    etype = (data[12] << 8) | data[13]
    if etype <= 1500:  # IEEE 802.3 length: only LLC/SNAP carries an ethertype
        if len(data) >= 22 and data[14] == 0xAA and data[15] == 0xAA and data[16] == 0x03:
            _ethertype(pkt, data, 22, (data[20] << 8) | data[21], validate)
        return
    _ethertype(pkt, data, 14, etype, validate)


def _raw(pkt: Packet, data: bytes, validate: bool) -> None:
    if not data:
        _bad(pkt, "decoder.ipraw.invalid_ip_version")
        return
    nib = data[0] >> 4
    if nib == 4:
        decode_ipv4(pkt, data, 0, validate)
    elif nib == 6:
        decode_ipv6(pkt, data, 0, validate)
    else:
        _bad(pkt, "decoder.ipraw.invalid_ip_version")


def _sll(pkt: Packet, data: bytes, validate: bool) -> None:
    if len(data) < 16:
        _bad(pkt, "decoder.sll.pkt_too_small")
        return
    _ethertype(pkt, data, 16, (data[14] << 8) | data[15], validate)


def _sll2(pkt: Packet, data: bytes, validate: bool) -> None:
    if len(data) < 20:
        _bad(pkt, "decoder.sll2.pkt_too_small")
        return
    _ethertype(pkt, data, 20, (data[0] << 8) | data[1], validate)


def _null(pkt: Packet, data: bytes, validate: bool) -> None:
    if len(data) < 4:
        _bad(pkt, "decoder.null.pkt_too_small")
        return
    fam = int.from_bytes(data[:4], "little")
    if fam > 0xFFFF:
        fam = int.from_bytes(data[:4], "big")
    if fam == 2:
        decode_ipv4(pkt, data, 4, validate)
    elif fam in (10, 23, 24, 28, 30):
        decode_ipv6(pkt, data, 4, validate)
    else:
        _bad(pkt, "decoder.null.unsupported_type")


def _ppp(pkt: Packet, data: bytes, validate: bool) -> None:
    off = 2 if data[:2] == b"\xff\x03" else 0   # HDLC-like framing (RFC 1662) is optional
    if len(data) < off + 1:
        _bad(pkt, "decoder.ppp.pkt_too_small")
        return
    if data[off] & 1:   # protocol-field compression: a one-byte protocol
        proto, off = data[off], off + 1
    elif len(data) < off + 2:
        _bad(pkt, "decoder.ppp.pkt_too_small")
        return
    else:
        proto, off = (data[off] << 8) | data[off + 1], off + 2
    if proto == 0x0021:
        decode_ipv4(pkt, data, off, validate)
    elif proto == 0x0057:
        decode_ipv6(pkt, data, off, validate)
    # LCP, IPCP, CCP ...: control traffic, nothing to inspect


def _ipv4_only(pkt: Packet, data: bytes, validate: bool) -> None:
    decode_ipv4(pkt, data, 0, validate)


def _ipv6_only(pkt: Packet, data: bytes, validate: bool) -> None:
    decode_ipv6(pkt, data, 0, validate)


LINK_DECODERS = {
    0: _null, 1: _ethernet, 9: _ppp, 12: _raw, 14: _raw, 101: _raw, 108: _null, 113: _sll,
    228: _ipv4_only, 229: _ipv6_only, 276: _sll2,
}


def supported_linktype(linktype: int) -> bool:
    return linktype in LINK_DECODERS


def decode_frame(linktype: int, data: bytes, ts: float, pcap_cnt: int, wire_len: int, validate: bool) -> Packet:
    """Decode one captured frame into a `Packet` (see module docstring)."""
    pkt = Packet(ts, pcap_cnt, wire_len)
    fn = LINK_DECODERS.get(linktype)
    if fn is None:
        _bad(pkt, "decoder.unsupported_linktype")
        return pkt
    fn(pkt, data, validate)
    return pkt


def _teredo(pkt: Packet, payload: bytes, validate: bool) -> None:
    if pkt.tunnel_depth < tunnel.MAX_DEPTH and tunnel.looks_like_teredo(payload):
        pkt.tunnel_depth += 1
        tunnel.decode_teredo(pkt, payload, validate, decode_ipv6)


transport.TUNNELS.gre = lambda pkt, data, validate: tunnel.decode_gre(
    pkt, data, validate, _ethertype, decode_ipv4, decode_ipv6, _ppp)
transport.TUNNELS.teredo = _teredo

__all__ = ["decode_frame", "supported_linktype", "LINK_DECODERS"]
