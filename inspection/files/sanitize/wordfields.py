"""DDE fields in WordprocessingML parts: find them as Word assembles them and
blank their instructions.

A field instruction may be split over many ``w:instrText`` runs, nested in
other fields, or spelled with ``QUOTE 68 68 69`` character codes, so the
decision is made on the whole field's text (nested fields included) and all
of its instruction runs are emptied. ``w:fldSimple`` carries the instruction
in its ``w:instr`` attribute, which is emptied in place. The field's cached
result (what the reader sees) stays.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from inspection.files.sanitize.xmltext import Tag, attr_value, element_end, iter_tags

__all__ = ["blank_dde_fields", "is_dde"]

_DDE = re.compile(r"\bdde(auto)?\b", re.I)
_QUOTE = re.compile(r"^\s*quote\s+((?:\d+\s*)+)", re.I)
_INSTR_ATTR = re.compile(rb"(\s(?:[\w.\-]+:)?instr\s*=\s*)(\"[^\"]*\"|'[^']*')")


def is_dde(instruction: str) -> bool:
    """True for DDE/DDEAUTO anywhere in the instruction, also behind QUOTE codes."""
    if _DDE.search(instruction):
        return True
    for m in re.finditer(r"quote\s+((?:\d+\s*)+)", instruction, re.I):
        try:
            decoded = "".join(chr(int(n)) for n in m.group(1).split() if int(n) < 0x110000)
        except ValueError:
            continue
        if _DDE.search(decoded):
            return True
    return False


@dataclass(slots=True)
class _Field:
    spans: list[tuple[int, int]] = field(default_factory=list)
    text: str = ""
    in_instruction: bool = True


def blank_dde_fields(data: bytes) -> tuple[bytes, int]:
    """Return the part with every DDE field instruction emptied, and how many fields were."""
    stack: list[_Field] = []
    blank: list[tuple[int, int]] = []
    simple: list[Tag] = []
    found = 0
    skip_to = 0
    if b"instrText" not in data and b"fldSimple" not in data:
        return data, 0
    for tag in iter_tags(data, (b"fldChar", b"instrText", b"fldSimple")):
        if tag.start < skip_to:
            continue
        local = tag.local
        if local == b"fldChar":
            kind = _attr(tag, b"fldCharType")
            if kind == "begin":
                stack.append(_Field())
            elif kind == "separate" and stack:
                stack[-1].in_instruction = False
            elif kind == "end" and stack:
                done = stack.pop()
                if is_dde(done.text):
                    found += 1
                    blank.extend(done.spans)
        elif local == b"instrText" and not tag.empty:
            end = element_end(data, tag)
            close = data.rfind(b"</", tag.end, end)
            text = attr_value(data[tag.end:close])
            span = (tag.end, close)
            skip_to = end
            open_fields = [f for f in stack if f.in_instruction] or stack
            if not open_fields:           # an instruction outside any field: judge it alone
                if is_dde(text):
                    found += 1
                    blank.append(span)
                continue
            for f in open_fields:
                f.spans.append(span)
                f.text += text
        elif local == b"fldSimple":
            instr = _attr(tag, b"instr")
            if instr is not None and is_dde(instr):
                found += 1
                simple.append(tag)
    for f in stack:                      # fields never closed: judge what they have
        if is_dde(f.text):
            found += 1
            blank.extend(f.spans)
    if not found:
        return data, 0
    edits: list[tuple[int, int, bytes]] = [(s, e, b"") for s, e in set(blank)]
    for tag in simple:
        raw = data[tag.start:tag.end]
        edits.append((tag.start, tag.end, _INSTR_ATTR.sub(rb'\1""', raw)))
    out = bytearray()
    pos = 0
    for s, e, repl in sorted(edits):
        if s < pos:
            continue
        out += data[pos:s] + repl
        pos = e
    out += data[pos:]
    return bytes(out), found


def _attr(tag: Tag, local: bytes) -> str | None:
    for name, value in tag.attrs:
        if name.rpartition(b":")[2] == local:
            return attr_value(value)
    return None
