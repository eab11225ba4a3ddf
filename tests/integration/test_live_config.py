"""`utm run` configuration without a restart: a Suricata YAML (`-c`) whose EVE switches show in the
workers' output and change with `utm reload`.

Root only (skipped otherwise). A three-namespace bridge with a random suffix
(tests/sim/bridgebed.py), `utm run` and `utm reload --wait` as processes;
transfers are small and bounded.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.test_live_bridge import PEER, PORT, QUIET_RULE, fetch, wait
from tests.integration.test_live_reload_sources import Run
from tests.sim.bridgebed import BridgeBed, missing_reason

pytestmark = [pytest.mark.netns]
_why = missing_reason()
if _why:
    pytestmark.append(pytest.mark.skip(reason=_why))

QUEUE = 21      # Run's queue (its own namespaces: no clash with other modules' beds)
META_RULE = ('drop tcp any any -> $SERVERS any (msg:"evil"; content:"EVIL"; classtype:trojan-activity; '
             'metadata: created_at 2026_11_23; sid:1;)\n')
YAML = """%YAML 1.1
---
vars:
  address-groups:
    SERVERS: "192.0.2.20"
stream:
  inline: no
outputs:
  - fast:
      enabled: yes
  - eve-log:
      types:
        - alert:
            metadata: {meta}
            payload: no
            packet: no
"""


@pytest.fixture(scope="module")
def bed():
    b = BridgeBed(queue=QUEUE)
    b.up()
    try:
        b.python(b.server, PEER, "serve", str(PORT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait(lambda: fetch(b, 10)["ok"], 5)
        yield b
    finally:
        b.close()


def _alerts(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event_type"] == "alert"]


def test_a_yaml_sets_what_the_workers_log_and_a_reload_rereads_it(bed, tmp_path: Path):
    rules = tmp_path / "live.rules"
    rules.write_text(META_RULE + QUIET_RULE)
    conf = tmp_path / "suricata.yaml"
    conf.write_text(YAML.format(meta="no"))
    utm = Run(bed, tmp_path / "log", "-S", str(rules), "-c", str(conf))
    try:
        err = utm.stderr()
        assert "outputs.fast" in err and "not honoured" in err and "stream.inline: kept on" in err, err
        assert not fetch(bed, 1000, "EVIL")["ok"]          # $SERVERS from the file reached the rule
        assert fetch(bed, 1000)["ok"]
        conf.write_text(YAML.format(meta="yes"))
        r = utm.reload()
        assert r.returncode == 0 and "worker(s) reloaded" in r.stdout, r.stdout + r.stderr
        assert not fetch(bed, 1000, "EVIL")["ok"]
        conf.write_text("outputs: [")                       # broken: refused, the old config kept
        r = utm.reload()
        assert r.returncode == 1 and "not valid YAML" in r.stderr, r.stderr
        assert not fetch(bed, 1000, "EVIL")["ok"] and fetch(bed, 1000)["ok"]
        assert wait(lambda: any(s.get("reload_errors") == 1 for s in utm.live_stats()), 10)
    finally:
        events = utm.stop()
    first, second, third = _alerts(events)
    assert first["alert"]["action"] == "blocked" and "metadata" not in first["alert"]
    assert not {"payload", "packet"} & set(first) and "payload" not in second   # the file's switches
    assert second["alert"]["metadata"] == {"created_at": ["2026_11_23"]}
    assert third["alert"]["metadata"] == {"created_at": ["2026_11_23"]}   # the reloaded file, kept after the broken one
