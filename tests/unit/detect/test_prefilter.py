"""The Hyperscan prefilter: fast pattern choice, candidates per buffer, serialisation."""
from __future__ import annotations

import pytest

from signatures.buffers import Buffer, TransformKind

from inspection.detect.engine import Detector
from inspection.detect.errors import PrefilterError
from inspection.detect.prefilter import (
    Prefilter, choose_fast_pattern, compile_database, dump_database, load_database, pattern_strength,
)

from tests.unit.detect._helpers import rule

HTTP = "alert http any any -> any any"


# --- choice ---------------------------------------------------------------------------------

def test_explicit_fast_pattern_wins_and_is_chopped():
    r = rule('content:"a-very-long-pattern"; content:"short"; fast_pattern;')
    assert choose_fast_pattern(r).pattern == b"short"
    r = rule('content:"abcdefgh"; fast_pattern:2,3;')
    c = choose_fast_pattern(r)
    assert c.pattern == b"cde" and c.explicit


def test_longest_non_negated_content_is_chosen():
    r = rule('content:"ab"; content:!"a-long-negated-one"; content:"abcd";')
    assert choose_fast_pattern(r).pattern == b"abcd"


def test_http_buffers_are_preferred_over_payload():
    r = rule('content:"a-long-payload-pattern"; http.uri; content:"/x";', header=HTTP)
    c = choose_fast_pattern(r)
    assert c.key == (Buffer.HTTP_URI, ()) and c.pattern == b"/x"


def test_equal_length_prefers_the_stronger_pattern():
    assert pattern_strength(b"aaaa") < pattern_strength(b"a|00|b") < pattern_strength(b"\x80\x81\x82\x83")
    r = rule('content:"aaaa"; content:"|00 01 02 03|";')
    assert choose_fast_pattern(r).pattern == b"\x00\x01\x02\x03"


def test_rules_without_usable_content_have_no_fast_pattern():
    assert choose_fast_pattern(rule('content:!"x";')) is None
    assert choose_fast_pattern(rule('pcre:"/abc/";')) is None
    assert choose_fast_pattern(rule('dsize:>10;')) is None
    assert choose_fast_pattern(rule('base64_decode; base64_data; content:"secret";')) is None


def test_transformed_block_keeps_its_transforms_in_the_key():
    r = rule('dns.query; dotprefix; content:".evil.com"; endswith;', header="alert dns any any -> any any")
    c = choose_fast_pattern(r)
    assert c.key[0] is Buffer.DNS_QUERY and [t.kind for t in c.key[1]] == [TransformKind.DOTPREFIX]


# --- candidates ----------------------------------------------------------------------------

def _prefilter():
    rules = [
        rule('content:"EVIL"; nocase;', 1),
        rule('content:"Exact";', 2),
        rule('http.uri; content:"/admin";', 3, HTTP),
        rule('http.host; content:"example.com";', 4, HTTP),
        rule('content:!"x";', 5),
        rule('content:"Exact"; content:"more";', 6),
        rule('content:"ab|00|cd";', 7),
        rule('dns.query; dotprefix; content:".evil.com"; endswith;', 8, "alert dns any any -> any any"),
    ]
    return rules, Prefilter(rules)


def test_nocase_and_case_sensitive_literals():
    _, p = _prefilter()
    assert p.candidates(Buffer.PAYLOAD, b"xx evil xx") == {0}
    assert p.candidates(Buffer.PAYLOAD, b"xx exact xx") == set()
    assert p.candidates(Buffer.PAYLOAD, b"xx Exact xx") == {1, 5}    # rule 6 chose "Exact" too (longer than "more")


def test_rules_sharing_a_literal_are_all_candidates():
    rules, p = _prefilter()
    assert choose_fast_pattern(rules[5]).pattern == b"Exact"
    assert p.candidates(Buffer.PAYLOAD, b"Exact") == {1, 5}


def test_each_buffer_has_its_own_database():
    _, p = _prefilter()
    assert p.candidates(Buffer.HTTP_URI, b"/admin/x") == {2}
    assert p.candidates(Buffer.HTTP_HOST, b"/admin/x") == set()
    assert p.candidates(Buffer.HTTP_HOST, b"www.example.com") == {3}
    assert p.candidates(Buffer.PAYLOAD, b"/admin") == set()


def test_rules_without_content_are_always_candidates():
    _, p = _prefilter()
    assert p.always == {4}
    assert p.candidates_for({Buffer.PAYLOAD: b"nothing"}) == {4}


def test_nul_bytes_in_a_literal_are_not_truncated():
    _, p = _prefilter()
    assert p.candidates(Buffer.PAYLOAD, b"ab") == set()
    assert p.candidates(Buffer.PAYLOAD, b"xab\x00cdx") == {6}


def test_literals_of_transformed_blocks_are_found_in_the_transformed_buffer():
    rules, p = _prefilter()
    key = choose_fast_pattern(rules[7]).key
    assert p.candidates(Buffer.DNS_QUERY, b"evil.com", key[1]) == {7}
    assert p.candidates(Buffer.DNS_QUERY, b"evil.com") == set()        # no untransformed database


# --- serialisation ---------------------------------------------------------------------------

def test_database_dump_and_load_round_trip():
    db = compile_database([(b"abc", False), (b"XYZ", True)])
    loaded = load_database(dump_database(db))
    hits = []
    loaded.scan(b"..xyz..abc", match_event_handler=lambda i, a, b, f, c: hits.append(i))
    assert sorted(hits) == [0, 1]


def test_prefilter_image_round_trip():
    rules, p = _prefilter()
    image = p.to_image()
    q = Prefilter.from_image(image, rules)
    for buf, data in [(Buffer.PAYLOAD, b"EVIL Exact ab\x00cd"), (Buffer.HTTP_URI, b"/admin"),
                      (Buffer.HTTP_HOST, b"example.com")]:
        assert q.candidates(buf, data) == p.candidates(buf, data)
    assert q.always == p.always and q.keys == p.keys


def test_image_refuses_another_ruleset():
    rules, p = _prefilter()
    with pytest.raises(PrefilterError):
        Prefilter.from_image(p.to_image(), rules[:-1])


def test_corrupt_database_is_a_prefilter_error():
    with pytest.raises(PrefilterError):
        load_database(b"not a database")


def test_detector_loads_a_prefilter_image():
    rules, p = _prefilter()
    d = Detector(rules, prefilter=p.to_image())
    assert [m.sid for m in d.inspect({Buffer.PAYLOAD: b"an EviL thing"})] == [1, 5]
