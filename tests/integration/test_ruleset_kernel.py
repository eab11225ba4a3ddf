"""Every ruleset shape the schema allows is accepted by iptables-nft-restore and reads back as ours (root)."""
from __future__ import annotations

import subprocess

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from netconfig import ruleset as rs
from netconfig import schema
from tests.integration.netns import Namespaces, need_root_netns

MACS = st.lists(st.integers(1, 250).map(lambda i: f"02:00:00:00:01:{i:02x}"), max_size=3, unique=True)


@pytest.fixture(scope="module")
def ns():
    need_root_netns()
    spaces = Namespaces()
    try:
        yield spaces.add("rules")
    finally:
        spaces.close()


@st.composite
def configs(draw) -> schema.NetConfig:
    n = draw(st.integers(2, 4))
    text = "[ports]\n" + "".join(f'{r} = "p{i}"\n' for i, r in enumerate(("wan", "lan", "ssid1", "ssid2")[:n]))
    queue = draw(st.integers(0, 65000))
    text += (f'[inspection]\nfail_mode = "{draw(st.sampled_from(["open", "closed"]))}"\nqueue = {queue}\n'
             f"workers = {draw(st.integers(1, 8))}\nceiling = {draw(st.integers(65536, 1 << 40))}\n")
    iso, exc = draw(MACS), draw(MACS)
    exc = [m for m in exc if m not in iso]
    text += f"[isolation]\ndevices = {iso!r}\n[exclusions]\ndevices = {exc!r}\n".replace("'", '"')
    return schema.loads(text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=configs(), family=st.sampled_from(list(rs.Family)))
def test_kernel_accepts_and_reads_back(ns, cfg, family):
    r = rs.render(cfg, family)
    tool = "iptables-nft" if family is rs.Family.IPV4 else "ip6tables-nft"
    subprocess.run(["ip", "netns", "exec", ns, f"{tool}-restore"], input=r.text, text=True, check=True,
                   capture_output=True, timeout=10)
    saved = "".join(subprocess.run(["ip", "netns", "exec", ns, f"{tool}-save", "-t", t], capture_output=True,
                                   text=True, check=True, timeout=10).stdout for t in rs.OWNED_TABLES)
    assert rs.parse_saved(saved) == (r.digest, tuple(sorted(r.rule_counts)))
