"""Flowbits: the per-flow flags rules set and test (Suricata's ``flowbits``
keyword). A rule's isset/isnotset conditions are checked with its header,
before its content; its set/unset/toggle commands apply once it matched, so
later rules on the same packet see them (rule order, as in Suricata)."""
from __future__ import annotations

from signatures.model import Flowbit, FlowbitCommand, Rule


def flowbits_ok(rule: Rule, bits: "set[str] | frozenset[str]") -> bool:
    """Every isset/isnotset condition of `rule` holds for the flow's `bits`."""
    for fb in rule.flowbits:
        cmd = fb.command
        if cmd is FlowbitCommand.ISSET and not _any_or_all(fb, bits, True):
            return False
        if cmd is FlowbitCommand.ISNOTSET and not _any_or_all(fb, bits, False):
            return False
    return True


def _any_or_all(fb: Flowbit, bits: "set[str] | frozenset[str]", present: bool) -> bool:
    hits = [(n in bits) == present for n in fb.names]
    return any(hits) if fb.any_of else all(hits)


def apply_flowbits(rule: Rule, bits: "set[str] | frozenset[str]") -> set[str]:
    """The flow's bits after `rule` matched: its set, unset and toggle commands, in order."""
    bits = set(bits)
    for fb in rule.flowbits:
        for n in fb.names:
            if fb.command is FlowbitCommand.SET:
                bits.add(n)
            elif fb.command is FlowbitCommand.UNSET:
                bits.discard(n)
            elif fb.command is FlowbitCommand.TOGGLE:
                bits ^= {n}
    return bits
