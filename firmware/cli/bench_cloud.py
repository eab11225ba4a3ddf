"""`utm bench-cloud`: the cloud link's footprint against the issue's goals (idle CPU, memory, bytes a day)."""
from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench-cloud", help="benchmark the cloud link (agent -> reference cloud over TLS)",
                       description="Run `utm cloud serve` and `utm cloudlink run` as processes on loopback with "
                                   "a byte-counting proxy between them; measure throughput, the agent's idle "
                                   "CPU and memory, and the bytes of a simulated office day.")
    p.add_argument("--events", type=int, default=20_000, metavar="N", help="detections to push (default 20,000)")
    p.add_argument("--batch-size", type=int, default=200, metavar="N", help="events per upload (default 200)")
    p.add_argument("--idle", type=float, default=50.0, metavar="S",
                   help="idle CPU window, between the first and second heartbeat (default 50 s, at most 55)")
    p.add_argument("--detections-per-day", type=int, default=500, metavar="N",
                   help="detections in the simulated day of a 100-device office (default 500)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from firmware.bench.cloud import CloudBenchError, run_cloud_bench
    if args.events < 1 or not 1 <= args.batch_size <= 500 or not 0 < args.idle <= 55 or args.detections_per_day < 0:
        print("utm bench-cloud: --events >= 1, --batch-size 1..500, --idle 0..55, --detections-per-day >= 0",
              file=sys.stderr)
        return 2
    try:
        rep = run_cloud_bench(events=args.events, batch_size=args.batch_size, idle_s=args.idle,
                              detections_per_day=args.detections_per_day,
                              progress=lambda m: print(f"bench-cloud: {m}", file=sys.stderr, flush=True))
    except CloudBenchError as e:
        print(f"utm bench-cloud: {e}", file=sys.stderr)
        return 1
    print(json.dumps(rep.to_dict(), indent=2) if args.json else rep.format_table())
    return 0
