"""The appliance's promises about the office that test_enforce_testbed.py does not cover (root, dnsmasq):
SSID to SSID inspected, LAN to LAN not the box's, fail-closed, a hung worker replaced, an isolated
device cut off but manageable.

The testbed is brought up once for the module and taken down afterwards; when one is already up
(it belongs to someone) the module is skipped. Servers started here run in a namespace under their
own pid and are stopped by it; config variants are applied with `utm net apply` and the testbed's
own config is applied again afterwards. Every fetch and wait is bounded.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.netns import Namespaces
from tests.integration.testbed_fixtures import RESET_OR_SHORT, bed, box  # noqa: F401 (fixtures)
from tests.sim import livebox as lb
from tests.sim import testbed
from tests.sim.testbed_files import EICAR

pytestmark = pytest.mark.slow
NO_CONNECTION = (7, 28)             # curl: could not connect, timed out
SSID2_MAC = testbed.DEVICES["utmtb-ssid2"][1]


def v4(ns: str, dev: str = "eth0") -> str:
    addr = testbed._has_v4(ns, dev)
    assert addr, f"{ns} has no IPv4 address"
    return addr.split("/")[0]


@contextlib.contextmanager
def serving(ns: str, folder: Path, port: int, files: dict[str, bytes]):
    """A Python http.server in namespace `ns` serving `files`; stopped by its pid when done."""
    for name, data in files.items():
        (folder / name).write_bytes(data)
    srv = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "http.server", str(port),
                            "--bind", "0.0.0.0", "--directory", str(folder)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while lb.fetch(ns, f"http://127.0.0.1:{port}/", timeout=2).status != 200:   # up, seen from inside
            assert srv.poll() is None and time.monotonic() < deadline, f"the server in {ns} did not start"
            time.sleep(0.2)
        yield
    finally:
        os.killpg(srv.pid, signal.SIGTERM)
        srv.wait(5)


def apply_box_config(text: str) -> None:
    """`utm net apply` of a variant of the testbed's box config (the testbed's own one to restore)."""
    cfg = testbed.RUN / "box-variant.toml"
    cfg.write_text(text)
    r = subprocess.run([sys.executable, "-m", "firmware.cli.main", "net", "apply", "--config", str(cfg),
                        "--netns", testbed.BOX, "--state-dir", str(testbed.RUN / "netconfig")],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(lb.ROOT)})
    assert r.returncode == 0, r.stderr


def worker_pids(b: lb.LiveBox) -> set[int]:
    """The supervisor's children: its workers (`ip netns exec` execs, so the pid is `utm run`)."""
    assert b.proc is not None
    kids = set()
    for task in Path(f"/proc/{b.proc.pid}/task").iterdir():
        kids |= {int(p) for p in (task / "children").read_text().split()}
    return kids


def test_ssid1_to_ssid2_traffic_is_inspected(box, tmp_path):
    host = v4("utmtb-ssid2")
    with serving("utmtb-ssid2", tmp_path, 8080, {"eicar.com": EICAR, "ok.txt": b"hello from ssid2\n"}):
        ok = lb.fetch("utmtb-ssid1", f"http://{host}:8080/ok.txt", timeout=10)
        assert (ok.exit, ok.status, ok.body) == (0, 200, b"hello from ssid2\n"), ok
        f = lb.fetch("utmtb-ssid1", f"http://{host}:8080/eicar.com", timeout=10)
        assert f.exit in RESET_OR_SHORT and f.sha256 != hashlib.sha256(EICAR).hexdigest(), f

        def mine(e):
            return (e.get("event_type") == "alert" and e.get("src_ip") == host
                    and e.get("dest_ip") == v4("utmtb-ssid1") and e["alert"]["signature"].startswith("Malicious file"))
        evs = box.wait_for(mine)
        hits = [a for a in evs if mine(a)]
        assert hits and hits[0]["alert"]["action"] == "blocked", [
            (a.get("src_ip"), a.get("dest_ip"), a["alert"]["signature"]) for a in lb.alerts(evs)]


