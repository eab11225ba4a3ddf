"""`utm bench`: our engine against tshark on the same synthetic capture.

1. Generate (or reuse from the cache) a mixed-traffic capture, an idle-flows
   capture of N flows and its one-flow baseline. Cache names carry the
   parameters and a hash of the synthesizer's source, so any change to it
   regenerates them.
2. Run `utm inspect -r CAPTURE -l TMP -k none` and `tshark -n -r CAPTURE -T
   fields -e http.host -e tls.handshake.extensions_server_name -e
   dns.qry.name`, each timed on the wall clock, with its CPU time and peak RSS
   taken from `os.wait4`.
3. Run both on the idle capture and the baseline: (peak RSS difference) /
   (N - 1) is the memory held per concurrent flow.
4. Rule rows (`rules_rows`): the mixed capture again with ET Open via `-S`,
   `utm rules compile` of the same files, and the capture with the bundle;
   speed as a ratio to the no-rules run of step 2.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from firmware.bench import frames, rules_rows, synth
from firmware.bench.synth import CaptureSummary
from inspection.io import pcap as pcap_io

QUICK_SIZE_MB, DEFAULT_SIZE_MB = 20.0, 200.0
QUICK_FLOWS, DEFAULT_FLOWS = 10_000, 100_000
TSHARK_FIELDS = ("http.host", "tls.handshake.extensions_server_name", "dns.qry.name")
_FIELD_LABELS = ("http.host", "tls sni", "dns.qry.name")   # dns.qry.name: queries and answers
_TAIL = 2000


class BenchError(Exception):
    """A benchmark step failed; `tool` and `returncode` say which and how."""

    def __init__(self, message: str, *, tool: str = "", returncode: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.tool = tool
        self.returncode = returncode
        self.detail = detail

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n{self.detail}" if self.detail else base


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One finished child process and what it cost."""
    argv: tuple[str, ...]
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss: int          # bytes
    stdout_tail: str
    stderr_tail: str


@dataclass(frozen=True, slots=True)
class Throughput:
    tool: str
    wall_s: float
    cpu_s: float
    peak_rss: int
    mbit_s: float          # captured frame bits / wall time
    packets_s: float
    reported: dict[str, float] = field(default_factory=dict)  # the tool's own summary figures
    counts: dict[str, int] = field(default_factory=dict)      # what it found (events / fields)


@dataclass(frozen=True, slots=True)
class FlowMemory:
    tool: str
    flows: int
    shape: str
    peak_rss_idle: int
    peak_rss_baseline: int

    @property
    def bytes_per_flow(self) -> float:
        return (self.peak_rss_idle - self.peak_rss_baseline) / max(1, self.flows - 1)


@dataclass(frozen=True, slots=True)
class BenchReport:
    capture_path: str
    capture: CaptureSummary
    generate_s: float | None           # None: reused from the cache
    ours: Throughput
    tshark: Throughput | None
    flow_memory: tuple[FlowMemory, ...]
    notes: tuple[str, ...] = ()
    rules: rules_rows.RulesBench | None = None

    @property
    def ratio(self) -> float | None:
        """ours/tshark speed: > 1 means our engine is faster."""
        if self.tshark is None or self.ours.wall_s <= 0:
            return None
        return self.tshark.wall_s / self.ours.wall_s

    def to_dict(self) -> dict[str, object]:
        return {
            "capture": {"path": self.capture_path, "generate_s": self.generate_s, **self.capture.to_dict()},
            "ours": asdict(self.ours),
            "tshark": asdict(self.tshark) if self.tshark else None,
            "ratio_ours_over_tshark": self.ratio,
            "flow_memory": [{**asdict(m), "bytes_per_flow": m.bytes_per_flow} for m in self.flow_memory],
            "rules": self.rules.to_dict() if self.rules else None,
            "notes": list(self.notes),
        }

    def format_table(self) -> str:
        c = self.capture
        made = "reused from cache" if self.generate_s is None else f"generated in {self.generate_s:.1f} s"
        lines = [
            f"capture  {self.capture_path}",
            f"         {c.file_bytes / 1e6:.1f} MB, {c.packets:,} packets, {c.flows:,} flows "
            f"({c.ipv6_flows:,} IPv6), {c.duration:.1f} s of traffic; {made}",
            f"truth    http requests {c.http_requests:,}  tls sni {c.tls_sni:,}  dns queries {c.dns_queries:,}",
            "",
            f"{'':14}{'wall s':>9}{'cpu s':>9}{'Mbit/s':>10}{'packets/s':>12}{'peak RSS MB':>13}",
        ]
        for t in (self.ours, self.tshark):
            if t is not None:
                lines.append(f"{t.tool:14}{t.wall_s:9.2f}{t.cpu_s:9.2f}{t.mbit_s:10.1f}{t.packets_s:12,.0f}"
                             f"{t.peak_rss / 2**20:13.1f}")
        if self.ratio is not None:
            lines.append(f"ours/tshark   {self.ratio:.2f}x  (>1: our engine is faster)")
        if self.ours.reported:
            lines.append("engine says  " + "  ".join(f"{k} {v:,.1f}" if k == "Mbit/s" else f"{k} {v:,.0f}"
                                                  for k, v in self.ours.reported.items()))
        label = "found"
        for t in (self.ours, self.tshark):
            if t is not None and t.counts:
                lines.append(f"{label:14}{t.tool}: " + "  ".join(f"{k} {v:,}" for k, v in t.counts.items()))
                label = ""
        if self.flow_memory:
            lines += ["", f"memory per concurrent flow ({self.flow_memory[0].flows:,} idle flows vs 1):",
                      f"{'':14}{'flow shape':>12}{'idle MB':>10}{'1 flow MB':>11}{'bytes/flow':>12}"]
            for m in self.flow_memory:
                lines.append(f"{m.tool:14}{m.shape:>12}{m.peak_rss_idle / 2**20:10.1f}"
                             f"{m.peak_rss_baseline / 2**20:11.1f}{m.bytes_per_flow:12,.0f}")
            lines.append("  connected: handshake only; keepalive: one answered HTTP request, connection kept open")
        if self.rules is not None:
            lines += self.rules.format_lines()
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# ---------------------------------------------------------------- captures

