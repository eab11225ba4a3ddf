"""The supervisor of `utm run`: one worker process per queue, a watchdog, reload, stop.

PLATFORM.md: a queue with no listener is bypassed by the kernel, but a bound
worker that hangs blackholes its traffic even with fail-open. So the watchdog
replaces a dead worker at once and kills (SIGKILL) and replaces a worker whose
heartbeat is older than `hang_after` seconds; both within 5 seconds. The
decision logic (`Watchdog.check`) is pure and tested with a fake clock;
`Supervisor` does the process work.

Memory: a worker whose resident memory passes `memory_max` is stopped (SIGTERM:
it unbinds and writes what it has) and replaced before the kernel runs out,
and each worker volunteers to be the out-of-memory killer's first choice
(`OOM_SCORE_ADJ`): a worker is replaced within a second while its queue is
bypassed, but dnsmasq (the office's DHCP and DNS) or the cloud agent killed
in its place would not come back.
"""
from __future__ import annotations

import enum
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

HANG_AFTER = 3.0        # seconds without a heartbeat before a running worker counts as hung
START_GRACE = 120.0     # a starting worker (loading rules, queue not bound yet) may take this long
CHECK_EVERY = 0.25
PAGE = os.sysconf("SC_PAGE_SIZE")
QUICK_DEATH = 5.0       # a worker that dies this soon after its start is retried with a pause...
RETRY_MAX = 2.0         # ...of at most this (dead workers are bypassed meanwhile, PLATFORM.md)
LEAVE_WAIT = 5.0        # a worker of a queue a reload removed has this long to unbind before SIGKILL
STOP_WAIT = 2.0         # a worker replaced for its memory has this long to unbind before SIGKILL
OOM_SCORE_ADJ = 500     # -1000..1000: the workers go before the box's other processes


class Health(enum.Enum):
    OK = "ok"
    STARTING = "starting"
    DEAD = "dead"
    HUNG = "hung"
    TOO_BIG = "too big"      # resident memory past the limit


@dataclass(slots=True)
class Slot:
    """One queue's worker as the watchdog sees it."""

    queue: int
    started: float
    heartbeat: float = 0.0      # 0.0 until the worker's loop has run once
    alive: bool = True
    restarts: int = 0
    rss: int = 0                # bytes resident, as last read


class Watchdog:
    """Pure: which workers are dead or hung, given the clock and their heartbeats."""

    def __init__(self, hang_after: float = HANG_AFTER, start_grace: float = START_GRACE,
                 memory_max: int | None = None) -> None:
        self.hang_after = hang_after
        self.start_grace = start_grace
        self.memory_max = memory_max   # bytes resident per worker; None: no limit

    def check(self, slot: Slot, now: float) -> Health:
        if not slot.alive:
            return Health.DEAD
        if self.memory_max is not None and slot.rss > self.memory_max:
            return Health.TOO_BIG
        if slot.heartbeat == 0.0:
            return Health.HUNG if now - slot.started > self.start_grace else Health.STARTING
        return Health.HUNG if now - slot.heartbeat > self.hang_after else Health.OK


