"""The small-connections benchmark: the worker and the bare engine see the same traffic and
log the same events (a change that alters them shows in its digest); figures, never timed here."""
from __future__ import annotations

import json

import pytest

from firmware.bench import small_flows


def test_both_paths_log_each_connection_and_report_figures():
    figs = small_flows.run_small_flows(connections=3, repeat=1)
    for f in figs.values():
        assert f.packets == 30 and f.connections == 3
        assert f.eve_lines == 3 * 3 + 1   # http, fileinfo and flow per connection, then stats
        assert f.cpu_s > 0 and f.us_per_connection == pytest.approx(f.us_per_packet * 10)


def test_the_output_is_deterministic():
    a = small_flows.run_small_flows(connections=2, repeat=1)
    b = small_flows.run_small_flows(connections=2, repeat=1)
    assert {k: v.eve_sha256 for k, v in a.items()} == {k: v.eve_sha256 for k, v in b.items()}


def test_cli_json_and_bad_arguments(capsys):
    assert small_flows.main(["-n", "2", "-r", "1", "--path", "engine", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["engine"] and out["engine"]["packets"] == 20
    assert small_flows.main(["-n", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_other_rules_can_be_loaded_and_a_missing_file_is_one_line(tmp_path, capsys):
    (tmp_path / "h.rules").write_text('alert http any any -> any any (msg:"h"; http.host; content:"www.example"; '
                                      'sid:7;)\n')
    figs = small_flows.run_small_flows(connections=2, repeat=1, paths=("engine",), rule_files=(tmp_path / "h.rules",))
    assert figs["engine"].eve_lines == 2 * 4 + 1   # and an alert per connection
    assert small_flows.main(["-n", "1", "-S", str(tmp_path / "missing.rules")]) == 2
    assert "missing.rules" in capsys.readouterr().err


def test_each_packet_of_a_connection_has_its_kind():
    kinds = [small_flows.packet_kind(f) for _, f in small_flows.conversations(1)]
    assert kinds == ["SYN", "SYN-ACK", "ACK, FIN", "request", "ACK, FIN", "response"] + ["ACK, FIN"] * 4


def test_by_kind_reports_a_median_per_kind_for_both_paths(capsys):
    assert small_flows.main(["-n", "3", "--by-kind", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"worker", "engine"}
    for medians in out.values():
        assert list(medians) == list(small_flows.KINDS) and all(v > 0 for v in medians.values())
    assert small_flows.main(["-n", "2", "--by-kind"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[-2:] == ["ACK,", "FIN"] and [r.split()[0] for r in table[1:]] == ["worker", "engine"]
