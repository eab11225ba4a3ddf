"""Remote commands that act: reboot (result after the next boot), desired-state changes, check_definitions."""
from __future__ import annotations

import asyncio
import sys

import orjson
import pytest

from cloudlink.commands import AgentExecutor, CommandLog, reboot_hook, resolve_reboots
from cloudlink.commands import handle_command as _handle
from cloudlink.desired import DesiredStateFile
from cloudlink.protocol import CommandKind, CommandStatus
from tests.unit.cloudlink.test_commands import DEV, NOW, PUB, cmd


def handle(*a, **k):
    return asyncio.run(_handle(*a, **k))


@pytest.fixture
def log(tmp_path):
    lg = CommandLog(tmp_path / "commands.sqlite")
    yield lg
    lg.close()


class FakeReboot:
    def __init__(self, fail: bool = False) -> None:
        self.calls, self.fail = 0, fail

    def __call__(self) -> None:
        self.calls += 1
        if self.fail:
            from cloudlink.commands import RebootError
            raise RebootError("reboot hook systemctl exited 1: denied")


def test_reboot_is_pending_until_the_next_boot_then_reported_done(tmp_path):
    lg = CommandLog(tmp_path / "c.sqlite")
    hook = FakeReboot()
    ex = AgentExecutor(dict, reboot=hook)
    c = cmd(CommandKind.REBOOT)
    assert handle(c, PUB, DEV, NOW, lg, ex, boot=lambda: "boot-1") is None      # nothing to report yet
    assert handle(c, PUB, DEV, NOW + 1, lg, ex, boot=lambda: "boot-1") is None  # redelivered: not run twice
    assert hook.calls == 1 and lg.unreported() == []
    lg.close()
    lg = CommandLog(tmp_path / "c.sqlite")                                        # the box came back
    try:
        [r] = resolve_reboots(lg, "boot-2", NOW + 90)
        assert r.status is CommandStatus.DONE and "back up 90 s" in r.detail
        assert [u.command_id for u in lg.unreported()] == [c.command_id]
        assert handle(c, PUB, DEV, NOW + 91, lg, ex, boot=lambda: "boot-2") == r   # its result, not a rerun
        assert resolve_reboots(lg, "boot-2", NOW + 92) == []
    finally:
        lg.close()


def test_reboot_that_did_not_happen_is_reported_failed(log):
    handle(cmd(CommandKind.REBOOT), PUB, DEV, NOW, log, AgentExecutor(dict, reboot=FakeReboot()),
           boot=lambda: "boot-1")
    [r] = resolve_reboots(log, "boot-1", NOW + 5)
    assert r.status is CommandStatus.FAILED and "did not reboot" in r.detail


def test_reboot_hook_failure_is_reported_at_once_and_the_nonce_is_spent(log):
    c = cmd(CommandKind.REBOOT)
    r = handle(c, PUB, DEV, NOW, log, AgentExecutor(dict, reboot=FakeReboot(fail=True)), boot=lambda: "b")
    assert r.status is CommandStatus.FAILED and "denied" in r.detail and log.pending_reboots() == []
    again = cmd(CommandKind.REBOOT, nonce=c.nonce)
    assert handle(again, PUB, DEV, NOW + 1, log, AgentExecutor(dict, reboot=FakeReboot())).status \
        is CommandStatus.REFUSED


def test_reboot_hook_runs_an_argument_list(tmp_path):
    mark = tmp_path / "rebooted"
    reboot_hook([sys.executable, "-c", f"open({str(mark)!r}, 'w').write('yes')"])()
    assert mark.read_text() == "yes"


