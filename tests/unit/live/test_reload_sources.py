"""Reload re-opens the definitions package and the network config: real packages signed here, a worker on a fake queue."""
from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.live.sources import Loaded, SourceLoadError, discard, load_all
from firmware.live.worker import WorkerSpec, _finish_reload, _Reloader, stats_event
from inspection.config import ChecksumMode, EngineConfig
from inspection.detect.bundle import compile_bundle, encode_bundle
from inspection.engine import Engine
from inspection.io.live import LiveWorker
from inspection.io.senders import FakeSender
from inspection.io.nfqueue import FakeQueue, Verdict
from inspection.output.eve import EveWriter
from inspection.policy.verdict import FlowPolicy
from signatures.definitions import ComponentKind, build_package
from signatures.parser import parse_rule
from tests.unit.live.test_live_worker import evil_conversation, queued

QUIET = 'alert tcp any any -> any any (msg:"never"; content:"NOT-IN-ANY-TEST"; sid:2;)'
EVIL = 'drop tcp any any -> any any (msg:"evil"; content:"EVIL"; classtype:trojan-activity; sid:1;)'


def bundle(*rules: str) -> bytes:
    content, _ = compile_bundle([parse_rule(r) for r in rules])
    return encode_bundle(content)


def sign(key: Ed25519PrivateKey, version: str, *rules: str) -> bytes:
    parts = [(ComponentKind.RULES, "rules.bundle", bundle(*rules)),
             (ComponentKind.HASHES, "block.sha256", b"%064x  test\n" % len(rules))]
    return build_package(parts, version=version, created="2026-11-22T00:00:00Z", key=key)


class Store:
    """STATE/definitions as the agent keeps it: packages/V.pkg and the current.pkg symlink."""

    def __init__(self, tmp: Path) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.pub = tmp / "vendor.pub"
        self.pub.write_bytes(self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.folder = tmp / "state" / "definitions"
        (self.folder / "packages").mkdir(parents=True)
        self.current = self.folder / "current.pkg"

    def install(self, version: str, data: bytes) -> None:
        (self.folder / "packages" / f"{version}.pkg").write_bytes(data)
        tmp = self.folder / "current.tmp"
        tmp.symlink_to(f"packages/{version}.pkg")
        os.replace(tmp, self.current)      # the agent's one switch


def spec_for(tmp: Path, store: Store, **kw) -> WorkerSpec:
    return WorkerSpec(queue=0, logdir=tmp, definitions=store.current, trusted_keys=(str(store.pub),), **kw)


def worker_for(loaded: Loaded):
    out = io.BytesIO()
    eve = EveWriter(out)
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True), eve.write,
                    loaded.judges.inspector, loaded.judges.urlcat)
    q = FakeQueue([])
    w = LiveWorker(q, engine, FlowPolicy(loaded.policy), FakeSender(), eve.write, clock=lambda: 1_700_000_000.0)
    return w, q


def build(spec: WorkerSpec) -> tuple[bool, object]:
    """What a reload of `spec` builds beside the loop, waited for (bounded)."""
    r = _Reloader(spec)
    r.start()
    deadline = time.monotonic() + 60
    while (done := r.poll()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return done


def reload(spec: WorkerSpec, w, live: Loaded) -> Loaded:
    return _finish_reload(w, spec, build(spec), live)


def evil_verdicts(w, q, start_id: int) -> list[Verdict]:
    q.pending = queued(evil_conversation(), start_id)
    q.sent.clear()
    while w.run_once(0):
        pass
    return [v.verdict for v in q.sent]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path)
    s.install("1.0", sign(s.key, "1.0", QUIET))
    return s


def test_reload_takes_the_package_the_symlink_points_at_now(tmp_path, store):
    spec = spec_for(tmp_path, store)
    live = load_all(spec)
    w, q = worker_for(live)
    assert live.definitions_version == "1.0" and live.folder is not None and live.folder.is_dir()
    assert Verdict.REPEAT not in evil_verdicts(w, q, 1)       # 1.0 has no EVIL rule
    store.install("1.1", sign(store.key, "1.1", QUIET, EVIL))
    new = reload(spec, w, live)
    assert new is not live and new.definitions_version == "1.1" and new.folder != live.folder
    discard(live)
    assert not live.folder.exists() and new.folder.is_dir()
    assert Verdict.REPEAT in evil_verdicts(w, q, 100)          # the new rule blocks, same worker
    out = io.BytesIO()
    EveWriter(out).write(stats_event(w, 0, 0, new))
    live_stats = json.loads(out.getvalue())["stats"]["live"]
    assert live_stats["definitions_version"] == "1.1" and live_stats["reloads"] == 1
    discard(new)


