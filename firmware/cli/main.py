"""`utm`: the one console entry point; one module per subcommand."""
from __future__ import annotations

import argparse
import sys

from firmware.cli import bench as bench_cmd
from firmware.cli import bench_cloud as bench_cloud_cmd
from firmware.cli import categories as categories_cmd
from firmware.cli import cloud as cloud_cmd
from firmware.cli import cloudlink as cloudlink_cmd
from firmware.cli import definitions as definitions_cmd
from firmware.cli import inspect as inspect_cmd
from firmware.cli import net as net_cmd
from firmware.cli import rules as rules_cmd
from firmware.cli import run as run_cmd   # `utm run` and `utm reload`
from firmware.cli import stats as stats_cmd
from firmware.cli import sanitize as sanitize_cmd
from firmware.cli import scan as scan_cmd

SUBCOMMANDS = [inspect_cmd, rules_cmd, scan_cmd, categories_cmd, definitions_cmd, sanitize_cmd, net_cmd, run_cmd, stats_cmd,
               cloudlink_cmd, cloud_cmd, bench_cmd, bench_cloud_cmd]


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
