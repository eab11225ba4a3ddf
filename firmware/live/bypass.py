"""Packets the kernel sent to the NFQUEUE rule that never reached a queue: fail-open's uncounted passes.

With fail-open, a packet that finds its queue full is accepted before the
kernel numbers it, and `--queue-bypass` passes packets of a queue nobody is
bound to; /proc/net/netfilter/nfnetlink_queue counts neither (linux
nfnetlink_queue.c; tests/integration/test_queue_counters.py shows it). The
NFQUEUE rule's own packet counter does count them. So the box-wide bypass is
(packets the NFQUEUE rules matched) - (packets the queues numbered or dropped
as full), both as growth since the first reading. One worker (the first
queue's) measures it for the whole box, at each `stats` event.

`BypassMeter` is the pure part; `IptablesRuleCounter` reads the rule
counters (iptables-nft/ip6tables-nft, argument lists, bounded time) and is
the only I/O here.
"""
from __future__ import annotations

import shutil
import subprocess
import threading
from typing import Protocol

from inspection.io.nfqueue import KERNEL_STATS, parse_kernel_stats

INSPECT_CHAIN = "UTM-INSPECT"      # netconfig/ruleset.py: the chain whose rule is `-j NFQUEUE`
READ_TIMEOUT = 2.0     # per tool; the read runs beside the packet loop (MeterReader), never in it


class RuleCounter(Protocol):
    def packets(self) -> int | None:
        """Packets the NFQUEUE rules matched (cumulative), None if unreadable."""


def nfqueue_rule_packets(listing: str) -> int | None:
    """Sum of the packet counters of the NFQUEUE rules in `iptables -L CHAIN -v -x -n` output."""
    total, seen = 0, False
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[0].isdigit() and parts[2] == "NFQUEUE":
            total += int(parts[0])
            seen = True
    return total if seen else None


class IptablesRuleCounter:
    """The NFQUEUE rules of one chain in both families, read with iptables-nft/ip6tables-nft."""

    def __init__(self, chain: str = INSPECT_CHAIN, tools: tuple[str, ...] = ("iptables-nft", "ip6tables-nft"),
                 netns: str | None = None) -> None:
        self.chain = chain
        self.tools = tuple(t for t in tools if shutil.which(t))
        self.prefix = ["ip", "netns", "exec", netns] if netns else []   # tests read another namespace
        self.errors = 0

    def packets(self) -> int | None:
        if not self.tools:
            return None
        total = 0
        for tool in self.tools:
            try:
                r = subprocess.run([*self.prefix, tool, "-w", "-t", "filter", "-L", self.chain, "-v", "-x", "-n"],
                                   capture_output=True, text=True, timeout=READ_TIMEOUT, check=False)
            except (OSError, subprocess.TimeoutExpired):
                self.errors += 1
                return None
            n = nfqueue_rule_packets(r.stdout) if r.returncode == 0 else None
            if n is None:
                self.errors += 1
                return None
            total += n
        return total


class BypassMeter:
    """Growth of (rule matches - packets that reached a queue) since the first reading.

    Counters that went down restarted (a ruleset reload zeroes the rule's, a
    worker restart its queue's id sequence): their new value is the growth. A
    queue missing from /proc is unbound; what its rule matched meanwhile is
    bypassed (`--queue-bypass`). The balance is kept signed so that readings
    taken a few ms apart even out, and reported clamped at 0.
    """

    def __init__(self, queues: tuple[int, int]) -> None:
        self.queues = queues
        self._rule: int | None = None
        self._reached: dict[int, int] = {}
        self._balance = 0
        self.readings = 0

    def feed(self, rule_packets: int | None, proc_text: str) -> None:
        if rule_packets is None:
            return
        first, last = self.queues
        now: dict[int, int] = {}
        for q in range(first, last + 1):
            k = parse_kernel_stats(proc_text, q)
            if k is not None:
                now[q] = k["queued"] + k["queue_dropped"]
        if self._rule is not None:
            d_rule = rule_packets - self._rule if rule_packets >= self._rule else rule_packets
            d_reached = sum(v - self._reached[q] if q in self._reached and v >= self._reached[q] else v
                            for q, v in now.items())
            self._balance += d_rule - d_reached
        self._rule, self._reached = rule_packets, now
        self.readings += 1

    @property
    def bypassed(self) -> int | None:
        """Packets passed without reaching a queue since the first reading (None before any)."""
        return max(0, self._balance) if self.readings else None


def read_proc(path: str = KERNEL_STATS) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


class MeterReader:
    """Feeds a meter from a thread, so the packet loop never waits for iptables. `poll` (at each
    stats event) starts a reading unless one is still running; the stats carry the last finished one."""

    def __init__(self, meter: BypassMeter, counter: RuleCounter) -> None:
        self.meter = meter
        self.counter = counter
        self._thread: threading.Thread | None = None
        self.skipped = 0            # polls that found the previous reading still running

    def poll(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.skipped += 1
            return
        self._thread = threading.Thread(target=self._read, name="bypass-meter", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self.meter.feed(self.counter.packets(), read_proc())

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
