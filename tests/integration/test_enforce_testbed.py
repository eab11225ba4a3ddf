"""The appliance at work in the testbed (root, dnsmasq): `utm run` in the box enforces URL
categories and file verdicts on the office's traffic.

The testbed is brought up once for the module and taken down afterwards; when one is
already up (it belongs to someone) the module is skipped. Every fetch and wait is bounded.
"""
from __future__ import annotations

import hashlib
import ipaddress
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.testbed_fixtures import RESET_OR_SHORT, bed, box  # noqa: F401 (fixtures)
from tests.sim import livebox as lb
from tests.sim import testbed
from tests.sim.testbed_files import EICAR

pytestmark = pytest.mark.slow


def clean_digest() -> str:
    return hashlib.sha256((testbed.RUN / "www" / "www.example.test" / "clean.bin").read_bytes()).hexdigest()


def test_a_clean_download_arrives_byte_identical(box):
    for fam in ("-4", "-6"):
        f = lb.fetch("utmtb-lan", "http://www.example.test/clean.bin", fam)
        assert (f.exit, f.status, f.size, f.sha256) == (0, 200, 10 * 1024 * 1024, clean_digest()), fam
    evs = box.wait_for(lambda e: e.get("event_type") == "fileinfo" and e["fileinfo"]["size"] == 10 * 1024 * 1024)
    verdicts = {e["fileinfo"]["verdict"]["verdict"] for e in evs
                if e.get("event_type") == "fileinfo" and e["fileinfo"]["size"] == 10 * 1024 * 1024}
    assert verdicts == {"clean"}


@pytest.mark.parametrize("ns,url,fam", [
    ("utmtb-lan", "http://www.example.test/eicar.com", "-4"),
    ("utmtb-ssid1", "http://www.example.test/eicar.com", "-6"),     # IPv6 the same as IPv4
    ("utmtb-ssid2", "http://files.example.test/eicar.zip", "-4"),
    ("utmtb-lan", "http://www.example.test/eicar-close.com", "-4"),      # no length: ends with the FIN
    ("utmtb-ssid1", "http://www.example.test/eicar-close.com", "-6"),
    ("utmtb-lan", "http://www.example.test/eicar-chunked.com", "-4"),    # chunked: ends with the last chunk
])
def test_malicious_downloads_never_complete_and_alert(box, ns, url, fam):
    name = url.rsplit("/", 1)[1]
    f = lb.fetch(ns, url, fam, timeout=10)
    assert f.exit in RESET_OR_SHORT, f
    # without a length the body's end (the server's FIN, the last chunk) may come in a segment of
    # its own: the box held the data segment before it, and dropped both (inspection/io/holds.py)
    assert f.sha256 != hashlib.sha256(EICAR).hexdigest() and EICAR not in f.body, f
    evs = box.wait_for(lambda e: e.get("event_type") == "alert" and name in e["alert"]["signature"])
    hits = [a for a in lb.alerts(evs) if name in a["alert"]["signature"]]
    assert hits and {a["alert"]["action"] for a in hits} == {"blocked"}
    files = [e for e in evs if e.get("event_type") == "fileinfo" and e["fileinfo"]["filename"].endswith(name)]
    assert files and files[-1]["fileinfo"]["verdict"]["verdict"] == "malicious"


@pytest.mark.parametrize("shape", ["close", "chunked"])
def test_a_clean_download_without_a_length_arrives_byte_identical(box, shape):
    # the server's FIN (close-delimited) or the last chunk is held while the file is judged,
    # then released: the client gets all of it and a clean end
    f = lb.fetch("utmtb-lan", f"http://www.example.test/clean-{shape}.bin", "-4")
    assert (f.exit, f.status, f.size, f.sha256) == (0, 200, 10 * 1024 * 1024, clean_digest()), f
    evs = box.wait_for(lambda e: e.get("event_type") == "fileinfo"
                       and e["fileinfo"]["filename"].endswith(f"clean-{shape}.bin"))
    [fi] = [e["fileinfo"] for e in evs if e.get("event_type") == "fileinfo"
            and e["fileinfo"]["filename"].endswith(f"clean-{shape}.bin")]
    assert (fi["verdict"]["verdict"], fi["state"], fi["size"]) == ("clean", "CLOSED", 10 * 1024 * 1024)


def lingering(ns: str, port: str) -> list[str]:
    """TCP sockets of `ns` towards `port` still closing (their FIN not acknowledged)."""
    r = testbed.in_ns(ns, "ss", "-Htan", "state", "last-ack", "state", "fin-wait-1", "state", "closing",
                      f"( dport = :{port} )", check=False)
    return [line for line in r.stdout.splitlines() if line.strip()]


