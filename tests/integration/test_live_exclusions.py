"""A remote `exclude rule SID` stops a drop rule from blocking on a real `utm run` after its reload.

Root only (skipped otherwise). A three-namespace bridge with a random suffix
(tests/sim/bridgebed.py), not the shared testbed. The desired state is merged
over the base file by the same code `utm net apply --desired` runs
(netconfig.overlay.merge) and written where `utm run --net-config` reads it;
then `utm reload --wait`, as the agent's apply hook does. Transfers are small.
"""
from __future__ import annotations

import tomllib

import pytest

from netconfig.overlay import Overlay, merge
from tests.integration.test_live_bridge import EVIL_RULE, QUIET_RULE, fetch, last_stats, wait
from tests.integration.test_live_reload_sources import QUEUE, Run, bed  # noqa: F401 - bed: its bridge fixture
from tests.sim.bridgebed import missing_reason

pytestmark = [pytest.mark.netns]
_why = missing_reason()
if _why:
    pytestmark.append(pytest.mark.skip(reason=_why))

def test_a_remote_rule_exclusion_stops_the_block_after_reload_and_unexclude_restores_it(bed, tmp_path):   # noqa: F811 - the imported fixture
    rules = tmp_path / "live.rules"
    rules.write_text(EVIL_RULE + QUIET_RULE)
    base = f'[ports]\nwan = "eth0"\nlan = "eth1"\n[inspection]\nqueue = {QUEUE}\n'
    committed = tmp_path / "committed.toml"
    committed.write_text(base)
    utm = Run(bed, tmp_path / "log", "-S", str(rules), "--net-config", str(committed))
    try:
        assert not fetch(bed, 1000, "EVIL")["ok"]                       # sid 1 drops
        merged = merge(tomllib.loads(base), Overlay(exclusions=(("rule", "1"),), revision=2))
        assert merged.not_applied == ()
        committed.write_bytes(merged.text)                              # what `utm net apply --desired` commits
        r = utm.reload()
        assert r.returncode == 0, r.stderr
        assert fetch(bed, 1000, "EVIL")["ok"]                           # excluded: passes, still logged
        assert fetch(bed, 1000)["ok"]
        committed.write_bytes(merge(tomllib.loads(base), Overlay(revision=3)).text)   # unexclude
        assert utm.reload().returncode == 0
        assert not fetch(bed, 1000, "EVIL")["ok"]                       # blocked again
        # the kernel's numbering next to the worker's: every packet it queued reached the worker here
        assert wait(lambda: any((s.get("kernel_queue") or {}).get("queued", 0) >= s["packets"] > 0
                                and s["kernel_queue"]["unreached"] == 0 for s in utm.live_stats()), 10)
    finally:
        events = utm.stop()
    actions = [(e["alert"]["action"], e["alert"].get("excluded")) for e in events if e["event_type"] == "alert"]
    assert ("allowed", "rule 1") in actions and ("blocked", None) in actions
    live = last_stats(events)
    assert live["excluded"]["by_rule"] >= 1 and live["excluded"]["blocks_lifted"] >= 1
