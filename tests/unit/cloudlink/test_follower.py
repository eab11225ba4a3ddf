"""The follower over real files and the real SQLite queue: appends, restarts, truncation, rotation."""
from __future__ import annotations

import os
import sqlite3

import pytest

from cloudlink.errors import QueueFullError
from cloudlink.follower import EveFollower
from cloudlink.queue import DetectionQueue
from tests.unit.cloudlink.test_follow import _alert, stats_line


def _keys(q: DetectionQueue) -> list[str]:
    return [d.key for d in q.take(10_000)]


@pytest.fixture
def q(tmp_path):
    with DetectionQueue(tmp_path / "queue.sqlite") as queue:
        yield queue


def test_appended_alerts_are_queued_once_and_the_offset_survives_a_restart(tmp_path, q):
    logdir = tmp_path / "log"
    f = EveFollower(q, [logdir])
    assert f.poll() == 0                                   # no folder, no file yet: fine
    logdir.mkdir()
    eve = logdir / "eve.q0.json"
    eve.write_bytes(_alert(1) + b"\n" + _alert(2)[:30])    # the second line is still being written
    f.poll()
    assert len(_keys(q)) == 1
    with open(eve, "ab") as fh:
        fh.write(_alert(2)[30:] + b"\n")
    f.poll()
    f.poll()
    assert len(_keys(q)) == 2
    f.close()
    with open(eve, "ab") as fh:                            # `utm run` restarted: it appends to the same file
        fh.write(_alert(3) + b"\n")
    f2 = EveFollower(q, [logdir])                          # the agent restarted: offsets come from the queue
    f2.poll()
    assert len(_keys(q)) == 3 and q.stats().duplicates == 0
    assert q.counters("follow.")["follow.alerts"] == 3


def test_every_queue_file_is_followed_and_others_are_not(tmp_path, q):
    (tmp_path / "eve.q0.json").write_bytes(_alert(1) + b"\n")
    (tmp_path / "eve.q1.json").write_bytes(_alert(2) + b"\n")
    (tmp_path / "eve.json").write_bytes(_alert(3) + b"\n")      # an offline run's file
    EveFollower(q, [tmp_path]).poll()
    assert len(_keys(q)) == 2


def test_truncated_file_is_read_again_from_zero(tmp_path, q):
    eve = tmp_path / "eve.q0.json"
    eve.write_bytes(_alert(1) + b"\n" + _alert(2) + b"\n")
    f = EveFollower(q, [tmp_path])
    f.poll()
    eve.write_bytes(_alert(3) + b"\n")                           # copytruncate, then a new line
    f.poll()
    assert len(_keys(q)) == 3
    assert q.counters("follow.")["follow.truncations"] == 1


def test_rotation_finishes_the_old_file_then_reads_the_new_one(tmp_path, q):
    eve = tmp_path / "eve.q0.json"
    eve.write_bytes(_alert(1) + b"\n")
    f = EveFollower(q, [tmp_path])
    f.poll()
    with open(eve, "ab") as fh:
        fh.write(_alert(2) + b"\n")                              # written before the rotation, not read yet
    os.rename(eve, tmp_path / "eve.q0.json.1")
    eve.write_bytes(_alert(3) + b"\n")
    f.poll()
    assert len(_keys(q)) == 3
    assert q.counters("follow.")["follow.rotations"] == 1


def test_rotation_while_the_agent_was_down_starts_the_new_file_at_zero(tmp_path, q):
    eve = tmp_path / "eve.q0.json"
    eve.write_bytes(_alert(1) + b"\n" + _alert(2) + b"\n")
    f = EveFollower(q, [tmp_path])
    f.poll()
    f.close()
    os.rename(eve, tmp_path / "old")
    eve.write_bytes(_alert(3) + b"\n")
    EveFollower(q, [tmp_path]).poll()
    assert len(_keys(q)) == 3


def test_bad_and_oversize_lines_are_counted_and_skipped(tmp_path, q):
    eve = tmp_path / "eve.q0.json"
    eve.write_bytes(b"garbage\n" + b"{" + b"x" * 5000 + b"\n" + _alert(1) + b"\n" + b"y" * 3000)
    f = EveFollower(q, [tmp_path], max_line=2048)
    f.poll()
    with open(eve, "ab") as fh:
        fh.write(b"yyy\n" + _alert(2) + b"\n")
    f.poll()
    assert len(_keys(q)) == 2
    c = q.counters("follow.")
    assert c["follow.bad_lines"] == 1 and c["follow.oversize_lines"] == 2