class WorkerProcess(Protocol):
    pid: int | None

    def is_alive(self) -> bool: ...

    def join(self, timeout: float | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class QueueChange:
    """What a new queue list means for the running workers (pure: `plan_queues`)."""

    start: tuple[int, ...] = ()
    stop: tuple[int, ...] = ()
    keep: tuple[int, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.start or self.stop)


def plan_queues(running: list[int], wanted: list[int]) -> QueueChange:
    """Workers to start (queues new in `wanted`), to stop (gone from it) and to keep (reloaded in place)."""
    have, want = set(running), set(wanted)
    return QueueChange(tuple(sorted(want - have)), tuple(sorted(have - want)), tuple(sorted(have & want)))


@dataclass(slots=True)
class SupervisorCounters:
    started: int = 0
    restarts_dead: int = 0
    restarts_hung: int = 0
    restarts_memory: int = 0
    queues_added: int = 0
    queues_removed: int = 0


@dataclass
class _Running:
    slot: Slot
    proc: Any
    beat: Any        # multiprocessing.Value('d'): the worker's last monotonic heartbeat
    fails: int = 0                   # deaths in a row, each soon after its start
    retry_at: float | None = None    # dead, restart due at this time


@dataclass
class Supervisor:
    """Starts `target(queue, heartbeat, restarts)` in a forked process per queue and keeps it alive.

    `on_reload` (a SIGHUP) returns the queues as the network config now lists them, or None to keep
    them (no config, or one that cannot be used: it says why). Workers of new queues are started
    (`announcing` holds their queues while they are forked, so the target can tell them apart from a
    restart), workers of removed ones stopped, and the others told to reload."""

    queues: list[int]
    target: Callable[[int, Any, int], int]
    watchdog: Watchdog = field(default_factory=Watchdog)
    log: Callable[[str], None] = lambda m: print(f"utm run: {m}", file=sys.stderr, flush=True)
    counters: SupervisorCounters = field(default_factory=SupervisorCounters)
    on_reload: Callable[[], list[int] | None] | None = None

    def __post_init__(self) -> None:
        self._ctx = mp.get_context("fork")
        self._running: dict[int, _Running] = {}
        self._leaving: list[tuple[_Running, float]] = []   # stopped by a reload: (worker, SIGKILL at)
        self.announcing: frozenset[int] = frozenset()
        self._stop = False
        self._hup = False
        self._usr1 = False

    # -- processes -----------------------------------------------------------------------------
    def _spawn(self, queue: int, restarts: int, fails: int = 0) -> None:
        beat = self._ctx.Value("d", 0.0, lock=False)
        proc = self._ctx.Process(target=_child, args=(self.target, queue, beat, restarts),
                                 name=f"utm-worker-{queue}", daemon=False)
        proc.start()
        self.counters.started += 1
        self._running[queue] = _Running(Slot(queue, time.monotonic(), restarts=restarts), proc, beat, fails=fails)

    def pids(self) -> dict[int, int]:
        return {q: r.proc.pid for q, r in self._running.items()}

    def reconfigure(self, queues: list[int]) -> QueueChange:
        """Stop the workers of queues not in `queues` (SIGTERM: each unbinds first, so its queue is the
        ruleset's again) and start workers for the new ones; the others are left as they are."""
        change = plan_queues(list(self._running), queues)
        now = time.monotonic()
        for q in change.stop:
            r = self._running.pop(q)
            _signal(r.proc.pid, signal.SIGTERM)
            self._leaving.append((r, now + LEAVE_WAIT))
            self.counters.queues_removed += 1
        self.queues = list(queues)
        self.announcing = frozenset(change.start)
        try:
            for q in change.start:
                self._spawn(q, 0)
                self.counters.queues_added += 1
        finally:
            self.announcing = frozenset()
        return change

    def reload(self) -> QueueChange:
        """A SIGHUP: the queues of `on_reload` first, then every kept worker reloads its sources."""
        wanted = self.on_reload() if self.on_reload is not None else None
        change = self.reconfigure(wanted) if wanted is not None else QueueChange(keep=tuple(self._running))
        if change.start:
            self.log("reload: new queue(s) " + ", ".join(map(str, change.start)) + ": worker(s) started")
        if change.stop:
            self.log("reload: queue(s) " + ", ".join(map(str, change.stop)) + " no longer configured: worker(s) stopped")
        self.log("reload: rules rebuilt in each worker, swapped when ready")
        for q in change.keep:
            r = self._running.get(q)
            if r is not None:
                _signal(r.proc.pid, signal.SIGHUP)
        return change

    def _reap_leaving(self, now: float) -> None:
        left = []
        for r, kill_at in self._leaving:
            if not r.proc.is_alive():
                r.proc.join(0)
            elif now >= kill_at:
                _kill(r.proc.pid)
                r.proc.join(1.0)
            else:
                left.append((r, kill_at))
        self._leaving = left

    def check_once(self) -> None:
        now = time.monotonic()
        if self._leaving:
            self._reap_leaving(now)
        for q, r in list(self._running.items()):
            r.slot.heartbeat = r.beat.value
            r.slot.alive = r.proc.is_alive()
            if self.watchdog.memory_max is not None:
                r.slot.rss = resident_bytes(r.proc.pid)
            health = self.watchdog.check(r.slot, now)
            if health is Health.DEAD:
                if r.retry_at is None:
                    r.proc.join(0)
                    self.counters.restarts_dead += 1
                    delay = self._retry_after(r, now)
                    self.log(f"worker {q} (pid {r.proc.pid}) exited with {r.proc.exitcode}; restarting"
                             + (f" in {delay:.1f} s" if delay else ""))
                if r.retry_at is not None and now >= r.retry_at:
                    self._spawn(q, r.slot.restarts + 1, r.fails)
            elif health is Health.HUNG:
                self.counters.restarts_hung += 1
                self.log(f"worker {q} (pid {r.proc.pid}) hung (no heartbeat for "
                         f"{now - (r.slot.heartbeat or r.slot.started):.1f} s); killing and replacing")
                _kill(r.proc.pid)
                r.proc.join(2.0)
                self._spawn(q, r.slot.restarts + 1, r.fails)
            elif health is Health.TOO_BIG:
                self.counters.restarts_memory += 1
                _signal(r.proc.pid, signal.SIGTERM)   # unbinds its queue and writes its buffered events
                r.proc.join(STOP_WAIT)
                if r.proc.is_alive():
                    _kill(r.proc.pid)
                    r.proc.join(1.0)
                delay = self._retry_after(r, now)
                self.log(f"worker {q} (pid {r.proc.pid}) used {r.slot.rss >> 20} MB, past its limit of "
                         f"{(self.watchdog.memory_max or 0) >> 20} MB; stopped, replacing it"
                         + (f" in {delay:.1f} s (right after its start: is the limit below what its "
                            "rules need?)" if delay else ""))
                if not delay:   # else the DEAD branch starts the next one when it is due
                    self._spawn(q, r.slot.restarts + 1, r.fails)

    def _retry_after(self, r: _Running, now: float) -> float:
        """Seconds before a stopped worker's successor starts (sets `retry_at`): one that ends right
        after starting (queue taken, rules gone, over its memory limit at once) is retried with a
        growing pause, at most RETRY_MAX, instead of a restart storm."""
        quick = now - r.slot.started < QUICK_DEATH
        r.fails = r.fails + 1 if quick else 0
        delay = min(RETRY_MAX, CHECK_EVERY * 2 ** r.fails) if quick else 0.0
        r.retry_at = now + delay
        return delay

    # -- signals and the main loop -------------------------------------------------------------
    def request_stop(self, *_: object) -> None:
        self._stop = True

    def request_reload(self, *_: object) -> None:
        self._hup = True

    def request_stats(self, *_: object) -> None:
        self._usr1 = True

    def stats(self) -> None:
        """A SIGUSR1 (`utm stats`): each worker writes its `stats` event now."""
        for r in self._running.values():
            _signal(r.proc.pid, signal.SIGUSR1)

    def run(self, started: Callable[[], None] | None = None) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        signal.signal(signal.SIGUSR1, self.request_stats)
        for q in self.queues:
            self._spawn(q, 0)
        if started is not None:
            started()
        try:
            while not self._stop:
                time.sleep(CHECK_EVERY)
                if self._hup:
                    self._hup = False
                    self.reload()
                if self._usr1:
                    self._usr1 = False
                    self.stats()
                self.check_once()
        finally:
            self.stop_all()
        return 0

    def stop_all(self, timeout: float = 5.0) -> None:
        """SIGTERM each worker, wait, SIGKILL the ones that do not leave."""
        every = [*self._running.values(), *(r for r, _ in self._leaving)]
        for r in every:
            _signal(r.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for r in every:
            r.proc.join(max(0.0, deadline - time.monotonic()))
            if r.proc.is_alive():
                _kill(r.proc.pid)
                r.proc.join(1.0)
        self._running.clear()
        self._leaving.clear()


def _child(target: Callable[[int, Any, int], int], queue: int, beat: Any, restarts: int) -> None:
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)   # until the worker listens: a stats request must not kill it
    _die_with_parent()
    _oom_first()
    sys.exit(target(queue, beat, restarts))


def _oom_first(path: str = "/proc/self/oom_score_adj") -> None:
    """Be the out-of-memory killer's first choice (see the module docstring). Raising one's own
    score needs no privilege; where /proc is not there the worker runs as before."""
    try:
        with open(path, "w") as f:
            f.write(f"{OOM_SCORE_ADJ}\n")
    except OSError:
        pass


def resident_bytes(pid: int | None) -> int:
    """Resident memory of `pid` (/proc/PID/statm), 0 if it cannot be read (gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _die_with_parent() -> None:
    """SIGTERM this worker when the supervisor dies (even by SIGKILL): an orphan would keep its
    queue bound with nobody watching it; gone, its queue is bypassed (PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:   # the supervisor died before the call
        os.kill(os.getpid(), signal.SIGTERM)


def _signal(pid: int | None, sig: int) -> None:
    if pid:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _kill(pid: int | None) -> None:
    _signal(pid, signal.SIGKILL)
