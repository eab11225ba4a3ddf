"""Compiled HTML Help (.chm): files stored plain (section 0) or LZX-compressed (section 1).

The directory (ITSP header, PMGL listing chunks) names every file with its
section, offset and length. Section 1 is one LZX stream
(``::DataSpace/Storage/MSCompressed/Content``) that restarts at the points the
ResetTable lists; each reset span is decoded on its own, as far as `cap`
allows. LZX (verbatim, aligned and uncompressed blocks, repeated offsets,
the x86 E8 call translation) is decoded in Python at about 1 MB/s, so at
most `MAX_DECODE` bytes of the compressed section are expanded.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator

from inspection.files.huffman import CanonicalCode
from inspection.files.unpack_base import Member, UnpackError

__all__ = ["MAX_DECODE", "lzx_decode", "unpack_chm"]

MAX_DECODE = 8 << 20
_FRAME = 32768
_RESET_TABLE = ("::DataSpace/Storage/MSCompressed/Transform/{7FC28940-9D31-11D0-9B27-00A0C91E9C7C}/"
                "InstanceData/ResetTable")

# LZX tables: extra bits and base of each position slot.
_EXTRA = [0, 0, 0, 0] + [min((i - 2) // 2, 17) for i in range(4, 51)]
_BASE = [0] * 51
for _i in range(1, 51):
    _BASE[_i] = _BASE[_i - 1] + (1 << _EXTRA[_i - 1])
_SLOTS = {15: 30, 16: 32, 17: 34, 18: 36, 19: 38, 20: 42, 21: 50}


class _Bits:
    """LZX bit order: 16-bit little-endian words, most significant bit first."""

    __slots__ = ("data", "pos", "over")

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.over = data, 0, False

    def bit(self) -> int:
        word = (self.pos >> 4) * 2
        if word + 1 >= len(self.data):
            self.over = True
            return 0
        w = self.data[word] | (self.data[word + 1] << 8)
        b = (w >> (15 - (self.pos & 15))) & 1
        self.pos += 1
        return b

    def bits(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | self.bit()
        return v

    def align(self) -> None:
        self.pos = (self.pos + 15) & ~15


def _code(lengths: list[int]) -> CanonicalCode:
    return CanonicalCode(lengths, max_bits=16, what="lzx")


def _read_lengths(r: _Bits, lens: list[int], first: int, last: int) -> None:
    pre = _code([r.bits(4) for _ in range(20)])
    x = first
    while x < last:
        z = pre.decode(r)
        if z == 17:
            n = r.bits(4) + 4
            lens[x:x + n] = [0] * min(n, last - x)
            x += n
        elif z == 18:
            n = r.bits(5) + 20
            lens[x:x + n] = [0] * min(n, last - x)
            x += n
        elif z == 19:
            n = r.bits(1) + 4
            z = pre.decode(r)
            v = (lens[x] - z) % 17
            lens[x:x + n] = [v] * min(n, last - x)
            x += n
        else:
            lens[x] = (lens[x] - z) % 17
            x += 1
        if r.over:
            raise UnpackError("truncated lzx stream")


def lzx_decode(data: bytes, size: int, window_bits: int, start_pos: int = 0) -> bytes:
    """`size` bytes of one LZX reset span; `start_pos` is its offset in the
    whole stream (for the E8 translation)."""
    slots = _SLOTS.get(window_bits)
    if slots is None:
        raise UnpackError("corrupt lzx: window size")
    n_main = 256 + slots * 8
    r = _Bits(data)
    out = bytearray()
    main_lens, len_lens = [0] * n_main, [0] * 249
    r0 = r1 = r2 = 1
    e8_size = r.bits(32) if r.bit() else 0
    frame_end = _FRAME
    while len(out) < size:
        btype, blen = r.bits(3), (r.bits(16) << 8) | r.bits(8)
        if btype not in (1, 2, 3) or blen == 0:
            raise UnpackError(f"corrupt lzx: block type {btype}")
        aligned = None
        if btype == 3:
            r.pos = (r.pos & ~15) + 16        # 1-16 bits of padding, never none
            at = r.pos >> 3
            if at + 12 > len(data):
                raise UnpackError("truncated lzx stream")
            r0, r1, r2 = struct.unpack_from("<III", data, at)
            raw = data[at + 12:at + 12 + blen]
            if len(raw) < blen:
                raise UnpackError("truncated lzx stream")
            out += raw
            r.pos = (at + 12 + blen + (blen & 1)) * 8
        else:
            if btype == 2:
                aligned = _code([r.bits(3) for _ in range(8)])
            _read_lengths(r, main_lens, 0, 256)
            _read_lengths(r, main_lens, 256, n_main)
            _read_lengths(r, len_lens, 0, 249)
            main = _code(main_lens)
            length = _code(len_lens) if any(len_lens) else None
            end = len(out) + blen
            while len(out) < end:
                sym = main.decode(r)
                if sym < 256:
                    out.append(sym)
                else:
                    sym -= 256
                    mlen = sym & 7
                    if mlen == 7:
                        if length is None:
                            raise UnpackError("corrupt lzx: no length tree")
                        mlen += length.decode(r)
                    mlen += 2
                    slot = sym >> 3
                    if slot > 2:
                        extra = _EXTRA[slot]
                        off = _BASE[slot] - 2
                        if aligned is not None and extra >= 3:
                            off += (r.bits(extra - 3) << 3) + aligned.decode(r)
                        elif extra:
                            off += r.bits(extra)
                        r2, r1, r0 = r1, r0, off
                    elif slot == 1:
                        r0, r1 = r1, r0
                    elif slot == 2:
                        r0, r2 = r2, r0
                    start = len(out) - r0
                    if start < 0:
                        raise UnpackError("corrupt lzx: match before start")
                    for k in range(mlen):
                        out.append(out[start + k])
                if r.over:
                    raise UnpackError("truncated lzx stream")
                if len(out) >= frame_end:      # every 32 KB frame ends on a 16-bit boundary
                    frame_end += _FRAME
                    r.align()
        if len(out) >= frame_end:
            frame_end += _FRAME * ((len(out) - frame_end) // _FRAME + 1)
    out = out[:size]
    if e8_size:
        _e8(out, e8_size, start_pos)
    return bytes(out)


def _e8(out: bytearray, file_size: int, start_pos: int) -> None:
    """Undo the x86 CALL translation, frame by frame."""
    for frame in range(0, len(out), _FRAME):
        if (start_pos + frame) // _FRAME >= 32768:
            return
        end = min(frame + _FRAME, len(out)) - 10
        i = frame
        while i < end:
            if out[i] != 0xE8:
                i += 1
                continue
            cur = start_pos + i
            absolute = int.from_bytes(out[i + 1:i + 5], "little", signed=True)
            if -cur <= absolute < file_size:
                rel = absolute - cur if absolute >= 0 else absolute + file_size
                out[i + 1:i + 5] = (rel & 0xFFFFFFFF).to_bytes(4, "little")
            i += 5


def _encint(b: bytes, p: int) -> tuple[int, int]:
    v = 0
    for _ in range(9):
        if p >= len(b):
            raise UnpackError("corrupt chm: directory entry")
        x = b[p]
        p += 1
        v = (v << 7) | (x & 0x7F)
        if not x & 0x80:
            return v, p
    raise UnpackError("corrupt chm: directory entry")


def _directory(data: bytes) -> tuple[list[tuple[str, int, int, int]], int]:
    if len(data) < 0x58:
        raise UnpackError("corrupt chm: short header")
    version = struct.unpack_from("<I", data, 4)[0]
    dir_off, dir_len = struct.unpack_from("<QQ", data, 0x48)
    content = struct.unpack_from("<Q", data, 0x58)[0] if version >= 3 and len(data) >= 0x60 else dir_off + dir_len
    itsp = data[dir_off:dir_off + 0x54]
    if itsp[:4] != b"ITSP":
        raise UnpackError("corrupt chm: no directory")
    hlen, chunk = struct.unpack_from("<I", itsp, 8)[0], struct.unpack_from("<I", itsp, 0x10)[0]
    n_chunks = struct.unpack_from("<I", itsp, 0x2C)[0]
    if not 0x20 <= chunk <= 1 << 20 or n_chunks > 100_000:
        raise UnpackError("corrupt chm: directory size")
    entries = []
    for i in range(n_chunks):
        c = data[dir_off + hlen + i * chunk:dir_off + hlen + (i + 1) * chunk]
        if c[:4] != b"PMGL":
            continue
        p, end = 0x14, chunk - struct.unpack_from("<I", c, 4)[0]
        while p < min(end, len(c)):
            n, p = _encint(c, p)
            name = c[p:p + n].decode("utf-8", "replace")
            p += n
            sec, p = _encint(c, p)
            off, p = _encint(c, p)
            ln, p = _encint(c, p)
            entries.append((name, sec, off, ln))
    return entries, content


def _section1(data: bytes, files: dict[str, tuple[int, int, int]], content: int, need: int) -> bytes | str:
    """The compressed section's bytes (first `need`), or why not."""
    def plain(name: str) -> bytes | None:
        e = files.get(name)
        return None if e is None or e[0] != 0 else data[content + e[1]:content + e[1] + e[2]]
    ctrl, stream, table = (plain("::DataSpace/Storage/MSCompressed/ControlData"),
                           plain("::DataSpace/Storage/MSCompressed/Content"), plain(_RESET_TABLE))
    if ctrl is None or stream is None or table is None or len(ctrl) < 24 or ctrl[4:8] != b"LZXC" or len(table) < 40:
        return "corrupt member: no LZX section"
    version, reset, window, per_reset = struct.unpack_from("<IIII", ctrl, 8)
    if version == 2:
        reset, window = reset * _FRAME, window * _FRAME
    if window < 2 or window & (window - 1):
        return "corrupt member: LZX window size"
    window_bits = window.bit_length() - 1
    n, _, table_off = struct.unpack_from("<III", table, 4)
    total, _, block = struct.unpack_from("<QQQ", table, 16)
    offsets = [struct.unpack_from("<Q", table, table_off + 8 * i)[0] for i in range(min(n, 1 << 20))
               if table_off + 8 * i + 8 <= len(table)]
    block = block or _FRAME
    # the stream restarts every `blocks` table entries (chmlib's reset_blkcount)
    blocks = max(1, reset // max(1, window // 2) * max(1, per_reset))
    out = bytearray()
    for k in range(0, len(offsets), blocks):
        if len(out) >= min(need, total):
            break
        end = offsets[k + blocks] if k + blocks < len(offsets) else len(stream)
        want = min(blocks * block, total - len(out))
        out += lzx_decode(stream[offsets[k]:end], want, window_bits, len(out))
    return bytes(out)


def unpack_chm(data: bytes, name: str, cap: int) -> Iterator[Member]:
    try:
        entries, content = _directory(data)
    except struct.error:
        raise UnpackError("truncated chm: directory") from None
    files = {n: (s, o, ln) for n, s, o, ln in entries}
    wanted = [(n, s, o, ln) for n, s, o, ln in entries if ln and not n.startswith(("::", "/#", "/$"))]
    need = max((o + ln for n, s, o, ln in wanted if s == 1), default=0)
    section1: bytes | str | None = None
    if need:
        if need > MAX_DECODE:
            section1 = "too large"
        else:
            try:
                section1 = _section1(data, files, content, min(need, cap + 1))
            except UnpackError as e:
                section1 = f"corrupt member: {e}"
            except struct.error:
                section1 = "truncated"
    for n, sec, off, ln in wanted:
        label = n.lstrip("/")
        if ln > cap:
            yield Member(label, None, "too large", ln)
        elif sec == 0:
            body = data[content + off:content + off + ln]
            yield Member(label, body) if len(body) == ln else Member(label, None, "truncated", ln)
        elif isinstance(section1, str):
            yield Member(label, None, section1, ln)
        elif section1 is not None and off + ln <= len(section1):
            yield Member(label, section1[off:off + ln])
        else:
            yield Member(label, None, "truncated", ln)
