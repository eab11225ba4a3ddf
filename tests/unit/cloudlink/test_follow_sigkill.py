"""`utm cloudlink run --eve-dir` SIGKILLed again and again while a live box appends alerts to two EVE files:
every alert shows up in `utm cloud events --json` exactly once.

The writer appends half lines, waits, and finishes them, so kills also land
while a partial line waits for its newline. Half the kills come as soon as
the cloud stored a new batch (before the ack is applied), half after a
random delay (anywhere: reading, committing an offset, uploading).
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from cloudlink.eve import detection_from_eve
from cloudlink.transport import enrol
from refcloud.app import CloudConfig
from tests.sim.cloud import CloudThread, new_code
from tests.unit.cloudlink.test_eve import ALERT
from tests.unit.cloudlink.test_sigkill import _agent, _cloud_rows

ROOT = Path(__file__).resolve().parents[3]
ALERTS = 240
KILLS = 8


def _line(i: int) -> bytes:
    return orjson.dumps(dict(ALERT, pcap_cnt=i, alert=dict(ALERT["alert"], stars=i % 4))) + b"\n"


def _writer(logdir: Path, stop: threading.Event) -> None:
    rng = random.Random(7)
    fhs = [open(logdir / f"eve.q{n}.json", "ab", buffering=0) for n in (0, 1)]
    try:
        for i in range(ALERTS):
            line = _line(i)
            cut = rng.randrange(1, len(line))
            fh = fhs[i % 2]
            fh.write(line[:cut])
            time.sleep(rng.uniform(0, 0.06))      # ~7 s in all: the kills land while it writes
            fh.write(line[cut:])
            if stop.is_set():
                return
    finally:
        for fh in fhs:
            fh.close()


@pytest.mark.slow
def test_followed_alerts_reach_the_cloud_once_across_sigkills(tmp_path):
    new_code(tmp_path / "cloud")
    db = tmp_path / "cloud" / "cloud.sqlite"
    logdir = tmp_path / "log"
    logdir.mkdir()
    procs: list[subprocess.Popen] = []
    rng = random.Random(3)
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(logdir, stop))
    cloud = CloudThread(tmp_path / "cloud", CloudConfig(ingest_delay_s=0.3)).start()
    try:
        st = asyncio.run(enrol(cloud.url, new_code(tmp_path / "cloud"), tmp_path / "agent", "0.1.0", timeout_s=10))
        writer.start()
        deadline = time.monotonic() + 120
        for kill in range(KILLS):
            before = _cloud_rows(db)
            proc = _agent(st.folder, "--eve-dir", str(logdir))
            procs.append(proc)
            if kill % 2:
                time.sleep(rng.uniform(0.3, 1.5))
            else:
                while _cloud_rows(db) == before and proc.poll() is None and writer.is_alive():
                    assert time.monotonic() < deadline, "agent made no progress"
                    time.sleep(0.01)
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        writer.join(60)
        assert not writer.is_alive()
        final = _agent(st.folder, "--eve-dir", str(logdir), "--drain")
        procs.append(final)
        assert final.wait(60) == 0, final.stderr.read().decode() if final.stderr else ""
    finally:
        stop.set()
        if writer.is_alive():
            writer.join(10)
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
                pr.wait(10)
            if pr.stderr:
                pr.stderr.close()
        cloud.stop()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "firmware.cli.main", "cloud", "events", "--state",
                          str(tmp_path / "cloud"), "--json"], env=env, capture_output=True, text=True, timeout=60,
                         check=True).stdout
    rows = [json.loads(x) for x in out.splitlines()]
    want = {detection_from_eve(orjson.loads(_line(i))).key for i in range(ALERTS)}
    assert len(rows) == ALERTS and {r["key"] for r in rows} == want
    con = sqlite3.connect(tmp_path / "agent" / "queue.sqlite")
    c = dict(con.execute("SELECT name, value FROM counters"))
    con.close()
    assert c.get("follow.alerts") == ALERTS and c.get("follow.bad_lines", 0) == 0
    assert c.get("duplicates", 0) == 0           # no line was read twice: offsets moved with the detections
