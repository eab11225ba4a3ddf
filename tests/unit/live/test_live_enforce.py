"""Enforcement on the live path with a fake queue: the block page, TLS resets by category,
malicious files held at their last segment, detect-only per class."""
from __future__ import annotations

import hashlib
import io
import json
import random
import struct

import pytest

from firmware.bench.frames import ACK, CLIENT_MAC, FIN, SERVER_MAC, TcpConversation, tcp_packet
from firmware.bench.synth import tls_client_hello
from firmware.cli.scan import load_sources
from inspection.config import ChecksumMode, EngineConfig
from inspection.engine import Engine
from inspection.files.scanner import ContentScanner
from inspection.files.scanner_stream import StreamScanner
from inspection.io.live import LiveWorker
from inspection.io.senders import FakeSender
from inspection.io.nfqueue import FakeQueue, Verdict
from inspection.output.eve import EveWriter
from inspection.policy.dnsblock import DnsBlockConfig
from inspection.policy.tcpreset import parse_tcp
from inspection.policy.urlcat import UrlCategorizer
from inspection.policy.verdict import FlowPolicy, HitKind, PolicyConfig
from signatures.categories.compile import compile_lists
from signatures.categories.db import encode, write_db
from signatures.categories.lookup import CategoryDB
from tests.unit.live.test_live_worker import CLI_PORT, SRV_PORT, queued

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@pytest.fixture(scope="module")
def judges(tmp_path_factory):
    d = tmp_path_factory.mktemp("judges")
    (d / "lists" / "phishing").mkdir(parents=True)
    (d / "lists" / "phishing" / "domains").write_text("phish.example.test\n")
    write_db(d / "cat.db", encode(compile_lists(d / "lists")))
    (d / "h.txt").write_text(hashlib.sha256(EICAR).hexdigest() + "  eicar-test\n")
    hashes, matchers, _ = load_sources([str(d / "h.txt")], [])
    return CategoryDB.load(d / "cat.db"), hashes, matchers


def make(judges, policy=PolicyConfig(), packets=(), exclusions=None):
    db, hashes, matchers = judges
    out = io.BytesIO()
    eve = EveWriter(out)
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True), eve.write, None,
                    UrlCategorizer(db, None))
    engine.files.scanner = StreamScanner(ContentScanner(hashes, matchers))
    q = FakeQueue(list(packets))
    sender = FakeSender()
    w = LiveWorker(q, engine, FlowPolicy(policy), sender, eve.write, clock=lambda: 1_700_000_000.0)
    if exclusions is not None:
        w.exclusions.exclusions = exclusions
    while w.run_once(0):
        pass
    return w, q, sender, [json.loads(line) for line in out.getvalue().splitlines()]


