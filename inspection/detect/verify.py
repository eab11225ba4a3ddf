"""One buffer's payload items evaluated with Suricata's semantics, backtracking included.

This is ``DetectEngineContentInspection`` in Python. The items of a
`BufferBlock` run in rule order against one buffer with a cursor (the end of
the previous match). A content or pcre that matches hands the cursor to the
next item; when the rest of the chain then fails, Suricata searches the same
window again from one byte after the previous occurrence and retries the
rest, until it runs out of occurrences. Like Suricata it only retries where a
later item can see the difference, and gives up early where it cannot help:

- a content retries only if a later ``within``, a relative isdataat/pcre/byte_*
  or a negated ``distance`` content is anchored on it (Suricata's
  ``WITHIN_NEXT``): with ``distance`` alone the first occurrence leaves the
  widest window, so later ones cannot do better. "Anchored on" follows the
  cursor (see `_anchor`), where Suricata takes the previous content even when
  it is a negated one that does not move the cursor and so misses matches;
- a pcre retries if any relative item is anchored on it (``RELATIVE_NEXT``);
- a failed content without distance/within, a failed non-variable isdataat, a
  found negated content that depends on nothing: failure is final (Suricata's
  "discontinue", -1), no earlier item is retried.

Every step costs one unit of a per-block budget (Suricata's
``inspection_recursion_limit``, 3000); a block that runs out is abandoned as
no match and counted in `MatchContext.exhausted`, never left to run away on
hostile data. Python's `re` itself cannot be interrupted: a pcre with
catastrophic backtracking is bounded only by its own input size.

Semantics chosen where Suricata's code and its documentation disagree (both
only reachable with odd rules): a negated ``endswith`` content fails only when
the window really ends with the pattern (Suricata tests its first occurrence),
and a ``within`` window that ends before the buffer start is empty (Suricata's
unsigned arithmetic turns it into "to the end of the buffer"). Kept from
Suricata's code although surprising: ``base64_decode`` is terminal (items after
it in the same buffer are never inspected, and without a ``base64_data`` block
the rule cannot match).
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Callable

from signatures.buffers import Buffer
from signatures.matches import (
    Base64Decode, BufferBlock, ByteExtract, ByteJump, ByteTest, ContentMatch, IsDataAt, Match, PcreMatch,
)

from inspection.detect import byteops
from inspection.detect.errors import UnsupportedItem
from inspection.detect.pcre import Regex, compile_pcre
from inspection.detect.transforms import compile_transforms, run_compiled

DEFAULT_BUDGET = 3000
_HUGE_ISDATAAT = 100_000_000     # Suricata: an extracted isdataat size this big never fits


class BlockResult(enum.Enum):
    MATCH = "match"
    NO_MATCH = "no_match"
    EXHAUSTED = "exhausted"      # the work budget ran out: treated as no match, and reported


@dataclass(slots=True)
class MatchContext:
    """Per-inspection state shared by the blocks of a rule (and the rules of a packet).

    `variables` are the byte_extract values; as in Suricata they persist
    across the blocks of a rule, in rule order. `work` and `exhausted` are
    counters for the caller's statistics.
    """

    budget: int = DEFAULT_BUDGET
    variables: dict[str, int] = field(default_factory=dict)
    work: int = 0
    exhausted: int = 0
    # pcre captures of the match, (kind, name, value) with kind pkt/flow/alert; None until one is kept
    captures: list[tuple[str, str, bytes]] | None = None


class _Kind(enum.IntEnum):
    CONTENT = 0
    PCRE = 1
    ISDATAAT = 2
    BYTE_TEST = 3
    BYTE_JUMP = 4
    BYTE_EXTRACT = 5
    BASE64 = 6


@dataclass(frozen=True, slots=True)
class Step:
    """One item with what Suricata derives from its neighbours at rule load time."""

    kind: _Kind
    item: Match
    retry: bool = False          # try later occurrences when the rest fails
    single: bool = False         # negated content that depends on nothing (found => final failure)
    needle: bytes = b""          # content pattern, lowercased for nocase
    regex: Regex | None = None
    captures: tuple[tuple[int | str, str, str], ...] = ()   # pcre: (group, kind, var name) to keep


MAX_CAPTURE = 1024   # bytes of a captured value kept (Suricata's vars are unbounded; ours are not)


def pcre_captures(m: PcreMatch, regex: Regex) -> tuple[tuple[int | str, str, str], ...]:
    """The groups a pcre keeps: the trailing ``,flow:NAME`` list (group 1, 2...), then the
    named groups ``(?P<pkt_NAME>..)``, ``(?P<flow_NAME>..)``, ``(?P<alert_NAME>..)``."""
    out: list[tuple[int | str, str, str]] = [(i + 1, kind, name) for i, (kind, name) in enumerate(m.captures)
                                              if i < regex.compiled.groups]
    for group in regex.compiled.groupindex:
        kind, sep, name = group.partition("_")
        if sep and name and kind in ("pkt", "flow", "alert"):
            out.append((group, kind, name))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class BlockPlan:
    """A block ready to run: steps, compiled transforms, and the base64_data block it may decode into."""

    block: BufferBlock
    steps: tuple[Step, ...]
    transforms: tuple[Callable[[bytes], bytes], ...] = ()
    base64: "BlockPlan | None" = None

    @property
    def key(self) -> tuple:
        return (self.block.buffer, self.block.transforms)

    def prepare(self, raw: bytes) -> bytes:
        """The buffer this block inspects: `raw` after the block's transforms."""
        return run_compiled(raw, self.transforms) if self.transforms else raw


