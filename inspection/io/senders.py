"""Where the live path's own frames go out (resets, block pages, DNS answers, ICMP errors).

`AfPacketSender` writes raw Ethernet frames out of a bridge port through one
AF_PACKET socket (never scapy in the data path); `FakeSender` keeps them in a
list for tests and benchmarks. Both fit `inspection.io.answers.FrameSender`.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field


@dataclass
class FakeSender:
    """Records frames instead of sending them (tests)."""

    frames: list[tuple[int, bytes]] = field(default_factory=list)

    def send(self, ifindex: int, frame: bytes) -> None:
        self.frames.append((ifindex, frame))


class AfPacketSender:
    """Raw Ethernet frames out of one interface each, through one AF_PACKET socket."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._names: dict[int, str] = {}

    def send(self, ifindex: int, frame: bytes) -> None:
        name = self._names.get(ifindex)
        if name is None:
            name = self._names[ifindex] = socket.if_indextoname(ifindex)
        self._sock.sendto(frame, (name, 0))

    def close(self) -> None:
        self._sock.close()