def download(body: bytes, host="www.example.test", v6=False):
    c = (TcpConversation("2001:db8::10", "2001:db8::20", 40100, 80) if v6
         else TcpConversation("192.0.2.10", "192.0.2.20", 40100, 80))
    frames = list(c.handshake()) + list(c.send(f"GET /f HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()))
    frames += list(c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body, from_client=False))
    pkts = queued(frames)
    if v6:
        import dataclasses
        pkts = [dataclasses.replace(p, hw_protocol=0x86DD) for p in pkts]
    return pkts


def last_data_id(pkts):
    return max(p.packet_id for p in pkts if parse_tcp(p.payload).payload_len and p.physin == SRV_PORT)


@pytest.mark.parametrize("v6", [False, True])
def test_a_malicious_file_never_completes_its_last_segment_is_dropped(judges, v6):
    pkts = download(EICAR, v6=v6)
    w, q, sender, evs = make(judges, packets=pkts)
    last = last_data_id(pkts)
    by_id = {v.packet_id: v for v in q.sent}
    assert by_id[last].verdict is Verdict.REPEAT and by_id[last].mark == 0x2
    assert all(v.verdict is Verdict.ACCEPT for i, v in by_id.items() if i < last)
    alerts = [e for e in evs if e["event_type"] == "alert"]
    assert [(a["alert"]["action"], a["alert"]["category"]) for a in alerts] == [("blocked", "malware")]
    files = [e["fileinfo"] for e in evs if e["event_type"] == "fileinfo"]
    assert files[0]["verdict"]["verdict"] == "malicious"
    assert sorted(ifx for ifx, _ in sender.frames) == [CLI_PORT, SRV_PORT]
    assert w.counters.files_blocked == 1 and w.counters.files_judged_live == 1


def test_a_clean_file_is_released_with_its_last_segment(judges):
    body = random.Random(3).randbytes(20000)
    pkts = download(body)
    w, q, sender, evs = make(judges, packets=pkts)
    assert all(v.verdict is Verdict.ACCEPT for v in q.sent) and not sender.frames
    assert w.counters.files_judged_live == 1 and w.counters.hold_us_max > 0
    assert [e["fileinfo"]["verdict"]["verdict"] for e in evs if e["event_type"] == "fileinfo"] == ["clean"]


def test_a_blocked_category_over_http_gets_the_block_page(judges):
    pkts = download(b"<html>login</html>", host="phish.example.test")
    w, q, sender, evs = make(judges, packets=pkts)
    req = next(p for p in pkts if b"GET /f" in p.payload)
    by_id = {v.packet_id: v for v in q.sent}
    # dropped, not yet blocked in the kernel: the client's FIN after the page must still come here
    assert by_id[req.packet_id].verdict is Verdict.DROP and by_id[req.packet_id].mark is None
    assert all(v.verdict is Verdict.DROP and v.mark is None for i, v in by_id.items() if i > req.packet_id)
    (ifc, to_client), (ifs, to_server) = sender.frames
    assert (ifc, to_client[:6], ifs, to_server[:6]) == (CLI_PORT, CLIENT_MAC, SRV_PORT, SERVER_MAC)
    r, page = parse_tcp(to_client[14:]), to_client[14 + 40:]
    t = parse_tcp(req.payload)
    assert (r.seq, r.ack) == (t.ack, t.seq + t.payload_len) and r.flags & 0x01   # FIN with the page
    assert page.startswith(b"HTTP/1.1 403 Forbidden\r\n") and b"text/html" in page
    assert b"phish.example.test" in page and "ブロック".encode() in page and b"phishing" in page
    assert parse_tcp(to_server[14:]).flags & 0x04 and parse_tcp(to_server[14:]).seq == t.seq
    alerts = [e["alert"] for e in evs if e["event_type"] == "alert"]
    assert [(a["action"], a["category"]) for a in alerts] == [("blocked", "phishing")]   # once, not twice
    assert w.counters.block_pages_sent == 1


def test_a_blocked_category_over_tls_is_reset_both_ways(judges):
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40200, 443)
    frames = list(c.handshake()) + list(c.send(tls_client_hello(random.Random(1), "login.phish.example.test")))
    pkts = queued(frames)
    w, q, sender, evs = make(judges, packets=pkts)
    # the client hello is stopped: its SNI is looked up before the server answers
    hello = next(p for p in pkts if parse_tcp(p.payload).payload_len)
    assert {v.packet_id: v.verdict for v in q.sent}[hello.packet_id] is Verdict.REPEAT
    assert sorted(ifx for ifx, _ in sender.frames) == [CLI_PORT, SRV_PORT]
    assert all(parse_tcp(f[14:]).flags & 0x04 for _, f in sender.frames)
    assert [e["alert"]["action"] for e in evs if e["event_type"] == "alert"] == ["blocked"]


