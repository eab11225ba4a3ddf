"""`./build.sh bench-live`: the plain kernel bridge against the inspecting path, in namespaces.

Root only. Builds the three-namespace bed of tests/sim/bridgebed.py, measures
with no queue rules (plain bridge), then with the docs/live.md ruleset and
`utm run` bound (default depth 1 MB, one drop rule): one large raw download
(handed back after its head), one large HTTP/1.1 download with a
Content-Length (a file, but nothing judges files: handed back at the depth
too), sequential small requests (latency p50/p99 with connection setup), the
same on one open connection (request and answer only), and the requests per
second of 100 parallel clients on new connections (closed loop, one process
of threads).
Then the latency again at half load: the sequential requests while the
clients keep half the inspecting path's requests/s going, the same rate on
both paths, and again at OFFICE_RATE requests/s (a busy office of about a
hundred devices). Last, `utm run` again with a file scanner (a hash list) and
three downloads, each against the plain bridge's time for the same download: the
large one (its Content-Length passes the file size limit, 32 MB: no verdict
could hold its end, so it is handed back at the depth as before); the large
one as an HTTP/0.9 answer whose end only the close shows (queued until it
passes the limit); and a WHOLE_MB file within the limit, queued until its
verdict. Each download row is the median of DOWNLOADS downloads. Engine CPU
and memory come from /proc of the worker.
`utm run` runs with TCP flow timeouts of 1 s (STEADY): flows then end as
fast as they start within the bench's seconds, as they do in an office after
the first minute with the default 60 s; with the defaults the bench would only
see the first minute, which has no flow ends.
Everything is removed at the end.

    python -m tests.sim.bench_live [--large-mb N] [--small N] [--clients N] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.sim.bridgebed import SERVER_IP, BridgeBed, children, missing_reason, run, ruleset

ROOT = Path(__file__).resolve().parents[2]
PEER = str(ROOT / "tests" / "sim" / "tcppeer.py")
PORT = 8080
QUEUE = 21
PLAIN = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
SMALL = 1000           # bytes of a small response
STEADY = ("--set", "flow-timeouts.tcp.new=1", "--set", "flow-timeouts.tcp.closed=1")   # see the docstring
DOWNLOADS = 3          # each download row is the median of this many
CAPACITY_S = 3.0       # seconds of parallel clients for the requests/s figure
OFFICE_RATE = 200.0    # requests/s on new connections of a busy office (~100 devices), for the latency
LOADS = ("half_load", "office_load")
RULE = 'drop tcp any any -> any any (msg:"evil"; content:"EVIL"; sid:1;)\n'
EICAR_SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
WHOLE_MB = 24          # a download the scanner judges whole (the file size limit is 32 MB)
# the scanner's downloads: name -> (tcppeer mode, size or None for --large-mb)
SCANNED = {"announced": ("sink-http11", None), "unknown_length": ("sink-http", None),
           "whole": ("sink-http11", WHOLE_MB << 20)}


def _peer(bed: BridgeBed, *args: str, timeout: float = 300) -> dict:
    r = run(sys.executable, PEER, *args, ns=bed.client, timeout=timeout, check=False)
    if not r.stdout.strip():
        raise RuntimeError(f"peer failed: {r.stderr[-300:]}")
    return json.loads(r.stdout)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def measure(bed: BridgeBed, large: int, small: int, clients: int) -> dict:
    """Large downloads, sequential small requests (latency with nothing else going on) and the
    requests per second `clients` parallel clients get (closed loop, CAPACITY_S seconds)."""
    out: dict = {}
    for mode, peer in (("raw", "sink-raw"), ("http", "sink-http11")):
        out[f"{mode}_mbit_s"] = large * 8 / 1e6 / _download(bed, peer, large)
    r = _peer(bed, "many", SERVER_IP, str(PORT), str(small), str(SMALL))
    lat = r["latencies_ms"]
    out.update(small_ok=len(lat), small_failed=r["failed"], p50_ms=_pct(lat, 0.5), p99_ms=_pct(lat, 0.99))
    out.update(_reuse(bed, small))
    r = _peer(bed, "load", SERVER_IP, str(PORT), str(CAPACITY_S), str(clients), str(SMALL))
    out.update(parallel_requests_per_s=r["done"] / r["seconds"], parallel_failed=r["failed"])
    return out


def _reuse(bed: BridgeBed, small: int) -> dict:
    """Latency of sequential small requests on one open connection (no handshake, no close)."""
    r = _peer(bed, "reuse", SERVER_IP, str(PORT), str(small), str(SMALL))
    lat = r["latencies_ms"]
    return {"reuse_p50_ms": _pct(lat, 0.5), "reuse_p99_ms": _pct(lat, 0.99), "reuse_failed": r["failed"]}


def loaded_latency(bed: BridgeBed, small: int, clients: int, rate: float) -> dict:
    """Sequential small requests, on new connections then on one open connection, while
    `clients` others keep `rate` requests/s going on new connections."""
    seconds = 2.0 + small * 0.006
    cpu0 = _machine_cpu()
    load = subprocess.Popen(["ip", "netns", "exec", bed.client, sys.executable, PEER, "load", SERVER_IP,
                             str(PORT), f"{seconds:.1f}", str(clients), str(SMALL), f"{rate:.1f}"],
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)          # the load is up to its rate before the first probe
        r = _peer(bed, "many", SERVER_IP, str(PORT), str(small), str(SMALL))
        reuse = _reuse(bed, small)
        so, _ = load.communicate(timeout=seconds + 60)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    busy, total = (b - a for a, b in zip(cpu0, _machine_cpu()))
    bg = json.loads(so)
    lat = r["latencies_ms"]
    return {"rate_asked": rate, "rate_done": bg["done"] / bg["seconds"], "cpu_busy": busy / total if total else 0.0,
            "failed": r["failed"] + bg["failed"] + reuse["reuse_failed"],
            "p50_ms": _pct(lat, 0.5), "p99_ms": _pct(lat, 0.99), **reuse}


def _download(bed: BridgeBed, mode: str, size: int) -> float:
    """Seconds a download of `size` bytes takes (tcppeer `mode`): the median of DOWNLOADS, as one
    100 MB download lasts about 60 ms on the plain bridge and a single one swings by a tenth."""
    times = []
    for _ in range(DOWNLOADS):
        r = _peer(bed, mode, SERVER_IP, str(PORT), str(size))
        if not r["ok"]:
            raise RuntimeError(f"{mode} download of {size} bytes failed: {r}")
        times.append(r["seconds"])
    return sorted(times)[len(times) // 2]


def _machine_cpu() -> tuple[int, int]:
    """(busy, all) clock ticks of every CPU since boot (/proc/stat): over a loaded run, how close
    the VM was to full, with the peers, the kernel's forwarding and the worker sharing its cores."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]   # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def _cpu_and_rss(pid: int) -> tuple[float, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return ticks / os.sysconf("SC_CLK_TCK"), rss


