"""DNS answers for blocked names, pointed at the block page (pure; built with struct).

Off by default (`utm run --dns-block-answer ADDR`, docs/live.md). A UDP query for a
name in a blocked category is dropped and answered by the box as if from the
resolver: an A query gets the configured IPv4 address, an AAAA query the IPv6
one, each with a short TTL (`TTL`); any other type, or a family with no address
configured, gets an empty NOERROR answer (NODATA) so the client does not wait
for a timeout. The real answer never comes: the query does not reach the resolver.

Why an address and not the page itself: the block page is injected into the
TCP flow of an HTTP request that names a blocked host (blockpage.py), whatever
address the flow goes to, as long as its packets cross the bridge and the
handshake completes. So the answer is an address beyond the bridge that accepts
connections on port 80; the request then carries the blocked name in its Host
header and gets the page. The box's own management address does not do: traffic
to the box is not bridged, so it is never queued.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Sequence

from firmware.base.addresses import routable_host
from inspection.policy.tcpreset import ETH_IPV4, ETH_IPV6, ResetError, _csum, parse_tcp, receiver_mac_to

TTL = 10                  # seconds: the client asks again soon after the policy changes
QTYPE_A, QTYPE_AAAA, QCLASS_IN = 1, 28, 1
_MAX_NAME = 255


class DnsAnswerError(ResetError):
    """The dropped packet is not a UDP DNS query we can answer (truncated, not a query, ...)."""


@dataclass(frozen=True, slots=True)
class DnsBlockConfig:
    """Where answers for blocked names point; validated at construction."""

    v4: str | None = None
    v6: str | None = None

    def __post_init__(self) -> None:
        from inspection.errors import ConfigError
        if self.v4 is None and self.v6 is None:
            raise ConfigError("--dns-block-answer", "needs an IPv4 or IPv6 address")
        for value, version in ((self.v4, 4), (self.v6, 6)):
            if value is None:
                continue
            try:
                addr = ipaddress.ip_address(value)
            except ValueError:
                raise ConfigError("--dns-block-answer", f"not an IP address: {value!r}") from None
            if addr.version != version:
                raise ConfigError("--dns-block-answer", f"expected an IPv{version} address, got {value}")

    @classmethod
    def parse(cls, values: list[str]) -> "DnsBlockConfig | None":
        """From the option's values (one IPv4 and/or one IPv6 address, repeatable or comma-joined)."""
        from inspection.errors import ConfigError
        v4 = v6 = None
        for item in (x.strip() for v in values for x in v.split(",") if x.strip()):
            try:
                addr = ipaddress.ip_address(item)
            except ValueError:
                raise ConfigError("--dns-block-answer", f"not an IP address: {item!r}") from None
            if not routable_host(addr):
                raise ConfigError("--dns-block-answer", f"{addr} cannot be a host's address beyond the router")
            if addr.version == 4:
                if v4 is not None:
                    raise ConfigError("--dns-block-answer", "one IPv4 address only")
                v4 = str(addr)
            else:
                if v6 is not None:
                    raise ConfigError("--dns-block-answer", "one IPv6 address only")
                v6 = str(addr)
        return cls(v4, v6) if (v4 or v6) else None


def _udp(ip: bytes) -> tuple[int, bytes, bytes, int, int, bytes]:
    """(version, src, dst, sport, dport, UDP payload) of an IPv4/IPv6 UDP packet."""
    if not ip:
        raise DnsAnswerError("empty packet")
    v = ip[0] >> 4
    if v == 4:
        if len(ip) < 20 or ip[9] != 17:
            raise DnsAnswerError("not UDP")
        if struct.unpack_from("!H", ip, 6)[0] & 0x3FFF:
            raise DnsAnswerError("a fragment")
        off = (ip[0] & 0x0F) * 4
        src, dst = ip[12:16], ip[16:20]
    elif v == 6:
        if len(ip) < 40 or ip[6] != 17:
            raise DnsAnswerError("not UDP (or IPv6 extension headers)")
        off, src, dst = 40, ip[8:24], ip[24:40]
    else:
        raise DnsAnswerError(f"IP version {v}")
    if len(ip) < off + 8:
        raise DnsAnswerError("short UDP header")
    sport, dport, ulen = struct.unpack_from("!HHH", ip, off)
    end = off + ulen if ulen >= 8 else len(ip)
    return v, bytes(src), bytes(dst), sport, dport, bytes(ip[off + 8:min(end, len(ip))])


