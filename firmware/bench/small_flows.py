"""CPU per packet of small connections on the live path, without the kernel.

`utm run` queues every packet of a new connection to a Python worker; a small
HTTP request is about ten queued packets, so the worker's CPU per packet is
the latency a new connection pays. This benchmark synthesises N small
HTTP/1.1 connections (handshake, GET with a Host, a 1000-byte response with a
Content-Length, FIN/ACK teardown), then runs the same packets

* through a `LiveWorker` on a `FakeQueue` (one drop rule, a hash list for the
  file scanner, a small URL category database, EVE lines serialised), and
* through a bare `Engine` with the same judges (the offline path),

and reports CPU microseconds (``time.process_time``) per packet and per
connection, best of several repetitions, so the split between the engine
and the worker shows. Deterministic input and clock: the digest of the EVE
output is printed too, so a change that should not alter the output can be
checked to leave it byte-for-byte the same.

    python -m firmware.bench.small_flows [--connections N] [--repeat R] [--json] [--profile] [--by-kind]

`--by-kind` times the packets one at a time instead (wall-clock medians per
kind of packet: SYN, SYN-ACK, request, response, the other ACKs and FINs), so
it shows which packets the cost is in.

Not root, no sockets. Figures, not assertions: nothing here fails on speed.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from firmware.bench.frames import CLIENT_MAC, TcpConversation

DEFAULT_CONNECTIONS = 2000
DEFAULT_REPEAT = 5
BODY_SIZE = 1000
RULE = 'drop tcp any any -> any any (msg:"evil"; content:"EVIL"; sid:1;)\n'
BLOCKED_HOST = "phish.example.test"   # in the category db; never requested here
HOST = "www.example.test"
CLI_PORT, SRV_PORT = 1, 2              # bridge port ifindexes, as in tests/unit/live
START = 1_700_000_000.0
CLOCK_STEP = 0.002                      # the worker's clock moves this much per batch


class SmallFlowsError(Exception):
    """The benchmark cannot run (bad arguments)."""


@dataclass(frozen=True, slots=True)
class Figures:
    """One path's best repetition."""

    cpu_s: float           # best CPU seconds over the repetitions
    runs_s: tuple[float, ...]
    packets: int
    connections: int
    eve_lines: int
    eve_sha256: str

    @property
    def us_per_packet(self) -> float:
        return self.cpu_s * 1e6 / self.packets

    @property
    def us_per_connection(self) -> float:
        return self.cpu_s * 1e6 / self.connections

    def to_dict(self) -> dict:
        return {"cpu_s": round(self.cpu_s, 4), "runs_s": [round(r, 4) for r in self.runs_s],
                "packets": self.packets, "connections": self.connections,
                "us_per_packet": round(self.us_per_packet, 2),
                "us_per_connection": round(self.us_per_connection, 1),
                "eve_lines": self.eve_lines, "eve_sha256": self.eve_sha256}


def conversations(n: int) -> list[tuple[float, bytes]]:
    """(timestamp, Ethernet frame) of `n` small HTTP connections, one after the other."""
    body = bytes((i * 7 + 13) & 0xFF for i in range(BODY_SIZE))
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % BODY_SIZE
    frames: list[tuple[float, bytes]] = []
    for i in range(n):
        c = TcpConversation(f"192.0.2.{10 + i % 200}", "198.51.100.20", 10000 + i % 50000, 80,
                            start=START + i * 0.002, isn_client=1000 + i, isn_server=900000 + i)
        frames += c.handshake()
        frames += c.send(f"GET /files/{i}.bin HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: bench\r\n\r\n".encode())
        frames += c.send(resp + body, from_client=False)
        frames += c.close()
    return frames


