"""One test per payload semantic of the verifier (Suricata's content inspection)."""
from __future__ import annotations

import pytest

from signatures.buffers import Buffer

from inspection.detect.engine import Detector
from inspection.detect.errors import UnsupportedItem
from inspection.detect.verify import BlockResult, compile_block

from tests.unit.detect._helpers import block, matches, result, rule

HTTP = "alert http any any -> any any"


# --- content positions -----------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    (b"xxabcxx", True),      # inside [offset 2, offset + depth 5)
    (b"xxxxabc", True),      # ends exactly at offset + depth
    (b"xxxxxabc", False),    # ends past the depth window
    (b"abcxxxx", False),     # starts before the offset
])
def test_offset_and_depth_are_absolute(data, expected):
    assert matches('content:"abc"; offset:2; depth:5;', data) is expected


def test_depth_alone_counts_from_the_buffer_start():
    assert matches('content:"abc"; depth:3;', b"abcx")
    assert not matches('content:"abc"; depth:3;', b"xabc")


@pytest.mark.parametrize("data, expected", [
    (b"ab..cd", True),       # cd at 4: inside [2 + 2, 2 + 2 + 4)
    (b"ab....cd", True),     # ends exactly at the within limit
    (b"ab.....cd", False),   # one byte too far
    (b"abcd", False),        # before the distance
])
def test_distance_and_within_are_relative_to_the_previous_match(data, expected):
    assert matches('content:"ab"; content:"cd"; distance:2; within:4;', data) is expected


def test_negative_distance_looks_back_from_the_previous_match():
    opts = 'content:"world"; content:"hello"; distance:-11; within:5;'
    assert matches(opts, b"hello world")
    assert not matches(opts, b"hello  world")     # hello is now 12 bytes back


def test_negative_distance_clamps_at_the_buffer_start():
    assert matches('content:"b"; content:"a"; distance:-50;', b"ab")


def test_relative_content_first_in_block_is_relative_to_the_start():
    assert matches('content:"ab"; distance:2;', b"..ab")
    assert not matches('content:"ab"; distance:2;', b".ab")


def test_nocase():
    assert matches('content:"AbC"; nocase;', b"xaBcx")
    assert not matches('content:"AbC";', b"xaBcx")


# --- negation ----------------------------------------------------------------------------

def test_negated_content_anywhere():
    assert matches('content:"GET"; content:!"evil";', b"GET /good")
    assert not matches('content:"GET"; content:!"evil";', b"GET /evil")


def test_negated_content_with_relative_modifiers_checks_only_its_window():
    opts = 'content:"a"; content:!"b"; within:2;'
    assert not matches(opts, b"a.b")              # b within 2 bytes after the only a
    assert matches(opts, b"a..b")                 # b outside the window
    assert matches(opts, b"a.bXa..")              # first a fails, the second has no b after it


def test_negated_content_with_depth_checks_only_its_window():
    assert matches('content:!"x"; depth:3;', b"abcx")
    assert not matches('content:!"x"; depth:3;', b"axc")


def test_negated_content_keeps_the_cursor():
    # the second content is relative to "ab", not to anything the negation looked at
    assert matches('content:"ab"; content:!"zz"; distance:0; content:"cd"; within:2;', b"abcd")


# --- startswith / endswith -----------------------------------------------------------------

def test_startswith():
    assert matches('content:"GET"; startswith;', b"GET /")
    assert not matches('content:"GET"; startswith;', b" GET /")


def test_endswith_finds_the_occurrence_at_the_end():
    assert matches('content:".exe"; endswith;', b"a.exe")
    assert matches('content:".exe"; endswith;', b"a.exe.exe")
    assert not matches('content:".exe"; endswith;', b"a.exe?x")


def test_startswith_and_endswith_is_equality():
    assert matches('content:"abc"; startswith; endswith;', b"abc")
    assert not matches('content:"abc"; startswith; endswith;', b"abcabc")


def test_negated_endswith_looks_at_the_end_only():
    assert matches('content:!".exe"; endswith;', b"a.exe.zip")
    assert not matches('content:!".exe"; endswith;', b"a.exe.exe")


