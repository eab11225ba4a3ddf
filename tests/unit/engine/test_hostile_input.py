"""Hostile traffic never raises out of the data path; limits are counted."""
from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from firmware.bench.synth import write_mixed
from inspection.config import ChecksumMode, EngineConfig
from inspection.engine import Engine
from inspection.io.offline import inspect_files
from tests.unit.engine.test_inspect_cli import http_conversation, write_pcap

_REAL = [f for _, f in http_conversation()]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=300), st.floats(0, 2e9, allow_nan=False)), max_size=30),
       st.sampled_from([0, 1, 101, 113, 276]))
def test_random_frames_never_raise(frames, linktype):
    eng = Engine(EngineConfig(checksum=ChecksumMode.ALL), lambda e: None)
    for data, ts in frames:
        eng.process(linktype, data, ts, len(data))
    eng.finish()


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 40))
def test_mutated_real_conversations_never_raise(seed, flips):
    rnd = random.Random(seed)
    frames = [bytearray(f) for f in _REAL]
    for _ in range(flips):
        f = rnd.choice(frames)
        f[rnd.randrange(len(f))] = rnd.randrange(256)
    rnd.shuffle(frames)
    events = []
    eng = Engine(EngineConfig(checksum=ChecksumMode.NONE), events.append)
    for i, f in enumerate(frames):
        cut = bytes(f[:rnd.randrange(len(f) + 1)]) if rnd.random() < 0.2 else bytes(f)
        eng.process(1, cut, 1_700_000_000.0 + i * 0.001, len(f))
    eng.finish()
    assert all(e.event_type in ("flow", "anomaly", "http", "tls", "dns", "fileinfo", "stats") for e in events)


def test_flow_memcap_prunes_are_counted_and_reported(tmp_path):
    write_mixed(tmp_path / "m.pcap", size_mb=1, seed=3)
    cfg, _ = EngineConfig.from_sets(["flow.memcap=64kb"], EngineConfig(checksum=ChecksumMode.NONE))
    summary = inspect_files([tmp_path / "m.pcap"], cfg, tmp_path)
    assert summary.limits["flow.memcap_prunes"] > 0
    assert summary.limits["flow.emergency_entered"] >= 1
    reasons = [l for l in (tmp_path / "eve.json").read_text().splitlines() if '"reason":"memcap"' in l]
    assert len(reasons) == summary.limits["flow.memcap_prunes"]


def test_stream_depth_is_counted(tmp_path):
    pcap = write_pcap(tmp_path / "h.pcap", http_conversation())
    cfg, _ = EngineConfig.from_sets(["stream.reassembly.depth=100"], EngineConfig(checksum=ChecksumMode.NONE))
    summary = inspect_files([pcap], cfg, tmp_path)
    assert summary.limits["stream.depth_reached"] >= 1
