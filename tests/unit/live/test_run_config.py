"""`utm run -c suricata.yaml`: the same keys as `utm inspect -c`, --set over the file, what the live path
forces kept, the file re-read at each reload (a broken one refused, the old config kept)."""
from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest

from firmware.cli.main import build_parser, main
from firmware.cli.run import build_spec, wait_reload
from firmware.live.sources import SourceLoadError, live_engine, load_all
from firmware.live.worker import RELOAD_RECORD, WorkerSpec, _finish_reload, record_reload
from inspection.config import ChecksumMode
from inspection.engine import Engine
from inspection.io.live import LiveWorker
from inspection.io.senders import FakeSender
from inspection.io.nfqueue import FakeQueue
from inspection.output.eve import EveWriter
from inspection.policy.verdict import FlowPolicy, PolicyConfig
from firmware.bench.frames import TcpConversation
from tests.unit.live.test_live_worker import queued
from tests.unit.live.test_reload_sources import build

EVIL = ('drop tcp any any -> $EVIL_NET any (msg:"evil"; content:"EVIL"; classtype:trojan-activity; '
        'metadata: created_at 2026_11_23; sid:1;)\n')

YAML = """%YAML 1.1
---
vars:
  address-groups:
    EVIL_NET: "192.0.2.0/24"
stream:
  checksum-validation: yes
  inline: no
outputs:
  - fast:
      enabled: yes
  - eve-log:
      enabled: yes
      ipv6-compress: yes
      types:
        - alert:
            metadata: no
            payload: no
            xff:
              enabled: yes
              mode: extra-data
logging:
  default-log-level: notice
"""


def _args(tmp_path, *extra):
    args = build_parser().parse_args(["run", "-l", str(tmp_path), *extra])
    args.cli_detect_only, args.cli_depth = (), None
    return args


def test_the_file_sets_the_engine_and_eve_switches_and_set_wins(tmp_path):
    f = tmp_path / "suricata.yaml"
    f.write_text(YAML)
    said: list[str] = []
    spec = build_spec(_args(tmp_path, "-c", str(f), "--set", "outputs.eve.alert.payload=yes"), said.append)
    cfg = spec.engine
    assert (cfg.alert_metadata, cfg.alert_payload, cfg.ipv6_compress) == (False, True, True)   # --set won
    assert cfg.xff is not None and cfg.xff.enabled and cfg.xff.mode == "extra-data"
    assert dict(cfg.address_vars) == {"EVIL_NET": "192.0.2.0/24"}
    # what the live path cannot do without is kept, and said
    assert cfg.stream_inline and cfg.checksum is ChecksumMode.NONE
    assert cfg.stream_depth == cfg.file_size_limit
    assert any("stream.inline: kept on" in m for m in said) and any("checksum-validation: kept off" in m for m in said)
    ignored = [m for m in said if "not honoured" in m]
    assert len(ignored) == 1 and "outputs.fast" in ignored[0] and "logging.default-log-level" in ignored[0]
    assert "checksum-validation" not in ignored[0]      # told apart above, not ignored
    assert spec.config_file == f and spec.sets == ("outputs.eve.alert.payload=yes",)


def test_without_a_file_the_live_defaults_are_as_before(tmp_path):
    said: list[str] = []
    cfg = build_spec(_args(tmp_path, "--set", "stream.inline=no"), said.append).engine
    assert cfg.stream_inline and cfg.checksum is ChecksumMode.NONE and cfg.alert_metadata
    assert cfg.stream_depth == cfg.file_size_limit and said == ["warning: stream.inline: kept on: the live path "
                                                               "inspects data when it arrives, before the receiver "
                                                               "acknowledges it"]


@pytest.mark.parametrize("where", ["file", "set"])
def test_a_reassembly_depth_given_is_kept(tmp_path, where):
    f = tmp_path / "s.yaml"
    f.write_text("stream:\n  reassembly:\n    depth: 2mb\n" if where == "file" else "")
    sets = ["--set", "stream.reassembly.depth=2mb"] if where == "set" else []
    assert build_spec(_args(tmp_path, "-c", str(f), *sets)).engine.stream_depth == 2 << 20


