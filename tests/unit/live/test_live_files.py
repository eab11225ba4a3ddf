"""Which file flows stay queued past the depth: only those whose file something can still judge."""
from __future__ import annotations

import io
import json

from inspection.config import ChecksumMode, EngineConfig
from inspection.engine import Engine
from inspection.io.live import LiveWorker
from inspection.io.senders import FakeSender
from inspection.io.nfqueue import FakeQueue, Verdict
from inspection.io.offline import RunSummary, load_inspector
from inspection.output.eve import EveWriter
from inspection.policy.verdict import FlowPolicy, PolicyConfig
from tests.unit.live.test_live_worker import _http_download, queued, scanner

DEPTH = 2000
SIZE = 60000


def run(tmp_path, *, rules: str | None = None, body_limit: int = 1 << 16, with_scanner: bool = False,
        body: bytes | None = None):
    inspector = None
    if rules is not None:
        (tmp_path / "r.rules").write_text(rules)
        inspector = load_inspector([tmp_path / "r.rules"], RunSummary(), body_limit)
    out = io.BytesIO()
    eve = EveWriter(out)
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True, http_body_limit=body_limit),
                    eve.write, inspector)
    if with_scanner:
        engine.files.scanner = scanner(tmp_path)
    pkts = queued(_http_download(SIZE, body=body))
    q = FakeQueue(list(pkts))
    w = LiveWorker(q, engine, FlowPolicy(PolicyConfig(inspect_depth=DEPTH)), FakeSender(), eve.write,
                   clock=lambda: 1_700_000_000.0)
    while w.run_once(0):
        pass
    marks = [v.mark for v in q.sent]
    handed_back = marks.index(0x1) if 0x1 in marks else None
    before = sum(len(p.payload) for p in pkts[:handed_back]) if handed_back is not None else None
    engine.finish()
    return w, q, before, [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_file_nothing_can_judge_is_handed_back_at_the_depth_and_counted(tmp_path):
    w, q, before, _ = run(tmp_path)
    assert before is not None and DEPTH - 1600 < before <= DEPTH   # the segment crossing the depth is marked
    first = [v.mark for v in q.sent].index(0x1)
    # the fake queue keeps handing over what the kernel would no longer queue: all of it bypass-marked
    assert all(v.verdict is Verdict.ACCEPT and v.mark == 0x1 for v in q.sent[first:])
    assert w.counters.files_unjudged_bypassed == 1
    assert w.stats_event().body.tree()["live"]["files_unjudged_bypassed"] == 1


def test_a_file_scanner_keeps_the_file_queued_to_its_end(tmp_path):
    w, _, before, evs = run(tmp_path, with_scanner=True)
    assert before is None or before > SIZE   # handed back only after the whole file went through the queue
    assert w.counters.files_unjudged_bypassed == 0
    [fi] = [e for e in evs if e["event_type"] == "fileinfo"]
    assert fi["fileinfo"]["state"] == "CLOSED" and fi["fileinfo"]["size"] == SIZE


def test_rules_that_read_bodies_keep_the_file_queued_to_its_end(tmp_path):
    # body rules run on a body once it is complete: their verdict on the file comes at its end
    rules = 'alert http any any -> any any (msg:"x"; file_data; content:"NEVER-THERE"; sid:5;)\n'
    w, _, before, _ = run(tmp_path, rules=rules)
    assert before is None or before > SIZE
    assert w.counters.files_unjudged_bypassed == 0


def test_rules_that_read_no_body_do_not_keep_a_file_queued(tmp_path):
    rules = 'drop tcp any any -> any any (msg:"evil"; content:"EVIL"; sid:7;)\n'
    w, _, before, _ = run(tmp_path, rules=rules)
    assert before is not None and DEPTH - 1600 < before <= DEPTH
    assert w.counters.files_unjudged_bypassed == 1


def test_a_body_rule_that_matched_keeps_the_file_queued_and_its_last_segment_held(tmp_path):
    rules = 'alert http any any -> any any (msg:"bad body"; file_data; content:"BAD!"; sid:6;)\n'
    body = b"BAD!" + b"\0" * (SIZE - 4)
    w, q, before, evs = run(tmp_path, rules=rules, body_limit=1024, body=body)
    assert before is None and w.counters.files_unjudged_bypassed == 0   # blocked, never handed back
    assert w.counters.files_blocked == 1
    assert Verdict.REPEAT in {v.verdict for v in q.sent}   # the completing segment: dropped in the kernel
    [fi] = [e for e in evs if e["event_type"] == "fileinfo"]
    assert fi["fileinfo"]["verdict"]["verdict"] == "malicious"


def test_a_handed_back_flow_logs_its_open_file_when_idle_and_takes_no_new_one(tmp_path):
    out = io.BytesIO()
    eve = EveWriter(out)
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True, file_size_limit=30000),
                    eve.write, None)
    engine.files.scanner = scan = scanner(tmp_path)
    pkts = queued(_http_download(SIZE))
    cut = len(pkts) - 10   # the body never completes: its file stays open
    q = FakeQueue(list(pkts[:cut]))
    w = LiveWorker(q, engine, FlowPolicy(PolicyConfig(inspect_depth=DEPTH)), FakeSender(), eve.write,
                   clock=lambda: 1_700_000_000.0)
    while w.run_once(0):
        pass

    def fileinfos():
        return [e for e in map(json.loads, out.getvalue().splitlines()) if e["event_type"] == "fileinfo"]
    # past its 30,000-byte limit the flow was handed back; once the queue was idle its open file was
    # judged and logged (its scan buffer freed), not kept until the flow ends
    [fi] = fileinfos()
    assert fi["fileinfo"]["state"] == "TRUNCATED" and sum(scan.verdicts.values()) == 1
    # packets queued before the kernel saw the mark still come: their bytes open no second file
    q.pending = list(pkts[cut:cut + 5])
    while w.run_once(0):
        pass
    engine.finish()
    assert len(fileinfos()) == 1 and sum(scan.verdicts.values()) == 1
    assert not engine._trackers   # the released tracker went with its flow


