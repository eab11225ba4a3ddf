from __future__ import annotations

from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloudlink.protocol import EnrolCode
from cloudlink.state import make_csr, new_device_key
from refcloud.ca import CertificateAuthority
from refcloud.errors import CloudStateError, DeviceRefused, EnrolmentRefused
from refcloud.state import CloudState
from tests.unit.cloudlink.helpers import det

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def ca():
    return CertificateAuthority.create(NOW)


def _eku(cert):
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_server_and_device_certs_have_one_usage_each(ca):
    _, srv = ca.issue_server(["cloud.example", "127.0.0.1"], NOW)
    assert _eku(srv) == [ExtendedKeyUsageOID.SERVER_AUTH]
    sans = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["cloud.example"]
    dev = ca.sign_device_csr(make_csr(new_device_key()), "dev-0000000000000001", NOW)
    assert _eku(dev) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert dev.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev-0000000000000001"
    dev.verify_directly_issued_by(ca.cert)


def test_csr_checks(ca):
    with pytest.raises(EnrolmentRefused) as ei:
        ca.sign_device_csr("-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n",
                           "dev-1", NOW)
    assert ei.value.code == "bad_csr"
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
           .sign(weak, hashes.SHA256()).public_bytes(Encoding.PEM).decode())
    with pytest.raises(EnrolmentRefused) as ei:
        ca.sign_device_csr(csr, "dev-1", NOW)
    assert ei.value.code == "weak_key"
    good = x509.load_pem_x509_csr(make_csr(ec.generate_private_key(ec.SECP256R1())).encode())
    der = good.public_bytes(Encoding.DER).replace(b"utm-device", b"utm-devicX")   # subject changed, not re-signed
    tampered = x509.load_der_x509_csr(der).public_bytes(Encoding.PEM).decode()
    with pytest.raises(EnrolmentRefused):
        ca.sign_device_csr(tampered, "dev-1", NOW)


def test_code_pin_matches_ca(ca):
    code = EnrolCode.new(b"\x01" * 10, ca.cert_der)
    assert code.pin == EnrolCode.pin_for(ca.cert_der) and len(str(code)) == 43


def test_store_codes_devices_and_ingest(tmp_path):
    st = CloudState.open(tmp_path / "c", 1000.0, create=True)
    try:
        code = st.new_enrol_code(1000.0, 60)
        st.store.enrol(code.secret, 1001.0, "dev-000000000001", "0.1.0", lambda: "abc")
        with pytest.raises(EnrolmentRefused):
            st.store.enrol(code.secret, 1002.0, "dev-000000000002", "0.1.0", lambda: "abd")
        late = st.new_enrol_code(1000.0, 60)
        with pytest.raises(EnrolmentRefused) as ei:
            st.store.enrol(late.secret, 2000.0, "dev-000000000003", "0.1.0", lambda: "abe")
        assert ei.value.code == "code_expired"
        st.store.check_device("dev-000000000001", "abc")
        with pytest.raises(DeviceRefused):
            st.store.check_device("dev-000000000001", "other-serial")
        with pytest.raises(DeviceRefused):
            st.store.check_device("dev-000000000002", "abd")      # the refused enrolment left no device
        acc, dup = st.store.ingest("dev-000000000001", (det(1), det(2)), 1003.0)
        acc2, dup2 = st.store.ingest("dev-000000000001", (det(2), det(3)), 1004.0)
        assert (acc, dup, acc2, dup2) == (["k00000001", "k00000002"], [], ["k00000003"], ["k00000002"])
        acc3, _ = st.store.ingest("dev-000000000009", (det(1),), 1005.0)   # keys are per device
        assert acc3 == ["k00000001"] and st.store.detection_count() == 4
        assert st.store.counters() == {"enrol.ok": 1, "enrol.refused": 2, "ingest.accepted": 4,
                                       "ingest.duplicates": 1}
    finally:
        st.close()
    with pytest.raises(CloudStateError):
        CloudState.open(tmp_path / "missing", 1000.0)


def test_retention_deletes_only_what_is_older_than_the_period(tmp_path):
    st = CloudState.open(tmp_path / "c", 0.0, create=True)
    try:
        day = 86400.0
        st.store.ingest("dev-000000000001", (det(1),), 0.0)
        st.store.ingest("dev-000000000001", (det(2),), 50 * day)
        assert st.store.expire(89 * day, 90 * day) == 0
        assert st.store.expire(91 * day, 90 * day) == 1
        assert [r.detection.key for r in st.store.detections()] == ["k00000002"]
        assert st.store.counters()["retention.deleted"] == 1
    finally:
        st.close()