def test_the_block_page_closes_the_clients_connection_cleanly(box):
    f = lb.fetch("utmtb-lan", "http://phish.example.test/login", "-4")
    assert (f.exit, f.status) == (0, 403), f
    # the client's FIN after the page is acknowledged by the box: no socket is left closing
    # (before, it retransmitted its FIN until the orphan timeout). Bounded wait, then the check.
    deadline = time.monotonic() + 3
    while lingering("utmtb-lan", "80") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lingering("utmtb-lan", "80") == []


def test_the_phishing_name_gets_the_block_page_over_http(box):
    f = lb.fetch("utmtb-lan", "http://phish.example.test/", "-4")
    assert f.status == 403 and b"phish.example.test" in f.body and "ブロック".encode() in f.body
    assert b"phishing" in f.body and b"This site is blocked" in f.body
    evs = box.wait_for(lambda e: e.get("event_type") == "alert" and "phish.example.test/" in e["alert"]["signature"])
    assert any(a["alert"]["action"] == "blocked" and a["alert"]["category"] == "phishing" for a in lb.alerts(evs))


def test_the_phishing_name_is_reset_over_https(box):
    t0 = time.monotonic()
    f = lb.fetch("utmtb-ssid1", "https://phish.example.test/", "-6", timeout=10)
    assert f.exit in RESET_OR_SHORT and f.status == 0 and time.monotonic() - t0 < 5, f


