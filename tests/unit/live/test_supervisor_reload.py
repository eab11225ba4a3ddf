"""A reload that changes the network config's queues or fail mode: the supervisor starts and stops
workers (real forked processes, no kernel), a worker binds its queue again (a fake bind), `utm run`
re-reads the file and `utm reload --wait` follows the new queues."""
from __future__ import annotations

import functools
from dataclasses import replace
import json
import os
import signal
import time
from pathlib import Path

import pytest

import firmware.live.supervisor as supmod
from firmware.cli.main import build_parser
from firmware.cli.run import QUEUESFILE, from_net_config, net_reload, wait_reload
from firmware.live.supervisor import QueueChange, Supervisor, plan_queues
from firmware.live.worker import queue_flags, rebind
from inspection.io.nfqueue import DEFAULT_FLAGS, FakeQueue, Flag
from inspection.policy.verdict import FailMode


def test_plan_queues_table():
    assert plan_queues([0, 1], [0, 1]) == QueueChange(keep=(0, 1))
    assert plan_queues([0, 1], [0, 1, 2, 3]) == QueueChange(start=(2, 3), keep=(0, 1))
    assert plan_queues([0, 1, 2], [1]) == QueueChange(stop=(0, 2), keep=(1,))
    assert plan_queues([4, 5], [6]) == QueueChange(start=(6,), stop=(4, 5))
    assert not plan_queues([3], [3]).changed and plan_queues([3], [4]).changed


def _worker(folder: Path, holder: list, queue: int, beat, restarts: int) -> int:
    """Beats; notes each SIGHUP and whether it was started as a queue a reload added."""
    mark = folder / f"q{queue}.{os.getpid()}"
    mark.write_text("announced" if queue in holder[0].announcing else "started")
    signal.signal(signal.SIGHUP, lambda *_: (folder / f"hup.{queue}.{os.getpid()}").touch())
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        beat.value = time.monotonic()
        time.sleep(0.02)


def _stubborn(queue, beat, restarts):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)      # a worker that does not leave when told
    while True:
        beat.value = time.monotonic()
        time.sleep(0.02)


