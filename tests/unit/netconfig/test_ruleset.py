"""Ruleset rendering: golden texts (pytest --regen-golden rewrites them) and the properties the engine relies on."""
from __future__ import annotations

from pathlib import Path

import pytest

from netconfig import ruleset as rs
from netconfig import schema

GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "default": '[ports]\nwan = "wan0"\nlan = "lan0"\nssid1 = "wlan0"\nssid2 = "wlan1"\n',
    "closed-balanced": '[ports]\nwan = "wan0"\nlan = "lan0"\n[inspection]\nfail_mode = "closed"\nqueue = 4\n'
                       'workers = 2\nceiling = 1048576\n'
                       '[isolation]\ndevices = ["02:00:00:00:00:01"]\n[exclusions]\ndevices = ["02:00:00:00:00:02"]\n',
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("family", list(rs.Family), ids=lambda f: f.value)
def test_golden(case, family, request):
    text = rs.render(schema.loads(CASES[case]), family).text
    path = GOLDEN / f"{case}.{family.value}.rules"
    if request.config.getoption("--regen-golden") or not path.exists():
        path.write_text(text)
        if not request.config.getoption("--regen-golden"):
            pytest.fail(f"golden {path.name} was missing and has been written; review and commit it")
    assert text == path.read_text()


def rules(case: str, family=rs.Family.IPV4) -> list[str]:
    return [ln for ln in rs.render(schema.loads(CASES[case]), family).text.splitlines() if ln.startswith("-A ")]


def test_port_pair_matrix_is_every_ordered_pair_of_distinct_ports():
    pairs = [ln for ln in rules("default") if "--physdev-in" in ln]
    assert len(pairs) == 12
    for ln in pairs:
        words = ln.split()
        assert words[words.index("--physdev-in") + 1] != words[words.index("--physdev-out") + 1]
        assert "--physdev-is-bridged" in words and ln.endswith("-j UTM-INSPECT")
    assert len([ln for ln in rules("closed-balanced") if "--physdev-in" in ln]) == 2


def test_order_block_then_isolation_then_bypass_then_queue():
    fwd = [ln for ln in rules("closed-balanced") if ln.startswith("-A UTM-FWD")]
    idx = {k: next(i for i, ln in enumerate(fwd) if k in ln)
           for k in ("--save-mark --mask 0x2", "connmark --mark 0x2/0x2 -j DROP", "UTM-ISOLATED",
                     "connmark --mark 0x1/0x1 -j ACCEPT", "--physdev-in")}
    assert list(idx.values()) == sorted(idx.values())


def test_fail_mode_and_balance():
    default = "\n".join(rules("default"))
    assert "--queue-num 0 --queue-bypass" in default and "0:33554432" in default
    closed = "\n".join(rules("closed-balanced"))
    assert "--queue-balance 4:5" in closed and "--queue-bypass" not in closed and "0:1048576" in closed


def test_box_own_traffic_allowed_both_families():
    v4 = "\n".join(rules("default"))
    v6 = "\n".join(rules("default", rs.Family.IPV6))
    for port in ("53", "123", "80", "443", "8443"):
        assert f"--dport {port} -j ACCEPT" in v4 and f"--dport {port} -j ACCEPT" in v6
    assert "--dport 67 -j ACCEPT" in v4 and "--dport 547 -j ACCEPT" in v6


def test_digest_changes_with_config_and_parse_saved_roundtrip():
    a = rs.render(schema.loads(CASES["default"]), rs.Family.IPV4)
    b = rs.render(schema.loads(CASES["closed-balanced"]), rs.Family.IPV4)
    assert a.digest != b.digest
    digest, counts = rs.parse_saved(a.text)
    assert digest == a.digest and counts == tuple(sorted(a.rule_counts))
    assert rs.parse_saved("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n") == (None, ())


@pytest.mark.parametrize("family", list(rs.Family), ids=lambda f: f.value)
def test_quic_is_dropped_before_the_queue_unless_allowed(family):
    inspect = [ln for ln in rs.render(schema.loads(CASES["default"]), family).text.splitlines()
               if ln.startswith("-A UTM-INSPECT")]
    assert inspect[0] == "-A UTM-INSPECT -p udp -m udp --dport 443 -j DROP" and "NFQUEUE" in inspect[1]
    allowed = schema.loads(CASES["default"] + "[inspection]\nblock_quic = false\n")
    assert not any("--dport 443" in ln for ln in rs.render(allowed, family).text.splitlines()
                   if ln.startswith("-A UTM-INSPECT"))