def test_lan_to_ssid_traffic_is_inspected(box, tmp_path):
    addr = testbed._has_v4("utmtb-ssid1", "eth0")
    assert addr, "ssid1 has no address"
    (tmp_path / "eicar.com").write_bytes(EICAR)
    (tmp_path / "ok.txt").write_bytes(b"hello from ssid1\n")
    srv = subprocess.Popen(["ip", "netns", "exec", "utmtb-ssid1", sys.executable, "-m", "http.server", "8080",
                            "--bind", "0.0.0.0", "--directory", str(tmp_path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        host = addr.split("/")[0]
        deadline = time.monotonic() + 10
        while lb.fetch("utmtb-lan", f"http://{host}:8080/ok.txt", timeout=2).status != 200:
            assert time.monotonic() < deadline, "the ssid1 server did not answer"
            time.sleep(0.3)
        f = lb.fetch("utmtb-lan", f"http://{host}:8080/eicar.com", timeout=10)
        assert f.exit in RESET_OR_SHORT, f
        def mine(e):   # the file alert of this flow (ssid1 also has DNS alerts from other tests)
            return (e.get("event_type") == "alert" and e.get("src_ip") == host
                    and e["alert"]["signature"].startswith("Malicious file"))
        evs = box.wait_for(mine)
        hits = [a for a in evs if mine(a)]
        assert hits and hits[0]["alert"]["action"] == "blocked", [
            (a.get("src_ip"), a.get("dest_ip"), a["alert"]["signature"]) for a in lb.alerts(evs)]
    finally:
        os.killpg(srv.pid, signal.SIGTERM)
        srv.wait(5)


def test_sighup_reloads_the_category_database(bed, box):
    folder, _ = bed

    def reload_until(status: int) -> bool:
        r = subprocess.run([sys.executable, "-m", "firmware.cli.main", "reload", "-l", str(box.logdir)],
                           capture_output=True, text=True, timeout=10,
                           env={**os.environ, "PYTHONPATH": str(lb.ROOT)})
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            if lb.fetch("utmtb-lan", "http://phish.example.test/", "-4", timeout=5).status == status:
                return True
            time.sleep(0.3)
        return False
    try:
        lb.make_judges(folder, phishing=("other.example.test",))
        assert reload_until(200), "the new database (phish.example.test not listed) was not taken"
    finally:
        lb.make_judges(folder)
        assert reload_until(403), "the old database was not taken back"


def test_detect_only_blocks_nothing_and_still_alerts(bed, box):
    box.stop()
    folder, args = bed
    quiet = lb.LiveBox(folder / "eve-detect", [*args, "--detect-only", "*"]).start()
    try:
        f = lb.fetch("utmtb-lan", "http://www.example.test/eicar.com", "-4")
        assert (f.exit, f.sha256) == (0, hashlib.sha256(EICAR).hexdigest())
        f = lb.fetch("utmtb-lan", "http://phish.example.test/", "-4")
        assert f.exit == 0 and f.status == 200 and b"Example Bank" in f.body
        evs = quiet.wait_for(lambda e: e.get("event_type") == "alert" and "phish" in e["alert"]["signature"])
        actions = {(a["alert"]["category"], a["alert"]["action"]) for a in lb.alerts(evs)}
        assert ("malware", "allowed") in actions and ("phishing", "allowed") in actions
        assert not any(a["alert"]["action"] == "blocked" for a in lb.alerts(evs))
    finally:
        quiet.stop()


TCP_DNS_QUERY = """
import socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
q = struct.pack("!6H", 9, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) \\
    + b"\\0" + struct.pack("!HH", 1, 1)
with socket.create_connection((server, 53), timeout=5) as s:
    s.sendall(struct.pack("!H", len(q)) + q)
    buf = b""
    while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
msg = buf[2:]
print(".".join(map(str, msg[-4:])) if struct.unpack("!H", msg[6:8])[0] else "none")
"""


def test_dns_block_answers_point_a_blocked_name_at_the_block_page(bed, box):
    # the box answers queries for phish.example.test with an address nothing in the office or
    # beyond uses (documentation range, off-link: routed through the router, so bridged), and
    # answers the handshake there itself: the request names the blocked host and gets the page
    box.stop()
    folder, args = bed
    block4, block6 = "198.51.100.7", "2001:db8:ff::7"
    # off-link, so sent to the router: over IPv4 by the DHCP default route; over IPv6 the default
    # route comes with a router advertisement, which may not have come yet, so the route is given
    route6 = ["ip", "-6", "route", "replace", "2001:db8:ff::/64", "via", testbed.ROUTER6, "dev", "eth0"]
    testbed.in_ns("utmtb-lan", *route6)
    dnsbox = lb.LiveBox(folder / "eve-dns", [*args, "--dns-block-answer", f"{block4},{block6}"]).start()
    try:
        for fam, addr in (("-4", block4), ("-6", block6)):
            r = testbed.in_ns("utmtb-lan", "curl", "-s", "-o", "/dev/null", "--max-time", "10", "-w",
                              "%{http_code} %{remote_ip}", fam, "http://phish.example.test/", check=False)
            assert r.stdout.split() == ["403", addr], (fam, r.stdout, r.stderr)
        # DNS over TCP: answered in the stream with the block address, the connection then closed
        r = testbed.in_ns("utmtb-lan", sys.executable, "-c", TCP_DNS_QUERY, testbed.ROUTER4, "phish.example.test",
                          check=False)
        assert r.stdout.split() == [block4], (r.stdout, r.stderr)
        r = testbed.in_ns("utmtb-lan", sys.executable, "-c", TCP_DNS_QUERY, testbed.ROUTER4, "www.example.test",
                          check=False)
        assert r.stdout.split() == [testbed.HOST_ADDRS["www.example.test"][0]], (r.stdout, r.stderr)
        # another port there is refused at once (a reset, curl exit 7), not left to time out
        r = testbed.in_ns("utmtb-lan", "curl", "-s", "--max-time", "5", "-4", f"http://{block4}:8080/",
                          check=False)
        assert r.returncode == 7, (r.returncode, r.stderr)
        f = lb.fetch("utmtb-lan", "http://www.example.test/", "-4")   # other names resolve as ever
        assert (f.exit, f.status) == (0, 200)
        evs = dnsbox.wait_for(lambda e: e.get("event_type") == "alert" and e.get("dns") is not None)
        dns_alerts = [a for a in lb.alerts(evs) if a.get("dns") is not None]
        assert dns_alerts and {a["alert"]["action"] for a in dns_alerts} == {"blocked"}
        assert any(e.get("event_type") == "dns" and e["dns"].get("queries", [{}])[0].get("rrname")
                   == "phish.example.test" for e in evs)
        boxed = {ipaddress.ip_address(block4), ipaddress.ip_address(block6)}
        http = [a for a in lb.alerts(evs) if a.get("http") is not None and ipaddress.ip_address(a["dest_ip"]) in boxed]
        assert {a["alert"]["action"] for a in http} == {"blocked"} and len(http) >= 2
    finally:
        dnsbox.stop()
        testbed.in_ns("utmtb-lan", "ip", "-6", "route", "del", "2001:db8:ff::/64", check=False)


def test_killing_utm_run_keeps_the_office_online(bed):
    folder, args = bed
    b = lb.LiveBox(folder / "eve-kill", args).start()
    b.kill()
    deadline = time.monotonic() + 5
    while lb.queue_bound() and time.monotonic() < deadline:   # the workers die with the supervisor
        time.sleep(0.1)
    assert not lb.queue_bound()
    f = lb.fetch("utmtb-lan", "http://www.example.test/clean.bin", "-4", timeout=15)
    assert (f.exit, f.size, f.sha256) == (0, 10 * 1024 * 1024, clean_digest())
