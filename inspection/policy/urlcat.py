"""URL categories and application types on HTTP, TLS and DNS transactions.

One lookup per transaction (an HTTP request's host and URL, a TLS client
hello's SNI, each DNS query name), never per packet, and nothing at all when
neither a category database nor app data is configured. A transaction gets
``category`` (every category it is listed in, blocked ones first) and ``app``
(``{"name", "type"}``) fields; a category whose policy is `block` also raises
one alert (the highest-ranked blocked category; the others are in its
metadata), reported as blocked like a drop rule. Application types are never
blocked. DNS alerts come from queries (requests), not from the answers that
repeat them.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from inspection.applayer.dns import DnsMessage
from inspection.applayer.http_tx import HttpTransaction
from inspection.applayer.tls import TlsRecord
from inspection.model import Direction
from signatures.apps import App, AppMatcher
from signatures.categories.lookup import CategoryDB
from signatures.categories.model import Category
from signatures.categories.normalize import split_url

CATEGORY_GID = 2                 # not a rule's gid: alerts from the category policy
CATEGORY_SID_BASE = 4_000_000    # + a stable number per category name (the same across databases)
_SEVERITY = {3: 1, 2: 2}


def category_sid(name: str) -> int:
    return CATEGORY_SID_BASE + zlib.crc32(name.encode("utf-8")) % 1_000_000


@dataclass(frozen=True, slots=True)
class CategoryHit:
    """A blocked category seen on a transaction; the EVE writer asks it for its alert object."""

    category: Category
    target: str                                  # host, or host + path for HTTP
    direction: Direction
    record: object | None
    others: tuple[str, ...] = ()                 # further blocked categories of the same target
    blocked: bool = True

    def alert_fields(self) -> dict:
        c = self.category
        meta: dict[str, list[str]] = {"url_category": [c.name, *self.others]}
        if c.label_ja:
            meta["label_ja"] = [c.label_ja]
        return {
            "action": "blocked" if self.blocked else "allowed",
            "gid": CATEGORY_GID, "signature_id": category_sid(c.name), "rev": 1,
            "signature": f"URL category {c.name}: {self.target}",
            "category": c.name, "severity": _SEVERITY.get(c.stars, 3), "stars": c.stars,
            "metadata": meta,
        }


@dataclass(slots=True)
class UrlCatCounters:
    lookups: int = 0
    categorised: int = 0
    blocked: int = 0
    apps: int = 0
    by_category: dict[str, int] = field(default_factory=dict)


class UrlCategorizer:
    """configure (the loaded database and app data) -> `record(tx)` per transaction."""

    def __init__(self, db: CategoryDB | None = None, apps: AppMatcher | None = None) -> None:
        if db is None and apps is None:
            raise ValueError("a categorizer needs a category database, app data, or both")
        self.db = db
        self.apps = apps
        self.counters = UrlCatCounters()

    def record(self, rec: object, *, count: bool = True) -> tuple[dict | None, list[CategoryHit]]:
        """(fields to add to the transaction's event, alerts to raise) for one HTTP/TLS/DNS record.

        ``count=False``: a look-up ahead of the logged transaction (the live path checks an
        HTTP request at its head); the counters count the transaction once, when it is logged."""
        if isinstance(rec, HttpTransaction):
            return self._http(rec, count)
        if isinstance(rec, TlsRecord):
            if not rec.sni and self.apps is None:
                return None, []
            app = self.apps.by_tls(rec.sni, rec.ja3_hash, rec.ja4) if self.apps is not None else None
            return self._fields(rec.sni, None, app, rec)
        if isinstance(rec, DnsMessage):
            return self._dns(rec)
        return None, []

    def _http(self, tx: HttpTransaction, count: bool = True) -> tuple[dict | None, list[CategoryHit]]:
        host, path = tx.host, tx.uri
        if path is not None and not path.startswith("/"):
            h2, p2 = split_url(path)           # absolute-form target (proxy request)
            host = host or h2
            path = p2 or "/"
        if not host:
            return None, []
        app = self.apps.by_host(host) if self.apps is not None else None
        return self._fields(host, path, app, tx, count=count)

    def _dns(self, msg: DnsMessage) -> tuple[dict | None, list[CategoryHit]]:
        names: list[str] = []
        for q in msg.queries:
            if not q.rrname_truncated:
                names.append(q.rrname.decode("ascii", "replace"))
        if not names:
            return None, []
        out: dict = {}
        hits: list[CategoryHit] = []
        alerts = msg.direction is Direction.TO_SERVER
        for name in names[:4]:                 # bounded: real queries carry one name
            f, h = self._fields(name, None, self.apps.by_host(name) if self.apps is not None else None,
                                msg, alerts=alerts)
            if f:
                for k, v in f.items():
                    if k == "category":
                        out.setdefault(k, [])
                        out[k].extend(c for c in v if c not in out[k])
                    else:
                        out.setdefault(k, v)
            hits.extend(h)
        return out or None, hits

    def _fields(self, host: str | None, path: str | None, app: App | None, rec: object, *,
                alerts: bool = True, count: bool = True) -> tuple[dict | None, list[CategoryHit]]:
        out: dict = {}
        hits: list[CategoryHit] = []
        c = self.counters if count else UrlCatCounters()
        if host and self.db is not None:
            c.lookups += 1
            cats = self.db.lookup(host, path)
            if cats:
                c.categorised += 1
                out["category"] = [x.name for x in cats]
                for x in cats:
                    c.by_category[x.name] = c.by_category.get(x.name, 0) + 1
                top = cats[0]
                if top.blocked and alerts:
                    c.blocked += 1
                    others = tuple(x.name for x in cats[1:] if x.blocked)
                    target = host + (path or "") if path else host
                    hits.append(CategoryHit(top, target, Direction.TO_SERVER, rec, others))
        if app is not None:
            c.apps += 1
            out["app"] = app.to_json()
        return out or None, hits
