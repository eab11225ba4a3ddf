"""Splitting rule text, quoting and content bytes; garbage gives only the typed errors."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from signatures.classification import parse_classification_config
from signatures.errors import ClassificationError, MalformedRule
from signatures.lexer import parse_content, split_header, split_options, split_rule, unquote


def test_split_options_escapes_and_missing_final_semicolon():
    opts = split_options(r' msg:"a\;b"; content:"x\\"; nocase ;pcre:"/a\;b/" ')
    assert opts == [("msg", r'"a\;b"'), ("content", '"x\\\\"'), ("nocase", None), ("pcre", r'"/a\;b/"')]


def test_split_options_lowercases_names_and_keeps_value_colons():
    assert split_options("REFERENCE:url,http://x.y/z;") == [("reference", "url,http://x.y/z")]


def test_split_header_groups_with_spaces():
    assert split_header("alert tcp [1.1.1.1, 2.2.2.2] any -> any [80, 443]")[2] == "[1.1.1.1,2.2.2.2]"


def test_split_rule_uses_last_parenthesis():
    header, opts = split_rule('alert tcp any any -> any any (content:"a)b"; sid:1;)')
    assert opts[0] == ("content", '"a)b"')


def test_unquote():
    assert unquote(r'"a\"b\\c"', "msg") == 'a"b\\c'
    assert unquote('"say "hi""', "msg") == 'say "hi"'
    with pytest.raises(MalformedRule):
        unquote("nope", "msg")


def test_parse_content_hex_spacing_and_case():
    assert parse_content('"|4 1|"') == (False, b"A")  # digits pair across spaces, as Suricata reads them
    assert parse_content('"|aB cD|"') == (False, b"\xab\xcd")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('"|\\;:!ab 0123456789fG') + ["\udc80", "\ud800"]), max_size=30))
def test_parse_content_garbage(text):
    try:
        negated, pattern = parse_content(text)
        assert pattern and isinstance(pattern, bytes)
    except MalformedRule as e:
        assert e.keyword == "content"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_split_rule_garbage(text):
    try:
        split_rule(text)
    except MalformedRule:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=60),
                          st.builds(lambda a, b, c: f"config classification: {a},{b},{c}",
                                    st.text(max_size=10), st.text(max_size=10), st.text(max_size=5))),
                max_size=5))
def test_classification_garbage(lines):
    try:
        parse_classification_config("\n".join(lines))
    except ClassificationError:
        pass
