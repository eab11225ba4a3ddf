"""A running `utm run` takes what changed without a restart: a new definitions package behind the agent's
symlink, a refused one, a worker restarted after that, and the modes of its --net-config.

Root only (skipped otherwise). A three-namespace bridge with a random suffix
(tests/sim/bridgebed.py), packages signed here with a key made here, `utm
run` and `utm reload --wait` as processes; transfers are small and bounded.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.integration.test_live_bridge import EVIL_RULE, PEER, PORT, QUIET_RULE, fetch, last_stats, wait
from tests.sim.bridgebed import BridgeBed, children, missing_reason, run
from tests.unit.live.test_reload_sources import EVIL, QUIET, Store, sign

pytestmark = [pytest.mark.netns]
_why = missing_reason()
if _why:
    pytestmark.append(pytest.mark.skip(reason=_why))

ROOT = Path(__file__).resolve().parents[2]
QUEUE = 21
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


@pytest.fixture(scope="module")
def bed():
    b = BridgeBed(queue=QUEUE)
    b.up()
    try:
        b.python(b.server, PEER, "serve", str(PORT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait(lambda: fetch(b, 10)["ok"], 5)
        yield b
    finally:
        b.close()


class Run:
    """`utm run` in the box namespace with its own TMPDIR (to see that unpack folders go)."""

    def __init__(self, b: BridgeBed, logdir: Path, *args: str) -> None:
        self.b, self.logdir = b, logdir
        self.tmp = logdir / "tmp"
        self.tmp.mkdir(parents=True)
        self.err = open(logdir / "stderr.txt", "wb")
        self.proc = b.spawn(b.box, [sys.executable, "-m", "firmware.cli.main", "run", "--queue", str(QUEUE),
                                    "-l", str(logdir), "--stats-every", "1", *args],
                            env=dict(ENV, TMPDIR=str(self.tmp)), stderr=self.err)
        assert wait(self.bound, 30), self.stderr()

    def bound(self) -> bool:
        r = run("cat", "/proc/net/netfilter/nfnetlink_queue", ns=self.b.box, check=False)
        return str(QUEUE) in {ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()}

    def stderr(self) -> str:
        self.err.flush()
        return (self.logdir / "stderr.txt").read_text(errors="replace")

    def reload(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "firmware.cli.main", "reload", "-l", str(self.logdir),
                               "--wait", "60"], capture_output=True, text=True, env=ENV, timeout=90)

    def live_stats(self) -> list[dict]:
        out = []
        for ln in (self.logdir / f"eve.q{QUEUE}.json").read_text().splitlines():
            try:
                e = json.loads(ln)
            except ValueError:
                continue         # a line being written
            if e.get("event_type") == "stats" and "live" in e.get("stats", {}):
                out.append(e["stats"]["live"])
        return out

    def stop(self) -> list[dict]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        self.err.close()
        return [json.loads(ln) for f in sorted(self.logdir.glob("eve.q*.json")) for ln in f.read_text().splitlines()]


def test_new_package_behind_the_symlink_is_live_after_reload_a_bad_one_is_refused(bed, tmp_path):
    store = Store(tmp_path)
    store.install("1.0", sign(store.key, "1.0", QUIET))
    utm = Run(bed, tmp_path / "log", "--definitions", str(store.current), "--trusted-key", str(store.pub))
    try:
        assert fetch(bed, 1000, "EVIL")["ok"]                           # 1.0 has no EVIL rule
        store.install("1.1", sign(store.key, "1.1", QUIET, EVIL))       # what the agent does, then its hook:
        r = utm.reload()
        assert r.returncode == 0 and "definitions 1.1" in r.stdout, r.stdout + r.stderr
        assert not fetch(bed, 1000, "EVIL")["ok"]                       # blocked by the new package
        assert fetch(bed, 1000)["ok"]

        store.install("1.2", sign(Ed25519PrivateKey.generate(), "1.2", QUIET))   # not signed by the vendor
        r = utm.reload()
        assert r.returncode == 1 and "refused" in r.stderr and "signature" in r.stderr, r.stderr
        assert not fetch(bed, 1000, "EVIL")["ok"] and fetch(bed, 1000)["ok"]     # 1.1 kept, traffic flows
        assert wait(lambda: any(s.get("reload_errors") == 1 and s.get("definitions_version") == "1.1"
                                for s in utm.live_stats()), 10)          # counted where an operator sees it

        [worker] = children(utm.proc.pid)
        os.kill(worker, signal.SIGKILL)                                 # restarted while current.pkg is bad
        assert wait(lambda: children(utm.proc.pid) not in ([], [worker]) and utm.bound(), 20), utm.stderr()
        assert wait(lambda: "the package this queue last ran with" in utm.stderr(), 20), utm.stderr()
        assert not fetch(bed, 1000, "EVIL")["ok"]                       # still 1.1
    finally:
        events = utm.stop()
    live = last_stats(events)
    assert live["definitions_version"] == "1.1" and live["reload_errors"] == 0   # the new worker's counters
    assert list(utm.tmp.iterdir()) == []                                # every unpack folder removed


def test_reload_rereads_the_modes_of_the_net_config(bed, tmp_path):
    rules = tmp_path / "live.rules"
    rules.write_text(EVIL_RULE + QUIET_RULE)
    net = tmp_path / "net.toml"
    base = f'[ports]\nwan = "eth0"\nlan = "eth1"\n[inspection]\nqueue = {QUEUE}\n'
    net.write_text(base)
    utm = Run(bed, tmp_path / "log", "-S", str(rules), "--net-config", str(net))
    try:
        assert not fetch(bed, 1000, "EVIL")["ok"]
        net.write_text(base + '[modes]\nintrusion = "detect"\n')       # what `utm net apply --desired` commits
        r = utm.reload()
        assert r.returncode == 0, r.stderr
        assert fetch(bed, 1000, "EVIL")["ok"]                           # alerted, not blocked
        net.write_text(base.replace(f"queue = {QUEUE}", f"queue = {QUEUE + 1}"))   # this run's --queue pins it: refused
        r = utm.reload()
        assert r.returncode == 1 and f"given --queues {QUEUE}:{QUEUE}" in r.stderr, r.stderr
        assert "--queues: the network config queues to" in utm.stderr()
        assert fetch(bed, 1000, "EVIL")["ok"]                           # the modes it had are kept
    finally:
        events = utm.stop()
    alerts = [e for e in events if e["event_type"] == "alert"]
    assert [a["alert"]["action"] for a in alerts][-2:] == ["allowed", "allowed"]


def test_agent_installs_over_tuf_the_hook_reloads_and_a_package_the_box_refuses_is_reverted(bed, tmp_path):
    """The documented combination: `utm cloudlink check-definitions --reload-hook 'utm reload -l LOGDIR --wait'`
    with `utm run --definitions STATE/definitions/current.pkg`, the reference cloud over real TLS."""
    import asyncio

    from cloudlink.transport import enrol
    from signatures.categories.compile import compile_lists
    from signatures.categories.db import encode
    from signatures.definitions import ComponentKind, build_package
    from tests.sim.cloud import CloudThread, new_code
    from tests.sim.livebox import make_judges
    from tests.unit.live.test_reload_sources import bundle

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "firmware.cli.main", *args], capture_output=True, text=True,
                              env=ENV, timeout=120)

    store = Store(tmp_path)                       # only for the vendor key
    make_judges(tmp_path)                         # categories.db for the box's own --categories
    (tmp_path / "lists" / "adult").mkdir(parents=True)
    (tmp_path / "lists" / "adult" / "domains").write_text("adult.example.test\n")
    cats = encode(compile_lists(tmp_path / "lists"))

    def publish(version: str, *rules: str, categories: bytes | None = None) -> None:
        parts = [(ComponentKind.RULES, "rules.bundle", bundle(*rules))]
        if categories is not None:
            parts.append((ComponentKind.CATEGORIES, "cats.db", categories))
        (tmp_path / f"{version}.pkg").write_bytes(build_package(parts, version=version, created="2026-11-22T00:00:00Z",
                                                                key=store.key))
        r = cli("cloud", "publish", "--state", str(tmp_path / "cloud"), str(tmp_path / f"{version}.pkg"))
        assert r.returncode == 0, r.stderr

    new_code(tmp_path / "cloud")
    with CloudThread(tmp_path / "cloud") as cloud:
        st = asyncio.run(enrol(cloud.url, new_code(tmp_path / "cloud"), tmp_path / "agent", "0.1.0"))
        check = ["cloudlink", "check-definitions", "--state", str(st.folder), "--trusted-key", str(store.pub)]
        publish("1.0", QUIET)
        assert cli(*check).returncode == 0                               # first install, before the box runs
        current = st.folder / "definitions" / "current.pkg"
        utm = Run(bed, tmp_path / "log", "--definitions", str(current), "--trusted-key", str(store.pub),
                  "--categories", str(tmp_path / "categories.db"))
        hook = ["--reload-hook", f"{sys.executable} -m firmware.cli.main reload -l {tmp_path / 'log'} --wait 60"]
        try:
            assert fetch(bed, 1000, "EVIL")["ok"]
            publish("1.1", QUIET, EVIL)
            r = cli(*check, *hook)
            assert r.returncode == 0 and json.loads(r.stdout)["current"] == "1.1", r.stdout + r.stderr
            assert not fetch(bed, 1000, "EVIL")["ok"]                    # the box runs 1.1 now
            # signed by the vendor and loadable, but this box has its own --categories: it refuses 1.2
            publish("1.2", QUIET, categories=cats)
            r = cli(*check, *hook)
            out = json.loads(r.stdout)
            assert r.returncode == 1 and out["result"].startswith("reverted") and out["current"] == "1.1", r.stdout
            assert "refused the reload" in out["result"] and "categories" in out["result"], out["result"]
            assert not fetch(bed, 1000, "EVIL")["ok"]                    # still 1.1, nothing dropped meanwhile
            assert fetch(bed, 1000)["ok"]
        finally:
            events = utm.stop()
    assert last_stats(events)["definitions_version"] == "1.1"


def test_remote_set_mode_and_isolate_reach_the_running_box(bed, tmp_path):
    """Cloud command -> agent -> apply hook `utm net apply --desired --reload-logdir` -> netconfig's real ruleset
    in the box namespace and `utm run --net-config committed.toml` re-reading the modes."""
    import asyncio
    import shlex

    from cloudlink.transport import enrol
    from tests.sim.bridgebed import ruleset
    from tests.sim.cloud import CloudThread, new_code

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "firmware.cli.main", *args], capture_output=True, text=True,
                              env=ENV, timeout=120)

    rules = tmp_path / "live.rules"
    rules.write_text(EVIL_RULE + QUIET_RULE)
    net, state, log = tmp_path / "net.toml", tmp_path / "netstate", tmp_path / "log"
    net.write_text(f'[ports]\nwan = "ps"\nlan = "pc"\n[management]\nipv6 = "off"\n[inspection]\nqueue = {QUEUE}\n')
    client_mac = run("cat", "/sys/class/net/eth0/address", ns=bed.client).stdout.strip()
    new_code(tmp_path / "cloud")
    utm = None
    try:
        with CloudThread(tmp_path / "cloud") as cloud:
            st = asyncio.run(enrol(cloud.url, new_code(tmp_path / "cloud"), tmp_path / "agent", "0.1.0"))
            apply = ["net", "apply", "--netns", bed.box, "--state-dir", str(state), "--config", str(net),
                     "--desired", str(st.folder / "desired.json")]
            r = cli(*apply)                                               # boot: the base config, nothing desired
            assert r.returncode == 0, r.stderr
            utm = Run(bed, log, "-S", str(rules), "--net-config", str(state / "committed.toml"))
            assert wait(lambda: fetch(bed, 10)["ok"], 5)
            assert not fetch(bed, 1000, "EVIL")["ok"]                     # intrusion = block

            def command(*cmdline: str) -> dict:
                r = cli("cloud", "command", "--state", str(tmp_path / "cloud"), st.device_id, *cmdline)
                assert r.returncode == 0, r.stderr
                r = cli("cloudlink", "run", "--state", str(st.folder), "--drain", "--reboot-hook", "",
                        "--apply-hook", shlex.join([sys.executable, "-m", "firmware.cli.main", *apply,
                                                    "--reload-logdir", str(log)]))
                assert r.returncode == 0, r.stderr
                rows = [json.loads(x) for x in cli("cloud", "commands", "--state", str(tmp_path / "cloud"),
                                                   "--json").stdout.splitlines()]
                return [c["result"] for c in rows if c["args"] == list(cmdline[1:])][-1]

            res = command("set-mode", "intrusion", "detect")
            assert res["status"] == "done" and "worker(s) reloaded" in res["detail"], res
            assert fetch(bed, 1000, "EVIL")["ok"]                         # alerted, let through
            res = command("isolate", client_mac)
            assert res["status"] == "done", res
            assert not fetch(bed, 10, timeout=3)["ok"]                    # the kernel drops the isolated client
            res = command("release", client_mac)
            assert res["status"] == "done", res
            assert wait(lambda: fetch(bed, 10, timeout=3)["ok"], 10)
    finally:
        events = utm.stop() if utm is not None else []
        bed.apply_rules(ruleset(QUEUE))                                   # the module's bed as it was
    assert [a["alert"]["action"] for a in events if a["event_type"] == "alert"][-1] == "allowed"
