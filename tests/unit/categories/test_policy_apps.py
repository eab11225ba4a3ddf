"""Policy and application data: the shipped files load; malformed ones are typed errors; lookups never crash."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signatures.apps import AppsError, AppType, load_apps, parse_apps
from signatures.categories.compile import compile_lists
from signatures.categories.db import encode
from signatures.categories.errors import PolicyError
from signatures.categories.lookup import CategoryDB
from signatures.categories.model import CategoryAction
from signatures.categories.normalize import normalize_host
from signatures.categories.policy import load_policy, parse_policy


def test_shipped_policy_blocks_threats_only():
    p = load_policy()
    blocked = {n for n, c in p.categories.items() if c.action is CategoryAction.BLOCK}
    assert {"malware", "phishing", "cryptojacking", "stalkerware"} <= blocked
    assert not blocked & {"social_networks", "games", "shopping", "vpn", "adult"}
    assert all(p.categories[n].stars == 3 for n in ("malware", "phishing", "cryptojacking", "stalkerware"))
    assert all(c.label_en and c.label_ja for c in p.categories.values())
    assert p.category("ads")[0].name == "ads" and p.category("ads")[1]
    assert p.category("never-heard-of")[0].action is CategoryAction.RECORD


@pytest.mark.parametrize("data", [
    {"categories": {"x": {"action": "explode"}}},
    {"categories": {"x": {"action": "block", "stars": 7}}},
    {"categories": {"x": {"action": "block", "stars": "3"}}},
    {"categories": []},
    {"aliases": {"a": 1}},
])
def test_bad_policy(data):
    with pytest.raises(PolicyError):
        parse_policy(data)


def test_policy_file_errors(tmp_path):
    bad = tmp_path / "p.toml"
    bad.write_text("[categories\n")
    with pytest.raises(PolicyError):
        load_policy(bad)
    with pytest.raises(PolicyError):
        load_policy(tmp_path / "missing.toml")


def test_shipped_apps():
    m = load_apps()
    assert {a.type for a in m.apps} >= {AppType.STREAMING, AppType.SOCIAL, AppType.FILE_SHARING,
                                        AppType.REMOTE_ACCESS, AppType.VPN, AppType.MESSAGING}
    assert m.by_host("edge.teamviewer.com").type is AppType.REMOTE_ACCESS
    assert m.by_host("meet.google.com").name == "Google Meet"
    assert m.by_host("www.google.com") is None and m.by_host("") is None


def test_apps_fingerprints_and_longest_suffix():
    m = parse_apps({"app": [
        {"name": "Suite", "type": "cloud_storage", "domains": ["example.com"]},
        {"name": "Suite Chat", "type": "messaging", "domains": ["chat.example.com"], "ja4": ["T13D1516H2_X_Y"]},
        {"name": "Tool", "type": "remote_access", "ja3": ["0123456789ABCDEF0123456789ABCDEF"]},
    ]})
    assert m.by_host("a.chat.example.com").name == "Suite Chat"
    assert m.by_host("www.example.com").name == "Suite"
    assert m.by_tls(None, "0123456789abcdef0123456789abcdef", None).name == "Tool"
    assert m.by_tls("unknown.test", None, "t13d1516h2_x_y").name == "Suite Chat"
    assert m.by_tls("www.example.com", "0123456789abcdef0123456789abcdef", None).name == "Suite"


@pytest.mark.parametrize("data", [
    {"app": [{"name": "A", "type": "nonsense", "domains": ["a.test"]}]},
    {"app": [{"type": "vpn"}]},
    {"app": [{"name": "A", "type": "vpn", "domains": "a.test"}]},
    {"app": [{"name": "A", "type": "vpn", "domains": ["bad host"]}]},
    {"app": [{"name": "A", "type": "vpn", "domains": ["a.test"]}, {"name": "B", "type": "vpn", "domains": ["a.test"]}]},
    {"app": {"name": "A"}},
])
def test_bad_apps(data):
    with pytest.raises(AppsError):
        parse_apps(data)


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    root = tmp_path_factory.mktemp("ut1") / "lists"
    (root / "malware").mkdir(parents=True)
    (root / "malware" / "domains").write_text("evil.test\n10.0.0.1\nzip\nsub.evil.test\n")
    (root / "malware" / "urls").write_text("host.test/a\n")
    (root / "malware" / "expressions").write_text("/x[0-9]+\\.exe\n")
    return CategoryDB.from_buffer(encode(compile_lists(root)))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.one_of(st.none(), st.text(max_size=80)))
def test_lookup_never_crashes(small_db, host, path):
    res = small_db.lookup(host, path)
    assert isinstance(res, tuple) and all(c.name == "malware" for c in res)


_HOSTISH = st.text(alphabet="abEVIL.tesTZip-_019:[]*.ü", max_size=30)


@settings(max_examples=500, deadline=None)
@given(_HOSTISH)
def test_fast_path_agrees_with_the_normaliser(small_db, host):
    """The lookup skips the full normaliser for plain names; it must answer as if it had run it."""
    n = normalize_host(host)
    if n is not None and host == host.strip():
        assert small_db.lookup(host) == small_db.lookup(n)


def test_single_label_entries_cover_everything_below(small_db):
    assert [c.name for c in small_db.lookup("files.example.zip")] == ["malware"]
    assert [c.name for c in small_db.lookup("10.0.0.1")] == ["malware"] and small_db.lookup("10.0.0.2") == ()


_LINE = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.lists(_LINE, max_size=30), st.lists(_LINE, max_size=10))
def test_compile_accounts_for_every_line(tmp_path_factory, domains, urls):
    """Garbage in the lists is skipped and counted, never raised; every line is accounted for."""
    root = tmp_path_factory.mktemp("fuzz") / "lists"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "domains").write_text("\n".join(domains) + "\n", encoding="utf-8")
    (root / "cat" / "urls").write_text("\n".join(urls) + "\n", encoding="utf-8")
    c = compile_lists(root)
    r = c.reports["cat"]
    counted = [x.strip() for x in domains + urls if x.strip() and not x.strip().startswith("#")]
    assert r.domains + r.urls + r.duplicates + sum(r.skipped.values()) == len(counted)
    db = CategoryDB.from_buffer(encode(c))
    for name in c.domains:
        assert [x.name for x in db.lookup(name)] == ["cat"]
