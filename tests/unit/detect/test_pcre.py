"""PCRE -> Python re: spellings that differ are rewritten, the inexpressible is refused by name."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from signatures.matches import PcreFlag as F

from inspection.detect.errors import UnsupportedPattern
from inspection.detect.pcre import compile_pcre, translate


def search(pattern: str, data: bytes, *flags: F) -> bool:
    return compile_pcre(pattern, frozenset(flags)).find(data, 0) is not None


@pytest.mark.parametrize("pattern, data, expected", [
    (r"\x{41}\x4", b"A\x04", True),
    (r"(?<word>ab)\k<word>", b"abab", True),
    (r"(?P<w>ab)(?P=w)", b"abab", True),
    (r"(?'w'ab)\k{w}", b"abab", True),
    (r"(a)\g{-1}\g1", b"aaa", True),
    (r"a(?i)b|c", b"C", True),            # (?i) carries into the next alternative
    (r"a(?i)b|c", b"AB", False),          # but not back to the 'a'
    (r"(a(?i)b)c", b"aBc", True),
    (r"(a(?i)b)c", b"aBC", False),        # and ends with its group
    (r"[[:alpha:]]+\d", b"ab1", True),
    (r"[\d-z]", b"-", True),              # '-' after a class escape is literal
    (r"[a\-z]", b"m", False),
    (r"\h+\v", b" \t\n", True),
    (r"a\Z", b"a\n", True),
    (r"a\z", b"a\n", False),
    (r"\Qa.b\E+", b"a.bbb", True),
    (r"\Qa.b\E", b"axb", False),
    (r"caf\xe9|x", b"caf\xe9", True),
    ("caf\u00e9", "café".encode(), True),  # a literal non-ASCII char is its UTF-8 bytes, as in PCRE non-UTF
    (r"a{,2}", b"a{,2}", True),           # not a quantifier in PCRE2 < 10.43
    (r"\101\0", b"A\x00", True),
    (r"(?#comment)ab", b"ab", True),
    (r"a++b", b"aab", True),
    (r"(?>a+)b", b"aab", True),
    (r"\cA", b"\x01", True),
    (r"(a)?(?(1)b|c)", b"c", True),
])
def test_translated_patterns(pattern, data, expected):
    assert search(pattern, data) is expected


def test_ungreedy_modifier_swaps_quantifiers():
    assert compile_pcre("a.*b", frozenset({F.UNGREEDY})).find(b"aXbXb", 0).group() == b"aXb"
    assert compile_pcre("a.*?b", frozenset({F.UNGREEDY})).find(b"aXbXb", 0).group() == b"aXbXb"


def test_extended_mode_drops_whitespace_and_comments():
    assert translate("a b # comment\n c", frozenset({F.EXTENDED}))[0] == "abc"
    assert search("[ ]x", b" x", F.EXTENDED)      # whitespace inside a class stays


@pytest.mark.parametrize("pattern, construct", [
    (r"(?R)", "recursion"),
    (r"(a)(?1)", "recursion"),
    (r"\Ga", "\\G"),
    (r"a\Kb", "\\K"),
    (r"\p{L}", "Unicode property"),
    (r"(*UTF8)a", "VERB"),
    (r"(?|(a)|(b))", "branch reset"),
    (r"(?<=a|bc)x", "look-behind"),
    (r"(?x)a b", "inline option"),
    (r"[[:^alpha:]]", "negated POSIX"),
    (r"\x{100}", "above 0xff"),
    (r"\y", "unknown escape"),
])
def test_unsupported_constructs_are_named(pattern, construct):
    with pytest.raises(UnsupportedPattern) as e:
        compile_pcre(pattern)
    assert construct in e.value.construct
    assert e.value.keyword == "pcre" and e.value.pattern == pattern


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab()[]{}|*+?.^$\\-:=!<>#dwsxiQEzZ0123456789,'", max_size=20))
def test_any_pattern_compiles_or_is_refused_with_a_typed_error(pattern):
    try:
        compile_pcre(pattern).find(b"ab(a)b{1}", 0)
    except UnsupportedPattern:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abAB.x", max_size=6), st.binary(max_size=12))
def test_simple_patterns_behave_like_python_re(pattern, data):
    import re
    assert search(pattern, data) == (re.search(pattern.encode(), data) is not None)
