"""Exclusions on the live path (pure): what the operator said must never be blocked.

SPEC section 7: exclusions exist so a false positive stops costing a customer
while the operator tunes. An excluded hit is therefore never enforced, but it
is not hidden either: its alert is logged as `action: allowed` with an
`excluded` field naming the exclusion, and counted in the `stats` event, so
the operator still sees what the exclusion let through. The worker asks
`ExclusionFilter.check` about every alert before the flow policy decides.

What matches what:
- `rules`: a signature id (gid 1 rules; file-verdict alerts have their own ids);
- `domains`: a host equal to or under the listed name (example.com covers
  www.example.com), on a URL category hit, or on any alert whose transaction
  names a host (HTTP Host, TLS SNI, DNS query);
- `urls`: host + path prefix, as the category matcher reads URLs (no scheme,
  no port; "example.com/login" covers "example.com/login/x");
- `hashes`: the SHA-256 of a file judged malicious (its completing packet is
  passed, not held and dropped); a rule matching a file's content is excluded
  by its id, not by the file's hash;
- `addresses`: an IP address or network at either end of the alert's flow.
"""
from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable

from inspection.errors import ConfigError
from inspection.policy.filehit import FileBlockHit
from inspection.policy.hits import AllowedHit
from inspection.policy.urlcat import CategoryHit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Exclusions:
    """The engine-side exclusions of the network config, normalised for matching."""

    rules: frozenset[int] = frozenset()
    hashes: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    urls: tuple[str, ...] = ()
    addresses: tuple[Network, ...] = ()

    def __post_init__(self) -> None:
        for h in self.hashes:
            if len(h) != 64 or h.strip("0123456789abcdef"):
                raise ConfigError("exclusions.hashes", f"{h!r} is not a lower-case sha256 in hex")

    @classmethod
    def build(cls, *, rules: Iterable[int] = (), hashes: Iterable[str] = (), domains: Iterable[str] = (),
              urls: Iterable[str] = (), addresses: Iterable[str] = ()) -> "Exclusions":
        """From the config's lists (raises ConfigError on an address that is not one)."""
        nets = []
        for a in addresses:
            try:
                nets.append(ipaddress.ip_network(a, strict=False))
            except ValueError:
                raise ConfigError("exclusions.addresses", f"{a!r} is not an IP address or network") from None
        return cls(frozenset(rules), frozenset(h.lower() for h in hashes),
                   frozenset(d for d in (_host(x) for x in domains) if d),
                   tuple(u for u in (_url(x) for x in urls) if u), tuple(nets))

    def __bool__(self) -> bool:
        return bool(self.rules or self.hashes or self.domains or self.urls or self.addresses)

    def reason(self, subject: "Subject") -> str | None:
        """Which exclusion covers `subject` (e.g. "rule 2000001"), None if none does."""
        if subject.sid is not None and subject.sid in self.rules:
            return f"rule {subject.sid}"
        if subject.sha256 is not None and subject.sha256 in self.hashes:
            return f"hash {subject.sha256}"
        host = subject.host
        if host:
            if self.domains:
                parts = host.split(".")
                for i in range(len(parts)):
                    d = ".".join(parts[i:])
                    if d in self.domains:
                        return f"domain {d}"
            if self.urls:
                target = host + (subject.path or "/")
                for u in self.urls:
                    if target == u or target.startswith(u if u.endswith("/") else u + "/") \
                            or ("/" in u and target.startswith(u)):
                        return f"url {u}"
        for addr in subject.addresses:
            for net in self.addresses:
                if addr.version == net.version and addr in net:
                    return f"address {net}"
        return None


@dataclass(frozen=True, slots=True)
class Subject:
    """What an alert is about, as far as exclusions care."""

    sid: int | None = None
    sha256: str | None = None
    host: str | None = None          # lower case, no port, no trailing dot
    path: str | None = None          # URL path (no query), for URL exclusions
    addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()


