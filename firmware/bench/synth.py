"""Deterministic synthetic traffic for benchmarks and tests.

`write_mixed` writes a pcap of valid mixed traffic of at least the requested
size: short HTTP/1.1 flows (plain, chunked and gzip bodies), a few bulk
downloads, uploads (raw and multipart/form-data), TLS 1.3-style flows (a real
ClientHello with SNI and ALPN, a ServerHello, opaque application data) and DNS
over UDP (A/AAAA/CNAME), about one flow in eight over IPv6. `write_idle_flows`
writes N flows that each stay open after one request, to measure the memory an
engine spends per concurrent flow.

Everything comes from one seeded `random.Random`; timestamps start at a fixed
epoch. The same parameters give the same bytes (on the same zlib).

    python -m firmware.bench.synth -o mixed.pcap --size-mb 200
    python -m firmware.bench.synth -o idle.pcap --idle-flows 100000
"""
from __future__ import annotations

import argparse
import enum
import gzip
import heapq
import json
import math
import random
import struct
import sys
import zlib
from dataclasses import asdict, dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Callable, Iterable, Iterator

from firmware.bench.frames import CLIENT_MAC, MSS, SERVER_MAC, Packet, TcpConversation, udp_packet
from inspection.io.pcap import PcapWriter

SYNTH_VERSION = 2
DEFAULT_SEED = 1
EPOCH = 1_700_000_000.0          # fixed start of every capture (no wall clock)
MB = 1_000_000
_REC_OVERHEAD = 16 + 14 + 20 + 20  # pcap record + Ethernet + IPv4 + TCP: lower bound per segment
_CHUNK = MSS * 44                  # bulk bodies are sent in chunks of whole segments
_V6_SHARE = 0.125

HOSTS = ("www.example.com", "example.com", "api.example.net", "static.example.org",
         "shop.example.net", "news.example.org", "login.example.com", "mail.example.com",
         "updates.example.com", "video.example.org", "cdn1.example.net", "cdn2.example.net",
         "img.example.org", "docs.example.com", "files.example.net")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "curl/8.4.0",
    "Wget/1.21.4",
)
_WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
          "incididunt ut labore et dolore magna aliqua example domain illustrative documents "
          "network appliance packet flow stream inspection").split()


class FlowKind(enum.Enum):
    HTTP = "http"
    BULK = "bulk"
    UPLOAD = "upload"
    TLS = "tls"
    DNS = "dns"


class Body(enum.Enum):
    PLAIN = "plain"
    CHUNKED = "chunked"
    GZIP = "gzip"
    MULTIPART = "multipart"


@dataclass(frozen=True, slots=True)
class FlowSpec:
    """One planned flow; its bytes are built lazily from `seed`."""
    kind: FlowKind
    start: float                       # seconds after EPOCH
    client: str
    server: str
    client_port: int
    seed: int
    parts: tuple[tuple[int, Body], ...]  # per exchange: body size and encoding
    estimate: int                      # lower bound of its bytes in the pcap

    @property
    def v6(self) -> bool:
        return ":" in self.client


@dataclass(frozen=True, slots=True)
class CaptureSummary:
    """What a synthesized capture holds; the ground truth tests compare to."""
    kind: str
    seed: int
    packets: int
    frame_bytes: int       # sum of captured frame lengths
    file_bytes: int
    duration: float        # last minus first timestamp
    flows: int
    ipv6_flows: int
    http_requests: int
    tls_sni: int
    dns_queries: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> "CaptureSummary":
        return cls(**d)  # type: ignore[arg-type]


