"""Any sequence of configs: each apply converges (a second plan is empty), and a transient failure at any step
restores the state before (a permanent one is reported as ROLLBACK FAILED, see test_plan_apply)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings, strategies as st

from netconfig import schema
from netconfig.apply import Applier, StateStore
from netconfig.backends.fake import FakeKernel
from netconfig.errors import ApplyError
from netconfig.model import Link
from netconfig.ruleset import Family

IFACES = ("e0", "e1", "e2", "e3", "e4")


@st.composite
def configs(draw) -> bytes:
    ports = draw(st.permutations(IFACES))[:draw(st.integers(2, 4))]
    text = "[ports]\n" + "".join(f'{r} = "{n}"\n' for r, n in zip(("wan", "lan", "ssid1", "ssid2"), ports))
    if draw(st.booleans()):
        host = draw(st.integers(2, 9))
        text += f'[management]\nipv4 = "static"\naddress = "192.0.2.{host}/24"\n'
        if draw(st.booleans()):
            text += 'gateway = "192.0.2.1"\n'
        text += f'ipv6 = "{draw(st.sampled_from(["slaac", "off"]))}"\n'
    text += f'[inspection]\nfail_mode = "{draw(st.sampled_from(["open", "closed"]))}"\n'
    text += f"workers = {draw(st.integers(1, 3))}\n"
    return text.encode()


def state(k: FakeKernel):
    """What observe can see: a sysctl set back to its default value is the same state as one never set."""
    keys = [f"net/ipv6/conf/br0/{s}" for s in ("disable_ipv6", "accept_ra", "autoconf")]
    return k.links(), k.gateway4(), {key: k.sysctl_get(key) for key in keys}, {f: k.save(f) for f in Family}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(configs(), st.sampled_from([None, "create_bridge", "set_master", "set_up",
                                                       "add_address", "del_address", "set_gateway4",
                                                       "sysctl_set", "restore:ipv4", "restore:ipv6"])),
                min_size=1, max_size=5))
def test_apply_converges_or_restores(steps):
    k = FakeKernel(tuple(Link(name=n, kind="veth", up=False) for n in IFACES))
    with tempfile.TemporaryDirectory() as d:
        ap = Applier(k, k, StateStore(Path(d)))
        for text, fail in steps:
            cfg = schema.loads(text)
            before = state(k)
            committed_before = ap.store.committed_text()
            k.fail_once = {fail} if fail else set()
            try:
                ap.apply(cfg, text)
            except ApplyError as e:
                assert e.rolled_back
                assert state(k) == before
                assert ap.store.committed_text() == committed_before
                continue
            finally:
                k.fail_once = set()
            plan, _ = ap.plan(cfg)
            assert plan.unchanged, [c.describe() for c in plan.actions]
            assert ap.store.committed_text() == text