class _Sink:
    """EVE lines kept in memory (hashed after the timing)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.write = self.chunks.append

    def flush(self) -> None:
        pass

    def digest(self) -> tuple[int, str]:
        data = b"".join(self.chunks)
        return data.count(b"\n"), hashlib.sha256(data).hexdigest()


class _Judges:
    """The rule, hash list and category db, built once in a temporary folder."""

    def __init__(self, tmp: Path, rule_files: tuple[Path, ...] = ()) -> None:
        from firmware.cli.scan import load_sources
        from inspection.io.offline import RunSummary, load_inspector
        from signatures.categories.compile import compile_lists
        from signatures.categories.db import encode, write_db
        from signatures.categories.lookup import CategoryDB
        from signatures.errors import SignatureError

        (tmp / "lists" / "phishing").mkdir(parents=True)
        (tmp / "lists" / "phishing" / "domains").write_text(BLOCKED_HOST + "\n")
        write_db(tmp / "cat.db", encode(compile_lists(tmp / "lists")))
        (tmp / "h.sha256").write_text(hashlib.sha256(b"not in this traffic").hexdigest() + "  bench\n")
        (tmp / "r.rules").write_text(RULE)
        self.db = CategoryDB.load(tmp / "cat.db")
        self.hashes, self.matchers, _ = load_sources([str(tmp / "h.sha256")], [])
        try:   # parsed and prepared once: each repetition gets a fresh inspector on the same detector
            self.detector = load_inspector(list(rule_files) or [tmp / "r.rules"], RunSummary(), 1 << 16).detector
        except (OSError, SignatureError) as e:
            raise SmallFlowsError(f"cannot load the rules: {e}") from None

    def engine(self, sink: _Sink):
        from inspection.config import ChecksumMode, EngineConfig
        from inspection.engine import Engine
        from inspection.files.scanner import ContentScanner
        from inspection.detect.inspector import RuleInspector
        from inspection.files.scanner_stream import StreamScanner
        from inspection.output.eve import EveWriter
        from inspection.policy.urlcat import UrlCategorizer

        eve = EveWriter(sink)   # type: ignore[arg-type]
        inspector = RuleInspector(self.detector, body_limit=1 << 16)
        engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True), eve.write, inspector,
                        UrlCategorizer(self.db, None))
        engine.files.scanner = StreamScanner(ContentScanner(self.hashes, self.matchers))
        return engine, eve


def _queued(frames: list[tuple[float, bytes]]) -> list:
    from inspection.io.nfqueue import QueuedPacket

    out = []
    for i, (_, frame) in enumerate(frames):
        from_client = frame[6:12] == CLIENT_MAC
        out.append(QueuedPacket(packet_id=i + 1, hw_protocol=0x0800, hook=2, payload=frame[14:],
                                hwaddr=frame[6:12], physin=CLI_PORT if from_client else SRV_PORT,
                                physout=SRV_PORT if from_client else CLI_PORT))
    return out


def _run_worker(judges: _Judges, queued: list) -> tuple[float, _Sink, object]:
    from inspection.io.live import LiveWorker
    from inspection.io.senders import FakeSender
    from inspection.io.nfqueue import FakeQueue
    from inspection.policy.verdict import FlowPolicy, PolicyConfig

    sink = _Sink()
    engine, eve = judges.engine(sink)
    q = FakeQueue(list(queued))
    ticks = iter(range(10 ** 9))
    w = LiveWorker(q, engine, FlowPolicy(PolicyConfig()), FakeSender(), eve.write,
                   clock=lambda: START + CLOCK_STEP * next(ticks))
    gc.collect()
    t0 = time.process_time()
    while w.run_once(0):
        pass
    engine.finish()   # every flow's end (its flow event) is part of a connection's cost
    cpu = time.process_time() - t0
    return cpu, sink, (w.counters, q.sent)


def _run_engine(judges: _Judges, frames: list[tuple[float, bytes]]) -> tuple[float, _Sink, object]:
    from inspection.io.live import LINKTYPE_IPV4

    sink = _Sink()
    engine, _ = judges.engine(sink)
    pkts = [(ts, f[14:]) for ts, f in frames]
    process = engine.process
    gc.collect()
    t0 = time.process_time()
    for ts, data in pkts:
        process(LINKTYPE_IPV4, data, ts, len(data))
    engine.finish()
    cpu = time.process_time() - t0
    return cpu, sink, engine.stats


def _best(run: Callable[[], tuple[float, _Sink, object]], repeat: int, n: int, packets: int) -> Figures:
    runs, sink = [], None
    for _ in range(repeat):
        cpu, sink, _ = run()
        runs.append(cpu)
    lines, digest = sink.digest()   # type: ignore[union-attr]
    return Figures(min(runs), tuple(runs), packets, n, lines, digest)


def run_small_flows(connections: int = DEFAULT_CONNECTIONS, repeat: int = DEFAULT_REPEAT,
                    paths: tuple[str, ...] = ("worker", "engine"),
                    rule_files: tuple[Path, ...] = ()) -> dict[str, Figures]:
    if connections < 1 or repeat < 1:
        raise SmallFlowsError("connections and repeat must be at least 1")
    frames = conversations(connections)
    queued = _queued(frames)
    out: dict[str, Figures] = {}
    with tempfile.TemporaryDirectory(prefix="utm-bench-small-") as d:
        judges = _Judges(Path(d), rule_files)
        if "worker" in paths:
            out["worker"] = _best(lambda: _run_worker(judges, queued), repeat, connections, len(frames))
        if "engine" in paths:
            out["engine"] = _best(lambda: _run_engine(judges, frames), repeat, connections, len(frames))
    return out


def _profile(connections: int, path: str, top: int, sort: str = "tottime",
             rule_files: tuple[Path, ...] = ()) -> str:
    import cProfile
    import pstats

    frames = conversations(connections)
    queued = _queued(frames)
    with tempfile.TemporaryDirectory(prefix="utm-bench-small-") as d:
        judges = _Judges(Path(d), rule_files)
        _run_engine(judges, frames[:200])   # warm up: lazy imports and rule compilation stay out
        prof = cProfile.Profile()
        prof.enable()
        if path == "worker":
            _run_worker(judges, queued)
        else:
            _run_engine(judges, frames)
        prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats(sort).print_stats(top)
    return s.getvalue()


KINDS = ("SYN", "SYN-ACK", "request", "response", "ACK, FIN")


def packet_kind(frame: bytes) -> str:
    """Which of KINDS an Ethernet/IPv4/TCP frame of `conversations` is."""
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    tcp = ip[ihl:]
    flags = tcp[13]
    payload = int.from_bytes(ip[2:4], "big") - ihl - (tcp[12] >> 4) * 4
    if flags & 0x02:
        return "SYN-ACK" if flags & 0x10 else "SYN"
    if payload > 0:
        return "request" if frame[6:12] == CLIENT_MAC else "response"
    return "ACK, FIN"


def by_kind(connections: int = DEFAULT_CONNECTIONS,
            rule_files: tuple[Path, ...] = ()) -> dict[str, dict[str, float]]:
    """Median microseconds (wall clock, `time.perf_counter`) per kind of packet: path -> kind -> us.
    The worker's `handle` (verdict included, no queue) and the bare `Engine.process`, one packet
    at a time, the clock moving with the packets."""
    from inspection.io.live import LINKTYPE_IPV4, LiveWorker
    from inspection.io.senders import FakeSender
    from inspection.io.nfqueue import FakeQueue
    from inspection.policy.verdict import FlowPolicy, PolicyConfig

    if connections < 1:
        raise SmallFlowsError("connections must be at least 1")
    frames = conversations(connections)
    queued = _queued(frames)
    kinds = [packet_kind(f) for _, f in frames]
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="utm-bench-small-") as d:
        judges = _Judges(Path(d), rule_files)
        for path in ("worker", "engine"):
            engine, eve = judges.engine(_Sink())
            times: dict[str, list[float]] = {k: [] for k in KINDS}
            clock = time.perf_counter
            gc.collect()
            if path == "worker":
                w = LiveWorker(FakeQueue([]), engine, FlowPolicy(PolicyConfig()), FakeSender(), eve.write,
                               clock=lambda: START)
                for (ts, _), qp, kind in zip(frames, queued, kinds):
                    t0 = clock()
                    w.handle(qp, ts)
                    times[kind].append(clock() - t0)
            else:
                for (ts, frame), kind in zip(frames, kinds):
                    data = frame[14:]
                    t0 = clock()
                    engine.process(LINKTYPE_IPV4, data, ts, len(data))
                    times[kind].append(clock() - t0)
            out[path] = {k: sorted(v)[len(v) // 2] * 1e6 for k, v in times.items() if v}
    return out


def format_kinds(medians: dict[str, dict[str, float]]) -> str:
    rows = ["median us per packet   " + "".join(f"{k:>10}" for k in KINDS)]
    for path, m in medians.items():
        rows.append(f"{path:<23}" + "".join(f"{m.get(k, float('nan')):>10.1f}" for k in KINDS))
    return "\n".join(rows)


def format_table(figs: dict[str, Figures]) -> str:
    rows = ["path     packets  conns   best CPU s  us/packet  us/connection  EVE lines  EVE sha256"]
    for name, f in figs.items():
        rows.append(f"{name:<8} {f.packets:>7}  {f.connections:>5}   {f.cpu_s:>10.3f}  {f.us_per_packet:>9.1f}"
                    f"  {f.us_per_connection:>13.1f}  {f.eve_lines:>9}  {f.eve_sha256[:16]}")
        rows.append(f"{'':<8} runs: " + " ".join(f"{r:.3f}" for r in f.runs_s))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m firmware.bench.small_flows",
                                description="CPU per packet of small HTTP connections: live worker and bare engine")
    p.add_argument("--connections", "-n", type=int, default=DEFAULT_CONNECTIONS, metavar="N",
                   help=f"small connections per repetition (default {DEFAULT_CONNECTIONS})")
    p.add_argument("--repeat", "-r", type=int, default=DEFAULT_REPEAT, metavar="R",
                   help=f"repetitions; the best counts (default {DEFAULT_REPEAT})")
    p.add_argument("--path", choices=("both", "worker", "engine"), default="both")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--profile", action="store_true", help="one cProfile run of --path (worker if both) instead")
    p.add_argument("--top", type=int, default=40, help="functions shown by --profile (default 40)")
    p.add_argument("-S", "--rules", type=Path, action="append", default=[], metavar="FILE",
                   help="rule file(s) to load instead of the one drop rule (e.g. ET Open's)")
    p.add_argument("--sort", choices=("tottime", "cumulative"), default="tottime", help="--profile's order")
    p.add_argument("--by-kind", action="store_true",
                   help="median time per kind of packet (SYN, SYN-ACK, request, response, ACK/FIN) instead")
    args = p.parse_args(argv)
    paths = ("worker", "engine") if args.path == "both" else (args.path,)
    try:
        if args.profile:
            print(_profile(args.connections, paths[0], args.top, args.sort, tuple(args.rules)))
            return 0
        if args.by_kind:
            medians = by_kind(args.connections, tuple(args.rules))
            print(json.dumps(medians, indent=2) if args.json else format_kinds(medians))
            return 0
        figs = run_small_flows(args.connections, args.repeat, paths, tuple(args.rules))
    except SmallFlowsError as e:
        print(f"small_flows: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({k: v.to_dict() for k, v in figs.items()}, indent=2))
    else:
        print(format_table(figs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
