"""`utm sanitize IN OUT`: disarm one file the way the engine does in transit.

Writes OUT atomically (the disarmed file, the unchanged input, or a text
notice) and prints one JSON line: the kind of input, whether it changed,
the notice reason if any, the suggested name (docm -> docx) and every
action. Exit 0 when OUT was written, 2 when IN cannot be read, OUT cannot be
written, or an argument is bad.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firmware.base.atomic import write_atomic
from inspection.files.sanitize import SanitizeLimits, sanitize


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = SanitizeLimits()
    p = sub.add_parser("sanitize", help="remove macros, DDE, scripts and embedded objects from a file",
                       description="Disarm Office, PDF, RTF, CSV files and archives; write the result to OUT "
                                   "and print one JSON line describing what was done.")
    p.add_argument("input", metavar="IN", help="file to disarm")
    p.add_argument("output", metavar="OUT", help="where to write the result (replaced atomically)")
    p.add_argument("--name", default=None,
                   help="file name to judge the input by (default: IN's name; matters for CSV only)")
    p.add_argument("--max-input-bytes", type=int, default=d.max_input_bytes, metavar="N")
    p.add_argument("--max-members", type=int, default=d.max_members, metavar="N")
    p.add_argument("--max-expanded-bytes", type=int, default=d.max_expanded_bytes, metavar="N")
    p.add_argument("--max-depth", type=int, default=d.max_depth, metavar="N")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        limits = SanitizeLimits(args.max_input_bytes, args.max_members, args.max_expanded_bytes, args.max_depth)
    except ValueError as e:
        print(f"utm sanitize: {e}", file=sys.stderr)
        return 2
    src = Path(args.input)
    try:
        data = src.read_bytes()
    except OSError as e:
        print(f"utm sanitize: {src}: cannot read: {e.strerror or e}", file=sys.stderr)
        return 2
    result = sanitize(data, args.name or src.name, limits)
    try:
        write_atomic(args.output, result.data)
    except OSError as e:
        print(f"utm sanitize: {args.output}: cannot write: {e.strerror or e}", file=sys.stderr)
        return 2
    line = {"input": str(src), "output": args.output, **result.summary()}
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    return 0
