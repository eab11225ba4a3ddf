"""The engine's counters as one snapshot, in the tree Suricata's `stats` event uses.

The engine keeps cheap flat counters on the packet path (one dict increment
per packet for the decoder families); `EngineCounters.tree` arranges them as
``decoder.*``, ``flow.*``, ``tcp.*``, ``defrag.*``, ``detect.*`` and
``app_layer.{flow,tx}.*`` only when a `stats` event is written.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from inspection.model import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP

LINKTYPE_NAMES = {1: "ethernet", 113: "sll", 276: "sll2", 0: "null", 108: "null", 9: "ppp", 101: "raw", 12: "raw",
                  14: "raw", 228: "raw", 229: "raw"}
_L4_NAMES = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_ICMP: "icmpv4", IPPROTO_ICMPV6: "icmpv6", 47: "gre",
             132: "sctp", 50: "esp"}


@dataclass(slots=True)
class EngineCounters:
    uptime: float
    packets: int
    bytes: int
    links: dict[int, int]
    families: dict[tuple[int, int], int]     # (ip family, ip proto) -> packets
    invalid: int
    flows: dict[int, int]                    # ip proto -> flows created
    flow_counters: dict[str, int]
    tcp: dict[str, int]
    defrag: dict[str, int]
    alerts: int
    app_flows: dict[str, int] = field(default_factory=dict)
    app_txs: dict[str, int] = field(default_factory=dict)
    app_errors: dict[str, int] = field(default_factory=dict)
    app_memcap: dict[str, int] = field(default_factory=dict)   # held, held_peak, sheds (applayer.memory)

    def tree(self) -> dict:
        decoder: dict[str, int] = {"pkts": self.packets, "bytes": self.bytes, "invalid": self.invalid,
                                   "ipv4": 0, "ipv6": 0}
        for lt, n in self.links.items():
            name = LINKTYPE_NAMES.get(lt, f"linktype_{lt}")
            decoder[name] = decoder.get(name, 0) + n
        for (fam, proto), n in self.families.items():
            if fam in (4, 6):
                decoder[f"ipv{fam}"] += n
            l4 = _L4_NAMES.get(proto)
            if l4 is not None and fam:
                decoder[l4] = decoder.get(l4, 0) + n
        flow = {"total": sum(self.flows.values()), **self.flow_counters}
        for proto, n in self.flows.items():
            flow[_L4_NAMES.get(proto, f"proto_{proto}")] = n
        return {
            "uptime": int(self.uptime),
            "decoder": decoder,
            "flow": flow,
            "tcp": dict(self.tcp),
            "defrag": dict(self.defrag),
            "detect": {"alert": self.alerts},
            "app_layer": {"flow": dict(self.app_flows), "tx": dict(self.app_txs), "error": self.app_errors,
                          "memcap": dict(self.app_memcap)},
        }
