"""The nfnetlink_queue codec on constructed kernel messages (no socket, no root)."""
from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.io.nfqueue import (CMD_BIND, NFQA_CFG_CMD, NFQA_CFG_FLAGS, NFQA_CFG_PARAMS, NFQA_CT, NFQA_MARK,
                                   NFQA_VERDICT_HDR, NLA_F_NESTED, NLM_F_ACK, NLM_F_REQUEST, Ack, FakeQueue, Flag,
                                   NfqDecodeError, QueuedPacket, Verdict, VerdictMsg, decode_messages,
                                   encode_batch_verdict, encode_bind, encode_packet_message, encode_params,
                                   encode_verdict, encode_verdicts, kernel_view, parse_attrs,
                                   parse_kernel_stats)

IP = bytes.fromhex("4500003c1c4640004006b1e6c0000a0ac0000214") + b"\x00" * 40


def _hdr(msg: bytes) -> tuple[int, int, int, int]:
    length, mtype, flags, seq, _ = struct.unpack_from("=IHHII", msg)
    return length, mtype, flags, seq


def test_bind_message_matches_the_kernel_layout():
    msg = encode_bind(7, seq=3)
    length, mtype, flags, seq = _hdr(msg)
    assert length == len(msg) == 16 + 4 + 8
    assert mtype == (3 << 8) | 2                 # NFNL_SUBSYS_QUEUE, NFQNL_MSG_CONFIG
    assert flags == NLM_F_REQUEST | NLM_F_ACK and seq == 3
    assert msg[16:20] == bytes([socket.AF_UNSPEC, 0]) + struct.pack("!H", 7)   # nfgenmsg, queue big-endian
    assert msg[20:28] == struct.pack("=HH", 8, NFQA_CFG_CMD) + bytes([CMD_BIND, 0, 0, 0])


def test_params_carry_copy_mode_flags_and_mask():
    msg = encode_params(1, 0xFFFF, 1024, Flag.GSO | Flag.FAIL_OPEN)
    attrs = parse_attrs(msg, 20, len(msg))
    assert bytes(attrs[NFQA_CFG_PARAMS][:5]) == struct.pack("!IB", 0xFFFF, 2)
    assert struct.unpack("!I", attrs[NFQA_CFG_FLAGS])[0] == 5


def test_verdict_with_mark_and_connmark():
    msg = encode_verdict(2, VerdictMsg(99, Verdict.ACCEPT, mark=0x1, ct_mark=0x2))
    assert _hdr(msg)[1] == (3 << 8) | 1
    attrs = parse_attrs(msg, 20, len(msg))
    assert struct.unpack("!II", attrs[NFQA_VERDICT_HDR]) == (1, 99)
    assert struct.unpack("!I", attrs[NFQA_MARK]) == (1,)
    ct = attrs[NFQA_CT]
    assert struct.unpack("=HH", ct[:4]) == (8, 8) and struct.unpack("!I", ct[4:8]) == (2,)
    raw = struct.unpack_from("=H", msg, 20 + 12 + 8 + 2)[0]
    assert raw == NFQA_CT | NLA_F_NESTED


def test_verdict_without_mark_leaves_the_mark_alone():
    attrs = parse_attrs(m := encode_verdict(0, VerdictMsg(5, Verdict.DROP)), 20, len(m))
    assert set(attrs) == {NFQA_VERDICT_HDR}


def test_batch_verdicts_are_one_buffer_of_messages():
    vs = [VerdictMsg(i, Verdict.ACCEPT) for i in range(1, 4)]
    buf = encode_verdicts(0, vs)
    assert len(buf) == 3 * len(encode_verdict(0, vs[0]))
    b = encode_batch_verdict(4, 77, Verdict.ACCEPT, 0x1)
    assert _hdr(b)[1] == (3 << 8) | 3


def test_packet_message_roundtrip_with_every_attribute():
    p = QueuedPacket(packet_id=42, hw_protocol=0x0800, hook=2, payload=IP, mark=0x10, indev=3, outdev=3,
                     physin=4, physout=5, hwaddr=bytes.fromhex("020000000001"), ct_id=77, ct_info=2,
                     cap_len=9000, skb_info=3, queue=6)
    assert decode_messages(encode_packet_message(p)) == [p]


def test_several_messages_and_an_ack_in_one_datagram():
    p1 = QueuedPacket(1, 0x86DD, 2, b"\x60" + b"\0" * 39, queue=1)
    p2 = QueuedPacket(2, 0x0800, 2, IP[:21], queue=1)   # odd length: padding is skipped
    ack = struct.pack("=IHHII", 36, 2, 0, 9, 0) + struct.pack("=i", -95) + b"\0" * 16
    out = decode_messages(encode_packet_message(p1) + encode_packet_message(p2) + ack)
    assert out == [p1, p2, Ack(9, 95)]


def test_truncated_message_is_a_typed_error():
    msg = encode_packet_message(QueuedPacket(1, 0x0800, 2, IP))
    with pytest.raises(NfqDecodeError):
        decode_messages(msg[:30])            # the header promises more than the datagram holds
    bad = bytearray(msg)
    struct.pack_into("=H", bad, 20, 200)   # first attribute claims to be longer than the message
    with pytest.raises(NfqDecodeError):
        decode_messages(bytes(bad))


