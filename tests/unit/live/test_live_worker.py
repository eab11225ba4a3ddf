"""The live worker on a fake queue: the real engine and rules, verdicts, resets, detect-only, bypass."""
from __future__ import annotations

import io
import json
from pathlib import Path

from firmware.bench.frames import CLIENT_MAC, SERVER_MAC, TcpConversation, udp_packet
from inspection.config import ChecksumMode, EngineConfig
from inspection.decode import decode_frame
from inspection.engine import Engine
from inspection.io.live import LiveWorker
from inspection.io.senders import FakeSender
from inspection.io.nfqueue import FakeQueue, QueuedPacket, Verdict
from inspection.io.offline import RunSummary, load_inspector
from inspection.output.eve import EveWriter
from inspection.policy.tcpreset import parse_tcp
from inspection.policy.verdict import FlowPolicy, PolicyConfig

RULES = 'drop tcp any any -> any any (msg:"evil"; content:"EVIL"; classtype:trojan-activity; sid:1;)\n'
CLI_PORT, SRV_PORT = 1, 2   # ifindexes of the bridge ports towards the client and the server


def queued(frames, start_id=1):
    """Frames from a conversation as NFQUEUE would hand them over on a bridge."""
    out = []
    for i, (_, frame) in enumerate(frames):
        from_client = frame[6:12] == CLIENT_MAC
        out.append(QueuedPacket(packet_id=start_id + i, hw_protocol=0x0800, hook=2, payload=frame[14:],
                                hwaddr=frame[6:12], physin=CLI_PORT if from_client else SRV_PORT,
                                physout=SRV_PORT if from_client else CLI_PORT))
    return out


def make(tmp_path: Path, policy: PolicyConfig, packets, rules: str | None = RULES):
    inspector = None
    if rules is not None:
        (tmp_path / "r.rules").write_text(rules)
        inspector = load_inspector([tmp_path / "r.rules"], RunSummary(), 1 << 16)
    out = io.BytesIO()
    eve = EveWriter(out)
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True), eve.write, inspector)
    q = FakeQueue(list(packets))
    sender = FakeSender()
    clock = iter(range(1_700_000_000, 1_800_000_000))
    w = LiveWorker(q, engine, FlowPolicy(policy), sender, eve.write, clock=lambda: float(next(clock)))
    return w, q, sender, out


def events(out: io.BytesIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def evil_conversation():
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40000, 8080)
    return list(c.handshake()) + list(c.send(b"hello\n")) + list(c.send(b"GET /EVIL\n"))


def test_blocking_rule_drops_marks_and_resets_both_ends(tmp_path):
    pkts = queued(evil_conversation())
    w, q, sender, out = make(tmp_path, PolicyConfig(block_mark=0x2), pkts)
    while w.run_once(0):
        pass
    by_id = {v.packet_id: v for v in q.sent}
    assert len(by_id) == len(pkts)
    evil = next(p for p in pkts if b"EVIL" in p.payload)
    # NF_REPEAT with the block mark: netconfig's ruleset saves it to the connmark and drops in the kernel
    assert by_id[evil.packet_id].verdict is Verdict.REPEAT and by_id[evil.packet_id].mark == 0x2
    assert all(v.verdict is Verdict.ACCEPT for i, v in by_id.items() if i < evil.packet_id)
    assert [(ifx, f[:6]) for ifx, f in sender.frames] == [(CLI_PORT, CLIENT_MAC), (SRV_PORT, SERVER_MAC)]
    alerts = [e for e in events(out) if e["event_type"] == "alert"]
    assert [a["alert"]["action"] for a in alerts] == ["blocked"]
    assert w.counters.resets_sent == 2


def test_later_packets_of_a_blocked_flow_are_dropped(tmp_path):
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40001, 8080)
    frames = list(c.handshake()) + list(c.send(b"EVIL\n")) + list(c.send(b"more\n"))
    pkts = queued(frames)
    w, q, _, out = make(tmp_path, PolicyConfig(), pkts)
    while w.run_once(0):
        pass
    verdicts = [v.verdict for v in q.sent]
    first = verdicts.index(Verdict.REPEAT)
    assert first == 3 and all(v is Verdict.DROP for v in verdicts[first + 1:]) and len(verdicts) > first + 1
    # one EVE `drop` event, for the first dropped packet, with its header fields (Suricata's flows: start)
    [drop] = [e for e in events(out) if e["event_type"] == "drop"]
    [alert] = [e for e in events(out) if e["event_type"] == "alert"]
    evil = next(p for p in pkts if b"EVIL" in p.payload)
    t = parse_tcp(evil.payload)
    assert drop["flow_id"] == alert["flow_id"] and (drop["src_port"], drop["dest_port"]) == (40001, 8080)
    assert drop["drop"]["reason"] == "rules" and drop["drop"]["len"] == len(evil.payload)
    assert (drop["drop"]["tcpseq"], drop["drop"]["tcpack"], drop["drop"]["psh"], drop["drop"]["syn"]) == (
        t.seq, t.ack, True, False)


