"""RTF: drop embedded objects and DDE fields, keep the rest byte for byte.

Groups are tracked by braces (escaped braces and ``\\binN`` payloads skipped);
a group whose destination is ``\\object`` or ``\\objdata`` is removed whole,
and a ``\\field`` group whose instruction (``\\fldinst``, nested fields
included) is DDE/DDEAUTO is removed whole. An object control word that no
such group encloses (malformed nesting that Word might read one way and we
another) makes the file a notice, and the output is scanned again to be
sure nothing is left.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from inspection.files.sanitize.common import Context, Outcome, Unsafe
from inspection.files.sanitize.model import Action, ActionKind
from inspection.files.sanitize.wordfields import is_dde

__all__ = ["sanitize_rtf"]

_SPECIAL = re.compile(rb"[{}\\]")
_WORD = re.compile(rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?")
_HEX = re.compile(rb"\\'([0-9a-fA-F]{2})")
_OBJECT_WORDS = {b"object", b"objdata"}
_MAX_NESTING = 2000


@dataclass(slots=True)
class _Group:
    start: int
    dest: bytes = b""              # first control word of the group
    starred: bool = False
    is_field: bool = False
    instruction: list[str] = field(default_factory=list)


def _scan(data: bytes) -> tuple[list[tuple[int, int, ActionKind]], bool]:
    """Byte ranges to drop, with why; and whether an object control word sits
    where no group we drop encloses it (we would not know how Word reads it)."""
    stack: list[_Group] = []
    stray = False
    drops: list[tuple[int, int, ActionKind]] = []
    pos = 0
    n = len(data)
    while pos < n:
        m = _SPECIAL.search(data, pos)
        if m is None:
            _text(stack, data[pos:])
            break
        if m.start() > pos:
            _text(stack, data[pos:m.start()])
        pos = m.start()
        c = data[pos]
        if c == 0x7B:                                     # {
            if len(stack) >= _MAX_NESTING:
                raise Unsafe(f"RTF nested deeper than {_MAX_NESTING} groups")
            stack.append(_Group(pos))
            pos += 1
        elif c == 0x7D:                                   # }
            pos += 1
            if stack:
                _close(stack, stack.pop(), pos, drops)
        else:
            w = _WORD.match(data, pos)
            if w is None:
                h = _HEX.match(data, pos)
                if h is not None:
                    _text(stack, bytes([int(h.group(1), 16)]))
                    pos = h.end()
                    continue
                sym = data[pos + 1:pos + 2]
                if sym == b"*" and stack:
                    stack[-1].starred = True
                elif sym in (b"{", b"}", b"\\"):
                    _text(stack, sym)
                pos += 2
                continue
            word = w.group(1).lower()
            pos = w.end()
            if word == b"bin":
                pos += max(0, int(w.group(2) or 0))
                continue
            if stack and not stack[-1].dest:
                stack[-1].dest = word
                if word == b"field":
                    stack[-1].is_field = True
            elif word in _OBJECT_WORDS and not any(g.dest in _OBJECT_WORDS for g in stack):
                stray = True
    while stack:                                          # unclosed groups end at end of file
        _close(stack, stack.pop(), n, drops)
    return drops, stray


def _text(stack: list[_Group], chunk: bytes) -> None:
    if not any(g.dest == b"fldinst" for g in stack):
        return
    text = chunk.replace(b"\r", b"").replace(b"\n", b"").decode("latin-1")
    for g in stack:
        if g.is_field:
            g.instruction.append(text)


def _close(stack: list[_Group], group: _Group, end: int, drops: list[tuple[int, int, ActionKind]]) -> None:
    if group.dest in _OBJECT_WORDS:
        drops.append((group.start, end, ActionKind.REMOVED_RTF_OBJECT))
    elif group.is_field and is_dde("".join(group.instruction)):
        drops.append((group.start, end, ActionKind.REMOVED_RTF_DDE_FIELD))


def sanitize_rtf(data: bytes, name: str, ctx: Context) -> Outcome:
    drops, stray = _scan(data)
    if stray:
        raise Unsafe("RTF with an object control word outside any object group")
    if not drops:
        return Outcome(data)
    out = bytearray()
    pos = 0
    actions = []
    for start, end, kind in sorted(drops):
        if start < pos:                                   # inside a group already dropped
            continue
        out += data[pos:start]
        pos = end
        actions.append(Action(kind, f"offset {start}", f"{end - start} bytes"))
    out += data[pos:]
    result = bytes(out)
    if _scan(result) != ([], False):
        raise Unsafe("RTF objects or DDE fields could not be removed cleanly")
    return Outcome(result, tuple(actions))