@pytest.mark.parametrize("bad", ["tampered", "other_key", "missing", "not_a_package"])
def test_a_package_that_fails_verification_is_refused_counted_and_the_old_one_kept(tmp_path, store, bad):
    spec = spec_for(tmp_path, store)
    live = load_all(spec)
    w, q = worker_for(live)
    if bad == "tampered":
        data = bytearray(sign(store.key, "1.1", QUIET, EVIL))
        data[-10] ^= 0xFF
        store.install("1.1", bytes(data))
    elif bad == "other_key":
        store.install("1.1", sign(Ed25519PrivateKey.generate(), "1.1", QUIET, EVIL))
    elif bad == "missing":
        store.install("1.1", b"")
        (store.folder / "packages" / "1.1.pkg").unlink()
    else:
        store.install("1.1", b"UTMDEFS1 not really")
    kept = reload(spec, w, live)
    assert kept is live and live.folder.is_dir()
    assert w.counters.reload_errors == 1 and w.counters.reloads == 0
    assert Verdict.REPEAT not in evil_verdicts(w, q, 1)        # still the old definitions, traffic passes
    assert stats_event(w, 0, 0, kept).body.tree()["live"]["definitions_version"] == "1.0"
    discard(live)


def test_a_refused_package_leaves_no_unpack_folder(tmp_path, store, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    store.install("1.1", sign(Ed25519PrivateKey.generate(), "1.1", QUIET))
    with pytest.raises(SourceLoadError, match="1.1.pkg"):
        load_all(spec_for(tmp_path, store))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_reload_rereads_modes_and_depth_from_the_network_config(tmp_path, store):
    net = tmp_path / "net.toml"
    base = '[ports]\nwan = "eth0"\nlan = "eth1"\n[inspection]\ndepth = 65536\n'
    net.write_text(base)
    spec = spec_for(tmp_path, store, net_config=net, cli_detect_only=("trojan-activity",))
    live = load_all(spec)
    w, q = worker_for(live)
    assert live.policy.detect_only == {"trojan-activity"} and live.policy.inspect_depth == 65536
    net.write_text(base.replace("65536", "131072") + '[modes]\nintrusion = "detect"\nmalware = "detect"\n')
    new = reload(spec, w, live)
    assert w.policy.cfg.detect_only == {"trojan-activity", "rules", "file"} and w.policy.cfg.inspect_depth == 131072
    net.write_text(base + '[modes]\ncategory = "detect"\n[classtypes]\nweb-attack = "detect"\n')
    newer = reload(spec, w, new)
    assert w.policy.cfg.detect_only == {"trojan-activity", "category", "web-attack"}
    assert w.policy.cfg.enforce == {"category:phishing"}        # phishing keeps blocking under category = detect
    net.write_text(base + '[exclusions]\naddresses = ["not-an-address"]\n')     # refused, counted
    assert reload(spec, w, newer) is newer and w.counters.reload_errors == 1
    net.write_text(base.replace("[inspection]", '[inspection]\nqueue = 2'))   # not this worker's queue any more
    assert reload(spec, w, newer) is newer and w.counters.reload_errors == 2
    assert w.policy.cfg.detect_only == {"trojan-activity", "category", "web-attack"}
    net.write_text(base.replace("[inspection]", '[inspection]\nfail_mode = "closed"'))   # taken (the queue rebinds)
    closed = reload(spec, w, newer)
    assert closed is not newer and w.policy.cfg.fail.value == "closed" and w.counters.reload_errors == 2
    for x in (live, new, newer, closed):
        discard(x)


def test_a_restarted_worker_whose_package_was_switched_to_a_bad_one_runs_the_last_good(tmp_path, store):
    from firmware.live.worker import _fall_back, record_reload
    spec = spec_for(tmp_path, store)
    live = load_all(spec)
    record_reload(spec, 0.0, True, live, None)
    store.install("1.1", sign(Ed25519PrivateKey.generate(), "1.1", QUIET, EVIL))    # not the vendor's
    with pytest.raises(SourceLoadError) as e:
        load_all(spec)
    assert "1.1.pkg" in e.value.reason
    back = _fall_back(spec, e.value)
    assert back is not None and back.definitions_version == "1.0" and back.package == live.package
    (tmp_path / "reload.q0.json").unlink()
    assert _fall_back(spec, e.value) is None                   # nothing ran here before: the worker exits
    discard(live)
    discard(back)


def _records(logdir: Path, asked: float, *recs: dict) -> None:
    (logdir / "utm-run.queues").write_text("".join(f"{r['queue']}\n" for r in recs))
    for r in recs:
        (logdir / f"reload.q{r['queue']}.json").write_text(json.dumps(r))


def test_reload_wait_reports_every_worker_took_it_or_one_refused(tmp_path):
    from firmware.cli.run import wait_reload
    ok = {"queue": 3, "started_at": 100.0, "ok": True, "definitions_version": "1.1", "error": None}
    _records(tmp_path, 99.0, ok, {**ok, "queue": 4})
    assert wait_reload(tmp_path, 99.0, 5) == (0, "2 worker(s) reloaded, definitions 1.1")
    _records(tmp_path, 99.0, ok, {**ok, "queue": 4, "ok": False, "error": "current.pkg: signature does not verify"})
    rc, msg = wait_reload(tmp_path, 99.0, 5)
    assert rc == 1 and "worker 4 refused" in msg and "signature" in msg
    rc, msg = wait_reload(tmp_path, 101.0, 0.2)                 # only outcomes of earlier requests: none for this
    assert rc == 1 and "no outcome from worker(s) 3, 4" in msg
    (tmp_path / "utm-run.queues").unlink()
    assert wait_reload(tmp_path, 99.0, 5)[0] == 2
