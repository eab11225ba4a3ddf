"""Remote commands reach the kernel: desired.json on top of the base config, applied in namespaces made here.

Root only (skipped otherwise). The box, wan and lan namespaces of
test_netconfig_netns (random suffixes, removed afterwards); the agent talks
to the reference cloud over real TLS on localhost and runs `utm net apply
--desired` as its apply hook.
"""
from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys

import orjson
import pytest

from tests.integration.test_netconfig_netns import CONFIG, MAC_LAN_HOST, ROOT, lab, reach, reach_retry, rules_of, utm, \
    wan_server  # noqa: F401 - fixtures

pytestmark = [pytest.mark.netns]


def desired(path, *, isolated=(), modes=None, exclusions=(), revision=1):
    path.write_bytes(orjson.dumps({"format": 1, "revision": revision, "last_command": "c", "isolated": list(isolated),
                                   "modes": modes or {}, "exclusions": [{"kind": k, "value": v}
                                                                        for k, v in exclusions]}))


def test_net_apply_with_the_desired_state_isolates_and_releases(lab, wan_server, tmp_path):
    cfg, want, state = tmp_path / "net.toml", tmp_path / "desired.json", tmp_path / "s"
    cfg.write_text(CONFIG)
    common = ["--netns", lab["box"], "--state-dir", str(state), "--config", str(cfg), "--desired", str(want)]
    desired(want)
    assert utm("apply", *common).returncode == 0
    assert reach_retry(lab["lan"], "192.0.2.1") == "open"
    desired(want, isolated=[MAC_LAN_HOST], modes={"malware": "detect", "trojan-activity": "detect"},
            exclusions=[("ip", "198.51.100.0/24")], revision=2)
    r = utm("apply", *common)
    assert r.returncode == 0, r.stderr
    assert "NOT APPLIED" not in r.stdout                                # classtype modes, IP exclusions: live engine
    assert reach(lab["lan"], "192.0.2.1") == "timeout"                  # isolated: the kernel drops it
    assert reach_retry(lab["lan"], "192.0.2.2") == "refused"           # the box itself still answers
    committed = (state / "committed.toml").read_text()
    assert "desired state revision 2" in committed and 'malware = "detect"' in committed
    assert 'trojan-activity = "detect"' in committed and 'addresses = ["198.51.100.0/24"]' in committed
    assert f'devices = ["{MAC_LAN_HOST}"]' in committed
    desired(want, revision=3)                                            # released
    assert utm("apply", *common).returncode == 0
    assert reach_retry(lab["lan"], "192.0.2.1") == "open"


def test_the_overlay_never_releases_what_the_base_isolates_and_a_conflict_changes_nothing(lab, wan_server, tmp_path):
    cfg, want, state = tmp_path / "net.toml", tmp_path / "desired.json", tmp_path / "s"
    cfg.write_text(CONFIG + f'[isolation]\ndevices = ["{MAC_LAN_HOST}"]\n')
    common = ["--netns", lab["box"], "--state-dir", str(state), "--config", str(cfg), "--desired", str(want)]
    desired(want)
    assert utm("apply", *common).returncode == 0
    assert reach(lab["lan"], "192.0.2.1") == "timeout"
    before = (rules_of(lab["box"]), (state / "committed.toml").read_bytes())
    desired(want, exclusions=[("mac", MAC_LAN_HOST)], revision=2)      # excluding an isolated device: refused
    r = utm("apply", *common)
    assert r.returncode == 2 and "exclusions.devices" in r.stderr and r.stderr.count("\n") == 1
    assert (rules_of(lab["box"]), (state / "committed.toml").read_bytes()) == before
    assert reach(lab["lan"], "192.0.2.1") == "timeout"


def test_apply_with_reload_refuses_before_touching_anything_when_no_utm_run(lab, tmp_path):
    cfg, want, state = tmp_path / "net.toml", tmp_path / "desired.json", tmp_path / "s"
    cfg.write_text(CONFIG)
    desired(want, isolated=[MAC_LAN_HOST])
    before = rules_of(lab["box"])
    r = utm("apply", "--netns", lab["box"], "--state-dir", str(state), "--config", str(cfg), "--desired", str(want),
            "--reload-logdir", str(tmp_path / "nolog"))
    assert r.returncode == 1 and "nothing applied" in r.stderr
    assert rules_of(lab["box"]) == before and not (state / "committed.toml").exists()


def test_agent_isolate_command_is_applied_to_the_kernel_and_a_failed_apply_is_reported(lab, wan_server, tmp_path):
    from cloudlink.transport import enrol
    from tests.sim.cloud import CloudThread, new_code

    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "firmware.cli.main", *args], capture_output=True, text=True,
                              timeout=120, env=env)

    cfg = tmp_path / "net.toml"
    cfg.write_text(CONFIG)
    new_code(tmp_path / "cloud")
    with CloudThread(tmp_path / "cloud") as cloud:
        st = asyncio.run(enrol(cloud.url, new_code(tmp_path / "cloud"), tmp_path / "agent", "0.1.0"))
        hook = shlex.join([sys.executable, "-m", "firmware.cli.main", "net", "apply", "--netns", lab["box"],
                           "--state-dir", str(tmp_path / "s"), "--config", str(cfg),
                           "--desired", str(st.folder / "desired.json")])

        def command_and_drain(*cmdline):
            r = cli("cloud", "command", "--state", str(tmp_path / "cloud"), st.device_id, *cmdline)
            assert r.returncode == 0, r.stderr
            r = cli("cloudlink", "run", "--state", str(st.folder), "--drain", "--reboot-hook", "", "--apply-hook", hook)
            assert r.returncode == 0, r.stderr
            rows = [orjson.loads(x) for x in cli("cloud", "commands", "--state", str(tmp_path / "cloud"),
                                                 "--json").stdout.splitlines()]
            return [c["result"] for c in rows if c["args"] == list(cmdline[1:])][-1]

        res = command_and_drain("isolate", MAC_LAN_HOST)
        assert res["status"] == "done" and "applied to the box" in res["detail"], res
        assert reach(lab["lan"], "192.0.2.1") == "timeout"
        rules = rules_of(lab["box"])
        res = command_and_drain("exclude", "mac", MAC_LAN_HOST)        # contradicts the isolation: the box refuses
        assert res["status"] == "failed" and "did not apply" in res["detail"], res
        assert orjson.loads((st.folder / "desired.json").read_bytes())["revision"] == 1
        assert rules_of(lab["box"]) == rules
        res = command_and_drain("release", MAC_LAN_HOST)
        assert res["status"] == "done", res
        assert reach_retry(lab["lan"], "192.0.2.1") == "open"
