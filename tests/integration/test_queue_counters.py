"""What the kernel counts when a fail-open queue is full: the fact docs/live.md and inspected_share rest on.

Root only (skipped otherwise). A three-namespace bridge with a random suffix
(tests/sim/bridgebed.py). A queue of 16 packets is bound by a process that
never reads it; 60 UDP datagrams cross the bridge. With fail-open the kernel
numbers the first 16 (`queued`, `waiting`) and passes the other 44 with no
id and no counter in /proc/net/netfilter/nfnetlink_queue; only the NFQUEUE
rule's own packet counter sees all 60, and firmware.live.bypass turns the
difference into the 44 bypassed. Bounded: 60 packets, a 5 s receive.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from firmware.live.bypass import BypassMeter, IptablesRuleCounter
from inspection.io.nfqueue import parse_kernel_stats
from tests.sim.bridgebed import SERVER_IP, BridgeBed, missing_reason, run

pytestmark = [pytest.mark.netns]
_why = missing_reason()
if _why:
    pytestmark.append(pytest.mark.skip(reason=_why))

QUEUE, MAXLEN, SENT, PORT = 23, 16, 60, 9999

HOLDER = f"""
import sys, time
from inspection.io.nfqueue import NfQueue
q = NfQueue({QUEUE}, maxlen={MAXLEN})      # default flags: fail-open
print("bound", flush=True)
time.sleep(30)                              # never reads: the queue fills
"""
RECEIVER = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", {PORT}))
s.settimeout(5)
n = 0
print("ready", flush=True)
try:
    while True:
        s.recv(100)
        n += 1
except OSError:
    pass
print(n, flush=True)
"""
SENDER = f"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range({SENT}):
    s.sendto(b"x%d" % i, ("{SERVER_IP}", {PORT}))
    time.sleep(0.002)
"""


def test_fail_open_passes_of_a_full_queue_get_no_id_and_no_counter():
    root = str(Path(__file__).resolve().parents[2])
    bed = BridgeBed(queue=QUEUE)
    bed.up()
    try:
        env = {"PYTHONPATH": root, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        holder = bed.spawn(bed.box, [sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, env=env, text=True)
        assert holder.stdout.readline().strip() == "bound"
        recv = bed.spawn(bed.server, [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
        assert recv.stdout.readline().strip() == "ready"
        meter, rules = BypassMeter((QUEUE, QUEUE)), IptablesRuleCounter("FORWARD", netns=bed.box)
        proc = lambda: run("cat", "/proc/net/netfilter/nfnetlink_queue", ns=bed.box).stdout   # noqa: E731
        meter.feed(rules.packets(), proc())                                    # baseline: nothing sent yet
        run(sys.executable, "-c", SENDER, ns=bed.client)
        got = int(recv.stdout.readline().strip() or 0)
        k = parse_kernel_stats(run("cat", "/proc/net/netfilter/nfnetlink_queue", ns=bed.box).stdout, QUEUE)
        rule = [int(ln.split()[0]) for ln in bed.counters().splitlines() if "NFQUEUE" in ln]   # tcp, udp
        meter.feed(rules.packets(), proc())
        holder.kill()
    finally:
        bed.close()
    assert k is not None
    assert k["queued"] == MAXLEN and k["waiting"] == MAXLEN          # numbered: only what fitted
    assert k["queue_dropped"] == 0 and k["user_dropped"] == 0        # the passes are counted nowhere here
    assert got == SENT - MAXLEN                                      # ... yet they passed uninspected
    assert sum(rule) == SENT                                         # the rules' counters saw every packet
    assert meter.bypassed == SENT - MAXLEN                           # firmware.live.bypass measures the passes
