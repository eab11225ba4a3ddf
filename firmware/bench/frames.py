"""Ethernet/IPv4/IPv6/TCP/UDP frame builders with correct checksums.

Pure and deterministic: no clock, no randomness, no I/O. Addresses are given as
text ("192.0.2.1", "2001:db8::1"), packed bytes (4 or 16) or `ipaddress`
objects; the family follows from the address. Every `*_packet` function
returns a whole Ethernet frame.

`TcpConversation` keeps the sequence numbers, IPv4 identifiers and a clock for
one connection and yields `(timestamp, frame)` pairs for the handshake, data
(cut into MSS-sized segments, acknowledged by the peer) and the FIN teardown.
"""
from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Iterator, Union

from inspection.decode.checksum import checksum, fold, ones_sum, pseudo_header_sum

Addr = Union[str, bytes, ipaddress.IPv4Address, ipaddress.IPv6Address]
Packet = tuple[float, bytes]   # (timestamp in seconds, Ethernet frame)

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS = 1448                      # payload bytes per full segment
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
PROTO_TCP = 6
PROTO_UDP = 17
CLIENT_MAC = bytes.fromhex("020000000001")   # locally administered
SERVER_MAC = bytes.fromhex("020000000002")

_ETH = struct.Struct("!6s6sH")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")


def pack_addr(addr: Addr) -> bytes:
    """The 4- or 16-byte network form of an address."""
    if isinstance(addr, bytes):
        if len(addr) not in (4, 16):
            raise ValueError(f"packed address must be 4 or 16 bytes, not {len(addr)}")
        return addr
    if isinstance(addr, str):
        return socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
    return addr.packed


def inet_checksum(data: bytes) -> int:
    """RFC 1071 checksum of `data` (the value to put in the checksum field)."""
    return checksum(data)


def ethernet(payload: bytes, ethertype: int, *, src_mac: bytes = CLIENT_MAC,
             dst_mac: bytes = SERVER_MAC) -> bytes:
    return _ETH.pack(dst_mac, src_mac, ethertype) + payload


def ipv4(src: Addr, dst: Addr, proto: int, payload: bytes, *, ident: int = 0,
         ttl: int = 64) -> bytes:
    """An IPv4 header (DF set, no options) with its checksum, plus payload."""
    s, d = pack_addr(src), pack_addr(dst)
    hdr = _IP4.pack(0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, ttl, proto, 0, s, d)
    return _ip4_with_checksum(hdr) + payload


def _ip4_with_checksum(hdr: bytes) -> bytes:
    return hdr[:10] + checksum(hdr).to_bytes(2, "big") + hdr[12:]


def ipv6(src: Addr, dst: Addr, next_header: int, payload: bytes, *, hop_limit: int = 64,
         flow_label: int = 0) -> bytes:
    s, d = pack_addr(src), pack_addr(dst)
    return _IP6.pack(0x60000000 | (flow_label & 0xFFFFF), len(payload), next_header,
                     hop_limit, s, d) + payload


def tcp_segment(src: Addr, dst: Addr, sport: int, dport: int, seq: int, ack: int,
                flags: int, payload: bytes = b"", *, window: int = 65535,
                options: bytes = b"") -> bytes:
    """A TCP header (with checksum over the pseudo-header) plus payload."""
    if len(options) % 4:
        raise ValueError("TCP options must be padded to a multiple of 4 bytes")
    s, d = pack_addr(src), pack_addr(dst)
    hlen = 20 + len(options)
    hdr = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (hlen // 4) << 4,
                    flags, window, 0, 0) + options
    # header and payload summed apart (the header has even length): no copy of the payload
    c = ~fold(pseudo_header_sum(s, d, PROTO_TCP, hlen + len(payload)) + ones_sum(hdr) + ones_sum(payload)) & 0xFFFF
    return hdr[:16] + c.to_bytes(2, "big") + hdr[18:] + payload


def udp_datagram(src: Addr, dst: Addr, sport: int, dport: int, payload: bytes = b"") -> bytes:
    """A UDP header (with checksum; 0 is sent as 0xFFFF) plus payload."""
    s, d = pack_addr(src), pack_addr(dst)
    length = 8 + len(payload)
    hdr = _UDP.pack(sport, dport, length, 0)
    c = (~fold(pseudo_header_sum(s, d, PROTO_UDP, length) + ones_sum(hdr) + ones_sum(payload)) & 0xFFFF) or 0xFFFF
    return hdr[:6] + c.to_bytes(2, "big") + payload


def _ip_frame(s: bytes, d: bytes, proto: int, l4: bytes, ident: int, ttl: int,
              src_mac: bytes, dst_mac: bytes) -> bytes:
    if len(s) == 4:
        hdr = _IP4.pack(0x45, 0, 20 + len(l4), ident & 0xFFFF, 0x4000, ttl, proto, 0, s, d)
        return _ETH.pack(dst_mac, src_mac, ETHERTYPE_IPV4) + _ip4_with_checksum(hdr) + l4
    return (_ETH.pack(dst_mac, src_mac, ETHERTYPE_IPV6)
            + _IP6.pack(0x60000000, len(l4), proto, ttl, s, d) + l4)


def _family(src: Addr, dst: Addr, v6: bool | None) -> tuple[bytes, bytes]:
    s, d = pack_addr(src), pack_addr(dst)
    if len(s) != len(d):
        raise ValueError("source and destination are of different address families")
    if v6 is not None and v6 != (len(s) == 16):
        raise ValueError(f"v6={v6} does not match the address family of {src!r}")
    return s, d