@pytest.mark.parametrize("cls,blocked", [("file", False), ("category", True), ("*", False), ("rules", True)])
def test_detect_only_per_class(judges, cls, blocked):
    pkts = download(EICAR)
    w, q, sender, evs = make(judges, PolicyConfig(detect_only=frozenset({cls})), pkts)
    actions = [e["alert"]["action"] for e in evs if e["event_type"] == "alert"]
    assert actions == ["blocked" if blocked else "allowed"]
    assert any(v.verdict is not Verdict.ACCEPT for v in q.sent) is blocked
    assert bool(sender.frames) is blocked


def test_detect_only_category_alerts_and_lets_the_page_through(judges):
    pkts = download(b"<html>login</html>", host="phish.example.test")
    w, q, sender, evs = make(judges, PolicyConfig(detect_only=frozenset({"category"})), pkts)
    assert all(v.verdict is Verdict.ACCEPT for v in q.sent) and not sender.frames
    assert [e["alert"]["action"] for e in evs if e["event_type"] == "alert"] == ["allowed"]


def test_block_page_is_small_and_escapes_the_host():
    from inspection.policy.blockpage import MAX_PAGE, block_page
    page = block_page("phishing", "<script>" + "a" * 300, "Phishing", "フィッシング")
    assert len(page) <= MAX_PAGE and b"<script>" not in page and b"&lt;script&gt;" in page
    head, _, body = page.partition(b"\r\n\r\n")
    assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) == len(body)


def test_judges_load_from_the_run_options_and_swap_on_reload(tmp_path):
    from firmware.cli.main import build_parser
    from firmware.cli.run import build_spec
    from firmware.live.sources import load_judges
    from firmware.live.worker import _finish_reload
    from tests.sim.livebox import make_judges

    opts = make_judges(tmp_path)
    args = build_parser().parse_args(["run", "-l", str(tmp_path), *opts, "--apps", "--detect-only", "file"])
    spec = build_spec(args)
    assert spec.policy.is_detect_only(None, HitKind.FILE) and not spec.policy.is_detect_only(None, HitKind.CATEGORY)
    j = load_judges(spec)
    assert j.urlcat is not None and j.urlcat.db is not None and j.urlcat.apps is not None
    assert j.scanner is not None and j.inspector is None
    w, _, _, _ = make((j.urlcat.db, *load_sources([str(tmp_path / "block.sha256")], [])[:2]))
    old = w.engine.files.scanner
    _finish_reload(w, spec, (True, load_judges(spec)))
    assert w.engine.files.scanner is not old and w.engine.urlcat is not None and w.counters.reloads == 1