def test_lan_to_lan_traffic_is_not_the_boxs(box, tmp_path):
    """Two hosts behind the box's LAN port talk through the office switch, never through the box:
    the box cannot see, inspect or block that traffic, and says so nowhere. The testbed has no
    switch, so a second LAN host is a throwaway namespace joined to the LAN device by its own
    veth pair (198.51.100.0/24, a documentation range) that does not touch the box. What is
    tested is the nearest true statement: EICAR fetched over that link arrives intact, the box's
    EVE log never names either address, and the box's inspect chain counts no packet for it."""
    nss = Namespaces()
    lan2 = nss.add("lan2")
    try:
        testbed.sh("ip", "-n", "utmtb-lan", "link", "add", "sw0", "type", "veth", "peer", "name", "eth0",
                   "netns", lan2)
        testbed.sh("ip", "-n", "utmtb-lan", "addr", "add", "198.51.100.1/24", "dev", "sw0")
        testbed.sh("ip", "-n", lan2, "addr", "add", "198.51.100.2/24", "dev", "eth0")
        testbed.sh("ip", "-n", "utmtb-lan", "link", "set", "sw0", "up")
        testbed.sh("ip", "-n", lan2, "link", "set", "eth0", "up")
        before = inspect_packets()
        assert len(before) == 3, before        # lan0 -> wan0, ssid1, ssid2
        with serving(lan2, tmp_path, 8080, {"eicar.com": EICAR}):
            f = lb.fetch("utmtb-lan", "http://198.51.100.2:8080/eicar.com", timeout=10)
            assert (f.exit, f.status, f.sha256) == (0, 200, hashlib.sha256(EICAR).hexdigest()), f
        assert inspect_packets() == before, "the box's port rules counted IPv4 packets from the LAN meanwhile"
        # the same request through the box is blocked (the box is on and judging)
        blocked = lb.fetch("utmtb-lan", "http://www.example.test/eicar.com", "-4", timeout=10)
        assert blocked.exit in RESET_OR_SHORT, blocked
        assert inspect_packets()["lan0>wan0"] > before["lan0>wan0"], "the counters do count the box's traffic"
        www = testbed.HOST_ADDRS["www.example.test"][0]

        def through_box(e):
            return (e.get("event_type") == "alert" and "eicar.com" in e["alert"]["signature"]
                    and www in (e.get("src_ip"), e.get("dest_ip")))
        evs = box.wait_for(through_box)
        assert any(through_box(e) for e in evs), [(a.get("src_ip"), a["alert"]["signature"]) for a in lb.alerts(evs)]
        assert not [e for e in evs if "198.51.100." in f"{e.get('src_ip')} {e.get('dest_ip')}"]
    finally:
        testbed.sh("ip", "-n", "utmtb-lan", "link", "del", "sw0", check=False)
        nss.close()


def inspect_packets() -> dict[str, int]:
    """IPv4 packets counted by the box's rules for what the LAN port sends, per out port (`iptables -L -v -x`)."""
    r = testbed.in_ns(testbed.BOX, "iptables-nft", "-L", "UTM-FWD", "-v", "-x", "-n")
    out = {}
    for line in r.stdout.splitlines():
        if "--physdev-in lan0" in line:
            words = line.split()
            pair = f"{words[words.index('--physdev-in') + 1]}>{words[words.index('--physdev-out') + 1]}"
            out[pair] = int(words[0])
    return out


def test_a_hung_worker_is_replaced_and_traffic_flows_after(box):
    old = worker_pids(box)
    assert len(old) == 1, old
    t0 = time.monotonic()
    os.kill(next(iter(old)), signal.SIGSTOP)
    new: set[int] = set()
    while time.monotonic() - t0 < 5:
        new = worker_pids(box) - old
        if new and lb.queue_bound():
            break
        time.sleep(0.1)
    took = time.monotonic() - t0
    assert new and lb.queue_bound(), f"no replacement bound within 5 s (children {worker_pids(box)})"
    print(f"hung worker replaced and bound in {took:.2f} s")
    f = lb.fetch("utmtb-lan", "http://www.example.test/clean.bin", "-4", timeout=15)
    assert (f.exit, f.size) == (0, 10 * 1024 * 1024), f
    assert lb.fetch("utmtb-lan", "http://www.example.test/eicar.com", "-4", timeout=10).exit in RESET_OR_SHORT