def test_detect_only_alerts_with_action_allowed_and_blocks_nothing(tmp_path):
    w, q, sender, out = make(tmp_path, PolicyConfig(detect_only=frozenset({"trojan-activity"})),
                             queued(evil_conversation()))
    while w.run_once(0):
        pass
    assert all(v.verdict is Verdict.ACCEPT for v in q.sent) and not sender.frames
    alerts = [e for e in events(out) if e["event_type"] == "alert"]
    assert [a["alert"]["action"] for a in alerts] == ["allowed"]
    assert w.policy.counters.detect_only_hits == 1


def test_clean_flow_is_handed_back_past_the_depth(tmp_path):
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40002, 9000)
    frames = list(c.handshake()) + list(c.send(b"DATA 1\n")) + list(c.send(b"z" * 20000, from_client=False))
    w, q, _, _ = make(tmp_path, PolicyConfig(inspect_depth=4000, bypass_mark=0x1), queued(frames))
    while w.run_once(0):
        pass
    marks = [v.mark for v in q.sent]
    first = marks.index(0x1)
    assert 3 < first < len(marks) - 1 and all(m == 0x1 for m in marks[first:])
    assert all(v.verdict is Verdict.ACCEPT for v in q.sent)
    assert w.policy.counters.bypassed_flows == 1


def test_an_engine_failure_accepts_the_packet_and_is_counted(tmp_path):
    w, q, _, _ = make(tmp_path, PolicyConfig(), queued(evil_conversation())[:1], rules=None)

    def boom(*a):
        raise RuntimeError("bug")
    w.engine.process = boom   # type: ignore[method-assign]
    w.run_once(0)
    assert [v.verdict for v in q.sent] == [Verdict.ACCEPT] and w.counters.engine_errors == 1


def test_undecodable_packets_pass(tmp_path):
    junk = [QueuedPacket(1, 0x0800, 2, b"\x45\x00"), QueuedPacket(2, 0x1234, 2, b"")]
    w, q, _, _ = make(tmp_path, PolicyConfig(), junk)
    w.run_once(0)
    assert [v.verdict for v in q.sent] == [Verdict.ACCEPT, Verdict.ACCEPT]


def test_reload_swaps_the_inspector_and_restarts_flow_detection(tmp_path):
    frames = evil_conversation()
    w, q, _, out = make(tmp_path, PolicyConfig(), queued(frames[:4]), rules=None)
    while w.run_once(0):
        pass
    (tmp_path / "new.rules").write_text(RULES)
    w.swap_inspector(load_inspector([tmp_path / "new.rules"], RunSummary(), 1 << 16))
    q.pending = queued(frames[4:], start_id=100)
    while w.run_once(0):
        pass
    assert Verdict.DROP in [v.verdict for v in q.sent] and w.counters.reloads == 1


def test_stats_event_has_the_live_branch(tmp_path):
    w, _, _, out = make(tmp_path, PolicyConfig(), queued(evil_conversation()))
    while w.run_once(0):
        pass
    ev = w.stats_event(restarts=2)
    live = ev.body.tree()["live"]
    assert live["packets"] == len(evil_conversation()) and live["worker_restarts"] == 2
    assert live["flows_blocked"] == 1 and live["verdicts"]["drop"] == 2   # the EVIL segment and its ACK
    assert live["memory_max_rss_kb"] > 0


def _http_download(size: int, port: int = 40003, body: bytes | None = None, counted: bool = True):
    """`counted`: the response has a Content-Length; else its body ends at the close."""
    c = TcpConversation("192.0.2.10", "192.0.2.20", port, 80)
    framing = b"Content-Length: %d" % size if counted else b"Connection: close"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n" + framing + b"\r\n\r\n"
    return (list(c.handshake()) + list(c.send(b"GET /f.bin HTTP/1.1\r\nHost: a\r\n\r\n"))
            + list(c.send(head + (body if body is not None else b"\x00" * size), from_client=False)))


def scanner(tmp_path: Path):
    """A file scanner with one hash list (a judge for files: their flows stay queued past the depth)."""
    from firmware.cli.scan import load_sources
    from inspection.files.scanner import ContentScanner
    from inspection.files.scanner_stream import StreamScanner
    (tmp_path / "h.txt").write_text("ab" * 32 + "  some-malware\n")
    hashes, matchers, _ = load_sources([str(tmp_path / "h.txt")], [])
    return StreamScanner(ContentScanner(hashes, matchers))


