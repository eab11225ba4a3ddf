from __future__ import annotations

import zlib

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudlink import protocol as p
from cloudlink.errors import DecodeError, FieldError, FieldNotAllowedError, LimitError, ProtocolError
from tests.unit.cloudlink.helpers import det


def test_detection_round_trip():
    d = det(1, stars=3, src_mac="aa:bb:cc:00:11:22", file_name="a.exe", file_sha256="ab" * 32)
    back = p.decode_batch(p.encode_batch(p.DetectionBatch((d,)))).events[0]
    assert back == p.Detection.from_json(d.to_json())
    assert back.stars == 3 and back.file_sha256 == "ab" * 32


@pytest.mark.parametrize("extra", ["payload", "packet", "file_data", "mail_body", "http", "body"])
def test_event_with_field_outside_allowlist_is_refused(extra):
    ev = det(1).to_json()
    ev[extra] = "R0VUIC8gSFRUUC8xLjENCg=="
    with pytest.raises(FieldNotAllowedError) as ei:
        p.Detection.from_json(ev)
    assert ei.value.field == extra
    raw = p.encode(p.DetectionBatch((det(2),))).replace(b'"events":[', b'"events":[' + orjson.dumps(ev) + b",")
    with pytest.raises(FieldNotAllowedError):   # one bad event refuses the whole batch
        p.decode(raw, p.DetectionBatch)


def test_detection_has_no_field_for_content():
    assert set(p.DETECTION_FIELDS) == set(p.Detection.__dataclass_fields__)
    for name in p.DETECTION_FIELDS:
        assert not any(w in name for w in ("payload", "body", "content", "data", "packet"))


@pytest.mark.parametrize("field,value", [
    ("stars", 4), ("stars", True), ("rule_id", -1), ("src_ip", "10.0.0.300"), ("src_mac", "aa:bb"),
    ("file_sha256", "xyz"), ("ts", "yesterday"), ("ts", "2026-11-22T10:00:00"), ("action", "sanitised"),
    ("key", "short"), ("url", "http://a/\x00b"), ("url", "x" * 2049), ("rule_msg", 5)])
def test_bad_field_values_are_typed_errors(field, value):
    ev = det(1).to_json()
    ev[field] = value
    with pytest.raises(FieldError) as ei:
        p.Detection.from_json(ev)
    assert ei.value.field == field


def test_timestamps_normalised_to_utc():
    ev = det(1).to_json()
    ev["ts"] = "2023-11-14T23:13:20.5+0100"
    assert p.Detection.from_json(ev).ts == "2023-11-14T22:13:20.500000+00:00"


def test_batch_limits_and_duplicates():
    with pytest.raises(LimitError):
        p.DetectionBatch(())
    with pytest.raises(FieldError):
        p.DetectionBatch((det(1), det(1)))
    with pytest.raises(LimitError):
        p.DetectionBatch(tuple(det(i) for i in range(p.MAX_BATCH_EVENTS + 1)))


def test_zip_bomb_refused():
    bomb = zlib.compress(b'{"type":"detections","v":1,"events":[' + b" " * (p.MAX_BATCH_JSON + 10) + b"]}")
    assert len(bomb) < p.MAX_BATCH_COMPRESSED
    with pytest.raises(LimitError):
        p.decode_batch(bomb)
    with pytest.raises(DecodeError):
        p.decode_batch(b"not zlib")
    with pytest.raises(DecodeError):
        p.decode_batch(p.encode_batch(p.DetectionBatch((det(1),)))[:-5])


def test_envelope_type_and_version_checked():
    hb = p.Heartbeat(sent_at="2026-11-22T10:00:00.000000+00:00", firmware_version="0.1.0", uptime_s=5,
                     link_state=p.LinkState.UP, counters=(("queue.depth", 3),), inspected_share=0.5)
    raw = p.encode(hb)
    assert p.decode(raw, p.Heartbeat) == hb
    with pytest.raises(DecodeError):
        p.decode(raw, p.EnrolRequest)
    with pytest.raises(DecodeError):
        p.decode(raw.replace(b'"v":1', b'"v":2'), p.Heartbeat)
    with pytest.raises(FieldError):
        p.decode(raw.replace(b'"uptime_s"', b'"extra":1,"uptime_s"'), p.Heartbeat)
    with pytest.raises(FieldError):
        p.Heartbeat(sent_at=hb.sent_at, firmware_version="x", uptime_s=1, link_state=p.LinkState.UP,
                    counters=(("Bad Name", 1),))


def test_command_envelope_validation():
    c = p.CommandEnvelope(command_id="cmd00001", device_id="dev00001", kind=p.CommandKind.ISOLATE,
                          args=("aa:bb:cc:dd:ee:ff",), issued_at="2026-11-22T10:00:00.000000+00:00",
                          expires_at="2026-11-22T10:05:00.000000+00:00", nonce="0" * 32)
    assert p.decode(p.encode(c), p.CommandEnvelope) == c
    assert b"signature" not in c.signed_bytes()
    with pytest.raises(FieldError):
        p.CommandEnvelope(**{**{f: getattr(c, f) for f in c.__dataclass_fields__}, "args": ()})
    with pytest.raises(FieldError):
        p.CommandEnvelope(**{**{f: getattr(c, f) for f in c.__dataclass_fields__},
                             "expires_at": c.issued_at})


_KINDS = [p.DetectionBatch, p.BatchAck, p.Heartbeat, p.HeartbeatAck, p.EnrolRequest, p.EnrolResponse,
          p.CommandEnvelope, p.ErrorReply, p.CommandBatch, p.CommandResult]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.sampled_from(_KINDS))
def test_garbage_bytes_give_typed_errors(data, kind):
    try:
        p.decode(data, kind)
    except ProtocolError:
        pass


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
                     max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(p.DETECTION_FIELDS) + ["payload", "x"]), _json, max_size=10))
def test_hostile_detection_objects_give_typed_errors(obj):
    try:
        p.Detection.from_json(obj)
    except ProtocolError:
        pass


def test_valid_batch_fed_truncated_and_bytewise():
    raw = p.encode(p.DetectionBatch(tuple(det(i) for i in range(3))))
    assert len(p.decode(raw, p.DetectionBatch).events) == 3
    for cut in range(0, len(raw), 7):
        with pytest.raises(ProtocolError):
            p.decode(raw[:cut], p.DetectionBatch)


def test_every_message_validates_at_construction():
    with pytest.raises(FieldError):
        p.Heartbeat(sent_at="2026-11-22T10:00:00", firmware_version="1", uptime_s=1, link_state=p.LinkState.UP)
    with pytest.raises(FieldError):
        p.Heartbeat(sent_at="2026-11-22T10:00:00.000000+00:00", firmware_version="", uptime_s=1,
                    link_state=p.LinkState.UP)
    with pytest.raises(FieldError):
        p.HeartbeatAck("2026-11-22T10:00:00.000000+00:00", 0)
    with pytest.raises(FieldError):
        p.BatchAck(("bad key!",), ())
    with pytest.raises(FieldError):
        p.EnrolRequest("ABCDEFGHIJKLMNOP", "not a csr", "0.1.0")
    with pytest.raises(FieldError):
        p.EnrolResponse("dev-00000001", "-----BEGIN CERTIFICATE REQUEST-----", "A" * 44)
    with pytest.raises(FieldError):
        p.EnrolResponse("dev-00000001", "-----BEGIN CERTIFICATE-----", "c2hvcnQ=")
    with pytest.raises(FieldError):
        p.ErrorReply("bad_message", "line\nbreak")
