"""The benchmark's rule rows: which rules they use, what they read from the tools, and a tiny real run."""
from __future__ import annotations

import argparse
from pathlib import Path

from firmware.bench import rules_rows
from firmware.bench.rules_rows import RuleRow, compile_fields, measure_rules, no_rules_row, summary_fields
from firmware.bench.run import _rule_rows_wanted, run_measured, utm_command
from tests.unit.engine.test_inspect_cli import http_conversation, write_pcap


def test_default_et_open_is_next_to_the_project():
    project = Path(rules_rows.__file__).resolve().parents[2]
    assert rules_rows.default_et_open() == project.parent / "shared" / "corpus" / "et-open"


def test_rule_files_prefers_the_rules_subfolder(tmp_path):
    (tmp_path / "rules").mkdir()
    for name in ("b.rules", "a.rules", "classification.config"):
        (tmp_path / "rules" / name).write_text("")
    (tmp_path / "top.rules").write_text("")
    assert [p.name for p in rules_rows.rule_files(tmp_path)] == ["a.rules", "b.rules"]
    assert rules_rows.rule_files(tmp_path / "top.rules") == [tmp_path / "top.rules"]
    assert rules_rows.rule_files(tmp_path / "absent") == []


def test_when_the_rows_run(tmp_path):
    (tmp_path / "x.rules").write_text("")
    here = {"et_open": tmp_path}
    cases = [({"quick": True}, False, "--quick"), ({"quick": True, "rules": True, **here}, True, None),
             ({"quick": True, **here}, True, None), ({"rules": False, **here}, False, "--no-rules"),
             ({**here}, True, None), ({"et_open": tmp_path / "missing"}, False, "no ET Open rules at")]
    for kw, runs, note in cases:
        notes: list[str] = []
        args = argparse.Namespace(**{"quick": False, "rules": None, "et_open": None, **kw})
        _, files = _rule_rows_wanted(args, notes)
        assert bool(files) == runs, kw
        assert (note is None and not notes) or (note is not None and note in notes[0]), (kw, notes)


def test_reads_the_engine_and_compile_summaries():
    text = ("packets: 10\nrules: 7 loaded, 1 skipped (asn1=1); alerts: 12\nrules load: 0.412 s (compiled bundle)\n"
            "elapsed: 1.0 s\nMbit/s: 55.5\n")
    assert summary_fields(text) == (55.5, 0.412, 12, "rules: 7 loaded, 1 skipped (asn1=1); alerts: 12")
    assert summary_fields("Mbit/s: 3.0\n") == (3.0, None, None, "")
    assert compile_fields("loaded: 3\nparse: 1.90 s\ncompile: 1.36 s (prefilter 0.63 s)\n") == (1.90, 1.36)


def test_a_tiny_real_run(tmp_path):
    rules = tmp_path / "t.rules"
    rules.write_text('alert http any any -> any any (msg:"uri"; http.uri; content:"/index"; sid:1;)\n'
                     'alert tcp any any -> any 80 (msg:"ua"; content:"User-Agent"; sid:2;)\n')
    pcap = write_pcap(tmp_path / "in.pcap", http_conversation())
    utm = utm_command(None)
    none = no_rules_row(0.1, 0.1, 1 << 20, 100.0)
    (tmp_path / "scratch").mkdir()
    said: list[str] = []
    got = measure_rules(utm, pcap, [rules], str(tmp_path), tmp_path / "scratch", run_measured, said.append, none)
    assert got.parsed.alerts == got.bundled.alerts == 2
    assert got.parsed.load_s is not None and got.bundled.load_s is not None
    assert got.compiled.bundle_bytes > 0 and got.compiled.parse_s is not None
    assert got.ratio(got.none) == 1.0
    table = "\n".join(got.format_lines())
    assert "ET Open -S" in table and "ET Open bundle" in table and "goal" in table
    assert "warning" not in table
    d = got.to_dict()
    assert set(d["rows"]) == {"no rules", "ET Open -S", "ET Open bundle"}
    assert not (tmp_path / "scratch" / "et-open.bundle").exists()


def test_differing_alerts_are_flagged():
    row = RuleRow("ET Open -S", 1, 1, 1, 1.0, 1.0, 5)
    other = RuleRow("ET Open bundle", 1, 1, 1, 1.0, 0.1, 4)
    bench = rules_rows.RulesBench("x", 1, no_rules_row(1, 1, 1, 2.0), row,
                                  rules_rows.CompileRow(1, 1, None, None, 10), other)
    lines = bench.format_lines()
    assert any("warning" in l and "5 alerts, the bundle 4" in l for l in lines)
    assert any("not met (50.0%)" in l for l in lines) is False and any("met (50.0%)" in l for l in lines)


def test_cpu_ratio_leaves_rule_loading_out():
    none = no_rules_row(10.0, 8.0, 1, 200.0)
    parsed = RuleRow("ET Open -S", 30.0, 20.0, 1, 90.0, 4.0, 5)       # 16 s matching: 8/16 = 0.5
    bundled = RuleRow("ET Open bundle", 20.0, 10.5, 1, 95.0, 0.5, 5)   # 10 s matching: 0.8
    bench = rules_rows.RulesBench("x", 1, none, parsed, rules_rows.CompileRow(1, 1, None, None, 10), bundled)
    assert bench.cpu_ratio(parsed) == 0.5 and bench.cpu_ratio(bundled) == 0.8
    assert bench.cpu_ratio(RuleRow("odd", 1.0, 1.0, 1, 1.0, 2.0, 0)) is None      # load longer than the run
    goal = [line for line in bench.format_lines() if line.startswith("goal")]
    assert goal == ["goal            ET Open at >= 50% of the no-rules speed: not met (45.0%); "
                    "by CPU time met (50.0%)"]
    assert bench.to_dict()["rows"]["ET Open bundle"]["cpu_ratio_to_no_rules"] == 0.8
