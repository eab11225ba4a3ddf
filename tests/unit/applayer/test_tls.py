"""TLS handshake parser, fingerprints, certificate summary and EVE mapping.

Handshakes are built inline with small builders; the only captured bytes are
a 123-byte ClientHello and an 83-byte HelloRetryRequest from suricata-verify's
tls13-draft22 case, whose expected JA3 and version come from its test.yaml.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspection.applayer import tls_fingerprint as fp
from inspection.applayer.tls import (
    TlsParser, TlsRecord, parse_client_hello, probe_tls, version_string,
)
from inspection.applayer.tls_cert import summarize_certificate
from inspection.model import Anomaly, AnomalyKind, Direction
from inspection.output.eve_tls import tls_to_eve

C, S = Direction.TO_SERVER, Direction.TO_CLIENT
GREASE_A, GREASE_B = 0x0A0A, 0xDADA

# -- builders ---------------------------------------------------------------


def u16(v: int) -> bytes:
    return struct.pack(">H", v)


def u24(v: int) -> bytes:
    return v.to_bytes(3, "big")


def vec8(b: bytes) -> bytes:
    return bytes([len(b)]) + b


def vec16(b: bytes) -> bytes:
    return u16(len(b)) + b


def u16s(*vals: int) -> bytes:
    return b"".join(u16(v) for v in vals)


def ext(etype: int, data: bytes = b"") -> bytes:
    return u16(etype) + vec16(data)


def sni(name: bytes) -> bytes:
    return ext(0, vec16(b"\x00" + vec16(name)))


def alpn(*protos: bytes) -> bytes:
    return ext(16, vec16(b"".join(vec8(p) for p in protos)))


def groups(*vals: int) -> bytes:
    return ext(10, vec16(u16s(*vals)))


def point_formats(*vals: int) -> bytes:
    return ext(11, vec8(bytes(vals)))


def sig_algs(*vals: int) -> bytes:
    return ext(13, vec16(u16s(*vals)))


def versions(*vals: int) -> bytes:
    return ext(43, vec8(u16s(*vals)))


def selected_version(val: int) -> bytes:
    return ext(43, u16(val))


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + u24(len(body)) + body


def client_hello(ciphers=(0xC02F, 0x009C), exts: bytes = b"", version=0x0303, session_id=b"") -> bytes:
    body = u16(version) + b"\x11" * 32 + vec8(session_id) + vec16(u16s(*ciphers)) + b"\x01\x00"
    return handshake(1, body + vec16(exts))


def server_hello(cipher=0xC02F, exts: bytes = b"", version=0x0303, session_id=b"", random=b"\x22" * 32) -> bytes:
    body = u16(version) + random + vec8(session_id) + u16(cipher) + b"\x00"
    return handshake(2, body + (vec16(exts) if exts else b""))


def certificate(*ders: bytes) -> bytes:
    return handshake(11, u24(sum(3 + len(d) for d in ders)) + b"".join(u24(len(d)) + d for d in ders))


SERVER_HELLO_DONE = handshake(14, b"")
CERT_REQUEST = handshake(13, b"\x01\x01\x00\x04\x04\x01\x05\x01\x00\x00")


def record(ctype: int, payload: bytes, version: int = 0x0303) -> bytes:
    return bytes([ctype]) + u16(version) + vec16(payload)


def records(ctype: int, payload: bytes, cuts: list[int], version: int = 0x0303) -> bytes:
    """`payload` split into several records at the given offsets."""
    points = sorted({c for c in cuts if 0 < c < len(payload)})
    bounds = [0, *points, len(payload)]
    return b"".join(record(ctype, payload[a:b], version) for a, b in zip(bounds, bounds[1:]))


CCS = record(20, b"\x01")
APP_DATA = record(23, b"\x5a" * 40)

_KEY = ec.derive_private_key(0x1F2E3D4C5B6A79881726354453627180, ec.SECP256R1())


def make_cert(cn: str = "SELKS", serial: int = 0x97E647098EEAC9B4) -> bytes:
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "IDF"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "Paris"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Stamus"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(_KEY.public_key()).serial_number(serial)
        .not_valid_before(dt.datetime(2015, 2, 12, 18, 7, 27, tzinfo=dt.timezone.utc))
        .not_valid_after(dt.datetime(2025, 2, 9, 18, 7, 27, tzinfo=dt.timezone.utc))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("selks.example"), x509.IPAddress(ipaddress.ip_address("192.0.2.1")),
        ]), critical=False)
    )
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


CERT = make_cert()
CLIENT_CERT = make_cert(cn="client", serial=0x27)

CH_EXTS = (sni(b"www.example.com") + groups(29, 23) + point_formats(0) + sig_algs(0x0403, 0x0804)
           + alpn(b"h2", b"http/1.1"))


def tls12_flow(ch: bytes | None = None, server_flight: bytes | None = None) -> list[tuple[Direction, bytes]]:
    ch = ch if ch is not None else client_hello(exts=CH_EXTS)
    if server_flight is None:
        server_flight = server_hello(exts=ext(0xFF01, b"\x00") + alpn(b"h2")) + certificate(CERT) + SERVER_HELLO_DONE
    return [
        (C, record(22, ch, 0x0301)),
        (S, record(22, server_flight)),
        (C, record(22, handshake(16, b"\x00" * 33)) + CCS + record(22, b"\x77" * 40)),
        (S, CCS + record(22, b"\x66" * 40)),
        (C, APP_DATA),
        (S, APP_DATA * 3),
    ]


def run(flow, parser: TlsParser | None = None, chunk: int | None = None) -> list:
    parser = parser or TlsParser()
    out: list = []
    for direction, data in flow:
        step = chunk or max(1, len(data))
        for i in range(0, len(data), step):
            out += parser.feed(direction, data[i:i + step], 1.0)
    return out + parser.close(2.0)


def only_record(out: list) -> TlsRecord:
    recs = [o for o in out if isinstance(o, TlsRecord)]
    assert len(recs) == 1, out
    return recs[0]


def events(out: list) -> set[str]:
    return {o.event for o in out if isinstance(o, Anomaly)}


# -- extraction ---------------------------------------------------------------


def test_tls12_full_handshake_fields():
    rec = only_record(run(tls12_flow()))
    assert rec.sni == "www.example.com"
    assert rec.version == "TLS 1.2"
    assert rec.client_alpns == ("h2", "http/1.1")
    assert rec.server_alpns == ("h2",)
    assert rec.ja3 == "771,49199-156,0-10-11-13-16,29-23,0"
    assert rec.ja3_hash == hashlib.md5(rec.ja3.encode()).hexdigest()
    assert rec.ja3s == "771,49199,65281-16"
    assert rec.subject == "C=FR, ST=IDF, L=Paris, O=Stamus, CN=SELKS"
    assert rec.issuerdn == rec.subject
    assert rec.serial == "00:97:E6:47:09:8E:EA:C9:B4"
    assert rec.fingerprint == hashlib.sha1(CERT).digest().hex(":")
    assert (rec.notbefore, rec.notafter) == ("2015-02-12T18:07:27", "2025-02-09T18:07:27")
    assert rec.subjectaltname == ("selks.example", "192.0.2.1")
    assert rec.server_chain == (CERT,)
    assert rec.session_resumed is False
    assert (rec.event_type, rec.tx_id, rec.direction) == ("tls", 0, C)


def test_record_emitted_after_server_flight_and_parser_done_after_encryption():
    parser = TlsParser()
    flow = tls12_flow()
    assert parser.feed(*flow[0], 0.0) == []
    out = parser.feed(*flow[1], 0.0)
    assert len(out) == 1 and isinstance(out[0], TlsRecord)
    assert not parser.done
    parser.feed(*flow[2], 0.0)
    parser.feed(*flow[3], 0.0)
    assert parser.done
    assert parser.close(0.0) == []


def test_exactly_one_record_per_flow_even_with_more_hellos():
    flow = tls12_flow()
    flow.append((C, record(22, client_hello(exts=sni(b"other.example")))))
    out = run(flow)
    assert only_record(out).sni == "www.example.com"
    parser = TlsParser()
    run(flow, parser)
    assert parser.close(3.0) == []


def test_client_hello_only_is_emitted_at_close():
    parser = TlsParser()
    assert parser.feed(C, record(22, client_hello(exts=CH_EXTS), 0x0301), 0.0) == []
    rec = only_record(parser.close(1.0))
    assert rec.version == "UNDETERMINED" and rec.sni == "www.example.com"
    assert rec.subject is None and rec.ja3s is None


def test_tls13_version_from_supported_versions_emitted_after_server_hello():
    ch = client_hello(ciphers=(0x1301, 0x1302), exts=sni(b"a.example") + versions(GREASE_A, 0x0304, 0x0303))
    sh = server_hello(cipher=0x1301, exts=selected_version(0x0304) + ext(51, b"\x00\x1d" + vec16(b"k" * 32)))
    parser = TlsParser()
    parser.feed(C, record(22, ch, 0x0301), 0.0)
    out = parser.feed(S, record(22, sh) + CCS + record(23, b"\x01" * 300), 0.0)
    rec = only_record(out)
    assert rec.version == "TLS 1.3"
    assert rec.ja4.startswith("t13d0202")
    assert not parser.done
    parser.feed(C, CCS + APP_DATA, 0.0)
    assert parser.done


@pytest.mark.parametrize(("selected", "text"), [
    (0x7F1C, "TLS 1.3 draft-28"), (0x7F16, "TLS 1.3 draft-22"), (0x0303, "TLS 1.2"),
    (0xFB17, "TLS 1.3 draft-23-fb"), (0x7F05, "TLS 1.3 draft-<16"), (0x0305, "0x0305"),
])
def test_server_supported_versions_naming(selected, text):
    ch = client_hello(exts=versions(0x7F1C, 0x0304, 0x0303))
    sh = server_hello(exts=selected_version(selected))
    rec = only_record(run([(C, record(22, ch)), (S, record(22, sh + SERVER_HELLO_DONE))]))
    assert rec.version == text


def test_version_strings_follow_suricata():
    assert [version_string(v) for v in (0, 2, 0x300, 0x301, 0x302, 0x303, 0x304)] == [
        "UNDETERMINED", "SSLv2", "SSLv3", "TLSv1", "TLS 1.1", "TLS 1.2", "TLS 1.3"]


def test_version_from_server_record_header_when_only_an_alert_comes_back():
    out = run([(C, record(22, client_hello(), 0x0301)), (S, record(21, b"\x02\x28", 0x0301))])
    assert only_record(out).version == "TLSv1"


# Real bytes: suricata-verify tls/tls13-draft22 (expected JA3 from its test.yaml).
DRAFT22_CH = bytes.fromhex(
    "1603030076010000720303fe2ba030a33f625d968be29207624886bcf549e30655ced6e8cef7fc01ad2f941057"
    "abcab1619737b457a116f7f2e1db65000413011303010000350000000e000c0000096c6f63616c686f737400"
    "2b0003027f16000d000a00080804040304010201000a000400020017002800020000")
DRAFT22_HRR = bytes.fromhex(
    "1603030048020000440303cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c10"
    "57abcab1619737b457a116f7f2e1db65130100000c002b00027f16002800020017140303000101")


def test_real_tls13_draft22_hello_retry():
    rec = only_record(run([(C, DRAFT22_CH), (S, DRAFT22_HRR)]))
    assert rec.sni == "localhost"
    assert rec.version == "TLS 1.3 draft-22"
    assert rec.ja3 == "771,4865-4867,0-43-13-10-40,23,"
    assert rec.ja3_hash == "786468211b4d23f9b725987b0de9d090"


def test_session_resumption_by_session_id():
    sid = b"\x42" * 32
    flow = [
        (C, record(22, client_hello(session_id=sid))),
        (S, record(22, server_hello(session_id=sid)) + CCS + record(22, b"\x99" * 40)),
    ]
    parser = TlsParser()
    parser.feed(*flow[0], 0.0)
    rec = only_record(parser.feed(*flow[1], 0.0))
    assert rec.session_resumed and rec.subject is None
    assert tls_to_eve(rec)["session_resumed"] is True


def test_client_certificate_waits_for_client_flight():
    flight = server_hello() + certificate(CERT) + CERT_REQUEST + SERVER_HELLO_DONE
    parser = TlsParser()
    parser.feed(C, record(22, client_hello()), 0.0)
    assert parser.feed(S, record(22, flight), 0.0) == []
    out = parser.feed(C, record(22, certificate(CLIENT_CERT) + handshake(16, b"\x00" * 33)) + CCS, 0.0)
    rec = only_record(out)
    assert rec.client_cert is not None and rec.client_cert.serial == "27"
    assert tls_to_eve(rec)["client"]["subject"].endswith("CN=client")


def test_several_handshake_messages_in_one_record_and_one_per_record_agree():
    many = run(tls12_flow())
    flight = [server_hello(), certificate(CERT), SERVER_HELLO_DONE]
    separate = tls12_flow(server_flight=b"")
    separate[1] = (S, b"".join(record(22, m) for m in flight))
    together = tls12_flow(server_flight=b"".join(flight))
    assert run(together) == run(separate)
    assert only_record(many).subject == only_record(run(separate)).subject


def test_first_decodable_certificate_in_chain_is_summarised():
    out = run(tls12_flow(server_flight=server_hello() + certificate(b"\x30\x03\x02\x01\x00", CERT)))
    assert only_record(out).serial == "00:97:E6:47:09:8E:EA:C9:B4"
    assert events(out) & {"certificate_invalid_der", "certificate_invalid_serial"}


def test_nul_inside_printable_string_is_kept():
    der = bytearray(CERT)
    pos = der.find(b"Stamus")  # the issuer comes first in tbsCertificate
    der[pos + 3] = 0
    summary, error = summarize_certificate(bytes(der))
    assert error is None and "O=Sta\x00us" in summary.issuerdn and "O=Stamus" in summary.subject


# -- SSLv2 and probing ------------------------------------------------------------

SSLV2_HELLO = bytes.fromhex("801f01" "0002" "0006" "0000" "0010" "0700c0" "030080") + b"\xab" * 16


def test_sslv2_client_hello():
    assert probe_tls(SSLV2_HELLO, C) is True
    rec = only_record(run([(C, SSLV2_HELLO)]))
    assert rec.version == "SSLv2" and rec.ja3 is None


def test_sslv2_compatible_hello_answered_with_tls10():
    hello = bytearray(SSLV2_HELLO)
    hello[3:5] = b"\x03\x01"
    sh = server_hello(version=0x0301, cipher=0x0039)
    rec = only_record(run([(C, bytes(hello)), (S, record(22, sh + certificate(CERT) + SERVER_HELLO_DONE, 0x0301))]))
    assert rec.version == "TLSv1" and rec.ja3s == "769,57,"


def test_sslv2_server_hello_emits_and_finishes():
    parser = TlsParser()
    parser.feed(C, SSLV2_HELLO, 0.0)
    rec = only_record(parser.feed(S, b"\x80\x05\x04\x00\x01\x00\x02", 0.0))
    assert rec.version == "SSLv2" and parser.done


@pytest.mark.parametrize(("data", "direction", "expected"), [
    (b"", C, None), (b"\x16", C, None), (b"\x16\x03\x01\x00", C, None),
    (b"\x16\x03\x01\x00\xf1\x01", C, True), (b"\x16\x03\x03\x00\x51\x02", S, True),
    (b"\x16\x03\x01\x00\xf1\x02", C, False), (b"\x15\x03\x03\x00\x02", S, True),
    (b"\x17\x03\x03\x00\x02", C, False), (b"GET / HTTP/1.1\r\n", C, False),
    (b"SSH-2.0-OpenSSH", C, False), (b"\x16\x05\x01\x00\x10\x01", C, False),
])
def test_probe(data, direction, expected):
    assert probe_tls(data, direction) is expected


def test_not_tls_data_yields_no_record():
    parser = TlsParser()
    out = parser.feed(C, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 0.0)
    out += parser.feed(S, b"HTTP/1.1 200 OK\r\n\r\n", 0.0) + parser.close(1.0)
    assert not any(isinstance(o, TlsRecord) for o in out)
    assert all(isinstance(o, Anomaly) and o.app_proto == "tls" for o in out)
    assert parser.done


# -- anomalies ---------------------------------------------------------------------


@pytest.mark.parametrize(("data", "event"), [
    (b"\x30\x03\x03\x00\x05hello", "invalid_record_type"),
    (b"\x16\x09\x09\x00\x05hello", "invalid_record_version"),
    (b"\x16\x03\x03\x00\x00", "invalid_record_length"),
    (b"\x16\x03\x03\x48\x01", "invalid_record_length"),
    (record(22, handshake(0x63, b"junk")), "invalid_handshake_message"),
    (record(22, client_hello(exts=ext(0, vec16(b"\x07" + vec16(b"x"))))), "invalid_sni_type"),
    (record(22, client_hello(exts=ext(0, vec16(b"\x00" + u16(900) + b"x")))), "invalid_sni_length"),
    (record(22, client_hello(exts=sni(b"a.example") + sni(b"b.example"))), "multiple_sni_extensions"),
    (record(22, client_hello()[:-3] + b"\x00\x09\x00"), "handshake_invalid_length"),
    (record(24, b"\x01\x40\x00" + b"\x00" * 20), "overflow_heartbeat_message"),
    (b"\x80\x00\x01", "invalid_sslv2_header"),
])
def test_anomalies(data, event):
    out = run([(C, data)])
    anomalies = [o for o in out if isinstance(o, Anomaly)]
    assert event in events(out)
    assert all(a.kind is AnomalyKind.APPLAYER and a.app_proto == "tls" and a.direction is C for a in anomalies)


def test_invalid_server_certificate():
    out = run(tls12_flow(server_flight=server_hello() + certificate(b"\x30\x82\x10\x00abc") + SERVER_HELLO_DONE))
    assert "certificate_invalid_length" in events(out)
    assert only_record(out).subject is None


def test_oversized_handshake_message_is_bounded():
    big = client_hello(exts=sni(b"big.example") + ext(21, b"\x00" * 3000))
    out = run([(C, records(22, big, list(range(1000, len(big), 1000))))], TlsParser(max_record_buffer=1024))
    assert "record_overflow" in events(out)


def test_gap_inside_application_data_is_harmless():
    flow = tls12_flow()
    parser = TlsParser()
    for direction, data in flow[:4]:
        parser.feed(direction, data, 0.0)
    assert parser.feed(S, APP_DATA[:20], 0.0) == []
    assert parser.gap(S, 10, 0.0) == []
    assert parser.feed(S, APP_DATA[30:] + APP_DATA, 0.0) == []
    assert parser.done and parser.close(1.0) == []


def test_gap_before_a_record_boundary_resyncs():
    parser = TlsParser()
    parser.feed(C, record(22, client_hello()), 0.0)
    assert parser.gap(S, 500, 0.0) == []
    out = parser.feed(S, record(22, server_hello() + SERVER_HELLO_DONE), 0.0)
    assert only_record(out).version == "TLS 1.2"


def test_gap_followed_by_garbage_stops_that_direction():
    parser = TlsParser()
    parser.feed(C, record(22, client_hello(exts=sni(b"g.example"))), 0.0)
    parser.gap(S, 100, 0.0)
    assert parser.feed(S, b"\x00garbage-in-the-middle", 0.0) == []
    assert only_record(parser.close(1.0)).sni == "g.example"


# -- fingerprints -------------------------------------------------------------------

# FoxIO technical_details/JA4.md example (original order), and the same Chrome
# hello as published by browserleaks with its JA3 (GREASE re-inserted here).
FOX_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013,
               0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
FOX_EXTS = [0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023,
            0x0012, 0x002B, 0xFF01, 0x000B, 0x000A, 0x0015]
FOX_SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def test_ja4_foxio_published_example():
    common = dict(legacy_version=0x0303, supported_versions=[GREASE_A, 0x0304, 0x0303],
                  ciphers=[GREASE_B, *FOX_CIPHERS], extensions=[GREASE_A, *FOX_EXTS, GREASE_B],
                  first_alpn=b"h2")
    assert fp.ja4(signature_algorithms=FOX_SIGALGS, **common) == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert fp.ja4(signature_algorithms=[], **common) == "t13d1516h2_8daaf6152771_6d807ffa2a79"


@pytest.mark.parametrize(("alpn_value", "code"), [
    (None, "00"), (b"", "00"), (b"h2", "h2"), (b"http/1.1", "h1"), (b"x", "xx"),
    (b"\xab", "ab"), (b"\xab\xcd", "ad"), (b"\x30\xab", "3b"), (b"\x30\x31\xab\xcd", "3d"),
    (b"\x30\xab\xcd\x31", "01"),
])
def test_ja4_alpn_rules(alpn_value, code):
    assert fp.ja4_alpn_code(alpn_value) == code


def _chrome_hello() -> bytes:
    exts = {
        0x002D: ext(0x2D, b"\x01\x01"), 0x0033: ext(0x33, u16(2) + u16(GREASE_A)), 0x0010: alpn(b"h2", b"http/1.1"),
        0xFE0D: ext(0xFE0D, b"\x00" * 8), 0x0017: ext(0x17), 0x44CD: ext(0x44CD, b"\x00\x03\x02h2"),
        0x0000: sni(b"tls.browserleaks.com"), 0x000B: point_formats(0),
        0x000A: groups(GREASE_B, 4588, 29, 23, 24), 0x002B: versions(GREASE_A, 0x0304, 0x0303),
        0xFF01: ext(0xFF01, b"\x00"), 0x0023: ext(0x23), 0x0012: ext(0x12), 0x0005: ext(5, b"\x01\x00\x00\x00\x00"),
        0x000D: sig_algs(*FOX_SIGALGS), 0x001B: ext(0x1B, b"\x02\x00\x02"),
    }
    order = [0x2D, 0x33, 0x10, 0xFE0D, 0x17, 0x44CD, 0x00, 0x0B, 0x0A, 0x2B, 0xFF01, 0x23, 0x12, 0x05, 0x0D, 0x1B]
    body = ext(GREASE_B) + b"".join(exts[e] for e in order) + ext(GREASE_A, b"\x00")
    return client_hello(ciphers=[GREASE_A, *FOX_CIPHERS[:9], 0xC013, 0xC014, 0x9C, 0x9D, 0x2F, 0x35], exts=body)


def test_chrome_hello_ja3_and_ja4_with_grease():
    hello, errors = parse_client_hello(_chrome_hello()[4:])
    assert errors == [] and hello.sni == b"tls.browserleaks.com"
    rec = only_record(run([(C, record(22, _chrome_hello(), 0x0301))]))
    assert rec.ja3 == ("771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
                       "45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0")
    assert rec.ja3_hash == "98487aa16281980e7d1120d399efb6a4"
    assert rec.ja4 == "t13d1516h2_8daaf6152771_d8a2da3f94cd"


def test_grease_is_ignored_everywhere():
    plain = client_hello(ciphers=(0x1301, 0xC02F), exts=sni(b"x.example") + groups(29) + versions(0x0304))
    greasy = client_hello(ciphers=(GREASE_A, 0x1301, 0xC02F),
                          exts=ext(GREASE_B) + sni(b"x.example") + groups(GREASE_A, 29) + versions(GREASE_B, 0x0304))
    a, b = (only_record(run([(C, record(22, h))])) for h in (plain, greasy))
    assert (a.ja3, a.ja4) == (b.ja3, b.ja4)


def test_malformed_extension_stops_the_ja3_extension_list_like_suricata():
    bad_sni = ext(0, vec16(b"\x07" + vec16(b"x")))
    hello, errors = parse_client_hello(client_hello(exts=groups(29) + bad_sni + alpn(b"h2"))[4:])
    assert errors == ["invalid_sni_type"] and not hello.complete
    assert fp.client_ja3(hello) == "771,49199-156,10,29,"


def test_ja3s_ignores_grease_and_keeps_order():
    assert fp.ja3s_string(0x0303, 0x1301, [43, GREASE_A, 51]) == "771,4865,43-51"
    assert fp.ja3_string(0x0301, [], [], [], []) == "769,,,,"


def test_ja4_empty_lists_and_limits():
    assert fp.ja4(legacy_version=0x0301, supported_versions=None, ciphers=[], extensions=[],
                  signature_algorithms=[], first_alpn=None) == "t10i000000_000000000000_000000000000"
    many = fp.ja4(legacy_version=0x0303, supported_versions=None, ciphers=range(1, 200),
                  extensions=range(1, 200), signature_algorithms=[], first_alpn=None)
    assert many.startswith("t12i999900_")


# -- EVE ---------------------------------------------------------------------------------


def test_tls_to_eve_field_order_and_values():
    rec = only_record(run(tls12_flow()))
    eve = tls_to_eve(rec)
    assert list(eve) == ["subject", "issuerdn", "subjectaltname", "serial", "fingerprint", "sni", "version",
                         "notbefore", "notafter", "ja3", "ja3s", "ja4", "client_alpns", "server_alpns"]
    assert eve["ja3"] == {"hash": rec.ja3_hash, "string": rec.ja3}
    assert eve["subjectaltname"] == ["selks.example", "192.0.2.1"]
    assert eve["client_alpns"] == ["h2", "http/1.1"]
    with_certs = tls_to_eve(rec, with_certificates=True)
    assert with_certs["chain"] == [with_certs["certificate"]]


def test_tls_to_eve_minimal_record_omits_absent_values():
    assert tls_to_eve(TlsRecord(version="UNDETERMINED")) == {"version": "UNDETERMINED"}


# -- incremental feeding and hostile input ------------------------------------------------------


def test_byte_by_byte_equals_whole():
    flow = tls12_flow()
    assert run(flow, chunk=1) == run(flow)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_cuts=st.lists(st.integers(1, 400), max_size=6), tcp_cut=st.integers(1, 300), data=st.data())
def test_client_hello_split_across_records_and_segments(record_cuts, tcp_cut, data):
    ch = client_hello(exts=CH_EXTS)
    whole = run(tls12_flow())
    flow = tls12_flow(ch=b"")
    flow[0] = (C, records(22, ch, record_cuts, 0x0301))
    flow[1] = (S, records(22, flow[1][1][5:], data.draw(st.lists(st.integers(1, 900), max_size=4))))
    assert run(flow, chunk=tcp_cut) == whole


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_truncated_flows_never_raise(data):
    flow = tls12_flow()
    cut = data.draw(st.integers(0, sum(len(b) for _, b in flow)))
    truncated, left = [], cut
    for direction, chunk in flow:
        truncated.append((direction, chunk[:left]))
        left = max(0, left - len(chunk))
    out = run(truncated, chunk=data.draw(st.integers(1, 64)))
    assert sum(isinstance(o, TlsRecord) for o in out) <= 1


@settings(max_examples=200, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
       chunk=st.integers(1, 97))
def test_garbled_flows_never_raise(flips, chunk):
    flow = [(d, bytearray(b)) for d, b in tls12_flow()]
    total = sum(len(b) for _, b in flow)
    for pos, value in flips:
        pos %= total
        for _, buf in flow:
            if pos < len(buf):
                buf[pos] = value
                break
            pos -= len(buf)
    garbled = [(d, bytes(b)) for d, b in flow]
    parser = TlsParser()
    out = run(garbled, parser, chunk=chunk)
    assert out == run(garbled)
    assert sum(isinstance(o, TlsRecord) for o in out) <= 1
    assert all(isinstance(o, (TlsRecord, Anomaly)) for o in out)
    assert parser.done


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([C, S]), st.binary(max_size=300)), max_size=8))
def test_random_bytes_never_raise(chunks):
    out = run(chunks)
    assert sum(isinstance(o, TlsRecord) for o in out) <= 1


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_hello_and_certificate_decoders_never_raise(blob):
    parse_client_hello(blob)
    summarize_certificate(blob)
    probe_tls(blob, C)
