"""The benchmark's rule rows: the same capture with no rules, with ET Open parsed (-S), and from a bundle.

What the rows answer: how much of the no-rules speed the signature engine
keeps with a full public ruleset (goal: at least half), what loading that
ruleset costs (parse + compile with ``-S``; read + verify + load from a
bundle), and how big and slow to build the bundle is.

Speed is the engine's own figure (captured bits / time spent inspecting,
from its summary), so rule loading and interpreter start-up do not blur the
matching cost; wall time, CPU time and peak RSS are the child's own, measured
by `run.run_measured`. Each row is one `utm` child process.

On a shared machine the engine's Mbit/s is wall-clock and moves with the
load; the CPU ratio (no-rules CPU seconds over the row's CPU seconds less its
rule loading) is the steadier figure, so both are printed and the goal line
names both.
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from firmware.bench.run import ToolRun

Measure = Callable[[list[str], Path], "ToolRun"]


def default_et_open() -> Path:
    """``../shared/corpus/et-open`` next to the project (this file is PROJECT/firmware/bench/)."""
    return Path(__file__).resolve().parents[3] / "shared" / "corpus" / "et-open"


def rule_files(where: Path) -> list[Path]:
    """The ``*.rules`` of an ET Open folder (its ``rules/`` subfolder if there is one), or one file."""
    if where.is_file():
        return [where]
    folder = where / "rules" if (where / "rules").is_dir() else where
    return sorted(folder.glob("*.rules")) if folder.is_dir() else []


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One `utm inspect` run: `mbit_s` is the engine's figure, `load_s` its rule loading time."""

    label: str
    wall_s: float
    cpu_s: float
    peak_rss: int
    mbit_s: float
    load_s: float | None
    alerts: int | None
    rules_line: str = ""


@dataclass(frozen=True, slots=True)
class CompileRow:
    """`utm rules compile` on the same rules: wall time, its own parse/compile split, size, memory."""

    wall_s: float
    peak_rss: int
    parse_s: float | None
    compile_s: float | None
    bundle_bytes: int


@dataclass(frozen=True, slots=True)
class RulesBench:
    source: str
    files: int
    none: RuleRow
    parsed: RuleRow
    compiled: CompileRow
    bundled: RuleRow

    def ratio(self, row: RuleRow) -> float | None:
        return row.mbit_s / self.none.mbit_s if self.none.mbit_s > 0 else None

    def cpu_ratio(self, row: RuleRow) -> float | None:
        """No-rules CPU time over the row's CPU time spent past loading its rules."""
        spent = row.cpu_s - (row.load_s or 0.0)
        return self.none.cpu_s / spent if spent > 0 and self.none.cpu_s > 0 else None

    def to_dict(self) -> dict[str, object]:
        rows = {}
        for row in (self.none, self.parsed, self.bundled):
            rows[row.label] = {**asdict(row), "ratio_to_no_rules": self.ratio(row),
                               "cpu_ratio_to_no_rules": self.cpu_ratio(row)}
        return {"source": self.source, "files": self.files, "rows": rows, "compile": asdict(self.compiled)}

    def format_lines(self) -> list[str]:
        lines = ["", f"rules: ET Open from {self.source} ({self.files} files); Mbit/s is the engine's "
                     "(inspection only), ratio to the no-rules row",
                 f"{'':16}{'wall s':>8}{'cpu s':>8}{'Mbit/s':>9}{'ratio':>8}{'cpu ratio':>10}{'rules load s':>14}"
                 f"{'peak RSS MB':>13}{'alerts':>9}"]
        for row in (self.none, self.parsed, self.bundled):
            ratio, cpu = self.ratio(row), self.cpu_ratio(row)
            load = "-" if row.load_s is None else f"{row.load_s:.2f}"
            lines.append(f"{row.label:16}{row.wall_s:8.2f}{row.cpu_s:8.2f}{row.mbit_s:9.1f}"
                         f"{'-' if ratio is None else f'{ratio:.2f}x':>8}{'-' if cpu is None else f'{cpu:.2f}x':>10}"
                         f"{load:>14}{row.peak_rss / 2**20:13.1f}"
                         f"{'-' if row.alerts is None else f'{row.alerts:,}':>9}")
        c = self.compiled
        split = ""
        if c.parse_s is not None and c.compile_s is not None:
            split = f" (parse {c.parse_s:.2f} s, compile {c.compile_s:.2f} s)"
        lines.append(f"compile         utm rules compile: {c.wall_s:.2f} s wall{split}, peak RSS "
                     f"{c.peak_rss / 2**20:.1f} MB, bundle {c.bundle_bytes / 1e6:.1f} MB")
        if self.parsed.rules_line:
            lines.append(f"                {self.parsed.rules_line}")
        ratio, cpu = self.ratio(self.parsed), self.cpu_ratio(self.parsed)
        if ratio is not None:
            verdict = "met" if ratio >= 0.5 else "not met"
            by_cpu = "" if cpu is None else f"; by CPU time {'met' if cpu >= 0.5 else 'not met'} ({cpu * 100:.1f}%)"
            lines.append(f"goal            ET Open at >= 50% of the no-rules speed: {verdict} ({ratio * 100:.1f}%)"
                         + by_cpu)
        if self.parsed.alerts != self.bundled.alerts:
            lines.append(f"warning         -S raised {self.parsed.alerts} alerts, the bundle {self.bundled.alerts}")
        return lines


