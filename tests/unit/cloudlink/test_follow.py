"""The follower's pure core: any split of the same bytes yields the same lines once; stats -> share."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudlink.follow import (Cursor, LiveStatsTracker, StatsSample, convert, split_lines, stats_sample)
from tests.unit.cloudlink.test_eve import ALERT


def _alert(i: int) -> bytes:
    return orjson.dumps(dict(ALERT, pcap_cnt=i))


def stats_line(ts: str, packets: int, drop: int = 0, kdrop: int = 0, restarts: int = 0) -> bytes:
    return orjson.dumps({"timestamp": ts, "event_type": "stats", "stats": {"decoder": {"pkts": packets}, "live": {
        "packets": packets, "bytes": packets * 100, "verdicts": {"accept": packets - drop, "drop": drop},
        "kernel_queue": {"waiting": 0, "queue_dropped": kdrop, "user_dropped": 0},
        "worker_restarts": restarts, "engine_errors": 0}}})


def feed_in_pieces(stream: bytes, cuts: list[int], max_line: int) -> tuple[list[bytes], int]:
    """What a driver does: the file grows piece by piece; each time, read from the offset to the end."""
    cur = Cursor(1)
    lines: list[bytes] = []
    oversize = 0
    ends = sorted({min(c, len(stream)) for c in cuts}) + [len(stream)]
    for end in ends:
        sp = split_lines(stream[cur.offset:end], cur.skipping, max_line)
        lines += sp.lines
        oversize += sp.oversize
        cur = Cursor(1, cur.offset + sp.consumed, sp.skipping)
    return lines, oversize


_line = st.one_of(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
                  st.integers(0, 10**6).map(_alert))


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=12), st.lists(st.integers(0, 5000), max_size=20), st.integers(8, 400))
def test_any_split_yields_the_same_lines_once(lines, cuts, max_line):
    stream = b"".join(x + b"\n" for x in lines)
    got, oversize = feed_in_pieces(stream, cuts, max_line)
    assert got == [x for x in lines if len(x) <= max_line]
    assert oversize == sum(1 for x in lines if len(x) > max_line)


def test_partial_last_line_waits_for_its_newline():
    sp = split_lines(b'{"a":1}\n{"b":')
    assert sp.lines == (b'{"a":1}',) and sp.consumed == 8 and not sp.skipping
    sp2 = split_lines(b'{"b":2}\n')
    assert sp2.lines == (b'{"b":2}',)


def test_oversize_line_skipped_even_across_reads():
    sp = split_lines(b"x" * 20, max_line=10)
    assert sp.lines == () and sp.oversize == 1 and sp.skipping and sp.consumed == 20
    sp = split_lines(b"xxxx\nok\n", skipping=True, max_line=10)
    assert sp.lines == (b"ok",) and sp.oversize == 0 and not sp.skipping


def test_convert_counts_bad_lines_and_refusals():
    lines = [_alert(1), b"not json", b"[1,2]", b'{"event_type":"alert"}', b'{"event_type":"flow"}', b"",
             stats_line("2026-11-22T10:00:00.000000+0000", 5)]
    c = convert(lines)
    assert len(c.detections) == 1 and len(c.stats) == 1
    assert c.counts == {"follow.lines": 7, "follow.bad_lines": 2, "follow.alerts": 2, "follow.refused": 1}


def test_offline_stats_without_live_branch_are_not_samples():
    assert stats_sample({"timestamp": "2026-11-22T10:00:00+00:00", "stats": {"decoder": {}}}) is None
    assert stats_sample({"timestamp": "garbage", "stats": {"live": {}}}) is None


def _sample(ts: float, packets: int, kdrop: int = 0, restarts: int = 0) -> StatsSample:
    return StatsSample(ts=ts, packets=packets, drops=0, kernel_dropped=kdrop, worker_restarts=restarts,
                       engine_errors=0)


def test_share_is_judged_over_offered_in_the_interval():
    t = LiveStatsTracker()
    t.feed("q0", _sample(100, 1000, kdrop=10))          # a baseline only
    assert t.report(101).inspected_share is None
    t.sent()
    t.feed("q0", _sample(130, 1900, kdrop=110))         # 900 judged, 100 dropped by the kernel
    t.feed("q1", _sample(130, 50))
    t.feed("q1", _sample(160, 150))                     # 100 judged
    r = t.report(161)
    assert r.inspected_share == pytest.approx(1000 / 1100)
    assert dict(r.counters)["live.queues"] == 2 and dict(r.counters)["live.packets"] == 2050
    t.sent()
    # no new stats: the last share holds while fresh, then it is unknown
    assert t.report(200).inspected_share == pytest.approx(1000 / 1100)
    assert t.report(160 + 151).inspected_share is None
    assert dict(t.report(400).counters)["live.queues"] == 0


def test_a_failed_heartbeat_loses_no_interval():
    t = LiveStatsTracker()
    t.feed("q0", _sample(100, 0))
    t.feed("q0", _sample(130, 100, kdrop=100))
    assert t.report(131).inspected_share == 0.5          # not sent: the cloud was down
    t.feed("q0", _sample(160, 400, kdrop=100))
    assert t.report(161).inspected_share == 0.8          # both intervals: 400 judged of 500 offered
    t.sent()
    t.feed("q0", _sample(190, 500, kdrop=100))
    assert t.report(191).inspected_share == 1.0


def test_worker_restart_counts_from_zero_and_idle_is_unknown():
    t = LiveStatsTracker()
    t.feed("q0", _sample(100, 1000))
    t.feed("q0", _sample(130, 40, restarts=1))          # a new worker: its 40 packets are the interval's
    assert t.report(131).inspected_share == 1.0
    t.sent()
    t.feed("q0", _sample(160, 40, restarts=1))          # no traffic in the interval: not a guess
    assert t.report(161).inspected_share is None


def test_a_stats_line_from_a_live_worker_is_sampled():
    s = stats_sample(orjson.loads(stats_line("2026-11-22T10:00:00.000000+0000", 7, drop=2, kdrop=3)))
    assert (s.packets, s.drops, s.kernel_dropped) == (7, 2, 3)


def test_a_blocked_file_alert_gets_the_name_of_its_malicious_fileinfo():
    from cloudlink.follow import BadFiles
    sha = "ab" * 32
    fileinfo = orjson.dumps({"timestamp": "2026-11-22T10:00:00.000000+0000", "flow_id": 7, "event_type": "fileinfo",
                             "src_ip": "192.0.2.1", "dest_ip": "10.0.0.5", "fileinfo": {
                                 "filename": "/eicar.com", "md5": "44d88612fea8a8f36de82e1278abb02f", "sha256": sha,
                                 "verdict": {"verdict": "malicious", "reason": "hash"}}})
    alert = orjson.dumps({"timestamp": "2026-11-22T10:00:00.000100+0000", "flow_id": 7, "event_type": "alert",
                          "src_ip": "192.0.2.1", "dest_ip": "10.0.0.5", "alert": {
                              "action": "blocked", "gid": 3, "signature_id": 9100001, "rev": 1,
                              "signature": "Malicious file /eicar.com: hash", "category": "malware", "stars": 3,
                              "metadata": {"sha256": [sha]}}})
    [d] = convert([fileinfo, alert], BadFiles()).detections
    assert (d.file_name, d.file_sha256, d.file_md5) == ("/eicar.com", sha, "44d88612fea8a8f36de82e1278abb02f")
    [alone] = convert([alert]).detections                 # the fileinfo was read before a restart: hash only
    assert (alone.file_name, alone.file_sha256, alone.key) == (None, sha, d.key)
    clean = fileinfo.replace(b'"malicious"', b'"clean"')
    [other] = convert([clean, alert], BadFiles()).detections
    assert other.file_name is None


def test_packets_the_kernel_numbered_but_never_delivered_lower_the_share():
    rec = {"timestamp": "2026-11-22T10:00:00+00:00", "stats": {"live": {
        "packets": 800, "kernel_queue": {"waiting": 0, "queue_dropped": 5, "user_dropped": 0, "queued": 950,
                                         "unreached": 150}}}}
    s = stats_sample(rec)
    assert s is not None and s.kernel_unreached == 150 and s.missed == 155
    t = LiveStatsTracker()
    t.feed("q0", StatsSample(ts=100, packets=0, drops=0, kernel_dropped=0, worker_restarts=0, engine_errors=0))
    t.feed("q0", StatsSample(ts=130, packets=800, drops=0, kernel_dropped=5, worker_restarts=0, engine_errors=0,
                             kernel_unreached=150))       # fail-open accepted 150 whose send to the worker failed
    r = t.report(131)
    assert r.inspected_share == pytest.approx(800 / 955) and dict(r.counters)["live.kernel_unreached"] == 150
    # without fail-open a failed send is user_dropped: counted once, not twice
    s = StatsSample(ts=0, packets=0, drops=0, kernel_dropped=7, worker_restarts=0, engine_errors=0,
                    kernel_unreached=4, user_dropped=4)
    assert s.missed == 7


def test_what_the_nfqueue_rule_passed_without_a_queue_is_offered_not_judged():
    base = dict(drops=0, kernel_dropped=0, worker_restarts=0, engine_errors=0)
    t = LiveStatsTracker()
    t.feed("q0", StatsSample(ts=100, packets=0, kernel_bypassed=0, **base))
    t.feed("q1", StatsSample(ts=100, packets=0, **base))                 # not the measuring worker
    t.feed("q0", StatsSample(ts=130, packets=500, kernel_bypassed=400, **base))
    t.feed("q1", StatsSample(ts=130, packets=100, **base))
    r = t.report(131)
    assert r.inspected_share == pytest.approx(600 / 1000) and dict(r.counters)["live.kernel_bypassed"] == 400
    rec = {"timestamp": "2026-11-22T10:00:00+00:00", "stats": {"live": {"packets": 1, "kernel_bypassed": 7}}}
    assert stats_sample(rec).kernel_bypassed == 7
    assert stats_sample({"timestamp": rec["timestamp"], "stats": {"live": {"packets": 1}}}).kernel_bypassed is None
