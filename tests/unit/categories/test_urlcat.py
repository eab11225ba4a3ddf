"""The per-transaction hook on records as the parsers make them (no capture needed)."""
from __future__ import annotations

import pytest

from inspection.applayer.dns import DnsMessage, DnsQuery
from inspection.applayer.http_tx import HttpTransaction
from inspection.applayer.tls import TlsRecord
from inspection.model import Direction
from inspection.policy.urlcat import UrlCategorizer, category_sid
from signatures.apps import parse_apps
from signatures.categories.compile import compile_lists
from signatures.categories.db import encode
from signatures.categories.lookup import CategoryDB


@pytest.fixture
def cat(tree):
    db = CategoryDB.from_buffer(encode(compile_lists(tree)))
    apps = parse_apps({"app": [{"name": "Tool", "type": "remote_access", "domains": ["tool.test"],
                                "ja3": ["aa" * 16]}]})
    return UrlCategorizer(db, apps)


def dns(direction, *names, truncated=False):
    return DnsMessage(direction=direction, tx_id=0, id=1, flags=0x8180 if direction is Direction.TO_CLIENT else 0x100,
                      queries=tuple(DnsQuery(n.encode(), 1, 1, truncated) for n in names))


def test_http_absolute_uri_and_connect(cat):
    extra, hits = cat.record(HttpTransaction(tx_id=0, method="GET", uri="http://host.test/drop/payload/x"))
    assert extra == {"category": ["malware"]} and hits[0].target == "host.test/drop/payload/x"
    extra, hits = cat.record(HttpTransaction(tx_id=1, method="CONNECT", uri="bad.test:443", host="bad.test"))
    assert extra["category"] == ["malware", "phishing", "shopping"] and len(hits) == 1
    a = hits[0].alert_fields()
    assert a["metadata"]["url_category"] == ["malware", "phishing"] and a["signature_id"] == category_sid("malware")
    assert cat.record(HttpTransaction(tx_id=2, method="GET", uri="/x")) == (None, [])   # no host at all


def test_dns_queries_alert_answers_do_not(cat):
    extra, hits = cat.record(dns(Direction.TO_SERVER, "www.evil.example"))
    assert extra == {"category": ["malware"]} and len(hits) == 1
    extra, hits = cat.record(dns(Direction.TO_CLIENT, "www.evil.example"))
    assert extra == {"category": ["malware"]} and hits == []
    assert cat.record(dns(Direction.TO_SERVER, "evil.example", truncated=True)) == (None, [])
    extra, hits = cat.record(dns(Direction.TO_SERVER, "shop.test", "ads.test", "x.tool.test"))
    assert extra == {"category": ["shopping", "publicite"], "app": {"name": "Tool", "type": "remote_access"}}
    assert hits == []


def test_tls_sni_and_fingerprint(cat):
    extra, hits = cat.record(TlsRecord(version="TLS 1.2", sni="login.bank.test"))
    assert extra == {"category": ["phishing"]} and hits[0].alert_fields()["stars"] == 3
    extra, hits = cat.record(TlsRecord(version="TLS 1.2", sni=None, ja3_hash="AA" * 16))
    assert extra == {"app": {"name": "Tool", "type": "remote_access"}} and hits == []
    assert cat.counters.lookups == 1 and cat.counters.blocked == 1


def test_needs_something_to_do():
    with pytest.raises(ValueError):
        UrlCategorizer(None, None)
