"""Rule builders for the detector tests: one rule from its options, its blocks, a verdict on bytes."""
from __future__ import annotations

from signatures.buffers import Buffer
from signatures.model import Rule
from signatures.parser import parse_rule

from inspection.detect.verify import BlockResult, MatchContext, compile_block, inspect_block, match_block

HEADER = "alert tcp any any -> any any"


def rule(options: str, sid: int = 1, header: str = HEADER) -> Rule:
    return parse_rule(f'{header} (msg:"t"; {options} sid:{sid}; rev:1;)')


def block(r: Rule, buffer: Buffer = Buffer.PAYLOAD):
    found = [b for b in r.buffers if b.buffer is buffer]
    assert len(found) == 1, r.buffers
    return found[0]


def matches(options: str, data: bytes, buffer: Buffer = Buffer.PAYLOAD, header: str = HEADER) -> bool:
    """Does the rule's `buffer` block match `data`?"""
    return match_block(block(rule(options, header=header), buffer), data)


def result(options: str, data: bytes, budget: int = 3000) -> tuple[BlockResult, MatchContext]:
    ctx = MatchContext(budget=budget)
    plan = compile_block(block(rule(options)))
    return inspect_block(plan, plan.prepare(data), ctx), ctx
