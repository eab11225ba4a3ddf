"""Render the netfilter side as one iptables-restore text per family (pure).

The appliance owns the `filter` and `mangle` tables of its network namespace:
each apply replaces both in one iptables-restore transaction (no --noflush),
so a half-applied ruleset never exists. Tables not named here (nat, raw,
security) are never touched. Our rules live in UTM-* chains; the built-in
chains only jump to them.

The contract with the live engine (documented in docs/netconfig.md):
  * packet/conn mark bit BYPASS_MARK (0x1): the engine's verdict sets it on a
    packet of a flow it has finished with; mangle POSTROUTING saves it to the
    connmark and every later packet of the flow is accepted before the queue.
  * packet/conn mark bit BLOCK_MARK (0x2): the engine re-injects a packet with
    NF_REPEAT and this mark (or sets the conntrack mark itself); FORWARD saves
    it to the connmark and drops; every later packet of the flow is dropped in
    the kernel.
  * queues inspection.queue .. queue+workers-1, balanced by --queue-balance.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum

from netconfig.schema import FailMode, NetConfig

BYPASS_MARK = 0x1
BLOCK_MARK = 0x2
TAG = "utm-netconfig"           # comment carried by the FORWARD jump: TAG + digest of the ruleset
OWNED_TABLES = ("filter", "mangle")
FILTER_CHAINS = ("UTM-FWD", "UTM-ISOLATED", "UTM-INSPECT", "UTM-OUT")
MANGLE_CHAINS = ("UTM-POST",)


class Family(Enum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"


@dataclass(frozen=True, slots=True)
class Ruleset:
    family: Family
    text: str                            # complete iptables-restore input
    digest: str                          # first 16 hex of sha256 over the rules, carried in a comment
    rule_counts: tuple[tuple[str, int], ...]   # (chain, number of -A rules) for verify


def render(cfg: NetConfig, family: Family) -> Ruleset:
    """The complete ruleset for one family; same config in, byte-identical text out."""
    v6 = family is Family.IPV6
    fwd: list[str] = [
        f"-m mark --mark {BLOCK_MARK:#x}/{BLOCK_MARK:#x} -j CONNMARK --save-mark --mask {BLOCK_MARK:#x}",
        f"-m connmark --mark {BLOCK_MARK:#x}/{BLOCK_MARK:#x} -j DROP",
    ]
    fwd += [f"-m mac --mac-source {mac} -j UTM-ISOLATED" for mac in cfg.isolated]
    fwd.append(f"-m connmark --mark {BYPASS_MARK:#x}/{BYPASS_MARK:#x} -j ACCEPT")
    for mac in cfg.exclusions.devices:
        fwd.append(f"-m mac --mac-source {mac} -j CONNMARK --set-xmark {BYPASS_MARK:#x}/{BYPASS_MARK:#x}")
        fwd.append(f"-m mac --mac-source {mac} -j ACCEPT")
    if v6:   # neighbour discovery and router advertisements are not worth a trip to userspace
        fwd += [f"-p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT" for t in (133, 134, 135, 136)]
    ports = [name for _, name in cfg.ports.by_role()]
    for src in ports:
        for dst in ports:
            if src != dst:
                fwd.append(f"-m physdev --physdev-in {src} --physdev-out {dst} --physdev-is-bridged "
                           f"-j UTM-INSPECT")

    isolated = (["-p udp -m udp --sport 546 --dport 547 -j ACCEPT"] if v6 else
                ["-p udp -m udp --sport 68 --dport 67 -j ACCEPT"]) + ["-j DROP"]

    first, last = cfg.inspection.queues
    target = (f"NFQUEUE --queue-balance {first}:{last}" if last > first else f"NFQUEUE --queue-num {first}")
    if cfg.inspection.fail_mode is FailMode.OPEN:
        target += " --queue-bypass"
    # QUIC is not inspected: dropped, a browser falls back to TCP, where the engine reads the SNI
    inspect = ["-p udp -m udp --dport 443 -j DROP"] if cfg.inspection.block_quic else []
    inspect += [
        f"-m connbytes --connbytes 0:{cfg.inspection.ceiling} --connbytes-dir both --connbytes-mode bytes "
        f"-j {target}",
        "-j ACCEPT",
    ]

    out = [f"-p udp -m udp --dport {p} -j ACCEPT" for p in ((547, 53, 123) if v6 else (67, 53, 123))]
    out += [f"-p tcp -m tcp --dport {p} -j ACCEPT" for p in (53, 80, 443, 8443)]
    out.append("-p ipv6-icmp -j ACCEPT" if v6 else "-p icmp -j ACCEPT")

    post = [f"-m mark --mark {BYPASS_MARK:#x}/{BYPASS_MARK:#x} -j CONNMARK --save-mark --mask {BYPASS_MARK:#x}"]

    chains = {"UTM-FWD": fwd, "UTM-ISOLATED": isolated, "UTM-INSPECT": inspect, "UTM-OUT": out,
              "UTM-POST": post}
    body = "\n".join(f"{c} {r}" for c, rules in chains.items() for r in rules)
    digest = hashlib.sha256(f"{family.value}\n{body}".encode()).hexdigest()[:16]

    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f":{c} - [0:0]" for c in FILTER_CHAINS]
    lines.append(f'-A FORWARD -m comment --comment "{TAG} {digest}" -j UTM-FWD')
    lines.append("-A OUTPUT -j UTM-OUT")
    for c in FILTER_CHAINS:
        lines += [f"-A {c} {r}" for r in chains[c]]
    lines += ["COMMIT", "*mangle"]
    lines += [f":{c} ACCEPT [0:0]" for c in ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")]
    lines += [f":{c} - [0:0]" for c in MANGLE_CHAINS]
    lines.append("-A POSTROUTING -j UTM-POST")
    lines += [f"-A UTM-POST {r}" for r in post]
    lines.append("COMMIT")
    counts = tuple((c, len(chains[c])) for c in FILTER_CHAINS + MANGLE_CHAINS)
    header = f"# {TAG} {family.value} ruleset {digest}; generated, do not edit\n"
    return Ruleset(family=family, text=header + "\n".join(lines) + "\n", digest=digest, rule_counts=counts)


def parse_saved(text: str) -> tuple[str | None, tuple[tuple[str, int], ...]]:
    """From iptables-save output of our tables: the digest our FORWARD jump carries and the rules per UTM chain.

    Only what verify and plan need; iptables-nft-save normalises rule text, so
    rules are counted rather than compared word for word.
    """
    digest = None
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith(":UTM-"):
            counts.setdefault(line[1:].split()[0], 0)
        elif line.startswith("-A "):
            parts = line.split()
            chain = parts[1]
            if chain.startswith("UTM-"):
                counts[chain] = counts.get(chain, 0) + 1
            elif chain == "FORWARD" and f'"{TAG}' in line and "-j UTM-FWD" in line:
                i = parts.index(f'"{TAG}')
                digest = parts[i + 1].rstrip('"') if i + 1 < len(parts) else None
    return digest, tuple(sorted(counts.items()))