@pytest.mark.parametrize("opt", ["--categories", "--hashes", "--scan-bundle", "--yara"])
def test_a_missing_judgement_source_exits_2_with_one_line(opt, capsys, tmp_path):
    from firmware.cli.main import main
    assert main(["run", "-l", str(tmp_path), opt, str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and err.count("\n") == 1


def test_a_definitions_package_needs_a_trusted_key(capsys, tmp_path):
    from firmware.cli.main import main
    (tmp_path / "defs.pkg").write_bytes(b"UTMDEFS1junk")
    assert main(["run", "-l", str(tmp_path), "--definitions", str(tmp_path / "defs.pkg"),
                 "--trusted-key", str(tmp_path / "nokey.pem")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("host,blocked", [("phish.example.test", 1), ("www.example.test", 0)])
def test_category_counters_count_a_request_once(judges, host, blocked):
    # the live path looks the request up at its head and again when its transaction is logged:
    # the counters must say one look-up, as `utm inspect` does
    pkts = download(b"<html>login</html>", host=host)
    w, _, _, _ = make(judges, packets=pkts)
    w.engine.finish()
    c = w.engine.urlcat.counters
    assert (c.lookups, c.blocked, c.by_category.get("phishing", 0)) == (1, blocked, blocked)


def close_delimited(body: bytes, fin_with_data: bool, port=40300):
    """HTTP/1.0-style download: no length, not chunked, the body ends with the server's FIN."""
    c = TcpConversation("192.0.2.10", "192.0.2.20", port, 80)
    frames = list(c.handshake()) + list(c.send(b"GET /f HTTP/1.1\r\nHost: www.example.test\r\n\r\n"))
    frames += list(c.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body, from_client=False))
    if fin_with_data:   # the FIN rides on the last data segment (a write then close)
        last = max(i for i, (_, f) in enumerate(frames) if f[6:12] == SERVER_MAC and len(f) > 54)
        ts, f = frames[last]
        frames[last] = (ts, _with_fin(f))
        frames += list(c.close(from_client=False))[1:]
    else:
        frames += list(c.close(from_client=False))
    return queued(frames)


def _with_fin(frame: bytes) -> bytes:
    """The same IPv4 TCP frame with FIN set (checksums are not validated on the live path)."""
    ihl = (frame[14] & 0x0F) * 4
    off = 14 + ihl + 13
    return frame[:off] + bytes([frame[off] | 0x01]) + frame[off + 1:]


def server_fin_id(pkts):
    return min(p.packet_id for p in pkts if p.physin == SRV_PORT and parse_tcp(p.payload).flags & 0x01)


@pytest.mark.parametrize("fin_with_data", [False, True])
def test_a_malicious_close_delimited_file_is_judged_at_the_servers_fin_which_is_dropped(judges, fin_with_data):
    pkts = close_delimited(EICAR, fin_with_data)
    w, q, sender, evs = make(judges, packets=pkts)
    fin = server_fin_id(pkts)
    by_id = {v.packet_id: v for v in q.sent}
    assert by_id[fin].verdict is Verdict.REPEAT and by_id[fin].mark == 0x2
    # a FIN on its own: the data segment before it was held, and is dropped with it
    last = fin if fin_with_data else last_data_id(pkts)
    assert all(v.verdict is Verdict.ACCEPT for i, v in by_id.items() if i < last)
    if not fin_with_data:
        assert by_id[last].verdict is Verdict.DROP and w.holds.counters.dropped == 1
        order = [v.packet_id for v in q.sent]
        assert order.index(fin) == order.index(last) + 1        # settled just before the FIN's verdict
        # the client's reset starts where the dropped segment did: a later one would be ignored
        [to_client] = [f for ifx, f in sender.frames if ifx == CLI_PORT]
        held = next(p for p in pkts if p.packet_id == last)
        assert parse_tcp(to_client[14:]).seq == parse_tcp(held.payload).seq
    assert sorted(ifx for ifx, _ in sender.frames) == [CLI_PORT, SRV_PORT]
    alerts = [e["alert"] for e in evs if e["event_type"] == "alert"]
    assert [(a["action"], a["category"]) for a in alerts] == [("blocked", "malware")]
    assert [e["fileinfo"]["verdict"]["verdict"] for e in evs if e["event_type"] == "fileinfo"] == ["malicious"]
    assert w.counters.files_blocked == 1 and w.counters.files_judged_live == 1


def test_a_clean_close_delimited_file_releases_the_fin(judges):
    pkts = close_delimited(random.Random(5).randbytes(9000), False)
    w, q, sender, evs = make(judges, packets=pkts)
    assert all(v.verdict is Verdict.ACCEPT for v in q.sent) and not sender.frames
    assert w.counters.files_judged_live == 1
    [fi] = [e["fileinfo"] for e in evs if e["event_type"] == "fileinfo"]
    assert (fi["verdict"]["verdict"], fi["state"], fi["size"]) == ("clean", "CLOSED", 9000)


def test_a_malicious_chunked_file_is_held_at_the_segment_with_the_last_chunk(judges):
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40400, 80)
    frames = list(c.handshake()) + list(c.send(b"GET /f HTTP/1.1\r\nHost: www.example.test\r\n\r\n"))
    frames += list(c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          + b"%x\r\n" % len(EICAR) + EICAR + b"\r\n", from_client=False))
    frames += list(c.send(b"0\r\n\r\n", from_client=False))   # the last chunk in a segment of its own
    pkts = queued(frames)
    w, q, sender, evs = make(judges, packets=pkts)
    last = last_data_id(pkts)
    assert pkts[last - 1].payload.endswith(b"0\r\n\r\n")
    eicar = max(p.packet_id for p in pkts if EICAR in p.payload)
    by_id = {v.packet_id: v for v in q.sent}
    assert by_id[last].verdict is Verdict.REPEAT
    # the segment with the file's bytes was held for the packet after it and is dropped with it:
    # the client never has the whole file
    assert by_id[eicar].verdict is Verdict.DROP
    assert all(v.verdict is Verdict.ACCEPT for i, v in by_id.items() if i < eicar)
    assert w.counters.files_blocked == 1


def test_a_held_segment_with_nothing_after_it_is_released_in_time(judges):
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40410, 80)
    frames = list(c.handshake()) + list(c.send(b"GET /f HTTP/1.1\r\nHost: www.example.test\r\n\r\n"))
    frames += list(c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                          from_client=False))   # the body goes on later (a slow server, Nagle)
    pkts = queued(frames)
    w, q, sender, evs = make(judges, packets=pkts)
    held = last_data_id(pkts)
    assert held not in {v.packet_id for v in q.sent} and len(w.holds) == 1
    w.holds.max_age = 0.0
    w.run_once(0)                          # idle: what is due goes out
    assert q.sent[-1].packet_id == held and q.sent[-1].verdict is Verdict.ACCEPT
    assert not w.holds and w.holds.counters.expired == 1


