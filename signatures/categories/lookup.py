"""`CategoryDB`: which categories a host (and path) is in, in well under a microsecond.

Domains live in one dict from the hash of a name to a shared node: the
categories the name is listed in (if any) and whether a longer listed name lies
below it (a hash, not the string: an int is half the memory of a name; Python's
64-bit string hash makes a false hit on a miss about one in 10^13). A lookup
walks from the right (``c.com`` -> ``b.c.com`` -> ``a.b.c.com``) and stops at the
first name with nothing below it, so most misses cost one probe; every listed
level on the way counts, so a listed domain covers its subdomains and several
levels merge. IP addresses match exactly. URL entries are ``host/path`` keys: the path and each of its
``/`` prefixes are tried, so an entry covers what lies below it (at path
boundaries: ``/games`` covers ``/games/x`` and ``/games?id=1``, not
``/gamesx``), on that host only (after dropping ``www.``-like labels). UT1
expressions run on URL lookups only.
"""
from __future__ import annotations

import mmap
from array import array
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Iterator, Mapping

from signatures.categories.db import DEEPER, NO_COMBO, decode, map_db
from signatures.categories.errors import DatabaseError
from signatures.categories.expressions import ExpressionMatcher
from signatures.categories.model import Category
from signatures.categories.normalize import normalize_host, normalize_path, split_url, strip_www

NONE: tuple[Category, ...] = ()
_Node = tuple  # (categories or None, a longer listed name lies below)
_CHUNK = 1 << 20     # bytes of keys turned into strings at a time while loading
_MERGE_CACHE = 4096
_WWWISH = ("www", "web", "ftp")


class CategoryDB:
    """A loaded database; read-only after loading. Not thread-safe (Hyperscan scratch): one per worker."""

    def __init__(self, categories: list[Category], aliases: Mapping[str, str],
                 nodes: dict[int, _Node], urls: dict[str, tuple[Category, ...]],
                 expressions: list[tuple[int, str]], counts: Mapping[str, int] | None = None,
                 source: str = "", tld_keys: bool = False) -> None:
        self.categories = tuple(categories)
        self.by_name = MappingProxyType({c.name: c for c in categories})
        self.aliases = MappingProxyType(dict(aliases))
        self.counts = MappingProxyType(dict(counts or {}))
        self.source = source
        self._nodes = nodes
        self._urls = urls
        self._url_hosts = frozenset(k.partition("/")[0] for k in urls)
        self._exprs = ExpressionMatcher(expressions) if expressions else None
        self._rank = {c: i for i, c in enumerate(categories)}
        # Merges are cached by the ids of their inputs, so every input must outlive the cache:
        # combinations live in the index, expression results in `_expr_results`, merges in `_merged`.
        self._merged: dict[tuple[int, int], tuple[Category, ...]] = {}
        self._expr_results: dict[frozenset[int], tuple[Category, ...]] = {}
        self.lookup: Callable[..., tuple[Category, ...]] = self._make_lookup(tld_keys)
        self.lookup.__doc__ = "lookup(host, path=None): every category listed, blocked ones first"

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def from_buffer(cls, buf: "bytes | mmap.mmap", where: str = "<db>",
                    release: Callable[[], None] | None = None) -> "CategoryDB":
        """Check and load a database held in `buf`; `release` is called as soon as `buf` is no longer
        read (before the index is built, so a mapped file's pages and the index are never both resident)."""
        d = decode(buf, where)
        meta = d.meta
        try:
            cats = [Category.from_json(x) for x in meta["categories"]]
            combos = [tuple(cats[i] for i in combo) for combo in meta["combos"]]
            exprs = [(int(c), str(p)) for c, p in meta.get("expressions", [])]
            if any(not 0 <= c < len(cats) for c, _ in exprs):
                raise ValueError("an expression names an unknown category")
            aliases = {str(k): str(v) for k, v in meta.get("aliases", {}).items()}
            counts = {str(k): int(v) for k, v in meta.get("counts", {}).items()}
            source = str(meta.get("source", ""))
            tld_keys = bool(meta.get("tld_keys", False))
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise DatabaseError(where, f"bad meta section: {e}") from None
        if any((v & ~DEEPER) >= len(combos) and (v & ~DEEPER) != NO_COMBO for v in set(d.domain_combos)) or \
                (d.url_combos and max(d.url_combos) >= len(combos)):
            raise DatabaseError(where, "bad section: a key names an unknown category combination")
        hashes = array("q")
        hashes.extend(map(hash, _keys(buf, d.domain_keys)))
        urls = {k: combos[v] for k, v in zip(_keys(buf, d.url_keys), d.url_combos)}
        if release is not None:
            release()
        nodes = _hashed_nodes(hashes, d.domain_combos, combos)
        del hashes
        try:
            return cls(cats, aliases, nodes, urls, exprs, counts, source, tld_keys)
        except Exception as e:  # noqa: BLE001 - Hyperscan refusing a stored expression means a bad file
            raise DatabaseError(where, f"expressions do not compile: {e}") from None

    @classmethod
    def load(cls, path: Path) -> "CategoryDB":
        buf = map_db(path)
        if isinstance(buf, bytes):
            db = cls.from_buffer(buf, str(path))
        else:
            try:
                db = cls.from_buffer(buf, str(path), release=buf.close)
            finally:
                buf.close()
        _trim_heap()
        return db

    # -- lookups -----------------------------------------------------------------------------
    def _make_lookup(self, tld_keys: bool) -> Callable[..., tuple[Category, ...]]:
        """The lookup as a closure over locals: no attribute lookups on the hot path."""
        get = self._nodes.get
        url_lookup = self._url_lookup
        merge = self._merge
        has_urls = bool(self._urls) or self._exprs is not None

        def lookup(host: str, path: str | None = None) -> tuple[Category, ...]:
            h = host.lower()
            if not h:
                return NONE
            last = h[-1]
            # ports, brackets, trailing dots and IDN need the full normaliser; leading junk ("*.", ".")
            # does not: the walk from the right never reaches it before the listed names
            if last == "." or ":" in h or not h.isascii():
                normal = normalize_host(host)
                if normal is None:
                    return NONE
                h = normal
                last = h[-1]
            found = NONE
            if last.isdigit():               # an IP address matches exactly
                node = get(hash(h))
                if node is not None and node[0]:
                    found = node[0]
            else:
                i = h.rfind(".")
                if not tld_keys and i >= 0:
                    i = h.rfind(".", 0, i)
                while True:
                    node = get(hash(h[i + 1:]))
                    if node is None:
                        break
                    cats, deeper = node
                    if cats:
                        found = merge(found, cats) if found else cats
                    if not deeper or i < 0:
                        break
                    i = h.rfind(".", 0, i)
            if path is not None and has_urls:
                return url_lookup(h, path, found)
            return found

        return lookup

    def _url_lookup(self, h: str, path: str | None, found: tuple[Category, ...]) -> tuple[Category, ...]:
        uh = strip_www(h) if h[:3] in _WWWISH else h
        p = normalize_path(path) if path is not None else "/"  # type: ignore[arg-type]
        if uh in self._url_hosts:
            urls = self._urls
            for cand in _path_prefixes(p):
                r = urls.get(uh + cand)
                if r is not None:
                    found = self._merge(found, r) if found else r
        if path is not None and self._exprs is not None:
            cats = self._exprs.match(h + p)
            if cats:
                r = self._expr_results.get(cats)
                if r is None:
                    r = tuple(sorted((self.categories[i] for i in cats), key=self._rank.__getitem__))
                    if len(self._expr_results) >= _MERGE_CACHE:
                        return tuple(sorted({*found, *r}, key=self._rank.__getitem__))  # uncached: no id reuse
                    self._expr_results[cats] = r
                found = self._merge(found, r) if found else r
        return found

    def _merge(self, a: tuple[Category, ...], b: tuple[Category, ...]) -> tuple[Category, ...]:
        if a is b:
            return a
        key = (id(a), id(b))
        m = self._merged.get(key)
        if m is None:
            m = tuple(sorted(set(a) | set(b), key=self._rank.__getitem__))
            if len(self._merged) < _MERGE_CACHE:   # bounded: expression results are made per URL
                self._merged[key] = m
        return m

    def lookup_url(self, url: str) -> tuple[Category, ...]:
        """`lookup` for ``http://host/path`` or ``host/path`` text (the CLI and tests)."""
        host, path = split_url(url)
        return self.lookup(host, path)

    def resolve(self, name: str) -> Category | None:
        """A category by its name or alias."""
        return self.by_name.get(self.aliases.get(name, name))

    def __len__(self) -> int:
        return self.counts.get("domains", 0) + len(self._urls)


