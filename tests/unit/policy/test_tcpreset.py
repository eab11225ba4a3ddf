"""Reset frames: valid checksums, the right addresses, ports and sequence numbers."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.bench.frames import ACK, PSH, SYN, tcp_packet
from inspection.decode import decode_frame
from inspection.model import TH_RST
from inspection.policy.tcpreset import ResetError, parse_tcp, reset_frames

A_MAC, B_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


@pytest.mark.parametrize("cli,srv", [("192.0.2.10", "192.0.2.20"), ("2001:db8::10", "2001:db8::20")])
def test_both_resets_decode_with_good_checksums(cli, srv):
    ip = tcp_packet(cli, srv, 40000, 80, 1000, 5000, ACK | PSH, b"GET /EVIL HTTP/1.1\r\n\r\n")[14:]
    to_sender, to_receiver = reset_frames(ip, A_MAC, B_MAC)
    back = decode_frame(1, to_sender, 0.0, 1, len(to_sender), True)
    fwd = decode_frame(1, to_receiver, 0.0, 2, len(to_receiver), True)
    assert back.checksum_ok and fwd.checksum_ok and not back.anomalies and not fwd.anomalies
    assert to_sender[:6] == A_MAC and to_receiver[:6] == B_MAC
    assert (back.sport, back.dport, fwd.sport, fwd.dport) == (80, 40000, 40000, 80)
    assert back.tcp_flags & TH_RST and fwd.tcp_flags & TH_RST
    assert back.seq == 5000 and back.ack == 1000 + 22     # acknowledges what the sender sent
    assert fwd.seq == 1000                                     # what the receiver expects next


def test_reset_of_a_syn_acknowledges_it():
    ip = tcp_packet("192.0.2.10", "192.0.2.20", 40000, 80, 7, 0, SYN)[14:]
    back, _ = reset_frames(ip, A_MAC, B_MAC)
    p = decode_frame(1, back, 0.0, 1, len(back), True)
    assert (p.seq, p.ack) == (0, 8)


@pytest.mark.parametrize("bad", [b"", b"\x45" + b"\0" * 10, b"\x70" + b"\0" * 40,
                                 bytes.fromhex("45000020000000004011") + b"\0" * 22])
def test_not_answerable_is_a_reset_error(bad):
    with pytest.raises(ResetError):
        parse_tcp(bad)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_garbage_is_a_reset_error_or_frames(data):
    try:
        reset_frames(data, A_MAC, B_MAC)
    except ResetError:
        pass
