"""`utm rules check`: counts, grouping by keyword, JSON, exit codes.

Builds its own top-level parser the way firmware.cli.main does (add_parser,
then ``args.run(args)``), so it does not depend on main's wiring.
"""
from __future__ import annotations

import argparse
import json

import pytest

from firmware.cli import rules as rules_cmd

RULES = "\n".join([
    "# header comment",
    '# alert tcp any any -> any any (msg:"disabled"; sid:99;)',
    'alert tcp any any -> any any (msg:"ok"; content:"a"; sid:1; rev:1;)',
    'alert http $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"ok2"; http.uri; content:"/x"; sid:2; rev:1;)',
    'alert tcp any any -> any any (msg:"asn"; asn1:oversize_length 1; sid:3; rev:1;)',
    'alert tcp any any -> any any (msg:"asn"; asn1:oversize_length 2; sid:4; rev:1;)',
    'alert tcp any any -> any any (msg:"bad"; content:"abcd"; depth:2; sid:5; rev:1;)',
    'alert tcp $MY_NET any -> any any (msg:"var"; sid:6; rev:1;)',
]) + "\n"


def utm(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="utm")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    rules_cmd.add_parser(sub)
    args = parser.parse_args(list(argv))
    return int(args.run(args) or 0)


@pytest.fixture
def rule_file(tmp_path):
    p = tmp_path / "test.rules"
    p.write_text(RULES)
    return p


def test_text_report(rule_file, capsys):
    assert utm("rules", "check", "-S", str(rule_file)) == 0
    out = capsys.readouterr().out
    assert "loaded: 2\n" in out and "skipped: 4\n" in out and "active: 6" in out
    lines = out.splitlines()
    asn1 = next(line for line in lines if line.strip().startswith("asn1"))
    assert " 2 " in asn1 and "unsupported" in asn1 and "sid 3" in asn1
    assert any(line.strip().startswith("depth") and "sid 5" in line for line in lines)
    assert any(line.strip().startswith("variable") and "sid 6" in line for line in lines)


def test_json_report_and_var(rule_file, capsys):
    assert utm("rules", "check", "-S", str(rule_file), "--var", "MY_NET=[10.0.0.0/8]", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["loaded"], data["skipped"], data["active"]) == (3, 3, 6)
    groups = {g["keyword"]: g for g in data["skipped_by_keyword"]}
    assert groups["asn1"]["count"] == 2 and groups["asn1"]["example_sid"] == 3
    assert groups["asn1"]["kind"] == "unsupported" and groups["asn1"]["reason"]
    assert groups["depth"]["kind"] == "malformed"
    assert data["files"] == [str(rule_file)] and data["seconds"] >= 0


def test_several_files_duplicates(rule_file, capsys):
    assert utm("rules", "check", "-S", str(rule_file), "-S", str(rule_file), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    groups = {g["keyword"]: g for g in data["skipped_by_keyword"]}
    assert groups["sid"]["count"] == 2 and groups["sid"]["kind"] == "duplicate"


def test_unreadable_file_exit_2_names_it(rule_file, tmp_path, capsys):
    missing = tmp_path / "nope.rules"
    assert utm("rules", "check", "-S", str(rule_file), "-S", str(missing)) == 2
    assert "nope.rules" in capsys.readouterr().err


@pytest.mark.parametrize("var", ["HOME_NET=garbage", "NOEQUALS", "=1"])
def test_bad_var_exit_2(rule_file, var, capsys):
    assert utm("rules", "check", "-S", str(rule_file), "--var", var) == 2
    assert capsys.readouterr().err


def test_classification_file(rule_file, tmp_path, capsys):
    c = tmp_path / "classification.config"
    c.write_text("config classification: mine,Mine,1\n")
    assert utm("rules", "check", "-S", str(rule_file), "--classification-file", str(c)) == 0
    assert utm("rules", "check", "-S", str(rule_file), "--classification-file", str(tmp_path / "x")) == 2


def test_rules_without_subcommand_prints_usage(capsys):
    assert utm("rules") == 2
    assert "check" in capsys.readouterr().err


def test_check_requires_a_file():
    with pytest.raises(SystemExit):
        utm("rules", "check")


def test_check_reports_what_the_engine_cannot_run(tmp_path, capsys):
    p = tmp_path / "e.rules"
    p.write_text('alert tcp any any -> any any (msg:"ok"; content:"abc"; sid:1;)\n'
                 'alert tcp any any -> any any (msg:"size"; stream_size:server,>,10; sid:2;)\n')
    assert utm("rules", "check", "-S", str(p)) == 0
    out = capsys.readouterr().out
    assert "loaded: 2" in out and "engine: 1 rules ready to run, 1 not runnable" in out
    assert "stream_size" in out
    assert utm("rules", "check", "-S", str(p), "--json") == 0
    engine = json.loads(capsys.readouterr().out)["engine"]
    assert engine["ready"] == 1 and engine["skipped_by_keyword"][0]["keyword"] == "stream_size"
    assert engine["prefilter_patterns"] == 1 and engine["peak_rss_bytes"] > 0