def default_workdir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "utm-bench"


def source_hash() -> str:
    """Changes whenever the synthesizer, the frame builders or the pcap writer change."""
    h = hashlib.sha256(b"synth-v%d\0" % synth.SYNTH_VERSION)
    for mod in (frames, synth, pcap_io):
        h.update(Path(str(mod.__file__)).read_bytes())
    return h.hexdigest()[:12]


def ensure_capture(workdir: Path, stem: str, write: Callable[[Path], CaptureSummary]) -> tuple[Path, CaptureSummary, float | None]:
    """Reuse `workdir/stem-<hash>.pcap` or write it (atomically); drop stale versions."""
    workdir.mkdir(parents=True, exist_ok=True)
    version = source_hash()
    pcap = workdir / f"{stem}-{version}.pcap"
    meta = pcap.with_suffix(".json")
    if pcap.exists() and meta.exists():
        try:
            summary = CaptureSummary.from_dict(json.loads(meta.read_text()))
            if summary.file_bytes == pcap.stat().st_size:
                return pcap, summary, None
        except (ValueError, TypeError, OSError):
            pass
    for old in workdir.glob(f"{stem}-*.pcap"):
        if old != pcap and len(old.stem) == len(stem) + 13:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
    tmp = pcap.with_name(f".{pcap.name}.{os.getpid()}.part")
    t0 = time.perf_counter()
    try:
        summary = write(tmp)
        os.replace(tmp, pcap)
    finally:
        tmp.unlink(missing_ok=True)
    elapsed = time.perf_counter() - t0
    tmp_meta = meta.with_name(f".{meta.name}.{os.getpid()}.part")
    tmp_meta.write_text(json.dumps(summary.to_dict(), indent=2))
    os.replace(tmp_meta, meta)
    return pcap, summary, elapsed


# ---------------------------------------------------------------- child processes

# The child is started by a fresh, small interpreter that forks, execs and
# reports `wait4`. Linux carries the pre-exec memory's high-water mark into
# ru_maxrss, so a child forked straight from this (large) process would report
# at least our own peak; through the helper the floor is its ~8 MB.
_SPAWN_HELPER = """
import os, sys, time
fd = int(sys.argv[1]); argv = sys.argv[2:]
os.set_inheritable(fd, False)
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        os.write(2, ("cannot start %s: %s\\n" % (argv[0], e.strerror or e)).encode())
    os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
os.write(fd, ("%d %r %r %d" % (os.waitstatus_to_exitcode(status), wall,
                               ru.ru_utime + ru.ru_stime, ru.ru_maxrss)).encode())
"""


