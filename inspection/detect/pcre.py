"""PCRE, as Suricata compiles it, translated into Python `re` on bytes.

Suricata hands rule expressions to PCRE2 in 8-bit mode without UTF: the
subject and the pattern are raw bytes, classes and case folding are ASCII.
Python's `re` on bytes agrees on almost all of that; this module rewrites the
spellings that differ (``\\x{41}``, ``\\h``, ``\\v``, ``\\z``/``\\Z``, named
groups, POSIX classes, option changes in mid-pattern, the ``G`` and ``E``
modifiers, extended-mode whitespace) and raises `UnsupportedPattern` for what
`re` cannot express at all (recursion, ``\\G``, ``\\K``, ``\\p{..}``, verbs,
branch reset, variable-length lookbehind), so a rule is skipped with a reason
instead of silently matching something else.

The pattern is first turned back into the bytes it was in the rule file (the
rule text is UTF-8 with surrogate escapes), and then handled one byte per
character (latin-1), which is exactly PCRE's non-UTF view.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from signatures.matches import PcreFlag

from inspection.detect.errors import UnsupportedPattern

_H = "\\t\\x20\\xa0"                  # PCRE \h without UTF
_V = "\\n\\x0b\\x0c\\r\\x85"          # PCRE \v without UTF
_SAME_SETS = frozenset("dDwWsS")
_SAME_ASSERTIONS = frozenset("bBA")
_SIMPLE = {"n": 0x0A, "r": 0x0D, "t": 0x09, "f": 0x0C, "a": 0x07, "e": 0x1B}
_UNSUPPORTED_ESCAPES = {
    "G": "\\G (start-of-match anchor)", "K": "\\K (match start reset)", "p": "\\p{..} (Unicode property)",
    "P": "\\P{..} (Unicode property)", "X": "\\X (extended grapheme)", "C": "\\C (single code unit)",
}
_POSIX = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": "\\t\\n\\x0b\\x0c\\r\\x20", "blank": "\\t\\x20", "xdigit": "0-9A-Fa-f",
    "punct": "\\x21-\\x2f\\x3a-\\x40\\x5b-\\x60\\x7b-\\x7e", "print": "\\x20-\\x7e",
    "graph": "\\x21-\\x7e", "cntrl": "\\x00-\\x1f\\x7f", "word": "a-zA-Z0-9_", "ascii": "\\x00-\\x7f",
}
_QUANT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INLINE_OK = frozenset("ims")


@dataclass(frozen=True, slots=True)
class Regex:
    """A pcre ready to run: `anchored` (modifier ``A``) means match only at the start position."""

    source: str
    compiled: re.Pattern[bytes]
    anchored: bool

    def find(self, subject: bytes, pos: int) -> re.Match[bytes] | None:
        if self.anchored:
            return self.compiled.match(subject, pos)
        return self.compiled.search(subject, pos)


def compile_pcre(pattern: str, flags: frozenset[PcreFlag] = frozenset()) -> Regex:
    """Translate and compile; raises `UnsupportedPattern` naming the construct."""
    source, re_flags = translate(pattern, flags)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # "possible nested set" etc.: PCRE reads those literally too
            compiled = re.compile(source.encode("latin-1"), re_flags)
    except re.error as e:
        raise UnsupportedPattern(pattern, f"not expressible in Python re ({e.msg})") from None
    except (OverflowError, RecursionError) as e:
        raise UnsupportedPattern(pattern, f"too large for Python re ({e})") from None
    return Regex(pattern, compiled, PcreFlag.ANCHORED in flags)


def translate(pattern: str, flags: frozenset[PcreFlag] = frozenset()) -> tuple[str, int]:
    """The Python source (latin-1 text, one char per byte) and `re` flags for a PCRE pattern."""
    raw = pattern.encode("utf-8", "surrogateescape").decode("latin-1")
    t = _Translator(raw, pattern, flags)
    t.run()
    re_flags = 0
    if PcreFlag.CASELESS in flags:
        re_flags |= re.IGNORECASE
    if PcreFlag.DOTALL in flags:
        re_flags |= re.DOTALL
    if PcreFlag.MULTILINE in flags:
        re_flags |= re.MULTILINE
    return "".join(t.out), re_flags


def _lit(code: int) -> str:
    ch = chr(code)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{code:02x}"


class _Translator:
    """One pass over the pattern; `scopes` holds, per open group, the inline option changes in force."""

    def __init__(self, src: str, original: str, flags: frozenset[PcreFlag]) -> None:
        self.src = src
        self.original = original
        self.i = 0
        self.out: list[str] = []
        self.groups = 0
        self.scopes: list[list[str]] = [[]]
        self.extended = PcreFlag.EXTENDED in flags
        self.ungreedy = PcreFlag.UNGREEDY in flags
        self.dollar_end = PcreFlag.DOLLAR_ENDONLY in flags and PcreFlag.MULTILINE not in flags

    def fail(self, construct: str) -> UnsupportedPattern:
        return UnsupportedPattern(self.original, construct)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.src[j] if j < len(self.src) else ""

    # --- main loop ------------------------------------------------------------------

    def run(self) -> None:
        src = self.src
        while self.i < len(src):
            c = src[self.i]
            if c == "\\":
                self.out.append(self.escape(in_class=False))
            elif c == "[":
                self.char_class()
            elif c == "(":
                self.group()
            elif c == ")":
                self.close()
            elif c == "|":
                scopes = self.scopes[-1]
                self.out.append(")" * len(scopes) + "|" + "".join(f"(?{f}:" for f in scopes))
                self.i += 1
            elif c in "*+?":
                self.i += 1
                self.quantifier(c)
            elif c == "{":
                m = _QUANT.match(src, self.i)
                if m is None:
                    self.out.append("\\{")
                    self.i += 1
                else:
                    self.i = m.end()
                    self.quantifier(m.group(0))
            elif c == "$":
                self.out.append("\\Z" if self.dollar_end else "$")
                self.i += 1
            elif self.extended and c in " \t\n\r\x0b\x0c":
                self.i += 1
            elif self.extended and c == "#":
                end = src.find("\n", self.i)
                self.i = len(src) if end < 0 else end + 1
            elif c in "^.":
                self.out.append(c)
                self.i += 1
            else:
                self.out.append(_lit(ord(c)))
                self.i += 1
        if len(self.scopes) != 1:
            raise self.fail("unbalanced parentheses")
        self.out.append(")" * len(self.scopes[0]))

    def quantifier(self, q: str) -> None:
        nxt = self.peek()
        if nxt == "+":
            self.i += 1
            self.out.append(q + "+")
            return
        lazy = nxt == "?"
        if lazy:
            self.i += 1
        self.out.append(q + "?" if lazy != self.ungreedy else q)

    # --- groups -----------------------------------------------------------------------

    def open(self, text: str, *, capturing: bool = False) -> None:
        self.out.append(text)
        self.scopes.append([])
        if capturing:
            self.groups += 1

    def close(self) -> None:
        if len(self.scopes) == 1:
            raise self.fail("unbalanced parentheses")
        scopes = self.scopes.pop()
        self.out.append(")" * (len(scopes) + 1))
        self.i += 1

    def read_until(self, start: int, end_char: str) -> tuple[str, int]:
        end = self.src.find(end_char, start)
        if end < 0:
            raise self.fail(f"missing {end_char!r}")
        return self.src[start:end], end + 1

    def group(self) -> None:
        src, i = self.src, self.i
        if src.startswith("(*", i):
            raise self.fail("(*VERB) / option setting verb")
        if not src.startswith("(?", i):
            self.i += 1
            self.open("(", capturing=True)
            return
        c2 = self.peek(2)
        j = i + 2
        if c2 == "#":
            _, self.i = self.read_until(j, ")")
        elif c2 in (":", "=", "!", ">"):
            self.i = j + 1
            self.open("(?" + c2)
        elif c2 == "<" and self.peek(3) in ("=", "!"):
            self.i = j + 2
            self.open("(?<" + self.peek(-1))
        elif c2 in ("<", "'"):
            name, self.i = self.read_until(j + 1, ">" if c2 == "<" else "'")
            self.open(f"(?P<{self.name(name)}>", capturing=True)
        elif c2 == "P":
            self.named_p(j + 1)
        elif c2 == "(":
            self.conditional(j + 1)
        elif c2 == "|":
            raise self.fail("(?| branch reset")
        elif c2 in ("R", "&") or c2.isdigit() or (c2 in "+-" and self.peek(3).isdigit()):
            raise self.fail("recursion / subroutine call")
        else:
            self.options(j)

    def name(self, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise self.fail(f"bad group name {name[:20]!r}")
        return name

    def named_p(self, j: int) -> None:
        kind = self.src[j] if j < len(self.src) else ""
        if kind == "<":
            name, self.i = self.read_until(j + 1, ">")
            self.open(f"(?P<{self.name(name)}>", capturing=True)
        elif kind == "=":
            name, self.i = self.read_until(j + 1, ")")
            self.out.append(f"(?P={self.name(name)})")
        else:
            raise self.fail("(?P> subroutine call")

    def conditional(self, j: int) -> None:
        cond, self.i = self.read_until(j, ")")
        if cond.isdigit():
            self.open(f"(?({int(cond)})")
        elif len(cond) > 2 and cond[0] + cond[-1] in ("<>", "''"):
            self.open(f"(?({self.name(cond[1:-1])})")
        elif _NAME.fullmatch(cond) and not cond.startswith("R") and cond != "DEFINE":
            self.open(f"(?({cond})")
        else:
            raise self.fail("conditional on recursion, DEFINE or an assertion")

    def options(self, j: int) -> None:
        src = self.src
        k = j
        while k < len(src) and (src[k].isalpha() or src[k] in "-^"):
            k += 1
        term = src[k] if k < len(src) else ""
        spec = src[j:k]
        if term not in (":", ")") or "^" in spec:
            raise self.fail(f"inline option syntax (?{spec[:10]}")
        letters = set(spec.replace("-", ""))
        if not letters <= _INLINE_OK or spec.count("-") > 1:
            raise self.fail(f"inline option (?{spec}) (only i, m, s can change mid-pattern)")
        self.i = k + 1
        if term == ":":
            self.open(f"(?{spec}:")
        elif spec:
            # (?i) lasts to the end of the enclosing group, alternatives included:
            # a scoped group that is closed and reopened around every '|'.
            self.out.append(f"(?{spec}:")
            self.scopes[-1].append(spec)

    # --- escapes ---------------------------------------------------------------------

    def escape(self, in_class: bool) -> str:
        """Translate the escape at self.i (a backslash); returns the Python text."""
        c = self.peek(1)
        if not c:
            raise self.fail("trailing backslash")
        self.i += 2
        if c in _SAME_SETS:
            return "\\" + c
        if c in _SIMPLE:
            return _lit(_SIMPLE[c])
        if c == "x":
            return _lit(self.hex_escape())
        if c == "o" and self.peek() == "{":
            digits, self.i = self.read_until(self.i + 1, "}")
            return _lit(self.byte_value(digits, 8))
        if c == "c":
            ctl = self.peek()
            if not ctl or not ctl.isascii():
                raise self.fail("bad \\c escape")
            self.i += 1
            return _lit(ord(ctl.upper()) ^ 0x40)
        if c == "h":
            return _H if in_class else f"[{_H}]"
        if c == "v":
            return _V if in_class else f"[{_V}]"
        if c == "E":
            return ""
        if c.isdigit():
            return self.number_escape(c, in_class)
        if in_class:
            if c == "b":
                return _lit(0x08)
            if c.isascii() and c.isalnum():
                raise self.fail(f"\\{c} inside a character class")
            return _lit(ord(c))
        return self.outside_escape(c)

    def outside_escape(self, c: str) -> str:
        if c in _SAME_ASSERTIONS:
            return "\\" + c
        if c == "z":
            return "\\Z"
        if c == "Z":
            return "(?=\\n?\\Z)"
        if c == "H":
            return f"[^{_H}]"
        if c == "V":
            return f"[^{_V}]"
        if c == "R":
            return f"(?:\\r\\n|[{_V}])"
        if c == "N" and self.peek() != "{":
            return "[^\\n]"
        if c == "Q":
            end = self.src.find("\\E", self.i)
            end = len(self.src) if end < 0 else end
            text = "".join(_lit(ord(ch)) for ch in self.src[self.i:end])
            self.i = min(len(self.src), end + 2)
            return text
        if c == "k":
            return self.named_backref()
        if c == "g":
            return self.g_backref()
        if c in _UNSUPPORTED_ESCAPES:
            raise self.fail(_UNSUPPORTED_ESCAPES[c])
        if c.isascii() and c.isalnum():
            raise self.fail(f"unknown escape \\{c}")
        return _lit(ord(c))

    def hex_escape(self) -> int:
        if self.peek() == "{":
            digits, self.i = self.read_until(self.i + 1, "}")
            return self.byte_value(digits, 16)
        digits = ""
        while len(digits) < 2 and self.peek() and self.peek() in "0123456789abcdefABCDEF":
            digits += self.peek()
            self.i += 1
        return int(digits, 16) if digits else 0

    def byte_value(self, digits: str, base: int) -> int:
        try:
            v = int(digits.strip(), base)
        except ValueError:
            raise self.fail(f"bad escape digits {digits[:10]!r}") from None
        if v > 0xFF:
            raise self.fail("character value above 0xff (needs UTF mode)")
        return v

    def number_escape(self, first: str, in_class: bool) -> str:
        src = self.src
        start = self.i - 1
        if first == "0" or in_class:
            k = start
            while k < len(src) and k < start + 3 and src[k] in "01234567":
                k += 1
            if k == start:                                    # \8 or \9 in a class: the digit itself
                self.i = start + 1
                return _lit(ord(first))
            self.i = k
            return _lit(int(src[start:k], 8) & 0xFF)
        k = start
        while k < len(src) and src[k].isdigit():
            k += 1
        num = int(src[start:k])
        if num < 10 or first in "89" or num <= self.groups:
            self.i = k
            return f"(?:\\{num})"
        k = start
        while k < len(src) and k < start + 3 and src[k] in "01234567":
            k += 1
        self.i = k
        return _lit(int(src[start:k], 8) & 0xFF)

    def named_backref(self) -> str:
        opener = self.peek()
        closer = {"<": ">", "'": "'", "{": "}"}.get(opener)
        if closer is None:
            raise self.fail("bad \\k reference")
        name, self.i = self.read_until(self.i + 1, closer)
        return f"(?P={self.name(name)})"

    def g_backref(self) -> str:
        opener = self.peek()
        if opener in ("<", "'"):
            raise self.fail("\\g<..> subroutine call")
        if opener == "{":
            ref, self.i = self.read_until(self.i + 1, "}")
        else:
            m = re.compile(r"[+-]?\d+").match(self.src, self.i)
            if m is None:
                raise self.fail("bad \\g reference")
            ref, self.i = m.group(0), m.end()
        if _NAME.fullmatch(ref):
            return f"(?P={ref})"
        try:
            num = int(ref)
        except ValueError:
            raise self.fail("bad \\g reference") from None
        if num < 0:
            num = self.groups + num + 1
        if num <= 0 or ref.startswith("+"):
            raise self.fail("relative forward reference")
        return f"(?:\\{num})"

    # --- classes ---------------------------------------------------------------------

    def char_class(self) -> None:
        src = self.src
        self.i += 1
        parts = ["["]
        if self.peek() == "^":
            parts.append("^")
            self.i += 1
        # tokens: ("lit", text) can end a range, ("set", text) cannot, ("dash", "-")
        tokens: list[tuple[str, str]] = []
        first = True
        while True:
            if self.i >= len(src):
                raise self.fail("unterminated character class")
            c = src[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "[" and self.peek(1) in (":", ".", "="):
                tokens.append(("set", self.posix_class()))
            elif c == "\\":
                before = self.peek(1)
                text = self.escape(in_class=True)
                if text:
                    tokens.append(("set" if before in "dDwWsShv" else "lit", text))
            elif c == "-":
                tokens.append(("dash", "-"))
                self.i += 1
            else:
                tokens.append(("lit", _lit(ord(c))))
                self.i += 1
        for n, (kind, text) in enumerate(tokens):
            if kind == "dash":
                prev = tokens[n - 1][0] if n else ""
                nxt = tokens[n + 1][0] if n + 1 < len(tokens) else ""
                ranged = prev == "lit" and nxt == "lit" and (n < 2 or tokens[n - 2][0] != "dash")
                parts.append("-" if ranged else "\\-")
            else:
                parts.append(text)
        parts.append("]")
        self.out.append("".join(parts))

    def posix_class(self) -> str:
        kind = self.peek(1)
        if kind != ":":
            raise self.fail("[.x.] / [=x=] collating elements")
        end = self.src.find(":]", self.i + 2)
        if end < 0:
            raise self.fail("unterminated POSIX class")
        name = self.src[self.i + 2:end]
        self.i = end + 2
        if name.startswith("^"):
            raise self.fail(f"negated POSIX class [:{name}:]")
        if name not in _POSIX:
            raise self.fail(f"unknown POSIX class [:{name}:]")
        return _POSIX[name]