def _trim_heap() -> None:
    """Give the heap freed by the load spike (index resizes, transient names) back to the OS.

    glibc keeps freed heap for reuse; after a load that is ~15 MB of RSS the
    process never needs again. Best effort: other C libraries simply keep it.
    """
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        trim = getattr(libc, "malloc_trim", None)
        if trim is not None:
            trim(0)
    except (OSError, AttributeError):
        pass


def _keys(buf: "bytes | mmap.mmap", span: tuple[int, int]) -> Iterator[str]:
    """The keys in `span` of `buf`, decoded a slice at a time (bounded transient memory while loading)."""
    start, end_all = span
    while start < end_all:
        end = buf.find(b"\n", min(start + _CHUNK, end_all - 1), end_all)
        end = end_all if end < 0 else end
        yield from buf[start:end].decode("ascii").split("\n")
        start = end + 1


def _hashed_nodes(hashes: array, vals: array, combos: list[tuple[Category, ...]]) -> dict[int, _Node]:
    """hash(name) -> node. The hashes were gathered before, so the transient name strings do
    not sit between the kept ints in memory (RSS stays near the live size)."""
    shared: dict[int, _Node] = {}

    def node(v: int) -> _Node:
        n = shared.get(v)
        if n is None:
            c = v & ~DEEPER
            n = shared[v] = (combos[c] if c != NO_COMBO else None, bool(v & DEEPER))
        return n

    index = dict(zip(hashes, map(node, vals)))
    if len(index) != len(hashes):            # two names with one hash (never seen): keep both
        index = {}
        for h, v in zip(hashes, vals):
            prev, new = index.get(h), node(v)
            if prev is not None and prev is not new:
                cats = tuple(dict.fromkeys((prev[0] or ()) + (new[0] or ()))) or None
                new = (cats, prev[1] or new[1])
            index[h] = new
    return index


def _path_prefixes(p: str) -> Iterator[str]:
    """``/a/b?q`` -> ``/a/b?q``, ``/a/b``, ``/a``, ``/``: the forms a URL entry may take above this path."""
    q = p.find("?")
    if q >= 0:
        yield p
        p = p[:q]
    p = p.rstrip("/") or "/"
    while True:
        yield p
        if p == "/":
            return
        i = p.rfind("/")
        p = p[:i] or "/"
