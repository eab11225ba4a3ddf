"""`utm stats`'s table says which caps the workers met, summed over the queues."""
from __future__ import annotations

from firmware.cli.stats import limits_line, render


def _worker(**live) -> dict:
    return {"timestamp": "2026-11-23T12:00:00.000000+0000",
            "stats": {"flow": {"memcap_prunes": 0}, "tcp": {"memcap_drops": 0},
                      "defrag": {"memcap_drops": 0}, "app_layer": {"memcap": {"sheds": 2, "held": 10}},
                      "live": {"packets": 10, "bytes": 1000, "verdicts": {"drop": 0}, **live}}}


def test_nothing_hit_says_none():
    got = {0: _worker()}
    got[0]["stats"]["app_layer"]["memcap"]["sheds"] = 0
    assert limits_line(got) == "limits hit: none"


def test_the_caps_met_are_named_and_summed_over_the_queues():
    line = limits_line({0: _worker(scan_memcap_files=1), 1: _worker(events_lost=5)})
    assert line == ("limits hit: app-layer.memcap 4 (flows' unfinished messages forgotten); "
                    "files.scan-memcap 1 (files judged by their digests only); log 5 (events not written)")


def test_the_table_ends_with_the_limits_line():
    assert render({0: _worker()}).splitlines()[-1].startswith("limits hit: app-layer.memcap 2")


def test_a_worker_from_before_these_counters_reads_as_nothing_hit():
    old = {"timestamp": "x", "stats": {"live": {"packets": 1}}}
    assert limits_line({0: old}) == "limits hit: none"