def test_relative_endswith():
    opts = 'content:"/"; content:".php"; distance:0; endswith;'
    assert matches(opts, b"/x.php")
    assert not matches(opts, b".php/x")


# --- isdataat --------------------------------------------------------------------------------

def test_isdataat_absolute():
    assert matches('content:"a"; isdataat:4;', b"abcde")
    assert not matches('content:"a"; isdataat:4;', b"abcd")
    assert matches('content:"a"; isdataat:!4;', b"abcd")


def test_isdataat_relative_and_negated():
    assert matches('content:"ab"; isdataat:2,relative;', b"abxy")
    assert not matches('content:"ab"; isdataat:2,relative;', b"abx")
    assert matches('content:"ab"; isdataat:!2,relative;', b"abx")
    assert not matches('content:"ab"; isdataat:!2,relative;', b"abxy")


def test_isdataat_relative_retries_the_content():
    assert matches('content:"ab"; isdataat:!1,relative;', b"ab..ab")


# --- pcre --------------------------------------------------------------------------------------

def test_pcre_plain_and_negated():
    assert matches('pcre:"/fo{2,}/";', b"xfoooy")
    assert not matches('pcre:"!/fo{2,}/";', b"xfoooy")
    assert matches('content:"x"; pcre:"!/bar/";', b"xfoooy")


def test_pcre_relative_starts_at_the_cursor():
    opts = 'content:"user="; pcre:"/^[a-z]+\\;/R";'
    assert matches(opts, b"user=abc;")
    assert not matches(opts, b"user=ABC;")
    assert not matches(opts, b"abc;user=")


def test_pcre_relative_backtracks_over_the_content():
    assert matches('content:"user="; pcre:"/^[a-z]+\\;/R";', b"user=ABC; user=abc;")


def test_pcre_cursor_feeds_the_next_relative_item():
    opts = 'pcre:"/id=\\d+/"; content:"&"; within:1;'
    assert matches(opts, b"id=12&")
    assert matches(opts, b"id=1x id=34&")                 # the pcre is retried at its next match
    assert not matches(opts, b"id=12 &")


@pytest.mark.parametrize("opts, data, expected", [
    ('pcre:"/abc/i";', b"ABC", True),
    ('pcre:"/a.c/";', b"a\nc", False),
    ('pcre:"/a.c/s";', b"a\nc", True),
    ('pcre:"/^b$/";', b"a\nb\nc", False),
    ('pcre:"/^b$/m";', b"a\nb\nc", True),
    ('pcre:"/a b c/x";', b"abc", True),
    ('pcre:"/abc$/";', b"abc\n", True),
    ('pcre:"/abc$/E";', b"abc\n", False),
    ('pcre:"/b/A";', b"ab", False),
    ('pcre:"/\\x{41}\\h\\x42/";', b"A\tB", True),
])
def test_pcre_modifiers(opts, data, expected):
    assert matches(opts, data) is expected


# --- backtracking and the budget ---------------------------------------------------------------

def test_backtracking_uses_the_second_occurrence_of_the_first_content():
    opts = 'content:"a"; content:"b"; within:2;'
    assert matches(opts, b"a..ab")          # only the a at 3 has a b within 2 bytes
    assert not matches(opts, b"a..a..b")


def test_backtracking_through_two_levels():
    opts = 'content:"a"; content:"b"; within:3; content:"c"; within:2;'
    # a@0 b@2 (no c right after), a@0 b@... none; a@5 b@6 c@7
    assert matches(opts, b"a.b..abc")


def test_distance_only_needs_no_retry_and_still_finds_later_matches():
    assert matches('content:"a"; content:"b"; distance:0; content:"c"; distance:0;', b"c a c b a c")


def test_work_budget_stops_a_runaway_inspection():
    opts = 'content:"a"; content:"a"; within:1; content:"b"; within:5;'
    outcome, ctx = result(opts, b"a" * 5000)
    assert outcome is BlockResult.EXHAUSTED
    assert ctx.exhausted == 1
    outcome, ctx = result(opts, b"a" * 5000, budget=100_000)
    assert outcome is BlockResult.NO_MATCH and ctx.exhausted == 0 and ctx.work > 3000


