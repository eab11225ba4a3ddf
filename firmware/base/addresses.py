"""What may stand for a host somewhere beyond the router: one rule for every place that asks.

The DNS block answer (netconfig's file and `utm run --dns-block-answer`) must be
an address a device can open a connection to through its default route: never
multicast, loopback, link-local, unspecified or the IPv4 broadcast address.
"""
from __future__ import annotations

import ipaddress

__all__ = ["routable_host"]

_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def routable_host(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (addr.is_multicast or addr.is_unspecified or addr.is_loopback or addr.is_link_local
                or addr == _BROADCAST)
