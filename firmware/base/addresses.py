"""Which addresses stand for one host: the rules every place that asks shares.

`routable_host`: the DNS block answer (netconfig's file and `utm run
--dns-block-answer`) must be an address a device can open a connection to
through its default route: never multicast, loopback, link-local, unspecified
or the IPv4 broadcast address. `single_host`: a source the box may answer
(an ICMP error for a blocked datagram), which RFC 1122 and RFC 4443 allow
only for a single host: not multicast, unspecified, broadcast or 0.0.0.0/8.
"""
from __future__ import annotations

import ipaddress

__all__ = ["routable_host", "single_host"]

_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def routable_host(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (addr.is_multicast or addr.is_unspecified or addr.is_loopback or addr.is_link_local
                or addr == _BROADCAST)


def single_host(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (addr.is_multicast or addr.is_unspecified
                or (addr.version == 4 and (addr == _BROADCAST or addr.packed[0] == 0)))
