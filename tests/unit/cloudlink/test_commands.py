"""Signed remote commands: every refusal the issue names, then the whole path over TLS."""
from __future__ import annotations

import asyncio
import base64
import os
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloudlink.commands import AgentExecutor, CommandLog
from cloudlink.commands import handle_command as _handle
from cloudlink.protocol import CommandEnvelope, CommandKind, CommandStatus

DEV = "dev-0123456789abcdef"
NOW = 1_800_000_000.0
KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds")


def cmd(kind=CommandKind.DIAGNOSTICS, args=(), *, issued=NOW - 10, ttl=600.0, device=DEV, nonce=None,
        cid=None, key=KEY, sign=True) -> CommandEnvelope:
    env = CommandEnvelope(command_id=cid or "cmd-" + os.urandom(6).hex(), device_id=device, kind=kind, args=args,
                          issued_at=_iso(issued), expires_at=_iso(issued + ttl), nonce=nonce or os.urandom(16).hex())
    if not sign:
        return env
    return replace(env, signature=base64.b64encode(key.sign(env.signed_bytes())).decode())


def handle_command(*a, **k):
    return asyncio.run(_handle(*a, **k))


class Counting(AgentExecutor):
    def __init__(self):
        super().__init__(lambda: {"queue": {"depth": 0}})
        self.runs = 0

    async def execute(self, env):
        self.runs += 1
        return await super().execute(env)


@pytest.fixture
def log(tmp_path):
    lg = CommandLog(tmp_path / "commands.sqlite")
    yield lg
    lg.close()


def test_diagnostics_runs_once_and_kinds_without_a_backend_are_reported_unsupported(log):
    ex = Counting()
    c = cmd()
    r = handle_command(c, PUB, DEV, NOW, log, ex)
    assert r.status is CommandStatus.DONE and '"depth":0' in r.detail
    assert handle_command(c, PUB, DEV, NOW + 1, log, ex) == r and ex.runs == 1     # redelivered: same result
    r2 = handle_command(cmd(CommandKind.REBOOT), PUB, DEV, NOW, log, ex)
    assert r2.status is CommandStatus.UNSUPPORTED and "no reboot hook" in r2.detail
    r3 = handle_command(cmd(CommandKind.CHECK_DEFINITIONS), PUB, DEV, NOW, log, ex)
    assert r3.status is CommandStatus.UNSUPPORTED and "no definitions updater" in r3.detail


@pytest.mark.parametrize("make,reason", [
    (lambda: cmd(sign=False), "unsigned"),
    (lambda: replace(cmd(CommandKind.ISOLATE, ("aa:bb:cc:dd:ee:ff",)), args=("11:22:33:44:55:66",)), "bad_signature"),
    (lambda: cmd(key=Ed25519PrivateKey.generate()), "bad_signature"),
    (lambda: cmd(issued=NOW - 700, ttl=600), "expired"),
    (lambda: cmd(issued=NOW + 3600), "not_yet_valid"),
    (lambda: cmd(ttl=2 * 86400), "too_long"),
    (lambda: cmd(device="dev-ffffffffffffffff"), "wrong_device"),
])
def test_refused_commands_are_reported_and_not_run(log, make, reason):
    ex = Counting()
    r = handle_command(make(), PUB, DEV, NOW, log, ex)
    assert r.status is CommandStatus.REFUSED and r.detail.startswith(reason) and ex.runs == 0
    assert [u.command_id for u in log.unreported()] == [r.command_id]


def test_replayed_nonce_refused_even_under_a_new_id(log):
    ex = Counting()
    first = cmd(nonce="ab" * 16)
    assert handle_command(first, PUB, DEV, NOW, log, ex).status is CommandStatus.DONE
    again = cmd(nonce="ab" * 16)                  # validly signed, but the nonce was used
    r = handle_command(again, PUB, DEV, NOW + 5, log, ex)
    assert r.status is CommandStatus.REFUSED and r.detail.startswith("replayed") and ex.runs == 1