def test_served_cloud_applies_retention_at_start(tmp_path):
    import time
    from refcloud.app import CloudConfig
    from tests.sim.cloud import CloudThread, new_code
    new_code(tmp_path / "c")
    st = CloudState.open(tmp_path / "c", time.time())
    st.store.ingest("dev-000000000001", (det(1),), time.time() - 100 * 86400)
    st.store.ingest("dev-000000000001", (det(2),), time.time())
    st.close()
    with CloudThread(tmp_path / "c", CloudConfig()):
        deadline = time.time() + 5
        while time.time() < deadline:
            st = CloudState.open(tmp_path / "c", time.time())
            n = st.store.detection_count()
            st.close()
            if n == 1:
                break
            time.sleep(0.05)
    assert n == 1


def test_cli_events_names_and_skips_a_row_that_does_not_decode(tmp_path, capsys):
    import json
    import sqlite3

    from firmware.cli.main import main
    st = CloudState.open(tmp_path / "c", 1000.0, create=True)
    try:
        st.store.ingest("dev-000000000001", tuple(det(i) for i in range(1, 5)), 1000.0)
        bad_ids = [r.id for r in st.store.detections() if r.detection.key in ("k00000002", "k00000003")]
    finally:
        st.close()
    assert main(["cloud", "events", "--state", str(tmp_path / "c"), "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    db = sqlite3.connect(tmp_path / "c" / "cloud.sqlite")
    db.execute("UPDATE detections SET body = '{\"key\": 1}' WHERE id = ?", (bad_ids[0],))
    db.execute("UPDATE detections SET body = 'not json' WHERE id = ?", (bad_ids[1],))
    db.commit()
    db.close()
    for argv in (["--json"], []):
        assert main(["cloud", "events", "--state", str(tmp_path / "c"), *argv]) == 1
        out = capsys.readouterr()
        err = out.err.splitlines()
        assert len(err) == 2 and "Traceback" not in out.err
        assert all(f"stored detection {i} does not decode, skipped: " in line for i, line in zip(bad_ids, err))
        lines = out.out.splitlines()
        assert len(lines) == 2 and "TEST rule 1" in lines[0] and "TEST rule 4" in lines[1]
        if argv:
            assert [json.loads(x)["key"] for x in lines] == ["k00000001", "k00000004"]
    st = CloudState.open(tmp_path / "c", 1000.0)
    try:
        with pytest.raises(CloudStateError, match=f"stored detection {bad_ids[0]} does not decode"):
            list(st.store.detections())
    finally:
        st.close()


def test_cli_devices_lists_a_device_whose_heartbeat_does_not_decode(tmp_path, capsys):
    import json
    import sqlite3

    from cloudlink.protocol import Heartbeat, LinkState
    from firmware.cli.main import main
    st = CloudState.open(tmp_path / "c", 1000.0, create=True)
    try:
        for n in (1, 2):
            code = st.new_enrol_code(1000.0, 3600)
            st.store.enrol(code.secret, 1000.0, f"dev-00000000000{n}", "0.1.0", lambda n=n: f"serial{n}")
            st.store.heartbeat(f"dev-00000000000{n}", Heartbeat("2026-11-22T10:00:00.000000+00:00", "0.2.0", 7,
                                                                LinkState.UP), 1001.0)
    finally:
        st.close()
    db = sqlite3.connect(tmp_path / "c" / "cloud.sqlite")
    db.execute("UPDATE devices SET heartbeat = 'not json' WHERE id = 'dev-000000000001'")
    db.commit()
    db.close()
    assert main(["cloud", "devices", "--state", str(tmp_path / "c"), "--json"]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    assert out.err.splitlines() == [line for line in out.err.splitlines() if "dev-000000000001" in line]
    assert "stored heartbeat does not decode" in out.err
    rows = {r["id"]: r for r in map(json.loads, out.out.splitlines())}
    assert rows["dev-000000000001"]["heartbeat"] is None
    assert rows["dev-000000000002"]["heartbeat"]["firmware_version"] == "0.2.0"
