"""One live worker process: bind a queue, inspect, give verdicts, until told to stop.

Started by the supervisor (firmware.live.supervisor) in a forked process. The
heartbeat is a shared double the loop sets to `time.monotonic()` at least every
half second; the supervisor kills a worker whose heartbeat stops. Rules are
loaded before the queue is bound: while a worker starts, its queue has no
listener and the kernel bypasses it (``--queue-bypass``), so a slow start
never blackholes traffic.
"""
from __future__ import annotations

import gc
import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from inspection.config import ChecksumMode, EngineConfig
from inspection.engine import Engine
from inspection.io.digest_thread import ThreadDigests
from inspection.io.live import LiveWorker
from inspection.io.live_stats import LiveStats
from inspection.io.senders import AfPacketSender
from inspection.io.nfqueue import DEFAULT_FLAGS, Flag, NfqError, NfQueue
from inspection.files.scan import NoScanner
from inspection.output.eve import EveWriter
from inspection.policy.verdict import FailMode, FlowPolicy, PolicyConfig

from firmware.base.atomic import write_atomic
from firmware.live.bypass import BypassMeter, IptablesRuleCounter, MeterReader, RuleCounter
from firmware.live.sources import Judges, Loaded, discard, load_all, reloaded_engine, restart_needed, unpack_dir

if TYPE_CHECKING:
    from inspection.engine import EngineEvent

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
    definitions: Path | None = None       # signed package, opened afresh at each (re)load
    trusted_keys: tuple[str, ...] = ()    # PEM files the package must be signed with
    net_config: Path | None = None        # netconfig file: modes and depth re-read at each (re)load
    cli_detect_only: tuple[str, ...] = () # --detect-only classes given on the command line
    cli_depth: int | None = None          # --depth given on the command line (wins over the file)
    unpack_root: Path | None = None       # private folder of the run: qN/ holds queue N's unpacked packages
    # with --net-config: the chain of netconfig's NFQUEUE rule and the queue range; the first queue's
    # worker measures what the kernel passed without queueing (firmware.live.bypass)
    bypass_chain: str | None = None
    queue_range: tuple[int, int] | None = None
    config_file: Path | None = None        # `-c FILE` (Suricata YAML): re-read at each (re)load, `sets` over it
    sets: tuple[str, ...] = ()             # --set KEY=VALUE as given
    announce: bool = False                 # started by a reload (a new queue): record the outcome for --wait
    # --fail / --queue(s) given on the command line beside --net-config: a file that moves them is refused
    cli_fail: FailMode | None = None
    cli_queues: tuple[int, int] | None = None


