"""IPv4 (with options) and IPv6 (with extension headers).

A fragment is not decoded further: the packet gets a `Fragment` for the
defragmenter and the engine calls `decode_l4` again on the reassembled datagram.
"""
from __future__ import annotations

from struct import Struct

from inspection.decode.checksum import fold, ones_sum
from inspection.decode.defrag import Fragment
from inspection.decode.transport import decode_l4, options_ok
from inspection.model import Anomaly, AnomalyKind, Packet

_IP4 = Struct("!BBHHHBBH4s4s")
_IP6 = Struct("!IHBB16s16s")

# IPv6 extension headers that are walked through; value = Suricata's duplicate-header event.
_EXT_HOP, _EXT_ROUTING, _EXT_FRAG, _EXT_ESP, _EXT_AH, _EXT_NONE, _EXT_DSTOPTS, _EXT_MH = 0, 43, 44, 50, 51, 59, 60, 135
_DUP_EVENT = {
    _EXT_HOP: "decoder.ipv6.exthdr_dupl_hh",
    _EXT_ROUTING: "decoder.ipv6.exthdr_dupl_rh",
    _EXT_FRAG: "decoder.ipv6.exthdr_dupl_fh",
    _EXT_DSTOPTS: "decoder.ipv6.exthdr_dupl_dh",
    _EXT_AH: "decoder.ipv6.exthdr_dupl_ah",
    _EXT_MH: "decoder.ipv6.exthdr_dupl_mh",
}
MAX_EXT_HEADERS = 16


def _bad(pkt: Packet, event: str) -> None:
    pkt.anomalies.append(Anomaly(AnomalyKind.DECODE, event))


def decode_ipv4(pkt: Packet, data: bytes, off: int, validate: bool) -> None:
    n = len(data) - off
    if n < 20:
        _bad(pkt, "decoder.ipv4.pkt_too_small")
        return
    vhl, _tos, total, ident, frag, ttl, proto, _csum, src, dst = _IP4.unpack_from(data, off)
    if vhl >> 4 != 4:
        _bad(pkt, "decoder.ipv4.wrong_ip_version")
        return
    hlen = (vhl & 0x0F) * 4
    if hlen < 20:
        _bad(pkt, "decoder.ipv4.hlen_too_small")
        return
    if total < hlen:
        _bad(pkt, "decoder.ipv4.iplen_smaller_than_hlen")
        return
    if n < total or n < hlen:
        _bad(pkt, "decoder.ipv4.trunc_pkt")
        return
    pkt.family, pkt.src, pkt.dst, pkt.ttl, pkt.ip_id, pkt.ip_len, pkt.proto = 4, src, dst, ttl, ident, total, proto
    if hlen > 20 and not options_ok(data, off + 20, off + hlen):
        _bad(pkt, "decoder.ipv4.opt_invalid_len")
    if validate and fold(ones_sum(data[off:off + hlen])) != 0xFFFF:
        pkt.checksum_ok = False
        _bad(pkt, "decoder.ipv4.invalid_checksum")
    body = data[off + hlen:off + total]
    if frag & 0x3FFF:  # MF set or non-zero offset
        fo = (frag & 0x1FFF) * 8
        head = data[:off + hlen] if fo == 0 and not pkt.tunnel_depth else b""
        pkt.fragment = Fragment(4, src, dst, ident, proto, fo, bool(frag & 0x2000), body,
                                pkt.ts, pkt.vlan, head, off)
        return
    decode_l4(pkt, proto, body, validate)


def decode_ipv6(pkt: Packet, data: bytes, off: int, validate: bool) -> None:
    n = len(data) - off
    if n < 40:
        _bad(pkt, "decoder.ipv6.pkt_too_small")
        return
    vtc, plen, nxt, hlim, src, dst = _IP6.unpack_from(data, off)
    if vtc >> 28 != 6:
        _bad(pkt, "decoder.ipv6.wrong_ip_version")
        return
    if n - 40 < plen:
        _bad(pkt, "decoder.ipv6.trunc_pkt")
        return
    pkt.family, pkt.src, pkt.dst, pkt.ttl, pkt.ip_len = 6, src, dst, hlim, 40 + plen
    end = off + 40 + plen
    i = off + 40
    nh_at = off + 6          # the byte naming the header at `i`
    seen: set[int] = set()
    for _ in range(MAX_EXT_HEADERS):
        if nxt in (_EXT_HOP, _EXT_ROUTING, _EXT_DSTOPTS, _EXT_MH, _EXT_AH, _EXT_FRAG):
            if nxt in seen and nxt != _EXT_DSTOPTS:
                _bad(pkt, _DUP_EVENT[nxt])
            seen.add(nxt)
            if i + 8 > end:
                _bad(pkt, "decoder.ipv6.trunc_exthdr")
                return
            if nxt == _EXT_FRAG:
                inner = data[i]
                fo = int.from_bytes(data[i + 2:i + 4], "big")
                ident = int.from_bytes(data[i + 4:i + 8], "big")
                body = data[i + 8:end]
                if fo >> 3 == 0 and not fo & 1:
                    # atomic fragment (RFC 6946): no reassembly needed
                    _bad(pkt, "decoder.ipv6.exthdr_useless_fh")
                    nxt, nh_at, i = inner, i, i + 8
                    continue
                pkt.proto = inner
                head = data[:i] if fo >> 3 == 0 and not pkt.tunnel_depth else b""
                pkt.fragment = Fragment(6, src, dst, ident, inner, (fo >> 3) * 8, bool(fo & 1), body,
                                        pkt.ts, pkt.vlan, head, off, nh_at)
                return
            hlen = (data[i + 1] + 2) * 4 if nxt == _EXT_AH else (data[i + 1] + 1) * 8
            if i + hlen > end:
                _bad(pkt, "decoder.ipv6.trunc_exthdr")
                return
            nxt, nh_at = data[i], i
            i += hlen
            continue
        if nxt == _EXT_NONE or nxt == _EXT_ESP:
            pkt.proto = nxt
            pkt.payload = data[i:end]
            pkt.l4_ok = True
            return
        decode_l4(pkt, nxt, data[i:end], validate)
        return
    _bad(pkt, "decoder.ipv6.exthdr_too_many")