def run_measured(argv: list[str], stdout_path: Path) -> ToolRun:
    """Run `argv` to completion; stdout goes to `stdout_path`. Wall time, CPU
    time and peak RSS are the child's own (from `os.wait4` in a spawn helper)."""
    rfd, wfd = os.pipe()
    try:
        with open(stdout_path, "wb") as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _SPAWN_HELPER, str(wfd), *argv],
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err, pass_fds=(wfd,))
            except OSError as e:
                raise BenchError(f"cannot start the spawn helper: {e.strerror or e}", tool=argv[0]) from e
            os.close(wfd)
            wfd = -1
            with os.fdopen(rfd, "rb") as result:
                rfd = -1
                fields = result.read().split()
            proc.wait()
            err.seek(0)
            stderr = err.read()
    finally:
        for fd in (rfd, wfd):
            if fd >= 0:
                os.close(fd)
    if proc.returncode != 0 or len(fields) != 4:
        raise BenchError(f"spawn helper failed for {argv[0]} (exit {proc.returncode})", tool=argv[0],
                         detail=stderr[-_TAIL:].decode(errors="replace"))
    code, wall, cpu, maxrss = int(fields[0]), float(fields[1]), float(fields[2]), int(fields[3])
    with open(stdout_path, "rb") as fh:
        fh.seek(max(0, stdout_path.stat().st_size - _TAIL))
        stdout = fh.read()
    scale = 1 if sys.platform == "darwin" else 1024   # ru_maxrss is KiB on Linux
    return ToolRun(tuple(argv), code, wall, cpu, maxrss * scale, stdout.decode(errors="replace"),
                   stderr[-_TAIL:].decode(errors="replace"))


def parse_engine_summary(text: str) -> dict[str, float]:
    """`packets: N`, `Mbit/s: X`, `packets/s: Y` lines of `utm inspect`'s summary."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and key.strip() in ("packets", "Mbit/s", "packets/s"):
            try:
                found[key.strip()] = float(value.strip().replace(",", "").split()[0])
            except (ValueError, IndexError):
                continue
    return found


def count_eve_events(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if not path.exists():
        return counts
    with open(path, "rb") as fh:
        for line in fh:
            try:
                kind = json.loads(line).get("event_type", "?")
            except (ValueError, AttributeError):
                kind = "unparsable"
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def count_tshark_fields(path: Path) -> dict[str, int]:
    """Occurrences per field (one tab-separated column each, ',' between repeats)."""
    counts = [0] * len(TSHARK_FIELDS)
    with open(path, "rb") as fh:
        for line in fh:
            for i, col in enumerate(line.rstrip(b"\r\n").split(b"\t")[:len(TSHARK_FIELDS)]):
                if col:
                    counts[i] += col.count(b",") + 1
    return dict(zip(_FIELD_LABELS, counts))


def utm_command(explicit: str | os.PathLike[str] | None) -> str:
    """The `utm` of this interpreter's environment (or the one given)."""
    if explicit:
        return str(explicit)
    beside = Path(sys.executable).parent / "utm"
    if beside.exists():
        return str(beside)
    found = shutil.which("utm")
    if not found:
        raise BenchError(f"no utm command next to {sys.executable} or on PATH", tool="utm")
    return found


class _Runner:
    """Runs both tools on a capture inside one scratch directory."""

    def __init__(self, utm: str, tshark: str | None, scratch: Path) -> None:
        self.utm, self.tshark, self.scratch = utm, tshark, scratch
        self._n = 0

    def _dir(self) -> Path:
        self._n += 1
        d = self.scratch / f"run{self._n}"
        d.mkdir()
        return d

    def engine(self, pcap: Path) -> tuple[ToolRun, dict[str, int]]:
        d = self._dir()
        logdir = d / "log"
        logdir.mkdir()
        run = run_measured([self.utm, "inspect", "-r", str(pcap), "-l", str(logdir), "-k", "none"], d / "stdout")
        if run.returncode != 0:
            raise BenchError(f"utm inspect failed on {pcap.name} (exit {run.returncode})", tool="utm",
                             returncode=run.returncode, detail=(run.stderr_tail or run.stdout_tail)[-800:])
        counts = count_eve_events(logdir / "eve.json")
        shutil.rmtree(d, ignore_errors=True)
        return run, counts

    def tshark_fields(self, pcap: Path) -> tuple[ToolRun, dict[str, int]]:
        assert self.tshark is not None
        d = self._dir()
        argv = [self.tshark, "-n", "-r", str(pcap), "-T", "fields"]
        for f in TSHARK_FIELDS:
            argv += ["-e", f]
        run = run_measured(argv, d / "stdout")
        if run.returncode != 0:
            raise BenchError(f"tshark failed on {pcap.name} (exit {run.returncode})", tool="tshark",
                             returncode=run.returncode, detail=run.stderr_tail[-800:])
        counts = count_tshark_fields(d / "stdout")
        shutil.rmtree(d, ignore_errors=True)
        return run, counts


def _throughput(tool: str, run: ToolRun, capture: CaptureSummary, reported: dict[str, float],
                counts: dict[str, int]) -> Throughput:
    wall = max(run.wall_s, 1e-9)
    return Throughput(tool, run.wall_s, run.cpu_s, run.peak_rss, capture.frame_bytes * 8 / wall / 1e6,
                      capture.packets / wall, reported, counts)


