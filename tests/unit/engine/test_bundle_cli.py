"""`utm rules compile` and `utm inspect --bundle`: the same alerts as `-S`, and clear refusals."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.cli.main import main
from tests.unit.engine.test_alerts import RULES
from tests.unit.engine.test_inspect_cli import http_conversation, write_pcap

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
MORE_RULES = r'''
alert http any any -> any any (msg:"any uri"; http.uri; content:"/"; sid:100;)
alert http any any -> any any (msg:"ua"; http.user_agent; pcre:"/^[a-z]+\/\d/i"; sid:101;)
alert tcp any any -> any any (msg:"SYN"; flags:S; sid:102;)
alert http any any -> any any (msg:"html"; file.data; content:"<html"; nocase; sid:103;)
'''


@pytest.fixture
def rules(tmp_path):
    path = tmp_path / "t.rules"
    path.write_text(RULES + MORE_RULES)
    return path


def compile_(tmp_path, rules, capsys, *extra) -> tuple[int, Path, str]:
    out = tmp_path / "t.bundle"
    rc = main(["rules", "compile", "-S", str(rules), "-o", str(out), *extra])
    return rc, out, capsys.readouterr().out


def inspect(tmp_path, pcaps, name, *args) -> tuple[int, str]:
    argv = ["inspect", "-q", "-k", "none", "-l", str(tmp_path / name)]
    for p in pcaps:
        argv += ["-r", str(p)]
    rc = main(argv + list(args))
    return rc, (tmp_path / name / "eve.json").read_text() if rc == 0 else ""


def test_compile_reports_counts_time_and_size(tmp_path, rules, capsys):
    rc, out, text = compile_(tmp_path, rules, capsys)
    assert rc == 0 and out.is_file()
    assert "loaded: 11\n" in text and "skipped: 1 (asn1=1)" in text
    assert "compile: " in text and f"{out.stat().st_size:,} bytes" in text


def test_same_alerts_with_rules_and_bundle(tmp_path, rules, capsys):
    rc, bundle, _ = compile_(tmp_path, rules, capsys)
    assert rc == 0
    pcaps = [write_pcap(tmp_path / "in.pcap", http_conversation()), GOLDEN / "http-evasions" / "input.pcap",
             GOLDEN / "demo" / "input.pcap"]
    rc_s, eve_s = inspect(tmp_path, pcaps, "with-S", "-S", str(rules))
    rc_b, eve_b = inspect(tmp_path, pcaps, "with-bundle", "--bundle", str(bundle))
    assert rc_s == rc_b == 0
    alerts = [json.loads(l) for l in eve_s.splitlines() if '"event_type":"alert"' in l]
    assert {a["alert"]["signature_id"] for a in alerts} >= {1, 2, 3, 6, 100, 101, 103}
    assert eve_b == eve_s


def test_summary_says_where_rules_came_from(tmp_path, rules, capsys):
    _, bundle, _ = compile_(tmp_path, rules, capsys)
    pcap = write_pcap(tmp_path / "in.pcap", http_conversation())
    assert main(["inspect", "-r", str(pcap), "-l", str(tmp_path / "o"), "--bundle", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "rules: 11 loaded, 1 skipped (asn1=1)" in out and "(compiled bundle)" in out


def test_var_is_applied_at_compile_time(tmp_path, capsys):
    rules = tmp_path / "v.rules"
    rules.write_text('alert tcp $HOME_NET any -> any 80 (msg:"home"; content:"GET /"; sid:1;)\n')
    pcap = write_pcap(tmp_path / "in.pcap", http_conversation())
    for home, want in (("[192.0.2.0/24]", 1), ("[10.0.0.0/8]", 0)):
        rc, bundle, _ = compile_(tmp_path, rules, capsys, "--var", f"HOME_NET={home}")
        assert rc == 0
        rc, eve = inspect(tmp_path, [pcap], f"o{want}", "--bundle", str(bundle))
        assert rc == 0 and eve.count('"event_type":"alert"') == want


def test_corrupted_bundle_exits_2_naming_the_fault(tmp_path, rules, capsys):
    _, bundle, _ = compile_(tmp_path, rules, capsys)
    data = bytearray(bundle.read_bytes())
    data[-50] ^= 0xFF
    bundle.write_bytes(bytes(data))
    pcap = write_pcap(tmp_path / "in.pcap", http_conversation())
    assert main(["inspect", "-r", str(pcap), "-l", str(tmp_path / "o"), "--bundle", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "bundle refused" in err and "content hash mismatch: corrupted" in err and str(bundle) in err


def test_rule_file_is_not_a_bundle(tmp_path, rules, capsys):
    pcap = write_pcap(tmp_path / "in.pcap", http_conversation())
    assert main(["inspect", "-r", str(pcap), "-l", str(tmp_path / "o"), "--bundle", str(rules)]) == 2
    assert "wrong magic" in capsys.readouterr().err


def test_bundle_from_another_engine_exits_2(tmp_path, rules, capsys, monkeypatch):
    from inspection.detect import bundle as bundle_mod
    monkeypatch.setattr(bundle_mod, "engine_version", lambda: "0.0.1")
    _, bundle, _ = compile_(tmp_path, rules, capsys)
    monkeypatch.undo()
    pcap = write_pcap(tmp_path / "in.pcap", http_conversation())
    assert main(["inspect", "-r", str(pcap), "-l", str(tmp_path / "o"), "--bundle", str(bundle)]) == 2
    assert "made by engine 0.0.1, this is " in capsys.readouterr().err


def test_missing_bundle_and_both_sources_exit_2(tmp_path, rules, capsys):
    pcap = write_pcap(tmp_path / "in.pcap", http_conversation())
    assert main(["inspect", "-r", str(pcap), "--bundle", str(tmp_path / "none.bundle")]) == 2
    assert "no such bundle file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["inspect", "-r", str(pcap), "-S", str(rules), "--bundle", str(rules)])
    assert e.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_compile_errors_exit_2_and_leave_no_bundle(tmp_path, rules, capsys):
    out = tmp_path / "x.bundle"
    assert main(["rules", "compile", "-S", str(tmp_path / "none.rules"), "-o", str(out)]) == 2
    assert "cannot read rule file" in capsys.readouterr().err
    assert main(["rules", "compile", "-S", str(rules), "--var", "HOME_NET", "-o", str(out)]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert main(["rules", "compile", "-S", str(rules), "-o", str(tmp_path / "no" / "dir.bundle")]) == 2
    assert "cannot write bundle" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["t.rules"]


def test_recompiling_replaces_the_bundle_atomically(tmp_path, rules, capsys):
    rc, bundle, _ = compile_(tmp_path, rules, capsys)
    first = bundle.read_bytes()
    rules.write_text(RULES)
    rc, bundle, text = compile_(tmp_path, rules, capsys)
    assert rc == 0 and "loaded: 7\n" in text and bundle.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.bundle", "t.rules"]
