from __future__ import annotations

import orjson
import pytest

from cloudlink.eve import detection_from_eve
from cloudlink.errors import ProtocolError

ALERT = orjson.loads(b'{"timestamp":"2023-11-14T22:13:20.000000+0000","flow_id":954135574740993,"pcap_cnt":1,'
    b'"event_type":"alert","src_ip":"10.1.2.54","src_port":58284,"dest_ip":"192.0.2.53","dest_port":80,'
    b'"proto":"TCP","app_proto":"http","direction":"to_server","alert":{"action":"blocked","gid":1,'
    b'"signature_id":9000003,"rev":1,"signature":"DEMO bad download","category":"A Network Trojan was '
    b'detected","severity":1,"stars":3},"flow":{"start":"2023-11-14T22:13:19.000000+0000"},'
    b'"http":{"hostname":"evil.example","url":"/x.exe?a=\\u0001","http_method":"GET",'
    b'"http_user_agent":"curl"},"tx_id":0,"packet":"AgAAAAAC","packet_info":{"linktype":1},'
    b'"ether":{"src_mac":"02:00:00:00:00:02","dest_mac":"02:00:00:00:00:01"}}')


def test_alert_maps_to_allowlisted_fields_only():
    d = detection_from_eve(ALERT)
    assert d.to_json() == {
        "key": d.key, "ts": "2023-11-14T22:13:20.000000+00:00", "flow_start": "2023-11-14T22:13:19.000000+00:00",
        "src_ip": "10.1.2.54", "dest_ip": "192.0.2.53", "src_mac": "02:00:00:00:00:02",
        "dest_mac": "02:00:00:00:00:01", "url": "http://evil.example/x.exe?a=%01", "rule_id": 9000003,
        "rule_msg": "DEMO bad download", "category": "A Network Trojan was detected", "stars": 3,
        "action": "blocked"}
    assert "AgAAAAAC" not in orjson.dumps(d.to_json()).decode()


def test_key_is_stable_and_distinguishes_alerts():
    assert detection_from_eve(ALERT).key == detection_from_eve(dict(ALERT)).key
    other = dict(ALERT, pcap_cnt=2)
    assert detection_from_eve(other).key != detection_from_eve(ALERT).key


def test_non_alerts_ignored_and_broken_alerts_typed():
    assert detection_from_eve({"event_type": "flow"}) is None
    with pytest.raises(ProtocolError):
        detection_from_eve({"event_type": "alert"})
    with pytest.raises(ProtocolError):
        detection_from_eve(dict(ALERT, timestamp="garbage"))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_val = st.none() | st.booleans() | st.integers(-5, 2**33) | st.text(max_size=30) | st.floats(allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    k: _val | st.dictionaries(st.sampled_from(["hostname", "url", "http_port", "sni", "filename", "sha256",
                                               "signature_id", "signature", "stars", "action", "category",
                                               "start", "src_mac"]), _val, max_size=6)
    for k in ("timestamp", "src_ip", "dest_ip", "alert", "http", "tls", "fileinfo", "ether", "flow")}))
def test_hostile_alert_records_give_a_detection_or_a_typed_error(rec):
    rec = {**rec, "event_type": "alert"}
    try:
        d = detection_from_eve(rec)
    except ProtocolError:
        return
    assert d is not None and d.key