def tcp_packet(src: Addr, dst: Addr, sport: int, dport: int, seq: int, ack: int, flags: int,
               payload: bytes = b"", *, v6: bool | None = None, window: int = 65535,
               options: bytes = b"", ident: int = 0, ttl: int = 64,
               src_mac: bytes = CLIENT_MAC, dst_mac: bytes = SERVER_MAC) -> bytes:
    """A whole Ethernet frame carrying one TCP segment.

    `v6` may be left out (the family follows from the addresses); if given it
    must agree with them. `ttl` is the hop limit for IPv6.
    """
    s, d = _family(src, dst, v6)
    seg = tcp_segment(s, d, sport, dport, seq, ack, flags, payload, window=window, options=options)
    return _ip_frame(s, d, PROTO_TCP, seg, ident, ttl, src_mac, dst_mac)


def udp_packet(src: Addr, dst: Addr, sport: int, dport: int, payload: bytes = b"", *,
               v6: bool | None = None, ident: int = 0, ttl: int = 64,
               src_mac: bytes = CLIENT_MAC, dst_mac: bytes = SERVER_MAC) -> bytes:
    """A whole Ethernet frame carrying one UDP datagram."""
    s, d = _family(src, dst, v6)
    return _ip_frame(s, d, PROTO_UDP, udp_datagram(s, d, sport, dport, payload), ident, ttl,
                     src_mac, dst_mac)


def syn_options(mss: int = MSS) -> bytes:
    """MSS, then NOP NOP SACK-permitted: 8 bytes."""
    return struct.pack("!BBH", 2, 4, mss) + b"\x01\x01\x04\x02"


class TcpConversation:
    """One TCP connection seen at a single capture point.

    Side 0 is the client, side 1 the server. `t` is the conversation's clock:
    each emitted packet is stamped with it, then it moves on by `segment_gap`
    (data) or by half the round trip (handshake and teardown). `advance` adds
    think time between messages. The methods return generators; consume them
    in order, since they share the sequence state.
    """

    def __init__(self, client: Addr, server: Addr, client_port: int, server_port: int, *,
                 start: float = 0.0, isn_client: int = 1_000, isn_server: int = 5_000,
                 rtt: float = 0.001, segment_gap: float = 0.00002, mss: int = MSS,
                 window: int = 65535, ttl: int = 64) -> None:
        c, s = _family(client, server, None)
        if not 0 < mss <= 65495:
            raise ValueError(f"bad mss {mss}")
        self.t = start
        self.rtt = rtt
        self.segment_gap = segment_gap
        self.mss = mss
        self.window = window
        self.ttl = ttl
        self._addr = (c, s)
        self._port = (client_port, server_port)
        self._mac = (CLIENT_MAC, SERVER_MAC)
        self._next_seq = [isn_client & 0xFFFFFFFF, isn_server & 0xFFFFFFFF]
        self._ident = [isn_client & 0xFFFF, isn_server & 0xFFFF]
        self.packets = 0
        self.bytes = 0       # captured frame bytes emitted so far

    @property
    def v6(self) -> bool:
        return len(self._addr[0]) == 16

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def frame(self, side: int, flags: int, payload: bytes = b"", options: bytes = b"") -> Packet:
        """Emit one segment from `side` at the current time (does not move the clock)."""
        other = 1 - side
        seq = self._next_seq[side]
        ack = self._next_seq[other] if flags & ACK else 0
        seg = tcp_segment(self._addr[side], self._addr[other], self._port[side], self._port[other],
                          seq, ack, flags, payload, window=self.window, options=options)
        frame = _ip_frame(self._addr[side], self._addr[other], PROTO_TCP, seg, self._ident[side],
                          self.ttl, self._mac[side], self._mac[other])
        self._ident[side] = (self._ident[side] + 1) & 0xFFFF
        self._next_seq[side] = (seq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        self.packets += 1
        self.bytes += len(frame)
        return self.t, frame

    def handshake(self) -> Iterator[Packet]:
        """SYN, SYN-ACK, ACK; each SYN carries an MSS option."""
        half = self.rtt / 2
        yield self.frame(0, SYN, options=syn_options(self.mss))
        self.t += half
        yield self.frame(1, SYN | ACK, options=syn_options(self.mss))
        self.t += half
        yield self.frame(0, ACK)
        self.t += self.segment_gap

    def send(self, data: bytes, *, from_client: bool = True, ack_every: int = 2) -> Iterator[Packet]:
        """`data` in MSS-sized segments (PSH on the last); the peer ACKs every
        `ack_every` segments and after the last one."""
        side = 0 if from_client else 1
        mss, gap = self.mss, self.segment_gap
        view = memoryview(data)
        n = len(data)
        unacked = 0
        for off in range(0, n, mss):
            last = off + mss >= n
            yield self.frame(side, ACK | PSH if last else ACK, bytes(view[off:off + mss]))
            self.t += gap
            unacked += 1
            if last or unacked >= ack_every:
                yield self.frame(1 - side, ACK)
                self.t += gap
                unacked = 0

    def close(self, *, from_client: bool = True) -> Iterator[Packet]:
        """FIN-ACK from one side, FIN-ACK from the other, final ACK."""
        side = 0 if from_client else 1
        half = self.rtt / 2
        yield self.frame(side, FIN | ACK)
        self.t += half
        yield self.frame(1 - side, FIN | ACK)
        self.t += half
        yield self.frame(side, ACK)
        self.t += self.segment_gap
