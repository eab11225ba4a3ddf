"""Plan classification and the staged apply with rollback, against the shipped fake kernel."""
from __future__ import annotations

import pytest

from netconfig import schema
from netconfig.apply import Applier, StateStore
from netconfig.backends.fake import FakeKernel
from netconfig.errors import ApplyError, PlanError
from netconfig.model import ChangeClass, Link, Op
from netconfig.observe import observe
from netconfig.plan import make_plan

PORTS = tuple(Link(name=n, kind="veth", up=False) for n in ("eth0", "eth1", "eth2", "eth3"))
A = b'[ports]\nwan = "eth0"\nlan = "eth1"\nssid1 = "eth2"\n' \
    b'[management]\nipv4 = "static"\naddress = "192.0.2.2/24"\ngateway = "192.0.2.1"\n'


def setup(tmp_path):
    k = FakeKernel(PORTS)
    return k, Applier(k, k, StateStore(tmp_path / "state"))


def snapshot(k: FakeKernel):
    from netconfig.ruleset import Family
    return k.links(), k.gateway4(), dict(k._sysctl), {f: k.save(f) for f in Family}


def test_first_plan_creates_bridge_and_everything_else_applies(tmp_path):
    k, ap = setup(tmp_path)
    plan, _ = ap.plan(schema.loads(A))
    kinds = {(c.op, c.target): c.cls for c in plan.changes}
    assert kinds[(Op.CREATE_BRIDGE, "br0")] is ChangeClass.RECREATE
    assert kinds[(Op.SET_MASTER, "eth2")] is ChangeClass.APPLY
    assert kinds[(Op.LOAD_RULESET, "ipv4")] is ChangeClass.APPLY
    assert not plan.problems and not plan.unchanged
    assert [c.op for c in plan.actions][0] is Op.CREATE_BRIDGE
    assert [c.op for c in plan.actions][-2:] == [Op.LOAD_RULESET, Op.LOAD_RULESET]


def test_apply_then_apply_again_changes_nothing(tmp_path):
    k, ap = setup(tmp_path)
    r1 = ap.apply(schema.loads(A), A)
    assert r1.applied
    assert {ln.name: ln.master for ln in k.links()}["eth2"] == "br0"
    assert k.gateway4() == "192.0.2.1"
    n_calls = len(k.calls)
    r2 = ap.apply(schema.loads(A), A)
    assert r2.applied == () and r2.plan.unchanged
    assert len(k.calls) == n_calls        # not one mutating call the second time
    assert (tmp_path / "state" / "committed.toml").read_bytes() == A


def test_removed_port_released_and_address_replaced(tmp_path):
    k, ap = setup(tmp_path)
    ap.apply(schema.loads(A), A)
    b = A.replace(b'ssid1 = "eth2"\n', b"").replace(b"192.0.2.2/24", b"192.0.2.3/24")
    plan, _ = ap.plan(schema.loads(b))
    acts = {(c.op, c.target, c.value) for c in plan.actions}
    assert (Op.SET_MASTER, "eth2", "") in acts
    assert (Op.ADD_ADDRESS, "br0", "192.0.2.3/24") in acts and (Op.DEL_ADDRESS, "br0", "192.0.2.2/24") in acts
    ap.apply(schema.loads(b), b)
    links = {ln.name: ln for ln in k.links()}
    assert links["eth2"].master is None and links["br0"].addresses == ("192.0.2.3/24",)


def test_engine_changes_are_classified(tmp_path):
    k, ap = setup(tmp_path)
    ap.apply(schema.loads(A), A)
    more_workers = A + b"[inspection]\nworkers = 2\n"
    plan, _ = ap.plan(schema.loads(more_workers))
    engine = [c for c in plan.changes if c.target == "engine"]
    assert engine[0].cls is ChangeClass.RESTART
    detect = A + b'[modes]\nmalware = "detect"\n'
    plan, _ = ap.plan(schema.loads(detect))
    engine = [c for c in plan.changes if c.target == "engine"]
    assert engine[0].cls is ChangeClass.APPLY and not any(c.op is Op.LOAD_RULESET for c in plan.actions)
    for change in (b'[classtypes]\ntrojan-activity = "detect"\n', b'[exclusions]\naddresses = ["198.51.100.0/24"]\n'):
        plan, _ = ap.plan(schema.loads(A + change))      # read only by the engine: still a change to commit
        assert [c.cls for c in plan.changes if c.target == "engine"] == [ChangeClass.APPLY], change