def multipart_upload(file_body: bytes):
    b = b"----utmboundary"
    body = (b"--" + b + b'\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
            + b"--" + b + b'\r\nContent-Disposition: form-data; name="f"; filename="e.com"\r\n'
            + b"Content-Type: application/octet-stream\r\n\r\n" + file_body + b"\r\n--" + b + b"--\r\n")
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40500, 80)
    frames = list(c.handshake())
    frames += list(c.send(b"POST /up HTTP/1.1\r\nHost: www.example.test\r\nContent-Type: multipart/form-data; "
                          b"boundary=" + b + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:-30]))
    frames += list(c.send(body[-30:]))   # the closing boundary in a segment of its own
    return queued(frames)


@pytest.mark.parametrize("malicious", [True, False])
def test_a_multipart_upload_is_held_at_the_segment_that_ends_its_file_part(judges, malicious):
    pkts = multipart_upload(EICAR if malicious else b"harmless content " * 50)
    w, q, sender, evs = make(judges, packets=pkts)
    last = max(p.packet_id for p in pkts if parse_tcp(p.payload).payload_len and p.physin == CLI_PORT)
    by_id = {v.packet_id: v for v in q.sent}
    assert all(v.verdict is Verdict.ACCEPT for i, v in by_id.items() if i < last)
    assert by_id[last].verdict is (Verdict.REPEAT if malicious else Verdict.ACCEPT)
    files = [e["fileinfo"] for e in evs if e["event_type"] == "fileinfo"]
    assert [(f["filename"], f["verdict"]["verdict"]) for f in files] == [
        ("e.com", "malicious" if malicious else "clean")]
    assert w.counters.files_judged_live == 1 and w.counters.files_blocked == malicious
    assert sorted(ifx for ifx, _ in sender.frames) == ([CLI_PORT, SRV_PORT] if malicious else [])


