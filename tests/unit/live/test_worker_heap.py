"""The worker keeps its loaded rules out of the cyclic collector's scans (firmware.live.worker.settle_heap)."""
from __future__ import annotations

import gc

from firmware.live.worker import WorkerSpec, _Reloader, settle_heap


def test_what_is_loaded_is_frozen_and_collection_stays_on():
    try:
        rules = [{"rule": i} for i in range(10_000)]     # stands for a loaded ruleset
        before = gc.get_freeze_count()
        settle_heap()
        assert gc.get_freeze_count() >= before + len(rules) and gc.isenabled()
    finally:
        gc.unfreeze()


def test_a_reload_builds_with_collection_off_and_turns_it_back_on(tmp_path, monkeypatch):
    import firmware.live.worker as worker
    monkeypatch.setattr(worker, "load_all", lambda spec: "loaded")
    r = _Reloader(WorkerSpec(queue=1, logdir=tmp_path))
    try:
        r.start()
        assert not gc.isenabled()                         # while the new rules are built
        while (done := r.poll()) is None:
            pass
        assert done == (True, "loaded")
        settle_heap(collect=False)                        # what the loop does after the swap
        assert gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
