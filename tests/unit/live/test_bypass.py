"""The box-wide bypass measure: NFQUEUE rule matches less what reached a queue."""
from __future__ import annotations

from pathlib import Path

from firmware.live.bypass import INSPECT_CHAIN, BypassMeter, nfqueue_rule_packets
from firmware.live.worker import WorkerSpec, bypass_meter

LISTING = """Chain UTM-INSPECT (4 references)
    pkts      bytes target     prot opt in     out     source               destination
    1200   900000 NFQUEUE    0    --  *      *       0.0.0.0/0            0.0.0.0/0            connbytes 0:33554432 connbytes mode bytes connbytes direction both NFQUEUE balance 0:1 bypass
      30     2000 ACCEPT     0    --  *      *       0.0.0.0/0            0.0.0.0/0
"""


def proc(*lines: tuple[int, int, int, int]) -> str:
    """(queue, waiting, queue_dropped, id_sequence) -> the kernel's /proc lines."""
    return "".join(f"{q:5d} 1234 {w:5d} 2 65535 {qd:5d} 0 {ids:8d}  1\n" for q, w, qd, ids in lines)


def test_the_rule_listing_is_summed_over_nfqueue_rules():
    assert nfqueue_rule_packets(LISTING) == 1200
    assert nfqueue_rule_packets("Chain X\n pkts bytes target\n 5 10 ACCEPT all\n") is None   # no NFQUEUE rule


def test_the_netconfig_ruleset_queues_from_the_chain_the_meter_reads():
    from netconfig import schema
    from netconfig.ruleset import FILTER_CHAINS, Family, render
    cfg = schema.loads('[ports]\nwan = "eth0"\nlan = "eth1"\n')
    assert INSPECT_CHAIN in FILTER_CHAINS
    assert any(ln.startswith(f"-A {INSPECT_CHAIN} ") and "-j NFQUEUE" in ln
               for ln in render(cfg, Family.IPV4).text.splitlines())


def test_the_meter_counts_rule_matches_that_no_queue_numbered():
    m = BypassMeter((0, 1))
    assert m.bypassed is None
    m.feed(100, proc((0, 0, 0, 60), (1, 0, 0, 40)))                 # baseline
    assert m.bypassed == 0
    m.feed(400, proc((0, 0, 0, 200), (1, 0, 0, 140)))               # 300 matched, 240 numbered
    assert m.bypassed == 60
    m.feed(500, proc((0, 0, 0, 300)))                               # queue 1 unbound: --queue-bypass
    assert m.bypassed == 60
    m.feed(600, proc((0, 0, 0, 350), (1, 0, 0, 20)))                # queue 1 bound again, ids from 0
    assert m.bypassed == 60 + (200 - 100) - 100 + (100 - 50 - 20)   # 60 + 0 + 30
    m.feed(50, proc((0, 0, 0, 400), (1, 0, 0, 20)))                 # ruleset reloaded: its counter restarted
    assert m.bypassed == 90
    m.feed(None, "")                                                # unreadable: nothing changes
    assert m.bypassed == 90


def test_queue_full_drops_without_fail_open_reached_the_queue():
    m = BypassMeter((3, 3))
    m.feed(0, proc((3, 0, 0, 0)))
    m.feed(100, proc((3, 0, 10, 90)))
    assert m.bypassed == 0


def test_only_the_first_queue_worker_measures(tmp_path: Path):
    class Fake:
        def packets(self):
            return 5
    spec = WorkerSpec(queue=4, logdir=tmp_path, bypass_chain=INSPECT_CHAIN, queue_range=(4, 5))
    got = bypass_meter(spec, Fake())
    assert got is not None
    got.join(5)
    assert got.meter.bypassed == 0 and got.meter.readings == 1
    assert bypass_meter(WorkerSpec(queue=5, logdir=tmp_path, bypass_chain=INSPECT_CHAIN, queue_range=(4, 5)),
                        Fake()) is None
    assert bypass_meter(WorkerSpec(queue=0, logdir=tmp_path), Fake()) is None   # no --net-config
