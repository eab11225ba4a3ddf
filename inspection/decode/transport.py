"""TCP, UDP, ICMP and ICMPv6 headers: fill the packet view from L4 bytes.

Called with the whole upper-layer datagram (after IP, after reassembly when
the packet was fragmented). Checksums are validated only when asked.
"""
from __future__ import annotations

from struct import Struct
from typing import Callable

from inspection.decode.checksum import fold, ones_sum, pseudo_header_sum
from inspection.decode.tunnel import MAX_DEPTH, TEREDO_PORT
from inspection.model import (IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Anomaly, AnomalyKind,
                              Packet)

_TCP = Struct("!HHIIBBHHH")
_UDP = Struct("!HHHH")


def _bad(pkt: Packet, event: str) -> None:
    pkt.anomalies.append(Anomaly(AnomalyKind.DECODE, event))


def decode_l4(pkt: Packet, proto: int, data: bytes, validate: bool) -> None:
    pkt.proto = proto
    fn = _L4.get(proto)
    if fn is not None:
        fn(pkt, data, validate)
    else:
        pkt.payload = data
        pkt.l4_ok = True


def _tcp(pkt: Packet, data: bytes, validate: bool) -> None:
    n = len(data)
    if n < 20:
        _bad(pkt, "decoder.tcp.pkt_too_small")
        return
    sport, dport, seq, ack, off, flags, win, _csum, _urg = _TCP.unpack_from(data, 0)
    hlen = (off >> 4) * 4
    if hlen < 20:
        _bad(pkt, "decoder.tcp.hlen_too_small")
        return
    if hlen > n:
        _bad(pkt, "decoder.tcp.invalid_optlen")
        return
    if hlen > 20 and not options_ok(data, 20, hlen):
        _bad(pkt, "decoder.tcp.opt_invalid_len")
    if validate and fold(ones_sum(data) + pseudo_header_sum(pkt.src, pkt.dst, IPPROTO_TCP, n)) != 0xFFFF:
        pkt.checksum_ok = False
        _bad(pkt, "decoder.tcp.invalid_checksum")
    pkt.sport, pkt.dport, pkt.seq, pkt.ack, pkt.tcp_flags, pkt.window = sport, dport, seq, ack, flags, win
    pkt.payload = data[hlen:]
    pkt.l4_ok = True


def options_ok(data: bytes, i: int, end: int) -> bool:
    """IPv4 and TCP options share one layout: EOL, NOP, or kind-length-value
    with the length counting itself. False if a length is impossible."""
    while i < end:
        kind = data[i]
        if kind == 0:
            return True
        if kind == 1:
            i += 1
            continue
        if i + 1 >= end:
            return False
        olen = data[i + 1]
        if olen < 2 or i + olen > end:
            return False
        i += olen
    return True


def _udp(pkt: Packet, data: bytes, validate: bool) -> None:
    n = len(data)
    if n < 8:
        _bad(pkt, "decoder.udp.pkt_too_small")
        return
    sport, dport, ulen, csum = _UDP.unpack_from(data, 0)
    if ulen < 8:
        _bad(pkt, "decoder.udp.hlen_too_small")
        return
    if ulen > n:
        _bad(pkt, "decoder.udp.hlen_invalid")
        return
    data = data[:ulen]
    if validate and (csum or pkt.family == 6):
        if fold(ones_sum(data) + pseudo_header_sum(pkt.src, pkt.dst, IPPROTO_UDP, ulen)) != 0xFFFF:
            pkt.checksum_ok = False
            _bad(pkt, "decoder.udp.invalid_checksum")
    pkt.sport, pkt.dport = sport, dport
    pkt.payload = data[8:]
    pkt.l4_ok = True
    if (sport == TEREDO_PORT or dport == TEREDO_PORT) and TUNNELS.teredo is not None:
        TUNNELS.teredo(pkt, data[8:], validate)


def _icmp(pkt: Packet, data: bytes, validate: bool) -> None:
    if len(data) < 8:
        _bad(pkt, "decoder.icmpv4.pkt_too_small")
        return
    if validate and fold(ones_sum(data)) != 0xFFFF:
        pkt.checksum_ok = False
        _bad(pkt, "decoder.icmpv4.invalid_checksum")
    pkt.icmp_type, pkt.icmp_code = data[0], data[1]
    pkt.payload = data[8:]
    pkt.l4_ok = True


def _icmpv6(pkt: Packet, data: bytes, validate: bool) -> None:
    if len(data) < 4:
        _bad(pkt, "decoder.icmpv6.pkt_too_small")
        return
    if validate and fold(ones_sum(data) + pseudo_header_sum(pkt.src, pkt.dst, IPPROTO_ICMPV6, len(data))) != 0xFFFF:
        pkt.checksum_ok = False
        _bad(pkt, "decoder.icmpv6.invalid_checksum")
    pkt.icmp_type, pkt.icmp_code = data[0], data[1]
    pkt.payload = data[8:] if len(data) >= 8 else b""
    pkt.l4_ok = True


def _gre(pkt: Packet, data: bytes, validate: bool) -> None:
    if pkt.tunnel_depth >= MAX_DEPTH or TUNNELS.gre is None:
        pkt.payload, pkt.l4_ok = data, True
        return
    pkt.tunnel_depth += 1
    TUNNELS.gre(pkt, data, validate)


class _Tunnels:
    """Tunnel decoders, installed by `inspection.decode` (they need the IP and
    Ethernet decoders, which import this module)."""

    gre: Callable[[Packet, bytes, bool], None] | None = None
    teredo: Callable[[Packet, bytes, bool], object] | None = None


TUNNELS = _Tunnels()
IPPROTO_GRE = 47
_L4 = {IPPROTO_TCP: _tcp, IPPROTO_UDP: _udp, IPPROTO_ICMP: _icmp, IPPROTO_ICMPV6: _icmpv6, IPPROTO_GRE: _gre}
