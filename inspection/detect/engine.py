"""The detector: prefilter, then verify every block of each candidate rule.

`Detector(rules)` prepares each rule once (pcre translated, blocks planned);
a rule the verifier cannot honour is kept out and listed in `skipped` with
the keyword and reason, never run with a guessed meaning. `inspect` takes the
raw buffers of one packet or transaction (``{Buffer.PAYLOAD: ..., 
Buffer.HTTP_URI: ...}``) and returns the rules whose every block matches.

What it evaluates: the payload blocks (transforms, bsize, every item),
``dsize`` (the packet's payload size), ``urilen`` and the ``flow``
direction. What it leaves to the engine, through the optional `header_check`
callback called for each candidate before its payload is verified:
protocol, addresses, ports, ``flow:established`` and the other flow state,
flowbits/xbits/flowint, thresholds, app-layer protocol and events, TCP flags,
itype/icode, stream_size, ip_proto, tls.version. Without a callback those are
treated as satisfied, which is what a payload-only test needs and never what
the live engine should do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from signatures.buffers import Buffer
from signatures.model import Rule

from inspection.detect.errors import UnsupportedRule
from inspection.detect.prefilter import BlockKey, Prefilter, PrefilterImage
from inspection.detect.verify import (
    DEFAULT_BUDGET, BlockPlan, BlockResult, MatchContext, compile_block, inspect_block, rule_blocks,
)
from inspection.model import Direction

HeaderCheck = Callable[[Rule], bool]


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched; `index` is its position in the detector's rule list."""

    rule: Rule
    index: int

    @property
    def sid(self) -> int:
        return self.rule.sid


@dataclass(frozen=True, slots=True)
class SkippedRule:
    """A rule the detector will not run, and why (`keyword` as in rules: ``pcre``, ``byte_test``...)."""

    index: int
    rule: Rule
    keyword: str
    reason: str


@dataclass(frozen=True, slots=True)
class Inspection:
    """What one `scan` found: the matches, how many rules were verified, which ran out of work budget."""

    matches: tuple[Match, ...]
    candidates: int
    exhausted: tuple[int, ...]
    work: int


@dataclass(frozen=True, slots=True)
class _RulePlan:
    index: int
    rule: Rule
    blocks: tuple[BlockPlan, ...]
    to_server: bool
    to_client: bool


class _Unplanned:
    """Marks a rule of a `Detector.prepared` detector that has not been planned yet."""

    __slots__ = ()


_UNPLANNED = _Unplanned()