_KINDS = {ContentMatch: _Kind.CONTENT, PcreMatch: _Kind.PCRE, IsDataAt: _Kind.ISDATAAT, ByteTest: _Kind.BYTE_TEST,
          ByteJump: _Kind.BYTE_JUMP, ByteExtract: _Kind.BYTE_EXTRACT, Base64Decode: _Kind.BASE64}


def _is_relative(item: Match) -> bool:
    if isinstance(item, ContentMatch):
        return item.relative
    return bool(getattr(item, "relative", False))


def compile_block(block: BufferBlock, *, base64_block: BufferBlock | None = None,
                  regexes: dict[PcreMatch, Regex] | None = None) -> BlockPlan:
    """Plan a block; raises `UnsupportedRule` (a subclass) for what cannot be evaluated.

    `base64_block` is the rule's ``base64_data`` block, run on what a
    ``base64_decode`` item of this block decodes. `regexes` caches compiled
    pcres across blocks and rules.
    """
    items = block.matches
    n = len(items)
    within_next = [False] * n      # Suricata's DETECT_CONTENT_WITHIN_NEXT / DETECT_PCRE_RELATIVE_NEXT
    distance_next = [False] * n
    for j, it in enumerate(items):
        if not _is_relative(it):
            continue
        prev = _anchor(items, j)
        if prev < 0:
            continue
        if isinstance(items[prev], ContentMatch) and isinstance(it, ContentMatch) and it.within is None \
                and not it.negated:
            distance_next[prev] = True
        else:
            within_next[prev] = True
    steps = []
    for i, it in enumerate(items):
        _check_supported(it)
        kind = _KINDS[type(it)]
        # isinstance, not `kind`, so mypy narrows `it`: the same test, the match classes being disjoint
        if isinstance(it, ContentMatch):
            c = it
            single = c.negated and not (c.relative or within_next[i] or distance_next[i] or c.depth is not None
                                        or c.offset is not None or c.startswith)
            steps.append(Step(kind, c, retry=within_next[i], single=single,
                              needle=c.pattern.lower() if c.nocase else c.pattern))
        elif isinstance(it, PcreMatch):
            rx = _regex(it, regexes)
            steps.append(Step(kind, it, retry=within_next[i], regex=rx,
                              captures=() if it.negated else pcre_captures(it, rx)))
        else:
            steps.append(Step(kind, it))
    b64 = None
    if base64_block is not None and any(isinstance(it, Base64Decode) for it in items):
        b64 = compile_block(base64_block, regexes=regexes)
    return BlockPlan(block, tuple(steps), compile_transforms(block.transforms), b64)


