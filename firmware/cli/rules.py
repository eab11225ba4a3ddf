"""`utm rules`: work with signature rule files.

`utm rules check -S FILE [-S FILE ...] [--var NAME=VALUE ...] [--json]` loads
rules as the engine would and reports what loaded and what was skipped, grouped
by the keyword responsible, so an operator can see at a glance whether a feed
suits this engine. Skipped rules are normal (exit 0); a file that cannot be
read, or a bad ``--var``, is an error (exit 2).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from typing import Any, TextIO

from firmware.cli import rules_compile
from signatures.classification import load_classification_file
from signatures.errors import ClassificationError, RuleFileError, VariableError
from signatures.netspec import Variables
from signatures.parser import LoadResult, SkippedRule, load_rules


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rules", help="check or compile signature rule files",
                       description="Work with Suricata-style signature rule files.")
    rules_sub = p.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    c = rules_sub.add_parser("check", help="load rule files and report loaded/skipped rules",
                             description="Load rule files as the engine would; print how many rules loaded "
                                         "and why the others were skipped, grouped by keyword.")
    c.add_argument("-S", dest="rules", action="append", required=True, metavar="FILE",
                   help="rule file; repeat for several (loaded in order, duplicate sids across files are "
                        "skipped)")
    c.add_argument("--var", dest="vars", action="append", default=[], metavar="NAME=VALUE",
                   help="set an address or port variable, e.g. HOME_NET=[10.0.0.0/8] or HTTP_PORTS=[80,8080] "
                        "(names ending in _PORTS are port variables)")
    c.add_argument("--classification-file", metavar="FILE",
                   help="classification.config to use instead of the built-in table")
    c.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    c.set_defaults(run=run)
    rules_compile.add_parser(rules_sub)
    p.set_defaults(run=_usage(p))


def _usage(p: argparse.ArgumentParser):
    def run_usage(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2
    return run_usage


def run(args: argparse.Namespace) -> int:
    try:
        variables = Variables.default().with_overrides(parse_vars(args.vars))
        table = load_classification_file(args.classification_file) if args.classification_file else None
    except (VariableError, ClassificationError, ValueError) as e:
        print(f"utm rules check: {e}", file=sys.stderr)
        return 2
    kwargs: dict[str, Any] = {"classifications": table} if table is not None else {}
    started = time.perf_counter()
    try:
        result = load_rules(args.rules, variables=variables, **kwargs)
    except RuleFileError as e:
        print(f"utm rules check: {e.path}: cannot read rule file: {e.reason}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    engine = engine_report(result)
    if args.json:
        json.dump({**report(result, seconds, args.rules), "engine": engine}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_report(result, seconds)
        print_engine(engine)
    return 0


def engine_report(result: LoadResult) -> dict:
    """Prepare the detector for the loaded rules, as `utm inspect -S` would: the rules it
    cannot run (keyword and reason), prefilter compile time and size, peak memory."""
    from inspection.detect.engine import Detector   # Hyperscan only when asked for

    started = time.perf_counter()
    detector = Detector(result.rules)
    seconds = time.perf_counter() - started
    skipped: dict[str, dict] = {}
    for sk in detector.skipped:
        g = skipped.setdefault(sk.keyword, {"keyword": sk.keyword, "count": 0, "reason": sk.reason,
                                            "example_sid": sk.rule.sid})
        g["count"] += 1
    return {
        "ready": len(result.rules) - len(detector.skipped),
        "skipped": len(detector.skipped),
        "skipped_by_keyword": sorted(skipped.values(), key=lambda g: (-g["count"], g["keyword"])),
        "prepare_seconds": round(seconds, 3),
        "prefilter_seconds": round(detector.prefilter.compile_seconds, 3),
        "prefilter_patterns": detector.prefilter.pattern_count,
        "prefilter_bytes": detector.prefilter.database_bytes,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def print_engine(e: dict, out: TextIO | None = None) -> None:
    w = (out or sys.stdout).write
    w(f"engine: {e['ready']} rules ready to run, {e['skipped']} not runnable; prepared in "
      f"{e['prepare_seconds']:.2f} s (Hyperscan {e['prefilter_seconds']:.2f} s, {e['prefilter_patterns']} "
      f"fast patterns, {e['prefilter_bytes'] / 1e6:.1f} MB); peak memory {e['peak_rss_bytes'] / 1e6:.0f} MB\n")
    for g in e["skipped_by_keyword"]:
        w(f"  {g['keyword']:<16}  {g['count']:>6}  engine: {g['reason']} (e.g. sid {g['example_sid']})\n")


def parse_vars(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"--var {item!r}: expected NAME=VALUE")
        out[name.strip()] = value.strip()
    return out


def _groups(result: LoadResult) -> list[dict]:
    groups = []
    for keyword, count, first in result.skipped_by_keyword():
        of_kw = [s for s in result.skipped if s.keyword == keyword]
        reason, _ = Counter(s.reason for s in of_kw).most_common(1)[0]
        example: SkippedRule = next((s for s in of_kw if s.sid is not None), first)
        groups.append({"keyword": keyword, "count": count, "kind": example.kind.value, "reason": reason,
                       "example_sid": example.sid, "example": f"{example.file}:{example.line}"})
    return groups


def report(result: LoadResult, seconds: float, files: list[str]) -> dict:
    """The JSON form of a check: counts, timing and skips grouped by keyword."""
    return {
        "files": list(files),
        "active": result.active,
        "loaded": len(result.rules),
        "skipped": len(result.skipped),
        "loaded_percent": round(100.0 * result.loaded_ratio, 2),
        "seconds": round(seconds, 3),
        "skipped_by_keyword": _groups(result),
    }


def print_report(result: LoadResult, seconds: float, out: TextIO | None = None) -> None:
    w = (out or sys.stdout).write
    w(f"loaded: {len(result.rules)}\n")
    w(f"skipped: {len(result.skipped)}\n")
    w(f"active: {result.active} ({100.0 * result.loaded_ratio:.2f}% loaded in {seconds:.2f} s)\n")
    groups = _groups(result)
    if not groups:
        return
    w("skipped by keyword:\n")
    width = max(len(g["keyword"]) for g in groups)
    for g in groups:
        sid = f"sid {g['example_sid']}" if g["example_sid"] is not None else "no sid"
        w(f"  {g['keyword']:<{width}}  {g['count']:>6}  {g['kind']}: {g['reason']} "
          f"(e.g. {sid}, {g['example']})\n")