def test_after_the_block_page_the_clients_fin_is_acknowledged_and_the_flow_blocked_in_the_kernel(judges):
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40600, 80)
    frames = list(c.handshake()) + list(c.send(b"GET / HTTP/1.1\r\nHost: phish.example.test\r\n\r\n"))
    pkts = queued(frames)
    w, q, sender, _ = make(judges, packets=pkts)
    page = parse_tcp(sender.frames[0][1][14:])
    # the client read the page and its FIN, and closes in turn: ACK of the page, then its FIN
    page_end = page.seq + page.payload_len + 1
    req = parse_tcp(next(p for p in pkts if b"GET /" in p.payload).payload)
    client_seq = req.seq + req.payload_len
    ack = tcp_packet("192.0.2.10", "192.0.2.20", 40600, 80, client_seq, page_end, ACK, src_mac=CLIENT_MAC,
                     dst_mac=SERVER_MAC)
    fin = tcp_packet("192.0.2.10", "192.0.2.20", 40600, 80, client_seq, page_end, FIN | ACK, src_mac=CLIENT_MAC,
                     dst_mac=SERVER_MAC)
    more = queued([(0.0, ack), (0.0, fin)], start_id=100)
    q.pending = list(more)
    while w.run_once(0):
        pass
    by_id = {v.packet_id: v for v in q.sent}
    assert by_id[100].verdict is Verdict.DROP and by_id[100].mark is None   # the flow stays visible
    assert by_id[101].verdict is Verdict.REPEAT and by_id[101].mark == 0x2  # now blocked in the kernel
    ifx, frame = sender.frames[-1]
    a = parse_tcp(frame[14:])
    assert (ifx, frame[:6], frame[6:12]) == (CLI_PORT, CLIENT_MAC, SERVER_MAC)
    assert (a.seq, a.ack, a.flags) == (page_end, client_seq + 1, 0x10)   # ACK of the client's FIN
    assert w.counters.page_closes_acked == 1 and len(sender.frames) == 3


def dns_queries(*queries):
    from firmware.bench.frames import udp_packet
    from firmware.bench.synth import dns_query
    return queued([(0.0, udp_packet("192.0.2.10", "192.0.2.53", 40700, 53, dns_query(i + 1, name, qtype)))
                   for i, (name, qtype) in enumerate(queries)])


DNS_CFG = PolicyConfig(dns_block=DnsBlockConfig("198.51.100.7"))


def test_with_dns_block_answers_a_blocked_name_is_answered_by_the_box(judges):
    pkts = dns_queries(("phish.example.test", 1), ("phish.example.test", 28), ("www.example.test", 1))
    w, q, sender, evs = make(judges, DNS_CFG, pkts)
    v = [(m.verdict, m.mark) for m in q.sent]
    # each query for the blocked name is dropped (not the flow: the AAAA on the same ports still
    # comes here and is answered too); the allowed name goes to the resolver
    assert v == [(Verdict.DROP, None), (Verdict.DROP, None), (Verdict.ACCEPT, None)]
    assert [ifx for ifx, _ in sender.frames] == [CLI_PORT, CLI_PORT]
    a, aaaa = (f[14 + 28:] for _, f in sender.frames)
    assert a.endswith(bytes([198, 51, 100, 7])) and a[:2] == b"\x00\x01"
    assert struct.unpack_from("!H", aaaa, 6)[0] == 0 and aaaa[:2] == b"\x00\x02"   # NODATA: no IPv6 address set
    alerts = [e["alert"] for e in evs if e["event_type"] == "alert"]
    assert [(x["action"], x["category"]) for x in alerts] == [("blocked", "phishing")] * 2
    assert [e["dns"]["queries"][0]["rrname"] for e in evs if e["event_type"] == "dns"][:2] == ["phish.example.test"] * 2
    assert w.counters.dns_answers_sent == 2 and w.policy.counters.by_reason["dns_answered"] == 2
    assert [e["drop"]["reason"] for e in evs if e["event_type"] == "drop"] == ["dns answered"] * 2


def test_without_dns_block_answers_the_query_passes_and_the_alert_says_allowed(judges):
    w, q, sender, evs = make(judges, PolicyConfig(), dns_queries(("phish.example.test", 1)))
    assert [m.verdict for m in q.sent] == [Verdict.ACCEPT] and not sender.frames
    assert [e["alert"]["action"] for e in evs if e["event_type"] == "alert"] == ["allowed"]


