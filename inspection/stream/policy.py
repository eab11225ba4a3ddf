"""Target-based reassembly: which copy of overlapping TCP data a receiver keeps.

Operating systems disagree on overlapping segments, and an evader uses that to
show the IDS one stream and the target another. Suricata picks a policy per
receiving host (``host-os-policy`` in suricata.yaml, default ``bsd``) and, for
segments not yet reassembled, keeps the old or the new bytes as that OS would.
`use_new_data` is Suricata's table (stream-tcp-list.c, IDS mode), decided from
where the new segment starts and ends against the one already held.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable

POLICIES = frozenset({"bsd", "bsd-right", "old-linux", "linux", "old-solaris", "solaris", "hpux10", "hpux11",
                      "irix", "macos", "windows", "windows2k3", "vista", "first", "last"})
DEFAULT_POLICY = "bsd"   # Suricata's default when no host-os-policy entry matches

_SAME_START_FULL = frozenset({"old-linux", "solaris", "hpux11"})
_STARTS_BEFORE = frozenset({"bsd", "hpux10", "irix", "windows", "windows2k3", "old-linux", "linux", "macos"})
_BEYOND_BOTH = frozenset({"solaris", "hpux11"})


def use_new_data(policy: str, new_start: int, new_end: int, old_start: int, old_end: int) -> bool:
    """Whether `policy` replaces the held segment's bytes [old_start, old_end) with the new
    segment's [new_start, new_end) where they overlap (and differ)."""
    if policy == "last":
        return True
    if new_start == old_start:
        if new_end < old_end:
            return False
        if new_end > old_end and policy == "linux":
            return True
        return policy in _SAME_START_FULL
    if new_start < old_start:
        if new_end >= old_end and policy in _BEYOND_BOTH:
            return True
        return policy in _STARTS_BEFORE
    return new_end > old_end and policy in _BEYOND_BOTH


class HostPolicies:
    """``host-os-policy``: policy -> addresses; the most specific network wins."""

    def __init__(self, entries: Iterable[tuple[str, str]] = (), default: str = DEFAULT_POLICY) -> None:
        self.default = default
        nets = []
        for policy, spec in entries:
            nets.append((ipaddress.ip_network(spec, strict=False), policy))
        nets.sort(key=lambda x: -x[0].prefixlen)
        self._nets = tuple(nets)

    def __bool__(self) -> bool:
        return bool(self._nets)

    def for_address(self, addr: bytes) -> str:
        if not self._nets or len(addr) not in (4, 16):
            return self.default
        ip = ipaddress.ip_address(addr)
        for net, policy in self._nets:
            if net.version == ip.version and ip in net:
                return policy
        return self.default