def _start_utm(bed: BridgeBed, rules: Path, logdir: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    """`utm run` on the bench's queue with its drop rule; returns it and its worker's pid once bound."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    utm = bed.spawn(bed.box, [sys.executable, "-m", "firmware.cli.main", "run", "--queue", str(QUEUE),
                              "-S", str(rules), "-l", str(logdir), *STEADY, *extra],
                    env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not children(utm.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)
    [worker] = children(utm.pid)
    return utm, worker


def _stop_utm(utm: subprocess.Popen, logdir: Path) -> dict | None:
    """Stop `utm run`; the `live` branch of its last stats event."""
    utm.send_signal(signal.SIGTERM)
    utm.wait(15)
    stats = [json.loads(l) for l in (logdir / f"eve.q{QUEUE}.json").read_text().splitlines() if '"live"' in l]
    return stats[-1]["stats"]["live"] if stats else None


def bench(large_mb: int, small: int, clients: int) -> dict:
    large = large_mb << 20
    bed = BridgeBed(queue=QUEUE)
    bed.up(PLAIN)
    report: dict = {"large_mb": large_mb, "small_requests": small, "clients": clients}
    tmp = Path(tempfile.mkdtemp(prefix="utm-bench-live-"))
    try:
        bed.python(bed.server, PEER, "serve", str(PORT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        for size in {large, *(size for _, size in SCANNED.values() if size)}:   # warm-up: the server
            _peer(bed, "raw", SERVER_IP, str(PORT), str(size))                   # makes its bytes once
        report["plain"] = measure(bed, large, small, clients)
        report["plain"]["scanned_downloads_s"] = {
            name: _download(bed, mode, size or large) for name, (mode, size) in SCANNED.items()}
        bed.apply_rules(ruleset(QUEUE))
        (tmp / "r.rules").write_text(RULE)
        utm, worker = _start_utm(bed, tmp / "r.rules", tmp)
        cpu0, _ = _cpu_and_rss(worker)
        t0 = time.perf_counter()
        report["inspecting"] = measure(bed, large, small, clients)
        wall = time.perf_counter() - t0
        cpu1, rss = _cpu_and_rss(worker)
        report["engine"] = {"cpu_seconds": cpu1 - cpu0, "cpu_share_of_one_core": (cpu1 - cpu0) / wall,
                            "rss_kb": rss}
        # half load: half the requests/s the inspecting path managed, the same rate on both paths
        rate = report["inspecting"]["parallel_requests_per_s"] / 2
        report["inspecting"]["half_load"] = loaded_latency(bed, small, clients, rate)
        report["inspecting"]["office_load"] = loaded_latency(bed, small, clients, OFFICE_RATE)
        live = _stop_utm(utm, tmp)
        bed.apply_rules(PLAIN)
        report["plain"]["half_load"] = loaded_latency(bed, small, clients, rate)
        report["plain"]["office_load"] = loaded_latency(bed, small, clients, OFFICE_RATE)
        bed.apply_rules(ruleset(QUEUE))
        if live:
            report["engine"].update(queued_packets=live["packets"], queued_bytes=live["bytes"],
                                    flows_bypassed=live["flows_bypassed"], enobufs=live["queue"]["enobufs"])
        (tmp / "h.txt").write_text(f"{EICAR_SHA256}  eicar-test\n")
        scan_log = tmp / "scan"
        utm, worker = _start_utm(bed, tmp / "r.rules", scan_log, "--hashes", str(tmp / "h.txt"))
        scanning: dict = {}
        for name, (mode, size) in SCANNED.items():
            cpu0, _ = _cpu_and_rss(worker)
            seconds = _download(bed, mode, size or large)
            cpu1, _ = _cpu_and_rss(worker)
            scanning[name] = {"mbit_s": (size or large) * 8 / 1e6 / seconds,
                              "cpu_seconds": (cpu1 - cpu0) / DOWNLOADS,   # per download
                              "ratio": report["plain"]["scanned_downloads_s"][name] / seconds}
        live = _stop_utm(utm, scan_log)
        scanning["queued_bytes"] = live.get("bytes", 0) if live else 0
        scanning["files_too_large"] = live.get("files_too_large", 0) if live else 0
        report["scanning"] = scanning
        p, i = report["plain"], report["inspecting"]
        report["ratio"] = {"raw_throughput": i["raw_mbit_s"] / p["raw_mbit_s"],
                           "http_throughput": i["http_mbit_s"] / p["http_mbit_s"],
                           "http_scanned_throughput": scanning["announced"]["ratio"],
                           "http_scanned_unknown_length": scanning["unknown_length"]["ratio"],
                           "http_scanned_whole": scanning["whole"]["ratio"],
                           "requests_per_s": i["parallel_requests_per_s"] / p["parallel_requests_per_s"]}
        for key in ("p50_ms", "p99_ms", "reuse_p50_ms", "reuse_p99_ms"):
            report["ratio"][f"added_{key}"] = i[key] - p[key]
            for load in LOADS:
                report["ratio"][f"added_{key}_{load}"] = i[load][key] - p[load][key]
    finally:
        bed.close()
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench-live", description=__doc__.split("\n\n")[0])
    ap.add_argument("--large-mb", type=int, default=100)
    ap.add_argument("--small", type=int, default=400, help="small requests (sequential, then in parallel)")
    ap.add_argument("--clients", type=int, default=100, help="parallel clients")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    why = missing_reason()
    if why:
        print(f"bench-live: {why}", file=sys.stderr)
        return 2
    r = bench(a.large_mb, a.small, a.clients)
    if a.json:
        print(json.dumps(r, indent=2))
        return 0
    p, i, q = r["plain"], r["inspecting"], r["ratio"]
    print(f"{'':28}{'plain bridge':>14}{'inspecting':>14}{'ratio/added':>14}")
    print(f"{'raw download Mbit/s':28}{p['raw_mbit_s']:14.0f}{i['raw_mbit_s']:14.0f}{q['raw_throughput']:14.2f}")
    print(f"{'HTTP download Mbit/s':28}{p['http_mbit_s']:14.0f}{i['http_mbit_s']:14.0f}{q['http_throughput']:14.2f}")
    s = r["scanning"]
    for name, label in (("announced", "  with a file scanner"), ("unknown_length", "    length unknown"),
                        ("whole", f"    {WHOLE_MB} MB, judged whole")):
        size = SCANNED[name][1] or r["large_mb"] << 20
        plain = size * 8 / 1e6 / p["scanned_downloads_s"][name]
        print(f"{label:28}{plain:14.0f}{s[name]['mbit_s']:14.0f}{s[name]['ratio']:14.2f}")
    labels = {"half_load": "  at half load", "office_load": f"  at {OFFICE_RATE:.0f} requests/s"}
    for reuse in ("", "reuse_"):
        if reuse:
            print("on one open connection:")
        for load in ("", *LOADS):
            pr, ir = (p[load], i[load]) if load else (p, i)
            for pq in ("p50", "p99"):
                key = f"{reuse}{pq}_ms"
                added = q[f"added_{key}_{load}" if load else f"added_{key}"]
                label = f"{labels.get(load, 'small request')} {pq} ms"
                print(f"{label:28}{pr[key]:14.2f}{ir[key]:14.2f}{added:+14.2f}")
    print(f"{'parallel requests/s':28}{p['parallel_requests_per_s']:14.0f}{i['parallel_requests_per_s']:14.0f}"
          f"{q['requests_per_s']:14.2f}")
    e = r["engine"]
    print(f"engine: {e['cpu_seconds']:.1f} s CPU ({e['cpu_share_of_one_core']:.0%} of one core while measured), "
          f"RSS {e['rss_kb'] / 1024:.0f} MB; queued {e.get('queued_packets', 0)} packets "
          f"({e.get('queued_bytes', 0) / 1e6:.1f} MB), {e.get('flows_bypassed', 0)} flows handed back, "
          f"ENOBUFS {e.get('enobufs', 0)}")
    print(f"scanner on: {s['announced']['cpu_seconds']:.2f} / {s['unknown_length']['cpu_seconds']:.2f} / "
          f"{s['whole']['cpu_seconds']:.2f} s CPU per download of each kind, "
          f"{s['queued_bytes'] / 1e6:.1f} MB queued, "
          f"{s['files_too_large']} file(s) announced past the size limit")
    for load in LOADS:
        ph, ih = p[load], i[load]
        print(f"{load.replace('_', ' ')}: {ih['rate_asked']:.0f} requests/s asked of {r['clients']} clients in the "
              f"background (done: {ph['rate_done']:.0f} plain, {ih['rate_done']:.0f} inspecting; "
              f"CPUs busy {ph['cpu_busy']:.0%} plain, {ih['cpu_busy']:.0%} inspecting)")
    print(f"({r['large_mb']} MB downloads, {r['small_requests']} small requests, {r['clients']} parallel clients; "
          "2 shared vCPUs over veth: compare the columns, not with hardware)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
