"""EVE lines: one JSON object and one newline each; NEL, LS and PS escaped (line readers break
there); a flow's TCP flags named as Suricata names them."""
from __future__ import annotations

import io
import json

from firmware.bench.frames import TcpConversation
from inspection.config import ChecksumMode, EngineConfig
from inspection.engine import Engine
from inspection.output.eve import EveWriter


def _eve(user_agent: bytes) -> bytes:
    out = io.BytesIO()
    engine = Engine(EngineConfig(checksum=ChecksumMode.NONE), EveWriter(out).write)
    c = TcpConversation("192.0.2.1", "198.51.100.2", 40000, 80)
    frames = list(c.handshake())
    frames += c.send(b"GET / HTTP/1.1\r\nHost: a.example\r\nUser-Agent: " + user_agent + b"\r\n\r\n")
    frames += c.send(b"HTTP/1.1 204 No Content\r\n\r\n", from_client=False)
    frames += c.close()
    for ts, f in frames:
        engine.process(1, f, ts, len(f))
    engine.finish()
    return out.getvalue()


def test_line_separators_are_escaped_and_each_event_is_one_line():
    raw = _eve(b"a\x85b")   # latin-1 NEL: U+0085 in the JSON string
    lines = raw.split(b"\n")
    assert lines[-1] == b"" and b"\xc2\x85" not in raw and b"\\u0085" in raw
    http = [json.loads(x) for x in lines[:-1] if b'"event_type":"http"' in x]
    assert http[0]["http"]["http_user_agent"] == "a\x85b"
    assert all(json.loads(x) for x in raw.splitlines())   # a reader splitting at NEL sees whole lines too


def test_ascii_lines_are_written_as_json_dumps_them():
    raw = _eve(b"bench")
    assert raw.isascii() and all(line.startswith(b"{") for line in raw.splitlines())


def test_flow_tcp_flags():
    flows = [json.loads(x) for x in _eve(b"x").splitlines() if b'"event_type":"flow"' in x]
    tcp = flows[0]["tcp"]
    assert (tcp["tcp_flags"], tcp["tcp_flags_ts"], tcp["tcp_flags_tc"]) == ("1b", "1b", "1b")
    assert {k for k, v in tcp.items() if v is True} == {"fin", "syn", "psh", "ack"}
