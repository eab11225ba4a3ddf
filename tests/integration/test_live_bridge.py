"""`utm run` inline on a kernel bridge in namespaces: pass, block, bypass, fail-open, watchdog, reload.

Root only (skipped otherwise). Everything is created with a random suffix and
removed afterwards; each transfer is bounded in size and time.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sim.bridgebed import SERVER_IP, SERVER_IP6, BridgeBed, children, missing_reason, ruleset, run

pytestmark = [pytest.mark.netns]
_why = missing_reason()
if _why:
    pytestmark.append(pytest.mark.skip(reason=_why))

ROOT = Path(__file__).resolve().parents[2]
PEER = str(ROOT / "tests" / "sim" / "tcppeer.py")
PORT = 8080
QUEUE = 11
EVIL_RULE = 'drop tcp any any -> any any (msg:"evil"; content:"EVIL"; classtype:trojan-activity; sid:1;)\n'
QUIET_RULE = 'alert tcp any any -> any any (msg:"never"; content:"NOT-IN-ANY-TEST"; sid:2;)\n'


@pytest.fixture(scope="module")
def bed():
    b = BridgeBed(queue=QUEUE)
    b.up()
    try:
        b.python(b.server, PEER, "serve", str(PORT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:   # no utm bound yet: --queue-bypass lets traffic through
            if fetch(b, 10)["ok"]:
                break
            time.sleep(0.1)
        yield b
    finally:
        b.close()


def fetch(b: BridgeBed, size: int, *words: str, mode: str = "raw", timeout: float = 20, v6: bool = False) -> dict:
    try:
        r = run(sys.executable, PEER, mode, SERVER_IP6 if v6 else SERVER_IP, str(PORT), str(size), *words, ns=b.client, check=False,
                timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "bytes": 0, "error": "timeout"}
    return json.loads(r.stdout) if r.stdout.strip() else {"ok": False, "error": r.stderr[-200:]}


class Utm:
    """One `utm run` in the box namespace, stopped (by PID) at the end of the test."""

    def __init__(self, b: BridgeBed, logdir: Path, rules: Path, *extra: str, queues: int = 1) -> None:
        self.b, self.logdir, self.queues = b, logdir, queues
        self.err = open(logdir / "stderr.txt", "wb")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        qargs = ["--queue", str(QUEUE)] if queues == 1 else ["--queues", f"{QUEUE}:{QUEUE + queues - 1}"]
        self.proc = b.spawn(b.box, [sys.executable, "-m", "firmware.cli.main", "run", *qargs,
                                    "-S", str(rules), "-l", str(logdir), *extra], env=env, stderr=self.err)
        assert wait(lambda: self.bound(), 20), self.stderr()

    def bound(self) -> bool:
        r = run("cat", "/proc/net/netfilter/nfnetlink_queue", ns=self.b.box, check=False)
        bound = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
        return all(str(q) in bound for q in range(QUEUE, QUEUE + self.queues))

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def stderr(self) -> str:
        if not self.err.closed:
            self.err.flush()
        return (self.logdir / "stderr.txt").read_text(errors="replace")

    def stop(self) -> list[dict]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.err.close()
        return [json.loads(line) for f in sorted(self.logdir.glob("eve.q*.json"))
                for line in f.read_text().splitlines()]


def wait(cond, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def last_stats(events: list[dict]) -> dict:
    return [e for e in events if e["event_type"] == "stats" and "live" in e["stats"]][-1]["stats"]["live"]


@pytest.fixture
def rules(tmp_path):
    p = tmp_path / "live.rules"
    p.write_text(EVIL_RULE)
    return p


def test_clean_transfer_is_byte_identical_and_handed_back_after_its_head(bed, tmp_path, rules):
    utm = Utm(bed, tmp_path, rules, "--depth", "64kb")
    try:
        r = fetch(bed, 4_000_000)
        http = fetch(bed, 300_000, mode="fetch")   # HTTP: the body is a file, queued until it ends
    finally:
        events = utm.stop()
    assert r["ok"] and http["ok"], (r, http)
    live = last_stats(events)
    assert live["flows_bypassed"] >= 1 and live["flows_blocked"] == 0
    assert live["bytes"] < 4_000_000 / 2     # the queue saw the head of the raw transfer only
    assert live["queue"]["enobufs"] == 0
    assert not [e for e in events if e["event_type"] == "alert"]


def _scanned_download(bed: BridgeBed, logdir: Path, rules: Path, mode: str, size: int) -> tuple[dict, list[dict]]:
    """One download through `utm run` with a hash list, a 64 KB depth and a 1 MB file size limit."""
    (logdir / "h.txt").write_text("ab" * 32 + "  some-malware\n")
    utm = Utm(bed, logdir, rules, "--depth", "64kb", "--hashes", str(logdir / "h.txt"), "--set", "files.max-size=1mb")
    try:
        r = fetch(bed, size, mode=mode)
    finally:
        events = utm.stop()
    assert r["ok"], r
    return last_stats(events), events


def test_with_a_scanner_only_a_download_of_unknown_size_stays_queued_to_the_size_limit(bed, tmp_path, rules):
    # a 3 MB file with a Content-Length can never be judged whole under a 1 MB limit, so it goes
    # back to the kernel at the depth; the same bytes as HTTP/0.9 (their end known only at the
    # close) are queued until they pass the limit
    live, events = _scanned_download(bed, tmp_path, rules, "fetch11", 3_000_000)
    assert live["files_too_large"] == 1 and live["bytes"] < 400_000
    [fi] = [e["fileinfo"] for e in events if e["event_type"] == "fileinfo"]
    assert fi["state"] == "TRUNCATED" and fi["verdict"]["verdict"] == "unscanned"
    assert fi["verdict"]["reason"].startswith("unscanned: too large")
    (tmp_path / "unknown").mkdir()
    live, _ = _scanned_download(bed, tmp_path / "unknown", rules, "fetch", 3_000_000)
    assert live["files_too_large"] == 0 and 1_000_000 < live["bytes"] < 2_000_000


def test_a_drop_rule_resets_the_connection_and_logs_blocked(bed, tmp_path, rules):
    utm = Utm(bed, tmp_path, rules)
    try:
        r = fetch(bed, 1000, "EVIL", timeout=20)
        ok_after = fetch(bed, 1000)
    finally:
        events = utm.stop()
    assert not r["ok"] and r["bytes"] == 0
    assert r["error"] == "ConnectionResetError"    # the client got our reset, not a timeout
    assert ok_after["ok"]                           # other flows are not affected
    alerts = [e for e in events if e["event_type"] == "alert"]
    assert [(a["alert"]["signature_id"], a["alert"]["action"]) for a in alerts] == [(1, "blocked")]
    live = last_stats(events)
    assert live["resets_sent"] == 2 and live["flows_blocked"] == 1


UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""
UDP_CLIENT = """
import json, socket, sys, time
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], 9999))
s.send(b"hello")
first = s.recv(100).decode()
s.send(b"EVIL datagram")
t0 = time.monotonic()
try:
    s.recv(100)
    second = "answered"
