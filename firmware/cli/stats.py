"""`utm stats -l LOGDIR`: the running appliance's counters now, on demand.

`utm run` writes a `stats` event per worker every `--stats-every` seconds.
This asks for one at once: SIGUSR1 to the `utm run` recorded in LOGDIR (the
supervisor passes it to each worker; a worker answers within half a second,
its receive timeout), then waits for each queue's new event and prints them:
per queue and in total, with the share of offered packets the workers
actually judged since they started (what the kernel dropped at a queue, or
passed without one, is offered and not judged). `--json` prints the events'
`live` branches, one line per queue.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from cloudlink.follow import stats_sample
from firmware.cli.run import QUEUESFILE, running_pid


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="the counters of a running `utm run`, now (SIGUSR1)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("-l", dest="logdir", default=".", metavar="LOGDIR", help="the LOGDIR of `utm run`")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S", help="seconds to wait for the workers")
    p.add_argument("--json", action="store_true", help="one JSON line per queue: the `live` branch of its stats")
    p.set_defaults(run=run)


def _queues(logdir: Path) -> list[int]:
    try:
        return [int(x) for x in (logdir / QUEUESFILE).read_text().split()]
    except (OSError, ValueError):
        return []


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _last_stats(path: Path, offset: int) -> dict | None:
    """The last complete `stats` event with a `live` branch written after `offset`."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return None
    found = None
    for line in data.split(b"\n")[:-1]:          # the part after the last newline may be half written
        if b'"stats"' not in line:
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event_type") == "stats" and isinstance(ev.get("stats", {}).get("live"), dict):
            found = ev
    return found


def collect(logdir: Path, pid: int, queues: list[int], timeout: float) -> dict[int, dict]:
    """Ask `pid` for stats and wait (bounded) for each queue's new event."""
    files = {q: logdir / f"eve.q{q}.json" for q in queues}
    start = {q: _size(f) for q, f in files.items()}
    os.kill(pid, signal.SIGUSR1)
    got: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(files) and time.monotonic() < deadline:
        time.sleep(0.1)
        for q, f in files.items():
            if q not in got:
                ev = _last_stats(f, start[q])
                if ev is not None:
                    got[q] = ev
    return got


def run(args: argparse.Namespace) -> int:
    logdir = Path(args.logdir)
    pid, why = running_pid(logdir)
    if pid is None:
        print(f"utm stats: {why}", file=sys.stderr)
        return 2
    queues = _queues(logdir)
    if not queues:
        print(f"utm stats: {logdir / QUEUESFILE}: no queues recorded", file=sys.stderr)
        return 2
    try:
        got = collect(logdir, pid, queues, args.timeout)
    except (ProcessLookupError, PermissionError) as e:
        print(f"utm stats: cannot signal process {pid}: {e.strerror or e}", file=sys.stderr)
        return 2
    if args.json:
        for q in queues:
            if q in got:
                print(json.dumps({"queue": q, "timestamp": got[q]["timestamp"], "live": got[q]["stats"]["live"]}))
    else:
        print(render(got))
    missing = [q for q in queues if q not in got]
    if missing:
        print(f"utm stats: no answer in {args.timeout:g} s from the worker of queue(s) "
              + ", ".join(map(str, missing)) + " (starting, hung or dead: the supervisor replaces it)",
              file=sys.stderr)
        return 1
    return 0


def render(got: dict[int, dict]) -> str:
    cols = ("queue", "packets", "MB", "flows", "bypassed", "blocked", "drops", "resets", "pages", "files", "restarts",
            "RSS MB")
    rows, total = [], [0] * (len(cols) - 1)
    judged = offered = 0
    for q in sorted(got):
        live = got[q]["stats"]["live"]
        v = live.get("verdicts", {})
        row = [live.get("packets", 0), round(live.get("bytes", 0) / 1e6, 1), live.get("flows_active", 0),
               live.get("flows_bypassed", 0), live.get("flows_blocked", 0), v.get("drop", 0),
               live.get("resets_sent", 0), live.get("block_pages_sent", 0), live.get("files_blocked", 0),
               live.get("worker_restarts", 0), round(live.get("memory_max_rss_kb", 0) / 1024)]
        rows.append([str(q), *map(str, row)])
        total = [t + x for t, x in zip(total, row)]
        s = stats_sample(got[q])
        if s is not None:
            judged += s.packets
            offered += s.packets + s.missed + (s.kernel_bypassed or 0)
    rows.append(["total", *(str(round(t, 1)) if isinstance(t, float) else str(t) for t in total)])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(r, widths)) for r in rows]
    if offered:
        lines.append(f"inspected: {judged / offered:.1%} of the packets offered to the queues since the workers "
                     f"started ({offered - judged} passed or dropped by the kernel without a verdict)")
    lines.append("flows handed back (bypassed) after the inspection depth or a TLS handshake are not offered: "
                 "by design")
    lines.append(limits_line(got))
    return "\n".join(lines)


# (what was hit, where its counter is in a worker's stats event, what each count is)
LIMITS = (
    ("flow.memcap", ("flow", "memcap_prunes"), "flows ended early"),
    ("stream.memcap", ("tcp", "memcap_drops"), "segments not reassembled"),
    ("defrag.memcap", ("defrag", "memcap_drops"), "fragments dropped"),
    ("app-layer.memcap", ("app_layer", "memcap", "sheds"), "flows' unfinished messages forgotten"),
    ("files.scan-memcap", ("live", "scan_memcap_files"), "files judged by their digests only"),
    ("files.max-size", ("live", "files_too_large"), "downloads announced too large to judge"),
    ("log", ("live", "events_lost"), "events not written"),
)


def limits_line(got: dict[int, dict]) -> str:
    """The caps the workers met since they started, summed over the queues: what could not be
    inspected or logged in full, said, never silent (the counters are in `--json` too)."""
    hit = []
    for name, path, what in LIMITS:
        n = 0
        for q in got:
            v: object = got[q]["stats"]
            for k in path:
                v = v.get(k, 0) if isinstance(v, dict) else 0
            n += v if isinstance(v, int) else 0
        if n:
            hit.append(f"{name} {n} ({what})")
    return "limits hit: " + ("; ".join(hit) if hit else "none")
