"""The engine finds exactly what the synthesiser put into a capture."""
from __future__ import annotations

import json
from collections import Counter

from firmware.bench.synth import write_idle_flows, write_mixed
from inspection.config import ChecksumMode, EngineConfig
from inspection.io.offline import inspect_files


def test_mixed_capture_counts_match_what_was_generated(tmp_path):
    truth = write_mixed(tmp_path / "mixed.pcap", size_mb=3, seed=11)
    summary = inspect_files([tmp_path / "mixed.pcap"], EngineConfig(checksum=ChecksumMode.ALL), tmp_path)
    events = [json.loads(l) for l in (tmp_path / "eve.json").read_text().splitlines()]
    types = Counter(e["event_type"] for e in events)
    assert summary.packets == truth.packets
    assert summary.flows == truth.flows == types["flow"]
    assert types["http"] == truth.http_requests
    assert sum(1 for e in events if e["event_type"] == "tls" and e["tls"].get("sni")) == truth.tls_sni
    assert sum(1 for e in events if e["event_type"] == "dns" and e["dns"]["type"] == "request") == truth.dns_queries
    assert types["anomaly"] == 0, [e["anomaly"] for e in events if e["event_type"] == "anomaly"][:5]
    v6 = {e["flow_id"] for e in events if e["event_type"] == "flow" and ":" in e["src_ip"]}
    assert len(v6) == truth.ipv6_flows


def test_idle_flows_are_all_held_and_reported_once(tmp_path):
    truth = write_idle_flows(tmp_path / "idle.pcap", flows=500, shape="keepalive")
    summary = inspect_files([tmp_path / "idle.pcap"], EngineConfig(), tmp_path)
    events = [json.loads(l) for l in (tmp_path / "eve.json").read_text().splitlines()]
    flows = [e for e in events if e["event_type"] == "flow"]
    assert len(flows) == truth.flows == summary.flows
    assert {f["flow"]["reason"] for f in flows} == {"shutdown"}
    assert len({f["flow_id"] for f in flows}) == len(flows)
    assert sum(1 for e in events if e["event_type"] == "http") == truth.http_requests
