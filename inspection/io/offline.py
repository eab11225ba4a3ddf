"""Offline driver: captures in, EVE lines out, one flow table across all files."""
from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Protocol, Sequence, TextIO

from inspection.config import EngineConfig
from inspection.decode import supported_linktype
from inspection.engine import Engine
from inspection.errors import CaptureError
from inspection.io.pcap import read_frames
from inspection.output.eve import EveWriter

if TYPE_CHECKING:
    from inspection.detect.inspector import RuleInspector
    from inspection.policy.urlcat import UrlCategorizer
    from signatures.netspec import Variables

PROGRESS_MIN_BYTES = 20 << 20   # inputs smaller than this finish before a bar would help


class SkipRecord(Protocol):
    """A skipped rule as the parser or the detector records it; the summary groups by keyword."""

    @property
    def keyword(self) -> str: ...


@dataclass(slots=True)
class RunSummary:
    packets: int = 0
    bytes: int = 0
    flows: int = 0
    elapsed: float = 0.0
    events: dict[str, int] = field(default_factory=dict)
    anomalies: dict[str, int] = field(default_factory=dict)
    capture_errors: list[CaptureError] = field(default_factory=list)
    checksum_auto_disabled: bool = False
    bad_checksums: int = 0
    alerts: int = 0
    alerts_thresholded: int = 0   # matches that threshold/detection_filter kept from alerting
    rules_loaded: int = 0
    rules_skipped: dict[str, int] = field(default_factory=dict)   # keyword -> rules skipped for it
    rules_load_seconds: float = 0.0      # parse + prepare (-S), or read + verify + load (--bundle)
    rules_source: str = ""               # "rules" or "bundle"
    limits: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] | None = None   # URL category/app lookups (only with --categories/--apps)

    @property
    def mbit_per_s(self) -> float:
        return self.bytes * 8 / 1e6 / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def packets_per_s(self) -> float:
        return self.packets / self.elapsed if self.elapsed > 0 else 0.0


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, out: TextIO) -> None:
        self._total = max(total, 1)
        self._out = out
        self._on = total >= PROGRESS_MIN_BYTES and out.isatty()
        self._next = 0.0

    def update(self, done: int, packets: int) -> None:
        if not self._on:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.25
        frac = min(done / self._total, 1.0)
        bar = "#" * int(frac * 30)
        self._out.write(f"\r[{bar:<30}] {frac * 100:5.1f}%  {packets} packets")
        self._out.flush()

    def close(self) -> None:
        if self._on:
            self._out.write("\r" + " " * 60 + "\r")
            self._out.flush()


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def load_inspector(rule_files: list[Path], summary: RunSummary, body_limit: int,
                   cfg: EngineConfig | None = None) -> RuleInspector:
    """Rules for `-S`: parse (unsupported ones are skipped and counted), prepare the detector.

    Imported here, not at module level: a run without rules should not pay
    for Hyperscan and the rule parser at start-up."""
    from inspection.detect.engine import Detector
    from inspection.detect.inspector import RuleInspector
    from signatures.parser import load_rules

    started = time.perf_counter()
    loaded = load_rules(rule_files, require_msg=False,   # Suricata accepts rules without msg
                        variables=rule_variables(cfg) if cfg is not None else None)
    detector = Detector(loaded.rules)
    _count_rules(summary, loaded.rules, loaded.skipped, detector.skipped)
    summary.rules_load_seconds = time.perf_counter() - started
    summary.rules_source = "rules"
    return RuleInspector(detector, body_limit=body_limit)


def rule_variables(cfg: EngineConfig) -> "Variables | None":
    """Suricata's default rule variables with the config file's ``vars`` over them (None: no change).

    Raises `VariableError` (a `RuleFileError`) for a value that is not an address or port spec."""
    if not cfg.address_vars and not cfg.port_vars:
        return None
    from signatures.netspec import Variables

    base = Variables.default()
    addrs, ports = dict(base.addresses), dict(base.ports)
    for name, value in cfg.address_vars:
        ports.pop(name, None)
        addrs[name] = value
    for name, value in cfg.port_vars:
        addrs.pop(name, None)
        ports[name] = value
    return Variables(tuple(addrs.items()), tuple(ports.items()))


def load_bundle_inspector(bundle: Path, summary: RunSummary, body_limit: int) -> RuleInspector:
    """Rules for `--bundle`: read and verify a compiled bundle (`utm rules compile`).

    Raises `BundleError` (refused: unreadable, wrong magic, other version,
    corrupted); the summary counts the same loaded and skipped rules as `-S`
    on the files it was compiled from."""
    from inspection.detect.bundle import decode_bundle
    from inspection.detect.errors import BundleError
    from inspection.detect.inspector import RuleInspector

    started = time.perf_counter()
    try:
        data = Path(bundle).read_bytes()
    except OSError as e:
        raise BundleError(str(bundle), f"cannot read: {e.strerror or e}") from None
    loaded = decode_bundle(data, str(bundle))
    c = loaded.content
    _count_rules(summary, c.rules, c.parse_skipped, c.detect_skipped)
    summary.rules_load_seconds = time.perf_counter() - started
    summary.rules_source = "bundle"
    return RuleInspector(loaded.detector, body_limit=body_limit)