@pytest.mark.parametrize("fail", ["restore:ipv6", "restore:ipv4", "set_master:eth3", "sysctl_set", "set_gateway4"])
def test_failed_apply_rolls_back_to_previous_state(tmp_path, fail):
    k, ap = setup(tmp_path)
    ap.apply(schema.loads(A), A)
    before = snapshot(k)
    b = A.replace(b'ssid1 = "eth2"\n', b'ssid2 = "eth3"\n').replace(b"192.0.2.1", b"192.0.2.254") \
        + b"[inspection]\nfail_mode = \"closed\"\n"
    b = b.replace(b'ipv4 = "static"', b'ipv6 = "off"\nipv4 = "static"')
    k.fail_on = {fail}
    with pytest.raises(ApplyError) as e:
        ap.apply(schema.loads(b), b)
    assert e.value.rolled_back and e.value.stage == "apply"
    assert snapshot(k) == before
    assert (tmp_path / "state" / "committed.toml").read_bytes() == A   # commit did not happen


def test_verify_failure_rolls_back(tmp_path):
    k, ap = setup(tmp_path)

    orig = k.set_up
    k.set_up = lambda name, up: orig(name, up) if name != "br0" else k.calls.append("ignored")  # a kernel that says yes and does nothing
    with pytest.raises(ApplyError) as e:
        ap.apply(schema.loads(A), A)
    assert e.value.stage == "verify" and e.value.rolled_back
    assert "br0" not in {ln.name for ln in k.links()}
    assert not (tmp_path / "state" / "committed.toml").exists()


def test_missing_port_is_a_problem_and_nothing_changes(tmp_path):
    k, ap = setup(tmp_path)
    ap.apply(schema.loads(A), A)
    n = len(k.calls)
    bogus = A.replace(b'"eth2"', b'"bogus0"')
    with pytest.raises(PlanError, match="ports.ssid1: interface 'bogus0' does not exist"):
        ap.apply(schema.loads(bogus), bogus)
    assert len(k.calls) == n


def test_bridge_name_taken_by_non_bridge_is_a_problem(tmp_path):
    k = FakeKernel(PORTS + (Link(name="br0", kind="veth", up=True),))
    plan = make_plan(schema.loads(A), observe(schema.loads(A), k, k))
    assert any("not a bridge" in p for p in plan.problems)


def test_dhcp_leaves_addresses_alone(tmp_path):
    k, ap = setup(tmp_path)
    cfg = b'[ports]\nwan = "eth0"\nlan = "eth1"\n'
    ap.apply(schema.loads(cfg), cfg)
    k.add_address("br0", "192.0.2.77/24")     # what a DHCP client would have added
    plan, _ = ap.plan(schema.loads(cfg))
    assert plan.unchanged


def test_permanent_failure_during_rollback_is_reported(tmp_path):
    k, ap = setup(tmp_path)
    ap.apply(schema.loads(A), A)
    changed = A.replace(b"192.0.2.2/24", b"192.0.2.3/24")
    k.fail_on = {"add_address"}      # the new address fails, and so does putting the old one back
    with pytest.raises(ApplyError) as e:
        ap.apply(schema.loads(changed), changed)
    assert not e.value.rolled_back and "ROLLBACK FAILED" in str(e.value)


def test_port_with_an_address_is_warned_about():
    k = FakeKernel((Link(name="eth0", kind="", up=True, addresses=("192.0.2.5/24",)),
                    Link(name="eth1", kind="", up=True)))
    cfg = schema.loads(b'[ports]\nwan = "eth0"\nlan = "eth1"\n')
    plan = make_plan(cfg, observe(cfg, k, k))
    note = next(c.note for c in plan.changes if c.op is Op.SET_MASTER and c.target == "eth0")
    assert "192.0.2.5/24 stop working" in note
