"""Transaction candidates: only the tables and payload literals of rules that would run, never fewer."""
from __future__ import annotations

from inspection.detect.engine import Detector
from inspection.detect.header import Scope
from inspection.model import Direction
from signatures.buffers import Buffer
from tests.unit.detect._helpers import rule

HTTP = "alert http any any -> any any"


def _detector() -> Detector:
    return Detector([
        rule('flow:to_server; http.uri; content:"/req";', sid=1, header=HTTP),
        rule('flow:to_client; http.stat_code; content:"404"; http.uri; content:"/gone";', sid=2, header=HTTP),
        # content before the sticky buffer: its literal is on the payload (ET's older style)
        rule('flow:to_server; content:"Agent/7"; nocase; http.user_agent; bsize:7;', sid=3, header=HTTP),
        rule('flow:to_client; file.data; content:"BODY";', sid=4, header=HTTP),
        rule('flow:to_server; http.method; content:"POST";', sid=5, header=HTTP),
    ])


def test_request_literal_found_in_the_payload_whatever_its_case():
    det = _detector()
    bufs = {Buffer.HTTP_URI: b"/req", Buffer.PAYLOAD: b"GET /req HTTP/1.1\r\nUser-Agent: agent/7\r\n\r\n",
            Buffer.HTTP_USER_AGENT: b"agent/7"}
    got = det.candidates(bufs, Scope.TX, direction=Direction.TO_SERVER)
    assert {0, 2} <= got
    assert 2 not in det.candidates({**bufs, Buffer.PAYLOAD: b"GET /req HTTP/1.1\r\n\r\n"}, Scope.TX,
                                   direction=Direction.TO_SERVER)
    assert det.inspect(bufs, direction=Direction.TO_SERVER, scope=Scope.TX)[0].sid == 1
    assert {m.sid for m in det.inspect(bufs, direction=Direction.TO_SERVER, scope=Scope.TX)} == {1, 3}


def test_response_still_searches_request_buffers_its_rules_read():
    det = _detector()
    bufs = {Buffer.HTTP_URI: b"/gone", Buffer.HTTP_STAT_CODE: b"404", Buffer.PAYLOAD: b"HTTP/1.1 404 x\r\n\r\n"}
    assert 1 in det.candidates(bufs, Scope.TX, direction=Direction.TO_CLIENT)   # sid 2, found by either table
    assert [m.sid for m in det.inspect(bufs, direction=Direction.TO_CLIENT, scope=Scope.TX)] == [2]
    # a request-only rule is not proposed for a response, nor a body rule for a head
    assert 4 not in det.candidates({Buffer.HTTP_METHOD: b"POST"}, Scope.TX, direction=Direction.TO_CLIENT)
    assert 4 in det.candidates({Buffer.HTTP_METHOD: b"POST"}, Scope.TX, direction=Direction.TO_SERVER)
    body = {Buffer.FILE_DATA: b"..BODY..", Buffer.HTTP_URI: b"/gone", Buffer.HTTP_STAT_CODE: b"404"}
    assert det.candidates(body, Scope.TX, direction=Direction.TO_CLIENT, require=Buffer.FILE_DATA) & {1, 3} == {3}
    assert [m.sid for m in det.inspect(body, direction=Direction.TO_CLIENT, scope=Scope.TX,
                                       require=Buffer.FILE_DATA)] == [4]


def test_what_the_inspector_may_skip_follows_the_rules_that_run():
    """No transaction rule running a way: that way's buffers are not built. Only what `scan`
    would skip anyway is skipped (a rule without a direction runs both ways)."""
    packet_only = Detector([rule('content:"EVIL";')])
    assert (packet_only.has_tx_rules, packet_only.has_body_rules) == (False, False)
    assert packet_only.tx_rules_by_direction == (False, False)
    request = Detector([rule('http.host; content:"evil.example";', header=HTTP)])
    assert request.has_tx_rules and not request.has_body_rules
    assert request.tx_rules_by_direction == (True, False)
    response = Detector([rule('http.stat_code; content:"404";', header=HTTP)])
    assert response.tx_rules_by_direction == (False, True)
    either = Detector([rule('http.cookie; content:"id=";', header=HTTP)])   # a cookie goes both ways
    assert either.tx_rules_by_direction == (True, True)
    assert _detector().has_body_rules and _detector().tx_rules_by_direction == (True, True)