class Detector:
    """Rules prepared for matching. Not thread-safe (Hyperscan scratch): one per worker."""

    def __init__(self, rules: Sequence[Rule], *, budget: int = DEFAULT_BUDGET,
                 prefilter: PrefilterImage | None = None) -> None:
        self.rules = tuple(rules)
        self.budget = budget
        regexes: dict = {}
        plans: list[_RulePlan | None] = []
        skipped: list[SkippedRule] = []
        for i, rule in enumerate(self.rules):
            try:
                plans.append(_plan(i, rule, regexes))
            except UnsupportedRule as e:
                plans.append(None)
                skipped.append(SkippedRule(i, rule, e.keyword, e.reason))
        self._plans: list[_RulePlan | None | _Unplanned] = plans   # type: ignore[assignment]
        self._regexes = regexes
        self.skipped = tuple(skipped)
        self.late_skipped: list[SkippedRule] = []
        if prefilter is None:
            self.prefilter = Prefilter(self.rules, skip=(s.index for s in skipped))
        else:
            self.prefilter = Prefilter.from_image(prefilter, self.rules)

    @classmethod
    def prepared(cls, rules: Sequence[Rule], skipped: Sequence[SkippedRule], prefilter: PrefilterImage, *,
                 budget: int = DEFAULT_BUDGET) -> "Detector":
        """A detector from a compiled bundle: the skips were decided at compile time by this same
        engine version, so nothing is planned here; each rule is planned the first time it is a
        candidate. Planning all of ET Open (pcre translation and `re.compile`) costs ~0.6 s, which
        a bundle exists to avoid at start-up."""
        self = cls.__new__(cls)
        self.rules = tuple(rules)
        self.budget = budget
        self.skipped = tuple(skipped)
        self.late_skipped = []
        self._regexes = {}
        plans: list[_RulePlan | None | _Unplanned] = [_UNPLANNED] * len(self.rules)
        for s in self.skipped:
            plans[s.index] = None
        self._plans = plans
        self.prefilter = Prefilter.from_image(prefilter, self.rules)
        return self

    def _plan_late(self, index: int) -> _RulePlan | None:
        """Plan a rule of a `prepared` detector on first use. A rule this engine cannot plan after
        all (only possible if the bundle lied about its engine) is kept out and listed in
        `late_skipped`, never run with a guessed meaning."""
        rule = self.rules[index]
        try:
            plan: _RulePlan | None = _plan(index, rule, self._regexes)
        except UnsupportedRule as e:
            plan = None
            self.late_skipped.append(SkippedRule(index, rule, e.keyword, e.reason))
        self._plans[index] = plan
        return plan

    def inspect(self, buffers: Mapping[Buffer, bytes], *, direction: Direction | None = None,
                header_check: HeaderCheck | None = None, packet_size: int | None = None) -> list[Match]:
        """The rules that match these buffers, in rule order."""
        return list(self.scan(buffers, direction=direction, header_check=header_check,
                              packet_size=packet_size).matches)

    def scan(self, buffers: Mapping[Buffer, bytes], *, direction: Direction | None = None,
             header_check: HeaderCheck | None = None, packet_size: int | None = None) -> Inspection:
        """`inspect` with the counters: candidates verified, rules abandoned for the budget, work units.

        `packet_size` is what ``dsize`` compares (default: the PAYLOAD buffer's
        length; a dsize rule does not match when neither is known).
        """
        views: dict[BlockKey, bytes | None] = {}

        def view(key: BlockKey) -> bytes | None:
            if key in views:
                return views[key]
            raw = buffers.get(key[0])
            data = None if raw is None else self.prefilter.transform(key, raw)
            views[key] = data
            return data

        if packet_size is None and Buffer.PAYLOAD in buffers:
            packet_size = len(buffers[Buffer.PAYLOAD])
        candidates = self.prefilter.candidates_for(buffers, view)
        matches: list[Match] = []
        exhausted: list[int] = []
        work = 0
        plans = self._plans
        for idx in sorted(candidates):
            plan = plans[idx]
            if plan is _UNPLANNED:
                plan = self._plan_late(idx)
            if plan is None or not _rule_level(plan, buffers, direction, packet_size):
                continue
            if header_check is not None and not header_check(plan.rule):
                continue
            ctx = MatchContext(budget=self.budget)
            ok = True
            for bp in plan.blocks:
                data = _prepare(bp, buffers, views)
                if data is None:
                    ok = False
                    break
                result = inspect_block(bp, data, ctx)
                if result is not BlockResult.MATCH:
                    ok = False
                    if result is BlockResult.EXHAUSTED:
                        exhausted.append(idx)
                    break
            work += ctx.work
            if ok:
                matches.append(Match(plan.rule, idx))
        return Inspection(tuple(matches), len(candidates), tuple(exhausted), work)


def _prepare(bp: BlockPlan, buffers: Mapping[Buffer, bytes], views: dict[BlockKey, bytes | None]) -> bytes | None:
    key = bp.key
    if key in views:
        return views[key]
    raw = buffers.get(key[0])
    data = None if raw is None else bp.prepare(raw)
    views[key] = data
    return data


def _plan(index: int, rule: Rule, regexes: dict) -> _RulePlan:
    blocks = tuple(compile_block(b, base64_block=b64, regexes=regexes) for b, b64 in rule_blocks(rule.buffers))
    flow = rule.flow
    return _RulePlan(index, rule, blocks, bool(flow and flow.to_server), bool(flow and flow.to_client))


def _rule_level(plan: _RulePlan, buffers: Mapping[Buffer, bytes], direction: Direction | None,
                packet_size: int | None) -> bool:
    if direction is not None:
        if plan.to_server and direction is not Direction.TO_SERVER:
            return False
        if plan.to_client and direction is not Direction.TO_CLIENT:
            return False
    rule = plan.rule
    if rule.dsize is not None and (packet_size is None or not rule.dsize.matches(packet_size)):
        return False
    if rule.urilen is not None:
        uri = buffers.get(Buffer.HTTP_URI_RAW if rule.urilen_raw else Buffer.HTTP_URI)
        if uri is None or not rule.urilen.matches(len(uri)):
            return False
    return True
