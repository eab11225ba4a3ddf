"""Header fields of MIME entities: parameters (RFC 2045), RFC 2231 extended
and continued parameters, RFC 2047 encoded words, address lists.

Pure functions on bytes, lenient the way mail clients are (attackers aim at
the difference between what a scanner and a mail client read), and bounded:
at most `MAX_PARAMS` parameters per field and `MAX_SEGMENTS` continuation
segments per parameter are looked at.
"""
from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote_to_bytes

__all__ = ["Field", "parse_field", "filename_of", "decode_words", "split_addresses", "field_name"]

MAX_PARAMS = 32
MAX_SEGMENTS = 64
MAX_FILENAME = 1024

_PARAM = re.compile(rb"""\s*([^\s=;"]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([^;]*))""", re.S)
_SEGMENT = re.compile(r"^(.*?)\*(\d+)(\*?)$")
_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_WORD_GAP = re.compile(rb"(\?=)\s+(=\?)")
_QP_WORD = re.compile(rb"=([0-9A-Fa-f]{2})")
_COMMENT = re.compile(rb"\([^()]*\)")


class Field:
    """A structured header value: the main value (lowercased type or
    disposition) and its parameters (lowercased names, raw bytes values)."""

    __slots__ = ("value", "params")

    def __init__(self, value: str, params: dict[str, bytes]) -> None:
        self.value, self.params = value, params


def field_name(raw: bytes) -> bytes:
    """A header name as clients read it: comments such as ``Content-Type(x)``
    dropped, case folded (the name then matches what a mail client honours)."""
    if b"(" in raw:
        raw = _COMMENT.sub(b"", raw)
    return raw.strip().lower()


def parse_field(raw: bytes) -> Field:
    """``type/subtype; a=b; c="d"`` -> Field (a missing value is the empty string)."""
    main, _, rest = raw.partition(b";")
    params: dict[str, bytes] = {}
    for n, m in enumerate(_PARAM.finditer(rest)):
        if n >= MAX_PARAMS:
            break
        name = m.group(1).decode("latin-1").lower()
        if m.group(2) is not None:
            value = re.sub(rb"\\(.)", rb"\1", m.group(2))
        else:
            value = m.group(3).strip()
        params.setdefault(name, value)
    return Field(_COMMENT.sub(b"", main).strip().lower().decode("latin-1"), params)


def _extended(params: dict[str, bytes], name: str) -> bytes | None:
    """RFC 2231: ``name*=charset'lang'pct-encoded`` or ``name*0=..; name*1*=..``."""
    if name + "*" in params:
        return _pct(params[name + "*"], True)
    segs: list[tuple[int, bytes, bool]] = []
    for key, value in params.items():
        m = _SEGMENT.match(key)
        if m is not None and m.group(1) == name and len(segs) < MAX_SEGMENTS:
            segs.append((int(m.group(2)), value, bool(m.group(3))))
    if not segs:
        return None
    segs.sort()
    out = bytearray()
    for i, (_, value, encoded) in enumerate(segs):
        if encoded:
            out += _pct(value, i == 0)
        else:
            out += value
    return bytes(out)


def _pct(value: bytes, with_charset: bool) -> bytes:
    if with_charset and value.count(b"'") >= 2:
        value = value.split(b"'", 2)[2]
    return unquote_to_bytes(value)


def filename_of(disposition: Field | None, ctype: Field | None) -> str | None:
    """The name a mail client shows for an entity: Content-Disposition
    filename (RFC 2231 forms first), else Content-Type name."""
    for f, key in ((disposition, "filename"), (ctype, "name")):
        if f is None:
            continue
        raw = _extended(f.params, key)
        if raw is None:
            raw = f.params.get(key)
        if raw:
            name = decode_words(raw[:MAX_FILENAME * 4])[:MAX_FILENAME]
            if name:
                return name
    return None


def decode_words(raw: bytes) -> str:
    """RFC 2047 encoded words decoded (unknown charsets as UTF-8 with
    replacement); whitespace between adjacent words dropped, as specified."""
    if b"=?" not in raw:
        return _text(raw)
    raw = _WORD_GAP.sub(rb"\1\2", raw)
    out: list[str] = []
    pos = 0
    for m in _WORD.finditer(raw):
        out.append(_text(raw[pos:m.start()]))
        charset, enc, data = m.group(1).decode("ascii", "replace"), m.group(2), m.group(3)
        try:
            if enc in b"bB":
                data = base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
            else:
                data = _QP_WORD.sub(lambda mm: bytes((int(mm.group(1), 16),)), data.replace(b"_", b" "))
        except (binascii.Error, ValueError):
            out.append(_text(m.group(0)))
        else:
            out.append(_charset(data, charset))
        pos = m.end()
    out.append(_text(raw[pos:]))
    return "".join(out)


def _charset(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset.split("*", 1)[0], "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def split_addresses(raw: bytes, limit: int = 64) -> tuple[str, ...]:
    """An address list (To, Cc) split at commas outside quotes and angle brackets."""
    out: list[str] = []
    cur = bytearray()
    quoted = angle = False
    for ch in raw:
        if ch == 0x22:
            quoted = not quoted
        elif not quoted and ch == 0x3C:
            angle = True
        elif not quoted and ch == 0x3E:
            angle = False
        if ch == 0x2C and not quoted and not angle:
            s = decode_words(bytes(cur).strip())
            if s:
                out.append(s)
            cur.clear()
            if len(out) >= limit:
                return tuple(out)
            continue
        cur.append(ch)
    s = decode_words(bytes(cur).strip())
    if s and len(out) < limit:
        out.append(s)
    return tuple(out)
