"""netconfig against the real kernel, inside namespaces made for the test (root; skipped otherwise).

A box namespace gets four veth ports (wan, lan, ssid1, ssid2); the peers of
wan and lan live in two host namespaces so traffic can cross the bridge.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netconfig import schema
from netconfig.apply import Applier, StateStore
from netconfig.backends.iptables import IptablesBackend
from netconfig.backends.netlink import NetlinkBackend
from netconfig.errors import ApplyError, BackendError
from netconfig.ruleset import Family
from tests.integration.netns import Namespaces, need_root_netns, run

ROOT = Path(__file__).resolve().parents[2]
MAC_LAN_HOST = "02:00:00:00:10:02"
CONFIG = ('[ports]\nwan = "p-wan"\nlan = "p-lan"\nssid1 = "p-s1"\nssid2 = "p-s2"\n'
          '[management]\nipv4 = "static"\naddress = "192.0.2.2/24"\n')


@pytest.fixture
def lab():
    need_root_netns()
    ns = Namespaces()
    try:
        box, wan, lan = ns.add("box"), ns.add("wan"), ns.add("lan")
        for port, peer_ns, addr, mac in (("p-wan", wan, "192.0.2.1/24", "02:00:00:00:10:01"),
                                         ("p-lan", lan, "192.0.2.10/24", MAC_LAN_HOST)):
            run("ip", "-n", box, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", peer_ns)
            run("ip", "-n", peer_ns, "link", "set", "eth0", "address", mac, "up")
            run("ip", "-n", peer_ns, "addr", "add", addr, "dev", "eth0")
        for port in ("p-s1", "p-s2"):
            run("ip", "-n", box, "link", "add", port, "type", "veth", "peer", "name", port + "x")
        yield {"box": box, "wan": wan, "lan": lan}
    finally:
        ns.close()


def rules_of(ns: str) -> list[str]:
    """iptables-nft-save of filter and mangle without comments and packet counters."""
    out = run("ip", "netns", "exec", ns, "iptables-nft-save").stdout
    return [re.sub(r"\[\d+:\d+\]$", "", ln) for ln in out.splitlines() if not ln.startswith("#")]


def utm(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "firmware.cli.main", "net", *args], capture_output=True,
                          text=True, env=env, timeout=60)


PROBE = ("import socket, sys\n"
         "try:\n"
         "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close(); print('open')\n"
         "except ConnectionRefusedError: print('refused')\n"
         "except OSError: print('timeout')\n")


def reach(ns: str, addr: str, port: int = 80) -> str:
    """TCP connect from a namespace: 'open', 'refused' (reachable, nothing listening) or 'timeout'."""
    r = run("ip", "netns", "exec", ns, sys.executable, "-c", PROBE, addr, str(port), check=False)
    return r.stdout.strip()


def reach_retry(ns: str, addr: str, tries: int = 3) -> str:
    """The bridge learns addresses on the first packets; a few tries settle it."""
    got = "timeout"
    for _ in range(tries):
        got = reach(ns, addr)
        if got != "timeout":
            break
    return got


@pytest.fixture
def wan_server(lab):
    """A TCP listener on the wan host (192.0.2.1:80)."""
    code = ("import socket, time\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('192.0.2.1', 80)); s.listen(64)\nwhile True:\n    c, _ = s.accept(); c.close()\n")
    proc = subprocess.Popen(["ip", "netns", "exec", lab["wan"], sys.executable, "-c", code])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_cli_apply_twice_show_and_traffic(lab, wan_server, tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(CONFIG)
    state = tmp_path / "state"
    common = ["--netns", lab["box"], "--state-dir", str(state)]
    r = utm("apply", "--config", str(cfg), *common)
    assert r.returncode == 0, r.stderr
    assert "create-bridge br0" in r.stdout
    links = {ln.name: ln for ln in NetlinkBackend(lab["box"]).links()}
    assert links["br0"].kind == "bridge" and links["br0"].up and links["br0"].addresses == ("192.0.2.2/24",)
    assert {n for n, ln in links.items() if ln.master == "br0"} == {"p-wan", "p-lan", "p-s1", "p-s2"}
    saved = run("ip", "netns", "exec", lab["box"], "iptables-nft-save").stdout
    assert "-A UTM-FWD -m physdev --physdev-in p-wan --physdev-out p-lan --physdev-is-bridged -j UTM-INSPECT" in saved
    assert "--queue-num 0 --queue-bypass" in saved
    assert "-A UTM-POST -m mark --mark 0x1/0x1 -j CONNMARK --save-mark" in saved
    assert "UTM-FWD" in run("ip", "netns", "exec", lab["box"], "ip6tables-nft-save").stdout

    again = utm("plan", "--config", str(cfg), *common)
    assert again.returncode == 0 and "nothing to change" in again.stdout
    r2 = utm("apply", "--config", str(cfg), *common)
    assert r2.returncode == 0 and r2.stdout.strip() == "nothing to change"
    show = utm("show", *common)
    assert "port p-wan (wan): up" in show.stdout and "matches the committed config" in show.stdout

    # fail-open: no worker is bound to queue 0, --queue-bypass lets the traffic through the bridge
    assert reach_retry(lab["lan"], "192.0.2.1") == "open"
    assert reach_retry(lab["lan"], "192.0.2.2") == "refused"     # the box's management address answers


def test_fail_closed_without_worker_stops_forwarding_but_box_stays_reachable(lab, wan_server, tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(CONFIG + '[inspection]\nfail_mode = "closed"\n')
    r = utm("apply", "--config", str(cfg), "--netns", lab["box"], "--state-dir", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    assert reach_retry(lab["lan"], "192.0.2.2") == "refused"   # management traffic is not forwarded, never queued
    assert reach(lab["lan"], "192.0.2.1") == "timeout"


def test_isolated_device_reaches_nothing_but_the_box(lab, wan_server, tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text(CONFIG + f'[isolation]\ndevices = ["{MAC_LAN_HOST}"]\n')
    r = utm("apply", "--config", str(cfg), "--netns", lab["box"], "--state-dir", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    assert reach_retry(lab["lan"], "192.0.2.2") == "refused"
    assert reach(lab["lan"], "192.0.2.1") == "timeout"


def test_bogus_port_changes_nothing(lab, tmp_path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(CONFIG)
    bad.write_text(CONFIG.replace('"p-s2"', '"bogus0"'))
    common = ["--netns", lab["box"], "--state-dir", str(tmp_path / "s")]
    assert utm("apply", "--config", str(good), *common).returncode == 0
    before = (NetlinkBackend(lab["box"]).links(), rules_of(lab["box"]))
    r = utm("apply", "--config", str(bad), *common)
    assert r.returncode == 1 and "ports.ssid2: interface 'bogus0' does not exist" in r.stderr
    after = (NetlinkBackend(lab["box"]).links(), rules_of(lab["box"]))
    assert after == before
    assert (tmp_path / "s" / "committed.toml").read_text() == CONFIG


class FailingIp6(IptablesBackend):
    """The real backend, except that loading the IPv6 ruleset fails: a kernel refusing it halfway through."""

    def restore(self, family, text):
        if family is Family.IPV6 and "utm-netconfig" in text:
            raise BackendError("ip6tables-nft-restore", "refused (injected by the test)")
        super().restore(family, text)


def test_failed_apply_rolls_back_links_and_ipv4_ruleset(lab, tmp_path):
    store = StateStore(tmp_path / "s")
    with NetlinkBackend(lab["box"]) as links:
        good = CONFIG.replace('ssid2 = "p-s2"\n', "")
        Applier(links, IptablesBackend(lab["box"]), store).apply(schema.loads(good), good.encode())
        v4_before = rules_of(lab["box"])
        links_before = links.links()
        changed = CONFIG.replace("192.0.2.2/24", "192.0.2.3/24") + '[inspection]\nfail_mode = "closed"\n'
        with pytest.raises(ApplyError) as e:
            Applier(links, FailingIp6(lab["box"]), store).apply(schema.loads(changed), changed.encode())
        assert e.value.rolled_back, str(e.value)
        assert links.links() == links_before          # p-s2 released again, old address back
        assert rules_of(lab["box"]) == v4_before
        assert store.committed_text() == good.encode()


def test_missing_namespace_is_an_error_not_created(tmp_path):
    need_root_netns()
    name = "utmt-absent-" + os.urandom(3).hex()
    cfg = tmp_path / "net.toml"
    cfg.write_text(CONFIG)
    r = utm("plan", "--config", str(cfg), "--netns", name, "--state-dir", str(tmp_path / "s"))
    try:
        assert r.returncode == 1 and "no such namespace" in r.stderr
        assert not Path("/run/netns", name).exists()
    finally:
        run("ip", "netns", "del", name, check=False)


def test_drift_is_found_and_only_that_is_repaired(lab, tmp_path):
    """Someone flushes the IPv4 tables behind our back: plan shows exactly that ruleset, apply reloads only it."""
    cfg = tmp_path / "net.toml"
    cfg.write_text(CONFIG)
    common = ["--netns", lab["box"], "--state-dir", str(tmp_path / "s")]
    assert utm("apply", "--config", str(cfg), *common).returncode == 0
    subprocess.run(["ip", "netns", "exec", lab["box"], "iptables-nft-restore"], input="*filter\nCOMMIT\n",
                   text=True, check=True, timeout=10)
    assert "live ruleset DIFFERS" in utm("show", *common).stdout
    plan = utm("plan", "--config", str(cfg), *common).stdout.splitlines()
    todo = [ln for ln in plan if ln.strip() and not ln.strip().startswith("no change")]
    assert todo[0].split()[:3] == ["apply", "load-ruleset", "ipv4"] and todo[1] == "1 change(s) to apply"
    r = utm("apply", "--config", str(cfg), *common)
    assert r.returncode == 0 and "applied 1 change(s)" in r.stdout
    assert "matches the committed config" in utm("show", *common).stdout


UDP_SINK = ("import socket, sys\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('192.0.2.1', 5000))\n"
            "while True:\n"
            "    data, peer = s.recvfrom(2048); print(peer[1], data.decode(), flush=True)\n")
UDP_SEND = ("import socket, sys, time\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('192.0.2.10', int(sys.argv[1])))\n"
            "for word in sys.argv[2:]:\n"
            "    s.sendto(word.encode(), ('192.0.2.1', 5000)); time.sleep(0.2)\n")


def counter(ns: str, chain: str, needle: str) -> int:
    out = run("ip", "netns", "exec", ns, "iptables-nft", "-L", chain, "-v", "-n", "-x").stdout
    return sum(int(ln.split()[0]) for ln in out.splitlines() if needle in ln)


def test_mark_contract_block_and_bypass_in_the_kernel(lab, tmp_path):
    """What docs/netconfig.md promises the live engine, with a mangle rule standing in for its verdict marks.

    BLOCK (0x2) on one packet: that packet and every later one of the flow are dropped, other flows pass.
    BYPASS (0x1) on one accepted packet: the rest of the flow is accepted before the queue.
    """
    cfg = tmp_path / "net.toml"
    cfg.write_text(CONFIG)
    assert utm("apply", "--config", str(cfg), "--netns", lab["box"], "--state-dir", str(tmp_path / "s")).returncode == 0
    box = lab["box"]
    for word, mark in (("BLOCKME", "0x2/0x2"), ("PASSME", "0x1/0x1")):
        run("ip", "netns", "exec", box, "iptables-nft", "-t", "mangle", "-I", "PREROUTING", "-p", "udp",
            "-m", "string", "--string", word, "--algo", "bm", "-j", "MARK", "--set-xmark", mark)
    sink = subprocess.Popen(["ip", "netns", "exec", lab["wan"], sys.executable, "-c", UDP_SINK],
                            stdout=subprocess.PIPE, text=True)
    try:
        send = lambda sport, *words: run("ip", "netns", "exec", lab["lan"], sys.executable, "-c", UDP_SEND,  # noqa: E731
                                         str(sport), *words)
        send(40001, "warmup")                    # the bridge learns where 192.0.2.1 is
        send(40002, "hello", "BLOCKME", "after-block")
        send(40003, "PASSME", "after-pass", "more")
        send(40004, "other-flow")
        time.sleep(0.5)
    finally:
        sink.kill()
        got = sink.communicate(timeout=5)[0].split("\n")
    got = [ln for ln in got if ln]
    assert "40002 hello" in got and "40002 BLOCKME" not in got and "40002 after-block" not in got
    assert {"40003 PASSME", "40003 after-pass", "40003 more", "40004 other-flow"} <= set(got)
    assert counter(box, "UTM-FWD", "connmark match  0x2/0x2") >= 2            # BLOCKME and after-block
    assert counter(box, "UTM-FWD", "connmark match  0x1/0x1") >= 2            # after-pass and more skipped the queue


QUIC_COUNT = ("import socket, sys, time\n"
             "socks = []\n"
             "for port in map(int, sys.argv[1:]):\n"
             "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('192.0.2.1', port))\n"
             "    s.setblocking(False); socks.append((port, s))\n"
             "print('ready', flush=True)\n"
             "got = {p: 0 for p, _ in socks}\n"
             "end = time.monotonic() + 4\n"
             "while time.monotonic() < end:\n"
             "    for p, s in socks:\n"
             "        try:\n"
             "            s.recv(64); got[p] += 1\n"
             "        except BlockingIOError:\n"
             "            pass\n"
             "    time.sleep(0.01)\n"
             "print(' '.join(f'{p}={n}' for p, n in got.items()))\n")
QUIC_SEND = ("import socket, sys, time\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for i in range(20):\n"
            "    for port in (443, 4443):\n"
            "        s.sendto(b'x', ('192.0.2.1', port))\n"
            "    time.sleep(0.05)\n")


def test_quic_is_dropped_across_the_bridge_other_udp_passes(lab, tmp_path):
    cfg, state = tmp_path / "net.toml", tmp_path / "state"
    cfg.write_text(CONFIG)
    r = utm("apply", "--config", str(cfg), "--netns", lab["box"], "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    counter = subprocess.Popen(["ip", "netns", "exec", lab["wan"], sys.executable, "-c", QUIC_COUNT, "443", "4443"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert counter.stdout.readline().strip() == "ready"
        run("ip", "netns", "exec", lab["lan"], sys.executable, "-c", QUIC_SEND)
        got = dict(kv.split("=") for kv in counter.communicate(timeout=10)[0].split())
    finally:
        if counter.poll() is None:
            counter.kill()
            counter.wait(5)
    # no worker is bound: fail-open lets other UDP through; QUIC never reaches the queue or the far end
    assert int(got["443"]) == 0 and int(got["4443"]) >= 15, got
    assert any("--dport 443 -j DROP" in ln for ln in rules_of(lab["box"]))
