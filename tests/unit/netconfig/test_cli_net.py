"""`utm net` exit codes and output, with the shipped fake kernel standing in for netlink and iptables."""
from __future__ import annotations

import json

import pytest

from firmware.cli import main as cli_main
from firmware.cli import net as net_cli
from netconfig.backends.fake import FakeKernel
from netconfig.model import Link

GOOD = '[ports]\nwan = "eth0"\nlan = "eth1"\n'


class ClosingFake(FakeKernel):
    def close(self) -> None:
        pass


@pytest.fixture
def kernel(monkeypatch):
    k = ClosingFake(tuple(Link(name=n, kind="veth", up=True) for n in ("eth0", "eth1")))
    monkeypatch.setattr(net_cli, "_backends", lambda args: (k, k))
    return k


def utm(*argv: str) -> int:
    return cli_main.main(["net", *argv])


def test_apply_twice_then_show(kernel, tmp_path, capsys):
    cfg = tmp_path / "net.toml"
    cfg.write_text(GOOD)
    st = ["--state-dir", str(tmp_path / "s")]
    assert utm("plan", "--config", str(cfg), *st) == 0
    assert "create-bridge br0" in capsys.readouterr().out
    assert utm("apply", "--config", str(cfg), *st) == 0
    assert "committed" in capsys.readouterr().out
    assert utm("apply", "--config", str(cfg), *st) == 0
    assert capsys.readouterr().out.strip() == "nothing to change"
    assert utm("show", *st, "--json") == 0
    state = json.loads(capsys.readouterr().out)
    assert state["rulesets_match_committed"] is True
    assert {p["name"]: p["role"] for p in state["bridges"][0]["ports"]} == {"eth0": "wan", "eth1": "lan"}


def test_invalid_config_exits_2_naming_the_key(kernel, tmp_path, capsys):
    cfg = tmp_path / "net.toml"
    cfg.write_text(GOOD + '[inspection]\nfail_mode = "sometimes"\n')
    for cmd in ("plan", "apply"):
        assert utm(cmd, "--config", str(cfg), "--state-dir", str(tmp_path / "s")) == 2
        err = capsys.readouterr().err
        assert "inspection.fail_mode" in err and len(err.strip().splitlines()) == 1
    assert kernel.calls == []
    assert utm("apply", "--config", str(tmp_path / "absent.toml")) == 2
    assert utm() == 2


def test_failed_apply_exits_1_and_rolls_back(kernel, tmp_path, capsys):
    cfg = tmp_path / "net.toml"
    cfg.write_text(GOOD)
    st = ["--state-dir", str(tmp_path / "s")]
    kernel.fail_on = {"restore:ipv6"}
    assert utm("apply", "--config", str(cfg), *st) == 1
    err = capsys.readouterr().err
    assert "rolled back" in err and "injected failure" in err
    assert "br0" not in {ln.name for ln in kernel.links()}
    assert not (tmp_path / "s").exists()


def test_missing_port_exits_1_nothing_changed(kernel, tmp_path, capsys):
    cfg = tmp_path / "net.toml"
    cfg.write_text(GOOD.replace("eth1", "eth9"))
    assert utm("plan", "--config", str(cfg), "--state-dir", str(tmp_path / "s")) == 1
    assert "PROBLEM  ports.lan: interface 'eth9' does not exist" in capsys.readouterr().out
    assert utm("apply", "--config", str(cfg), "--state-dir", str(tmp_path / "s")) == 1
    assert "nothing changed" in capsys.readouterr().err
    assert kernel.calls == []


def test_apply_with_the_desired_state_commits_the_merged_config(kernel, tmp_path, capsys):
    from netconfig import schema
    from netconfig.ruleset import Family
    cfg, want, state = tmp_path / "net.toml", tmp_path / "desired.json", tmp_path / "s"
    cfg.write_text(GOOD)
    want.write_text(json.dumps({"format": 1, "revision": 4, "isolated": ["02:00:00:00:00:07"],
                                "modes": {"*": "detect"}, "exclusions": [{"kind": "ip", "value": "192.0.2.0/24"}]}))
    assert utm("apply", "--config", str(cfg), "--desired", str(want), "--state-dir", str(state)) == 0
    out = capsys.readouterr().out
    assert "NOT APPLIED" not in out        # IP exclusions are read by the live engine now
    committed = schema.loads((state / "committed.toml").read_bytes())
    assert committed.exclusions.addresses == ("192.0.2.0/24",)
    assert committed.isolated == ("02:00:00:00:00:07",) and committed.mode("intrusion") is schema.Action.DETECT
    assert "02:00:00:00:00:07" in kernel.save(Family.IPV4)


@pytest.mark.parametrize("content,needle", [
    ("not json", "not JSON"),
    ('{"format": 2}', "not format 1"),
    ('{"format": 1, "isolated": ["zz"]}', "desired.json"),
    ('{"format": 1, "modes": {"phishing": "detect"}}', "modes.phishing"),
])
def test_a_bad_desired_state_exits_2_with_one_line_and_applies_nothing(kernel, tmp_path, capsys, content, needle):
    cfg, want, state = tmp_path / "net.toml", tmp_path / "desired.json", tmp_path / "s"
    cfg.write_text(GOOD)
    want.write_text(content)
    assert utm("apply", "--config", str(cfg), "--desired", str(want), "--state-dir", str(state)) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not (state / "committed.toml").exists()