def _anchor(items: tuple[Match, ...], j: int) -> int:
    """The content or pcre whose match end a relative item `j` starts from (-1: the buffer start).

    Negated patterns, isdataat and byte_test leave the cursor alone, so they
    are skipped. Suricata flags the previous content even when it is negated,
    so a relative item behind a negation never makes the real anchor retry and
    matches are lost (``content:"A"; content:!"B"; content:!"A"; distance:0;``
    on ``AA``); this follows the cursor instead. A byte_jump/byte_extract in
    between is looked through: retrying is then merely cautious.
    """
    for k in range(j - 1, -1, -1):
        m = items[k]
        if isinstance(m, (ContentMatch, PcreMatch)) and not m.negated:
            return k
    return -1


def _check_supported(it: Match) -> None:
    if isinstance(it, (ByteTest, ByteJump, ByteExtract)) and it.dce:
        raise UnsupportedItem(type(it).__name__.lower(), "'dce' takes the byte order from DCERPC state, "
                                                         "which the verifier does not see")


def _regex(m: PcreMatch, cache: dict[PcreMatch, Regex] | None) -> Regex:
    if cache is None:
        return compile_pcre(m.pattern, m.compile_flags)
    r = cache.get(m)
    if r is None:
        r = cache[m] = compile_pcre(m.pattern, m.compile_flags)
    return r


def match_block(block: BufferBlock | BlockPlan, data: bytes, ctx: MatchContext | None = None) -> bool:
    """Does the block match `data` (the raw buffer; the block's transforms are applied here)?"""
    plan = block if isinstance(block, BlockPlan) else compile_block(block)
    return inspect_block(plan, plan.prepare(data), ctx or MatchContext()) is BlockResult.MATCH


def inspect_block(plan: BlockPlan, data: bytes, ctx: MatchContext) -> BlockResult:
    """Run a planned block on the buffer it inspects (already transformed)."""
    bsize = plan.block.bsize
    if bsize is not None and not bsize.matches(len(data)):
        return BlockResult.NO_MATCH
    if not plan.steps:
        return BlockResult.MATCH
    search = _Search(plan, data, ctx)
    try:
        r = search.run(0, 0)
    except _OutOfBudget:
        ctx.exhausted += 1
        return BlockResult.EXHAUSTED
    finally:
        ctx.work += ctx.budget - search.left
    return BlockResult.MATCH if r == 1 else BlockResult.NO_MATCH


class _OutOfBudget(Exception):
    pass


