"""Per-flow verdicts on live traffic (pure): accept, drop and reset, or hand back.

The live worker asks `FlowPolicy.decide` once per queued packet, after the
engine has processed it, with what the engine learned (`FlowFacts`) and the
alerts that fired on it. The answer says what the kernel does with the packet
and which mark the verdict sets; marks are how the netfilter ruleset learns
that a flow is bypassed (the ruleset saves the mark to the connmark, the flow
skips the queue) or blocked. See docs/live.md for the rule shapes.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable

from firmware.base.values import value
from inspection.errors import ConfigError
from inspection.policy.dnsblock import DnsBlockConfig

ALL_CLASSES = "*"   # detect-only for every threat class
RULES_CLASS = "rules"        # detect-only for every signature rule
CATEGORY_CLASS = "category"  # detect-only for blocked URL categories
FILE_CLASS = "file"          # detect-only for malicious files
CATEGORY_PREFIX = "category:"  # detect-only (or enforced) for one URL category, e.g. "category:phishing"


class HitKind(enum.Enum):
    RULE = "rule"            # a signature rule (drop/reject blocks)
    CATEGORY = "category"    # a blocked URL category (HTTP request, TLS SNI, DNS query)
    FILE = "file"            # a file judged malicious


class FailMode(enum.Enum):
    OPEN = "open"       # no worker bound: the kernel lets traffic pass (--queue-bypass)
    CLOSED = "closed"   # no worker bound: traffic stops (rules without --queue-bypass)


class Action(enum.Enum):
    ACCEPT = "accept"     # pass, keep queueing this flow
    BYPASS = "bypass"     # pass and mark: the kernel stops queueing the flow
    DROP = "drop"         # drop the packet (and every later one of the flow)


class Reason(enum.Enum):
    INSPECTING = "inspecting"
    BLOCKED_RULE = "blocked_rule"       # a drop/reject rule fired on this packet
    BLOCKED_FLOW = "blocked_flow"       # an earlier packet of the flow was blocked
    BLOCKED_CATEGORY = "blocked_category"   # a blocked URL category (block page on HTTP, resets otherwise)
    BLOCKED_FILE = "blocked_file"       # this packet would complete a malicious file: held for good
    PAGE_CLOSED = "page_closed"         # the client closed after the block page: its FIN is answered
    DNS_ANSWERED = "dns_answered"       # a query for a blocked name: dropped, answered by the box
    TLS_ENCRYPTED = "tls_encrypted"     # handshake seen both ways: the rest is ciphertext
    DEPTH = "depth"                     # past the inspection depth with no file in transit
    NOT_TRACKED = "not_tracked"         # no flow (undecodable, ARP-like, non-IP): nothing to learn


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    bypass_mark: int = 0x1
    block_mark: int = 0x2
    inspect_depth: int = 1 << 20        # bytes both ways; past it a flow without a file is handed back
    detect_only: frozenset[str] = field(default_factory=frozenset)   # classtypes, or {"*"}
    fail: FailMode = FailMode.OPEN
    resets: bool = True                 # TCP resets to both ends (ICMP to a UDP sender) when a flow is blocked
    # classtypes and "category:NAME"s whose own mode is block while the broader class (every rule,
    # every category) is detect-only: the narrower mode wins (netconfig's [classtypes], modes.phishing)
    enforce: frozenset[str] = field(default_factory=frozenset)
    dns_block: DnsBlockConfig | None = None   # answer queries for blocked names (off: they pass)

    def __post_init__(self) -> None:
        for name in ("bypass_mark", "block_mark"):
            v = getattr(self, name)
            if not 0 < v <= 0xFFFFFFFF:
                raise ConfigError(name, f"mark must be a non-zero 32-bit value, got {v:#x}")
        if self.bypass_mark & self.block_mark:
            raise ConfigError("block_mark", "the bypass and block marks must not share bits")
        if self.inspect_depth < 0:
            raise ConfigError("inspect_depth", "must not be negative")

    def is_detect_only(self, classtype: str | None, kind: HitKind = HitKind.RULE,
                       names: tuple[str, ...] = ()) -> bool:
        """Rules by classtype or 'rules'; categories by 'category' or each blocked category's
        'category:NAME'; files by 'file'; '*' for all. `enforce` wins over 'rules' and 'category'."""
        d = self.detect_only
        if not d:
            return False
        if ALL_CLASSES in d:
            return True
        if kind is HitKind.RULE:
            if (classtype or "") in d:
                return True
            return RULES_CLASS in d and (classtype or "") not in self.enforce
        if kind is HitKind.CATEGORY:
            keys = [CATEGORY_PREFIX + n for n in names]
            if keys and all(k in d for k in keys):
                return True
            return CATEGORY_CLASS in d and not any(k in self.enforce for k in keys)
        return kind.value in d


@value
class FlowFacts:
    """What the engine knows about the flow of the packet at hand."""

    flow_id: int
    is_tcp: bool
    bytes_total: int            # both directions, wire bytes
    tls_handshake_done: bool
    file_in_transit: bool
    closed: bool = False
    client_close: bool = False  # the packet is the client's FIN or RST
    is_udp: bool = False


@dataclass(frozen=True, slots=True)
class HitView:
    """An alert that fired on this packet, as the policy needs it."""

    blocking: bool              # the rule's action is drop or reject (a blocked category, a malicious file)
    classtype: str | None = None
    kind: HitKind = HitKind.RULE
    http_request: bool = False  # a category hit on an HTTP request: answered with the block page
    names: tuple[str, ...] = ()  # a category hit: the blocked categories of its target
    dns_answer: bool = False    # a category hit on a DNS query the box answers (the flow goes on)


@dataclass(frozen=True, slots=True)
class PacketDecision:
    action: Action
    reason: Reason
    mark: int | None = None     # the verdict's packet mark (None: leave it)
    reset: bool = False         # send TCP resets to both ends
    block_page: bool = False    # answer the client with the HTTP block page, reset the server
    close_ack: bool = False     # acknowledge the client's FIN after the block page (as the server)
    unreachable: bool = False   # answer the sender with ICMP port unreachable (a blocked UDP flow)

    @property
    def accepted(self) -> bool:
        return self.action is not Action.DROP


@dataclass(slots=True)
class PolicyCounters:
    accepted: int = 0
    bypassed_flows: int = 0
    dropped: int = 0
    blocked_flows: int = 0
    detect_only_hits: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class FlowPolicy:
    """Remembers which flows are blocked or handed back; decides per packet."""

    def __init__(self, cfg: PolicyConfig) -> None:
        self.cfg = cfg
        self.counters = PolicyCounters()
        self._blocked: set[int] = set()
        self._bypassed: set[int] = set()
        # flows answered with the block page whose client has not closed yet: not blocked in the
        # kernel until then, so the worker sees the client's FIN and acknowledges it (else the
        # client retransmits that FIN until its orphan timeout)
        self._paged: set[int] = set()

    def allows(self, hit: HitView) -> bool:
        """True when this hit is logged with ``action: allowed`` (not blocking, or detect-only)."""
        if not hit.blocking:
            return True
        if self.cfg.is_detect_only(hit.classtype, hit.kind, hit.names):
            self.counters.detect_only_hits += 1
            return True
        return False

    def decide(self, facts: FlowFacts | None, hits: Iterable[HitView]) -> PacketDecision:
        d = self._decide(facts, hits)
        c = self.counters
        key = d.reason.value
        c.by_reason[key] = c.by_reason.get(key, 0) + 1
        if d.action is Action.DROP:
            c.dropped += 1
        else:
            c.accepted += 1
        return d

    def _decide(self, facts: FlowFacts | None, hits: Iterable[HitView]) -> PacketDecision:
        cfg = self.cfg
        blocking = [h for h in hits if h.blocking and not cfg.is_detect_only(h.classtype, h.kind, h.names)]
        if facts is None:
            if blocking:
                return PacketDecision(Action.DROP, _REASONS[blocking[0].kind])
            return _NOT_TRACKED
        fid = facts.flow_id
        if blocking and all(h.dns_answer for h in blocking) and fid not in self._blocked:
            # only this query is dropped: the next one on the same ports (the AAAA after the A,
            # say) is judged on its own, so the flow is not blocked
            return PacketDecision(Action.DROP, Reason.DNS_ANSWERED)
        if fid in self._blocked:
            if fid in self._paged:
                if facts.client_close:
                    self._paged.discard(fid)
                    return PacketDecision(Action.DROP, Reason.PAGE_CLOSED, cfg.block_mark, close_ack=True)
                return PacketDecision(Action.DROP, Reason.BLOCKED_FLOW)
            return PacketDecision(Action.DROP, Reason.BLOCKED_FLOW, cfg.block_mark)
        if blocking:
            self._blocked.add(fid)
            self._bypassed.discard(fid)
            self.counters.blocked_flows += 1
            first = blocking[0]
            page = facts.is_tcp and any(h.kind is HitKind.CATEGORY and h.http_request for h in blocking)
            if page and cfg.resets:
                self._paged.add(fid)
            return PacketDecision(Action.DROP, Reason.BLOCKED_CATEGORY if page else _REASONS[first.kind],
                                  cfg.block_mark, reset=cfg.resets and facts.is_tcp and not page,
                                  block_page=page and cfg.resets, unreachable=cfg.resets and facts.is_udp)
        if fid in self._bypassed:   # packets already queued before the kernel saw the mark
            return PacketDecision(Action.BYPASS, Reason.DEPTH, cfg.bypass_mark)
        reason = None
        if facts.tls_handshake_done:
            reason = Reason.TLS_ENCRYPTED
        elif facts.bytes_total > cfg.inspect_depth and not facts.file_in_transit:
            reason = Reason.DEPTH
        if reason is None:
            return _INSPECTING
        self._bypassed.add(fid)
        self.counters.bypassed_flows += 1
        return PacketDecision(Action.BYPASS, reason, cfg.bypass_mark)

    def is_blocked(self, flow_id: int) -> bool:
        return flow_id in self._blocked

    def is_paged(self, flow_id: int) -> bool:
        """Blocked with the block page, the client's close still to come (see `_paged`)."""
        return flow_id in self._paged

    def page_failed(self, flow_id: int) -> None:
        """The page could not be sent: the flow is blocked in the kernel like any other."""
        self._paged.discard(flow_id)

    def forget(self, flow_id: int) -> None:
        """The flow ended in the engine: drop what was kept for it."""
        self._blocked.discard(flow_id)
        self._bypassed.discard(flow_id)
        self._paged.discard(flow_id)

    @property
    def tracked(self) -> int:
        return len(self._blocked) + len(self._bypassed)


# the decisions of most packets, made once (decisions are frozen): one fewer object per packet
_INSPECTING = PacketDecision(Action.ACCEPT, Reason.INSPECTING)
_NOT_TRACKED = PacketDecision(Action.ACCEPT, Reason.NOT_TRACKED)
_REASONS = {HitKind.RULE: Reason.BLOCKED_RULE, HitKind.CATEGORY: Reason.BLOCKED_CATEGORY,
            HitKind.FILE: Reason.BLOCKED_FILE}