except ConnectionRefusedError:
    second = "refused"
except socket.timeout:
    second = "timeout"
print(json.dumps({"first": first, "second": second, "seconds": time.monotonic() - t0}))
"""


@pytest.mark.parametrize("server", [SERVER_IP, SERVER_IP6])
def test_a_blocked_udp_flow_is_refused_at_once_not_left_to_time_out(bed, tmp_path, server):
    # an echo server listens, so only the box's ICMP port unreachable can refuse the datagram
    (tmp_path / "udp.rules").write_text('drop udp any any -> any any (msg:"evil udp"; content:"EVIL"; sid:9;)\n')
    echo = bed.spawn(bed.server, [sys.executable, "-c", UDP_ECHO, server])
    utm = Utm(bed, tmp_path, tmp_path / "udp.rules")
    try:
        r = run(sys.executable, "-c", UDP_CLIENT, server, ns=bed.client, timeout=20)
    finally:
        events = utm.stop()
        echo.terminate()
        echo.wait(5)
    got = json.loads(r.stdout)
    assert got["first"] == "hello" and got["second"] == "refused" and got["seconds"] < 1, got
    assert last_stats(events)["unreachables_sent"] == 1


def test_ipv6_passes_and_is_blocked_the_same_way(bed, tmp_path, rules):
    utm = Utm(bed, tmp_path, rules)
    try:
        clean = fetch(bed, 500_000, v6=True)
        evil = fetch(bed, 1000, "EVIL", v6=True)
    finally:
        events = utm.stop()
    assert clean["ok"], clean
    assert not evil["ok"] and evil["error"] == "ConnectionResetError"
    [alert] = [e for e in events if e["event_type"] == "alert"]
    assert alert["alert"]["action"] == "blocked" and alert["src_ip"].startswith("2001:0db8:")


def test_detect_only_alerts_and_lets_it_through(bed, tmp_path, rules):
    utm = Utm(bed, tmp_path, rules, "--detect-only", "trojan-activity")
    try:
        r = fetch(bed, 1000, "EVIL")
    finally:
        events = utm.stop()
    assert r["ok"]
    assert [a["alert"]["action"] for a in events if a["event_type"] == "alert"] == ["allowed"]


def test_killed_worker_is_bypassed_then_replaced(bed, tmp_path, rules):
    utm = Utm(bed, tmp_path, rules)
    try:
        [worker] = utm.workers()
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        r = fetch(bed, 200_000)                 # right away: bypassed or the new worker's
        assert wait(lambda: utm.workers() not in ([], [worker]) and utm.bound(), 5), utm.stderr()
        print(f"dead worker replaced and bound after {time.monotonic() - killed:.2f} s")
        r2 = fetch(bed, 200_000)
    finally:
        utm.stop()
    assert r["ok"] and r2["ok"]


def test_killed_supervisor_takes_its_workers_along_and_traffic_is_bypassed(bed, tmp_path, rules):
    utm = Utm(bed, tmp_path, rules)
    [worker] = utm.workers()
    try:
        utm.proc.kill()
        utm.proc.wait(5)
        assert wait(lambda: not Path(f"/proc/{worker}").exists() or _zombie(worker), 5)
        assert wait(lambda: not utm.bound(), 5)
        r = fetch(bed, 200_000)
    finally:
        utm.stop()
        if Path(f"/proc/{worker}").exists() and not _zombie(worker):
            os.kill(worker, signal.SIGKILL)   # an orphan left behind if this very feature failed
    assert r["ok"]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_hung_worker_is_replaced_within_5_seconds(bed, tmp_path, rules):
    utm = Utm(bed, tmp_path, rules)
    try:
        [worker] = utm.workers()
        os.kill(worker, signal.SIGSTOP)
        started = time.monotonic()
        assert wait(lambda: utm.workers() not in ([], [worker]), 6), utm.stderr()
        replaced = time.monotonic() - started
        assert wait(utm.bound, 5)
        r = fetch(bed, 200_000)
    finally:
        utm.stop()
    print(f"hung worker replaced after {replaced:.2f} s")
    assert replaced < 5.0
    assert r["ok"]
    assert "hung" in utm.stderr()


def test_reload_applies_new_rules_without_a_restart(bed, tmp_path):
    rules = tmp_path / "live.rules"
    rules.write_text(QUIET_RULE)
    utm = Utm(bed, tmp_path, rules)
    try:
        [worker] = utm.workers()
        assert fetch(bed, 1000, "EVIL")["ok"]
        rules.write_text(QUIET_RULE + EVIL_RULE)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        traffic = bed.spawn(bed.client, [sys.executable, PEER, "many", SERVER_IP, str(PORT), "150", "2000"],
                            stdout=subprocess.PIPE, text=True)   # requests on the wire during the reload
        time.sleep(0.2)
        subprocess.run([sys.executable, "-m", "firmware.cli.main", "reload", "-l", str(tmp_path)], check=True,
                       env=env, capture_output=True, timeout=10)
        assert wait(lambda: "rules reloaded" in utm.stderr(), 10), utm.stderr()
        during = json.loads(traffic.communicate(timeout=60)[0])
        assert during["failed"] == 0 and len(during["latencies_ms"]) == 150
        r = fetch(bed, 1000, "EVIL")
        assert utm.workers() == [worker]        # the same process: swapped, not restarted
    finally:
        utm.stop()
    assert not r["ok"]


def test_two_queues_two_workers_both_inspect(bed, tmp_path, rules):
    bed.apply_rules(ruleset(QUEUE, balance=2))
    try:
        utm = Utm(bed, tmp_path, rules, queues=2)
        try:
            assert len(utm.workers()) == 2
            clean = [fetch(bed, 100_000, v6=v6) for v6 in (False, True)]
            evil = [fetch(bed, 1000, "EVIL", v6=v6) for v6 in (False, True)]
        finally:
            events = utm.stop()
    finally:
        bed.apply_rules(ruleset(QUEUE))
    assert all(r["ok"] for r in clean) and not any(r["ok"] for r in evil)
    assert len([e for e in events if e["event_type"] == "alert"]) == 2
    assert {p.name for p in tmp_path.glob("eve.q*.json")} == {f"eve.q{QUEUE}.json", f"eve.q{QUEUE + 1}.json"}


def test_fail_closed_ruleset_stops_traffic_without_a_worker(bed):
    bed.apply_rules(ruleset(QUEUE, bypass=False))
    try:
        r = fetch(bed, 1000, timeout=3)
    finally:
        bed.apply_rules(ruleset(QUEUE))
    assert not r["ok"]


def test_utm_stats_gets_every_workers_counters_on_demand(bed, tmp_path, rules):
    utm = Utm(bed, tmp_path, rules, "--stats-every", "3600", queues=2)     # no periodic stats meanwhile
    try:
        assert fetch(bed, 200_000)["ok"] and not fetch(bed, 1000, "EVIL", timeout=10)["ok"]
        r = run(sys.executable, "-m", "firmware.cli.main", "stats", "-l", str(tmp_path), "--json",
                ns=bed.box, check=False)
        assert r.returncode == 0, r.stderr
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        assert sorted(x["queue"] for x in lines) == [QUEUE, QUEUE + 1]
        assert sum(x["live"]["packets"] for x in lines) > 0 and sum(x["live"]["verdicts"]["drop"] for x in lines) >= 1
        r = run(sys.executable, "-m", "firmware.cli.main", "stats", "-l", str(tmp_path), ns=bed.box, check=False)
        assert r.returncode == 0 and "total" in r.stdout and "inspected:" in r.stdout, r.stdout + r.stderr
        assert r.stdout.splitlines()[-1] == "limits hit: none", r.stdout
        assert len(utm.workers()) == 2          # asking did not disturb them
    finally:
        utm.stop()
    r = subprocess.run([sys.executable, "-m", "firmware.cli.main", "stats", "-l", str(tmp_path)],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and "utm stats:" in r.stderr and r.stderr.count("\n") == 1   # nothing running