def test_desired_state_changes_are_written_before_done(tmp_path, log):
    f = DesiredStateFile(tmp_path / "desired.json")
    ex = AgentExecutor(dict, desired=f)
    steps = [(CommandKind.ISOLATE, ("AA:BB:CC:DD:EE:01",), "isolated"),
             (CommandKind.ISOLATE, ("aa:bb:cc:dd:ee:01",), "already isolated"),
             (CommandKind.SET_MODE, ("trojan-activity", "detect"), "default -> detect"),
             (CommandKind.ADD_EXCLUSION, ("domain", "Example.COM."), "added"),
             (CommandKind.ADD_EXCLUSION, ("ip", "10.0.0.7"), "added"),
             (CommandKind.REMOVE_EXCLUSION, ("ip", "10.0.0.7"), "removed"),
             (CommandKind.ISOLATE, ("aa:bb:cc:dd:ee:02",), "isolated"),
             (CommandKind.RELEASE, ("aa:bb:cc:dd:ee:01",), "released")]
    for i, (kind, args, said) in enumerate(steps, 1):
        r = handle(cmd(kind, args), PUB, DEV, NOW, log, ex)
        assert r.status is CommandStatus.DONE and said in r.detail, r.detail
        assert orjson.loads(f.path.read_bytes())["revision"] == i
    state = orjson.loads(f.path.read_bytes())
    assert state["isolated"] == ["aa:bb:cc:dd:ee:02"]
    assert state["modes"] == {"trojan-activity": "detect"}
    assert state["exclusions"] == [{"kind": "domain", "value": "example.com"}]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("kind,args", [(CommandKind.ISOLATE, ("not-a-mac",)),
                                       (CommandKind.SET_MODE, ("x", "explode")),
                                       (CommandKind.SET_MODE, ("rules", "detect")),   # the policy's own name
                                       (CommandKind.SET_MODE, ("file", "block")),
                                       (CommandKind.ADD_EXCLUSION, ("port", "80")),
                                       (CommandKind.ADD_EXCLUSION, ("rule", "abc"))])
def test_bad_arguments_are_refused_and_nothing_is_written(tmp_path, log, kind, args):
    f = DesiredStateFile(tmp_path / "desired.json")
    r = handle(cmd(kind, args), PUB, DEV, NOW, log, AgentExecutor(dict, desired=f))
    assert r.status is CommandStatus.REFUSED and r.detail.startswith("bad_argument")
    assert not f.path.exists()


def test_check_definitions_reports_the_updater_outcome(log):
    class Port:
        def current_version(self):
            return "1.0"

        async def check_now(self):
            return False, "refused: vendor_signature: signature does not verify"
    r = handle(cmd(CommandKind.CHECK_DEFINITIONS), PUB, DEV, NOW, log, AgentExecutor(dict, definitions=Port()))
    assert r.status is CommandStatus.FAILED and "vendor_signature" in r.detail


def test_reboot_and_isolate_through_the_cli_processes(tmp_path):
    """`utm cloud command` -> `utm cloudlink run --drain` with a recording reboot hook, as processes."""
    import subprocess
    import time as _time

    from cloudlink.transport import enrol
    from tests.sim.cloud import CloudThread, new_code

    def utm(*args):
        return subprocess.run([sys.executable, "-m", "firmware.cli.main", *args], capture_output=True, text=True,
                              timeout=60)
    mark = tmp_path / "reboot-called"
    hook = f"{sys.executable} -c \"open('{mark}', 'a').write('x')\""
    new_code(tmp_path / "cloud")
    with CloudThread(tmp_path / "cloud") as cloud:
        st = asyncio.run(enrol(cloud.url, new_code(tmp_path / "cloud"), tmp_path / "agent", "0.1.0"))
        for cmdline in (["reboot"], ["isolate", "AA:BB:CC:00:11:22"], ["set-mode", "*", "detect"]):
            r = utm("cloud", "command", "--state", str(tmp_path / "cloud"), st.device_id, *cmdline)
            assert r.returncode == 0, r.stderr
        r = utm("cloudlink", "run", "--state", str(st.folder), "--drain", "--reboot-hook", hook)
        assert r.returncode == 0, r.stderr
        assert mark.read_text() == "x"
        results = {c["kind"]: c["result"] for c in map(orjson.loads, utm(
            "cloud", "commands", "--state", str(tmp_path / "cloud"), "--json").stdout.splitlines())}
        assert results["reboot"] is None                      # reported after the box is back
        assert results["isolate"]["status"] == "done" and results["set_mode"]["status"] == "done"
        desired = orjson.loads((st.folder / "desired.json").read_bytes())
        assert desired["isolated"] == ["aa:bb:cc:00:11:22"] and desired["modes"] == {"*": "detect"}
        _time.sleep(0.1)
        r = utm("cloudlink", "run", "--state", str(st.folder), "--drain", "--reboot-hook", hook)
        assert r.returncode == 0, r.stderr
        assert mark.read_text() == "x"                        # not run twice
        results = {c["kind"]: c["result"] for c in map(orjson.loads, utm(
            "cloud", "commands", "--state", str(tmp_path / "cloud"), "--json").stdout.splitlines())}
        # this machine did not reboot, so the same boot id comes back: reported as not done, not faked
        assert results["reboot"]["status"] == "failed" and "did not reboot" in results["reboot"]["detail"]