def subject_of(hit: object, flow: Any = None) -> Subject:
    """The subject of an alert body (a rule hit, a category hit, a malicious file) on `flow`."""
    sid = sha = host = path = None
    if isinstance(hit, CategoryHit):
        host, _, rest = hit.target.partition("/")
        path = "/" + rest if rest else None
        record = hit.record
    elif isinstance(hit, FileBlockHit):
        sha = hit.file.sha256
        record = hit.record
    else:
        rule = getattr(hit, "rule", None)
        sid = getattr(rule, "sid", None) if getattr(rule, "gid", 1) == 1 else None
        record = getattr(hit, "record", None)
    if host is None and record is not None:
        host, path = _record_host(record)
    return Subject(sid, sha.lower() if isinstance(sha, str) else None, _host(host) if host else None, path,
                   _addresses(flow))


def _record_host(record: object) -> tuple[str | None, str | None]:
    """Host and path named by a transaction: HTTP Host and URI, TLS SNI, the first DNS query."""
    host = getattr(record, "host", None)
    if isinstance(host, str):
        uri = getattr(record, "uri", None)
        path = uri.partition("?")[0] if isinstance(uri, str) and uri.startswith("/") else None
        return host, path
    sni = getattr(getattr(record, "client_hello", None), "sni", None) or getattr(record, "sni", None)
    if isinstance(sni, (bytes, str)):
        return (sni.decode("ascii", "replace") if isinstance(sni, bytes) else sni), None
    queries = getattr(record, "queries", None)
    if queries:
        name = getattr(queries[0], "rrname", None)
        if isinstance(name, bytes):
            return name.decode("ascii", "replace"), None
    return None, None


def _host(h: str | None) -> str:
    """Lower case, no port, no brackets, no trailing dot."""
    if not h:
        return ""
    h = h.strip().lower()
    if h.startswith("["):
        h = h[1:].partition("]")[0]
    elif h.count(":") == 1:
        h = h.partition(":")[0]
    return h.rstrip(".")


def _url(u: str) -> str:
    """host/path without scheme or port, as the category matcher reads URLs."""
    u = u.strip()
    low = u.lower()
    for scheme in ("http://", "https://"):
        if low.startswith(scheme):
            u = u[len(scheme):]
            break
    host, slash, path = u.partition("/")
    host = _host(host)
    return host + (slash + path.partition("?")[0] if slash else "") if host else ""


def _addresses(flow: Any) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    out = []
    for raw in (getattr(flow, "cli", None), getattr(flow, "srv", None)):
        if isinstance(raw, bytes) and len(raw) in (4, 16):
            out.append(ipaddress.ip_address(raw))
    return tuple(out)


class ExcludedHit(AllowedHit):
    """An alert an exclusion covers: logged the same, with ``action: allowed`` and ``excluded``."""

    __slots__ = ("excluded",)

    def __init__(self, hit: object, reason: str) -> None:
        if isinstance(hit, (CategoryHit, FileBlockHit)):
            hit = dataclasses.replace(hit, blocked=False)
        super().__init__(hit)
        self.excluded = reason

    @property
    def inner(self) -> object:
        return self._hit


@dataclass(slots=True)
class ExclusionCounters:
    hits: int = 0                     # alerts an exclusion covered
    blocks_lifted: int = 0            # of which would have blocked
    by_kind: dict[str, int] = field(default_factory=dict)   # rule, domain, url, hash, address


class ExclusionFilter:
    """The worker's exclusion step: the current exclusions (swapped on reload) and their counters."""

    def __init__(self, exclusions: Exclusions | None = None) -> None:
        self.exclusions = exclusions or Exclusions()
        self.counters = ExclusionCounters()

    def check(self, hit: object, flow: Any, blocking: bool) -> str | None:
        """The exclusion covering this alert (counted), or None."""
        if not self.exclusions:
            return None
        why = self.exclusions.reason(subject_of(hit, flow))
        if why is not None:
            c = self.counters
            c.hits += 1
            c.blocks_lifted += blocking
            kind = why.partition(" ")[0]
            c.by_kind[kind] = c.by_kind.get(kind, 0) + 1
        return why

    def tree(self) -> dict:
        c = self.counters
        return {"hits": c.hits, "blocks_lifted": c.blocks_lifted, **{f"by_{k}": v for k, v in sorted(c.by_kind.items())}}
