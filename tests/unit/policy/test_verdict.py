"""The per-flow verdict policy (pure)."""
from __future__ import annotations

import pytest

from inspection.errors import ConfigError
from inspection.policy.verdict import (Action, FlowFacts, FlowPolicy, HitView, PolicyConfig, Reason)


def facts(fid=1, total=100, tls=False, file=False, tcp=True):
    return FlowFacts(flow_id=fid, is_tcp=tcp, bytes_total=total, tls_handshake_done=tls, file_in_transit=file)


def test_clean_packets_are_accepted_without_a_mark():
    d = FlowPolicy(PolicyConfig()).decide(facts(), [])
    assert (d.action, d.reason, d.mark, d.reset) == (Action.ACCEPT, Reason.INSPECTING, None, False)


def test_blocking_hit_drops_resets_and_the_flow_stays_blocked():
    p = FlowPolicy(PolicyConfig(block_mark=0x4))
    d = p.decide(facts(), [HitView(False), HitView(True, "trojan-activity")])
    assert (d.action, d.reason, d.mark, d.reset) == (Action.DROP, Reason.BLOCKED_RULE, 0x4, True)
    later = p.decide(facts(total=10 << 20), [])
    assert (later.action, later.reason, later.reset) == (Action.DROP, Reason.BLOCKED_FLOW, False)
    assert p.counters.blocked_flows == 1 and p.counters.dropped == 2


def test_udp_block_sends_no_reset():
    d = FlowPolicy(PolicyConfig()).decide(facts(tcp=False), [HitView(True)])
    assert d.action is Action.DROP and not d.reset


def test_alert_only_hit_does_not_block():
    assert FlowPolicy(PolicyConfig()).decide(facts(), [HitView(False)]).action is Action.ACCEPT


def test_detect_only_per_class():
    p = FlowPolicy(PolicyConfig(detect_only=frozenset({"policy-violation"})))
    assert p.allows(HitView(True, "policy-violation"))
    assert not p.allows(HitView(True, "trojan-activity"))
    assert p.decide(facts(1), [HitView(True, "policy-violation")]).action is Action.ACCEPT
    assert p.decide(facts(2), [HitView(True, "trojan-activity")]).action is Action.DROP
    every = FlowPolicy(PolicyConfig(detect_only=frozenset({"*"})))
    assert every.decide(facts(3), [HitView(True, None)]).action is Action.ACCEPT


def test_tls_after_handshake_is_handed_back():
    d = FlowPolicy(PolicyConfig()).decide(facts(tls=True), [])
    assert (d.action, d.reason, d.mark) == (Action.BYPASS, Reason.TLS_ENCRYPTED, 0x1)


def test_depth_hands_back_only_without_a_file_in_transit():
    p = FlowPolicy(PolicyConfig(inspect_depth=1000))
    assert p.decide(facts(1, total=1000), []).action is Action.ACCEPT
    assert p.decide(facts(1, total=5000, file=True), []).action is Action.ACCEPT
    d = p.decide(facts(1, total=5001), [])
    assert (d.action, d.reason, d.mark) == (Action.BYPASS, Reason.DEPTH, 0x1)
    # packets already in the queue before the kernel saw the mark keep getting it
    assert p.decide(facts(1, total=6000, file=True), []).action is Action.BYPASS
    assert p.counters.bypassed_flows == 1


def test_a_bypassed_flow_can_still_be_blocked_by_a_queued_packet():
    p = FlowPolicy(PolicyConfig(inspect_depth=0))
    assert p.decide(facts(total=1), []).action is Action.BYPASS
    assert p.decide(facts(total=2), [HitView(True)]).action is Action.DROP


def test_forget_ends_the_flow_state():
    p = FlowPolicy(PolicyConfig())
    p.decide(facts(), [HitView(True)])
    assert p.tracked == 1
    p.forget(1)
    assert p.tracked == 0 and p.decide(facts(), []).action is Action.ACCEPT


def test_packet_without_a_flow():
    p = FlowPolicy(PolicyConfig())
    assert p.decide(None, []).reason is Reason.NOT_TRACKED
    assert p.decide(None, [HitView(True)]).action is Action.DROP


@pytest.mark.parametrize("kw", [dict(bypass_mark=0), dict(bypass_mark=0x3, block_mark=0x2),
                                dict(block_mark=1 << 32), dict(inspect_depth=-1)])
def test_bad_config_is_a_config_error(kw):
    with pytest.raises(ConfigError):
        PolicyConfig(**kw)


def test_detect_only_classes_rules_category_file():
    from inspection.policy.verdict import HitKind
    cfg = PolicyConfig(detect_only=frozenset({"rules", "file"}))
    assert cfg.is_detect_only("trojan-activity") and cfg.is_detect_only(None, HitKind.FILE)
    assert not cfg.is_detect_only(None, HitKind.CATEGORY)
    cfg = PolicyConfig(detect_only=frozenset({"trojan-activity"}))
    assert cfg.is_detect_only("trojan-activity") and not cfg.is_detect_only("web-application-attack")
    assert not cfg.is_detect_only(None, HitKind.FILE)


def test_a_category_hit_on_an_http_request_asks_for_the_block_page_not_resets():
    from inspection.policy.verdict import HitKind, HitView, Reason
    p = FlowPolicy(PolicyConfig())
    facts = FlowFacts(flow_id=7, is_tcp=True, bytes_total=10, tls_handshake_done=False, file_in_transit=False)
    d = p.decide(facts, [HitView(True, None, HitKind.CATEGORY, http_request=True)])
    assert (d.block_page, d.reset, d.reason) == (True, False, Reason.BLOCKED_CATEGORY)
    d = p.decide(FlowFacts(8, True, 10, False, False), [HitView(True, None, HitKind.CATEGORY)])   # TLS SNI
    assert (d.block_page, d.reset) == (False, True)
    d = p.decide(FlowFacts(9, True, 10, False, True), [HitView(True, None, HitKind.FILE)])
    assert (d.reset, d.reason) == (True, Reason.BLOCKED_FILE)


def test_a_paged_flow_drops_unmarked_until_the_clients_close_then_blocks_in_the_kernel():
    from inspection.policy.verdict import HitKind
    p = FlowPolicy(PolicyConfig(block_mark=0x2))
    p.decide(facts(fid=5), [HitView(True, None, HitKind.CATEGORY, http_request=True)])
    assert p.is_paged(5)
    d = p.decide(facts(fid=5), [])   # the client's ACK of the page, say
    assert (d.action, d.reason, d.mark, d.close_ack) == (Action.DROP, Reason.BLOCKED_FLOW, None, False)
    closing = FlowFacts(5, True, 100, False, False, client_close=True)
    d = p.decide(closing, [])
    assert (d.action, d.reason, d.mark, d.close_ack) == (Action.DROP, Reason.PAGE_CLOSED, 0x2, True)
    assert not p.is_paged(5)
    d = p.decide(closing, [])   # a retransmitted FIN that still reached the worker
    assert (d.reason, d.mark, d.close_ack) == (Reason.BLOCKED_FLOW, 0x2, False)
    p.decide(facts(fid=6), [HitView(True, None, HitKind.CATEGORY, http_request=True)])
    p.page_failed(6)   # no page went out: blocked in the kernel like any other
    assert p.decide(facts(fid=6), []).mark == 0x2