def test_many_downloads_at_once_hold_no_more_than_the_scan_memcap(tmp_path):
    import random
    import zipfile
    from itertools import zip_longest

    from tests.unit.files.test_scanner import zip_of
    # a container, held whole for the scan; 14 segments each, all four open at once
    body = zip_of({"a.bin": random.Random(5).randbytes(20000)}, zipfile.ZIP_STORED)
    downloads = [queued(_http_download(len(body), port=41000 + i, body=body), start_id=1 + 1000 * i)
                 for i in range(4)]
    interleaved = [p for group in zip_longest(*downloads) for p in group if p is not None]
    out = io.BytesIO()
    eve = EveWriter(out)
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True), eve.write, None)
    engine.files.scanner = sc = scanner(tmp_path)
    sc.max_held = 2 * len(body) + len(body) // 2               # room for two and a half
    q = FakeQueue(interleaved)
    w = LiveWorker(q, engine, FlowPolicy(PolicyConfig(inspect_depth=DEPTH)), FakeSender(), eve.write,
                   clock=lambda: 1_700_000_000.0)
    while w.run_once(0):
        pass
    engine.finish()
    live = w.stats_event().body.tree()["live"]
    assert live["scan_held_peak"] <= sc.max_held and live["scan_held_bytes"] == 0
    assert live["scan_memcap_files"] == 2 and all(v.verdict is Verdict.ACCEPT for v in q.sent)
    reasons = sorted(e["fileinfo"]["verdict"]["reason"] for e in map(json.loads, out.getvalue().splitlines())
                     if e["event_type"] == "fileinfo")
    assert reasons == ["no detection"] * 2 + ["unscanned: memory cap (files held for scanning)"] * 2
