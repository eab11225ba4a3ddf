"""`utm categories`: compile UT1-style lists, look hosts and URLs up, benchmark the lookups."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from signatures.apps import AppsError, load_apps
from signatures.categories.errors import CategoryError
from signatures.categories.normalize import split_url
from signatures.categories.policy import load_policy


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("categories", help="URL category database: compile, lookup, bench",
                       description="Compile UT1-layout URL lists into a database and query it.")
    cs = p.add_subparsers(dest="cat_command", metavar="ACTION")
    c = cs.add_parser("compile", help="compile LISTS_DIR (UT1 layout) into a database file")
    c.add_argument("lists", type=Path, metavar="LISTS_DIR",
                   help="folder of category folders (or the UT1 checkout holding blacklists/ and ALIASES.txt)")
    c.add_argument("-o", dest="out", type=Path, required=True, metavar="DB", help="database file to write")
    c.add_argument("--policy", type=Path, default=None, help="policy TOML (default: the one in the repository)")
    c.add_argument("-q", "--quiet", action="store_true", help="only errors")
    c.set_defaults(run=run_compile)
    lk = cs.add_parser("lookup", help="print the categories (and app) of hosts or URLs as JSON lines")
    lk.add_argument("--db", type=Path, required=True, metavar="DB")
    lk.add_argument("items", nargs="+", metavar="HOST_OR_URL")
    lk.set_defaults(run=run_lookup)
    b = cs.add_parser("bench", help="compile the lists, then measure load time, RSS and lookups/s")
    b.add_argument("--lists", type=Path, default=None, metavar="LISTS_DIR",
                   help="UT1 lists (default ../shared/corpus/ut1-blacklists; a generated list when absent)")
    b.add_argument("--generate", action="store_true",
                   help="use a generated list of UT1's size even when the corpus is there")
    b.add_argument("--db", type=Path, default=None, metavar="DB", help="also keep the compiled database here")
    b.add_argument("--lookups", type=int, default=200_000, metavar="N", help="lookups per mix (default 200000)")
    b.add_argument("--json", action="store_true", help="print the figures as JSON")
    b.set_defaults(run=run_bench)
    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])


def _err(msg: str) -> int:
    print(f"utm categories: {msg}", file=sys.stderr)
    return 2


def run_compile(args: argparse.Namespace) -> int:
    from signatures.categories.compile import compile_lists
    from signatures.categories.db import encode, write_db

    t0 = time.perf_counter()
    try:
        policy = load_policy(args.policy)
        compiled = compile_lists(args.lists, policy)
        data = encode(compiled, source=str(args.lists))
        if not args.out.parent.is_dir():
            return _err(f"{args.out.parent}: no such folder")
        write_db(args.out, data)
    except CategoryError as e:
        return _err(str(e))
    except OSError as e:
        return _err(f"{getattr(e, 'filename', '') or args.out}: {e.strerror or e}")
    elapsed = time.perf_counter() - t0
    if args.quiet:
        return 0
    w = sys.stdout.write
    w(f"{'category':28} {'action':7} {'stars':>5} {'domains':>9} {'urls':>7} {'expr':>5} {'dups':>6} {'skipped':>7}\n")
    for cat in sorted(compiled.categories, key=lambda c: c.name):
        r = compiled.reports[cat.name]
        w(f"{cat.name:28} {cat.action.value:7} {cat.stars:>5} {r.domains:>9} {r.urls:>7} {r.expressions:>5} "
          f"{r.duplicates:>6} {sum(r.skipped.values()):>7}\n")
    skipped = [(name, reason, n, r.examples[reason]) for name, r in sorted(compiled.reports.items())
               for reason, n in sorted(r.skipped.items())]
    if skipped:
        w("skipped entries:\n")
        for name, reason, n, example in skipped:
            w(f"  {name}: {n} {reason} (e.g. {example!r})\n")
    if compiled.unknown:
        w("not in the policy (compiled as record): " + ", ".join(compiled.unknown) + "\n")
    if compiled.ignored_files:
        w("files ignored (not domains/urls/expressions/usage): " + ", ".join(compiled.ignored_files) + "\n")
    if compiled.aliases:
        w("aliases: " + ", ".join(f"{a}->{t}" for a, t in sorted(compiled.aliases.items())) + "\n")
    w(f"total: {len(compiled.categories)} categories, {len(compiled.domains):,} domains, "
      f"{len(compiled.urls):,} URLs, {len(compiled.expressions)} expressions\n")
    w(f"database: {args.out} ({len(data):,} bytes) in {elapsed:.2f} s\n")
    return 0


def run_lookup(args: argparse.Namespace) -> int:
    from signatures.categories.lookup import CategoryDB

    try:
        db = CategoryDB.load(args.db)
        apps = load_apps()
    except (CategoryError, AppsError) as e:
        return _err(str(e))
    for item in args.items:
        host, path = split_url(item)
        cats = db.lookup(host, path)
        app = apps.by_host(host)
        rec: dict = {"query": item, "host": host}
        if path is not None:
            rec["path"] = path
        rec["categories"] = [{"name": c.name, "action": c.action.value, "stars": c.stars, "label": c.label_en}
                             for c in cats]
        rec["blocked"] = any(c.blocked for c in cats)
        if app is not None:
            rec["app"] = app.to_json()
        print(json.dumps(rec, ensure_ascii=False))
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from firmware.bench.categories import CategoryBenchError, run_category_bench

    if args.lists is not None and args.generate:
        return _err("--lists and --generate exclude each other")
    if args.lists is not None and not args.lists.is_dir():
        return _err(f"{args.lists}: no such folder")
    if args.lookups < 1000:
        return _err("--lookups: at least 1000")
    try:
        report = run_category_bench(args.lists, args.db, lookups=args.lookups, generate=args.generate,
                                    progress=lambda m: print(f"bench: {m}", file=sys.stderr, flush=True))
    except (CategoryError, CategoryBenchError) as e:
        return _err(str(e))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0
