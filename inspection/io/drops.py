"""EVE `drop` events: the first packet the live path drops for a flow, as Suricata logs it.

Suricata in IPS mode logs a ``drop`` event for the first dropped packet of a
flow (its default ``flows: start``) with the packet's IP and TCP header fields.
The live worker does the same for every flow it blocks (a rule, a category, a
malicious file) and for each DNS query it answers itself, with the reason:
``rules``, ``category``, ``file`` or ``dns answered``. Later packets of a
blocked flow are dropped in the kernel (the block mark) and not logged.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["DropRecord", "drop_record"]


@dataclass(frozen=True, slots=True)
class DropRecord:
    fields: tuple[tuple[str, object], ...]

    def tree(self) -> dict:
        return dict(self.fields)


def drop_record(ip: bytes, reason: str) -> DropRecord:
    """The ``drop`` object for the IP packet `ip` (as NFQUEUE delivered it). Fields it cannot read
    (a truncated header, another protocol) are left out; `reason` and `len` are always there."""
    out: list[tuple[str, object]] = [("len", len(ip))]
    v = ip[0] >> 4 if ip else 0
    l4, proto = -1, -1
    if v == 4 and len(ip) >= 20:
        ihl = (ip[0] & 0x0F) * 4
        out += [("tos", ip[1]), ("ttl", ip[8]), ("ipid", struct.unpack_from("!H", ip, 4)[0])]
        l4, proto = ihl, ip[9]
    elif v == 6 and len(ip) >= 40:
        out += [("tc", (struct.unpack_from("!I", ip, 0)[0] >> 20) & 0xFF), ("hoplimit", ip[7]),
                ("flowlbl", struct.unpack_from("!I", ip, 0)[0] & 0xFFFFF)]
        l4, proto = 40, ip[6]
    if proto == 6 and l4 >= 0 and len(ip) >= l4 + 20:
        seq, ack, off_flags, win, _, urg = struct.unpack_from("!IIHHHH", ip, l4 + 4)
        flags = off_flags & 0xFF
        out += [("tcpseq", seq), ("tcpack", ack), ("tcpwin", win),
                ("syn", bool(flags & 0x02)), ("ack", bool(flags & 0x10)), ("psh", bool(flags & 0x08)),
                ("rst", bool(flags & 0x04)), ("urg", bool(flags & 0x20)), ("fin", bool(flags & 0x01)),
                ("tcpres", (off_flags >> 8) & 0x0F), ("tcpurg", urg)]
    elif proto == 17 and l4 >= 0 and len(ip) >= l4 + 8:
        out.append(("udplen", struct.unpack_from("!H", ip, l4 + 4)[0]))
    out.append(("reason", reason))
    return DropRecord(tuple(out))
