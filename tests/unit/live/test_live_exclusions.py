"""The live worker on the fake queue: exclusions from the network config stop a drop rule from blocking."""
from __future__ import annotations

import hashlib
import random

import pytest

from firmware.bench.frames import TcpConversation
from firmware.bench.synth import tls_client_hello
from firmware.live.sources import load_all
from firmware.live.worker import WorkerSpec, _finish_reload, stats_event
from inspection.io.nfqueue import Verdict
from inspection.policy.exclusions import Exclusions
from inspection.policy.verdict import PolicyConfig
from tests.unit.live.test_live_enforce import EICAR, download, judges  # noqa: F401 - a fixture
from tests.unit.live.test_live_enforce import make as enforce_make
from tests.unit.live.test_live_worker import RULES, evil_conversation, events, make, queued

NET = '[ports]\nwan = "eth0"\nlan = "eth1"\n'


def run(w):
    while w.run_once(0):
        pass


def verdicts(q):
    return [v.verdict for v in q.sent]


def test_an_excluded_rule_neither_drops_nor_resets_and_its_alert_says_allowed_excluded(tmp_path):
    w, q, sender, out = make(tmp_path, PolicyConfig(), queued(evil_conversation()))
    w.exclusions.exclusions = Exclusions.build(rules=[1])
    run(w)
    assert set(verdicts(q)) == {Verdict.ACCEPT} and sender.frames == []
    alerts = [e["alert"] for e in events(out) if e["event_type"] == "alert"]
    assert alerts and all(a["action"] == "allowed" and a["excluded"] == "rule 1" for a in alerts)
    live = w.stats_event().body.tree()["live"]
    assert live["excluded"] == {"hits": len(alerts), "blocks_lifted": len(alerts), "by_rule": len(alerts)}
    assert live["flows_blocked"] == 0


def test_an_address_exclusion_covers_either_end_and_other_flows_are_still_blocked(tmp_path):
    w, q, sender, out = make(tmp_path, PolicyConfig(), queued(evil_conversation()))
    w.exclusions.exclusions = Exclusions.build(addresses=["192.0.2.20/32"])     # the server
    run(w)
    assert Verdict.DROP not in verdicts(q) and Verdict.REPEAT not in verdicts(q)
    w2, q2, _, _ = make(tmp_path, PolicyConfig(), queued(evil_conversation()))
    w2.exclusions.exclusions = Exclusions.build(addresses=["203.0.113.0/24"], rules=[99])   # covers nothing here
    run(w2)
    assert Verdict.REPEAT in verdicts(q2)                       # the drop rule blocks as before


def test_the_net_config_exclusions_are_read_at_start_and_on_reload(tmp_path):
    net, rules = tmp_path / "net.toml", tmp_path / "r.rules"
    net.write_text(NET)
    rules.write_text(RULES)
    spec = WorkerSpec(queue=0, logdir=tmp_path, rule_files=(rules,), net_config=net)
    live = load_all(spec)
    assert not live.exclusions
    w, q, _, _ = make(tmp_path, live.policy, queued(evil_conversation()))
    w.exclusions.exclusions = live.exclusions
    run(w)
    assert Verdict.REPEAT in verdicts(q)                        # blocked before the exclusion
    net.write_text(NET + '[exclusions]\nrules = [1]\n')         # what `utm net apply --desired` commits
    new = _finish_reload(w, spec, (True, load_all(spec)), live)
    assert new.exclusions.rules == {1} and w.exclusions.exclusions.rules == {1}
    q.pending, q.sent = queued(evil_conversation(), 100), []
    w.engine.flows.expire(float("inf"))
    for fid in list(w.policy._blocked):
        w.policy.forget(fid)
    run(w)
    assert set(verdicts(q)) == {Verdict.ACCEPT}
    tree = stats_event(w, 0, 0, new).body.tree()["live"]
    assert tree["excluded"]["blocks_lifted"] >= 1


def test_a_classtype_mode_from_the_net_config_makes_only_that_classtype_detect_only(tmp_path):
    net, rules = tmp_path / "net.toml", tmp_path / "r.rules"
    rules.write_text(RULES)                      # classtype trojan-activity
    for text, blocked in (('[classtypes]\ntrojan-activity = "detect"\n', False),
                          ('[classtypes]\nweb-attack = "detect"\n', True),
                          ('[modes]\nintrusion = "detect"\n[classtypes]\ntrojan-activity = "block"\n', True),
                          ('[modes]\nintrusion = "detect"\n', False)):
        net.write_text(NET + text)
        live = load_all(WorkerSpec(queue=0, logdir=tmp_path, rule_files=(rules,), net_config=net))
        w, q, _, _ = make(tmp_path, live.policy, queued(evil_conversation()))
        run(w)
        assert (Verdict.REPEAT in verdicts(q)) == blocked, text


# -- URL categories and files (the judges of test_live_enforce) ------------------------------------
def judged(judges, exclusions, packets):   # noqa: F811 - the fixture's value
    _, q, sender, events = enforce_make(judges, packets=packets, exclusions=exclusions)
    return q, sender, [e["alert"] for e in events if e["event_type"] == "alert"]


def tls_to(host):
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40200, 443)
    return queued(list(c.handshake()) + list(c.send(tls_client_hello(random.Random(1), host))))


@pytest.mark.parametrize("exclusions,why", [
    (Exclusions.build(domains=["example.test"]), "domain example.test"),           # a parent domain covers it
    (Exclusions.build(urls=["phish.example.test/f"]), "url phish.example.test/f"),
    (Exclusions.build(addresses=["192.0.2.10"]), "address 192.0.2.10/32"),          # the client
])
def test_an_excluded_host_gets_no_block_page(judges, exclusions, why):   # noqa: F811
    q, sender, alerts = judged(judges, exclusions, download(b"<html>login</html>", host="phish.example.test"))
    assert set(verdicts(q)) == {Verdict.ACCEPT} and sender.frames == []
    assert [(a["action"], a["category"], a["excluded"]) for a in alerts] == [("allowed", "phishing", why)]


def test_an_excluded_url_covers_its_path_only(judges):   # noqa: F811
    q, sender, alerts = judged(judges, Exclusions.build(urls=["phish.example.test/other"]),
                               download(b"<html>login</html>", host="phish.example.test"))
    # not covered: the block page as before (the request dropped, the page and a reset sent)
    assert Verdict.DROP in verdicts(q) and len(sender.frames) == 2
    assert [a["action"] for a in alerts] == ["blocked"]


def test_an_excluded_domain_over_tls_is_not_reset(judges):   # noqa: F811
    q, sender, alerts = judged(judges, Exclusions.build(domains=["phish.example.test"]),
                               tls_to("login.phish.example.test"))
    assert set(verdicts(q)) == {Verdict.ACCEPT} and sender.frames == []
    assert [a["excluded"] for a in alerts] == ["domain phish.example.test"]
    q, sender, alerts = judged(judges, Exclusions.build(domains=["other.test"]), tls_to("login.phish.example.test"))
    assert Verdict.REPEAT in verdicts(q) and sender.frames        # not covered: reset as before


def test_a_file_whose_hash_is_excluded_completes(judges):   # noqa: F811
    sha = hashlib.sha256(EICAR).hexdigest()
    q, sender, alerts = judged(judges, Exclusions.build(hashes=[sha]), download(EICAR))
    assert set(verdicts(q)) == {Verdict.ACCEPT} and sender.frames == []
    assert [(a["action"], a["category"], a["excluded"]) for a in alerts] == [("allowed", "malware", f"hash {sha}")]