def test_detector_reports_exhausted_rules():
    r = rule('content:"a"; content:"a"; within:1; content:"b"; within:5;')
    scan = Detector([r]).scan({Buffer.PAYLOAD: b"a" * 5000})
    assert scan.matches == () and scan.exhausted == (0,)


# --- byte_* and base64 ---------------------------------------------------------------------------

def test_byte_test_binary_and_string():
    assert matches('content:"|01|"; byte_test:2,>,256,0;', b"\x01\x01")
    assert not matches('content:"|01|"; byte_test:2,>,256,0;', b"\x01\x00")
    assert matches('content:"|01|"; byte_test:2,=,257,0,little;', b"\x01\x01")
    assert matches('content:"len="; byte_test:3,=,123,0,relative,string,dec;', b"len=123;")
    assert matches('content:"x"; byte_test:1,&,0x80,0;', b"\x81x")
    assert matches('content:"x"; byte_test:1,!&,0x80,0;', b"\x01x")
    assert not matches('content:"x"; byte_test:4,=,1,0;', b"x\x00")          # reads past the end


def test_byte_test_bitmask_shifts_by_the_mask():
    assert matches('content:"x"; byte_test:1,=,3,0,bitmask 0x30;', b"\x30x")


def test_byte_jump_moves_the_cursor():
    opts = 'content:"L"; byte_jump:1,0,relative; content:"X"; within:1;'
    assert matches(opts, b"L\x02..X")
    assert not matches(opts, b"L\x01..X")
    assert not matches('content:"L"; byte_jump:1,0,relative;', b"L\x09..")    # jump past the end


def test_byte_jump_from_beginning_and_post_offset():
    opts = 'content:"L"; byte_jump:1,1,from_beginning,post_offset 1; content:"X"; within:1;'
    assert matches(opts, b"L\x03.xX")


def test_byte_extract_feeds_later_items():
    opts = 'byte_extract:1,0,len; content:"A"; distance:0; within:len;'
    assert matches(opts, b"\x03xxA")
    assert not matches(opts, b"\x02xxA")


def test_byte_extract_string_into_isdataat():
    opts = 'content:"n="; byte_extract:2,0,n,relative,string,dec; isdataat:!n,relative;'
    assert matches(opts, b"n=05abc")
    assert not matches(opts, b"n=02abcdef")


def test_dce_byte_options_are_unsupported():
    r = rule('content:"x"; byte_test:2,=,1,0,dce;')
    with pytest.raises(UnsupportedItem):
        compile_block(block(r))
    assert [s.keyword for s in Detector([r]).skipped] == ["bytetest"]


def test_base64_decode_feeds_base64_data():
    r = rule('content:"b64="; base64_decode:relative; base64_data; content:"Hello";')
    d = Detector([r])
    assert d.inspect({Buffer.PAYLOAD: b"x b64=SGVsbG8gV29ybGQ="})
    assert not d.inspect({Buffer.PAYLOAD: b"x b64=V29ybGQgSGVsbG8K"[:9]})


# --- buffers, transforms, sizes ------------------------------------------------------------------

def test_transforms_apply_before_matching():
    assert matches('dns.query; dotprefix; content:".evil.com"; endswith;', b"evil.com", Buffer.DNS_QUERY,
                   "alert dns any any -> any any")
    assert not matches('dns.query; dotprefix; content:".evil.com"; endswith;', b"notevil.com", Buffer.DNS_QUERY,
                       "alert dns any any -> any any")
    assert matches('http.uri; to_lowercase; content:"/admin";', b"/ADMIN", Buffer.HTTP_URI, HTTP)


def test_bsize_is_checked_on_the_inspected_buffer():
    assert matches('http.uri; bsize:4; content:"/abc";', b"/abc", Buffer.HTTP_URI, HTTP)
    assert not matches('http.uri; bsize:4; content:"/abc";', b"/abcd", Buffer.HTTP_URI, HTTP)


def test_empty_buffer():
    assert not matches('content:"a";', b"")
    assert matches('content:!"a";', b"")
