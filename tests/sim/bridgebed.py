"""A three-namespace bridge for live-path tests: client <-> [bridge + queue] <-> server.

Everything it creates carries a random suffix and is removed by `close()`
(namespaces by name, processes by PID), also when setup fails half-way.
Addresses are from 192.0.2.0/24 (documentation range). Root only.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLIENT_IP, SERVER_IP = "192.0.2.10", "192.0.2.20"
CLIENT_IP6, SERVER_IP6 = "2001:db8::10", "2001:db8::20"
IPT_RESTORE = "iptables-nft-restore" if shutil.which("iptables-nft-restore") else "iptables-restore"
IP6T_RESTORE = "ip6tables-nft-restore" if shutil.which("ip6tables-nft-restore") else "ip6tables-restore"


def ruleset(queue: int, bypass_mark: int = 0x1, block_mark: int = 0x2, *, bypass: bool = True,
            connbytes: int | None = None, balance: int = 1) -> str:
    """The rule shapes of docs/live.md: connmark bypass first, blocked flows dropped,
    then bridged TCP/UDP to the queue; marks set by verdicts saved to the connmark."""
    qb = " --queue-bypass" if bypass else ""
    target = f"--queue-num {queue}" if balance == 1 else f"--queue-balance {queue}:{queue + balance - 1}"
    cb = f" -m connbytes --connbytes 0:{connbytes} --connbytes-dir both --connbytes-mode bytes" if connbytes else ""
    both = bypass_mark | block_mark
    return "\n".join([
        "*mangle",
        ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]",
        ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]",
        f"-A POSTROUTING -m mark --mark {bypass_mark:#x}/{bypass_mark:#x} -j CONNMARK --save-mark "
        f"--nfmask {both:#x} --ctmask {both:#x}",
        "COMMIT",
        "*filter",
        ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
        # as netconfig's UTM-FWD: a packet the worker repeats with the block mark is saved and dropped
        f"-A FORWARD -m mark --mark {block_mark:#x}/{block_mark:#x} -j CONNMARK --save-mark "
        f"--nfmask {block_mark:#x} --ctmask {block_mark:#x}",
        f"-A FORWARD -m connmark --mark {block_mark:#x}/{block_mark:#x} -j DROP",
        f"-A FORWARD -m connmark --mark {bypass_mark:#x}/{bypass_mark:#x} -j ACCEPT",
        f"-A FORWARD -m physdev --physdev-is-bridged -p tcp{cb} -j NFQUEUE {target}{qb}",
        f"-A FORWARD -m physdev --physdev-is-bridged -p udp{cb} -j NFQUEUE {target}{qb}",
        "COMMIT", ""])


def run(*cmd: str, ns: str | None = None, check: bool = True, input: str | None = None,
        timeout: float = 20) -> subprocess.CompletedProcess:
    argv = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    return subprocess.run(argv, check=check, capture_output=True, text=True, input=input, timeout=timeout)


def missing_reason() -> str | None:
    """Why the bed cannot be built here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", IPT_RESTORE, IP6T_RESTORE):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


@dataclass
class BridgeBed:
    queue: int = 0
    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    procs: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client, self.box, self.server = (f"utmlv-{r}-{self.suffix}" for r in ("c", "m", "s"))
        self.made: list[str] = []

    # -- setup ---------------------------------------------------------------------------------
    def up(self, rules: str | None = None) -> "BridgeBed":
        try:
            for ns in (self.client, self.box, self.server):
                run("ip", "netns", "add", ns)
                self.made.append(ns)
                run("ip", "link", "set", "lo", "up", ns=ns)
            for end, port in ((self.client, "pc"), (self.server, "ps")):
                run("ip", "link", "add", "eth0", "netns", end, "type", "veth", "peer", "name", port,
                    "netns", self.box)
            run("ip", "link", "add", "br0", "type", "bridge", ns=self.box)
            for port in ("pc", "ps"):
                run("ip", "link", "set", port, "master", "br0", ns=self.box)
                run("ip", "link", "set", port, "up", ns=self.box)
            run("ip", "link", "set", "br0", "up", ns=self.box)
            for ns, ip, ip6 in ((self.client, CLIENT_IP, CLIENT_IP6), (self.server, SERVER_IP, SERVER_IP6)):
                run("ip", "addr", "add", f"{ip}/24", "dev", "eth0", ns=ns)
                run("ip", "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad", ns=ns)
                run("ip", "link", "set", "eth0", "up", ns=ns)
            self.apply_rules(rules if rules is not None else ruleset(self.queue))
            self.wait_forwarding()
        except BaseException:
            self.close()
            raise
        return self

    def apply_rules(self, rules: str) -> None:
        """The same ruleset for IPv4 and IPv6 (iptables-nft and ip6tables-nft)."""
        run(IPT_RESTORE, ns=self.box, input=rules)
        run(IP6T_RESTORE, ns=self.box, input=rules)

    def wait_forwarding(self, timeout: float = 5.0) -> None:
        """Until the bridge forwards (ports leave the listening state)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = run("ip", "-br", "link", "show", "master", "br0", ns=self.box, check=False)
            if r.returncode == 0 and r.stdout.count("UP") >= 2:
                return
            time.sleep(0.1)

    def ifindex(self, name: str) -> int:
        return int(run("cat", f"/sys/class/net/{name}/ifindex", ns=self.box).stdout)

    def counters(self) -> str:
        return run("iptables-nft", "-L", "FORWARD", "-v", "-n", "-x", ns=self.box).stdout

    # -- processes -----------------------------------------------------------------------------
    def spawn(self, ns: str, argv: list[str], **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        self.procs.append(p)
        return p

    def python(self, ns: str, script: str, *args: str, **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
        return self.spawn(ns, [sys.executable, script, *args], **kw)

    # -- teardown ------------------------------------------------------------------------------
    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                    p.wait(6)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self.procs.clear()
        for ns in reversed(self.made):
            run("ip", "netns", "del", ns, check=False)
        self.made.clear()


def children(pid: int) -> list[int]:
    """Direct children of `pid` (the workers of a `utm run`)."""
    out: list[int] = []
    task = Path(f"/proc/{pid}/task")
    if not task.is_dir():
        return out
    for t in task.iterdir():
        try:
            out += [int(x) for x in (t / "children").read_text().split()]
        except OSError:
            continue
    return out