def _count_rules(summary: RunSummary, rules: Sequence[object], parse_skipped: Iterable[SkipRecord],
                 detect_skipped: Sequence[SkipRecord]) -> None:
    for s in (*parse_skipped, *detect_skipped):
        summary.rules_skipped[s.keyword] = summary.rules_skipped.get(s.keyword, 0) + 1
    summary.rules_loaded = len(rules) - len(detect_skipped)


def inspect_files(paths: list[Path], cfg: EngineConfig, logdir: Path,
                  progress_out: TextIO | None = None,
                  on_engine: Callable[[Engine], None] | None = None,
                  rule_files: list[Path] | None = None, bundle: Path | None = None,
                  urlcat: "UrlCategorizer | None" = None) -> RunSummary:
    """Inspect captures in order and write `logdir/eve.json`.

    Rules come from `rule_files` (parsed now) or a compiled `bundle`, not both.
    `urlcat` (URL categories and app types) is looked up once per HTTP/TLS/DNS transaction.

    A corrupt file stops at the damage: its good frames count, the error is
    recorded in the summary, and the next file is read.
    """
    logdir.mkdir(parents=True, exist_ok=True)
    summary = RunSummary()
    if rule_files and bundle is not None:
        raise ValueError("rule files and a bundle are mutually exclusive")
    inspector = None
    if rule_files:
        inspector = load_inspector(rule_files, summary, cfg.http_body_limit, cfg)
    elif bundle is not None:
        inspector = load_bundle_inspector(bundle, summary, cfg.http_body_limit)
    if inspector is not None:
        # The rules (hundreds of thousands of objects for ET Open) live as long as the run: out of
        # the cyclic GC's reach, or every full collection walks them all again (about half a second
        # each, several times per 200 MB of traffic). Undone when the run ends.
        gc.freeze()
    sizes = [_size(p) for p in paths]
    progress = Progress(sum(sizes), progress_out or sys.stderr)
    started = time.perf_counter()
    with open(logdir / "eve.json", "wb", buffering=1 << 20) as fh:
        eve = EveWriter.for_config(fh, cfg)
        engine = Engine(cfg, eve.write, inspector, urlcat)
        if on_engine is not None:
            on_engine(engine)
        base = 0
        process = engine.process
        for path, size in zip(paths, sizes):
            try:
                for n, frame in enumerate(read_frames(path)):
                    if n == 0 and not supported_linktype(frame.linktype):
                        raise CaptureError(str(path), frame.offset, f"unsupported link type {frame.linktype}")
                    process(frame.linktype, frame.data, frame.ts, frame.wire_len)
                    if not n & 0x3FF:
                        progress.update(base + frame.offset, engine.stats.packets)
            except CaptureError as e:
                summary.capture_errors.append(e)
            base += size
        engine.finish()
        progress.close()
    summary.elapsed = time.perf_counter() - started
    if inspector is not None:
        gc.unfreeze()
    st = engine.stats
    summary.packets, summary.bytes = st.packets, st.bytes
    summary.flows = engine.flows.counters.created
    summary.events = dict(eve.counts)
    summary.anomalies = dict(eve.anomalies)
    summary.checksum_auto_disabled = st.checksum_auto_disabled
    summary.bad_checksums = st.bad_checksum
    summary.alerts = st.alerts
    if urlcat is not None:
        uc = urlcat.counters
        summary.categories = {"lookups": uc.lookups, "categorised": uc.categorised, "blocked": uc.blocked,
                              "apps": uc.apps, **{f"category.{k}": v for k, v in sorted(uc.by_category.items())}}
    sc, fc, dc = engine.stream_counters, engine.flows.counters, engine.defrag.counters
    summary.limits = {
        "flow.memcap_prunes": fc.memcap_prunes,
        "flow.emergency_entered": fc.emergency_entered,
        "flow.timeouts": fc.timeouts,
        "stream.depth_reached": sc.depth_reached,
        "stream.memcap_drops": sc.memcap_drops,
        "stream.gaps": sc.gaps,
        "defrag.memcap_drops": getattr(dc, "memcap_drops", 0),
        "defrag.timeouts": getattr(dc, "timeouts", 0),
        "files.size_limit": engine.files.counters.size_limit,
        "files.announced_large": engine.files.counters.announced_large,
        "files.open_limit": engine.files.counters.open_limit,
        "files.gaps": engine.files.counters.gaps,
        "files.scan_memcap": getattr(engine.files.scanner, "memcap_files", 0),
        "app_layer.memcap_sheds": engine.app_memory.sheds,
    }
    disarmer = engine.files.disarmer
    if disarmer is not None:   # --sanitize-dir: the copy folder's limits (kept suspicious when hit)
        dac = disarmer.counters
        summary.limits.update({"sanitise.files_limit": dac.files_limit, "sanitise.bytes_limit": dac.bytes_limit,
                               "sanitise.pending_limit": dac.pending_limit, "sanitise.store_errors": dac.store_errors})
    if inspector is not None:
        tc = inspector.thresholds.counters
        summary.alerts_thresholded = tc.suppressed
        summary.limits["detect.thresholds_untracked"] = tc.untracked   # table full: alerted untracked
    return summary
