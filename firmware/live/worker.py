"""One live worker process: bind a queue, inspect, give verdicts, until told to stop.

Started by the supervisor (firmware.live.supervisor) in a forked process. The
heartbeat is a shared double the loop sets to `time.monotonic()` at least every
half second; the supervisor kills a worker whose heartbeat stops. Rules are
loaded before the queue is bound: while a worker starts, its queue has no
listener and the kernel bypasses it (``--queue-bypass``), so a slow start
never blackholes traffic.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspection.config import ChecksumMode, EngineConfig
from inspection.engine import Engine
from inspection.io.live import AfPacketSender, LiveWorker
from inspection.io.nfqueue import DEFAULT_FLAGS, Flag, NfqError, NfQueue
from inspection.io.offline import RunSummary, load_bundle_inspector, load_inspector
from inspection.output.eve import EveWriter
from inspection.policy.verdict import FailMode, FlowPolicy, PolicyConfig

if TYPE_CHECKING:
    from inspection.detect.inspector import RuleInspector

HEARTBEAT_EVERY = 0.5     # seconds between heartbeats at most (the receive timeout)
FLUSH_EVERY = 1.0         # EVE lines reach the disk at least this often


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    queue: int
    logdir: Path
    rule_files: tuple[Path, ...] = ()
    bundle: Path | None = None
    engine: EngineConfig = EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True)
    policy: PolicyConfig = PolicyConfig()
    stats_every: float = 30.0
    max_batch: int = 64
    resets: bool = True
    categories: Path | None = None        # URL category database (`utm categories compile`)
    apps: str | None = None               # app data ("" for the default), None: no app types
    hashes: tuple[str, ...] = ()          # SHA-256 lists / .hdb (as `utm scan --hashes`)
    yara: tuple[str, ...] = ()            # YARA files or folders
    scan_bundle: str | None = None        # `utm scan --write-bundle` output


@dataclass(frozen=True, slots=True)
class Judges:
    """Everything a worker judges traffic with; loaded together, swapped together on reload."""

    inspector: "RuleInspector | None"
    urlcat: Any = None          # UrlCategorizer | None
    scanner: Any = None         # StreamScanner | None


def load_judges(spec: WorkerSpec) -> Judges:
    """Rules, URL categories and the file scanner for the spec (raises on a bad source:
    RuleFileError, BundleError, CategoryError, SourceError)."""
    inspector = load_rules(spec)
    urlcat = scanner = None
    if spec.categories is not None or spec.apps is not None:
        from inspection.policy.urlcat import UrlCategorizer
        from signatures.apps import load_apps
        from signatures.categories.lookup import CategoryDB
        db = CategoryDB.load(spec.categories) if spec.categories is not None else None
        apps = load_apps(Path(spec.apps) if spec.apps else None) if spec.apps is not None else None
        urlcat = UrlCategorizer(db, apps)
    if spec.hashes or spec.yara or spec.scan_bundle:
        from firmware.cli.scan import load_sources
        from inspection.files.scanner import ContentScanner
        from inspection.files.scanner_stream import StreamScanner
        hashes, matchers, _ = load_sources(list(spec.hashes), list(spec.yara), bundle=spec.scan_bundle)
        scanner = StreamScanner(ContentScanner(hashes, matchers))
    return Judges(inspector, urlcat, scanner)


def load_rules(spec: WorkerSpec) -> "RuleInspector | None":
    """The inspector for the spec's rules (raises RuleFileError / BundleError)."""
    summary = RunSummary()
    if spec.rule_files:
        return load_inspector(list(spec.rule_files), summary, spec.engine.http_body_limit)
    if spec.bundle is not None:
        return load_bundle_inspector(spec.bundle, summary, spec.engine.http_body_limit)
    return None


