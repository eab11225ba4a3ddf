"""The box as the block address: its answers to connections made to the DNS block answer.

With ``--dns-block-answer`` a blocked name resolves to the configured address.
Nothing has to listen there: the worker answers the handshake itself on port
80 (a SYN-ACK with a sequence number of its own, fed to the engine as if the
server had sent it), the request that follows gets the block page through the
usual category path, and a SYN to any other port gets a reset at once, so a
browser shows an error at once instead of waiting for a timeout (HTTPS to a
blocked name is reset by its SNI anyway). Nothing sent to the address is
forwarded. Pure: frames in, frames out (the live worker sends them).
"""
from __future__ import annotations

import hashlib
import ipaddress
import struct

from inspection.model import TH_ACK, TH_SYN
from inspection.policy.dnsblock import DnsBlockConfig
from inspection.policy.tcpreset import (ETH_IPV4, ETH_IPV6, ResetError, _ip, _tcp_segment, parse_tcp,
                                        receiver_mac_to, reset_frames)

__all__ = ["PAGE_PORTS", "BlockHost"]

PAGE_PORTS = frozenset({80})    # where the handshake is answered: the page is plain HTTP
_MSS = {4: 1460, 6: 1440}


class BlockHost:
    """Recognises packets to the block address and builds the box's answers to them."""

    __slots__ = ("addrs", "_secret")

    def __init__(self, cfg: DnsBlockConfig, secret: bytes) -> None:
        self.addrs = frozenset(ipaddress.ip_address(a).packed for a in (cfg.v4, cfg.v6) if a)
        self._secret = secret

    def targets(self, ip: bytes) -> bool:
        """Is this IP packet (as NFQUEUE gives it) addressed to the block address?"""
        if not ip:
            return False
        v = ip[0] >> 4
        dst = ip[16:20] if v == 4 else ip[24:40] if v == 6 else b""
        return dst in self.addrs

    def answer_syn(self, syn: bytes, client_mac: bytes, server_mac: bytes) -> tuple[bytes, bytes | None]:
        """(frame to the client, the SYN-ACK as an IP packet for the engine) for a SYN on a
        page port; (reset frame, None) on any other port. Raises ResetError for what is no SYN."""
        t = parse_tcp(syn)
        if not t.flags & TH_SYN or t.flags & TH_ACK:
            raise ResetError("not a SYN")
        if t.dport not in PAGE_PORTS:
            return reset_frames(syn, client_mac, server_mac)[0], None
        # the same SYN (a retransmission) gets the same answer
        isn = int.from_bytes(hashlib.blake2s(self._secret + t.src + t.dst + struct.pack("!HHI", t.sport, t.dport,
                                                                                        t.seq)).digest()[:4], "big")
        mss = struct.pack("!BBH", 2, 4, _MSS[t.version])
        ip = _ip(t.version, t.dst, t.src, _tcp_segment(t.version, t.dst, t.src, t.dport, t.sport, isn, t.seq + 1,
                                                       TH_SYN | TH_ACK, window=8192, options=mss))
        return receiver_mac_to(client_mac, server_mac, ETH_IPV4 if t.version == 4 else ETH_IPV6) + ip, ip

    def refuse(self, packet: bytes, client_mac: bytes, server_mac: bytes) -> bytes:
        """A reset to the client for anything else it sends there that the page does not answer."""
        return reset_frames(packet, client_mac, server_mac)[0]