def test_results_survive_a_restart_until_reported(tmp_path):
    lg = CommandLog(tmp_path / "c.sqlite")
    r = handle_command(cmd(), PUB, DEV, NOW, lg, Counting())
    lg.close()
    lg = CommandLog(tmp_path / "c.sqlite")
    try:
        assert [u.command_id for u in lg.unreported()] == [r.command_id]
        lg.mark_reported(r.command_id)
        assert lg.unreported() == []
    finally:
        lg.close()


def test_command_over_tls_end_to_end(tmp_path):
    """utm cloud command -> long poll -> verify -> run -> result at the cloud, and a tampered one refused."""
    from cloudlink.daemon import Agent, AgentConfig
    from cloudlink.queue import DetectionQueue
    from cloudlink.transport import HttpsCloud, enrol
    from refcloud.state import CloudState
    from tests.sim.cloud import CloudThread, new_code
    new_code(tmp_path / "cloud")
    with CloudThread(tmp_path / "cloud") as cloud:
        st = asyncio.run(enrol(cloud.url, new_code(tmp_path / "cloud"), tmp_path / "agent", "0.1.0"))
        cs = CloudState.open(tmp_path / "cloud", time.time())
        try:
            good = cs.sign_command(st.device_id, CommandKind.DIAGNOSTICS, (), time.time(), 600)
            forged = replace(cs.sign_command(st.device_id, CommandKind.REBOOT, (), time.time(), 600),
                             kind=CommandKind.DIAGNOSTICS)          # a tampered copy under the same id
            cs.store._db.execute("UPDATE commands SET body = ? WHERE id = ?",
                                 (__import__("orjson").dumps(forged.to_json()).decode(), forged.command_id))
        finally:
            cs.close()

        async def go():
            async with HttpsCloud(st) as c:
                with DetectionQueue(st.queue_path) as q:
                    lg = CommandLog(st.commands_path)
                    try:
                        agent = Agent(st, c, q, AgentConfig(command_wait_s=2), commands=lg)
                        agent.executor = AgentExecutor(agent.diagnostics)
                        t0 = time.monotonic()
                        assert await agent.commands_once()
                        took = time.monotonic() - t0
                        assert await agent.commands_once()          # nothing pending: the poll waits ~2 s
                        return took, time.monotonic() - t0 - took
                    finally:
                        lg.close()
        first, empty = asyncio.run(go())
        assert first < 1.5 and 1.5 < empty < 5                # pending commands come at once; otherwise it waits
        cs = CloudState.open(tmp_path / "cloud", time.time())
        try:
            results = {env.command_id: res for env, _, res in cs.store.commands()}
        finally:
            cs.close()
    assert results[good.command_id]["status"] == "done" and st.device_id in results[good.command_id]["detail"]
    assert results[forged.command_id]["status"] == "refused"
    assert results[forged.command_id]["detail"].startswith("bad_signature")


def test_cli_refuses_bad_arguments_and_unknown_kinds(tmp_path, capsys):
    from firmware.cli.main import main
    from tests.sim.cloud import new_code
    new_code(tmp_path / "c")
    assert main(["cloud", "command", "--state", str(tmp_path / "c"), "dev-0000000000000001", "isolate",
                 "not-a-mac"]) == 2
    assert "args" in capsys.readouterr().err
    assert main(["cloud", "command", "--state", str(tmp_path / "c"), "dev-0000000000000001", "set-mode",
                 "trojan-activity", "explode"]) == 2
    assert "block or detect" in capsys.readouterr().err
    assert main(["cloud", "command", "--state", str(tmp_path / "c"), "dev-0000000000000001", "diagnostics"]) == 2
    assert "no device" in capsys.readouterr().err
    assert main(["cloud", "command", "--state", str(tmp_path / "c"), "dev-1", "explode"]) == 2