@pytest.mark.parametrize("content,msg", [
    (None, "cannot read"),
    ("stream: [unclosed\n", "not valid YAML"),
    ("- a list\n", "mapping at the top level"),
    ("outputs:\n  - eve-log:\n      types:\n        - alert:\n            metadata: maybe\n", "expected a boolean"),
    ("outputs:\n  - eve-log:\n      types:\n        - alert:\n            xff:\n              mode: sideways\n",
     "extra-data or overwrite"),
])
def test_an_unusable_file_exits_2_with_one_line(tmp_path, capsys, content, msg):
    f = tmp_path / "s.yaml"
    if content is not None:
        f.write_text(content)
    assert main(["run", "-l", str(tmp_path), "-c", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("utm run: -c ") and msg in err and err.count("\n") == 1, err


def test_an_unknown_set_key_is_still_refused_with_a_file(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text("stream:\n  midstream: true\n")
    assert main(["run", "-l", str(tmp_path), "-c", str(f), "--set", "no.such.key=1"]) == 2
    assert "no.such.key: unknown setting" in capsys.readouterr().err


def test_live_engine_is_what_the_worker_loads_and_a_broken_file_is_a_source_error(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(YAML)
    spec = WorkerSpec(queue=0, logdir=tmp_path, config_file=f)
    assert load_all(spec).engine == live_engine(f, ())[0]
    f.write_text("outputs: [")
    with pytest.raises(SourceLoadError, match=r"^-c .*not valid YAML"):
        load_all(spec)                       # a reload refuses it


def test_a_worker_starting_while_the_file_is_broken_takes_the_start_config(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(YAML)
    spec = build_spec(_args(tmp_path, "-c", str(f)))
    f.write_text("outputs: [")
    loaded = load_all(spec, starting=True)   # a restart must not leave its queue without a worker
    assert loaded.engine == spec.engine and not loaded.engine.alert_metadata
    err = capsys.readouterr().err
    assert "not valid YAML" in err and "starting with the settings `utm run` started with" in err


def _worker(spec: WorkerSpec, tmp_path):
    rules = tmp_path / "r.rules"
    rules.write_text(EVIL)
    spec = replace(spec, rule_files=(rules,))
    live = load_all(spec)
    out = io.BytesIO()
    eve = EveWriter.for_config(out, live.engine)
    engine = Engine(live.engine, eve.write, live.judges.inspector, None)
    w = LiveWorker(FakeQueue([]), engine, FlowPolicy(PolicyConfig()), FakeSender(), eve.write,
                   clock=lambda: 1_700_000_000.0)
    return spec, live, w, eve, out


def _alerts(w, out, start_id):
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40000 + start_id, 8080)   # a new flow each time
    w.queue.pending = queued(list(c.handshake()) + list(c.send(b"GET /EVIL\n")), start_id)
    while w.run_once(0):
        pass
    return [e for e in map(json.loads, out.getvalue().splitlines()) if e["event_type"] == "alert"]


def _reload(spec, w, live, eve):
    done = build(spec)
    return _finish_reload(w, spec, done, live, eve), done


def test_reload_rereads_the_file_eve_switches_take_effect_engine_settings_wait_for_a_restart(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(YAML)
    spec, live, w, eve, out = _worker(WorkerSpec(queue=0, logdir=tmp_path, config_file=f), tmp_path)
    first = _alerts(w, out, 1)
    assert first and "metadata" not in first[-1]["alert"] and "payload" not in first[-1]   # the file's switches
    assert "packet" in first[-1]                                                       # left on
    f.write_text(YAML.replace("metadata: no", "metadata: yes") + "flow:\n  memcap: 128mb\n")
    new, done = _reload(spec, w, live, eve)
    assert new is not live and new.engine.alert_metadata and w.counters.reload_errors == 0
    assert new.restart_needed == ("flow_memcap",) and new.engine.flow_memcap == live.engine.flow_memcap
    assert "flow_memcap changed: kept as they were" in capsys.readouterr().err
    again = _alerts(w, out, 100)
    assert len(again) > len(first) and again[-1]["alert"]["metadata"] == {"created_at": ["2026_11_23"]}
    # `utm reload --wait` says what waits for a restart
    record_reload(spec, 5.0, True, new, done[1])
    (tmp_path / "utm-run.queues").write_text("0\n")
    rc, msg = wait_reload(tmp_path, 1.0, 1.0)
    assert rc == 0 and "restarts: flow_memcap" in msg


def test_a_broken_file_on_reload_keeps_the_old_config_and_counts_an_error(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(YAML)
    spec, live, w, eve, out = _worker(WorkerSpec(queue=0, logdir=tmp_path, config_file=f), tmp_path)
    f.write_text("outputs:\n  - eve-log:\n      types:\n        - alert:\n            metadata: perhaps\n")
    new, done = _reload(spec, w, live, eve)
    assert new is live and w.counters.reload_errors == 1
    assert "reload failed" in capsys.readouterr().err
    record_reload(spec, 5.0, False, new, done[1])
    rec = json.loads((tmp_path / RELOAD_RECORD.format(0)).read_text())
    assert not rec["ok"] and "metadata" in rec["error"] and rec["error"].startswith("-c ")
    assert "metadata" not in _alerts(w, out, 100)[-1]["alert"]         # still the file as it was
