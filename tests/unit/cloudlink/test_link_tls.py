"""The agent against the reference cloud over real TLS on loopback."""
from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from cloudlink import protocol as p
from cloudlink.daemon import Agent, AgentConfig
from cloudlink.errors import CloudRefusedError, EnrolError, TransportError
from cloudlink.queue import DetectionQueue
from cloudlink.state import AgentState
from cloudlink.transport import HttpsCloud, enrol
from refcloud.ca import CertificateAuthority, cert_pem
from refcloud.state import CloudState
from tests.sim.cloud import CloudThread, new_code
from tests.unit.cloudlink.helpers import det


def _enrol(cloud: CloudThread, folder, code=None) -> AgentState:
    return asyncio.run(enrol(cloud.url, code or new_code(cloud.state_dir), folder, "0.1.0", timeout_s=10))


def _stored(state_dir):
    st = CloudState.open(state_dir, time.time())
    try:
        return [r.detection.key for r in st.store.detections()], st.store.counters(), st.store.devices()
    finally:
        st.close()


@pytest.fixture
def cloud(tmp_path):
    new_code(tmp_path / "cloud")        # creates the state and CA
    c = CloudThread(tmp_path / "cloud").start()
    yield c
    c.stop()


def test_enrol_heartbeat_upload_and_idempotent_ingest(cloud, tmp_path):
    st = _enrol(cloud, tmp_path / "agent")
    assert st.endpoints == (cloud.url,) and (tmp_path / "agent" / "device.key").stat().st_mode & 0o077 == 0

    async def go():
        async with HttpsCloud(st, timeout_s=10) as c:
            with DetectionQueue(st.queue_path) as q:
                q.enqueue([det(i, stars=i % 4) for i in range(30)])
                agent = Agent(st, c, q, AgentConfig(batch_size=7))
                assert await agent.drain()
                batch = p.DetectionBatch(tuple(replace(det(i), device_id=st.device_id) for i in range(3)))
                again = await c.upload(batch)           # a resend after a lost ack
                assert again.accepted == () and set(again.duplicates) == {d.key for d in batch.events}
                return agent.status
    status = asyncio.run(go())
    keys, counters, devices = _stored(cloud.state_dir)
    assert sorted(keys) == sorted(det(i).key for i in range(30)) and len(keys) == 30
    assert counters["ingest.duplicates"] == 3 and status.uploaded == 30
    assert devices[0].id == st.device_id and devices[0].heartbeats == 1
    assert devices[0].heartbeat["counters"]["queue.depth"] == 30     # sent before the uploads


def test_enrolment_code_is_single_use_and_checked(cloud, tmp_path):
    code = new_code(cloud.state_dir)
    _enrol(cloud, tmp_path / "a", code)
    with pytest.raises(EnrolError, match="code_used"):
        _enrol(cloud, tmp_path / "b", code)
    forged = p.EnrolCode("A" * 16, p.EnrolCode.parse(code).pin)
    with pytest.raises(EnrolError, match="bad_code"):
        _enrol(cloud, tmp_path / "c", str(forged))
    expired = new_code(cloud.state_dir, valid_s=60, now=time.time() - 3600)
    with pytest.raises(EnrolError, match="code_expired"):
        _enrol(cloud, tmp_path / "d", expired)
    with pytest.raises(EnrolError, match="base32"):
        _enrol(cloud, tmp_path / "e", "not-a-code")
    assert not (tmp_path / "b" / "agent.json").exists()
    assert _stored(cloud.state_dir)[1]["enrol.refused"] == 3


def test_code_for_another_ca_refused_before_the_secret_is_sent(cloud, tmp_path):
    other = new_code(tmp_path / "other-cloud")
    with pytest.raises(EnrolError, match="does not match the enrolment code's pin"):
        _enrol(cloud, tmp_path / "a", other)
    assert "enrol.refused" not in _stored(cloud.state_dir)[1]     # the cloud never saw a code


def test_cloud_with_another_ca_refused(cloud, tmp_path):
    st = _enrol(cloud, tmp_path / "agent")
    new_code(tmp_path / "evil")
    with CloudThread(tmp_path / "evil") as evil:
        with pytest.raises(CloudRefusedError, match="certificate refused"):
            asyncio.run(_heartbeat(replace(st, endpoints=(evil.url,))))


async def _heartbeat(st: AgentState):
    async with HttpsCloud(st, timeout_s=10) as c:
        with DetectionQueue(st.queue_path) as q:
            return await c.heartbeat(Agent(st, c, q, AgentConfig()).heartbeat_message())


def test_client_cert_from_another_ca_refused(cloud, tmp_path):
    new_code(tmp_path / "other")
    with CloudThread(tmp_path / "other") as other:
        st = _enrol(other, tmp_path / "agent")
    (tmp_path / "agent" / "ca.pem").write_bytes((cloud.state_dir / "ca.pem").read_bytes())  # trust the real cloud
    with pytest.raises(TransportError):    # with TLS 1.3 the client sees the refusal as a disconnect
        asyncio.run(_heartbeat(replace(st, endpoints=(cloud.url,))))
    assert _stored(cloud.state_dir)[2] == []


