"""Footprint of the cloud link: throughput, agent memory and idle CPU, bytes on the wire.

The reference cloud and the agent run as separate processes (`utm cloud
serve`, `utm cloudlink run`), exactly as a user starts them; a TCP proxy in
this process sits between them and counts the bytes each way (TLS records,
handshakes and HTTP headers included). The day figure is built from
measured per-message costs, not assumed ones:

  day bytes = the idle link's bytes (heartbeats and the command long poll,
              measured from one heartbeat to the next, scaled to a day)
            + detections/day x (one detection uploaded alone on the open connection)
            + reconnects/day x (a whole exchange on a new TLS connection)

The agent keeps its connections open; detections are costed as if each
went alone (the worst case: none share a batch); reconnects (NAT resets,
cloud restarts) are an assumption, 24 a day.
"""
from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from cloudlink.protocol import Action, Detection, DetectionBatch, encode, encode_batch
from cloudlink.queue import DetectionQueue
from firmware.bench.run import run_measured


HEARTBEAT_S = 60          # the agent's default, measured as shipped


class CloudBenchError(Exception):
    """A step of the benchmark failed (a process did not start or exited non-zero)."""


@dataclass(frozen=True, slots=True)
class CloudBenchReport:
    events: int
    batch_size: int
    drain_seconds: float
    events_per_s: float
    drain_cpu_seconds: float
    drain_peak_rss_mb: float
    bytes_per_event_batched: float
    idle_seconds: float
    idle_cpu_percent: float
    idle_rss_mb: float
    steady_window_bytes: int
    steady_window_s: float
    steady_new_connections: int
    idle_bytes_per_day: int
    fresh_connection_bytes: int
    single_upload_bytes: int
    detections_per_day: int
    reconnects_per_day: int
    day_bytes: int
    batch_compression: float

    def format_table(self) -> str:
        rows = [
            ("events through agent to cloud", f"{self.events:,} in {self.drain_seconds:.2f} s = "
                                              f"{self.events_per_s:,.0f} events/s (batches of {self.batch_size})"),
            ("agent while draining", f"{self.drain_cpu_seconds:.2f} CPU s, peak RSS {self.drain_peak_rss_mb:.1f} MB"),
            ("wire bytes per event, batched", f"{self.bytes_per_event_batched:.0f} B "
                                              f"(zlib makes batches {self.batch_compression:.1f}x smaller)"),
            ("agent idle", f"{self.idle_cpu_percent:.2f}% CPU over {self.idle_seconds:.0f} s, "
                           f"RSS {self.idle_rss_mb:.1f} MB (goals: <1%, <=60 MB)"),
            ("idle link (heartbeats + command poll)",
             f"{self.steady_window_bytes:,} B in {self.steady_window_s:.0f} s "
             f"({self.steady_new_connections} new connections) = {self.idle_bytes_per_day / 1e6:.2f} MB a day"),
            ("a new TLS connection (heartbeat, poll)", f"{self.fresh_connection_bytes:,} B"),
            ("one detection alone, open connection", f"{self.single_upload_bytes:,} B"),
            ("simulated day (100-device office)",
             f"idle link + {self.detections_per_day} detections sent one by one + "
             f"{self.reconnects_per_day} reconnects = {self.day_bytes / 1e6:.2f} MB (goal: <=8 MB)"),
        ]
        w = max(len(a) for a, _ in rows)
        return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)

    def to_dict(self) -> dict:
        return asdict(self)


