"""The whole path over real TLS on loopback: publish, the check_definitions command, the heartbeat's version."""
from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization

from cloudlink.commands import AgentExecutor, CommandLog
from cloudlink.daemon import Agent, AgentConfig
from cloudlink.protocol import CommandKind
from cloudlink.queue import DetectionQueue
from cloudlink.transport import HttpsCloud, enrol
from firmware.agent_wiring import definitions_port
from firmware.cli.main import main
from refcloud.state import CloudState
from tests.sim.cloud import CloudThread, new_code
from tests.unit.updater.helpers import VENDOR, package


@pytest.fixture
def world(tmp_path):
    new_code(tmp_path / "cloud")
    pub = tmp_path / "vendor.pub"
    pub.write_bytes(VENDOR.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    with CloudThread(tmp_path / "cloud") as cloud:
        st = asyncio.run(enrol(cloud.url, new_code(tmp_path / "cloud"), tmp_path / "agent", "0.1.0"))
        yield tmp_path, cloud, st, pub


def publish(tmp_path, version, capsys):
    (tmp_path / f"{version}.pkg").write_bytes(package(version))
    assert main(["cloud", "publish", "--state", str(tmp_path / "cloud"), str(tmp_path / f"{version}.pkg")]) == 0
    return json.loads(capsys.readouterr().out)


def test_enrolment_pins_the_repository_root(world):
    tmp_path, _, st, _ = world
    st_cloud = CloudState.open(tmp_path / "cloud", time.time())
    try:
        assert st.tuf_root_path.read_bytes() == st_cloud.tuf.root_bytes()
    finally:
        st_cloud.close()


def test_tuf_files_need_the_device_certificate(world):
    _, cloud, st, _ = world
    ctx = ssl.create_default_context(cafile=str(st.folder / "ca.pem"))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(cloud.url + "/tuf/metadata/timestamp.json", context=ctx, timeout=10)
    assert e.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as e:       # with the certificate: served, and no path tricks
        urllib.request.urlopen(urllib.request.Request(cloud.url + "/tuf/metadata/..%2F..%2Fca.key"),
                               context=st.client_ssl_context(), timeout=10)
    assert e.value.code == 404


def test_check_definitions_command_installs_and_the_heartbeat_reports_it(world, capsys):
    tmp_path, cloud, st, pub = world
    info = publish(tmp_path, "2026.11.22.1", capsys)
    assert info["version"] == "2026.11.22.1" and info["targets_version"] == 2
    cs = CloudState.open(tmp_path / "cloud", time.time())
    try:
        env = cs.sign_command(st.device_id, CommandKind.CHECK_DEFINITIONS, (), time.time(), 600)
    finally:
        cs.close()
    port, why = definitions_port(st, [pub], None)
    assert port is not None, why

    async def go():
        async with HttpsCloud(st) as c:
            with DetectionQueue(st.queue_path) as q:
                lg = CommandLog(st.commands_path)
                try:
                    agent = Agent(st, c, q, AgentConfig(command_wait_s=2), commands=lg, definitions=port)
                    agent.executor = AgentExecutor(agent.diagnostics, definitions=port)
                    assert await agent.commands_once()
                    assert await agent.heartbeat_once()
                finally:
                    lg.close()
    asyncio.run(go())
    cs = CloudState.open(tmp_path / "cloud", time.time())
    try:
        result = {e.command_id: r for e, _, r in cs.store.commands()}[env.command_id]
        [dev] = cs.store.devices()
    finally:
        cs.close()
    assert result["status"] == "done" and "none -> 2026.11.22.1" in result["detail"]
    assert dev.heartbeat["definitions_version"] == "2026.11.22.1"
    assert (st.folder / "definitions" / "current.pkg").read_bytes() == (tmp_path / "2026.11.22.1.pkg").read_bytes()


def test_cli_check_definitions_and_status(world, capsys):
    tmp_path, _, st, pub = world
    publish(tmp_path, "1.0", capsys)
    args = ["cloudlink", "check-definitions", "--state", str(st.folder), "--trusted-key", str(pub)]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["current"] == "1.0" and out["result"].startswith("updated")
    assert main(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["result"].startswith("up_to_date") and again["fetched_bytes"] < 2000
    assert main(["cloudlink", "status", "--state", str(st.folder)]) == 0
    assert "definitions: 1.0" in capsys.readouterr().out
    other = tmp_path / "other.pub"
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    publish(tmp_path, "1.1", capsys)
    assert main(["cloudlink", "check-definitions", "--state", str(st.folder), "--trusted-key", str(other)]) == 1
    assert "vendor_signature" in json.loads(capsys.readouterr().out)["result"]


def test_publish_refuses_bad_input(tmp_path, capsys):
    new_code(tmp_path / "cloud")
    (tmp_path / "junk").write_bytes(b"not a package")
    assert main(["cloud", "publish", "--state", str(tmp_path / "cloud"), str(tmp_path / "junk")]) == 2
    assert "bad magic" in capsys.readouterr().err
    (tmp_path / "a.pkg").write_bytes(package("2.0"))
    (tmp_path / "b.pkg").write_bytes(package("1.0"))
    assert main(["cloud", "publish", "--state", str(tmp_path / "cloud"), str(tmp_path / "a.pkg")]) == 0
    assert main(["cloud", "publish", "--state", str(tmp_path / "cloud"), str(tmp_path / "b.pkg")]) == 2
    assert "not newer" in capsys.readouterr().err
    assert main(["cloud", "publish", "--state", str(tmp_path / "nope"), str(tmp_path / "a.pkg")]) == 2


def test_the_serve_loop_resigns_the_timestamp_before_it_expires(tmp_path):
    new_code(tmp_path / "cloud")
    ts = tmp_path / "cloud" / "tuf" / "metadata" / "timestamp.json"
    before = json.loads(ts.read_bytes())["signed"]
    later = time.time() + 0.6 * 86400          # past half the timestamp's one-day life
    with CloudThread(tmp_path / "cloud", clock=lambda: later):
        deadline = time.monotonic() + 10
        while json.loads(ts.read_bytes())["signed"]["version"] == before["version"]:
            assert time.monotonic() < deadline, "not re-signed"
            time.sleep(0.05)
    after = json.loads(ts.read_bytes())["signed"]
    assert after["version"] == before["version"] + 1 and after["expires"] > before["expires"]
    assert after["meta"] == before["meta"]       # same snapshot: only the timestamp was due


def test_the_agent_checks_in_a_child_process(world, capsys):
    """What `utm cloudlink run` uses: python-tuf and the package never enter the agent's own memory."""
    from firmware.agent_wiring import child_definitions_port
    tmp_path, _, st, pub = world
    port, why = child_definitions_port(st, [pub], None)
    assert port is not None, why
    assert asyncio.run(port.check_now()) == (True, "none_published: no definitions published")
    publish(tmp_path, "3.0", capsys)
    ok, detail = asyncio.run(port.check_now())
    assert ok and detail == "updated: none -> 3.0" and port.current_version() == "3.0"
    bad = tmp_path / "bad.pub"
    bad.write_bytes(b"not a key")
    assert child_definitions_port(st, [bad], None)[0] is None
    (st.folder / "tuf-root.json").unlink()
    assert "enrol again" in child_definitions_port(st, [pub], None)[1]