def _settings(args: argparse.Namespace) -> tuple[float, int, Path, int]:
    quick = bool(getattr(args, "quick", False))
    size = getattr(args, "size_mb", None) or (QUICK_SIZE_MB if quick else DEFAULT_SIZE_MB)
    flows = getattr(args, "flows", None) or (QUICK_FLOWS if quick else DEFAULT_FLOWS)
    workdir = Path(getattr(args, "workdir", None) or default_workdir()).expanduser()
    seed = getattr(args, "seed", None)
    if size <= 0 or flows < 2:
        raise BenchError("--size-mb must be positive and --flows at least 2")
    return float(size), int(flows), workdir, synth.DEFAULT_SEED if seed is None else int(seed)


def run_bench(args: argparse.Namespace, *, progress: Callable[[str], None] | None = None) -> BenchReport:
    """Generate or reuse the captures, run both tools, and collect the figures.

    `args` needs none of its attributes: size_mb, flows, workdir, quick, seed,
    utm (engine command), tshark (path; default from PATH) fall back to defaults.
    """
    say = progress or (lambda _msg: None)
    size, flows, workdir, seed = _settings(args)
    notes: list[str] = []

    say(f"capture: {size:g} MB of mixed traffic (seed {seed}) in {workdir}")
    pcap, capture, gen_s = ensure_capture(workdir, f"mixed-{size:g}mb-s{seed}",
                                          lambda p: synth.write_mixed(p, size_mb=size, seed=seed))
    say(f"capture: {flows:,} idle flows of each shape and the 1-flow baselines")
    idle_caps = {}
    for shape in synth.IDLE_SHAPES:
        idle_caps[shape] = tuple(
            ensure_capture(workdir, f"idle-{shape}-{n}-s{seed}",
                           functools.partial(synth.write_idle_flows, flows=n, seed=seed, shape=shape))[0]
            for n in (flows, 1))

    et_open, rule_files = _rule_rows_wanted(args, notes)
    tshark = getattr(args, "tshark", None) or shutil.which("tshark")
    if tshark is None:
        notes.append("tshark not found on PATH: only our engine was measured (install tshark to compare)")
    utm = utm_command(getattr(args, "utm", None))
    with tempfile.TemporaryDirectory(prefix="utm-bench-", dir=workdir) as scratch:
        runner = _Runner(utm, tshark, Path(scratch))
        say("utm inspect: mixed capture")
        run, events = runner.engine(pcap)
        reported = parse_engine_summary(run.stdout_tail)
        if "packets" in reported and int(reported["packets"]) != capture.packets:
            notes.append(f"engine reported {int(reported['packets']):,} packets; the capture holds {capture.packets:,}")
        ours = _throughput("utm inspect", run, capture, reported, events)
        rules = None
        if rule_files:
            none = rules_rows.no_rules_row(run.wall_s, run.cpu_s, run.peak_rss, reported.get("Mbit/s", 0.0))
            rules = rules_rows.measure_rules(utm, pcap, rule_files, str(et_open), Path(scratch), run_measured, say,
                                             none)
        theirs = None
        if tshark:
            say("tshark: mixed capture")
            trun, fields = runner.tshark_fields(pcap)
            theirs = _throughput("tshark", trun, capture, {}, fields)
        memory = []
        for shape, (idle, base) in idle_caps.items():
            say(f"utm inspect: idle flows ({shape})")
            memory.append(FlowMemory("utm inspect", flows, shape, runner.engine(idle)[0].peak_rss,
                                     runner.engine(base)[0].peak_rss))
            if tshark:
                say(f"tshark: idle flows ({shape})")
                memory.append(FlowMemory("tshark", flows, shape, runner.tshark_fields(idle)[0].peak_rss,
                                         runner.tshark_fields(base)[0].peak_rss))
    return BenchReport(str(pcap), capture, gen_s, ours, theirs, tuple(memory), tuple(notes), rules)


def _rule_rows_wanted(args: argparse.Namespace, notes: list[str]) -> tuple[Path, list[Path]]:
    """The ET Open folder and its rule files, or no files (with a note saying why the rows are skipped)."""
    given = getattr(args, "et_open", None)
    et_open = Path(given).expanduser() if given else rules_rows.default_et_open()
    wanted = getattr(args, "rules", None)
    if wanted is None:
        wanted = not getattr(args, "quick", False) or given is not None
    if not wanted:
        why = "--no-rules" if getattr(args, "rules", None) is False else "--quick (add --rules to measure them)"
        notes.append(f"rule rows skipped: {why}")
        return et_open, []
    files = rules_rows.rule_files(et_open)
    if not files:
        notes.append(f"rule rows skipped: no ET Open rules at {et_open} (point --et-open at a copy)")
    return et_open, files
