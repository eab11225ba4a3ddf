"""The detector: prefilter, then verify every block of each candidate rule.

`Detector(rules)` prepares each rule once (pcre translated, blocks planned);
a rule the verifier cannot honour is kept out and listed in `skipped` with
the keyword and reason, never run with a guessed meaning. `inspect` takes the
raw buffers of one packet or transaction (``{Buffer.PAYLOAD: ..., 
Buffer.HTTP_URI: ...}``) and returns the rules whose every block matches.

What it evaluates: the payload blocks (transforms, bsize, every item),
``dsize`` (the packet's payload size), ``urilen`` and the ``flow``
direction. The rest of a rule (protocol, addresses, ports, flow state, TCP
flags, ICMP type/code, flowbits) is checked by the caller through the
optional `header_check` callback, called for each candidate before its
payload is verified (see `header.HeaderCheck` and the inspector); without a
callback those are treated as satisfied, which is what a payload-only test
needs and never what the engine does. Each rule also gets its `Scope` here,
so that a packet, a transaction or a stream chunk only runs the rules that
Suricata would run at that moment.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

from signatures.buffers import Buffer
from signatures.matches import SizeOp
from signatures.model import Rule

from inspection.detect.errors import UnsupportedRule
from inspection.detect.header import L4_PROTOS, Scope, event_key, scope_of
from inspection.detect.portgroups import PortGroups
from inspection.detect.prefilter import BlockKey, Prefilter, PrefilterImage, choose_fast_pattern
from inspection.detect.verify import (
    DEFAULT_BUDGET, BlockPlan, BlockResult, MatchContext, compile_block, inspect_block, rule_blocks,
)
from inspection.model import Direction

HeaderCheck = Callable[[Rule], bool]
RESPONSE_BUFFERS = frozenset({
    Buffer.HTTP_STAT_CODE, Buffer.HTTP_STAT_MSG, Buffer.HTTP_RESPONSE_LINE, Buffer.HTTP_SERVER, Buffer.HTTP_LOCATION,
    Buffer.HTTP_RESPONSE_BODY, Buffer.HTTP_RESPONSE_HEADER, Buffer.FILE_DATA,
    Buffer.TLS_CERT_SUBJECT, Buffer.TLS_CERT_ISSUER, Buffer.TLS_CERT_SERIAL, Buffer.TLS_CERT_FINGERPRINT,
    Buffer.TLS_CERTS, Buffer.TLS_SUBJECTALTNAME, Buffer.JA3S_HASH, Buffer.JA3S_STRING})
EITHER_BUFFERS = frozenset({
    Buffer.HTTP_HEADER, Buffer.HTTP_HEADER_RAW, Buffer.HTTP_HEADER_NAMES, Buffer.HTTP_COOKIE,
    Buffer.HTTP_CONTENT_TYPE, Buffer.HTTP_CONTENT_LEN, Buffer.HTTP_PROTOCOL, Buffer.HTTP_START,
    Buffer.HTTP2_HEADER, Buffer.HTTP2_HEADER_NAME})

_BODY_BUFFERS = frozenset({Buffer.FILE_DATA, Buffer.HTTP_REQUEST_BODY})   # what `RuleInspector` feeds bodies to


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched; `index` is its position in the detector's rule list."""

    rule: Rule
    index: int
    captures: tuple[tuple[str, str, bytes], ...] = ()   # pcre captures kept: (pkt|flow|alert, name, value)

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
    blocks: tuple[BlockPlan, ...] | None     # None: not compiled yet (`Detector.prepared`)
    to_server: bool
    to_client: bool
    scope: Scope
    sizes: bool                        # has dsize or urilen
    buffers: frozenset[Buffer]
    l4: frozenset[int] | None          # IP protocols the header allows (None: any)
    payload: bool        # has items on the packet payload / stream: never run on an empty one


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
        self._plans = plans
        self._regexes = regexes
        self.skipped = tuple(skipped)
        self.late_skipped: list[SkippedRule] = []
        if prefilter is None:
            self.prefilter = Prefilter(self.rules, skip=(s.index for s in skipped))
        else:
            self.prefilter = Prefilter.from_image(prefilter, self.rules)
        self._index()

    @classmethod
    def prepared(cls, rules: Sequence[Rule], skipped: Sequence[SkippedRule], prefilter: PrefilterImage, *,
                 budget: int = DEFAULT_BUDGET) -> "Detector":
        """A detector from a compiled bundle. The skips were decided at compile time by this same
        engine version, so only the cheap part of each plan (scope, protocol, ports) is made here;
        a rule's blocks (pcre translation, `re.compile`: ~0.6 s for ET Open, which a bundle exists
        to avoid at start-up) are compiled the first time it is a candidate."""
        self = cls.__new__(cls)
        self.rules = tuple(rules)
        self.budget = budget
        self.skipped = tuple(skipped)
        self.late_skipped = []
        self._regexes = {}
        skip = {s.index for s in self.skipped}
        plans: list[_RulePlan | None] = []
        for i, rule in enumerate(self.rules):
            plan = None
            if i not in skip:
                try:
                    plan = _plan(i, rule, None)
                except UnsupportedRule as e:
                    self.late_skipped.append(SkippedRule(i, rule, e.keyword, e.reason))
            plans.append(plan)
        self._plans = plans
        self.prefilter = Prefilter.from_image(prefilter, self.rules)
        self._index()
        return self

    def _blocks_late(self, plan: _RulePlan) -> tuple[BlockPlan, ...] | None:
        """Compile the blocks of a `prepared` detector's rule on first use. A rule this engine cannot
        compile after all (only possible if the bundle lied about its engine) is kept out and listed
        in `late_skipped`, never run with a guessed meaning."""
        try:
            blocks = _blocks(plan.rule, self._regexes)
        except UnsupportedRule as e:
            self._plans[plan.index] = None
            self.late_skipped.append(SkippedRule(plan.index, plan.rule, e.keyword, e.reason))
            return None
        self._plans[plan.index] = replace(plan, blocks=blocks)
        return blocks

    def _index(self) -> None:
        by_scope: dict[Scope, list[int]] = {s: [] for s in Scope}
        bare: list[int] = []
        for i in sorted(self.prefilter.always):
            plan = self._plans[i]
            if plan is not None:
                by_scope[plan.scope].append(i)
                if plan.scope is Scope.PACKET and not plan.payload:
                    bare.append(i)
        self._always = {s: frozenset(v) for s, v in by_scope.items()}
        self._always_bare = frozenset(bare)
        # the prefilter tables worth scanning at each moment (a DNS query's payload need not be
        # searched for the packet rules' patterns again)
        keys: dict[Scope, set[BlockKey]] = {s: set() for s in Scope}
        tx_literals: list[tuple[int, bytes, bool]] = []
        self._tx_tables: dict[BlockKey, tuple[int, ...]] = {}
        for key, rule_ids in self.prefilter.rules_by_table():
            for i in rule_ids:
                plan = self._plans[i]
                if plan is None:
                    continue
                if plan.scope is Scope.TX and key[0] is Buffer.PAYLOAD:
                    # a handful: their literal is looked for with `in` on each transaction instead
                    choice = choose_fast_pattern(plan.rule) if not key[1] else None
                    if choice is not None and choice.key == key:
                        tx_literals.append((i, choice.pattern.lower() if choice.nocase else choice.pattern,
                                            choice.nocase))
                    else:
                        by_scope[Scope.TX].append(i)
                else:
                    keys[plan.scope].add(key)
                    if plan.scope is Scope.TX:
                        self._tx_tables[key] = (*self._tx_tables.get(key, ()), i)
        self._tx_literals = tuple(sorted(tx_literals))
        self._tx_keys: dict[tuple[Direction | None, Buffer | None],
                            tuple[frozenset[BlockKey], tuple[tuple[int, bytes, bool], ...]]] = {}
        self._scope_keys = {s: frozenset(v) for s, v in keys.items()}
        self._always[Scope.TX] = frozenset(by_scope[Scope.TX])
        self.has_bare_packet_rules = bool(bare)
        self._ports = PortGroups(((p.index, p.rule, p.l4) for p in self._plans
                                  if p is not None and p.scope is Scope.PACKET),
                                 always=self._always[Scope.PACKET], bare=self._always_bare)
        self._packet_keys = tuple(k for k in self.prefilter.keys
                                  if k[0] is Buffer.PAYLOAD and k in self._scope_keys[Scope.PACKET])
        self.buffers_used = frozenset(b for p in self._plans if p is not None for b in p.buffers)
        # response rules that also read the request body (``=>`` rules): it must outlive its inspection
        self.request_body_at_response = any(p is not None and p.to_client and Buffer.HTTP_REQUEST_BODY in p.buffers
                                            for p in self._plans)
        # none: a transaction (HTTP, TLS, DNS...) or a body cannot match, its buffers need not be built
        self.has_tx_rules = any(p is not None and p.scope is Scope.TX for p in self._plans)
        # per direction (to server, to client): a transaction rule runs that way (`scan` skips the others)
        self.tx_rules_by_direction = tuple(
            any(p is not None and p.scope is Scope.TX and not ((p.to_server and d is not Direction.TO_SERVER)
                                                                 or (p.to_client and d is not Direction.TO_CLIENT))
                for p in self._plans)
            for d in (Direction.TO_SERVER, Direction.TO_CLIENT))
        self.has_body_rules = any(p is not None and p.buffers & _BODY_BUFFERS for p in self._plans)
        self.stream_rules = frozenset(p.index for p in self._plans if p is not None and p.scope is Scope.STREAM)
        self.has_stream_rules = bool(self.stream_rules)
        self.ip_only = tuple((p.index, p.rule) for p in self._plans if p is not None and p.scope is Scope.IP_ONLY)
        events: dict[str, list[int]] = {}
        for p in self._plans:
            if p is not None and p.scope is Scope.EVENT:
                events.setdefault(event_key(p.rule), []).append(p.index)
        self.event_rules = {k: tuple(v) for k, v in events.items()}

    def candidates(self, buffers: Mapping[Buffer, bytes], scope: Scope | None,
                   view: Callable[[BlockKey], bytes | None] | None = None, *,
                   direction: Direction | None = None, require: Buffer | None = None) -> set[int]:
        """The rules worth verifying on these buffers at `scope` (None: every scope):
        prefilter hits in that scope's tables and its rules without a fast pattern.
        For transactions, `direction` and `require` (as `scan` takes them) skip the
        tables whose rules `scan` would not run anyway."""
        if scope is None:
            return self.prefilter.candidates_for(buffers, view)
        if scope is Scope.PACKET and not buffers.get(Buffer.PAYLOAD):
            return set(self._always_bare)
        keys = self._scope_keys[scope]
        literals = self._tx_literals
        if scope is Scope.TX and (direction is not None or require is not None):
            keys, literals = self._tx_keys.get((direction, require)) or self._tx_keys_for(direction, require)
        cands = self.prefilter.candidates_for(buffers, view, always=False, keys=keys)
        cands |= self._always[scope]
        if scope is Scope.TX and literals:
            payload = buffers.get(Buffer.PAYLOAD)
            if payload:
                lower = None
                for i, literal, nocase in literals:
                    if nocase:
                        if lower is None:
                            lower = payload.lower()   # Hyperscan's caseless is ASCII-only, as bytes.lower
                        if literal in lower:
                            cands.add(i)
                    elif literal in payload:
                        cands.add(i)
        return cands

    def _tx_keys_for(self, direction: Direction | None,
                     require: Buffer | None) -> tuple[frozenset[BlockKey], tuple[tuple[int, bytes, bool], ...]]:
        """The transaction tables and payload literals of the rules `scan` would run in `direction`
        with `require`: a response need not be searched for the patterns of request-only rules again."""
        plans = self._plans
        to_server = direction is Direction.TO_SERVER
        to_client = direction is Direction.TO_CLIENT

        def runs(i: int) -> bool:
            plan = plans[i]
            if plan is None or (require is not None and require not in plan.buffers):
                return False
            return direction is None or not ((plan.to_server and not to_server) or (plan.to_client and not to_client))

        keys = frozenset(k for k, ids in self._tx_tables.items() if any(runs(i) for i in ids))
        got = self._tx_keys[(direction, require)] = (keys, tuple(x for x in self._tx_literals if runs(x[0])))
        return got

    def packet_candidates(self, payload: bytes, endpoints: tuple[int, int, int]) -> set[int]:
        """Packet rules worth verifying on this packet (an empty payload: the rules without
        payload items), narrowed by protocol and ports. Empty for most packets, which then
        cost one Hyperscan scan and nothing else."""
        group = self._ports.group(*endpoints)   # the same as `candidates` narrowed by `PortGroups.narrow`
        if not payload:
            return set(group.bare)
        cands = set(group.always)
        for key in self._packet_keys:
            hits = self.prefilter.candidates(Buffer.PAYLOAD, payload, key[1])
            if hits:
                cands |= hits & group.allowed
        return cands

    def scope(self, index: int) -> Scope | None:
        plan = self._plans[index]
        return None if plan is None else plan.scope

    def inspect(self, buffers: Mapping[Buffer, bytes], *, direction: Direction | None = None,
                header_check: HeaderCheck | None = None, packet_size: int | None = None,
                scope: Scope | None = None, on_match: Callable[[Rule], None] | None = None,
                require: Buffer | None = None,
                only: frozenset[int] | None = None, extra: set[int] | None = None) -> list[Match]:
        """The rules that match these buffers, in rule order."""
        return list(self.scan(buffers, direction=direction, header_check=header_check,
                              packet_size=packet_size, scope=scope, on_match=on_match, require=require,
                              only=only, extra=extra).matches)

    def scan(self, buffers: Mapping[Buffer, bytes], *, direction: Direction | None = None,
             header_check: HeaderCheck | None = None, packet_size: int | None = None,
             scope: Scope | None = None, on_match: Callable[[Rule], None] | None = None,
             require: Buffer | None = None,
             only: frozenset[int] | None = None, extra: set[int] | None = None) -> Inspection:
        """`inspect` with the counters: candidates verified, rules abandoned for the budget, work units.

        `packet_size` is what ``dsize`` compares (default: the PAYLOAD buffer's
        length; a dsize rule does not match when neither is known). `scope`
        limits the run to the rules evaluated at that moment (`Scope.PACKET`
        for a packet, `Scope.TX` for a transaction...); None runs every rule
        that has something to match in `buffers`, which is what a payload-only
        test wants. A packet without payload passes ``buffers={}``: only the
        packet rules without payload items are then candidates. `on_match` is
        called for each match before the next rule is checked, so that its
        side effects (flowbits) are seen by the rules after it, as in Suricata.
        `require` limits the run to rules that inspect that buffer (a body that
        just ended runs its body rules, not again every rule of the transaction).
        `only` names the candidates outright, skipping the prefilter (the
        caller narrowed them already, see `packet_candidates`, or a scope has
        a handful of rules).
        `extra` adds rules of another scope to this run, in rule order (the
        IP-only rules due on a flow's first packet each way).
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
        candidates = set(only) if only is not None else self.candidates(buffers, scope, view)
        if extra:
            candidates |= extra
        matches: list[Match] = []
        exhausted: list[int] = []
        work = 0
        plans = self._plans
        to_server = direction is Direction.TO_SERVER
        to_client = direction is Direction.TO_CLIENT
        for idx in sorted(candidates):   # cheapest tests first: this loop runs for every candidate
            plan = plans[idx]
            if plan is None:
                continue
            if direction is not None and ((plan.to_server and not to_server) or (plan.to_client and not to_client)):
                continue
            if scope is not None and plan.scope is not scope and not (extra and idx in extra):
                continue
            if require is not None and require not in plan.buffers:
                continue
            if plan.sizes and not _sizes_ok(plan.rule, buffers, packet_size):
                continue
            if header_check is not None and not header_check(plan.rule):   # protocol and ports included
                continue
            ctx = MatchContext(budget=self.budget)
            ok = True
            blocks = plan.blocks if plan.blocks is not None else self._blocks_late(plan)
            if blocks is None:
                continue
            for bp in blocks:
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
                matches.append(Match(plan.rule, idx, tuple(ctx.captures) if ctx.captures else ()))
                if on_match is not None:
                    on_match(plan.rule)
        return Inspection(tuple(matches), len(candidates), tuple(exhausted), work)


def _prepare(bp: BlockPlan, buffers: Mapping[Buffer, bytes], views: dict[BlockKey, bytes | None]) -> bytes | None:
    key = bp.key
    if key in views:
        return views[key]
    raw = buffers.get(key[0])
    data = None if raw is None else bp.prepare(raw)
    views[key] = data
    return data


def _blocks(rule: Rule, regexes: dict) -> tuple[BlockPlan, ...]:
    return tuple(compile_block(b, base64_block=b64, regexes=regexes) for b, b64 in rule_blocks(rule.buffers))


def _plan(index: int, rule: Rule, regexes: dict | None) -> _RulePlan:
    """A rule's plan; `regexes` None leaves its blocks for later (`Detector.prepared`)."""
    scope = scope_of(rule)
    blocks = None if regexes is None else _blocks(rule, regexes)
    flow = rule.flow
    payload = any(b.buffer in (Buffer.PAYLOAD, Buffer.STREAM) for b in rule.buffers)
    to_server, to_client = bool(flow and flow.to_server), bool(flow and flow.to_client)
    if not to_server and not to_client and any(b.buffer.app_proto for b in rule.buffers):
        # Suricata's rule direction for transactions: a response buffer makes it a response
        # rule, a request buffer a request rule; HTTP headers and cookies alone go both ways
        to_client = any(b.buffer in RESPONSE_BUFFERS for b in rule.buffers)
        to_server = not to_client and any(b.buffer not in EITHER_BUFFERS for b in rule.buffers
                                          if b.buffer.app_proto)
    if rule.urilen is not None and not to_client:   # the URI is a request buffer
        to_server = True
    l4 = L4_PROTOS.get(rule.protocol)
    ipp = rule.ip_proto
    if ipp is not None and ipp.op is SizeOp.EQ:   # ip_proto:41 narrows like a protocol in the header
        l4 = (ipp.value,) if l4 is None or ipp.value in l4 else ()
    return _RulePlan(index, rule, blocks, to_server, to_client, scope,
                     rule.dsize is not None or rule.urilen is not None, frozenset(b.buffer for b in rule.buffers),
                     None if l4 is None else frozenset(l4), payload)


def _sizes_ok(rule: Rule, buffers: Mapping[Buffer, bytes], packet_size: int | None) -> bool:
    if rule.dsize is not None and (packet_size is None or not rule.dsize.matches(packet_size)):
        return False
    if rule.urilen is not None:
        uri = buffers.get(Buffer.HTTP_URI_RAW if rule.urilen_raw else Buffer.HTTP_URI)
        if uri is None or not rule.urilen.matches(len(uri)):
            return False
    return True