def _until(sup: Supervisor, cond, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sup.check_once()
        if cond():
            return True
        time.sleep(0.02)
    return False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


@pytest.fixture
def sup(tmp_path):
    wanted: list[list[int] | None] = [None]
    holder: list = []
    s = Supervisor([1], functools.partial(_worker, tmp_path, holder), log=lambda m: None,
                   on_reload=lambda: wanted[0])
    holder.append(s)
    s._spawn(1, 0)
    assert _until(s, lambda: s._running[1].beat.value > 0)
    s.wanted = wanted
    yield s
    s.stop_all(timeout=2.0)


def test_new_queues_get_workers_the_kept_ones_reload_in_place(sup, tmp_path):
    pid1 = sup.pids()[1]
    sup.wanted[0] = [1, 2, 3]
    change = sup.reload()
    assert change == QueueChange(start=(2, 3), keep=(1,)) and sup.queues == [1, 2, 3]
    assert _until(sup, lambda: all(r.beat.value > 0 for r in sup._running.values()))
    pids = sup.pids()
    assert pids[1] == pid1 and set(pids) == {1, 2, 3}
    assert _until(sup, lambda: (tmp_path / f"hup.1.{pid1}").exists())          # told to reload
    assert not list(tmp_path.glob("hup.2.*")) and not list(tmp_path.glob("hup.3.*"))   # started fresh instead
    assert (tmp_path / f"q2.{pids[2]}").read_text() == "announced"             # records its outcome for --wait
    assert (tmp_path / f"q1.{pid1}").read_text() == "started" and sup.announcing == frozenset()
    assert (sup.counters.queues_added, sup.counters.queues_removed) == (2, 0)


def test_removed_queues_are_stopped_and_not_restarted(sup, tmp_path):
    sup.wanted[0] = [1, 2]
    sup.reload()
    assert _until(sup, lambda: sup._running[2].beat.value > 0)
    pid1, pid2 = sup.pids()[1], sup.pids()[2]
    sup.wanted[0] = [2]
    assert sup.reload() == QueueChange(stop=(1,), keep=(2,))
    assert _until(sup, lambda: _zombie(pid1) and not sup._leaving)
    for _ in range(10):                                       # the watchdog leaves it gone
        sup.check_once()
        time.sleep(0.02)
    assert sup.pids() == {2: pid2} and sup.counters.restarts_dead == 0 and sup.counters.queues_removed == 1


def test_a_config_that_cannot_be_used_changes_nothing_and_every_worker_reloads(sup, tmp_path):
    pid1 = sup.pids()[1]
    sup.wanted[0] = None                     # what on_reload returns for a bad file (it says why)
    assert sup.reload() == QueueChange(keep=(1,))
    assert sup.pids() == {1: pid1} and _until(sup, lambda: (tmp_path / f"hup.1.{pid1}").exists())


def test_a_removed_worker_that_does_not_leave_is_killed(monkeypatch):
    monkeypatch.setattr(supmod, "LEAVE_WAIT", 0.3)
    s = Supervisor([5, 6], _stubborn, log=lambda m: None, on_reload=lambda: [6])
    s._spawn(5, 0)
    s._spawn(6, 0)
    try:
        pid5 = s.pids()[5]
        assert _until(s, lambda: all(r.beat.value > 0 for r in s._running.values()))   # SIGTERM ignored by now
        s.reload()
        time.sleep(0.1)
        s.check_once()
        assert not _zombie(pid5)                              # still there: it ignores SIGTERM
        assert _until(s, lambda: not s._leaving, 3.0) and _zombie(pid5)
    finally:
        s.stop_all(timeout=0.5)


# -- the worker: a new fail mode binds the queue again ------------------------------------------------

class _Bound(FakeQueue):
    def __init__(self, queue: int, flags: Flag) -> None:
        super().__init__([])
        self.queue, self.flags, self.closed = queue, flags, False

    def close(self) -> None:
        self.closed = True


class _W:
    def __init__(self, q) -> None:
        self.queue = q


def test_rebind_takes_the_new_flags_and_keeps_the_counters(capsys):
    assert queue_flags(FailMode.OPEN) == DEFAULT_FLAGS and not queue_flags(FailMode.CLOSED) & Flag.FAIL_OPEN
    old = _Bound(7, queue_flags(FailMode.OPEN))
    old.counters.received = 42
    w = _W(old)
    new = rebind(w, FailMode.CLOSED, bind=_Bound)           # type: ignore[arg-type]
    assert old.closed and w.queue is new and new.queue == 7 and not new.flags & Flag.FAIL_OPEN
    assert new.counters.received == 42 and "fail mode closed" in capsys.readouterr().err


# -- `utm run`: the file re-read on reload, `utm reload --wait` following the queues -------------------

def _net(tmp_path, queue=4, workers=2, fail="closed"):
    f = tmp_path / "net.toml"
    f.write_text(f'[ports]\nwan = "eth0"\nlan = "eth1"\n\n[inspection]\nqueue = {queue}\nworkers = {workers}\n'
                 f'fail_mode = "{fail}"\n')
    return f


def test_net_reload_returns_the_new_queues_and_writes_them_for_reload_wait(tmp_path):
    f = _net(tmp_path)
    args = build_parser().parse_args(["run", "-l", str(tmp_path), "--net-config", str(f)])
    from_net_config(args)
    said: list[str] = []
    reread = net_reload(args, tmp_path, said.append)
    _net(tmp_path, 4, 3, "open")
    assert reread() == [4, 5, 6] and (tmp_path / QUEUESFILE).read_text() == "4\n5\n6\n" and not said
    f.write_text("[inspection\n")                                      # not TOML: everything kept
    assert reread() is None and (tmp_path / QUEUESFILE).read_text() == "4\n5\n6\n"
    assert len(said) == 1 and said[0].startswith("reload: --net-config") and "kept" in said[0]


def test_net_reload_keeps_what_the_command_line_pinned(tmp_path):
    f = _net(tmp_path)
    args = build_parser().parse_args(["run", "-l", str(tmp_path), "--net-config", str(f), "--fail", "closed"])
    from_net_config(args)
    said: list[str] = []
    reread = net_reload(args, tmp_path, said.append)
    _net(tmp_path, fail="open")
    assert reread() is None and "--fail" in said[0]
    _net(tmp_path, workers=70)
    assert reread() is None and "inspection.workers" in said[1]


def test_reload_wait_follows_the_queues_a_reload_changed(tmp_path):
    import threading

    (tmp_path / QUEUESFILE).write_text("3\n4\n")      # as `utm reload --wait` finds it right after its SIGHUP
    ok = {"started_at": 100.0, "ok": True, "definitions_version": None, "error": None}
    got: list = []
    t = threading.Thread(target=lambda: got.append(wait_reload(tmp_path, 99.0, 5.0)))
    t.start()
    time.sleep(0.3)
    # the supervisor: queue 4 removed, 5 added, the file rewritten before any worker answers
    (tmp_path / QUEUESFILE).write_text("3\n5\n")
    (tmp_path / "reload.q3.json").write_text(json.dumps({**ok, "queue": 3}))
    (tmp_path / "reload.q5.json").write_text(json.dumps({**ok, "queue": 5}))
    t.join(10)
    assert got == [(0, "2 worker(s) reloaded")]


def test_workers_refuse_what_the_command_line_pinned_too(tmp_path):
    from firmware.cli.run import build_spec
    from firmware.live.sources import SourceLoadError, reload_policy

    f = _net(tmp_path, workers=1)
    args = build_parser().parse_args(["run", "-l", str(tmp_path), "--net-config", str(f), "--fail", "closed",
                                      "--queue", "4"])
    from_net_config(args)
    spec = build_spec(args)
    assert (spec.cli_fail, spec.cli_queues) == (FailMode.CLOSED, (4, 4))
    spec = replace(spec, queue=4)      # the worker of queue 4
    assert reload_policy(spec)[0].fail is FailMode.CLOSED
    _net(tmp_path, workers=1, fail="open")
    with pytest.raises(SourceLoadError, match="--fail closed"):
        reload_policy(spec)
    _net(tmp_path, workers=2)
    with pytest.raises(SourceLoadError, match="--queues 4:4"):
        reload_policy(spec)


class _Switchable(_Bound):
    """A bound queue whose fail mode switches in place (NfQueue.set_fail_open), or refuses to."""

    def __init__(self, queue, flags, refuse=False) -> None:
        super().__init__(queue, flags)
        self.refuse = refuse

    def set_fail_open(self, on: bool) -> None:
        from inspection.io.nfqueue import NfqSetupError
        if self.refuse:
            raise NfqSetupError(self.queue, "set fail mode", 95)
        self.flags = self.flags | Flag.FAIL_OPEN if on else self.flags & ~Flag.FAIL_OPEN


def test_rebind_switches_the_bound_queue_in_place_and_binds_again_only_if_refused(capsys):
    q = _Switchable(7, queue_flags(FailMode.OPEN))
    w = _W(q)
    assert rebind(w, FailMode.CLOSED, bind=_Bound) is q and not q.closed     # type: ignore[arg-type]
    assert not q.flags & Flag.FAIL_OPEN and "set on the bound queue" in capsys.readouterr().err
    stubborn = _Switchable(8, queue_flags(FailMode.OPEN), refuse=True)
    w = _W(stubborn)
    new = rebind(w, FailMode.CLOSED, bind=_Bound)                               # type: ignore[arg-type]
    assert stubborn.closed and new is not stubborn and not new.flags & Flag.FAIL_OPEN
    assert "binding again" in capsys.readouterr().err
