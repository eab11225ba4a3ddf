"""`utm bench`: throughput against tshark and memory per concurrent flow."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firmware.bench.run import (DEFAULT_FLOWS, DEFAULT_SIZE_MB, QUICK_FLOWS, QUICK_SIZE_MB, BenchError,
                                default_workdir, run_bench)


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "bench", help="benchmark the inspection engine against tshark",
        description="Generate (or reuse) a deterministic mixed-traffic capture, run `utm inspect` and "
                    "tshark on it, and measure memory per concurrent flow from an idle-flows capture.")
    p.add_argument("--size-mb", type=float, default=None, metavar="MB",
                   help=f"size of the mixed capture (default {DEFAULT_SIZE_MB:g}; {QUICK_SIZE_MB:g} with --quick)")
    p.add_argument("--flows", type=int, default=None, metavar="N",
                   help=f"idle flows for the memory figure (default {DEFAULT_FLOWS:,}; {QUICK_FLOWS:,} with --quick)")
    p.add_argument("--workdir", type=Path, default=None,
                   help=f"where captures are cached (default {default_workdir()})")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quick", action="store_true", help="a small, fast smoke run")
    p.add_argument("--seed", type=int, default=None, help="synthesizer seed (default 1)")
    p.add_argument("--utm", default=None, metavar="PATH",
                   help="engine command to measure (default: the utm next to this Python)")
    p.add_argument("--et-open", type=Path, default=None, metavar="DIR",
                   help="ET Open rules for the rule rows (default ../shared/corpus/et-open next to the project; "
                        "its rules/*.rules)")
    p.add_argument("--rules", action=argparse.BooleanOptionalAction, default=None,
                   help="measure the rule rows: no rules, ET Open with -S, ET Open from a compiled bundle "
                        "(default: on, off with --quick unless --et-open is given)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    def progress(msg: str) -> None:
        print(f"bench: {msg}", file=sys.stderr, flush=True)

    try:
        report = run_bench(args, progress=progress)
    except BenchError as e:
        print(f"utm bench: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.format_table())
    return 0
