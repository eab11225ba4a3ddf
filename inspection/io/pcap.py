"""pcap and pcapng files: a streaming reader and a small classic-pcap writer.

The reader yields frames until the end of the file or until the file turns out
to be corrupt; corruption is raised as `CaptureError` naming the file and the
byte offset, after every good frame before it has been yielded, so the caller
keeps what could be read.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from inspection.errors import CaptureError

# Link-layer header types (https://www.tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# Some old captures use the BSD DLT numbers for raw IP.
LINKTYPE_RAW_ALIASES = (12, 14)

MAX_FRAME = 256 * 1024  # larger snap lengths exist; larger records are corrupt
READ_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class Frame:
    ts: float
    linktype: int
    data: bytes
    wire_len: int
    offset: int        # byte offset of the record in the file


_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


def read_frames(path: str | Path) -> Iterator[Frame]:
    """Yield every frame of a pcap or pcapng file (optionally gzip-compressed), in file order."""
    p = Path(path)
    try:
        fh = p.open("rb")
    except OSError as e:
        raise CaptureError(str(p), 0, e.strerror or str(e), missing=isinstance(e, FileNotFoundError)) from e
    if fh.read(2) == b"\x1f\x8b":  # gzip-compressed capture, as tshark reads them
        fh.seek(0)
        fh = gzip.GzipFile(fileobj=fh)  # type: ignore[assignment]
    else:
        fh.seek(0)
    with fh:
        try:
            magic = fh.read(4)
        except (OSError, EOFError) as e:
            raise CaptureError(str(p), 0, f"unreadable compressed capture: {e}") from e
        if magic in _PCAP_MAGIC:
            frames = _read_pcap(p, fh, magic)
        elif magic == _PCAPNG_SHB:
            frames = _read_pcapng(p, fh, magic)
        else:
            raise CaptureError(str(p), 0, "not a pcap or pcapng file (unknown magic %s)" % magic.hex())
        offset = 0
        try:
            for frame in frames:
                offset = frame.offset
                yield frame
        except (OSError, EOFError, zlib.error) as e:  # damaged compressed stream
            raise CaptureError(str(p), offset, f"unreadable after this record (uncompressed offset): {e}") from e


def _read_pcap(p: Path, fh: BinaryIO, magic: bytes) -> Iterator[Frame]:
    endian, tick = _PCAP_MAGIC[magic]
    hdr = fh.read(20)
    if len(hdr) < 20:
        raise CaptureError(str(p), 4, "truncated pcap file header")
    _vmaj, _vmin, _tz, _sig, snaplen, linktype = struct.unpack(endian + "HHiIII", hdr)
    linktype &= 0x0FFFFFFF
    unpack = struct.Struct(endian + "IIII").unpack_from
    read = fh.read
    buf = b""
    pos = 0
    base = 24          # file offset of buf[0]
    while True:
        if len(buf) - pos < 16:
            buf, base, pos = buf[pos:] + read(READ_BLOCK), base + pos, 0
            if not buf:
                return
            if len(buf) < 16:
                raise CaptureError(str(p), base, "truncated record header")
        sec, frac, caplen, wirelen = unpack(buf, pos)
        if caplen > MAX_FRAME:
            raise CaptureError(str(p), base + pos, f"record length {caplen} exceeds {MAX_FRAME}")
        end = pos + 16 + caplen
        if end > len(buf):
            buf, base, pos = buf[pos:] + read(max(READ_BLOCK, caplen + 16)), base + pos, 0
            end = 16 + caplen
            if end > len(buf):
                raise CaptureError(str(p), base, f"truncated record: {len(buf) - 16} of {caplen} bytes")
        yield Frame(sec + frac * tick, linktype, buf[pos + 16:end], max(wirelen, caplen), base + pos)
        pos = end


def _read_pcapng(p: Path, fh: BinaryIO, first: bytes) -> Iterator[Frame]:
    offset = 0
    endian = "<"
    interfaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
    block_type_raw: bytes | None = first
    while True:
        if block_type_raw is None:
            block_type_raw = fh.read(4)
            if not block_type_raw:
                return
        if len(block_type_raw) < 4:
            raise CaptureError(str(p), offset, "truncated block header")
        len_raw = fh.read(4)
        if len(len_raw) < 4:
            raise CaptureError(str(p), offset, "truncated block header")
        if block_type_raw == _PCAPNG_SHB:
            bom = fh.read(4)
            if bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                raise CaptureError(str(p), offset, "bad pcapng byte-order magic")
            (blen,) = struct.unpack(endian + "I", len_raw)
            body_len = blen - 16
            if blen < 28 or blen % 4 or body_len > MAX_FRAME:
                raise CaptureError(str(p), offset, f"bad section header length {blen}")
            body = fh.read(body_len)
            trailer = fh.read(4)
            if len(body) < body_len or len(trailer) < 4:
                raise CaptureError(str(p), offset, "truncated section header block")
            interfaces = []
        else:
            btype, blen = struct.unpack(endian + "II", block_type_raw + len_raw)
            if blen < 12 or blen % 4 or blen > MAX_FRAME + 64:
                raise CaptureError(str(p), offset, f"bad block length {blen}")
            body = fh.read(blen - 12)
            trailer = fh.read(4)
            if len(body) < blen - 12 or len(trailer) < 4:
                raise CaptureError(str(p), offset, "truncated block")
            if btype == 1:  # interface description
                linktype = struct.unpack_from(endian + "H", body, 0)[0]
                interfaces.append((linktype, _if_tsresol(body[8:], endian)))
            elif btype == 6:  # enhanced packet
                if len(body) < 20:
                    raise CaptureError(str(p), offset, "short enhanced packet block")
                ifid, hi, lo, caplen, wirelen = struct.unpack_from(endian + "IIIII", body, 0)
                if ifid >= len(interfaces):
                    raise CaptureError(str(p), offset, f"packet for undeclared interface {ifid}")
                if 20 + caplen > len(body):
                    raise CaptureError(str(p), offset, "packet data runs past its block")
                linktype, tick = interfaces[ifid]
                yield Frame(((hi << 32) | lo) * tick, linktype, body[20:20 + caplen], max(wirelen, caplen), offset)
            elif btype == 3:  # simple packet
                if not interfaces:
                    raise CaptureError(str(p), offset, "simple packet before any interface")
                (wirelen,) = struct.unpack_from(endian + "I", body, 0)
                linktype, _tick = interfaces[0]
                data = body[4:4 + min(wirelen, len(body) - 4)]
                yield Frame(0.0, linktype, data, wirelen, offset)
            # other block types (name resolution, statistics, custom) carry no packets
        offset += struct.unpack(endian + "I", len_raw)[0]
        block_type_raw = None


def _if_tsresol(options: bytes, endian: str) -> float:
    """Seconds per timestamp tick from an interface block's if_tsresol option."""
    i = 0
    while i + 4 <= len(options):
        code, length = struct.unpack_from(endian + "HH", options, i)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = options[i + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        i += 4 + ((length + 3) & ~3)
    return 1e-6


class PcapWriter:
    """Write a classic little-endian microsecond pcap (tests, benchmarks, demo data)."""

    def __init__(self, fh: BinaryIO, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144) -> None:
        self._fh = fh
        self._rec = struct.Struct("<IIII")
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))

    def write(self, ts: float, frame: bytes, wire_len: int | None = None) -> None:
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        self._fh.write(self._rec.pack(sec, usec, len(frame), wire_len or len(frame)))
        self._fh.write(frame)
