"""IP-only rules found by address, not by trying each one.

ET Open carries over a thousand IP-only rules (reputation lists of hundreds
of addresses each) and every flow direction asks which of them apply. Each
rule is indexed by the narrower of its two address specs: the spec's
intervals are cut into elementary segments, and a bisect over the segment
starts gives the rules whose indexed side covers an address. Rules where both
sides are wide (``any -> any``) are kept in a short list tried every time.
Candidates are then verified in full by the caller (protocol, both sides,
bidirectional rules); the index only has to never miss one.
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Sequence

from signatures.model import Rule
from signatures.netspec import AddressSpec

WIDE = 1 << 24     # a side covering more IPv4 addresses than a /8 is not worth indexing


def _size(spec: AddressSpec) -> int:
    return sum(hi - lo + 1 for lo, hi in spec.ipv4) + (sum(hi - lo + 1 for lo, hi in spec.ipv6) >> 96)


class _SegmentMap:
    """Address -> rule numbers, for one family and one side."""

    def __init__(self, entries: list[tuple[int, tuple[tuple[int, int], ...]]]) -> None:
        events: dict[int, list[tuple[int, int]]] = {}
        for idx, ivs in entries:
            for lo, hi in ivs:
                events.setdefault(lo, []).append((idx, 1))
                events.setdefault(hi + 1, []).append((idx, -1))
        starts: list[int] = []
        sets: list[tuple[int, ...]] = []
        active: dict[int, int] = {}
        for point in sorted(events):
            for idx, step in events[point]:
                n = active.get(idx, 0) + step
                if n:
                    active[idx] = n
                else:
                    active.pop(idx, None)
            starts.append(point)
            sets.append(tuple(sorted(active)))
        self._starts = starts
        self._sets = sets

    def lookup(self, value: int) -> tuple[int, ...]:
        i = bisect_right(self._starts, value) - 1
        return self._sets[i] if i >= 0 else ()


class IpOnlyIndex:
    """Rule numbers (positions in the rule list) of IP-only rules that may apply to an address pair."""

    def __init__(self, rules: Sequence[tuple[int, Rule]]) -> None:
        side: dict[tuple[int, str], list[tuple[int, tuple[tuple[int, int], ...]]]] = {}
        wide: list[int] = []
        for idx, rule in rules:
            src, dst = _size(rule.src), _size(rule.dst)
            if min(src, dst) > WIDE:
                wide.append(idx)
                continue
            # a bidirectional rule's narrow side may be either end of the packet: index it for both
            names = ("src", "dst") if rule.bidirectional else (("src",) if src <= dst else ("dst",))
            spec = rule.src if src <= dst else rule.dst
            for name in names:
                side.setdefault((4, name), []).append((idx, spec.ipv4))
                side.setdefault((6, name), []).append((idx, spec.ipv6))
        self._maps = {k: _SegmentMap(v) for k, v in side.items()}
        self._wide = tuple(wide)
        self.size = len(rules)

    def candidates(self, family: int, src: bytes, dst: bytes) -> set[int]:
        out = set(self._wide)
        s, d = int.from_bytes(src, "big"), int.from_bytes(dst, "big")
        m = self._maps.get((family, "src"))
        if m is not None:
            out.update(m.lookup(s))
        m = self._maps.get((family, "dst"))
        if m is not None:
            out.update(m.lookup(d))
        return out
