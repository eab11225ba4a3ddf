"""A bound queue switches between fail open and fail closed in place (`NfQueue.set_fail_open`).

Root only. The bridge bed of tests/sim/bridgebed.py; a small program in the box
binds the queue with room for 16 packets and never gives a verdict, so the queue
stays full. UDP datagrams from the client then show the mode: fail open passes
them (the server counts them), fail closed drops them. The switch happens on the
same bound queue, back and forth. Bounded: 3 x 200 datagrams.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.sim.bridgebed import CLIENT_IP, SERVER_IP, BridgeBed, missing_reason, ruleset

pytestmark = [pytest.mark.netns, pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))]

ROOT = Path(__file__).resolve().parents[2]
QUEUE, SENT = 31, 200
HOLDER = f"""
import sys
from inspection.io.nfqueue import NfQueue
q = NfQueue({QUEUE}, maxlen=16)
print("bound", flush=True)
for line in sys.stdin:
    q.set_fail_open(line.strip() == "open")
    print(line.strip(), flush=True)
"""
COUNTER = f"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{SERVER_IP}", 9999))
s.settimeout(0.5)
print("ready", flush=True)
n = 0
for line in sys.stdin:
    while True:
        try:
            s.recv(64)
            n += 1
        except TimeoutError:
            break
    print(n, flush=True)
"""
SENDER = f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{CLIENT_IP}", 0))
for i in range({SENT}):
    s.sendto(b"x", ("{SERVER_IP}", 9999))
"""


def test_fail_mode_switches_on_the_bound_queue():
    bed = BridgeBed(queue=QUEUE)
    try:
        bed.up(ruleset(QUEUE, bypass=False))
        holder = bed.spawn(bed.box, [sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        counter = bed.spawn(bed.server, [sys.executable, "-c", COUNTER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "bound"
        assert counter.stdout.readline().strip() == "ready"

        def passed_after_sending() -> int:
            subprocess.run(["ip", "netns", "exec", bed.client, sys.executable, "-c", SENDER], check=True, timeout=20)
            counter.stdin.write("count\n")
            counter.stdin.flush()
            return int(counter.stdout.readline())

        def switch(mode: str) -> None:
            holder.stdin.write(mode + "\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == mode

        first = passed_after_sending()               # fail open: 16 wait in the queue, the rest pass
        assert first >= SENT - 16 - 4, first
        switch("closed")
        assert passed_after_sending() == first       # the full queue now drops every one
        switch("open")
        assert passed_after_sending() >= first + SENT - 4
        assert holder.poll() is None                 # one process, one bind throughout
    finally:
        bed.close()