class _Reloader:
    """Builds new judges (and policy) in a thread so the packet loop (and the heartbeat) keep going."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._thread: threading.Thread | None = None
        self._result: tuple[bool, Any] | None = None
        self.started_at = 0.0       # wall clock: `utm reload --wait` matches outcomes to its request

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            return   # one reload at a time (the loop starts the next one when this one is done)
        # no cyclic collection while hundreds of thousands of rule objects are built beside the
        # loop: it would scan them with the GIL held (see settle_heap); on again after the swap
        gc.disable()
        self.started_at = time.time()
        self._result = None
        self._thread = threading.Thread(target=self._build, name="reload", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        try:
            self._result = (True, load_all(self.spec))
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
    stats_wanted = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: stats_wanted.set())     # `utm stats`
    unpack_dir(spec, fresh=True)
    started = time.time()
    fell_back: Exception | None = None
    try:
        live = load_all(spec, starting=True)
    except Exception as e:   # noqa: BLE001 - reported, the supervisor counts the exit
        fallback = _fall_back(spec, e)
        if fallback is None:
            print(f"utm run: worker {spec.queue}: rules: {e}", file=sys.stderr)
            if spec.announce:
                record_reload(spec, started, False, Loaded(Judges(None), spec.policy), e)
            return 3
        live, fell_back = fallback, e
    settle_heap()
    if spec.announce:   # a queue this reload added: its outcome for `utm reload --wait`
        record_reload(spec, started, fell_back is None, live, fell_back)
    elif spec.definitions is not None:
        record_reload(spec, 0.0, True, live, None)    # what this queue runs with (started_at 0: not a reload)
    try:
        return _serve(spec, live, heartbeat, restarts, stop, reload_wanted, stats_wanted)
    finally:
        discard(live)


def _serve(spec: WorkerSpec, first: Loaded, heartbeat: Any, restarts: int, stop: threading.Event,
           reload_wanted: threading.Event, stats_wanted: threading.Event | None = None) -> int:
    try:
        queue = NfQueue(spec.queue, flags=queue_flags(first.policy.fail))   # the network config's, as it is now
    except NfqError as e:
        print(f"utm run: worker {spec.queue}: {e}", file=sys.stderr)
        return 4
    heartbeat.value = time.monotonic()   # bound: from now on a silent worker blackholes its queue
    spec.logdir.mkdir(parents=True, exist_ok=True)
    sender = AfPacketSender() if spec.resets else None
    live = first
    with open_log(spec) as fh:
        cfg = live.engine if live.engine is not None else spec.engine   # the -c file as it is at this start
        eve = EveWriter.for_config(fh, cfg)
        judges = live.judges
        engine = Engine(cfg, eve.write, judges.inspector, judges.urlcat)
        if judges.scanner is not None:
            engine.files.scanner = judges.scanner
        digests = engine.files.digests = ThreadDigests()   # a queued file is hashed on the other core
        worker = LiveWorker(queue, engine, FlowPolicy(live.policy), sender, eve.write, max_batch=spec.max_batch)
        worker.exclusions.exclusions = live.exclusions
        reloader = _Reloader(spec)
        meter = bypass_meter(replace(spec, queue_range=live.queue_range or spec.queue_range))
        now = time.monotonic()
        next_stats, next_flush = now + spec.stats_every, now + FLUSH_EVERY
        told_lost = 0
        try:
            while not stop.is_set():
                worker.run_once(HEARTBEAT_EVERY)
                now = time.monotonic()
                heartbeat.value = now
                if reload_wanted.is_set() and not reloader.busy:
                    # a SIGHUP during a reload waits for it: the package may have changed since it began
                    reload_wanted.clear()
                    reloader.start()
                done = reloader.poll()
                if done is not None:
                    old = live
                    live = _finish_reload(worker, spec, done, live, eve)
                    settle_heap(collect=False)
                    if live is not old:
                        discard(old)
                        if live.policy.fail is not old.policy.fail:
                            try:
                                queue = rebind(worker, live.policy.fail)
                            except NfqError as e:   # unbound: the supervisor starts it again, with the new mode
                                print(f"utm run: worker {spec.queue}: rebinding for fail mode "
                                      f"{live.policy.fail.value}: {e}", file=sys.stderr)
                                return 4
                        if live.queue_range != old.queue_range:   # the first queue's worker measures the bypass
                            meter = bypass_meter(replace(spec, queue_range=live.queue_range))
                    record_reload(spec, reloader.started_at, live is not old, live, done[1])
                asked = stats_wanted is not None and stats_wanted.is_set()
                if now >= next_stats or asked:
                    if asked:
                        stats_wanted.clear()     # type: ignore[union-attr]
                        next_flush = now          # on its way to the file now
                    next_stats = now + spec.stats_every
                    if meter is not None:
                        meter.poll()        # read beside the loop: this event carries the last reading
                    worker.log(stats_event(worker, restarts, spec.queue, live, meter.meter if meter else None))
                    told_lost = tell_lost_events(spec, worker, told_lost)
                if now >= next_flush:
                    next_flush = now + FLUSH_EVERY
                    flush_log(fh, worker)
                    gc.freeze()     # see settle_heap: the flows of the last second leave the collector's scans
        finally:
            queue.close()   # unbound first: the kernel bypasses while we write the last events
            engine.finish()
            worker.log(stats_event(worker, restarts, spec.queue, live, meter.meter if meter else None))
            flush_log(fh, worker)
            tell_lost_events(spec, worker, told_lost)
            digests.close()
            if sender is not None:
                sender.close()
            if live is not first:
                discard(live)
    return 0


def settle_heap(collect: bool = True) -> None:
    """Move what is loaded now (the rules above all) out of the cyclic collector's sight.

    With ET Open loaded the worker holds over half a million objects, and a full collection
    scans them all: about 220 ms with the GIL held, in which the queue fills (a fail-open queue
    then passes packets uninspected) and every packet waits. Frozen, they are never scanned
    (refcounting still frees them: a discarded ruleset leaves no cycles, nor do ended flows;
    measured on ET Open and on HTTP flows). `collect`: sweep first (at start, before binding;
    not at a reload, where it would scan the new rules in the loop).

    The loop freezes again every second (`gc.freeze` is a list splice): at 1,000 new connections
    a second the flows a closed-flow timeout keeps (60 s) are tens of thousands of objects, and
    a full collection of them paused the worker 90 ms after 20,000 connections (bench-small's
    worker with a gc callback), 4.5 ms with the freeze. What the data path makes per flow holds
    no reference cycles (a collection after 5,000 connections found only the harness's own), so
    refcounting frees flows that end frozen; young cyclic garbage is still collected."""
    if collect:
        gc.collect()
    gc.freeze()
    gc.enable()


def queue_flags(fail: FailMode) -> Flag:
    """The queue's flags for a fail mode: FAIL_OPEN is what the kernel does with a full queue."""
    return DEFAULT_FLAGS if fail is FailMode.OPEN else DEFAULT_FLAGS & ~Flag.FAIL_OPEN


def rebind(worker: LiveWorker, fail: FailMode, bind: Any = NfQueue) -> Any:
    """The worker's queue with the flags of a new fail mode; the rules, flows and counters stay.
    First the bound queue's flag is switched in place (no gap). If the kernel refuses that, the
    queue is bound again: unbound for the time of two netlink round trips (about a millisecond):
    what arrives then is passed by ``--queue-bypass`` (fail open) or dropped (fail closed, no
    bypass in the ruleset), and the packets already handed to the socket but not yet read are
    dropped by the kernel (nfqnl_flush on unbind; TCP sends them again). Raises NfqError if the
    new bind fails."""
    old = worker.queue
    set_in_place = getattr(old, "set_fail_open", None)
    if set_in_place is not None:
        try:
            set_in_place(fail is FailMode.OPEN)
        except NfqError as e:
            print(f"utm run: worker {old.queue}: fail mode {fail.value} in place: {e}; binding again",
                  file=sys.stderr)
        else:
            print(f"utm run: worker {old.queue}: fail mode {fail.value} set on the bound queue", file=sys.stderr)
            return old
    t0 = time.perf_counter()
    old.close()
    new = bind(old.queue, flags=queue_flags(fail))
    unbound = time.perf_counter() - t0
    new.counters = old.counters       # received, verdicts... count since the worker started
    worker.queue = new
    print(f"utm run: worker {old.queue}: queue bound again for fail mode {fail.value} "
          f"(unbound {unbound * 1000:.1f} ms)", file=sys.stderr)
    return new


@contextmanager
def open_log(spec: WorkerSpec) -> Iterator[BinaryIO]:
    """The queue's EVE file. Closing it on a full disk loses the lines still buffered: said, not
    raised, as the worker is stopping anyway."""
    fh = open(spec.logdir / f"eve.q{spec.queue}.json", "ab", buffering=1 << 16)
    try:
        yield fh
    finally:
        try:
            fh.close()
        except OSError as e:
            print(f"utm run: worker {spec.queue}: {spec.logdir}: {e.strerror}: "
                  "the last buffered EVE events are lost", file=sys.stderr)


def flush_log(fh: BinaryIO, worker: LiveWorker) -> None:
    """Push the buffered EVE lines to the file. A full disk keeps them buffered (written once
    there is room) and is noted as the log's error; the loop goes on."""
    try:
        fh.flush()
    except OSError as e:
        worker.counters.log_error = e.strerror or str(e)


def tell_lost_events(spec: WorkerSpec, worker: LiveWorker, told: int) -> int:
    """Say on stderr (the journal), at most once a stats period, how many events the EVE log lost
    since the last time; returns the count told so far."""
    c = worker.counters
    if c.events_lost > told:
        print(f"utm run: worker {spec.queue}: {spec.logdir}: {c.log_error}: "
              f"{c.events_lost - told} EVE event(s) not written (verdicts unaffected)", file=sys.stderr)
    return c.events_lost


def stats_event(worker: LiveWorker, restarts: int, queue: int, live: Loaded,
                meter: BypassMeter | None = None) -> "EngineEvent":
    """The worker's stats event with the definitions version in use (`live.definitions_version`,
    null without a package) so an operator sees which package is live, and, from the worker that
    measures it, `kernel_bypassed`: packets of the whole box passed without reaching a queue."""
    ev = worker.stats_event(restarts, queue)
    tree = ev.body.tree()           # type: ignore[attr-defined]
    branch = {**tree.pop("live"), "definitions_version": live.definitions_version}
    if meter is not None:
        branch["kernel_bypassed"] = meter.bypassed
    return replace(ev, body=LiveStats(tree, branch))


def bypass_meter(spec: WorkerSpec, counter: RuleCounter | None = None) -> MeterReader | None:
    """The first queue's worker measures the box's bypass (from its bind on); the others do not."""
    if spec.bypass_chain is None or spec.queue_range is None or spec.queue != spec.queue_range[0]:
        return None
    reader = MeterReader(BypassMeter(spec.queue_range),
                         counter if counter is not None else IptablesRuleCounter(spec.bypass_chain))
    reader.poll()        # the baseline
    return reader


RELOAD_RECORD = "reload.q{}.json"


def _fall_back(spec: WorkerSpec, error: Exception) -> Loaded | None:
    """A restarted worker whose package path now names a package that does not load (switched but
    refused) takes the package this queue last ran with, verified again; None if there is none."""
    if spec.definitions is None:
        return None
    try:
        rec = json.loads((spec.logdir / RELOAD_RECORD.format(spec.queue)).read_bytes())
        last = Path(rec["package"]) if isinstance(rec, dict) and rec.get("package") else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if last is None or last == Path(spec.definitions).resolve():
        return None
    try:
        live = load_all(replace(spec, definitions=last))
    except Exception:   # noqa: BLE001 - the first error is the one reported
        return None
    print(f"utm run: worker {spec.queue}: {spec.definitions} does not load ({error}); running with "
          f"{last} (definitions {live.definitions_version}), the package this queue last ran with", file=sys.stderr)
    return live


def record_reload(spec: WorkerSpec, started_at: float, ok: bool, live: Loaded, result: Any) -> None:
    """LOGDIR/reload.qN.json: the outcome of this worker's last reload, for `utm reload --wait`
    (`restart_needed`: engine settings of the -c file it kept as they were)."""
    body = {"queue": spec.queue, "started_at": started_at, "ok": ok, "definitions_version": live.definitions_version,
            "package": str(live.package) if live.package else None, "error": None if ok else str(result)[:500],
            "restart_needed": list(live.restart_needed) if ok else []}
    try:
        write_atomic(spec.logdir / RELOAD_RECORD.format(spec.queue), json.dumps(body).encode())
    except OSError as e:
        print(f"utm run: worker {spec.queue}: cannot record the reload outcome: {e}", file=sys.stderr)


def _finish_reload(worker: LiveWorker, spec: WorkerSpec, done: tuple[bool, Any], live: Loaded | None = None,
                   eve: EveWriter | None = None) -> Any:
    """Swap in what the reload built, or count the failure and keep everything as it is.
    Returns the `Loaded` now in use. From a -c file the EVE switches and rule variables take effect;
    the engine's own settings (stream, flow...) are kept and named: they need a restart."""
    ok, value = done
    if ok:
        if not isinstance(value, Loaded):           # bare Judges (tests)
            value = Loaded(value, worker.policy.cfg, exclusions=worker.exclusions.exclusions)
        if value.engine is not None and spec.config_file is not None:
            kept = restart_needed(worker.engine.cfg, value.engine)
            if kept:
                print(f"utm run: worker {spec.queue}: -c {spec.config_file}: {', '.join(kept)} changed: "
                      "kept as they were until `utm run` restarts", file=sys.stderr)
            if eve is not None:
                eve.configure(value.engine)
            value = replace(value, engine=reloaded_engine(worker.engine.cfg, value.engine), restart_needed=kept)
        j = value.judges
        worker.engine.urlcat = j.urlcat
        worker.engine.files.scanner = j.scanner if j.scanner is not None else NoScanner()   # files opened from now on
        worker.policy.cfg = value.policy
        worker.exclusions.exclusions = value.exclusions    # counters go on: they count since the start
        worker.swap_inspector(j.inspector)
        defs = f" (definitions {value.definitions_version})" if value.definitions_version else ""
        print(f"utm run: worker {spec.queue}: rules reloaded{defs}", file=sys.stderr)
        return value
    worker.counters.reload_errors += 1
    print(f"utm run: worker {spec.queue}: reload failed, old rules kept: {value}", file=sys.stderr)
    return live


def with_queue(spec: WorkerSpec, queue: int) -> WorkerSpec:
    return replace(spec, queue=queue)

