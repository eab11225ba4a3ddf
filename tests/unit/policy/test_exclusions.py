"""The exclusion step: what an exclusion covers is never enforced; everything else is judged as before."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from inspection.errors import ConfigError
from inspection.model import Direction
from inspection.policy.exclusions import ExcludedHit, ExclusionFilter, Exclusions, Subject, subject_of
from inspection.policy.urlcat import CategoryHit
from inspection.policy.verdict import (Action, FlowFacts, FlowPolicy, HitKind, HitView, PolicyConfig, Reason)
from signatures.categories.model import Category, CategoryAction

PHISH = Category("phishing", CategoryAction.BLOCK, 3)


def test_rules_hashes_domains_urls_and_addresses_each_name_their_exclusion():
    ex = Exclusions.build(rules=[2000001], hashes=["AB" * 32], domains=["Example.COM."], urls=["https://shop.test/login"],
                          addresses=["198.51.100.0/24", "2001:db8::1"])
    assert ex.reason(Subject(sid=2000001)) == "rule 2000001"
    assert ex.reason(Subject(sid=2000002)) is None
    assert ex.reason(Subject(sha256="ab" * 32)) == "hash " + "ab" * 32
    assert ex.reason(Subject(host="example.com")) == "domain example.com"
    assert ex.reason(Subject(host="www.deep.example.com")) == "domain example.com"     # subdomains are covered
    assert ex.reason(Subject(host="notexample.com")) is None                          # not a suffix match
    assert ex.reason(Subject(host="shop.test", path="/login/step2")) == "url shop.test/login"
    assert ex.reason(Subject(host="shop.test", path="/")) is None
    assert ex.reason(Subject(host="www.shop.test", path="/login")) is None            # a URL names its host
    ip = ipaddress.ip_address
    assert ex.reason(Subject(addresses=(ip("192.0.2.1"), ip("198.51.100.7")))) == "address 198.51.100.0/24"
    assert ex.reason(Subject(addresses=(ip("2001:db8::1"),))) == "address 2001:db8::1/128"
    assert ex.reason(Subject(addresses=(ip("203.0.113.1"),))) is None


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError):
        Exclusions.build(addresses=["198.51.100.300"])
    with pytest.raises(ConfigError):
        Exclusions(hashes=frozenset({"xyz"}))


def test_a_category_hit_is_excluded_by_its_host_or_url():
    hit = CategoryHit(PHISH, "login.bank.test/verify", Direction.TO_SERVER, None)
    assert subject_of(hit).host == "login.bank.test" and subject_of(hit).path == "/verify"
    assert Exclusions.build(domains=["bank.test"]).reason(subject_of(hit)) == "domain bank.test"
    assert Exclusions.build(urls=["login.bank.test/verify"]).reason(subject_of(hit)) == "url login.bank.test/verify"
    assert Exclusions.build(urls=["login.bank.test/other"]).reason(subject_of(hit)) is None


def test_an_excluded_hit_is_logged_allowed_with_its_reason():
    hit = CategoryHit(PHISH, "bank.test", Direction.TO_SERVER, None)
    x = ExcludedHit(hit, "domain bank.test")
    assert x.blocked is False and x.excluded == "domain bank.test"
    assert x.alert_fields()["action"] == "allowed" and x.target == "bank.test"


def test_the_filter_counts_what_it_covered():
    f = ExclusionFilter(Exclusions.build(domains=["bank.test"]))
    hit = CategoryHit(PHISH, "bank.test", Direction.TO_SERVER, None)
    assert f.check(hit, None, True) == "domain bank.test"
    assert f.check(CategoryHit(PHISH, "other.test", Direction.TO_SERVER, None), None, True) is None
    assert f.tree() == {"hits": 1, "blocks_lifted": 1, "by_domain": 1}
    assert ExclusionFilter().check(hit, None, True) is None       # nothing excluded: nothing checked


labels = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
hosts = st.lists(labels, min_size=1, max_size=4).map(".".join)


@settings(max_examples=200, deadline=None)
@given(excluded=st.lists(hosts, max_size=4), host=hosts, sid=st.integers(1, 50), rules=st.sets(st.integers(1, 50)))
def test_an_excluded_item_is_never_blocked_and_the_rest_is_judged_as_before(excluded, host, sid, rules):
    ex = ExclusionFilter(Exclusions.build(domains=excluded, rules=rules))
    covered = sid in rules or any(host == d or host.endswith("." + d) for d in excluded)

    class RuleHit:   # what subject_of reads from a rule's hit
        class rule:
            gid = 1
        record = type("Tx", (), {"host": host, "uri": "/"})()
    RuleHit.rule.sid = sid
    why = ex.check(RuleHit(), None, True)
    assert (why is not None) == covered
    facts = FlowFacts(flow_id=1, is_tcp=True, bytes_total=100, tls_handshake_done=False, file_in_transit=False)
    view = HitView(blocking=why is None)          # the worker lifts the block of an excluded hit
    d = FlowPolicy(PolicyConfig()).decide(facts, [view])
    assert (d.action is Action.DROP) == (not covered)
    if not covered:
        assert d.reason is Reason.BLOCKED_RULE


def test_phishing_keeps_blocking_while_the_other_categories_are_detect_only():
    cfg = PolicyConfig(detect_only=frozenset({"category"}), enforce=frozenset({"category:phishing"}))
    assert cfg.is_detect_only(None, HitKind.CATEGORY, ("adult",))
    assert not cfg.is_detect_only(None, HitKind.CATEGORY, ("phishing",))
    assert not cfg.is_detect_only(None, HitKind.CATEGORY, ("adult", "phishing"))
    only_phishing = PolicyConfig(detect_only=frozenset({"category:phishing"}))
    assert only_phishing.is_detect_only(None, HitKind.CATEGORY, ("phishing",))
    assert not only_phishing.is_detect_only(None, HitKind.CATEGORY, ("phishing", "adult"))   # adult still blocks
    assert not only_phishing.is_detect_only("trojan-activity", HitKind.RULE)


def test_a_classtype_in_block_mode_wins_over_intrusion_detect():
    cfg = PolicyConfig(detect_only=frozenset({"rules", "web-attack"}), enforce=frozenset({"trojan-activity"}))
    assert cfg.is_detect_only("policy-violation") and cfg.is_detect_only("web-attack")
    assert not cfg.is_detect_only("trojan-activity")
    assert PolicyConfig(detect_only=frozenset({"*"}), enforce=frozenset({"trojan-activity"})).is_detect_only(
        "trojan-activity")       # '*' from the command line is everything