def _question(msg: bytes) -> tuple[int, int, int, int]:
    """(id, flags, end of the first question, qtype) of a query with one question."""
    if len(msg) < 12:
        raise DnsAnswerError("short DNS header")
    qid, flags, qd = struct.unpack_from("!HHH", msg, 0)
    if flags & 0x8000 or (flags >> 11) & 0xF or qd != 1:
        raise DnsAnswerError("not a standard query with one question")
    pos = 12
    while True:
        if pos >= len(msg) or pos - 12 > _MAX_NAME:
            raise DnsAnswerError("truncated or overlong name")
        n = msg[pos]
        if n & 0xC0:
            raise DnsAnswerError("compressed name in a question")
        pos += 1 + n
        if n == 0:
            break
    if pos + 4 > len(msg):
        raise DnsAnswerError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", msg, pos)
    return qid, flags, pos + 4, qtype if qclass == QCLASS_IN else -1


def answer_message(query: bytes, cfg: DnsBlockConfig) -> bytes:
    """The DNS response to `query` (a UDP payload): the block address for A/AAAA, else NODATA."""
    qid, flags, qend, qtype = _question(query)
    rdata = b""
    if qtype == QTYPE_A and cfg.v4:
        rdata = ipaddress.IPv4Address(cfg.v4).packed
    elif qtype == QTYPE_AAAA and cfg.v6:
        rdata = ipaddress.IPv6Address(cfg.v6).packed
    # QR, the query's opcode (0) and RD, RA; NOERROR
    rflags = 0x8000 | (flags & 0x0100) | 0x0080
    head = struct.pack("!HHHHHH", qid, rflags, 1, 1 if rdata else 0, 0, 0)
    out = head + query[12:qend]
    if rdata:
        out += struct.pack("!HHHIH", 0xC00C, qtype, QCLASS_IN, TTL, len(rdata)) + rdata
    return out


def dns_answer_frame(query_packet: bytes, client_mac: bytes, resolver_mac: bytes, cfg: DnsBlockConfig) -> bytes:
    """The Ethernet frame to the client answering the dropped query `query_packet` (an IP
    packet as NFQUEUE delivered it), as if from the resolver it asked."""
    if len(client_mac) != 6 or len(resolver_mac) != 6:
        raise DnsAnswerError("MAC addresses must be 6 bytes")
    v, src, dst, sport, dport, payload = _udp(query_packet)
    msg = answer_message(payload, cfg)
    udp = struct.pack("!HHHH", dport, sport, 8 + len(msg), 0) + msg
    if v == 4:
        pseudo = dst + src + struct.pack("!BBH", 0, 17, len(udp))
    else:
        pseudo = dst + src + struct.pack("!IxxxB", len(udp), 17)
    c = _csum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    if v == 4:
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, dst, src)
        ip = h[:10] + struct.pack("!H", _csum(h)) + h[12:] + udp
        ethertype = ETH_IPV4
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, dst, src) + udp
        ethertype = ETH_IPV6
    return receiver_mac_to(client_mac, resolver_mac, ethertype) + ip


def dns_stream_answer(query_packet: bytes, cfg: DnsBlockConfig, completed: Sequence[bytes] = (),
                      qid: int | None = None, pending: int = 0) -> bytes:
    """The answer, length first, to the DNS query over TCP with id `qid` (None: the last one) among
    those the segment `query_packet` (an IP packet as NFQUEUE delivered it) ends. `completed` are
    the queries the stream completed with this segment, `pending` the bytes of the next one it
    left unfinished (the DNS parser's `queries` and `pending`): one that began in earlier segments,
    several in one (a stub's A and AAAA). Without them, the segment must hold whole queries only.
    What follows goes in the stream."""
    t = parse_tcp(query_packet)
    data = bytes(query_packet[len(query_packet) - t.payload_len:]) if t.payload_len else b""
    if completed:
        if not 0 <= pending < len(data):
            raise DnsAnswerError("the segment ends no query")
        framed = b"".join(struct.pack("!H", len(q)) + q for q in completed)
        if not framed.endswith(data[:len(data) - pending]):
            raise DnsAnswerError("the segment does not end the queries the stream put together")
    else:
        completed = _whole_messages(data)
    for query in reversed(completed):
        if qid is None or (len(query) >= 2 and struct.unpack_from("!H", query)[0] == qid):
            msg = answer_message(query, cfg)
            return struct.pack("!H", len(msg)) + msg
    raise DnsAnswerError(f"no query with id {qid} ends in the segment")


def _whole_messages(data: bytes) -> list[bytes]:
    """The length-framed messages that make up `data` exactly."""
    out, pos = [], 0
    while pos + 2 <= len(data):
        size = struct.unpack_from("!H", data, pos)[0]
        if size == 0 or pos + 2 + size > len(data):
            break
        out.append(data[pos + 2:pos + 2 + size])
        pos += 2 + size
    if not out or pos != len(data):
        raise DnsAnswerError("not whole queries in the segment, nor the end of one")
    return out