class _Reloader:
    """Builds a new inspector in a thread so the packet loop (and the heartbeat) keep going."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._thread: threading.Thread | None = None
        self._result: tuple[bool, Any] | None = None

    def start(self) -> None:
        if self._thread is not None:
            return   # one reload at a time; a second SIGHUP during one is folded into it
        self._result = None
        self._thread = threading.Thread(target=self._build, name="reload", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        try:
            self._result = (True, load_judges(self.spec))
        except Exception as e:   # noqa: BLE001 - a bad rule file must not stop the data path
            self._result = (False, e)

    def poll(self) -> tuple[bool, Any] | None:
        if self._thread is None or self._thread.is_alive():
            return None
        self._thread = None
        return self._result


def run_worker(spec: WorkerSpec, heartbeat: Any, restarts: int) -> int:
    """The worker's main loop (in its own process). Returns the exit status."""
    stop = threading.Event()
    reload_wanted = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)         # the supervisor decides
    signal.signal(signal.SIGHUP, lambda *_: reload_wanted.set())
    try:
        judges = load_judges(spec)
    except Exception as e:   # noqa: BLE001 - reported, the supervisor counts the exit
        print(f"utm run: worker {spec.queue}: rules: {e}", file=sys.stderr)
        return 3
    flags = DEFAULT_FLAGS if spec.policy.fail is FailMode.OPEN else DEFAULT_FLAGS & ~Flag.FAIL_OPEN
    try:
        queue = NfQueue(spec.queue, flags=flags)
    except NfqError as e:
        print(f"utm run: worker {spec.queue}: {e}", file=sys.stderr)
        return 4
    heartbeat.value = time.monotonic()   # bound: from now on a silent worker blackholes its queue
    spec.logdir.mkdir(parents=True, exist_ok=True)
    sender = AfPacketSender() if spec.resets else None
    with open(spec.logdir / f"eve.q{spec.queue}.json", "ab", buffering=1 << 16) as fh:
        eve = EveWriter(fh, log_http_headers=spec.engine.http_log_headers, log_packet=spec.engine.alert_packet,
                        log_payload=spec.engine.alert_payload)
        engine = Engine(spec.engine, eve.write, judges.inspector, judges.urlcat)
        if judges.scanner is not None:
            engine.files.scanner = judges.scanner
        worker = LiveWorker(queue, engine, FlowPolicy(spec.policy), sender, eve.write, max_batch=spec.max_batch)
        reloader = _Reloader(spec)
        now = time.monotonic()
        next_stats, next_flush = now + spec.stats_every, now + FLUSH_EVERY
        try:
            while not stop.is_set():
                worker.run_once(HEARTBEAT_EVERY)
                now = time.monotonic()
                heartbeat.value = now
                if reload_wanted.is_set():
                    reload_wanted.clear()
                    reloader.start()
                done = reloader.poll()
                if done is not None:
                    _finish_reload(worker, spec, done)
                if now >= next_stats:
                    next_stats = now + spec.stats_every
                    eve.write(worker.stats_event(restarts, spec.queue))
                if now >= next_flush:
                    next_flush = now + FLUSH_EVERY
                    fh.flush()
        finally:
            queue.close()   # unbound first: the kernel bypasses while we write the last events
            engine.finish()
            eve.write(worker.stats_event(restarts, spec.queue))
            if sender is not None:
                sender.close()
    return 0


def _finish_reload(worker: LiveWorker, spec: WorkerSpec, done: tuple[bool, Any]) -> None:
    ok, value = done
    if ok:
        worker.engine.urlcat = value.urlcat
        if value.scanner is not None:
            worker.engine.files.scanner = value.scanner   # files opened from now on
        worker.swap_inspector(value.inspector)
        print(f"utm run: worker {spec.queue}: rules reloaded", file=sys.stderr)
    else:
        worker.counters.reload_errors += 1
        print(f"utm run: worker {spec.queue}: reload failed, old rules kept: {value}", file=sys.stderr)


def with_queue(spec: WorkerSpec, queue: int) -> WorkerSpec:
    return replace(spec, queue=queue)

