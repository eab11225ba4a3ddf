"""`utm rules compile`: rule files -> one compiled, versioned bundle for `utm inspect --bundle`.

Loads rules exactly as `utm inspect -S` does (rules without ``msg`` accepted,
unsupported ones skipped with their reason), prepares the detector and writes
the bundle atomically, so the engine starts in a fraction of a second and
raises the same alerts. A rule file that cannot be read, a bad ``--var`` or
an output that cannot be written exits 2; skipped rules are normal (exit 0).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from firmware.base.atomic import write_atomic
from signatures.classification import load_classification_file
from signatures.errors import ClassificationError, RuleFileError, VariableError
from signatures.netspec import Variables
from signatures.parser import load_rules


def add_parser(rules_sub: argparse._SubParsersAction) -> None:
    c = rules_sub.add_parser("compile", help="compile rule files into a bundle for `utm inspect --bundle`",
                             description="Load rule files as `utm inspect -S` would, prepare the detector and "
                                         "write a compiled, versioned bundle that loads in well under a second.")
    c.add_argument("-S", dest="rules", action="append", required=True, metavar="FILE",
                   help="rule file; repeat for several (loaded in order)")
    c.add_argument("--var", dest="vars", action="append", default=[], metavar="NAME=VALUE",
                   help="set an address or port variable, e.g. HOME_NET=[10.0.0.0/8]")
    c.add_argument("--classification-file", metavar="FILE",
                   help="classification.config to use instead of the built-in table")
    c.add_argument("-o", dest="output", required=True, metavar="BUNDLE", help="bundle file to write")
    c.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from firmware.cli.rules import parse_vars
    from inspection.detect.bundle import compile_bundle, encode_bundle  # Hyperscan: only when compiling
    from inspection.detect.errors import PrefilterError

    def fail(msg: str) -> int:
        print(f"utm rules compile: {msg}", file=sys.stderr)
        return 2

    try:
        variables = Variables.default().with_overrides(parse_vars(args.vars))
        table = load_classification_file(args.classification_file) if args.classification_file else None
    except (VariableError, ClassificationError, ValueError) as e:
        return fail(str(e))
    kwargs: dict[str, Any] = {"classifications": table} if table is not None else {}
    started = time.perf_counter()
    try:
        loaded = load_rules(args.rules, variables=variables, require_msg=False, **kwargs)
    except RuleFileError as e:
        return fail(f"{e.path}: cannot read rule file: {e.reason}")
    parsed = time.perf_counter()
    try:
        content, detector = compile_bundle(loaded.rules, loaded.skipped)
    except PrefilterError as e:
        return fail(f"prefilter does not compile: {e}")
    compiled = time.perf_counter()
    data = encode_bundle(content, sources=[Path(f).name for f in args.rules])
    try:
        write_atomic(args.output, data)
    except OSError as e:
        return fail(f"{args.output}: cannot write bundle: {e.strerror or e}")
    written = time.perf_counter()
    skipped = Counter([s.keyword for s in loaded.skipped] + [s.keyword for s in detector.skipped])
    w = sys.stdout.write
    w(f"loaded: {len(loaded.rules) - len(detector.skipped)}\n")
    w(f"skipped: {sum(skipped.values())}"
      + (" (" + ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())) + ")" if skipped else "") + "\n")
    p = detector.prefilter
    w(f"parse: {parsed - started:.2f} s\n")
    w(f"compile: {compiled - parsed:.2f} s (prefilter {p.compile_seconds:.2f} s: {p.pattern_count} literals in "
      f"{len(p.keys)} databases, {len(p.always)} rules always verified)\n")
    w(f"write: {written - compiled:.2f} s\n")
    w(f"bundle: {args.output} ({len(data):,} bytes, {len(data) / 1e6:.1f} MB, "
      f"sha256 {hashlib.sha256(data).hexdigest()[:16]}...)\n")
    if not content.rules:
        print("utm rules compile: warning: no rule loaded; the bundle matches nothing", file=sys.stderr)
    return 0