class _Content:
    """Payload pools drawn once from the master generator."""

    def __init__(self, rng: random.Random) -> None:
        self.binary = rng.randbytes((1 << 20) + _CHUNK)
        words = [rng.choice(_WORDS) for _ in range(40_000)]
        paras = "\n".join("<p>" + " ".join(words[i:i + 60]) + "</p>" for i in range(0, len(words), 60))
        self.text = ("<!DOCTYPE html>\n<html><head><title>Example Domain</title></head><body>\n"
                     + paras + "\n</body></html>\n").encode()
        self.gzipped = [gzip.compress(self.text[:n], compresslevel=6, mtime=0)
                        for n in (600, 1500, 4000, 9000, 20_000, 45_000, 90_000)]

    def blob(self, rng: random.Random, n: int) -> bytes:
        off = rng.randrange(len(self.binary) - min(n, _CHUNK))
        if n <= _CHUNK:
            return self.binary[off:off + n]
        return b"".join(self.blob(rng, min(_CHUNK, n - i)) for i in range(0, n, _CHUNK))

    def html(self, rng: random.Random, n: int) -> bytes:
        n = min(n, len(self.text))
        off = rng.randrange(len(self.text) - n + 1)
        return self.text[off:off + n]


# ---------------------------------------------------------------- app payloads

def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def http_request(method: str, host: str, path: str, ua: str, extra: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
            f"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
            f"{extra}\r\n").encode()


def http_response(status: str, ctype: str, body: bytes, ts: float, *, body_mode: Body = Body.PLAIN,
                  chunk_sizes: Iterable[int] = ()) -> bytes:
    head = f"HTTP/1.1 {status}\r\nDate: {_http_date(ts)}\r\nServer: nginx\r\nContent-Type: {ctype}\r\n"
    if body_mode is Body.CHUNKED:
        out, i = [], 0
        for size in chunk_sizes:
            if i >= len(body):
                break
            piece = body[i:i + size]
            out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
            i += size
        if i < len(body):
            out.append(b"%x\r\n%s\r\n" % (len(body) - i, body[i:]))
        out.append(b"0\r\n\r\n")
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + b"".join(out)
    if body_mode is Body.GZIP:
        head += "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + ctype + data + struct.pack("!I", zlib.crc32(ctype + data))