def test_the_apply_hook_runs_after_the_write_and_its_outcome_is_the_result(tmp_path, log):
    from cloudlink.desired import apply_hook
    seen = tmp_path / "seen.json"
    ok = apply_hook([sys.executable, "-c", "import os, shutil; shutil.copy(os.environ['UTM_DESIRED'], "
                     f"{str(seen)!r}); print('applied 3 change(s), committed')"])
    f = DesiredStateFile(tmp_path / "desired.json", ok)
    r = handle(cmd(CommandKind.ISOLATE, ("aa:bb:cc:dd:ee:01",)), PUB, DEV, NOW, log, AgentExecutor(dict, desired=f))
    assert r.status is CommandStatus.DONE and "applied to the box: applied 3 change(s)" in r.detail, r.detail
    assert orjson.loads(seen.read_bytes())["isolated"] == ["aa:bb:cc:dd:ee:01"]    # the hook saw the new file


def test_a_failing_apply_hook_reports_failed_and_puts_the_previous_file_back(tmp_path, log):
    from cloudlink.desired import apply_hook
    f = DesiredStateFile(tmp_path / "desired.json")
    handle(cmd(CommandKind.ISOLATE, ("aa:bb:cc:dd:ee:01",)), PUB, DEV, NOW, log, AgentExecutor(dict, desired=f))
    before = f.path.read_bytes()
    f.apply_hook = apply_hook([sys.executable, "-c", "import sys; sys.exit('utm net apply: apply failed: boom; "
                                                     "rolled back to the previous state')"])
    r = handle(cmd(CommandKind.ISOLATE, ("aa:bb:cc:dd:ee:02",)), PUB, DEV, NOW, log, AgentExecutor(dict, desired=f))
    assert r.status is CommandStatus.FAILED and "did not apply" in r.detail and "rolled back" in r.detail
    assert f.path.read_bytes() == before
    fresh = DesiredStateFile(tmp_path / "fresh.json", f.apply_hook)
    r = handle(cmd(CommandKind.SET_MODE, ("malware", "detect")), PUB, DEV, NOW, log, AgentExecutor(dict, desired=fresh))
    assert r.status is CommandStatus.FAILED and not fresh.path.exists()


def test_without_an_apply_hook_the_result_says_it_was_not_applied(tmp_path, log):
    f = DesiredStateFile(tmp_path / "desired.json")
    r = handle(cmd(CommandKind.RELEASE, ("aa:bb:cc:dd:ee:01",)), PUB, DEV, NOW, log, AgentExecutor(dict, desired=f))
    assert r.status is CommandStatus.DONE and "not applied to the box: no apply hook configured" in r.detail