def test_stats_lines_feed_the_tracker(tmp_path, q):
    (tmp_path / "eve.q0.json").write_bytes(stats_line("2026-11-22T10:00:00.000000+0000", 100) + b"\n"
                                           + stats_line("2026-11-22T10:00:30.000000+0000", 300, kdrop=200) + b"\n")
    f = EveFollower(q, [tmp_path])
    f.poll()
    from datetime import datetime
    now = datetime.fromisoformat("2026-11-22T10:00:40+00:00").timestamp()
    assert f.tracker.report(now).inspected_share == 0.5


def test_a_failed_commit_moves_no_offset(tmp_path, q, monkeypatch):
    """The disk filling up mid-way: nothing is committed, and the same lines are read again later."""
    eve = tmp_path / "eve.q0.json"
    eve.write_bytes(_alert(1) + b"\n")
    f = EveFollower(q, [tmp_path])
    real = q.enqueue_followed

    def full(*a, **kw):
        raise QueueFullError("disk full", 0)
    monkeypatch.setattr(q, "enqueue_followed", full)
    with pytest.raises(QueueFullError):
        f.poll()
    monkeypatch.setattr(q, "enqueue_followed", real)
    f.poll()
    assert len(_keys(q)) == 1


def test_offset_and_detections_are_one_transaction(tmp_path, q):
    """A crash inside the transaction (here: the offset write fails) leaves neither detections nor offset."""
    eve = tmp_path / "eve.q0.json"
    eve.write_bytes(_alert(1) + b"\n")
    con = sqlite3.connect(tmp_path / "queue.sqlite")
    con.execute("CREATE TRIGGER no_offsets BEFORE INSERT ON follow_offsets BEGIN SELECT RAISE(ABORT, 'x'); END")
    con.commit()
    from cloudlink.errors import QueueError
    with pytest.raises(QueueError):
        EveFollower(q, [tmp_path]).poll()
    assert _keys(q) == [] and q.follow_offsets() == {}
    con.execute("DROP TRIGGER no_offsets")
    con.commit()
    con.close()
    EveFollower(q, [tmp_path]).poll()
    assert len(_keys(q)) == 1


def test_agent_drain_ships_followed_alerts_and_reports_the_live_box(tmp_path):
    """The agent loop with the follower: alerts reach the cloud once, stats reach the heartbeat."""
    import asyncio
    from datetime import datetime, timezone

    from cloudlink.daemon import Agent, AgentConfig
    from cloudlink.fake import FakeCloud
    from cloudlink.state import AgentState
    st = AgentState(tmp_path / "agent", ("https://cloud.example:8443",), "dev-0123456789abcdef", "PIN", "")
    st.folder.mkdir()
    now = datetime.now(timezone.utc)
    ts = [datetime.fromtimestamp(now.timestamp() - d, timezone.utc).isoformat() for d in (40, 10)]
    eve = tmp_path / "log" / "eve.q0.json"
    eve.parent.mkdir()
    eve.write_bytes(stats_line(ts[0], 1000) + b"\n" + _alert(1) + b"\n" + _alert(2) + b"\n"
                    + stats_line(ts[1], 1900, drop=5, kdrop=100) + b"\n")
    cloud = FakeCloud()
    with DetectionQueue(st.queue_path) as q:
        agent = Agent(st, cloud, q, AgentConfig(), follower=EveFollower(q, [eve.parent]))
        assert asyncio.run(agent.drain())
        with open(eve, "ab") as fh:
            fh.write(_alert(3) + b"\n")
        assert asyncio.run(agent.drain())
    assert len(cloud.stored) == 3 and cloud.duplicates == 0
    hb = cloud.heartbeats[0]
    assert hb.inspected_share == pytest.approx(900 / 1000)
    c = dict(hb.counters)
    assert c["live.queues"] == 1 and c["live.packets"] == 1900 and c["live.drops"] == 5
    assert c["live.kernel_dropped"] == 100 and c["follow.alerts"] == 2
    assert cloud.heartbeats[1].inspected_share == pytest.approx(900 / 1000)   # no new stats, still fresh


