"""Garbage, truncated and mutated rules: the parser returns a Rule or raises RuleError, nothing else.

Also: the loader never raises for content, whatever the lines are.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from signatures.errors import RuleError
from signatures.model import Rule
from signatures.parser import RuleLoader, load_rules, parse_rule
from tests.unit.signatures._et_sample import ET_SAMPLE, LEGACY_SAMPLE

SAMPLES = ET_SAMPLE + LEGACY_SAMPLE
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that matter to the rule grammar, weighted in so mutations hit the interesting paths.
RULE_CHARS = st.sampled_from(list(';:"\\|!,()[]$<>-/ 0123456789abcdefxyzRUHiPQ') + ["\x00", "\n", "\udc80", "é"])
KEYWORDS = ["content", "nocase", "depth", "offset", "distance", "within", "pcre", "isdataat", "byte_test",
            "byte_jump", "byte_extract", "fast_pattern", "http.uri", "http_uri", "dotprefix", "bsize", "dsize",
            "flow", "flowbits", "threshold", "startswith", "endswith", "base64_decode", "base64_data", "xor",
            "urilen", "sid", "msg", "classtype", "pkt_data", "file.data", "flags", "stream_size", "xbits"]


def _ok(text: str) -> None:
    try:
        assert isinstance(parse_rule(text), Rule)
    except RuleError as e:
        assert e.keyword and isinstance(e.reason, str)


@SETTINGS
@given(st.text(max_size=300))
def test_random_text(text):
    _ok(text)


@SETTINGS
@given(st.text(alphabet=RULE_CHARS, max_size=200))
def test_random_rule_alphabet_inside_valid_header(body):
    _ok(f"alert tcp any any -> any any ({body})")


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(KEYWORDS), st.none() | st.text(alphabet=RULE_CHARS, max_size=20)),
                max_size=12))
def test_random_option_sequences(opts):
    body = " ".join(f"{k};" if v is None else f"{k}:{v};" for k, v in opts)
    _ok(f'alert http any any -> any any (msg:"m"; {body} sid:1;)')


@st.composite
def mutated_rule(draw):
    text = draw(st.sampled_from(SAMPLES))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "swap"]))
        if not text:
            break
        i = draw(st.integers(0, len(text) - 1))
        j = draw(st.integers(i, min(len(text), i + 40)))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(st.text(alphabet=RULE_CHARS, min_size=1, max_size=5)) + text[i:]
        elif op == "replace":
            text = text[:i] + draw(RULE_CHARS) + text[i + 1:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:
            k = draw(st.integers(0, len(text) - 1))
            chars = list(text)
            chars[i], chars[k] = chars[k], chars[i]
            text = "".join(chars)
    return text


@SETTINGS
@given(mutated_rule())
def test_mutated_real_rules(text):
    _ok(text)


@pytest.mark.parametrize("text", SAMPLES, ids=lambda t: t.split("sid:")[1].split(";")[0])
def test_every_truncation_of_real_rules(text):
    assert isinstance(parse_rule(text), Rule)
    for n in range(len(text)):
        _ok(text[:n])


@SETTINGS
@given(st.lists(st.one_of(mutated_rule(), st.text(max_size=80)), max_size=10))
def test_loader_never_raises(lines):
    res = load_rules(lines=lines)
    assert len(res.rules) + len(res.skipped) <= len(lines)


def test_loader_one_rule_at_a_time_equals_whole():
    whole = load_rules(lines=SAMPLES)
    loader = RuleLoader()
    for line in SAMPLES:
        loader.feed_lines([line])
    assert loader.result() == whole