def test_dns_block_answers_follow_detect_only_category(judges):
    cfg = PolicyConfig(dns_block=DnsBlockConfig("198.51.100.7"), detect_only=frozenset({"category"}))
    w, q, sender, evs = make(judges, cfg, dns_queries(("phish.example.test", 1)))
    assert [m.verdict for m in q.sent] == [Verdict.ACCEPT] and not sender.frames
    assert [e["alert"]["action"] for e in evs if e["event_type"] == "alert"] == ["allowed"]


@pytest.mark.parametrize("body", [EICAR, random.Random(3).randbytes(20000)])
def test_a_length_framed_body_whose_last_segment_carries_the_fin_is_judged_there_once(judges, body):
    c = TcpConversation("192.0.2.10", "192.0.2.20", 40800, 80)
    frames = list(c.handshake()) + list(c.send(b"GET /f HTTP/1.1\r\nHost: www.example.test\r\n\r\n"))
    frames += list(c.send(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body, from_client=False))
    last = max(i for i, (_, f) in enumerate(frames) if f[6:12] == SERVER_MAC and len(f) > 54)
    frames[last] = (frames[last][0], _with_fin(frames[last][1]))
    frames += list(c.close(from_client=False))[1:]
    pkts = queued(frames)
    w, q, _, evs = make(judges, packets=pkts)
    malicious = body == EICAR
    assert {v.packet_id: v.verdict for v in q.sent}[server_fin_id(pkts)] is (
        Verdict.REPEAT if malicious else Verdict.ACCEPT)
    assert [e["fileinfo"]["verdict"]["verdict"] for e in evs if e["event_type"] == "fileinfo"] == [
        "malicious" if malicious else "clean"]
    assert w.counters.files_judged_live == 1 and w.counters.hold_us_max > 0


@pytest.mark.parametrize("name,answered", [("phish.example.test", True), ("www.example.test", False)])
def test_with_dns_block_answers_a_query_over_tcp_is_answered_in_the_stream(judges, name, answered):
    from firmware.bench.synth import dns_query
    q_msg = dns_query(7, name, 1)
    c = TcpConversation("192.0.2.10", "192.0.2.53", 40800, 53)
    frames = list(c.handshake()) + list(c.send(struct.pack("!H", len(q_msg)) + q_msg))
    pkts = queued(frames)
    w, q, sender, evs = make(judges, DNS_CFG, pkts)
    query = next(p for p in pkts if q_msg in p.payload)
    by_id = {v.packet_id: v for v in q.sent}
    if not answered:
        assert by_id[query.packet_id].verdict is Verdict.ACCEPT and not sender.frames
        return
    assert by_id[query.packet_id].verdict is Verdict.DROP           # the resolver never gets it
    (ifc, to_client), (ifs, to_server) = sender.frames
    a = parse_tcp(to_client[14:])
    t = parse_tcp(query.payload)
    assert (ifc, ifs) == (CLI_PORT, SRV_PORT) and parse_tcp(to_server[14:]).flags & 0x04
    assert (a.seq, a.ack) == (t.ack, t.seq + t.payload_len) and a.flags & 0x01   # the answer, then FIN
    answer = to_client[14 + 40:]
    assert struct.unpack("!H", answer[:2])[0] == len(answer) - 2
    msg = answer[2:]
    assert msg[:2] == q_msg[:2] and msg[2] & 0x80 and msg.endswith(bytes([198, 51, 100, 7]))
    alerts = [e["alert"] for e in evs if e["event_type"] == "alert"]
    assert [(x["action"], x["category"]) for x in alerts] == [("blocked", "phishing")]
    assert w.counters.dns_answers_sent == 1 and w.counters.block_pages_sent == 0