def summary_fields(text: str) -> tuple[float, float | None, int | None, str]:
    """(Mbit/s, rules load s, alerts, the ``rules:`` line) from `utm inspect`'s summary."""
    mbit, load, alerts, line = 0.0, None, None, ""
    for raw in text.splitlines():
        key, _, value = raw.strip().partition(":")
        value = value.strip()
        try:
            if key == "Mbit/s":
                mbit = float(value)
            elif key == "rules load":
                load = float(value.split()[0])
            elif key == "rules":
                line = raw.strip()
                alerts = int(value.rpartition("alerts:")[2].strip())
        except (ValueError, IndexError):
            continue
    return mbit, load, alerts, line


def compile_fields(text: str) -> tuple[float | None, float | None]:
    """(parse s, compile s) from `utm rules compile`'s report."""
    found: dict[str, float] = {}
    for raw in text.splitlines():
        key, _, value = raw.strip().partition(":")
        if key in ("parse", "compile"):
            try:
                found[key] = float(value.split()[0])
            except (ValueError, IndexError):
                continue
    return found.get("parse"), found.get("compile")


def no_rules_row(wall_s: float, cpu_s: float, peak_rss: int, mbit_s: float) -> RuleRow:
    """The benchmark's main `utm inspect` run, as the baseline row."""
    return RuleRow("no rules", wall_s, cpu_s, peak_rss, mbit_s, None, None)


def measure_rules(utm: str, pcap: Path, files: list[Path], source: str, scratch: Path, measure: Measure,
                  say: Callable[[str], None], none: RuleRow) -> RulesBench:
    """Run `-S`, compile and `--bundle` as child processes; raises `run.BenchError` when one fails."""
    from firmware.bench.run import BenchError

    def inspect(label: str, extra: list[str]) -> RuleRow:
        d = scratch / label.replace(" ", "-")
        (d / "log").mkdir(parents=True)
        say(f"utm inspect: mixed capture, {label}")
        run = measure([utm, "inspect", "-r", str(pcap), "-l", str(d / "log"), "-k", "none", *extra], d / "stdout")
        text = (d / "stdout").read_text(errors="replace")
        shutil.rmtree(d, ignore_errors=True)
        if run.returncode != 0:
            raise BenchError(f"utm inspect ({label}) failed (exit {run.returncode})", tool="utm",
                             returncode=run.returncode, detail=(run.stderr_tail or run.stdout_tail)[-800:])
        mbit, load, alerts, line = summary_fields(text)
        return RuleRow(label, run.wall_s, run.cpu_s, run.peak_rss, mbit, load, alerts, line)

    dash_s = [arg for f in files for arg in ("-S", str(f))]
    parsed = inspect("ET Open -S", dash_s)
    bundle = scratch / "et-open.bundle"
    say(f"utm rules compile: {len(files)} files -> {bundle.name}")
    out = scratch / "compile.stdout"
    crun = measure([utm, "rules", "compile", *dash_s, "-o", str(bundle)], out)
    if crun.returncode != 0:
        raise BenchError(f"utm rules compile failed (exit {crun.returncode})", tool="utm",
                         returncode=crun.returncode, detail=crun.stderr_tail[-800:])
    parse_s, compile_s = compile_fields(out.read_text(errors="replace"))
    compiled = CompileRow(crun.wall_s, crun.peak_rss, parse_s, compile_s, bundle.stat().st_size)
    bundled = inspect("ET Open bundle", ["--bundle", str(bundle)])
    bundle.unlink(missing_ok=True)
    return RulesBench(source, len(files), none, parsed, compiled, bundled)