def test_agent_without_a_live_box_sends_no_share(tmp_path):
    import asyncio

    from cloudlink.daemon import Agent, AgentConfig
    from cloudlink.fake import FakeCloud
    from cloudlink.state import AgentState
    st = AgentState(tmp_path, ("https://cloud.example:8443",), "dev-0123456789abcdef", "PIN", "")
    cloud = FakeCloud()
    with DetectionQueue(st.queue_path) as q:
        agent = Agent(st, cloud, q, AgentConfig(), follower=EveFollower(q, [tmp_path / "nothing-here"]))
        assert asyncio.run(agent.drain())
    assert cloud.heartbeats[0].inspected_share is None
    assert dict(cloud.heartbeats[0].counters)["live.queues"] == 0


def test_status_shows_what_was_followed(tmp_path, capsys):
    from firmware.cli.main import main
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "eve.q0.json").write_bytes(_alert(1) + b"\nnot json\n")
    (tmp_path / "agent").mkdir()
    with DetectionQueue(tmp_path / "agent" / "queue.sqlite") as q:
        EveFollower(q, [tmp_path / "log"]).poll()
    assert main(["cloudlink", "status", "--state", str(tmp_path / "agent")]) == 0
    assert "followed EVE files: 1, 1 alerts read, 0 refused, 1 bad and 0 over-long lines skipped" in \
        capsys.readouterr().out


def test_a_line_longer_than_one_read_but_under_the_cap_is_kept(tmp_path, q):
    import orjson

    from tests.unit.cloudlink.test_eve import ALERT
    big = orjson.dumps(dict(ALERT, pcap_cnt=99, http=dict(ALERT["http"], http_user_agent="A" * 600_000)))   # > 256 KiB read
    eve = tmp_path / "eve.q0.json"
    eve.write_bytes(_alert(1) + b"\n" + big[:400_000])
    f = EveFollower(q, [tmp_path])
    f.poll()
    assert len(_keys(q)) == 1
    with open(eve, "ab") as fh:
        fh.write(big[400_000:] + b"\n" + _alert(2) + b"\n")
    f.poll()
    assert len(_keys(q)) == 3 and "follow.oversize_lines" not in q.counters("follow.")


import orjson  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from cloudlink.eve import detection_from_eve  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_op = st.one_of(st.tuples(st.just("write"), st.integers(1, 3), st.integers(1, 1500)),
                st.tuples(st.just("poll")), st.tuples(st.just("restart")), st.tuples(st.just("rotate")),
                st.tuples(st.just("garbage")))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_op, max_size=25))
def test_any_interleaving_of_writes_polls_restarts_and_rotations_queues_each_alert_once(tmp_path_factory, ops):
    """The writer appends alerts in pieces (a line may be split anywhere); the agent polls, restarts and
    the file is rotated (at a line boundary, while the agent holds it open): every alert is queued once."""
    d = tmp_path_factory.mktemp("f")
    eve = d / "log" / "eve.q0.json"
    eve.parent.mkdir()
    written: list[bytes] = []          # complete lines, in order
    pending = b""                      # the rest of the line being written
    n = rotations = 0
    line = b""
    with DetectionQueue(d / "queue.sqlite") as q:
        f = EveFollower(q, [eve.parent])
        held = False
        for op in ops:
            if op[0] == "write":
                for _ in range(op[1]):
                    if not pending:
                        line = pending = _alert(n) + b"\n"
                        n += 1
                    cut = min(len(pending), op[2])
                    with open(eve, "ab") as fh:
                        fh.write(pending[:cut])
                    pending = pending[cut:]
                    if not pending:
                        written.append(line)
            elif op[0] == "garbage" and not pending:
                with open(eve, "ab") as fh:
                    fh.write(b"\x00not json\n")
            elif op[0] == "poll":
                f.poll()
                held = eve.exists()
            elif op[0] == "restart":
                f.close()
                f = EveFollower(q, [eve.parent])
                held = False
            elif op[0] == "rotate" and held and not pending and eve.exists():
                rotations += 1
                os.rename(eve, d / "log" / f"eve.q0.json.{rotations}")
        f.poll()
        f.poll()
        f.close()
        keys = _keys(q)
        assert len(keys) == len(set(keys))
        assert set(keys) == {detection_from_eve(orjson.loads(w)).key for w in written}
        assert q.stats().duplicates == 0
