"""The watchdog's decisions (pure, fake clock) and the supervisor with real forked workers."""
from __future__ import annotations

import os
import signal
import time

from firmware.live.supervisor import Health, Slot, Supervisor, Watchdog


def test_watchdog_table():
    w = Watchdog(hang_after=3.0, start_grace=10.0)
    assert w.check(Slot(0, started=100.0), 105.0) is Health.STARTING
    assert w.check(Slot(0, started=100.0), 111.0) is Health.HUNG
    assert w.check(Slot(0, started=100.0, heartbeat=104.0), 106.9) is Health.OK
    assert w.check(Slot(0, started=100.0, heartbeat=104.0), 107.1) is Health.HUNG
    assert w.check(Slot(0, started=100.0, heartbeat=104.0, alive=False), 104.0) is Health.DEAD


def _beating(queue, beat, restarts):
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        beat.value = time.monotonic()
        time.sleep(0.05)


def _dies_first(queue, beat, restarts):
    if restarts == 0:
        return 1
    return _beating(queue, beat, restarts)


def _hangs_first(queue, beat, restarts):
    if restarts == 0:
        beat.value = time.monotonic()
        while True:      # bound but never beating again: what a SIGSTOPped worker looks like
            time.sleep(0.05)
    return _beating(queue, beat, restarts)


def _wait(sup: Supervisor, cond, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sup.check_once()
        if cond():
            return True
        time.sleep(0.05)
    return False


def _run(target, cond, seconds=5.0):
    logs = []
    sup = Supervisor([7], target, Watchdog(hang_after=0.5), log=logs.append)
    sup._spawn(7, 0)
    try:
        assert _wait(sup, lambda: cond(sup), seconds), logs
    finally:
        sup.stop_all(timeout=2.0)
    return sup, logs


def test_a_dead_worker_is_restarted():
    sup, logs = _run(_dies_first, lambda s: s.counters.restarts_dead == 1 and s._running[7].beat.value > 0)
    assert "exited with 1" in logs[0]


def test_a_hung_worker_is_killed_and_replaced():
    sup, logs = _run(_hangs_first, lambda s: s.counters.restarts_hung == 1 and s._running[7].slot.restarts == 1
                     and s._running[7].beat.value > 0)
    assert "hung" in logs[0]


def test_stop_all_ends_every_worker():
    sup = Supervisor([1, 2], _beating, log=lambda m: None)
    sup._spawn(1, 0)
    sup._spawn(2, 0)
    pids = list(sup.pids().values())
    sup.stop_all(timeout=2.0)
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive


def _always_dies(queue, beat, restarts):
    return 4


def test_a_worker_that_keeps_dying_is_retried_with_a_pause_not_a_storm():
    logs = []
    sup = Supervisor([3], _always_dies, log=logs.append)
    sup._spawn(3, 0)
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            sup.check_once()
            time.sleep(0.05)
    finally:
        sup.stop_all(timeout=1.0)
    # pauses 0.5, 1, 2 s: a handful of starts in 3 s, not one every check (60)
    assert 2 <= sup.counters.started <= 5, logs
    assert any("restarting in" in m for m in logs)


def test_watchdog_memory_limit():
    w = Watchdog(hang_after=3.0, memory_max=100 << 20)
    assert w.check(Slot(0, started=100.0, heartbeat=104.0, rss=99 << 20), 105.0) is Health.OK
    assert w.check(Slot(0, started=100.0, heartbeat=104.0, rss=101 << 20), 105.0) is Health.TOO_BIG
    assert w.check(Slot(0, started=100.0, rss=101 << 20), 101.0) is Health.TOO_BIG      # even while starting
    assert w.check(Slot(0, started=100.0, rss=101 << 20, alive=False), 101.0) is Health.DEAD
    assert Watchdog().check(Slot(0, started=100.0, heartbeat=104.0, rss=1 << 40), 105.0) is Health.OK


GROWTH = 96 << 20


def _grows_first(queue, beat, restarts):
    """The first worker takes GROWTH more bytes after a second (a leak, a flood of state)."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    t0 = time.monotonic()
    held = None
    while True:
        beat.value = time.monotonic()
        if restarts == 0 and held is None and time.monotonic() - t0 > 1.0:
            held = bytearray(GROWTH)
            held[::4096] = b"x" * (GROWTH // 4096)   # touched: resident, not just reserved
        time.sleep(0.05)


def test_a_worker_past_its_memory_limit_is_replaced():
    from firmware.live.supervisor import resident_bytes
    logs = []
    sup = Supervisor([5], _grows_first, Watchdog(hang_after=2.0), log=logs.append)
    sup._spawn(5, 0)
    try:
        first = sup.pids()[5]
        time.sleep(0.5)
        sup.watchdog.memory_max = resident_bytes(first) + GROWTH // 2   # room for all but the growth
        assert _wait(sup, lambda: sup.counters.restarts_memory == 1 and sup._running[5].beat.value > 0
                     and sup.pids()[5] != first, 8.0), logs
        time.sleep(1.5)                           # the successor stays: it does not grow
        sup.check_once()
        assert sup.counters.restarts_memory == 1 and sup.counters.restarts_dead == 0, logs
        assert sup._running[5].slot.restarts == 1
    finally:
        sup.stop_all(timeout=2.0)
    assert "past its limit" in logs[0] and "replacing it" in logs[0]


def test_workers_go_first_when_the_box_runs_out_of_memory():
    sup = Supervisor([6], _beating, log=lambda m: None)
    sup._spawn(6, 0)
    try:
        pid = sup.pids()[6]
        deadline = time.monotonic() + 3.0
        score = ""
        while time.monotonic() < deadline and score != "500":
            with open(f"/proc/{pid}/oom_score_adj") as f:
                score = f.read().strip()
            time.sleep(0.05)
        assert score == "500"
        with open("/proc/self/oom_score_adj") as f:
            assert f.read().strip() != "500"          # the supervisor keeps its own
    finally:
        sup.stop_all(timeout=2.0)
