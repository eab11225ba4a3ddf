"""The testbed's box running `utm run`, and office devices fetching through it (root, testbed up).

Shared by the end-to-end tests (tests/integration/test_enforce_testbed.py) and
`./build.sh demo` (tests/sim/demo.py). The judgement sources are tiny and made
here: a UT1-layout tree listing phish.example.test as phishing compiled into a
category database, a hash list with EICAR's SHA-256 and a YARA rule for EICAR.
Argument lists only; every wait is bounded.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.sim import testbed
from tests.sim.testbed_files import EICAR

ROOT = Path(__file__).resolve().parents[2]
BOX = testbed.BOX
QUEUE = 0      # the testbed's netconfig: [inspection] queue = 0, workers = 1 (marks 0x1 bypass, 0x2 block)
EICAR_YARA = """rule eicar_test_file {
  meta: description = "EICAR anti-virus test file"
  strings: $a = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
  condition: $a
}
"""


def make_judges(folder: Path, phishing: tuple[str, ...] = ("phish.example.test",)) -> list[str]:
    """Write the judgement sources into `folder`; returns the `utm run` options naming them."""
    from signatures.categories.compile import compile_lists
    from signatures.categories.db import encode, write_db
    lists = folder / "ut1" / "phishing"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "domains").write_text("# testbed: the phishing site\n" + "".join(f"{d}\n" for d in phishing))
    write_db(folder / "categories.db", encode(compile_lists(folder / "ut1")))
    (folder / "block.sha256").write_text(f"{hashlib.sha256(EICAR).hexdigest()}  eicar-test-file\n")
    (folder / "eicar.yar").write_text(EICAR_YARA)
    return ["--categories", str(folder / "categories.db"), "--hashes", str(folder / "block.sha256"),
            "--yara", str(folder / "eicar.yar")]


def queue_bound(queue: int = QUEUE) -> bool:
    """A listener is bound to the queue in the box's namespace (/proc/net/netfilter/nfnetlink_queue)."""
    r = subprocess.run(["ip", "netns", "exec", BOX, "cat", "/proc/net/netfilter/nfnetlink_queue"],
                       capture_output=True, text=True, timeout=5)
    return any(line.split()[:1] == [str(queue)] for line in r.stdout.splitlines())


class LiveBox:
    """`utm run` in the box's namespace; `stop` (SIGTERM) or `kill` (SIGKILL) it."""

    def __init__(self, logdir: Path, args: list[str]) -> None:
        self.logdir = logdir
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> "LiveBox":
        self.logdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        log = open(self.logdir / "utm-run.log", "ab")
        self.proc = subprocess.Popen(["ip", "netns", "exec", BOX, sys.executable, "-m", "firmware.cli.main", "run",
                                      "--queue", str(QUEUE), "-l", str(self.logdir), "--stats-every", "2",
                                      *self.args], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not queue_bound():
            if self.proc.poll() is not None:
                raise RuntimeError(f"utm run exited {self.proc.returncode}: "
                                   + (self.logdir / "utm-run.log").read_text()[-500:])
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("utm run did not bind its queue in time")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            return
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)

    def kill(self) -> None:
        """SIGKILL the supervisor only: its workers die with it (PR_SET_PDEATHSIG)."""
        p = self.proc
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)   # `ip netns exec` execs: this pid is `utm run` itself
            p.wait(5)

    def events(self) -> list[dict]:
        out = []
        for f in sorted(self.logdir.glob("eve.q*.json")):
            for line in f.read_text(errors="replace").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass   # a line being written
        return out

    def wait_for(self, pred, timeout: float = 8.0) -> list[dict]:
        """Events once one satisfies `pred` (EVE is flushed about every second)."""
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events()
            if any(pred(e) for e in evs) or time.monotonic() > deadline:
                return evs
            time.sleep(0.3)


@dataclass(frozen=True, slots=True)
class Fetch:
    exit: int          # curl's exit status: 0 complete; 56 reset while receiving; 18 short; 35 TLS failed
    status: int        # HTTP status (0: no response)
    size: int
    sha256: str
    body: bytes
    seconds: float


def fetch(ns: str, url: str, *opts: str, timeout: float = 20.0) -> Fetch:
    """One download with curl from device namespace `ns` (no retries, bounded)."""
    out = testbed.RUN / f"fetch-{ns}-{os.getpid()}.bin"
    t0 = time.monotonic()
    r = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-k", "--max-time", str(int(timeout)),
                        "-o", str(out), "-w", "%{http_code}", *opts, url],
                       capture_output=True, text=True, timeout=timeout + 5)
    secs = time.monotonic() - t0
    body = out.read_bytes() if out.exists() else b""
    out.unlink(missing_ok=True)
    status = int(r.stdout.strip() or 0) if r.stdout.strip().isdigit() else 0
    return Fetch(r.returncode, status, len(body), hashlib.sha256(body).hexdigest(), body, secs)


def alerts(evs: list[dict]) -> list[dict]:
    return [e for e in evs if e.get("event_type") == "alert"]