class _CountingProxy:
    """127.0.0.1:port -> target; counts bytes both ways. Runs its own loop in a thread."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.bytes = 0
        self.connections = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                self.bytes += len(data)
                w.write(data)
                await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            w.close()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return
        await asyncio.gather(self._pipe(cr, sw), self._pipe(sr, cw))

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    def start(self) -> "_CountingProxy":
        self._thread.start()
        if not self._ready.wait(10):
            raise CloudBenchError("proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def _utm(*args: str) -> list[str]:
    return [sys.executable, "-m", "firmware.cli.main", *args]


def _run(*args: str) -> str:
    r = subprocess.run(_utm(*args), capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise CloudBenchError(f"utm {' '.join(args)}: {r.stderr.strip() or r.returncode}")
    return r.stdout


def synthetic_detections(n: int, seed: int = 1, start: int = 0) -> list[Detection]:
    """Detections shaped like the engine's: varied rules, hosts, URLs, a few files; stars skewed low."""
    rng = random.Random(seed)
    hosts = [f"{w}.example.{t}" for w in ("cdn", "api", "login", "files", "update", "ads") for t in ("com", "net")]
    out = []
    for i in range(start, start + n):
        stars = rng.choices((0, 1, 2, 3), weights=(30, 40, 20, 10))[0]
        has_file = rng.random() < 0.15
        out.append(Detection(
            key=f"bench{i:012d}", ts=f"2026-11-22T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000000+00:00",
            rule_id=2000000 + rng.randrange(5000), rule_msg=f"ET POLICY bench rule {rng.randrange(5000)} observed",
            stars=stars, action=Action.BLOCKED if stars >= 2 else Action.ALLOWED,
            src_ip=f"10.0.{rng.randrange(4)}.{rng.randrange(1, 101)}", dest_ip=f"203.0.113.{rng.randrange(1, 255)}",
            src_mac=f"02:00:00:00:{rng.randrange(4):02x}:{rng.randrange(256):02x}",
            url=f"http://{rng.choice(hosts)}/path/{rng.randrange(10**6)}/index.html?id={rng.randrange(10**4)}",
            file_name=f"setup-{rng.randrange(1000)}.exe" if has_file else None,
            file_sha256=f"{rng.getrandbits(256):064x}" if has_file else None,
            category="A Network Trojan was detected" if stars == 3 else "Potential Corporate Privacy Violation"))
    return out


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _wait_until(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise CloudBenchError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _heartbeats(agent: Path) -> int:
    try:
        return int(orjson.loads((agent / "status.json").read_bytes()).get("heartbeats_sent", 0))
    except (OSError, orjson.JSONDecodeError):
        return 0


def run_cloud_bench(*, events: int = 20_000, batch_size: int = 200, idle_s: float = 50.0,
                    detections_per_day: int = 500, reconnects_per_day: int = 24,
                    progress=lambda msg: None) -> CloudBenchReport:  # type: ignore[no-untyped-def]
    procs: list[subprocess.Popen] = []
    proxy: _CountingProxy | None = None
    with tempfile.TemporaryDirectory(prefix="utm-bench-cloud-") as tmp:
        cloud, agent = Path(tmp) / "cloud", Path(tmp) / "agent"
        try:
            code = _run("cloud", "enroll-code", "--state", str(cloud)).strip()
            serve = subprocess.Popen(_utm("cloud", "serve", "--state", str(cloud), "--listen", "127.0.0.1:0"),
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            procs.append(serve)
            line = serve.stdout.readline() if serve.stdout else ""
            if not line.startswith("listening on "):
                raise CloudBenchError("utm cloud serve did not start")
            proxy = _CountingProxy(int(line.rsplit(":", 1)[1])).start()
            _run("cloudlink", "enroll", "--server", f"https://127.0.0.1:{proxy.port}", "--code", code,
                 "--state", str(agent))

            progress(f"throughput: {events:,} queued detections, agent --drain")
            dets = synthetic_detections(events)
            raw = sum(len(encode(DetectionBatch(tuple(dets[i:i + batch_size]))))
                      for i in range(0, min(events, 2000), batch_size))
            packed = sum(len(encode_batch(DetectionBatch(tuple(dets[i:i + batch_size]))))
                         for i in range(0, min(events, 2000), batch_size))
            with DetectionQueue(agent / "queue.sqlite", max_events=max(events, 100_000)) as q:
                for i in range(0, events, 1000):
                    q.enqueue(dets[i:i + 1000])
            b0 = proxy.bytes
            # through the benchmarks' spawn helper: a child forked straight from this process would
            # carry our own (larger) pre-exec memory into its ru_maxrss and report it as the agent's
            drain = run_measured(_utm("cloudlink", "run", "--state", str(agent), "--drain",
                                      "--batch-size", str(batch_size)), Path(tmp) / "drain.stdout")
            drain_s = drain.wall_s
            if drain.returncode != 0:
                raise CloudBenchError(f"agent --drain failed: {drain.stderr_tail}")
            drain_bytes = proxy.bytes - b0

            progress(f"steady state: agent with an empty queue, {HEARTBEAT_S} s heartbeats, command long poll "
                     f"(CPU over {idle_s:.0f} s, bytes until the second heartbeat, then one trickled detection)")
            (agent / "status.json").unlink(missing_ok=True)          # the drain's status says 1 heartbeat too
            run = subprocess.Popen(_utm("cloudlink", "run", "--state", str(agent)),   # defaults, as shipped
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(run)
            _wait_until(lambda: _heartbeats(agent) == 1, 30, "the first heartbeat")
            time.sleep(2.0)                      # the command poll's connection is open by now
            b1, n1, w0 = proxy.bytes, proxy.connections, time.monotonic()
            c0 = _cpu_seconds(run.pid)
            time.sleep(idle_s)
            idle_cpu = (_cpu_seconds(run.pid) - c0) / (time.monotonic() - w0) * 100
            idle_rss = _rss_mb(run.pid)
            _wait_until(lambda: _heartbeats(agent) >= 2, HEARTBEAT_S + 30, "the second heartbeat")
            time.sleep(0.5)
            window_bytes, window_s = proxy.bytes - b1, time.monotonic() - w0
            steady_new_conns = proxy.connections - n1
            b2 = proxy.bytes
            with DetectionQueue(agent / "queue.sqlite") as q:
                q.enqueue(synthetic_detections(1, seed=2, start=events + 1))
                _wait_until(lambda: q.stats().depth == 0, 30, "the single upload")
            time.sleep(0.5)
            single = proxy.bytes - b2
            run.terminate()
            run.wait(15)

            progress("a new connection: agent --drain on an empty queue (heartbeat and a command check)")
            b3 = proxy.bytes
            _run("cloudlink", "run", "--state", str(agent), "--drain")
            fresh = proxy.bytes - b3
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait(10)
                for s in (p.stdout, p.stderr):
                    if s:
                        s.close()
            if proxy is not None:
                proxy.stop()
    idle_day = int(window_bytes * 86400 / window_s)
    return CloudBenchReport(
        events=events, batch_size=batch_size, drain_seconds=drain_s, events_per_s=events / drain_s,
        drain_cpu_seconds=drain.cpu_s, drain_peak_rss_mb=drain.peak_rss / 2**20,
        bytes_per_event_batched=drain_bytes / events, idle_seconds=idle_s, idle_cpu_percent=idle_cpu,
        idle_rss_mb=idle_rss, steady_window_bytes=window_bytes, steady_window_s=window_s,
        steady_new_connections=steady_new_conns, idle_bytes_per_day=idle_day, fresh_connection_bytes=fresh,
        single_upload_bytes=single, detections_per_day=detections_per_day, reconnects_per_day=reconnects_per_day,
        day_bytes=idle_day + detections_per_day * single + reconnects_per_day * fresh,
        batch_compression=raw / packed)
