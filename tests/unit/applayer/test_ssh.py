"""SSH identification strings: both sides' banners, however the bytes arrive, bounded."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from inspection.applayer.ssh import MAX_PREAMBLE, SshParser, SshRecord, parse_banner, probe_ssh
from inspection.model import Anomaly, Direction

C, S = Direction.TO_SERVER, Direction.TO_CLIENT
CLIENT = b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n" + bytes(range(40))
SERVER = b"SSH-1.99-Cisco-1.25\r\n" + b"\x00\x00\x01\x2c\x0a\x14"


def run(chunks) -> list:
    p = SshParser()
    out = []
    for d, data in chunks:
        out += p.feed(d, data, 0.0)
    return out + p.close(0.0)


def test_both_banners_whole_and_byte_by_byte():
    whole = run([(S, SERVER), (C, CLIENT)])
    bytewise = run([(S, SERVER[i:i + 1]) for i in range(len(SERVER))] + [(C, CLIENT[i:i + 1]) for i in range(len(CLIENT))])
    for out in (whole, bytewise):
        (rec,) = out
        assert isinstance(rec, SshRecord)
        assert (rec.client.proto_version, rec.client.software_version) == ("2.0", "OpenSSH_9.6p1")
        assert rec.client.comments == "Ubuntu-3ubuntu13"
        assert (rec.server.proto_version, rec.server.software_version) == ("1.99", "Cisco-1.25")


def test_server_lines_before_the_banner_and_one_side_only():
    (rec,) = run([(S, b"welcome\r\nto the box\n" + SERVER)])
    assert rec.server.software_version == "Cisco-1.25" and rec.client is None


def test_parser_is_done_after_both_banners():
    p = SshParser()
    p.feed(C, CLIENT, 0.0)
    assert not p.done
    p.feed(S, SERVER, 0.0)
    assert p.done and p.feed(C, b"more", 0.0) == [] and p.close(0.0) == []


def test_limits_give_up_with_an_anomaly():
    out = run([(S, b"x" * (MAX_PREAMBLE + 10))])
    assert [a.event for a in out if isinstance(a, Anomaly)] == ["invalid_banner"]
    out = run([(C, b"SSH-2.0-" + b"a" * 400)])
    assert [a.event for a in out if isinstance(a, Anomaly)] == ["long_banner"]


def test_probe_and_banner_parse():
    assert probe_ssh(b"SSH-2.0-x", C) is True and probe_ssh(b"SSH-1.99-x", S) is True
    assert probe_ssh(b"SS", C) is None and probe_ssh(b"SSH-", C) is None
    assert probe_ssh(b"SSH-x", C) is False and probe_ssh(b"GET / HTTP/1.1", C) is False
    assert parse_banner(b"SSH-2.0\r\n") is None
    assert parse_banner(b"SSH-2.0-x\n").software_version == "x"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([C, S]), st.binary(max_size=300)), max_size=12),
       st.integers(min_value=0, max_value=len(CLIENT)))
def test_garbled_and_truncated_input_never_raises(chunks, cut):
    out = run([(C, CLIENT[:cut])] + chunks)
    assert all(isinstance(o, (SshRecord, Anomaly)) for o in out)
