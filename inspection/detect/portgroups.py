"""Packet-rule candidates narrowed by protocol and port before they are verified.

Suricata splits its rules into groups per protocol and port so that the
fast-pattern search for web traffic never proposes the RDP or DCERPC rules,
whose two- and three-byte patterns turn up in any payload. Here the
prefilter stays one database per buffer, and its hits are intersected with
the rules that can apply to the packet's protocol and ports: three C-level
set intersections per packet instead of a header check per false candidate.
Wide or negated port specs (``1024:``, ``!80``) are filed under "any" and
their few candidates are then tested against the packet's ports one by one
(ET's UDP peer-to-peer rules would otherwise be verified on every DNS
packet). The result is only ever a superset of what may match; the verifier
still checks every rule in full.

The set of rules a packet's protocol and ports allow is computed once per
port class and cached (`group`): a port a group indexes is its own class, any
other port falls into the segment between the wide specs' bounds that holds
it, and every port of one segment gives the same answer. A flow's ephemeral
ports thus share a handful of classes, and a packet costs one cache lookup
and one intersection instead of three intersections and the wide-rule tests.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterable

from signatures.model import Rule
from signatures.netspec import intervals_contain

SMALL_PORT_SET = 64        # specs covering more ports than this are not indexed port by port
PROTOS = (6, 17, 1, 58, 132)
_EMPTY: frozenset[int] = frozenset()
GROUP_CACHE_MAX = 4096     # cached port classes; the cache starts afresh past this (counted in `cache_resets`)


@dataclass(frozen=True, slots=True)
class Group:
    """What one protocol and port class allows: every packet rule, those always verified, and
    those verified on a packet without payload."""

    allowed: frozenset[int]
    always: frozenset[int]
    bare: frozenset[int]


def _ports(spec) -> list[int] | None:
    """The ports of a spec when it is small enough to index, else None."""
    if spec.is_any:
        return None
    total = sum(hi - lo + 1 for lo, hi in spec.ranges)
    if total > SMALL_PORT_SET:
        return None
    return [p for lo, hi in spec.ranges for p in range(lo, hi + 1)]


class PortGroups:
    """For each IP protocol: the rules valid on any port, and those tied to a port."""

    def __init__(self, rules: Iterable[tuple[int, Rule, frozenset[int] | None]], *,
                 always: frozenset[int] = _EMPTY, bare: frozenset[int] = _EMPTY) -> None:
        rules = list(rules)
        named = {p for _, _, l4 in rules if l4 for p in l4}
        # one group per protocol a rule names; 0 stands for every other protocol
        groups: dict[int, tuple[set[int], dict[int, set[int]], dict[int, set[int]]]] = {
            p: (set(), {}, {}) for p in (*PROTOS, *named, 0)}
        # rules filed under "any" although their ports are limited: (src, dst, both ways)
        self._wide: dict[int, tuple] = {}
        for idx, rule, l4 in rules:
            dports, sports = _ports(rule.dst_ports), _ports(rule.src_ports)
            if dports is None and sports is None and not (rule.dst_ports.is_any and rule.src_ports.is_any):
                self._wide[idx] = (None if rule.src_ports.is_any else rule.src_ports.ranges,
                                   None if rule.dst_ports.is_any else rule.dst_ports.ranges, rule.bidirectional)
            for proto, (any_ports, by_dport, by_sport) in groups.items():
                if l4 is not None and (proto not in l4 or proto == 0):
                    continue
                if dports is not None:
                    for p in dports:
                        by_dport.setdefault(p, set()).add(idx)
                        if rule.bidirectional:
                            by_sport.setdefault(p, set()).add(idx)
                elif sports is not None:
                    for p in sports:
                        by_sport.setdefault(p, set()).add(idx)
                        if rule.bidirectional:
                            by_dport.setdefault(p, set()).add(idx)
                else:
                    any_ports.add(idx)
        self._groups = {p: (frozenset(a), {k: frozenset(v) for k, v in d.items()},
                            {k: frozenset(v) for k, v in s.items()}) for p, (a, d, s) in groups.items()}
        self._wide_set = frozenset(self._wide)
        self._always, self._bare = always, bare
        bounds: set[int] = set()
        for src, dst, _ in self._wide.values():
            for ivs in (src, dst):
                for lo, hi in ivs or ():
                    bounds.update((lo, hi + 1))
        self._bounds = sorted(bounds)
        self._indexed = frozenset(p for _, d, s in self._groups.values() for ports in (d, s) for p in ports)
        self._cache: dict[tuple[int, int, int], Group] = {}
        self.cache_resets = 0

    def group(self, proto: int, sport: int, dport: int) -> Group:
        """The rules a packet of `proto` from `sport` to `dport` may match (cached per port class)."""
        indexed = self._indexed
        key = (proto, sport if sport in indexed else -1 - bisect_right(self._bounds, sport),
               dport if dport in indexed else -1 - bisect_right(self._bounds, dport))
        g = self._cache.get(key)
        if g is None:
            allowed = self._allowed(proto, sport, dport)
            g = Group(allowed, self._always & allowed, self._bare & allowed)
            if len(self._cache) >= GROUP_CACHE_MAX:
                self._cache.clear()
                self.cache_resets += 1
            self._cache[key] = g
        return g

    def narrow(self, candidates: set[int], proto: int, sport: int, dport: int) -> set[int]:
        """The candidates that may apply to a packet of `proto` from `sport` to `dport`."""
        return candidates & self.group(proto, sport, dport).allowed

    def _allowed(self, proto: int, sport: int, dport: int) -> frozenset[int]:
        """Every rule that may apply to a packet of `proto` from `sport` to `dport`, computed afresh."""
        any_ports, by_dport, by_sport = self._groups.get(proto) or self._groups[0]
        out = set(any_ports)
        for idx in any_ports & self._wide_set:
            if not self._ports_ok(idx, sport, dport):
                out.discard(idx)
        out |= by_dport.get(dport, _EMPTY)
        out |= by_sport.get(sport, _EMPTY)
        return frozenset(out)

    def _ports_ok(self, idx: int, sport: int, dport: int) -> bool:
        src, dst, both = self._wide[idx]
        if (src is None or intervals_contain(src, sport)) and (dst is None or intervals_contain(dst, dport)):
            return True
        return both and (src is None or intervals_contain(src, dport)) and (dst is None or intervals_contain(dst, sport))