def test_packet_without_header_is_a_typed_error():
    msg = encode_packet_message(QueuedPacket(1, 0x0800, 2, IP))
    body = msg[:16] + msg[16:20] + msg[32:]      # drop NFQA_PACKET_HDR (12 bytes)
    body = struct.pack("=I", len(body)) + body[4:]
    with pytest.raises(NfqDecodeError):
        decode_messages(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_gives_messages_or_a_typed_error(data):
    try:
        decode_messages(data)
    except NfqDecodeError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.binary(max_size=300), st.integers(0, 2**32 - 1))
def test_roundtrip_any_payload(pid, payload, mark):
    p = QueuedPacket(pid, 0x0800, 1, payload, mark=mark)
    msg = encode_packet_message(p)
    assert decode_messages(msg) == [p]
    for cut in range(0, len(msg), 7):   # every truncation: typed error or fewer messages
        try:
            decode_messages(msg[:cut])
        except NfqDecodeError:
            pass


def test_fake_queue_hands_out_batches_and_records_verdicts():
    q = FakeQueue([QueuedPacket(i, 0x0800, 2, IP) for i in range(5)])
    assert [p.packet_id for p in q.receive(3, 0)] == [0, 1, 2]
    q.verdicts([VerdictMsg(0, Verdict.ACCEPT)])
    assert len(q.receive(10, 0)) == 2 and q.sent == [VerdictMsg(0, Verdict.ACCEPT)]
    assert q.counters.received == 5


def test_kernel_queue_line_is_parsed():
    text = "    0  23774     0 2 65535     0     0        6  1\n   11  30000     5 2 65535     7     2      900  1\n"
    assert parse_kernel_stats(text, 11) == {"waiting": 5, "queue_dropped": 7, "user_dropped": 2, "queued": 900}
    assert parse_kernel_stats(text, 3) is None and parse_kernel_stats("garbage", 0) is None


def test_kernel_view_counts_numbered_packets_that_never_reached_the_socket():
    k = {"waiting": 5, "queue_dropped": 7, "user_dropped": 2, "queued": 900}
    assert kernel_view(k, 880)["unreached"] == 15      # 900 numbered, 880 read, 5 still waiting
    assert kernel_view(k, 900)["unreached"] == 0       # never negative (waiting ones read meanwhile)
    assert kernel_view(None, 10) is None


_ATTR_TYPES = st.sampled_from([1, 3, 5, 6, 7, 8, 9, 10, 11 | 0x8000, 12, 13, 14, 2, 15, 0x4000 | 10])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_ATTR_TYPES, st.binary(max_size=14)), max_size=12), st.integers(0, 8))
def test_the_one_pass_packet_decoder_agrees_with_the_attribute_table(attrs, cut):
    from inspection.io.nfqueue import _attr, decode_packet, decode_packet_at
    body = b"".join(_attr(t, v) for t, v in attrs)
    body = body[:len(body) - cut] if cut else body
    mv = memoryview(body)
    try:
        want = decode_packet(parse_attrs(mv, 0, len(body)), 3)
    except NfqDecodeError:
        with pytest.raises(NfqDecodeError):
            decode_packet_at(mv, 0, len(body), 3)
        return
    assert decode_packet_at(mv, 0, len(body), 3) == want


def _messages(buf: bytes) -> list[tuple[int, tuple[int, int], int | None]]:
    """(message type, (verdict, id), mark) of each verdict message in a buffer."""
    out, off = [], 0
    while off < len(buf):
        length, mtype, _, _ = _hdr(buf[off:])
        a = parse_attrs(buf, off + 20, off + length)
        mark = struct.unpack("!I", a[NFQA_MARK])[0] if NFQA_MARK in a else None
        out.append((mtype & 0xFF, struct.unpack("!II", a[NFQA_VERDICT_HDR]), mark))
        off += length
    return out


def test_a_leading_run_of_plain_accepts_goes_as_one_batch_verdict():
    from inspection.io.nfqueue import encode_verdicts_batched
    vs = [VerdictMsg(i, Verdict.ACCEPT) for i in (5, 6, 7)] + [VerdictMsg(8, Verdict.REPEAT, 0x2),
                                                               VerdictMsg(9, Verdict.ACCEPT)]
    assert _messages(encode_verdicts_batched(0, vs)) == [(3, (1, 7), None), (1, (4, 8), 2), (1, (1, 9), None)]
    marked = [VerdictMsg(i, Verdict.ACCEPT, 0x1) for i in (1, 2)]
    assert _messages(encode_verdicts_batched(0, marked)) == [(3, (1, 2), 1)]


@pytest.mark.parametrize("vs", [
    [VerdictMsg(5, Verdict.ACCEPT), VerdictMsg(7, Verdict.ACCEPT)],            # a gap in the ids
    [VerdictMsg(5, Verdict.ACCEPT), VerdictMsg(6, Verdict.ACCEPT, 0x1)],       # marks differ
    [VerdictMsg(5, Verdict.DROP), VerdictMsg(6, Verdict.ACCEPT)],              # verdicts differ
    [VerdictMsg(5, Verdict.ACCEPT, ct_mark=1), VerdictMsg(6, Verdict.ACCEPT, ct_mark=1)],   # connmark: per packet
])
def test_verdicts_that_differ_are_sent_one_by_one(vs):
    from inspection.io.nfqueue import encode_verdicts_batched
    assert encode_verdicts_batched(0, vs) == encode_verdicts(0, vs)