def _size_limited(tmp_path: Path, counted: bool):
    """A 60,000-byte download through a worker with a scanner, a 30,000-byte file size limit and
    a 2,000-byte depth: the bytes queued before the flow was handed back, the worker, the EVE."""
    out = io.BytesIO()
    eve = EveWriter(out)
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True, file_size_limit=30000),
                    eve.write, None)
    engine.files.scanner = scanner(tmp_path)
    pkts = queued(_http_download(60000, counted=counted))
    q = FakeQueue(list(pkts))
    w = LiveWorker(q, engine, FlowPolicy(PolicyConfig(inspect_depth=2000)), FakeSender(), eve.write,
                   clock=lambda: 1_700_000_000.0)
    while w.run_once(0):
        pass
    first = [v.mark for v in q.sent].index(0x1)
    engine.finish()
    return sum(len(p.payload) for p in pkts[:first]), w, [json.loads(x) for x in out.getvalue().splitlines()]


def test_a_file_of_unknown_size_keeps_its_flow_queued_until_the_size_limit(tmp_path):
    queued_before, _, _ = _size_limited(tmp_path, counted=False)
    # handed back only once the file passed its 30,000-byte limit, not at the 2,000-byte depth
    assert 30000 < queued_before < 45000


def test_a_file_announced_past_the_size_limit_is_handed_back_at_the_depth(tmp_path):
    # its Content-Length says it will be cut at the limit: no verdict could hold its end, so
    # queueing it there would only slow the download
    queued_before, w, evs = _size_limited(tmp_path, counted=True)
    assert 2000 - 1600 < queued_before <= 2000
    assert w.stats_event().body.tree()["live"]["files_too_large"] == 1
    [fi] = [e["fileinfo"] for e in evs if e["event_type"] == "fileinfo"]
    assert fi["state"] == "TRUNCATED" and fi["verdict"]["verdict"] == "unscanned"
    assert fi["verdict"]["reason"].startswith("unscanned: too large")


def test_a_file_past_the_stream_depth_no_longer_keeps_its_flow_queued(tmp_path):
    out = io.BytesIO()
    eve = EveWriter(out)
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True, stream_depth=20000),
                    eve.write, None)
    engine.files.scanner = scanner(tmp_path)
    pkts = queued(_http_download(60000, port=40004))
    q = FakeQueue(pkts)
    w = LiveWorker(q, engine, FlowPolicy(PolicyConfig(inspect_depth=2000)), FakeSender(), eve.write,
                   clock=lambda: 1_700_000_000.0)
    while w.run_once(0):
        pass
    first = [v.mark for v in q.sent].index(0x1)
    assert 17000 < sum(len(p.payload) for p in pkts[:first]) < 25000   # the segment crossing 20,000 is marked


UDP_RULE = 'drop udp any any -> any any (msg:"evil datagram"; content:"EVIL"; sid:9;)\n'


def _udp_flow():
    return queued([(0.0, udp_packet("192.0.2.10", "192.0.2.20", 40000, 9999, b"hello")),
                   (0.1, udp_packet("192.0.2.10", "192.0.2.20", 40000, 9999, b"EVIL one")),
                   (0.2, udp_packet("192.0.2.10", "192.0.2.20", 40000, 9999, b"EVIL two"))])


def test_a_blocked_udp_flow_gets_its_sender_one_port_unreachable(tmp_path):
    w, q, sender, _ = make(tmp_path, PolicyConfig(block_mark=0x2), _udp_flow(), rules=UDP_RULE)
    while w.run_once(0):
        pass
    assert [v.verdict for v in q.sent] == [Verdict.ACCEPT, Verdict.REPEAT, Verdict.DROP]
    [(port, frame)] = sender.frames      # the later datagram goes in the kernel (block mark): no second one
    p = decode_frame(1, frame, 0.0, 1, len(frame), True)
    assert port == CLI_PORT and (p.icmp_type, p.icmp_code) == (3, 3) and p.checksum_ok
    assert w.stats_event().body.tree()["live"]["unreachables_sent"] == 1


def test_no_resets_sends_no_port_unreachable_either(tmp_path):
    w, q, sender, _ = make(tmp_path, PolicyConfig(block_mark=0x2, resets=False), _udp_flow(), rules=UDP_RULE)
    while w.run_once(0):
        pass
    assert Verdict.REPEAT in [v.verdict for v in q.sent] and sender.frames == []


def test_port_unreachables_are_limited_per_second(tmp_path, monkeypatch):
    # a flood of blocked UDP flows (forgeable sources) must not make the box a reflector
    import inspection.io.live as live_module
    from inspection.io.answers import UNREACHABLE_PER_S
    monkeypatch.setattr(live_module.time, "monotonic", lambda: 1000.25)   # all within one second
    n = UNREACHABLE_PER_S + 30
    frames = [(0.0, udp_packet("192.0.2.10", "192.0.2.20", 20000 + i, 9999, b"EVIL")) for i in range(n)]
    w, q, sender, _ = make(tmp_path, PolicyConfig(block_mark=0x2), queued(frames), rules=UDP_RULE)
    while w.run_once(0):
        pass
    assert [v.verdict for v in q.sent] == [Verdict.REPEAT] * n     # every flow is still blocked
    live = w.stats_event().body.tree()["live"]
    assert len(sender.frames) == live["unreachables_sent"] == UNREACHABLE_PER_S
    assert live["unreachables_limited"] == 30
