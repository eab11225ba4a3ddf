"""A log that cannot be written (its disk full) loses events, counted and said, never a verdict."""
from __future__ import annotations

import errno
import io
import json
from pathlib import Path

from firmware.live.worker import WorkerSpec, flush_log, open_log, tell_lost_events
from inspection.config import ChecksumMode, EngineConfig
from inspection.engine import Engine
from inspection.io.live import LiveWorker
from inspection.io.nfqueue import FakeQueue, Verdict
from inspection.io.offline import RunSummary, load_inspector
from inspection.io.senders import FakeSender
from inspection.output.eve import EveWriter
from inspection.policy.verdict import FlowPolicy, PolicyConfig
from tests.unit.live.test_live_worker import RULES, evil_conversation, queued


class Disk(io.RawIOBase):
    """A file on a disk that fills up and is freed again."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.full = False

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data += bytes(b)
        return len(b)


def _worker(tmp_path: Path, fh, packets) -> tuple[LiveWorker, FakeQueue, FakeSender]:
    (tmp_path / "r.rules").write_text(RULES)
    eve = EveWriter(fh)
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True), eve.write,
                    load_inspector([tmp_path / "r.rules"], RunSummary(), 1 << 16))
    q, sender = FakeQueue(packets), FakeSender()
    return LiveWorker(q, engine, FlowPolicy(PolicyConfig()), sender, eve.write), q, sender


def test_a_full_disk_loses_the_events_and_still_blocks(tmp_path):
    pkts = queued(evil_conversation())
    with open("/dev/full", "ab", buffering=0) as fh:    # every write: ENOSPC
        w, q, sender = _worker(tmp_path, fh, pkts)
        while w.run_once(0):
            pass
    evil = next(p for p in pkts if b"EVIL" in p.payload)
    assert {v.packet_id: v.verdict for v in q.sent}[evil.packet_id] is Verdict.REPEAT
    assert len(sender.frames) == 2 and w.counters.resets_sent == 2      # both ends reset
    assert w.counters.engine_errors == 0
    assert w.counters.events_lost == 2                                   # the alert and the drop
    live = w.stats_event().body.tree()["live"]
    assert (live["events_lost"], live["log_error"]) == (2, "No space left on device")


def test_events_after_the_disk_is_freed_are_written_whole(tmp_path):
    disk = Disk()
    fh = io.BufferedWriter(disk, buffer_size=512)
    conversations = [queued(evil_conversation(), start_id=1 + 100 * i) for i in range(6)]
    w, q, _ = _worker(tmp_path, fh, [])
    emitted = 0
    for i, pkts in enumerate(conversations):
        disk.full = i in (2, 3)
        q.pending.extend(pkts)
        while w.run_once(0):
            pass
        w.engine.finish()                  # the flow ends, and a stats event
        emitted += 4                       # alert, drop, flow, stats
    disk.full = False
    flush_log(fh, w)
    lines = [json.loads(x) for x in disk.data.splitlines()]   # none torn
    assert w.counters.events_lost > 0 and len(lines) + w.counters.events_lost == emitted
    assert [e["event_type"] for e in lines[-4:]] == ["alert", "drop", "flow", "stats"]
    evil = {p.packet_id for c in conversations for p in c if b"EVIL" in p.payload}
    assert len(evil) == 6 and all(v.verdict is Verdict.REPEAT for v in q.sent if v.packet_id in evil)


def test_the_journal_hears_of_lost_events_once_per_report_and_a_full_close_is_said(tmp_path, capsys):
    (tmp_path / "eve.q3.json").symlink_to("/dev/full")
    spec = WorkerSpec(queue=3, logdir=tmp_path)
    w, _, _ = _worker(tmp_path, io.BytesIO(), [])
    w.counters.events_lost, w.counters.log_error = 5, "No space left on device"
    assert tell_lost_events(spec, w, 0) == 5 and tell_lost_events(spec, w, 5) == 5
    err = capsys.readouterr().err
    assert err.count("not written") == 1 and "5 EVE event(s)" in err and "No space left on device" in err
    with open_log(spec) as fh:
        fh.write(b"{}\n")                  # buffered; the close cannot write it
    assert "the last buffered EVE events are lost" in capsys.readouterr().err
