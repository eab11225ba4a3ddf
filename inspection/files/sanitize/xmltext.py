"""Small edits on raw XML bytes, for OOXML parts.

Why not parse and re-serialise with ElementTree: it renames namespace
prefixes and drops unused declarations, and Office resolves prefixes listed
in ``mc:Ignorable`` by name, so a re-serialised part can make Word report the
file as corrupt. Office parts are machine-written and regular; removing an
element or blanking a text/attribute by its byte span keeps everything else
exactly as it was. Every edited part is parsed afterwards (`check_xml`) so a
bad edit becomes a notice, never a broken file.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable, Iterator
from xml.sax.saxutils import unescape

from inspection.files.sanitize.common import Unsafe

__all__ = ["Tag", "attr_value", "check_xml", "element_end", "iter_tags", "namespaces", "remove_elements"]

_NAME = rb"[A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?"
_TAG = re.compile(rb"<(" + _NAME + rb")((?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*(/?)>")
_ATTR = re.compile(rb"([^\s=/>]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_XMLNS = re.compile(rb"xmlns:([\w.\-]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_ENTITIES = {"&quot;": '"', "&apos;": "'"}


@dataclass(frozen=True, slots=True)
class Tag:
    start: int
    end: int
    qname: bytes
    raw_attrs: bytes
    empty: bool                                # self-closing

    @property
    def local(self) -> bytes:
        return self.qname.rpartition(b":")[2]

    @property
    def attrs(self) -> tuple[tuple[bytes, bytes], ...]:
        """Raw (name, value) pairs, values still escaped; parsed on demand (most tags are never asked)."""
        return tuple((a.group(1), a.group(2) if a.group(2) is not None else a.group(3))
                     for a in _ATTR.finditer(self.raw_attrs))


def attr_value(raw: bytes) -> str:
    """An attribute value as text (entities resolved)."""
    text = raw.decode("utf-8", "replace")
    text = re.sub(r"&#x([0-9a-fA-F]+);", lambda m: chr(int(m.group(1), 16)) if int(m.group(1), 16) < 0x110000 else "", text)
    text = re.sub(r"&#([0-9]+);", lambda m: chr(int(m.group(1))) if int(m.group(1)) < 0x110000 else "", text)
    return unescape(text, _ENTITIES)


def iter_tags(data: bytes, names: tuple[bytes, ...] = (), near: re.Pattern[bytes] | None = None) -> Iterator[Tag]:
    """Start tags in document order. `names` keeps only those local names; `near` keeps only
    tags containing a match of that pattern. Both let the regex engine skip the other tags,
    which matters for multi-megabyte document parts."""
    if names:
        alt = b"|".join(re.escape(n) for n in names)
        hint = re.compile(rb"<(?:[\w.\-]+:)?(?:" + alt + rb")(?=[\s/>])")
        for h in hint.finditer(data):
            m = _TAG.match(data, h.start())
            if m is not None:
                yield Tag(m.start(), m.end(), m.group(1), m.group(2), bool(m.group(3)))
        return
    if near is not None:
        last = -1
        for h in near.finditer(data):
            start = data.rfind(b"<", 0, h.start())
            if start <= last or start < 0:
                continue
            m = _TAG.match(data, start)
            if m is not None and m.end() > h.start():
                last = start
                yield Tag(m.start(), m.end(), m.group(1), m.group(2), bool(m.group(3)))
        return
    for m in _TAG.finditer(data):
        yield Tag(m.start(), m.end(), m.group(1), m.group(2), bool(m.group(3)))


def namespaces(data: bytes) -> dict[bytes, str]:
    """prefix -> namespace URI for every ``xmlns:prefix`` declared anywhere in the part."""
    out: dict[bytes, str] = {}
    for m in _XMLNS.finditer(data):
        out[m.group(1)] = (m.group(2) if m.group(2) is not None else m.group(3)).decode("utf-8", "replace")
    return out


def element_end(data: bytes, tag: Tag) -> int:
    """Offset just past the element that `tag` opens (its matching end tag)."""
    if tag.empty:
        return tag.end
    q = re.escape(tag.qname)
    pattern = re.compile(rb"<" + q + rb"(?=[\s/>])(?:\"[^\"]*\"|'[^']*'|[^>\"'])*?(/?)>|</" + q + rb"\s*>")
    depth = 1
    for m in pattern.finditer(data, tag.end):
        if m.group(0).startswith(b"</"):
            depth -= 1
            if depth == 0:
                return m.end()
        elif not m.group(1):
            depth += 1
    raise Unsafe(f"XML element {tag.qname.decode('ascii', 'replace')} is not closed")


def remove_elements(data: bytes, select: Callable[[Tag], bool], names: tuple[bytes, ...] = (),
                    near: re.Pattern[bytes] | None = None) -> tuple[bytes, list[Tag]]:
    """Remove every element whose start tag `select` picks (with its content); `names` and
    `near` narrow the candidates as in `iter_tags`."""
    out = bytearray()
    pos = 0
    removed: list[Tag] = []
    for tag in iter_tags(data, names, near):
        if tag.start < pos or not select(tag):
            continue
        end = element_end(data, tag)
        out += data[pos:tag.start]
        pos = end
        removed.append(tag)
    if not removed:
        return data, removed
    out += data[pos:]
    return bytes(out), removed


_WIDE = (b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<", b"\x00\x00")


def check_xml(data: bytes, part: str) -> None:
    """The part must be well-formed XML in an ASCII-compatible encoding (our byte-level
    edits look for ASCII tags; a UTF-16 part would hide them) without a DTD (no entity
    expansion tricks)."""
    if data[:2] in _WIDE:
        raise Unsafe(f"{part}: XML in UTF-16/32, which this sanitiser does not edit")
    head = data[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise Unsafe(f"{part}: XML with a document type declaration")
    try:
        ET.fromstring(data)
    except ET.ParseError as e:
        raise Unsafe(f"{part}: not well-formed XML ({e})") from None
