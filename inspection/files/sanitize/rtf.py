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
from dataclasses import dataclass

from inspection.files.sanitize.common import Context, Outcome, Unsafe
from inspection.files.sanitize.model import Action, ActionKind
from inspection.files.sanitize.wordfields import is_dde

__all__ = ["sanitize_rtf"]

_SPECIAL = re.compile(rb"[{}\\]")
_WORD = re.compile(rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?")
_HEX = re.compile(rb"\\'([0-9a-fA-F]{2})")
_OBJECT_WORDS = {b"object", b"objdata"}
_MAX_NESTING = 2000
_MAX_INSTRUCTION = 8192     # characters of one field instruction kept for the DDE test


@dataclass(slots=True)
class _Group:
    start: int
    dest: bytes = b""              # first control word of the group
    is_field: bool = False
    instruction: str = ""          # field groups: the instruction text, nested fields included


class _Scanner:
    """One pass over the RTF: group stack, open \\fldinst and object groups counted
    (so deep nesting costs nothing per character), \\uN escapes decoded."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.stack: list[_Group] = []
        self.fields: list[_Group] = []     # open \\field groups, innermost last
        self.in_fldinst = 0
        self.in_object = 0
        self.skip = 0                      # fallback characters after \\uN still to drop
        self.stray = False
        self.drops: list[tuple[int, int, ActionKind]] = []

    def run(self) -> tuple[list[tuple[int, int, ActionKind]], bool]:
        data, pos, n = self.data, 0, len(self.data)
        while pos < n:
            m = _SPECIAL.search(data, pos)
            end = n if m is None else m.start()
            if end > pos:
                self.text(data[pos:end])
            if m is None:
                break
            pos = end
            c = data[pos]
            if c == 0x7B:                                     # {
                if len(self.stack) >= _MAX_NESTING:
                    raise Unsafe(f"RTF nested deeper than {_MAX_NESTING} groups")
                self.stack.append(_Group(pos))
                pos += 1
            elif c == 0x7D:                                   # }
                pos += 1
                if self.stack:
                    self.close(self.stack.pop(), pos)
            else:
                pos = self.control(pos)
        while self.stack:                                     # unclosed groups end at end of file
            self.close(self.stack.pop(), n)
        return self.drops, self.stray

    def control(self, pos: int) -> int:
        data = self.data
        w = _WORD.match(data, pos)
        if w is None:
            h = _HEX.match(data, pos)
            if h is not None:
                self.text(bytes([int(h.group(1), 16)]))
                return h.end()
            sym = data[pos + 1:pos + 2]
            if sym in (b"{", b"}", b"\\"):
                self.text(sym)
            return pos + 2
        word = w.group(1).lower()
        if word == b"bin":
            return w.end() + max(0, int(w.group(2) or 0))
        if word == b"u" and w.group(2):
            self.text(chr(int(w.group(2)) % 65536).encode("utf-8"))
            self.skip = 1
            return w.end()
        top = self.stack[-1] if self.stack else None
        if top is not None and not top.dest:
            top.dest = word
            if word == b"field":
                top.is_field = True
                self.fields.append(top)
            elif word == b"fldinst":
                self.in_fldinst += 1
            elif word in _OBJECT_WORDS:
                self.in_object += 1
        elif word in _OBJECT_WORDS and not self.in_object:
            self.stray = True
        return w.end()

    def text(self, chunk: bytes) -> None:
        if self.skip:
            chunk = chunk[self.skip:]
            self.skip = 0
        if not self.in_fldinst or not self.fields:
            return
        f = self.fields[-1]
        if len(f.instruction) < _MAX_INSTRUCTION:
            f.instruction += chunk.replace(b"\r", b"").replace(b"\n", b"").decode("utf-8", "replace")

    def close(self, group: _Group, end: int) -> None:
        if group.dest in _OBJECT_WORDS:
            self.in_object -= 1
            self.drops.append((group.start, end, ActionKind.REMOVED_RTF_OBJECT))
        elif group.dest == b"fldinst":
            self.in_fldinst -= 1
        elif group.is_field:
            self.fields.pop()
            if self.fields:                                   # the outer field's code includes this one
                outer = self.fields[-1]
                outer.instruction = (outer.instruction + group.instruction)[:_MAX_INSTRUCTION]
            if is_dde(group.instruction):
                self.drops.append((group.start, end, ActionKind.REMOVED_RTF_DDE_FIELD))


def _scan(data: bytes) -> tuple[list[tuple[int, int, ActionKind]], bool]:
    """Byte ranges to drop, with why; and whether an object control word sits
    where no group we drop encloses it (we would not know how Word reads it)."""
    return _Scanner(data).run()


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
