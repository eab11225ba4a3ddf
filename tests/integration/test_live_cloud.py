"""A live box's block reaches the cloud: real `utm run` inline on a bridge in namespaces, the agent
following its EVE files, a reference cloud on loopback TLS.

Root only (skipped otherwise). The namespaces carry a random suffix (BridgeBed)
and are removed afterwards; the transfers are a few KB, bounded in time.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloudlink.transport import enrol
from tests.integration.test_live_bridge import EVIL_RULE, PEER, PORT, Utm, fetch, wait
from tests.sim.bridgebed import BridgeBed, missing_reason
from tests.sim.cloud import CloudThread, new_code

pytestmark = [pytest.mark.netns]
_why = missing_reason()
if _why:
    pytestmark.append(pytest.mark.skip(reason=_why))

ROOT = Path(__file__).resolve().parents[2]
QUEUE = 11          # the bed's ruleset queues to 11 (queue numbers are per namespace)


def utm(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "firmware.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def _lines(logdir: Path, kind: str) -> int:
    return sum(line.count(f'"event_type":"{kind}"') for f in logdir.glob("eve.q*.json") for line in [f.read_text()])


def test_a_block_on_the_live_box_is_stored_by_the_cloud(tmp_path):
    bed = BridgeBed(queue=QUEUE)
    bed.up()
    logdir = tmp_path / "log"
    logdir.mkdir()
    rules = tmp_path / "live.rules"
    rules.write_text(EVIL_RULE)
    new_code(tmp_path / "cloud")
    cloud = CloudThread(tmp_path / "cloud").start()
    live = None
    try:
        bed.python(bed.server, PEER, "serve", str(PORT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait(lambda: fetch(bed, 10)["ok"], 5)
        st = asyncio.run(enrol(cloud.url, new_code(tmp_path / "cloud"), tmp_path / "agent", "0.1.0", timeout_s=10))
        live = Utm(bed, logdir, rules, "--stats-every", "0.5")
        assert wait(lambda: _lines(logdir, "stats") >= 1, 10), live.stderr()   # a baseline before the traffic
        evil = fetch(bed, 1000, "EVIL")
        clean = fetch(bed, 20_000)
        n = _lines(logdir, "stats")
        assert wait(lambda: _lines(logdir, "alert") == 1 and _lines(logdir, "stats") >= n + 2, 10), live.stderr()
        # the agent runs beside the live box, outside its namespace, and only reads its files
        r = utm("cloudlink", "run", "--state", str(st.folder), "--eve-dir", str(logdir), "--drain")
        assert r.returncode == 0, r.stderr
    finally:
        if live is not None:
            live.stop()
        cloud.stop()
        bed.close()
    assert not evil["ok"] and clean["ok"]
    rows = [json.loads(x) for x in utm("cloud", "events", "--state", str(tmp_path / "cloud"), "--json")
            .stdout.splitlines()]
    assert [(r["rule_id"], r["action"], r["rule_msg"]) for r in rows] == [(1, "blocked", "evil")]
    assert rows[0]["src_ip"] and rows[0]["device_id"] == st.device_id
    [dev] = [json.loads(x) for x in utm("cloud", "devices", "--state", str(tmp_path / "cloud"), "--json")
             .stdout.splitlines()]
    hb = dev["heartbeat"]
    assert hb["inspected_share"] is not None and 0 < hb["inspected_share"] <= 1
    assert hb["counters"]["live.queues"] == 1 and hb["counters"]["live.packets"] > 0
    assert hb["counters"]["follow.alerts"] == 1
    print(f"inspected_share {hb['inspected_share']}, live counters "
          f"{ {k: v for k, v in hb['counters'].items() if k.startswith(('live.', 'follow.'))} }")
