"""The key correctness test: the Detector (parser -> prefilter -> verifier) agrees with brute force.

Random rules (1-3 contents each, random modifiers: nocase, negation,
offset/depth, distance/within with negative distances, startswith, endswith)
are written as rule text, parsed and loaded into one Detector; random data
over a small alphabet makes repeated and overlapping occurrences common. The
reference below tries every occurrence of every content, which is what
Suricata's backtracking with its pruning must be equivalent to on content
chains: its shortcuts (no retry after a distance-only successor, giving up
after an independent failure) are only sound if this holds.
"""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings, strategies as st

from signatures.buffers import Buffer
from signatures.parser import parse_rule

from inspection.detect.engine import Detector
from inspection.detect.verify import match_block


@dataclass(frozen=True)
class Spec:
    pattern: bytes
    negated: bool = False
    nocase: bool = False
    offset: int | None = None
    depth: int | None = None
    distance: int | None = None
    within: int | None = None
    startswith: bool = False
    endswith: bool = False

    def text(self) -> str:
        parts = [f'content:{"!" if self.negated else ""}"{self.pattern.decode()}";']
        for name in ("offset", "depth", "distance", "within"):
            v = getattr(self, name)
            if v is not None:
                parts.append(f"{name}:{v};")
        for name in ("nocase", "startswith", "endswith"):
            if getattr(self, name):
                parts.append(f"{name};")
        return " ".join(parts)


# --- the brute-force reference --------------------------------------------------------------

def _window(s: Spec, cursor: int, length: int) -> tuple[int, int]:
    if s.startswith:
        return 0, min(len(s.pattern), length)
    if s.distance is not None or s.within is not None:
        d = s.distance or 0
        start = max(0, cursor + d)
        end = length if s.within is None else min(length, cursor + d + s.within)
        return start, end
    start = s.offset or 0
    end = length if s.depth is None else min(length, start + s.depth)
    return start, end


def _occurrences(s: Spec, data: bytes, cursor: int) -> list[int]:
    start, end = _window(s, cursor, len(data))
    n = len(s.pattern)
    hay, pat = (data.lower(), s.pattern.lower()) if s.nocase else (data, s.pattern)
    return [p for p in range(start, end - n + 1)
            if hay[p:p + n] == pat and (not s.endswith or p + n == len(data))]


def reference(specs: tuple[Spec, ...], data: bytes) -> bool:
    """Is there any choice of occurrences that satisfies every content in order?"""
    def go(i: int, cursor: int) -> bool:
        if i == len(specs):
            return True
        s = specs[i]
        found = _occurrences(s, data, cursor)
        if s.negated:
            return not found and go(i + 1, cursor)     # a negation never moves the cursor
        return any(go(i + 1, p + len(s.pattern)) for p in found)
    return go(0, 0)


# --- strategies ---------------------------------------------------------------------------------

@st.composite
def specs(draw) -> Spec:
    pattern = draw(st.text(alphabet="abAB", min_size=1, max_size=3)).encode()
    n = len(pattern)
    mode = draw(st.sampled_from(["plain", "absolute", "relative", "relative", "startswith"]))
    kw: dict = {"negated": draw(st.booleans()), "nocase": draw(st.booleans()),
                "endswith": draw(st.integers(0, 3)) == 0}
    if mode == "absolute":
        kw["offset"] = draw(st.none() | st.integers(0, 6))
        kw["depth"] = draw(st.none() | st.integers(n, n + 6))
    elif mode == "relative":
        kw["distance"] = draw(st.none() | st.integers(-6, 6))
        kw["within"] = draw(st.none() | st.integers(n, n + 8))
        if kw["distance"] is None and kw["within"] is None:
            kw["distance"] = 0
    elif mode == "startswith":
        kw["startswith"] = True
    return Spec(pattern, **kw)


chains = st.lists(specs(), min_size=1, max_size=3).map(tuple)
payloads = st.text(alphabet="abAB.", max_size=24).map(str.encode)


def _rules(chain_list: list[tuple[Spec, ...]]):
    return [parse_rule(f'alert tcp any any -> any any (msg:"r"; {" ".join(s.text() for s in chain)} sid:{i + 1};)')
            for i, chain in enumerate(chain_list)]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains, payloads)
def test_verifier_agrees_with_brute_force(chain, data):
    r = _rules([chain])[0]
    assert match_block(r.buffers[0], data) == reference(chain, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chains, min_size=1, max_size=5), st.lists(payloads, min_size=1, max_size=4))
def test_detector_agrees_with_brute_force(chain_list, datas):
    detector = Detector(_rules(chain_list))
    for data in datas:
        got = {m.index for m in detector.inspect({Buffer.PAYLOAD: data})}
        want = {i for i, chain in enumerate(chain_list) if reference(chain, data)}
        assert got == want, (data, [c.text() for chain in chain_list for c in chain])