def png(idat: bytes, width: int) -> bytes:
    """A structurally valid PNG (signature, IHDR, one opaque IDAT, IEND)."""
    ihdr = struct.pack("!IIBBBBB", width, max(1, len(idat) // (3 * width)), 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def _ext(etype: int, data: bytes) -> bytes:
    return struct.pack("!HH", etype, len(data)) + data


def _vec16(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _handshake_record(msg_type: int, body: bytes, record_version: int) -> bytes:
    hs = bytes([msg_type]) + len(body).to_bytes(3, "big") + body
    return struct.pack("!BHH", 22, record_version, len(hs)) + hs


_CIPHERS = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
            0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035)
_SIGALGS = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)


def tls_client_hello(rng: random.Random, sni: str, alpn: tuple[str, ...] = ("h2", "http/1.1")) -> bytes:
    """A TLS record holding a browser-like ClientHello (TLS 1.3 with 1.2 fallback)."""
    name = sni.encode()
    alpn_list = b"".join(bytes([len(p)]) + p.encode() for p in alpn)
    exts = b"".join((
        _ext(0x0000, _vec16(b"\x00" + _vec16(name))),                  # server_name
        _ext(0x0017, b""),                                             # extended_master_secret
        _ext(0xFF01, b"\x00"),                                         # renegotiation_info
        _ext(0x000A, _vec16(struct.pack("!3H", 0x001D, 0x0017, 0x0018))),  # supported_groups
        _ext(0x000B, b"\x01\x00"),                                     # ec_point_formats
        _ext(0x0023, b""),                                             # session_ticket
        _ext(0x0010, _vec16(alpn_list)),                               # ALPN
        _ext(0x0005, b"\x01\x00\x00\x00\x00"),                         # status_request
        _ext(0x000D, _vec16(struct.pack(f"!{len(_SIGALGS)}H", *_SIGALGS))),
        _ext(0x0012, b""),                                             # signed_certificate_timestamp
        _ext(0x0033, _vec16(struct.pack("!HH", 0x001D, 32) + rng.randbytes(32))),  # key_share
        _ext(0x002D, b"\x01\x01"),                                     # psk_key_exchange_modes
        _ext(0x002B, b"\x04\x03\x04\x03\x03"),                         # supported_versions
    ))
    body = (b"\x03\x03" + rng.randbytes(32) + b"\x20" + rng.randbytes(32)
            + _vec16(struct.pack(f"!{len(_CIPHERS)}H", *_CIPHERS)) + b"\x01\x00" + _vec16(exts))
    return _handshake_record(1, body, 0x0301)


def tls_server_hello(rng: random.Random, session_id: bytes) -> bytes:
    """ServerHello choosing TLS 1.3 + x25519, then ChangeCipherSpec."""
    exts = (_ext(0x002B, b"\x03\x04")
            + _ext(0x0033, struct.pack("!HH", 0x001D, 32) + rng.randbytes(32)))
    body = b"\x03\x03" + rng.randbytes(32) + bytes([len(session_id)]) + session_id + b"\x13\x01\x00" + _vec16(exts)
    return _handshake_record(2, body, 0x0303) + b"\x14\x03\x03\x00\x01\x01"


def tls_app_data(content: _Content, rng: random.Random, n: int, max_record: int = 16384) -> bytes:
    """`n` bytes of opaque records (each plaintext + 17 bytes of tag and type)."""
    out = []
    for i in range(0, n, max_record):
        size = min(max_record, n - i) + 17
        out.append(struct.pack("!BHH", 23, 0x0303, size) + content.blob(rng, size))
    return b"".join(out)


def _dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def dns_query(txid: int, name: str, qtype: int) -> bytes:
    return struct.pack("!6H", txid, 0x0100, 1, 0, 0, 0) + _dns_name(name) + struct.pack("!HH", qtype, 1)


def dns_response(txid: int, name: str, qtype: int, cname: str | None, addrs: list[bytes], ttl: int = 300) -> bytes:
    """Answer with an optional CNAME, then A (4-byte) or AAAA (16-byte) records."""
    msg = bytearray(struct.pack("!6H", txid, 0x8180, 1, len(addrs) + (1 if cname else 0), 0, 0))
    msg += _dns_name(name) + struct.pack("!HH", qtype, 1)
    owner = 0xC00C
    if cname:
        target = _dns_name(cname)
        msg += struct.pack("!HHHIH", owner, 5, 1, ttl, len(target))
        owner = 0xC000 | len(msg)
        msg += target
    for a in addrs:
        msg += struct.pack("!HHHIH", owner, qtype, 1, ttl, len(a)) + a
    return bytes(msg)


# ---------------------------------------------------------------- flows

def _conversation(spec: FlowSpec, rng: random.Random, port: int, rtt: float, gap: float) -> TcpConversation:
    return TcpConversation(spec.client, spec.server, spec.client_port, port, start=EPOCH + spec.start,
                           isn_client=rng.getrandbits(32), isn_server=rng.getrandbits(32),
                           rtt=rtt, segment_gap=gap)


def _http_flow(spec: FlowSpec, content: _Content) -> Iterator[Packet]:
    rng = random.Random(spec.seed)
    conv = _conversation(spec, rng, 80, rng.uniform(0.002, 0.06), 0.00002)
    host, ua = rng.choice(HOSTS), rng.choice(USER_AGENTS)
    yield from conv.handshake()
    for size, mode in spec.parts:
        kind = rng.choice(("html", "html", "js", "json", "png"))
        path = f"/{kind}/{rng.getrandbits(24):06x}.{kind}"
        yield from conv.send(http_request("GET", host, path, ua))
        conv.advance(conv.rtt / 2 + rng.uniform(0.0005, 0.005))
        status = rng.choices(("200 OK", "404 Not Found", "301 Moved Permanently"), (18, 1, 1))[0]
        if mode is Body.GZIP:
            body, ctype = rng.choice(content.gzipped), "text/html; charset=utf-8"
        elif kind == "png":
            body, ctype = png(content.blob(rng, size), rng.randrange(16, 1024)), "image/png"
        else:
            body = content.html(rng, size)
            ctype = {"html": "text/html; charset=utf-8", "js": "application/javascript",
                     "json": "application/json"}[kind]
        chunks = [rng.randrange(512, 8192) for _ in range(len(body) // 512 + 1)] if mode is Body.CHUNKED else []
        resp = http_response(status, ctype, body, conv.t, body_mode=mode, chunk_sizes=chunks)
        yield from conv.send(resp, from_client=False)
        conv.advance(rng.uniform(0.001, 0.2))
    yield from conv.close(from_client=rng.random() < 0.7)


def _bulk_flow(spec: FlowSpec, content: _Content) -> Iterator[Packet]:
    rng = random.Random(spec.seed)
    conv = _conversation(spec, rng, 80, rng.uniform(0.005, 0.03), 0.000012)
    (size, _mode), = spec.parts
    yield from conv.handshake()
    req = http_request("GET", rng.choice(HOSTS), f"/downloads/image-{spec.seed % 1000:03d}.iso",
                       rng.choice(USER_AGENTS))
    yield from conv.send(req)
    conv.advance(conv.rtt / 2)
    head = (f"HTTP/1.1 200 OK\r\nDate: {_http_date(conv.t)}\r\nServer: nginx\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n"
            f"Accept-Ranges: bytes\r\n\r\n").encode()
    yield from conv.send(head, from_client=False)
    for i in range(0, size, _CHUNK):
        yield from conv.send(content.blob(rng, min(_CHUNK, size - i)), from_client=False)
    yield from conv.close(from_client=True)


def _upload_flow(spec: FlowSpec, content: _Content) -> Iterator[Packet]:
    rng = random.Random(spec.seed)
    conv = _conversation(spec, rng, 80, rng.uniform(0.005, 0.05), 0.00002)
    (size, mode), = spec.parts
    host, ua = rng.choice(HOSTS), rng.choice(USER_AGENTS)
    yield from conv.handshake()
    if mode is Body.MULTIPART:
        boundary = f"----utmbench{rng.getrandbits(48):012x}"
        prefix = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n"
                  f"quarterly report\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                  f"filename=\"report-{spec.seed % 10000}.bin\"\r\nContent-Type: application/octet-stream"
                  f"\r\n\r\n").encode()
        suffix = f"\r\n--{boundary}--\r\n".encode()
        ctype = f"multipart/form-data; boundary={boundary}"
    else:
        prefix, suffix, ctype = b"", b"", "application/octet-stream"
    total = len(prefix) + size + len(suffix)
    extra = f"Content-Type: {ctype}\r\nContent-Length: {total}\r\n"
    yield from conv.send(http_request("POST", host, f"/upload/{spec.seed % 100000}", ua, extra) + prefix)
    for i in range(0, size, _CHUNK):
        yield from conv.send(content.blob(rng, min(_CHUNK, size - i)))
    if suffix:
        yield from conv.send(suffix)
    conv.advance(conv.rtt / 2 + 0.002)
    body = b'{"status":"stored","id":"%08x"}' % rng.getrandbits(32)
    yield from conv.send(http_response("201 Created", "application/json", body, conv.t), from_client=False)
    yield from conv.close(from_client=True)


def _tls_flow(spec: FlowSpec, content: _Content) -> Iterator[Packet]:
    rng = random.Random(spec.seed)
    conv = _conversation(spec, rng, 443, rng.uniform(0.002, 0.06), 0.00002)
    sni = rng.choice(HOSTS)
    alpn = rng.choice((("h2", "http/1.1"), ("http/1.1",), ("h2",)))
    yield from conv.handshake()
    hello = tls_client_hello(rng, sni, alpn)
    yield from conv.send(hello)
    conv.advance(conv.rtt / 2)
    session_id = hello[44:76]   # record(5) + hs header(4) + version(2) + random(32) + length(1)
    yield from conv.send(tls_server_hello(rng, session_id) + tls_app_data(content, rng, rng.randrange(2500, 5000)),
                         from_client=False)
    conv.advance(conv.rtt / 2)
    yield from conv.send(b"\x14\x03\x03\x00\x01\x01" + tls_app_data(content, rng, 36))
    for size, _mode in spec.parts:
        yield from conv.send(tls_app_data(content, rng, rng.randrange(80, 700)))
        conv.advance(conv.rtt / 2 + rng.uniform(0.0005, 0.01))
        yield from conv.send(tls_app_data(content, rng, size), from_client=False)
        conv.advance(rng.uniform(0.001, 0.3))
    yield from conv.close(from_client=rng.random() < 0.5)


def _dns_flow(spec: FlowSpec, content: _Content) -> Iterator[Packet]:
    rng = random.Random(spec.seed)
    t = EPOCH + spec.start
    ident = rng.getrandbits(16)
    for _size, _mode in spec.parts:
        name = rng.choice(HOSTS)
        qtype = 28 if rng.random() < 0.35 else 1
        cname = f"edge{rng.randrange(1, 40)}.cdn.example.net" if name.startswith(("cdn", "www", "img")) else None
        if qtype == 1:
            addrs = [bytes((203, 0, 113, rng.randrange(1, 255))) for _ in range(rng.randrange(1, 4))]
        else:
            addrs = [bytes.fromhex("20010db8") + rng.randbytes(12) for _ in range(rng.randrange(1, 3))]
        txid = rng.getrandbits(16)
        yield t, udp_packet(spec.client, spec.server, spec.client_port, 53, dns_query(txid, name, qtype), ident=ident)
        t += rng.uniform(0.001, 0.03)
        resp = dns_response(txid, name, qtype, cname, addrs)
        yield t, udp_packet(spec.server, spec.client, 53, spec.client_port, resp, ident=ident ^ 0x5A5A,
                            src_mac=SERVER_MAC, dst_mac=CLIENT_MAC)
        t += rng.uniform(0.0005, 0.05)
        ident += 1


_FLOW_BUILDERS: dict[FlowKind, Callable[[FlowSpec, _Content], Iterator[Packet]]] = {
    FlowKind.HTTP: _http_flow,
    FlowKind.BULK: _bulk_flow,
    FlowKind.UPLOAD: _upload_flow,
    FlowKind.TLS: _tls_flow,
    FlowKind.DNS: _dns_flow,
}


# ---------------------------------------------------------------- plan

def _log_uniform(rng: random.Random, lo: float, hi: float) -> int:
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _segments_bound(n: int) -> int:
    """Lower bound on the pcap bytes of an `n`-byte TCP message."""
    return n + -(-n // MSS) * _REC_OVERHEAD


def _parts(kind: FlowKind, rng: random.Random, size_bytes: int) -> tuple[tuple[tuple[int, Body], ...], int]:
    """Body sizes of one flow and the lower bound of its capture bytes."""
    if kind is FlowKind.HTTP:
        parts: list[tuple[int, Body]] = []
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
            mode = rng.choices((Body.PLAIN, Body.CHUNKED, Body.GZIP), (6, 2, 2))[0]
            parts.append((_log_uniform(rng, 200, 64_000), mode))
        return tuple(parts), sum(_segments_bound(n) for n, m in parts if m is not Body.GZIP)
    if kind is FlowKind.BULK:
        n = max(256_000, min(40 * MB, int(size_bytes * rng.uniform(0.08, 0.15))))
        return ((n, Body.PLAIN),), _segments_bound(n)
    if kind is FlowKind.UPLOAD:
        n = _log_uniform(rng, 8_000, min(4 * MB, max(16_000, size_bytes // 20)))
        mode = Body.MULTIPART if rng.random() < 0.5 else Body.PLAIN
        return ((n, mode),), _segments_bound(n)
    if kind is FlowKind.TLS:
        tls = tuple((_log_uniform(rng, 2_000, 400_000), Body.PLAIN) for _ in range(rng.choice((1, 1, 2, 3))))
        return tls, sum(_segments_bound(n) for n, _ in tls)
    count = rng.choice((1, 1, 2))
    return ((0, Body.PLAIN),) * count, count * 2 * (16 + 14 + 20 + 8 + 12)


_SHARES = ((FlowKind.BULK, 40), (FlowKind.TLS, 25), (FlowKind.HTTP, 22), (FlowKind.UPLOAD, 10), (FlowKind.DNS, 3))
_SERVERS = {  # kind -> (IPv4 prefix, IPv6 prefix, host numbers)
    FlowKind.HTTP: ("192.0.2.", "2001:db8:80::", range(10, 60)),
    FlowKind.BULK: ("203.0.113.", "2001:db8:b0::", range(10, 20)),
    FlowKind.UPLOAD: ("203.0.113.", "2001:db8:b0::", range(20, 30)),
    FlowKind.TLS: ("198.51.100.", "2001:db8:443::", range(10, 60)),
    FlowKind.DNS: ("192.0.2.", "2001:db8:53::", range(53, 54)),
}


def plan(size_bytes: int, rng: random.Random) -> list[FlowSpec]:
    """Flows whose capture bytes add up to at least `size_bytes`, sorted by start."""
    drafts: list[tuple[FlowKind, tuple[tuple[int, Body], ...], int]] = []
    total = 0
    for kind, pct in _SHARES:
        share = size_bytes * pct // 100
        acc = 0
        while acc < share or acc == 0:
            parts, est = _parts(kind, rng, size_bytes)
            drafts.append((kind, parts, est))
            acc += est
        total += acc
    while total < size_bytes:
        parts, est = _parts(FlowKind.HTTP, rng, size_bytes)
        drafts.append((FlowKind.HTTP, parts, est))
        total += est
    rng.shuffle(drafts)
    duration = max(0.5, size_bytes * 8 / 400e6)
    mean_gap = duration / len(drafts)
    next_port: dict[str, int] = {}
    specs, start = [], 0.0
    for kind, parts, est in drafts:
        v6 = rng.random() < _V6_SHARE
        if v6:
            client = f"2001:db8:1::{rng.randrange(1, 200):x}"
        else:
            client = f"10.1.{rng.randrange(0, 4)}.{rng.randrange(1, 251)}"
        v4net, v6net, hosts = _SERVERS[kind]
        server = (v6net if v6 else v4net) + (f"{rng.choice(hosts):x}" if v6 else str(rng.choice(hosts)))
        port = next_port.get(client, 40000 + rng.randrange(0, 20000))
        next_port[client] = 40000 + (port - 40000 + 1) % 25000
        specs.append(FlowSpec(kind, start, client, server, port, rng.getrandbits(63), parts, est))
        start += rng.expovariate(1 / mean_gap)
    return specs


def merge(specs: Iterable[FlowSpec], content: _Content) -> Iterator[Packet]:
    """Packets of all flows in timestamp order (flows must come sorted by start)."""
    heap: list[tuple[float, int, bytes, Iterator[Packet]]] = []

    def until(limit: float) -> Iterator[Packet]:
        """Every packet of the open flows stamped at or before `limit`, in time order."""
        while heap and heap[0][0] <= limit:
            ts, k, frame, gen = heap[0]
            yield ts, frame
            nxt = next(gen, None)
            if nxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (nxt[0], k, nxt[1], gen))

    for n, spec in enumerate(specs):
        yield from until(EPOCH + spec.start)
        gen = _FLOW_BUILDERS[spec.kind](spec, content)
        first = next(gen, None)
        if first is not None:
            heapq.heappush(heap, (first[0], n, first[1], gen))
    yield from until(math.inf)


# ---------------------------------------------------------------- writers

def write_packets(path: str | Path, packets: Iterable[Packet]) -> tuple[int, int, int, float]:
    """Write packets to a classic pcap; return (packets, frame bytes, file bytes, duration)."""
    count = nbytes = 0
    first = last = 0.0
    with open(path, "wb", buffering=1 << 22) as fh:
        w = PcapWriter(fh)
        for ts, frame in packets:
            if not count:
                first = ts
            w.write(ts, frame)
            count += 1
            nbytes += len(frame)
            last = ts
    return count, nbytes, 24 + 16 * count + nbytes, last - first


def write_mixed(path: str | Path, *, size_mb: float = 200, seed: int = DEFAULT_SEED) -> CaptureSummary:
    """Write at least `size_mb` MB (10**6 bytes) of mixed traffic to `path`."""
    if size_mb <= 0:
        raise ValueError("size_mb must be positive")
    rng = random.Random(seed)
    content = _Content(rng)
    specs = plan(int(size_mb * MB), rng)
    packets, frame_bytes, file_bytes, duration = write_packets(path, merge(specs, content))
    kinds = [s.kind for s in specs]
    return CaptureSummary(
        kind="mixed", seed=seed, packets=packets, frame_bytes=frame_bytes, file_bytes=file_bytes,
        duration=duration, flows=len(specs), ipv6_flows=sum(s.v6 for s in specs),
        http_requests=sum(len(s.parts) for s in specs if s.kind in (FlowKind.HTTP, FlowKind.BULK, FlowKind.UPLOAD)),
        tls_sni=kinds.count(FlowKind.TLS),
        dns_queries=sum(len(s.parts) for s in specs if s.kind is FlowKind.DNS))


IDLE_REQUEST = (b"GET /poll HTTP/1.1\r\nHost: idle.example.com\r\nUser-Agent: utm-bench\r\n"
                b"Accept: */*\r\n\r\n")
IDLE_RESPONSE = b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n"


IDLE_SHAPES = ("connected", "keepalive")


def idle_packets(flows: int, seed: int = DEFAULT_SEED, shape: str = "connected") -> Iterator[Packet]:
    """`flows` distinct TCP flows that stay open. `shape` "connected": the
    handshake only (an established connection with nothing sent yet);
    "keepalive": a keep-alive HTTP connection whose one small request was
    answered and acknowledged. None is closed."""
    if shape not in IDLE_SHAPES:
        raise ValueError(f"shape must be one of {IDLE_SHAPES}")
    if not 1 <= flows <= 1 << 24:
        raise ValueError("flows must be between 1 and 2**24")
    rng = random.Random(seed)
    for i in range(flows):
        client = f"10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
        conv = TcpConversation(client, "198.51.100.80", 32768 + i % 28000, 80,
                               start=EPOCH + i * 20e-6, isn_client=rng.getrandbits(32),
                               isn_server=rng.getrandbits(32), rtt=4e-6, segment_gap=2e-6)
        yield from conv.handshake()
        if shape == "keepalive":
            yield from conv.send(IDLE_REQUEST)
            yield from conv.send(IDLE_RESPONSE, from_client=False)


def write_idle_flows(path: str | Path, *, flows: int = 100_000, seed: int = DEFAULT_SEED,
                     shape: str = "connected") -> CaptureSummary:
    """Write `flows` concurrent idle flows (use flows=1 for the baseline capture)."""
    packets, frame_bytes, file_bytes, duration = write_packets(path, idle_packets(flows, seed, shape))
    return CaptureSummary(kind=f"idle-{shape}", seed=seed, packets=packets, frame_bytes=frame_bytes,
                          file_bytes=file_bytes, duration=duration, flows=flows, ipv6_flows=0,
                          http_requests=flows if shape == "keepalive" else 0, tls_sni=0, dns_queries=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m firmware.bench.synth", description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, help="pcap file to write")
    ap.add_argument("--size-mb", type=float, default=200, help="mixed capture size in MB (default 200)")
    ap.add_argument("--idle-flows", type=int, metavar="N", help="write N idle flows instead of mixed traffic")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    if args.idle_flows is not None:
        summary = write_idle_flows(args.output, flows=args.idle_flows, seed=args.seed)
    else:
        summary = write_mixed(args.output, size_mb=args.size_mb, seed=args.seed)
    json.dump(summary.to_dict(), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
