"""`utm run` configuration without a restart: a Suricata YAML (`-c`) whose EVE switches show in the
workers' output and change with `utm reload`; a network config whose queues and fail mode change.

Root only (skipped otherwise). A three-namespace bridge with a random suffix
(tests/sim/bridgebed.py), `utm run` and `utm reload --wait` as processes;
transfers are small and bounded.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.integration.test_live_bridge import EVIL_RULE, QUIET_RULE, fetch, wait
from tests.integration.test_live_reload_sources import ENV, Run, bed  # noqa: F401 - the bed fixture (queue 21)
from tests.sim.bridgebed import BridgeBed, children, missing_reason, ruleset, run

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


def _bound(b: BridgeBed) -> dict[int, int]:
    """queue -> the kernel's id sequence of its instance (packets numbered since it was bound: a new
    bind starts again from 0)."""
    r = run("cat", "/proc/net/netfilter/nfnetlink_queue", ns=b.box, check=False)
    return {int(f[0]): int(f[7]) for f in (ln.split() for ln in r.stdout.splitlines()) if len(f) > 7}


class NetRun(Run):
    """`utm run --net-config` in the box namespace: the queues and fail mode come from the file only
    (no --queue; the caller waits for the queues it expects)."""

    def __init__(self, b: BridgeBed, logdir: Path, *args: str) -> None:
        self.b, self.logdir = b, logdir
        logdir.mkdir(parents=True)
        self.err = open(logdir / "stderr.txt", "wb")
        self.proc = b.spawn(b.box, [sys.executable, "-m", "firmware.cli.main", "run", "-l", str(logdir),
                                    "--stats-every", "1", *args], env=ENV, stderr=self.err)


def test_reload_applies_a_new_queue_range_and_fail_mode_of_the_net_config(bed, tmp_path: Path):
    rules = tmp_path / "live.rules"
    rules.write_text(EVIL_RULE + QUIET_RULE)
    net = tmp_path / "net.toml"

    def config(workers: int, fail: str) -> None:    # what `utm net apply` commits
        net.write_text(f'[ports]\nwan = "ps"\nlan = "pc"\n[inspection]\nqueue = {QUEUE}\nworkers = {workers}\n'
                       f'fail_mode = "{fail}"\n')

    config(1, "open")
    utm = NetRun(bed, tmp_path / "log", "-S", str(rules), "--net-config", str(net))
    try:
        assert wait(lambda: QUEUE in _bound(bed), 30), utm.stderr()
        assert not fetch(bed, 1000, "EVIL")["ok"]
        workers = set(children(utm.proc.pid))

        # more queues: the ruleset balances over two (net apply first), then the reload starts the second worker
        config(2, "open")
        bed.apply_rules(ruleset(QUEUE, balance=2))
        r = utm.reload()
        assert r.returncode == 0 and r.stdout.startswith("utm reload: 2 worker(s) reloaded"), r.stdout + r.stderr
        assert wait(lambda: {QUEUE, QUEUE + 1} <= set(_bound(bed)), 10)
        assert workers < set(children(utm.proc.pid))                       # the first worker kept its process
        assert not any(fetch(bed, 1000, "EVIL", timeout=10)["ok"] for _ in range(4))   # whichever queue
        assert all(fetch(bed, 1000)["ok"] for _ in range(4))

        # fail closed: the ruleset drops when no worker is bound; each worker switches its bound queue
        numbered = _bound(bed)
        # --queue-balance hashes the addresses: this one client and server land on one queue; the first
        # queue saw the first fetch, before the balance
        assert all(numbered[q] > 0 for q in (QUEUE, QUEUE + 1)), numbered
        config(2, "closed")
        bed.apply_rules(ruleset(QUEUE, balance=2, bypass=False))
        r = utm.reload()
        assert r.returncode == 0, r.stdout + r.stderr
        assert wait(lambda: utm.stderr().count("fail mode closed set on the bound queue") == 2, 10), utm.stderr()
        now = _bound(bed)
        # the same bound queues: their packet numbering goes on (a new bind would start it again)
        assert set(now) >= {QUEUE, QUEUE + 1} and all(now[q] >= numbered[q] for q in (QUEUE, QUEUE + 1)), now
        assert workers < set(children(utm.proc.pid))                       # rebound in place, not restarted
        assert fetch(bed, 1000)["ok"] and not fetch(bed, 1000, "EVIL", timeout=10)["ok"]

        # a config that cannot be used: everything kept, the reload fails and says why
        net.write_text("[inspection\n")
        r = utm.reload()
        assert r.returncode == 1 and "refused" in r.stderr, r.stderr
        assert "queues, fail mode and the rest kept" in utm.stderr()
        assert {QUEUE, QUEUE + 1} <= set(_bound(bed)) and fetch(bed, 1000)["ok"]

        # fewer queues: the ruleset first (nothing reaches the second queue any more), then the reload
        config(1, "closed")
        bed.apply_rules(ruleset(QUEUE, bypass=False))
        second = set(children(utm.proc.pid)) - workers
        r = utm.reload()
        assert r.returncode == 0 and "1 worker(s) reloaded" in r.stdout, r.stdout + r.stderr
        assert wait(lambda: QUEUE + 1 not in _bound(bed) and set(children(utm.proc.pid)) == workers, 10)
        assert second and fetch(bed, 1000)["ok"] and not fetch(bed, 1000, "EVIL", timeout=10)["ok"]
    finally:
        utm.stop()
        bed.apply_rules(ruleset(QUEUE))                                    # the module's bed as it was