def test_expired_client_cert_refused(cloud, tmp_path):
    st = _enrol(cloud, tmp_path / "agent")
    asyncio.run(_heartbeat(st))                    # works with the real certificate
    ca = CertificateAuthority.load(cloud.state_dir)
    key = serialization.load_pem_private_key((tmp_path / "agent" / "device.key").read_bytes(), None)
    from cloudlink.state import make_csr
    now = datetime.now(timezone.utc)
    old = ca.sign_device_csr(make_csr(key), st.device_id, now - timedelta(days=400),
                             not_after=now - timedelta(days=1))
    (tmp_path / "agent" / "device.pem").write_bytes(cert_pem(old))
    with pytest.raises(TransportError):
        asyncio.run(_heartbeat(st))
    assert _stored(cloud.state_dir)[2][0].heartbeats == 1


def test_without_client_cert_only_enrolment_is_open(cloud, tmp_path):
    ctx = ssl.create_default_context(cafile=str(cloud.state_dir / "ca.pem"))

    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.post(cloud.url + "/v1/detections", data=b"x", ssl=ctx) as r:
                return r.status, p.decode(await r.read(), p.ErrorReply)
    status, err = asyncio.run(go())
    assert status == 401 and err.code == "client_cert_required"


def test_payload_field_refused_by_the_cloud_too(cloud, tmp_path):
    """Even a modified agent cannot store a payload: the cloud decodes with the same allowlist."""
    st = _enrol(cloud, tmp_path / "agent")
    ev = replace(det(1), device_id=st.device_id).to_json()
    ev["payload"] = "R0VUIC8="
    body = __import__("zlib").compress(b'{"type":"detections","v":1,"events":[' +
                                       __import__("orjson").dumps(ev) + b"]}")

    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.post(cloud.url + "/v1/detections", data=body, ssl=st.client_ssl_context()) as r:
                return r.status, p.decode(await r.read(), p.ErrorReply)
    status, err = asyncio.run(go())
    assert status == 400 and err.code == "bad_message" and "payload" in err.message
    assert _stored(cloud.state_dir)[0] == []


def test_cloud_down_while_detections_keep_coming(tmp_path):
    """The cloud stops, detections keep coming, it comes back: each one is stored exactly once."""
    new_code(tmp_path / "cloud")
    cloud = CloudThread(tmp_path / "cloud").start()
    try:
        st = _enrol(cloud, tmp_path / "agent")
        produced: list[str] = []

        async def go():
            stop = asyncio.Event()
            cfg = AgentConfig(heartbeat_interval_s=0.3, batch_size=10, poll_interval_s=0.05,
                              backoff_base_s=0.05, backoff_max_s=0.4)
            async with HttpsCloud(st, timeout_s=5) as c:
                with DetectionQueue(st.queue_path) as q, DetectionQueue(st.queue_path) as producer:
                    agent = Agent(st, c, q, cfg)
                    task = asyncio.create_task(agent.run(stop))
                    for i in range(150):
                        if i == 50:
                            await asyncio.to_thread(cloud.stop)
                        if i == 120:
                            await asyncio.to_thread(cloud.start)
                        t0 = time.monotonic()
                        producer.enqueue([det(i, stars=i % 4)])     # never waits for the cloud
                        assert time.monotonic() - t0 < 0.5
                        produced.append(det(i).key)
                        await asyncio.sleep(0.02)
                    for _ in range(300):
                        if q.stats().depth == 0:
                            break
                        await asyncio.sleep(0.05)
                    stop.set()
                    await task
                    return agent.status, q.stats()
        status, qs = asyncio.run(go())
    finally:
        cloud.stop()
    keys, counters, devices = _stored(tmp_path / "cloud")
    assert qs.depth == 0 and sorted(keys) == sorted(produced) and len(keys) == 150
    assert status.upload_failures > 0 and status.heartbeat_failures > 0    # the outage was seen
    assert devices[0].heartbeats >= 2


def test_server_certificate_cannot_act_as_a_device(cloud, tmp_path):
    """Signed by the right CA but made for serverAuth only: the handshake refuses it as a client cert."""
    ctx = ssl.create_default_context(cafile=str(cloud.state_dir / "ca.pem"))
    ctx.load_cert_chain(cloud.state_dir / "server.pem", cloud.state_dir / "server.key")

    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.post(cloud.url + "/v1/heartbeat", data=b"{}", ssl=ctx) as r:
                return r.status
    with pytest.raises(aiohttp.ClientError):
        asyncio.run(go())


def test_endpoints_fall_back_from_8443_to_443():
    from cloudlink.errors import EnrolError
    from cloudlink.state import endpoints_for
    assert endpoints_for("https://cloud.example") == ("https://cloud.example:8443", "https://cloud.example:443")
    assert endpoints_for("https://[::1]:9000/") == ("https://[::1]:9000",)
    for bad in ("http://cloud.example", "https://cloud.example/api", "cloud.example", "https://:80"):
        with pytest.raises(EnrolError):
            endpoints_for(bad)


def test_agent_uses_the_next_endpoint_when_the_first_is_closed(cloud, tmp_path):
    import socket
    st = _enrol(cloud, tmp_path / "agent")
    with socket.socket() as s:          # a port that is certainly closed: bound, never listening
        s.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{s.getsockname()[1]}"
        two = replace(st, endpoints=(dead, cloud.url))

        async def go():
            async with HttpsCloud(two, timeout_s=10) as c:
                with DetectionQueue(st.queue_path) as q:
                    await c.heartbeat(Agent(two, c, q, AgentConfig()).heartbeat_message())
                    return c.endpoint
        assert asyncio.run(go()) == cloud.url
