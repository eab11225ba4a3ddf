"""Mangled conversations of every parsed protocol through the live worker: no packet makes
the engine raise (a packet that did would be accepted uninspected, an evasion), and every
queued packet gets exactly one verdict, held ones included."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from firmware.bench import small_flows as sf
from firmware.bench.frames import TcpConversation
from inspection.io.nfqueue import FakeQueue
from inspection.io.senders import FakeSender
from inspection.io.live import LiveWorker
from inspection.policy.verdict import FlowPolicy, PolicyConfig

_ZIP = b"PK\x03\x04\x14\x00\x00\x00\x00\x00" + b"\x00" * 20
CONVERSATIONS = [   # (server port, client bytes, server bytes)
    (80, b"GET /a.zip HTTP/1.1\r\nHost: www.example.test\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\nContent-Type: application/zip\r\n\r\n" + _ZIP),
    (80, b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\nContent-Length: 76\r\n\r\n"
         b"--zz\r\nContent-Disposition: form-data; name=f; filename=a.exe\r\n\r\nMZ\x90\x00\r\n--zz--\r\n",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"),
    (53, bytes.fromhex("001d123401000001000000000000037777770765786d706c6503636f6d0000010001"),
     bytes.fromhex("002d123481800001000100000000037777770765786d706c6503636f6d0000010001c00c00010001"
                   "0000003c00045db8d822")),
    (443, bytes.fromhex("1603010045010000410303") + bytes(32) + bytes.fromhex("0000020035010000160000001200100000"
                                                                            "0d7777772e6578616d706c652e"),
     b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00"),
    (25, b"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x\r\nContent-Type: multipart/mixed; "
         b"boundary=q\r\n\r\n--q\r\nContent-Disposition: attachment; filename=a.zip\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\nUEsDBAo=\r\n--q--\r\n.\r\nQUIT\r\n",
     b"220 hi\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n221 bye\r\n"),
    (80, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x05\x01\x05\x00\x00\x00\x01"
         b"\x82\x86\x84\x41\x80",
     b"\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x03\x01\x04\x00\x00\x00\x01\x88\x5f\x80"),
]


def _mangle(rnd: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 6)):
        if not b:
            break
        i, op = rnd.randrange(len(b)), rnd.random()
        if op < 0.5:
            b[i] = rnd.randrange(256)
        elif op < 0.7:
            del b[i:i + rnd.randint(1, 8)]
        elif op < 0.85:
            b[i:i] = rnd.randbytes(rnd.randint(1, 8))
        else:
            b[i:i] = b[rnd.randrange(len(b)):][:rnd.randint(1, 64)]
    return bytes(b)


def _frames(seed: int, n: int) -> list:
    rnd = random.Random(seed)
    out: list = []
    for i in range(n):
        port, req, resp = rnd.choice(CONVERSATIONS)
        c = TcpConversation(f"192.0.2.{10 + i}", "198.51.100.20", 10000 + i, port, start=sf.START + i * 0.002,
                            mss=rnd.choice([8, 40, 536, 1460]))
        fr = [*c.handshake(), *c.send(_mangle(rnd, req) if rnd.random() < 0.9 else req),
              *c.send(_mangle(rnd, resp) if rnd.random() < 0.9 else resp, from_client=False), *c.close()]
        if rnd.random() < 0.2:    # a header too, not only payload
            k = rnd.randrange(len(fr))
            ts, f = fr[k]
            fr[k] = (ts, f[:14] + _mangle(rnd, f[14:]))
        out += fr
    return out


@pytest.fixture(scope="module")
def judges(tmp_path_factory):
    return sf._Judges(tmp_path_factory.mktemp("judges"))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2 ** 32))
def test_mangled_traffic_never_raises_and_every_packet_gets_one_verdict(judges, seed):
    engine, eve = judges.engine(sf._Sink())
    queued = sf._queued(_frames(seed, 12))
    q = FakeQueue(list(queued))
    ticks = iter(range(10 ** 9))
    w = LiveWorker(q, engine, FlowPolicy(PolicyConfig()), FakeSender(), eve.write,
                   clock=lambda: sf.START + sf.CLOCK_STEP * next(ticks))
    while w.run_once(0):
        pass
    q.verdicts(w.holds.expired(float("inf")))   # what is still held waits for no later packet
    assert w.counters.engine_errors == 0
    assert sorted(v.packet_id for v in q.sent) == [p.packet_id for p in queued]
