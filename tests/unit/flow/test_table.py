"""Flow table: direction, per-state timeouts, memcap pruning, shutdown."""
from __future__ import annotations

from inspection.flow.table import FLOW_COST, PRUNE_LOOK, EndReason, FlowState, FlowTable, Timeouts, flow_key
from inspection.model import IPPROTO_TCP, IPPROTO_UDP, Direction, Packet


def udp(ts: float, sport: int, dport: int = 53, src: bytes = b"\xc0\x00\x02\x01", dst: bytes = b"\xc6\x33\x64\x01"):
    p = Packet(ts, 0, 80)
    p.family, p.proto, p.src, p.dst, p.sport, p.dport, p.l4_ok = 4, IPPROTO_UDP, src, dst, sport, dport, True
    return p


def reverse(p: Packet) -> Packet:
    r = udp(p.ts, p.dport, p.sport, p.dst, p.src)
    return r


def table(**kw):
    ended = []
    t = FlowTable(lambda f, r: ended.append((f, r)), timeouts={IPPROTO_UDP: Timeouts(30, 300, 0),
                                                               IPPROTO_TCP: Timeouts(60, 600, 60),
                                                               0: Timeouts(30, 300, 0)}, **kw)
    return t, ended


def test_both_directions_share_one_flow_and_know_their_direction():
    t, _ = table()
    a = udp(1.0, 40000)
    f = t.create(flow_key(a), a, swap=False)
    b = reverse(a)
    assert t.get(flow_key(b)) is f
    assert f.direction_of(a) == Direction.TO_SERVER
    assert f.direction_of(b) == Direction.TO_CLIENT


def test_idle_flows_time_out_by_state_and_active_ones_stay():
    t, ended = table()
    a, b = udp(0.0, 1111), udp(0.0, 2222)
    fa, fb = t.create(flow_key(a), a, False), t.create(flow_key(b), b, False)
    fb.state = FlowState.ESTABLISHED
    fa.last = 0.0
    t.expire(29.0)
    assert ended == []
    fb.last = 25.0
    t.expire(31.0)           # a (new, 30 s) ends; b (established, 300 s) stays
    assert [(f is fa, r) for f, r in ended] == [(True, EndReason.TIMEOUT)]
    t.expire(324.0)
    assert len(ended) == 1
    t.expire(326.0)
    assert len(ended) == 2 and t.counters.timeouts == 2


def test_memcap_prunes_the_oldest_idle_flows_and_counts_them():
    t, ended = table(memcap=FLOW_COST * 100)
    for i in range(150):
        p = udp(float(i) * 0.01, 10000 + i)
        f = t.create(flow_key(p), p, False)
        f.last = p.ts
    assert len(t) <= 100
    assert t.counters.memcap_prunes == len(ended) >= 50
    assert all(r == EndReason.MEMCAP for _, r in ended)
    oldest = min(f.last for f in t)
    assert all(f.last <= oldest for f, _ in ended)


def fill(t, n, ts=0.0):
    flows = []
    for i in range(n):
        p = udp(ts + i * 1e-4, 10000 + i)
        flows.append(t.create(flow_key(p), p, False))
    return flows


def test_a_create_over_the_cap_ends_one_flow_not_a_share_of_the_table():
    # ending 5% of a full table at once (with each flow's event) paused the live path
    t, ended = table(memcap=FLOW_COST * 2000)
    flows = fill(t, 2000)
    p = udp(1.0, 50000)
    t.create(flow_key(p), p, False)
    assert [(f, r) for f, r in ended] == [(flows[0], EndReason.MEMCAP)]
    assert len(t) == 2000 and t.counters.memcap_prunes == 1 and t.counters.emergency_entered == 1


def test_a_prune_passes_over_flows_active_since_and_evicts_the_oldest_idle_one():
    t, ended = table(memcap=FLOW_COST * 100)
    flows = fill(t, 100)
    for f in flows[:10]:
        f.last = 5.0                   # seen again since they were put on the wheel
    p = udp(6.0, 50000)
    t.create(flow_key(p), p, False)
    assert [f for f, _ in ended] == [flows[10]]
    assert all(t.get(f.key) is f for f in flows[:10])