def test_fail_closed_killing_utm_run_stops_the_office_and_a_restart_restores_it(bed, box):
    box.stop()
    folder, args = bed
    apply_box_config(testbed.BOX_CONFIG.replace('fail_mode = "open"', 'fail_mode = "closed"'))
    try:
        b = lb.LiveBox(folder / "eve-closed", [*args, "--fail", "closed"]).start()
        try:
            assert lb.fetch("utmtb-lan", "http://www.example.test/", "-4", timeout=10).status == 200
            b.kill()
            deadline = time.monotonic() + 5
            while lb.queue_bound() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not lb.queue_bound()
            for fam in ("-4", "-6"):
                f = lb.fetch("utmtb-lan", "http://www.example.test/", fam, timeout=4)
                assert f.exit in NO_CONNECTION + (6,) and f.status == 0, (fam, f)   # 6: the name did not resolve
        finally:
            b.stop()
        b = lb.LiveBox(folder / "eve-closed-again", [*args, "--fail", "closed"]).start()
        try:
            for fam in ("-4", "-6"):
                f = lb.fetch("utmtb-lan", "http://www.example.test/", fam, timeout=10)
                assert (f.exit, f.status) == (0, 200), (fam, f)
        finally:
            b.stop()
    finally:
        apply_box_config(testbed.BOX_CONFIG)
    f = lb.fetch("utmtb-lan", "http://www.example.test/", "-4", timeout=10)    # open again, nobody bound
    assert (f.exit, f.status) == (0, 200), f


UDP_LISTEN = """import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
s.settimeout(float(sys.argv[1]))
print("ready", flush=True)
try:
    print(s.recvfrom(100)[0].decode(), flush=True)
except TimeoutError:
    print("nothing", flush=True)
"""
UDP_SEND = """import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hello", (sys.argv[1], 9999))
"""


def one_way_datagram_arrives(src: str, dst: str) -> bool:
    """A UDP datagram from `src` to `dst` (bounded: the listener gives up after 5 s)."""
    lst = subprocess.Popen(["ip", "netns", "exec", dst, sys.executable, "-c", UDP_LISTEN, "5"],
                           stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert lst.stdout is not None and lst.stdout.readline().strip() == "ready"
        testbed.in_ns(src, sys.executable, "-c", UDP_SEND, v4(dst))
        return lst.communicate(timeout=10)[0].strip() == "hello"
    finally:
        if lst.poll() is None:
            os.killpg(lst.pid, signal.SIGTERM)
            lst.wait(5)


def test_an_isolated_device_reaches_nothing_but_the_box(bed, tmp_path):
    """netconfig's [isolation]: what the device *sends* through the bridge is dropped (DHCP
    excepted), so no connection to or from it completes, while one-way datagrams to it still arrive
    (iptables cannot match a destination MAC); traffic to the box itself is INPUT, not forwarded,
    so it stays manageable (here: an HTTP server in the box's namespace on its br0 address)."""
    box_addr = v4(testbed.BOX, "br0")
    apply_box_config(testbed.BOX_CONFIG + f'\n[isolation]\ndevices = ["{SSID2_MAC}"]\n')
    try:
        for fam in ("-4", "-6"):
            f = lb.fetch("utmtb-ssid2", "http://www.example.test/", fam, timeout=3)
            assert f.status == 0 and f.exit in NO_CONNECTION + (6,), (fam, f)
        (tmp_path / "lan").mkdir()
        with serving("utmtb-lan", tmp_path / "lan", 8080, {"ok.txt": b"lan\n"}):
            f = lb.fetch("utmtb-ssid2", f"http://{v4('utmtb-lan')}:8080/ok.txt", timeout=3)
            assert f.status == 0 and f.exit in NO_CONNECTION, f
        (tmp_path / "ssid2").mkdir()
        with serving("utmtb-ssid2", tmp_path / "ssid2", 8080, {"ok.txt": b"ssid2\n"}):
            f = lb.fetch("utmtb-lan", f"http://{v4('utmtb-ssid2')}:8080/ok.txt", timeout=3)
            assert f.status == 0 and f.exit in NO_CONNECTION, f   # its answers are dropped
        (tmp_path / "box").mkdir()
        with serving(testbed.BOX, tmp_path / "box", 8081, {"status.txt": b"box\n"}):
            f = lb.fetch("utmtb-ssid2", f"http://{box_addr}:8081/status.txt", timeout=5)
            assert (f.exit, f.status, f.body) == (0, 200, b"box\n"), f
        assert one_way_datagram_arrives("utmtb-lan", "utmtb-ssid2"), "documented: datagrams *to* it still arrive"
        # the others are not affected
        f = lb.fetch("utmtb-ssid1", "http://www.example.test/", "-4", timeout=10)
        assert (f.exit, f.status) == (0, 200), f
    finally:
        apply_box_config(testbed.BOX_CONFIG)
    f = lb.fetch("utmtb-ssid2", "http://www.example.test/", "-4", timeout=10)
    assert (f.exit, f.status) == (0, 200), f
