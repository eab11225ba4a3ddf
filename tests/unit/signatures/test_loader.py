"""load_rules / RuleLoader: files, comments, continuation lines, skip records, duplicates."""
from __future__ import annotations

import pytest

from signatures.errors import RuleFileError
from signatures.netspec import Variables
from signatures.parser import RuleLoader, SkipKind, iter_rule_lines, load_rules

GOOD = 'alert tcp any any -> any any (msg:"good"; content:"a"; sid:{sid}; rev:1;)'


def test_comments_blank_and_disabled_rules_are_not_active():
    lines = [
        "# a comment",
        "",
        "   ",
        '# alert tcp any any -> any any (msg:"disabled"; sid:9;)',
        '#alert tcp any any -> any any (msg:"disabled"; sid:10;)',
        GOOD.format(sid=1),
    ]
    res = load_rules(lines=lines)
    assert [r.sid for r in res.rules] == [1]
    assert res.skipped == () and res.active == 1 and res.loaded_ratio == 1.0


def test_multi_line_rule_with_backslash_keeps_first_line_number():
    lines = [
        "# header",
        'alert tcp any any -> any any (msg:"multi"; \\',
        '    content:"abc"; \\',
        "    sid:5;)",
        GOOD.format(sid=6),
    ]
    assert list(iter_rule_lines(lines))[0][0] == 2
    res = load_rules(lines=lines)
    assert [r.sid for r in res.rules] == [5, 6]
    assert res.rules[0].buffers[0].matches[0].pattern == b"abc"


def test_skips_carry_file_line_sid_keyword_reason_kind():
    lines = [
        GOOD.format(sid=1),
        'alert tcp any any -> any any (msg:"bad"; content:"abcd"; depth:2; sid:2;)',
        'alert tcp any any -> any any (msg:"unsupported"; asn1:oversize_length 1; sid:3;)',
        'alert tcp any any -> any any (msg:"no sid";)',
        'alert tcp any any -> any any (content:"x"; sid:4;)',
        "total garbage",
    ]
    res = load_rules(lines=lines, source="t.rules")
    assert [r.sid for r in res.rules] == [1]
    got = [(s.file, s.line, s.sid, s.keyword, s.kind) for s in res.skipped]
    assert got == [
        ("t.rules", 2, 2, "depth", SkipKind.MALFORMED),
        ("t.rules", 3, 3, "asn1", SkipKind.UNSUPPORTED),
        ("t.rules", 4, None, "sid", SkipKind.MALFORMED),
        ("t.rules", 5, 4, "msg", SkipKind.MALFORMED),
        ("t.rules", 6, None, "rule", SkipKind.MALFORMED),
    ]
    assert all(s.reason for s in res.skipped)
    assert res.active == 6


def test_duplicate_sid_later_rule_skipped_across_files(tmp_path):
    a = tmp_path / "a.rules"
    b = tmp_path / "b.rules"
    a.write_text(GOOD.format(sid=1) + "\n")
    b.write_text(GOOD.format(sid=1) + "\n" + GOOD.format(sid=1).replace("sid:1;", "sid:1; gid:2;") + "\n")
    res = load_rules([a, b])
    assert [(r.gid, r.sid) for r in res.rules] == [(1, 1), (2, 1)]
    (dup,) = res.skipped
    assert dup.kind is SkipKind.DUPLICATE and dup.keyword == "sid" and dup.file == str(b) and dup.line == 1
    assert str(a) in dup.reason


def test_unreadable_file_raises_rule_file_error(tmp_path):
    with pytest.raises(RuleFileError) as e:
        load_rules([tmp_path / "missing.rules"])
    assert "missing.rules" in str(e.value)
    with pytest.raises(RuleFileError):
        load_rules([tmp_path])  # a directory


def test_single_path_argument_and_non_utf8_bytes(tmp_path):
    p = tmp_path / "x.rules"
    p.write_bytes(b'alert tcp any any -> any any (msg:"caf\xe9"; content:"\xff\xfe"; sid:1;)\n')
    res = load_rules(p)
    assert res.rules[0].buffers[0].matches[0].pattern == b"\xff\xfe"


def test_crlf_line_endings(tmp_path):
    p = tmp_path / "x.rules"
    p.write_bytes((GOOD.format(sid=1) + "\r\n" + GOOD.format(sid=2) + "\r\n").encode())
    assert [r.sid for r in load_rules([p]).rules] == [1, 2]


def test_variables_change_what_loads():
    lines = ['alert tcp $CUSTOM_NET any -> any $CUSTOM_PORTS (msg:"v"; sid:1;)']
    res = load_rules(lines=lines)
    assert res.skipped[0].keyword == "variable"
    v = Variables.default().with_overrides({"CUSTOM_NET": "[10.0.0.0/8]", "CUSTOM_PORTS": "[80,8080]"})
    res = load_rules(lines=lines, variables=v)
    assert res.rules[0].src.contains("10.9.9.9") and res.rules[0].dst_ports.contains(8080)


def test_loader_never_raises_for_content():
    loader = RuleLoader()
    for text in ["(", ")", "alert", "alert tcp any any -> any any ()", "\x00" * 10,
                 'alert tcp any any -> any any (msg:"' + "a" * 10000 + '"; sid:1;)',
                 "alert tcp [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1.2.3.4]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]] any -> "
                 'any any (msg:"x"; sid:2;)']:
        loader.feed_rule(text)
    res = loader.result()
    assert res.active == 7 and len(res.rules) == 1


def test_skipped_by_keyword_groups():
    lines = [
        'alert tcp any any -> any any (msg:"a"; asn1:x; sid:1;)',
        'alert tcp any any -> any any (msg:"b"; asn1:x; sid:2;)',
        'alert tcp any any -> any any (msg:"c"; ftpbounce; sid:3;)',
    ]
    groups = load_rules(lines=lines).skipped_by_keyword()
    assert [(k, n, ex.sid) for k, n, ex in groups] == [("asn1", 2, 1), ("ftpbounce", 1, 3)]
