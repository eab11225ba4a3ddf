"""Rule text -> header tokens and (keyword, value) options; quoted strings and content bytes.

The only place that knows about quoting and escaping. As in Suricata, an
option ends at every ``;`` that is not escaped (``\\;``), quoted or not:
quotes are not tracked while splitting because real rules carry unescaped
quotes inside patterns (``pcre:"/^["']?post/Ri"``), so ``content:"a\\;b"``
survives and ``msg:"a;b"`` is an error, exactly as Suricata sees them.
Scanning jumps from one backslash or ``;`` to the next with a regular
expression: ET Open is ~17 MB of rule text and a per-character Python loop
would dominate load time.
"""
from __future__ import annotations

import re

from signatures.errors import MalformedRule

_SPECIAL = re.compile(r'\\.|;', re.S)
_HEX = frozenset("0123456789abcdefABCDEF")
_CONTENT_ESCAPABLE = frozenset(';:"\\')
_KEYWORD = re.compile(r"[a-z0-9_.\-]+\Z")

Option = tuple[str, "str | None"]


def split_rule(text: str) -> tuple[list[str], list[Option]]:
    """Split a one-line rule into its seven header tokens and its options."""
    open_at = text.find("(")
    close_at = text.rfind(")")
    if open_at < 0 or close_at < open_at:
        raise MalformedRule("rule", "no '(options)' part")
    if text[close_at + 1:].strip():
        raise MalformedRule("rule", "text after the closing ')'")
    header = split_header(text[:open_at])
    return header, split_options(text[open_at + 1:close_at])


def split_header(text: str) -> list[str]:
    """Whitespace-separated tokens; spaces inside ``[...]`` do not split."""
    if "[" not in text and "]" not in text:
        tokens = text.split()
        if len(tokens) != 7:
            raise MalformedRule("header", f"expected 'action proto src sport -> dst dport', got {len(tokens)} fields")
        return tokens
    tokens = []
    cur: list[str] = []
    depth = 0
    for ch in text.strip():
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch.isspace() and depth <= 0:
            if cur:
                tokens.append("".join(cur))
                cur = []
            continue
        if ch.isspace():
            continue  # drop spaces inside groups: "[1, 2]" == "[1,2]"
        cur.append(ch)
    if cur:
        tokens.append("".join(cur))
    if depth != 0:
        raise MalformedRule("header", "unbalanced '[' ']'")
    if len(tokens) != 7:
        raise MalformedRule("header", f"expected 'action proto src sport -> dst dport', got {len(tokens)} fields")
    return tokens


def split_options(body: str) -> list[Option]:
    """``name[:value];`` pieces; names are lower-cased, values stripped (still quoted/escaped)."""
    if "\\" not in body:
        pieces = body.split(";")
    else:
        pieces = []
        start = 0
        for m in _SPECIAL.finditer(body):
            if m.group() == ";":
                pieces.append(body[start:m.start()])
                start = m.end()
        pieces.append(body[start:])
    options: list[Option] = []
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        name, sep, value = piece.partition(":")
        name = name.strip().lower()
        if not _KEYWORD.match(name):
            raise MalformedRule("rule", f"{piece[:40]!r} is not an option (an unescaped ';' inside a value?)")
        options.append((name, value.strip() if sep else None))
    return options


def unquote(value: str | None, keyword: str) -> str:
    """A quoted option value with backslash escapes removed; an unescaped inner ``"`` is kept
    (Suricata strips only the outer quotes of ``msg``)."""
    if value is None:
        raise MalformedRule(keyword, "needs a value")
    v = value.strip()
    if len(v) < 2 or v[0] != '"' or v[-1] != '"':
        raise MalformedRule(keyword, "value must be a quoted string")
    inner = v[1:-1]
    if "\\" not in inner:
        return inner
    out = []
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\":
            if i + 1 >= len(inner):
                raise MalformedRule(keyword, "dangling backslash")
            out.append(inner[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def strip_quotes(value: str | None, keyword: str) -> str:
    """Remove surrounding quotes when present, keep escapes (pcre patterns need them)."""
    if value is None:
        raise MalformedRule(keyword, "needs a value")
    v = value.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return v[1:-1]
    if v.startswith('"') or (v.endswith('"') and not v.endswith('\\"')):
        raise MalformedRule(keyword, "unbalanced quotes")
    return v


def to_bytes(text: str, keyword: str) -> bytes:
    """Rule text is bytes decoded with surrogateescape; this gets the original bytes back."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise MalformedRule(keyword, "text is not valid UTF-8") from None


def parse_content(value: str | None, keyword: str = "content") -> tuple[bool, bytes]:
    """``[!]"text|41 42|text"`` -> (negated, pattern bytes); escapes ``\\; \\: \\" \\\\`` only."""
    if value is None:
        raise MalformedRule(keyword, "needs a value")
    v = value.strip()
    negated = v.startswith("!")
    if negated:
        v = v[1:].lstrip()
    if len(v) < 2 or v[0] != '"' or v[-1] != '"':
        raise MalformedRule(keyword, "pattern must be a quoted string")
    inner = v[1:-1]
    if not inner:
        raise MalformedRule(keyword, "empty pattern")
    if "|" not in inner and "\\" not in inner:
        if '"' in inner:
            raise MalformedRule(keyword, "unescaped '\"' in pattern")
        return negated, to_bytes(inner, keyword)
    out = bytearray()
    text_run: list[str] = []
    i = 0
    n = len(inner)
    while i < n:
        ch = inner[i]
        if ch == "|":
            out += to_bytes("".join(text_run), keyword)
            text_run = []
            end = inner.find("|", i + 1)
            if end < 0:
                raise MalformedRule(keyword, "unterminated |hex| block")
            out += _hex_block(inner[i + 1:end], keyword)
            i = end + 1
        elif ch == "\\":
            if i + 1 >= n or inner[i + 1] not in _CONTENT_ESCAPABLE:
                raise MalformedRule(keyword, f"invalid escape '\\{inner[i + 1:i + 2]}' (only \\; \\: \\\" \\\\)")
            text_run.append(inner[i + 1])
            i += 2
        elif ch == '"':
            raise MalformedRule(keyword, "unescaped '\"' in pattern")
        else:
            text_run.append(ch)
            i += 1
    out += to_bytes("".join(text_run), keyword)
    if not out:
        raise MalformedRule(keyword, "empty pattern")
    return negated, bytes(out)


def _hex_block(block: str, keyword: str) -> bytes:
    digits = []
    for ch in block:
        if ch in _HEX:
            digits.append(ch)
        elif not ch.isspace():
            raise MalformedRule(keyword, f"invalid character {ch!r} in |hex| block")
    if len(digits) % 2:
        raise MalformedRule(keyword, "odd number of hex digits in |hex| block")
    # pairs may straddle spaces ("4 1" is unusual but accepted by Suricata); group after stripping
    return bytes.fromhex("".join(digits))
