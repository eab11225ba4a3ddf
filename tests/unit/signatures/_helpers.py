"""Small builders for rule text used across the signature tests."""
from __future__ import annotations

from signatures.model import Buffer, Rule
from signatures.parser import parse_rule

HEADER = "alert tcp any any -> any any"
TAIL = 'msg:"t"; sid:1; rev:1;'


def rule(options: str, header: str = HEADER, **kw) -> Rule:
    """Parse `header (options msg sid rev)`."""
    return parse_rule(f"{header} ({options} {TAIL})", **kw)


def rule_text(options: str, header: str = HEADER) -> str:
    return f"{header} ({options} {TAIL})"


def block(r: Rule, buffer: Buffer):
    found = [b for b in r.buffers if b.buffer is buffer]
    assert len(found) == 1, f"expected one {buffer} block, got {r.buffers}"
    return found[0]
