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
"""
from __future__ import annotations

from typing import Iterable

from signatures.model import Rule
from signatures.netspec import intervals_contain

SMALL_PORT_SET = 64        # specs covering more ports than this are not indexed port by port
PROTOS = (6, 17, 1, 58, 132)
_EMPTY: frozenset[int] = frozenset()


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

    def __init__(self, rules: Iterable[tuple[int, Rule, frozenset[int] | None]]) -> None:
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

    def narrow(self, candidates: set[int], proto: int, sport: int, dport: int) -> set[int]:
        """The candidates that may apply to a packet of `proto` from `sport` to `dport`."""
        g = self._groups.get(proto) or self._groups[0]
        any_ports, by_dport, by_sport = g
        out = candidates & any_ports
        if out:
            wide = out & self._wide_set
            if wide:
                for idx in wide:
                    if not self._ports_ok(idx, sport, dport):
                        out.discard(idx)
        d = by_dport.get(dport)
        if d:
            out |= candidates & d
        s = by_sport.get(sport)
        if s:
            out |= candidates & s
        return out

    def _ports_ok(self, idx: int, sport: int, dport: int) -> bool:
        src, dst, both = self._wide[idx]
        if (src is None or intervals_contain(src, sport)) and (dst is None or intervals_contain(dst, dport)):
            return True
        return both and (src is None or intervals_contain(src, dport)) and (dst is None or intervals_contain(dst, sport))