@pytest.mark.parametrize("names,first_cut", [
    (("phish.example.test", "phish.example.test"), 0),    # a stub's A and AAAA, pipelined
    (("www.example.test", "phish.example.test"), 0),      # one of them not blocked: asked again later
    (("phish.example.test", "phish.example.test"), 9)])   # the first began in the segment before
def test_with_dns_block_answers_several_tcp_queries_in_one_segment_get_their_answers(judges, names, first_cut):
    from firmware.bench.synth import dns_query
    msgs = [dns_query(20 + i, name, (1, 28)[i]) for i, name in enumerate(names)]
    framed = b"".join(struct.pack("!H", len(m)) + m for m in msgs)
    c = TcpConversation("192.0.2.10", "192.0.2.53", 40802, 53)
    frames = list(c.handshake())
    if first_cut:
        frames += list(c.send(framed[:first_cut]))
    frames += list(c.send(framed[first_cut:]))
    pkts = queued(frames)
    w, q, sender, evs = make(judges, DNS_CFG, pkts)
    last = next(p for p in pkts if p.payload.endswith(framed[first_cut:]))
    assert {v.packet_id: v.verdict for v in q.sent}[last.packet_id] is Verdict.DROP
    (ifc, to_client), (_, to_server) = sender.frames
    assert ifc == CLI_PORT and parse_tcp(to_server[14:]).flags & 0x04 and parse_tcp(to_client[14:]).flags & 0x01
    stream, answers = to_client[14 + 40:], []
    while stream:
        size = struct.unpack_from("!H", stream)[0]
        answers.append(stream[2:2 + size])
        stream = stream[2 + size:]
    blocked = [m for m, name in zip(msgs, names) if name.startswith("phish")]
    assert [a[:2] for a in answers] == [m[:2] for m in blocked] and all(a[2] & 0x80 for a in answers)
    if len(blocked) == 2:
        assert answers[0].endswith(bytes([198, 51, 100, 7]))
    alerts = [e["alert"] for e in evs if e["event_type"] == "alert"]
    assert [(x["action"], x["category"]) for x in alerts] == [("blocked", "phishing")] * len(blocked)
    assert w.counters.dns_answer_errors == 0 and w.counters.dns_answers_sent == 1


@pytest.mark.parametrize("cut", [2, 9])    # the length prefix alone first; or part of the message too
def test_with_dns_block_answers_a_query_over_tcp_in_two_segments_is_answered_at_its_end(judges, cut):
    from firmware.bench.synth import dns_query
    q_msg = dns_query(9, "phish.example.test", 1)
    framed = struct.pack("!H", len(q_msg)) + q_msg
    c = TcpConversation("192.0.2.10", "192.0.2.53", 40801, 53)
    frames = list(c.handshake()) + list(c.send(framed[:cut])) + list(c.send(framed[cut:]))
    pkts = queued(frames)
    w, q, sender, evs = make(judges, DNS_CFG, pkts)
    first = next(p for p in pkts if p.payload.endswith(framed[:cut]))
    last = next(p for p in pkts if p.payload.endswith(framed[cut:]))
    by_id = {v.packet_id: v for v in q.sent}
    assert by_id[first.packet_id].verdict is Verdict.ACCEPT     # nothing to judge yet: on to the resolver
    assert by_id[last.packet_id].verdict is Verdict.DROP        # the end never reaches it
    (ifc, to_client), (_, to_server) = sender.frames
    a, t = parse_tcp(to_client[14:]), parse_tcp(last.payload)
    assert ifc == CLI_PORT and parse_tcp(to_server[14:]).flags & 0x04
    assert (a.seq, a.ack) == (t.ack, t.seq + t.payload_len)
    msg = to_client[14 + 40 + 2:]
    assert msg[:2] == q_msg[:2] and msg[2] & 0x80 and msg.endswith(bytes([198, 51, 100, 7]))
    assert w.counters.dns_answers_sent == 1 and w.counters.dns_answer_errors == 0
