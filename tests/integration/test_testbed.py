"""The testbed end to end (root, dnsmasq): up, downloads through the box's bridge over IPv4, IPv6 and TLS, down.

Skipped when a testbed is already up (it belongs to someone: never tear it down).
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import pytest

from tests.integration.netns import need_root_netns
from tests.sim import testbed

FETCH = ("import hashlib, ssl, sys, urllib.request\n"
         "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n"
         "data = urllib.request.urlopen(sys.argv[1], context=ctx, timeout=10).read()\n"
         "print(len(data), hashlib.sha256(data).hexdigest())\n")
CONNECT = ("import socket, sys\n"
           "s = socket.create_connection((sys.argv[1], 80), timeout=5)\n"
           "s.sendall(b'GET /clean.bin HTTP/1.0\\r\\nHost: www.example.test\\r\\n\\r\\n')\n"
           "print(sum(iter(lambda: len(s.recv(65536)), 0)))\n")


@pytest.fixture(scope="module")
def bed():
    need_root_netns()
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed (./build.sh testbed up installs dnsmasq-base)")
    if testbed.namespaces() & set(testbed.NAMESPACES):
        pytest.skip("a testbed is already up; not touching it")
    try:
        assert testbed.up() == 0
        yield
    finally:
        testbed.down()


def fetch(ns: str, url: str) -> tuple[int, str]:
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", FETCH, url], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    n, digest = r.stdout.split()
    return int(n), digest


@pytest.mark.slow
def test_devices_download_through_the_box(bed):
    want = hashlib.sha256((testbed.RUN / "www" / "www.example.test" / "clean.bin").read_bytes()).hexdigest()
    assert fetch("utmtb-lan", "http://www.example.test/clean.bin") == (10 * 1024 * 1024, want)
    assert fetch("utmtb-ssid1", "https://www.example.test/clean.bin") == (10 * 1024 * 1024, want)
    eicar = fetch("utmtb-ssid2", "http://www.example.test/eicar.com")
    assert eicar == (68, hashlib.sha256(testbed.files.EICAR).hexdigest())   # no engine running: not blocked yet
    assert fetch("utmtb-lan", "http://phish.example.test/")[0] > 0
    assert fetch("utmtb-lan", "http://files.example.test/macro.docm")[0] > 0
    for addr in ("192.0.2.80", "2001:db8:1::80"):   # both families, explicitly
        r = subprocess.run(["ip", "netns", "exec", "utmtb-ssid1", sys.executable, "-c", CONNECT, addr],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and int(r.stdout) > 10 * 1024 * 1024, (addr, r.stderr)


@pytest.mark.slow
def test_box_got_its_address_and_the_devices_slaac(bed):
    assert testbed._has_v4("utmtb-box", "br0")
    assert testbed._v6("utmtb-lan", "eth0")
    saved = subprocess.run(["ip", "netns", "exec", "utmtb-box", "iptables-nft-save", "-t", "filter"],
                           capture_output=True, text=True, timeout=10).stdout
    assert "--physdev-in lan0 --physdev-out wan0" in saved


def test_up_twice_is_harmless(bed):
    assert testbed.up() == 0
