"""UT1-layout lists -> `CompiledLists` (in memory), ready for `db.write_db`.

Layout: ``DIR/<category>/{domains,urls,expressions,usage}``, or the UT1 checkout
itself (``DIR/blacklists/<category>/...`` with ``DIR/ALIASES.txt``). One entry a
line; blank lines and ``#`` comments are skipped; anything else that does not
normalise is skipped and counted with its reason, never fatal. A category
folder that is a symlink to another category is an alias, not a second copy.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from signatures.categories.errors import ListsError
from signatures.categories.expressions import check_expression
from signatures.categories.model import Category
from signatures.categories.normalize import normalize_host, normalize_path, strip_www
from signatures.categories.policy import Policy, load_policy

LIST_FILES = ("domains", "urls", "expressions")
MAX_LINE = 4096          # longer lines are skipped (counted): no real host or URL entry is that long
_ALIAS_LINE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*->\s*([A-Za-z0-9_.-]+)\s*$")


@dataclass
class CategoryReport:
    """What one category contributed; `skipped` maps a reason to how many lines it cost."""

    domains: int = 0
    urls: int = 0
    expressions: int = 0
    duplicates: int = 0
    usage: tuple[str, ...] = ()
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)   # reason -> first offending line

    def skip(self, reason: str, line: str) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, line[:120])


@dataclass
class CompiledLists:
    """Categories ordered by rank (index = position), host -> category indexes, URL keys, expressions."""

    categories: list[Category]
    aliases: dict[str, str]
    domains: dict[str, frozenset[int]]
    urls: dict[str, frozenset[int]]               # "host/path" (host without www., path lowercased)
    expressions: list[tuple[int, str]]            # (category index, regex over "host/path")
    reports: dict[str, CategoryReport]
    unknown: list[str]                            # categories the policy does not name (compiled as record)
    ignored_files: list[str]


def find_root(lists_dir: Path) -> tuple[Path, Path | None]:
    """The folder holding the category folders, and the ALIASES.txt if there is one."""
    if not lists_dir.is_dir():
        raise ListsError(str(lists_dir), "no such folder")
    inner = lists_dir / "blacklists"
    root = inner if inner.is_dir() else lists_dir
    for cand in (lists_dir / "ALIASES.txt", root / "ALIASES.txt"):
        if cand.is_file():
            return root, cand
    return root, None


def read_aliases(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _ALIAS_LINE.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _lines(path: Path):
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.decode("utf-8", errors="replace").strip()
            if line and not line.startswith("#"):
                yield line


def compile_lists(lists_dir: Path, policy: Policy | None = None) -> CompiledLists:
    """Read every category folder under `lists_dir` (see the module docstring)."""
    policy = policy if policy is not None else load_policy()
    root, alias_file = find_root(lists_dir)
    aliases = dict(policy.aliases)
    aliases.update(read_aliases(alias_file))
    folders: list[Path] = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or not any((entry / f).is_file() for f in LIST_FILES):
            continue
        if entry.is_symlink():
            target = Path(os.path.realpath(entry))
            if target.parent == Path(os.path.realpath(root)):
                aliases[entry.name] = target.name
                continue
        folders.append(entry)
    if not folders:
        raise ListsError(str(lists_dir), "no category folder (with domains, urls or expressions) found")
    cats, unknown = [], []
    for f in folders:
        cat, known = policy.category(f.name)
        cats.append(cat)
        if not known:
            unknown.append(f.name)
    cats.sort(key=lambda c: c.rank)
    index = {c.name: i for i, c in enumerate(cats)}
    domains: dict[str, set[int]] = {}
    urls: dict[str, set[int]] = {}
    expressions: list[tuple[int, str]] = []
    reports: dict[str, CategoryReport] = {}
    ignored: list[str] = []
    for f in folders:
        i = index[f.name]
        rep = reports[f.name] = CategoryReport()
        usage = f / "usage"
        if usage.is_file():
            rep.usage = tuple(ln for ln in _lines(usage) if ln in ("black", "white"))
        for extra in sorted(p.name for p in f.iterdir() if p.is_file()):
            if extra not in LIST_FILES and extra != "usage":
                ignored.append(f"{f.name}/{extra}")
        if (f / "domains").is_file():
            _read_domains(f / "domains", i, domains, rep)
        if (f / "urls").is_file():
            _read_urls(f / "urls", i, urls, rep)
        if (f / "expressions").is_file():
            for line in _lines(f / "expressions"):
                if len(line) > MAX_LINE:
                    rep.skip("line too long", line)
                    continue
                why = check_expression(line)
                if why is not None:
                    rep.skip(f"expression does not compile ({why})", line)
                    continue
                expressions.append((i, line))
                rep.expressions += 1
    aliases = {a: t for a, t in aliases.items() if t in index and a not in index}
    return CompiledLists(cats, aliases, {k: frozenset(v) for k, v in domains.items()},
                         {k: frozenset(v) for k, v in urls.items()}, expressions, reports, unknown, ignored)


def _read_domains(path: Path, i: int, domains: dict[str, set[int]], rep: CategoryReport) -> None:
    for line in _lines(path):
        if len(line) > MAX_LINE:
            rep.skip("line too long", line)
            continue
        if "/" in line:
            rep.skip("domain entry with a path (belongs in urls)", line)
            continue
        host = normalize_host(line)
        if host is None:
            rep.skip("not a host name or IP address", line)
            continue
        s = domains.get(host)
        if s is None:
            domains[host] = {i}
        elif i in s:
            rep.duplicates += 1
            continue
        else:
            s.add(i)
        rep.domains += 1


def _read_urls(path: Path, i: int, urls: dict[str, set[int]],
                rep: CategoryReport) -> None:
    for line in _lines(path):
        if len(line) > MAX_LINE:
            rep.skip("line too long", line)
            continue
        key = url_key(line)
        if key is None:
            rep.skip("not a host/path URL", line)
            continue
        k = key[0] + key[1]
        s = urls.setdefault(k, set())
        if i in s:
            rep.duplicates += 1
            continue
        s.add(i)
        rep.urls += 1


def url_key(entry: str) -> tuple[str, str] | None:
    """``www.Example.com:80/A/b/`` -> (``example.com``, ``/a/b``): the form URL entries are stored and matched in."""
    e = entry.strip()
    for scheme in ("http://", "https://", "ftp://"):
        if e.lower().startswith(scheme):
            e = e[len(scheme):]
            break
    host, sep, path = e.partition("/")
    h = normalize_host(host)
    if h is None:
        return None
    p = normalize_path("/" + path) if sep else "/"
    p = p.split("#", 1)[0]
    if len(p) > 1 and p.endswith("/") and "?" not in p:
        p = p.rstrip("/") or "/"
    return strip_www(h), p
