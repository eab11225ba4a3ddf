"""ICMP port-unreachable frames for a blocked UDP flow, built with struct (pure).

A TCP flow the box blocks gets resets; a UDP one has no reset, and a dropped
datagram only makes the client wait for its own timeout (a resolver's retries,
an application's reconnects). So the sender of the first dropped datagram gets
what a closed port would answer: ICMP destination unreachable, port unreachable
(IPv4 type 3 code 3, IPv6 type 1 code 4), as iptables' REJECT and Suricata's
reject send for UDP. The error comes as if from the datagram's destination and
quotes the datagram (RFC 1812: as much as fits 576 bytes; RFC 4443: the IPv6
minimum MTU), so the sender's stack matches it to its socket: a connected UDP
socket then fails with ECONNREFUSED at once.

No error is made for what RFC 1122 and RFC 4443 say must not get one: a
datagram to a broadcast or multicast address, from an address that is not a
single host, a fragment other than the first, or an ICMP error itself.
"""
from __future__ import annotations

import ipaddress
import struct

from firmware.base.addresses import single_host
from inspection.policy.tcpreset import ETH_IPV4, ETH_IPV6, ResetError, _csum, receiver_mac_to

__all__ = ["unreachable_frame"]

QUOTE_V4 = 576 - 20 - 8      # bytes of the datagram an IPv4 error quotes at most
QUOTE_V6 = 1280 - 40 - 8     # ... an IPv6 error
IPPROTO_UDP = 17
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def unreachable_frame(ip_packet: bytes, sender_mac: bytes, from_mac: bytes) -> bytes:
    """The Ethernet frame to `sender_mac` (from `from_mac`, the other end's address) telling the
    sender of the UDP datagram `ip_packet` (as NFQUEUE delivered it) that its port is unreachable.
    ResetError when the datagram is not one to answer (see the module docstring)."""
    if len(sender_mac) != 6 or len(from_mac) != 6:
        raise ResetError("MAC addresses must be 6 bytes")
    if not ip_packet:
        raise ResetError("empty packet")
    v = ip_packet[0] >> 4
    if v == 4:
        return receiver_mac_to(sender_mac, from_mac, ETH_IPV4) + _v4(ip_packet)
    if v == 6:
        return receiver_mac_to(sender_mac, from_mac, ETH_IPV6) + _v6(ip_packet)
    raise ResetError(f"IP version {v}")


def _v4(ip: bytes) -> bytes:
    ihl = (ip[0] & 0x0F) * 4
    if ihl < 20 or len(ip) < ihl + 8:
        raise ResetError("short IPv4 datagram")
    if ip[9] != IPPROTO_UDP:
        raise ResetError("not UDP")
    if struct.unpack_from("!H", ip, 6)[0] & 0x1FFF:
        raise ResetError("a fragment other than the first")
    src, dst = ipaddress.IPv4Address(ip[12:16]), ipaddress.IPv4Address(ip[16:20])
    if dst.is_multicast or dst == _BROADCAST or not single_host(src):
        raise ResetError("not to or from a single host")
    total = struct.unpack_from("!H", ip, 2)[0]
    quote = bytes(ip[:min(total or len(ip), len(ip), QUOTE_V4)])
    icmp = struct.pack("!BBHI", 3, 3, 0, 0) + quote
    icmp = icmp[:2] + struct.pack("!H", _csum(icmp)) + icmp[4:]
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, dst.packed, src.packed)
    return h[:10] + struct.pack("!H", _csum(h)) + h[12:] + icmp


def _v6(ip: bytes) -> bytes:
    if len(ip) < 48:
        raise ResetError("short IPv6 datagram")
    if ip[6] != IPPROTO_UDP:
        raise ResetError("not UDP (or IPv6 extension headers)")
    src, dst = ipaddress.IPv6Address(ip[8:24]), ipaddress.IPv6Address(ip[24:40])
    if dst.is_multicast or not single_host(src):
        raise ResetError("not to or from a single host")
    end = 40 + struct.unpack_from("!H", ip, 4)[0]
    quote = bytes(ip[:min(end, len(ip), QUOTE_V6)])
    icmp = struct.pack("!BBHI", 1, 4, 0, 0) + quote
    pseudo = dst.packed + src.packed + struct.pack("!IxxxB", len(icmp), 58)
    icmp = icmp[:2] + struct.pack("!H", _csum(pseudo + icmp)) + icmp[4:]
    return struct.pack("!IHBB16s16s", 6 << 28, len(icmp), 58, 64, dst.packed, src.packed) + icmp

