"""`utm`: the one console entry point; one module per subcommand."""
from __future__ import annotations

import argparse
import sys

from firmware.cli import inspect as inspect_cmd
from firmware.cli import rules as rules_cmd
from firmware.cli import scan as scan_cmd

SUBCOMMANDS = [inspect_cmd, rules_cmd, scan_cmd]
try:  # the benchmark needs only the standard library and the engine
    from firmware.cli import bench as bench_cmd
    SUBCOMMANDS.append(bench_cmd)
except ImportError:  # pragma: no cover - partial checkouts
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="utm", description="UTM appliance firmware tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in SUBCOMMANDS:
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