class _Search:
    """The recursive inspection; returns 1 (match), 0 (no match), -1 (no match, stop retrying)."""

    __slots__ = ("steps", "n", "data", "_lower", "ctx", "vars", "left", "plan")

    def __init__(self, plan: BlockPlan, data: bytes, ctx: MatchContext, left: int | None = None) -> None:
        self.plan = plan
        self.steps = plan.steps
        self.n = len(plan.steps)
        self.data = data
        self._lower: bytes | None = None
        self.ctx = ctx
        self.vars = ctx.variables
        self.left = ctx.budget if left is None else left

    def lower(self) -> bytes:
        if self._lower is None:
            self._lower = self.data.lower()
        return self._lower

    def next(self, i: int, cursor: int) -> int:
        return 1 if i + 1 == self.n else self.run(i + 1, cursor)

    def run(self, i: int, cursor: int) -> int:
        self.left -= 1
        if self.left < 0:
            raise _OutOfBudget
        st = self.steps[i]
        kind = st.kind
        # `kind` fixes the type of `st.item`, which mypy cannot see: hence the ignores here and in the methods
        if kind is _Kind.CONTENT:
            return self.content(st, i, cursor)
        if kind is _Kind.PCRE:
            return self.pcre(st, i, cursor)
        if kind is _Kind.ISDATAAT:
            return self.isdataat(st.item, i, cursor)  # type: ignore[arg-type]
        if kind is _Kind.BYTE_TEST:
            ok = byteops.byte_test(st.item, self.data, cursor, self.vars)  # type: ignore[arg-type]
            return self.next(i, cursor) if ok else 0
        if kind is _Kind.BYTE_JUMP:
            to = byteops.byte_jump(st.item, self.data, cursor, self.vars)  # type: ignore[arg-type]
            return 0 if to is None else self.next(i, to)
        if kind is _Kind.BYTE_EXTRACT:
            got = byteops.byte_extract(st.item, self.data, cursor)  # type: ignore[arg-type]
            if got is None:
                return 0
            self.vars[st.item.name] = got[0]  # type: ignore[union-attr]
            return self.next(i, got[1])
        return self.base64(st.item, cursor)  # type: ignore[arg-type]

    def value(self, ref) -> int:
        return ref if isinstance(ref, int) else self.vars.get(ref, 0)

    def content(self, st: Step, i: int, cursor: int) -> int:
        c: ContentMatch = st.item  # type: ignore[assignment]
        length = len(self.data)
        if c.relative:
            dist = self.value(c.distance) if c.distance is not None else 0
            start = 0 if dist < 0 and -dist > cursor else cursor + dist
            end = length
            if c.within is not None:
                end = min(end, cursor + self.value(c.within) + dist)
        elif c.startswith:
            start, end = 0, len(c.pattern)
        else:
            start = self.value(c.offset) if c.offset is not None else 0
            end = start + self.value(c.depth) if c.depth is not None else length
        end = min(end, length)
        if start > end or end <= 0:
            return self.next(i, cursor) if c.negated else 0
        hay = self.lower() if c.nocase else self.data
        needle = st.needle
        size = len(needle)
        if c.endswith:
            at = length - size
            p = at if end == length and at >= start and hay.startswith(needle, at) else -1
        else:
            p = hay.find(needle, start, end)
        if c.negated:
            if p < 0:
                return self.next(i, cursor)
            return -1 if st.single else 0
        while True:
            if p < 0:
                return 0 if c.relative else -1
            r = self.next(i, p + size)
            if r != 0:
                return r
            if not st.retry:
                return -1
            if p + 1 > end:
                return 0
            p = -1 if c.endswith else hay.find(needle, p + 1, end)

    def pcre(self, st: Step, i: int, cursor: int) -> int:
        m: PcreMatch = st.item  # type: ignore[assignment]
        regex = st.regex
        assert regex is not None
        base = cursor if m.relative else 0
        subject = self.data[base:] if base else self.data
        if m.negated:
            return 0 if regex.find(subject, 0) is not None else self.next(i, cursor)
        pos = 0
        while True:
            if pos > len(subject):
                return 0
            found = regex.find(subject, pos)
            if found is None:
                return 0
            r = self.next(i, base + found.end())
            if r == 1 and st.captures:   # the whole block matched through this match: keep its groups
                self._keep(st, found)
            if r != 0 or not st.retry:
                return r
            pos = found.start() + 1

    def _keep(self, st: Step, found: re.Match[bytes]) -> None:
        caps = self.ctx.captures
        if caps is None:
            caps = self.ctx.captures = []
        for group, kind, name in st.captures:
            value = found.group(group)
            if value is not None:
                caps.append((kind, name, value[:MAX_CAPTURE]))

    def isdataat(self, item: IsDataAt, i: int, cursor: int) -> int:
        var = isinstance(item.size, str)
        size = self.value(item.size)
        if var and size >= _HUGE_ISDATAAT:
            return self.next(i, cursor) if item.negated else 0
        fail = -1 if not var else 0
        length = len(self.data)
        if item.relative:
            present = cursor + size <= length
            if not present:
                return self.next(i, cursor) if item.negated else fail
            return 0 if item.negated else self.next(i, cursor)
        if size < length:
            return fail if item.negated else self.next(i, cursor)
        return self.next(i, cursor) if item.negated else fail

    def base64(self, item: Base64Decode, cursor: int) -> int:
        # Suricata: base64_decode is terminal. The base64_data items run on the decoded bytes
        # (cursor reset, same budget); their verdict is the block's. Nothing decoded: no match.
        decoded = byteops.base64_decode(item, self.data, cursor)
        inner = self.plan.base64
        if not decoded or inner is None or not inner.steps:
            return 0
        sub = _Search(inner, decoded, self.ctx, self.left)
        try:
            r = sub.run(0, 0)
        finally:
            self.left = sub.left
        return 1 if r == 1 else 0


def rule_blocks(blocks: tuple[BufferBlock, ...]) -> tuple[tuple[BufferBlock, BufferBlock | None], ...]:
    """The blocks a rule inspects directly, each with the rule's base64_data block (run through base64_decode)."""
    b64 = next((b for b in blocks if b.buffer is Buffer.BASE64_DATA), None)
    return tuple((b, b64) for b in blocks if b.buffer is not Buffer.BASE64_DATA)
