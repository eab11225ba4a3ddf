"""Hash lists (plain and ClamAV .hdb) and YARA rule loading with its cache."""
from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from inspection.files.hashlist import parse_hash_list
from inspection.files.model import VerdictKind
from inspection.files.scanner import ContentScanner, FileMeta
from inspection.files.yara_rules import RuleSourceError, load_yara

DATA = b"some file body"
SHA = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()


def test_plain_list_comments_names_and_malformed_lines():
    hl = parse_hash_list(f"# comment\n\n{SHA.upper()}  Evil One\nnot-a-hash\n{'a' * 63}\n{'g' * 64}\n", "block.txt")
    assert len(hl) == 1 and hl.malformed == 3
    assert hl.lookup(SHA, len(DATA)) == "hash:block.txt:Evil One"
    assert hl.lookup("0" * 64, 1) is None
    bare = parse_hash_list(SHA + "\n", "b")
    assert bare.lookup(SHA, 5) == f"hash:b:{SHA}"


def test_clamav_hdb_md5_and_sha256_with_sizes():
    text = f"{MD5}:{len(DATA)}:Md5-Entry\n{SHA}:*:Sha-Entry\n{'b' * 64}:12:Other\n{'c' * 64}:xx:Bad\n"
    hl = parse_hash_list(text, "db.hdb")
    assert hl.malformed == 1
    assert hl.lookup(SHA, len(DATA)) == "hash:db.hdb:Sha-Entry"
    assert hl.lookup("b" * 64, 13) is None          # size must agree when given
    assert hl.lookup("f" * 64, len(DATA), MD5) == "hash:db.hdb:Md5-Entry"
    assert hl.lookup("f" * 64, len(DATA) + 1, MD5) is None


def test_hsb_sha1_entries():
    sha1 = hashlib.sha1(DATA).hexdigest()
    hl = parse_hash_list(f"{sha1}:{len(DATA)}:Sha1-Entry\n", "db.hsb")
    assert len(hl) == 1 and hl.malformed == 0
    res = ContentScanner(hl).scan(DATA, "f")
    assert res.verdict is VerdictKind.MALICIOUS and res.reasons == ("hash:db.hsb:Sha1-Entry",)


def test_scanner_uses_md5_entries():
    hl = parse_hash_list(f"{MD5}:{len(DATA)}:Md5-Entry\n", "db.hdb")
    res = ContentScanner(hl).scan(DATA, "f")
    assert res.verdict is VerdictKind.MALICIOUS and res.reasons == ("hash:db.hdb:Md5-Entry",)


RULES = {
    "net/marker.yar": 'rule marker { strings: $a = "EVIL-MARKER" condition: $a }',
    "ext.yara": 'rule by_name { condition: filename == "dropper.exe" and extension == ".exe" '
                'and filetype == "pe" and filepath endswith "/dropper.exe" }',
    "broken.yar": "rule broken { condition: nonsense_identifier }",
    "needs_module.yar": 'import "androguard"\nrule a { condition: androguard.package_name("x") }',
    "notes.txt": "not a rule file",
}


@pytest.fixture()
def rule_dir(tmp_path):
    root = tmp_path / "rules"
    for name, text in RULES.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_broken_files_skipped_namespaces_relative_and_cache_reused(rule_dir, tmp_path):
    cache = tmp_path / "cache"
    rules = load_yara([rule_dir], cache)
    assert sorted(rules.loaded) == ["ext.yara", "net/marker.yar"]
    assert sorted(s.namespace for s in rules.skipped) == ["broken.yar", "needs_module.yar"]
    assert not rules.cached and list(cache.glob("*.yarc"))
    again = load_yara([rule_dir], cache)
    assert again.cached and again.loaded == rules.loaded and len(again.skipped) == 2
    hits = again.match(b"xx EVIL-MARKER xx", FileMeta("a", "a", "", "data"), 10)
    assert hits == ["yara:net/marker.yar:marker"]
    (rule_dir / "net" / "marker.yar").write_text('rule marker2 { strings: $a = "OTHER" condition: $a }')
    changed = load_yara([rule_dir], cache)
    assert not changed.cached      # the digest covers every file's bytes


def test_externals_drive_a_match_inside_a_zip(rule_dir):
    rules = load_yara([rule_dir], None)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("stage/dropper.exe", b"MZ\x90\x00 harmless")
        z.writestr("stage/readme.exe", b"MZ\x90\x00 harmless")
    res = ContentScanner(matchers=[rules]).scan(buf.getvalue(), "pkg.zip")
    verdicts = {m.path: (m.verdict, m.reasons) for m in res.members}
    assert verdicts["pkg.zip/stage/dropper.exe"] == (VerdictKind.MALICIOUS, ("yara:ext.yara:by_name",))
    assert verdicts["pkg.zip/stage/readme.exe"] == (VerdictKind.CLEAN, ())
    assert res.verdict is VerdictKind.MALICIOUS


def test_single_file_source_and_missing_source(tmp_path, rule_dir):
    rules = load_yara([rule_dir / "net" / "marker.yar"], None)
    assert rules.loaded == ["marker.yar"]
    with pytest.raises(RuleSourceError):
        load_yara([tmp_path / "nope"], None)
