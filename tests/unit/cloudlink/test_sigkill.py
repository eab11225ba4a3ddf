"""`utm cloudlink run` killed with SIGKILL in the middle of uploads, ten times: nothing lost, nothing duplicated.

The cloud waits 0.3 s between storing a batch and answering, and the test
kills the agent as soon as it sees a new batch in the cloud's database, so
every kill lands after the cloud stored a batch and before the agent
applied the ack: the worst moment for at-least-once delivery.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloudlink.queue import DetectionQueue
from cloudlink.transport import enrol
from refcloud.app import CloudConfig
from tests.sim.cloud import CloudThread, new_code
from tests.unit.cloudlink.helpers import det

ROOT = Path(__file__).resolve().parents[3]
KILLS = 10
EVENTS = 400


def _cloud_rows(db: Path) -> int:
    con = sqlite3.connect(db, timeout=5)
    try:
        return con.execute("SELECT COUNT(*) FROM detections").fetchone()[0]
    finally:
        con.close()


def _agent(state: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "firmware.cli.main", "cloudlink", "run", "--state", str(state),
                             "--batch-size", "20", "--poll-interval", "0.05", "--heartbeat-interval", "60", *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_mid_upload_loses_and_duplicates_nothing(tmp_path):
    new_code(tmp_path / "cloud")
    db = tmp_path / "cloud" / "cloud.sqlite"
    procs: list[subprocess.Popen] = []
    cloud = CloudThread(tmp_path / "cloud", CloudConfig(ingest_delay_s=0.3)).start()
    try:
        st = asyncio.run(enrol(cloud.url, new_code(tmp_path / "cloud"), tmp_path / "agent", "0.1.0", timeout_s=10))
        with DetectionQueue(st.queue_path) as q:
            q.enqueue([det(i, stars=i % 4) for i in range(EVENTS)])
        deadline = time.monotonic() + 90
        kills = 0
        while kills < KILLS:
            before = _cloud_rows(db)
            proc = _agent(st.folder)
            procs.append(proc)
            while _cloud_rows(db) == before and proc.poll() is None:
                assert time.monotonic() < deadline, "agent made no progress"
                time.sleep(0.01)
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            os.kill(proc.pid, signal.SIGKILL)       # the batch is stored, the ack not yet applied
            proc.wait(10)
            kills += 1
        final = _agent(st.folder, "--drain")
        procs.append(final)
        assert final.wait(60) == 0, final.stderr.read().decode() if final.stderr else ""
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
                pr.wait(10)
            if pr.stderr:
                pr.stderr.close()
        cloud.stop()
    con = sqlite3.connect(db)
    keys = [r[0] for r in con.execute("SELECT key FROM detections")]
    dups = dict(con.execute("SELECT name, value FROM counters")).get("ingest.duplicates", 0)
    con.close()
    assert len(keys) == EVENTS and set(keys) == {det(i).key for i in range(EVENTS)}
    assert dups >= KILLS        # each kill left a stored-but-unacked batch that was resent and absorbed
    with DetectionQueue(tmp_path / "agent" / "queue.sqlite") as q:
        s = q.stats()
    assert s.depth == 0 and s.dropped == 0


def test_sigterm_stops_the_agent_cleanly(tmp_path):
    new_code(tmp_path / "cloud")
    with CloudThread(tmp_path / "cloud") as cloud:
        st = asyncio.run(enrol(cloud.url, new_code(tmp_path / "cloud"), tmp_path / "agent", "0.1.0", timeout_s=10))
        proc = _agent(st.folder)
        try:
            deadline = time.monotonic() + 30
            while not (st.folder / "status.json").exists():       # written after the first heartbeat
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            proc.stderr.close()