def test_when_every_flow_looked_at_is_active_the_least_recent_goes():
    t, ended = table(memcap=FLOW_COST * 100)
    flows = fill(t, 100)
    for i, f in enumerate(flows):
        f.last = 10.0 - i * 0.01        # all seen again, the later ones longer ago
    p = udp(11.0, 50000)
    t.create(flow_key(p), p, False)
    assert [f for f, _ in ended] == [flows[PRUNE_LOOK - 1]]   # the oldest of those looked at
    assert len(t) == 100


def test_emergency_timeouts_end_idle_flows_before_their_second_comes():
    t, ended = table(memcap=FLOW_COST * 100)
    flows = fill(t, 100)               # new UDP: due at 30 s; emergency: 10 s
    p = udp(5.0, 50000)
    t.create(flow_key(p), p, False)    # the cap: emergency
    t.expire(9.0)
    assert len(ended) == 1
    t.expire(12.0, budget=20)          # the emergency front keeps to the budget
    assert len(ended) == 21 and all(r is EndReason.TIMEOUT for _, r in ended[1:])
    t.expire(12.0)
    assert {f for f, _ in ended} == set(flows)   # the one from 5.0 s stays until 15 s
    assert len(t) == 1 and t.counters.timeouts == 99
    # below the recovery mark the configured timeouts are back: the last flow waits for 30 s
    t.expire(12.0)
    q = udp(12.0, 50001)
    t.create(flow_key(q), q, False)
    t.expire(25.0)
    assert len(t) == 2


def test_emergency_timeouts_never_lengthen_shorter_configured_ones():
    ended = []
    t = FlowTable(lambda f, r: ended.append(f), memcap=FLOW_COST * 10,
                  timeouts={IPPROTO_UDP: Timeouts(1, 1, 0), IPPROTO_TCP: Timeouts(1, 1, 1), 0: Timeouts(1, 1, 0)})
    fill(t, 11)                        # emergency (10 s for new UDP) is longer than 1 s
    t.expire(2.0)
    assert len(t) == 0


def test_shutdown_ends_everything():
    t, ended = table()
    for i in range(5):
        p = udp(float(i), 20000 + i)
        t.create(flow_key(p), p, False)
    t.shutdown()
    assert len(ended) == 5 and len(t) == 0
    assert {r for _, r in ended} == {EndReason.SHUTDOWN}


def test_a_budget_ends_the_oldest_due_flows_and_leaves_the_rest_for_later():
    t, ended = table()
    flows = []
    for i in range(40):          # one second's bucket of new UDP flows, due 30 s later
        p = udp(0.5, 10000 + i)
        flows.append(t.create(flow_key(p), p, False))
    t.expire(29.0, budget=10)
    assert ended == [] and t.next_due() == 30
    t.expire(31.0, budget=15)
    assert [f for f, _ in ended] == flows[:15] and t.next_due() == 30   # due flows are left
    t.expire(31.0, budget=15)
    assert len(ended) == 30
    t.expire(31.0, budget=15)                          # the last ten
    assert [f for f, _ in ended] == flows and len(t) == 0 and t.next_due() is None


def test_a_budget_counts_flows_looked_at_and_keeps_those_not_due_yet():
    t, ended = table()
    busy = udp(0.0, 2222)
    fb = t.create(flow_key(busy), busy, False)
    idle = udp(0.0, 1111)
    fi = t.create(flow_key(idle), idle, False)
    fb.last = 20.0                # seen again: due at 50 s, not at 30 s
    t.expire(31.0, budget=1)      # looked at the busy one (rescheduled) only
    assert ended == [] and t.next_due() == 30
    t.expire(31.0, budget=1)
    assert [f for f, _ in ended] == [fi]
    assert t.next_due() == 50 and t.get(flow_key(busy)) is fb
