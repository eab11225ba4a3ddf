"""The box answers connections to the DNS block address itself: a handshake and the block page
on port 80, a reset on other ports and for requests the page does not answer, nothing forwarded."""
from __future__ import annotations

import pytest

from firmware.bench.frames import ACK, CLIENT_MAC, FIN, tcp_packet
from inspection.io.nfqueue import QueuedPacket, Verdict
from inspection.policy.dnsblock import DnsBlockConfig
from inspection.policy.tcpreset import parse_tcp
from inspection.policy.verdict import PolicyConfig
from tests.unit.live.test_live_enforce import judges, make  # noqa: F401 - the judges fixture
from tests.unit.live.test_live_worker import CLI_PORT, SRV_PORT

SYN, PSH, RST = 0x02, 0x08, 0x04
BLOCK4, BLOCK6 = "198.51.100.7", "2001:db8:ff::7"
CFG = PolicyConfig(dns_block=DnsBlockConfig(BLOCK4, BLOCK6))


def client(frame: bytes, pid: int) -> QueuedPacket:
    v6 = frame[12:14] == b"\x86\xdd"
    return QueuedPacket(packet_id=pid, hw_protocol=0x86DD if v6 else 0x0800, hook=2, payload=frame[14:],
                        hwaddr=frame[6:12], physin=CLI_PORT, physout=SRV_PORT)


def run(w, q, pkts):
    q.pending.extend(pkts)
    n = len(w.sender.frames)
    while w.run_once(0):
        pass
    return w.sender.frames[n:]


@pytest.mark.parametrize("src,dst", [("192.0.2.10", BLOCK4), ("2001:db8::10", BLOCK6)])
def test_a_blocked_name_answered_with_the_block_address_gets_the_page_from_the_box(judges, src, dst):
    w, q, sender, _ = make(judges, CFG)
    out = run(w, q, [client(tcp_packet(src, dst, 40200, 80, 1000, 0, SYN), 1)])
    [(port, synack)] = out
    s = parse_tcp(synack[14:])
    assert port == CLI_PORT and synack[:6] == CLIENT_MAC
    assert s.flags == SYN | ACK and s.ack == 1001 and (s.sport, s.dport) == (80, 40200)
    assert q.sent[-1].verdict is Verdict.DROP                       # the SYN goes nowhere
    req = b"GET / HTTP/1.1\r\nHost: phish.example.test\r\n\r\n"
    out = run(w, q, [client(tcp_packet(src, dst, 40200, 80, 1001, s.seq + 1, ACK), 2),
                     client(tcp_packet(src, dst, 40200, 80, 1001, s.seq + 1, PSH | ACK, req), 3)])
    [(port, page)] = out                                            # the page only: no server to reset
    p = parse_tcp(page[14:])
    assert port == CLI_PORT and p.seq == s.seq + 1 and p.ack == 1001 + len(req) and p.flags & FIN
    assert b"HTTP/1.1 403 Forbidden" in page and b"phish.example.test" in page
    out = run(w, q, [client(tcp_packet(src, dst, 40200, 80, 1001 + len(req), s.seq + 2 + p.payload_len,
                                       FIN | ACK), 4)])
    assert len(out) == 1 and parse_tcp(out[0][1][14:]).flags == ACK  # the client's FIN acknowledged
    assert all(v.verdict is Verdict.DROP for v in q.sent)
    c = w.counters
    assert (c.block_host_handshakes, c.block_pages_sent, c.block_host_resets) == (1, 1, 0)


def test_other_ports_and_hosts_the_page_does_not_answer_are_reset_at_once(judges):
    w, q, sender, _ = make(judges, CFG)
    [(_, rst)] = run(w, q, [client(tcp_packet("192.0.2.10", BLOCK4, 40300, 443, 5000, 0, SYN), 1)])
    r = parse_tcp(rst[14:])
    assert r.flags & RST and r.ack == 5001 and q.sent[-1].verdict is Verdict.DROP
    [(_, synack)] = run(w, q, [client(tcp_packet("192.0.2.10", BLOCK4, 40301, 80, 7000, 0, SYN), 2)])
    s = parse_tcp(synack[14:])
    req = b"GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n"    # not blocked: no page to give
    [(_, rst)] = run(w, q, [client(tcp_packet("192.0.2.10", BLOCK4, 40301, 80, 7001, s.seq + 1, PSH | ACK, req), 3)])
    assert parse_tcp(rst[14:]).flags & RST
    assert all(v.verdict is Verdict.DROP for v in q.sent)
    assert w.counters.block_host_resets == 2 and w.counters.block_pages_sent == 0


def test_without_dns_block_answers_the_address_is_nothing_special(judges):
    w, q, sender, _ = make(judges, PolicyConfig())
    assert not run(w, q, [client(tcp_packet("192.0.2.10", BLOCK4, 40400, 80, 1, 0, SYN), 1)])
    assert q.sent[-1].verdict is Verdict.ACCEPT
