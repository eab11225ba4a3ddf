"""Compile small UT1 trees and look things up: normalisation, coverage, URL prefixes, policy order."""
from __future__ import annotations

from pathlib import Path

import pytest

from signatures.categories.compile import compile_lists, url_key
from signatures.categories.db import encode, write_db
from signatures.categories.errors import DatabaseError, ListsError
from signatures.categories.lookup import CategoryDB
from signatures.categories.model import CategoryAction
from signatures.categories.normalize import normalize_host, split_url, strip_www


def build(tree: Path, tmp_path: Path) -> CategoryDB:
    c = compile_lists(tree)
    db = tmp_path / "cat.db"
    write_db(db, encode(c))
    return CategoryDB.load(db)


def names(cats) -> list[str]:
    return [c.name for c in cats]


def test_normalize_host():
    assert normalize_host("Evil.Example.") == "evil.example"
    assert normalize_host("host.test:8080") == "host.test"
    assert normalize_host("[2001:DB8::1]:443") == "2001:db8::1"
    assert normalize_host("bücher.de") == "xn--bcher-kva.de"
    assert normalize_host("*.wild.test") == "wild.test"
    assert normalize_host("two words") is None
    assert normalize_host("a/b") is None
    assert normalize_host("") is None
    assert strip_www("www2.example.com") == "example.com" and strip_www("www.com") == "www.com"
    assert split_url("HTTP://user@Host:81/p?q#f") == ("Host:81", "/p?q#f")
    assert split_url("host") == ("host", None)
    assert url_key("www.Host.test:80/A/b/") == ("host.test", "/a/b")


def test_compile_counts_skips_and_unknowns(tree):
    c = compile_lists(tree)
    r = c.reports["malware"]
    assert r.domains == 4           # evil.example, bad.test, 203.0.113.7, the IDN name; no garbage
    assert r.duplicates == 1        # Evil.Example. and evil.example are one name
    assert r.skipped["not a host name or IP address"] == 1
    assert r.skipped["domain entry with a path (belongs in urls)"] == 1
    assert r.skipped["line too long"] == 1
    assert r.expressions == 1 and [k for k in r.skipped if k.startswith("expression does not compile")]
    assert c.unknown == ["brandnew"]
    assert c.aliases["ads"] == "publicite" and "bogus" not in c.aliases
    assert [x.name for x in c.categories][:2] == ["malware", "phishing"]   # block first
    assert "bücher-böse.de".encode("idna").decode() in c.domains


def test_lookup_semantics(tree, tmp_path):
    db = build(tree, tmp_path)
    look = db.lookup
    assert names(look("evil.example")) == ["malware"]
    assert names(look("deep.sub.EVIL.example.")) == ["malware"]          # subdomains, case, trailing dot
    assert names(look("evil.example:443")) == ["malware"]
    assert look("notevil.example") == () and look("example") == ()
    assert names(look("bad.test")) == ["malware", "phishing", "shopping"]  # all, block first
    assert names(look("x.login.bank.test")) == ["phishing"]
    assert look("bank.test") == ()
    assert names(look("203.0.113.7")) == ["malware"] and look("1.203.0.113.7") == ()
    assert names(look("bücher-böse.de")) == ["malware"]
    assert names(look("brandnew.new.test")) == ["brandnew"]
    assert db.resolve("ads").name == "publicite"
    assert db.resolve("brandnew").action is CategoryAction.RECORD
    assert look("") == () and look("..") == () and look("[bad") == ()


def test_url_prefix_semantics(tree, tmp_path):
    db = build(tree, tmp_path)
    url = db.lookup_url
    assert names(url("http://host.test/Drop/Payload")) == ["malware"]
    assert names(url("host.test/drop/payload/more?x=1")) == ["malware"]
    assert names(url("host.test/drop/payload?x=1")) == ["malware"]
    assert url("host.test/drop/payloadX") == ()                 # path boundaries only
    assert url("host.test/drop") == ()
    assert url("host.test") == ()                               # a host alone is not the URL
    assert names(url("files.test/mal/x")) == names(url("www3.files.test/mal")) == ["malware"]
    assert url("sub.files.test/mal") == ()                      # URL entries: that host only
    assert names(url("proto.test/abs/x")) == ["malware"]
    assert names(url("portal.test/shop/cart")) == ["shopping"]
    assert names(url("198.51.100.1/search?q=12")) == ["malware"]   # expression
    assert url("198.51.100.1/search?q=12a") == ()
    assert names(url("any.test/x/BANNER/y.gif")) == ["publicite"]
    assert names(url("bad.test/banner/")) == ["malware", "phishing", "publicite", "shopping"]


def test_empty_lists_dir_refused(tmp_path):
    with pytest.raises(ListsError):
        compile_lists(tmp_path)
    with pytest.raises(ListsError):
        compile_lists(tmp_path / "missing")


@pytest.mark.parametrize("damage, reason", [
    (lambda b: b[:10], "truncated"),
    (lambda b: b[:-5], "truncated"),
    (lambda b: b"NOTCATDB" + b[8:], "wrong magic"),
    (lambda b: b[:8] + (99).to_bytes(2, "little") + b[10:], "version 99"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum"),
    (lambda b: b"", "truncated"),
])
def test_bad_database_refused(tree, tmp_path, damage, reason):
    c = compile_lists(tree)
    c.expressions = []
    good = encode(c)
    bad = tmp_path / "bad.db"
    bad.write_bytes(damage(good))
    with pytest.raises(DatabaseError, match=reason):
        CategoryDB.load(bad)


def test_missing_database(tmp_path):
    with pytest.raises(DatabaseError, match="No such file"):
        CategoryDB.load(tmp_path / "none.db")


def test_expression_results_merge_correctly_over_many_lookups(tmp_path):
    from tests.unit.categories.conftest import make_tree

    root = make_tree(tmp_path / "t", {
        "aaa": {"expressions": "/aaa/\n"}, "bbb": {"expressions": "/bbb/\n"}, "ccc": {"domains": "x.test\n"},
    })
    db = build(root, tmp_path)
    for _ in range(50):     # alternating results: a cache keyed by a freed tuple's id would mix them up
        assert names(db.lookup("x.test", "/aaa/1")) == ["aaa", "ccc"]
        assert names(db.lookup("x.test", "/bbb/1")) == ["bbb", "ccc"]
        assert names(db.lookup("x.test", "/aaa/bbb/")) == ["aaa", "bbb", "ccc"]


def test_non_ascii_url_paths_compile_and_match_as_sent(tmp_path):
    """UT1 lines with raw UTF-8 paths: kept, percent-encoded like the browser's request."""
    (tmp_path / "lists" / "phishing").mkdir(parents=True)
    (tmp_path / "lists" / "phishing" / "urls").write_text("shop.test/über\n0/\x80\n", encoding="utf-8")
    db = build(tmp_path / "lists", tmp_path)
    assert names(db.lookup_url("http://shop.test/%C3%BCber/login")) == ["phishing"]
    assert names(db.lookup_url("http://shop.test/über")) == ["phishing"]
