"""Unpackers for older Microsoft/Apple/optical formats: cab, szdd, binhex, tnef, iso.

Same contract as `unpack`: generators of `Member`s of at most `cap` bytes,
`UnpackError` for a container that cannot be read. Compression methods not
implemented here (cab Quantum/LZX) are named, never guessed.
"""
from __future__ import annotations

import zlib
from collections.abc import Iterator

from inspection.files.unpack_base import Member, UnpackError

__all__ = ["unpack_binhex", "unpack_cab", "unpack_iso", "unpack_szdd", "unpack_tnef"]


def _u16(b: bytes, at: int) -> int:
    return int.from_bytes(b[at:at + 2], "little")


def _u32(b: bytes, at: int) -> int:
    return int.from_bytes(b[at:at + 4], "little")


def _cstr(b: bytes, at: int, limit: int = 1024) -> tuple[str, int]:
    end = b.find(b"\x00", at, at + limit)
    if end < 0:
        raise UnpackError("corrupt: unterminated name")
    return b[at:end].decode("latin-1"), end + 1


# -- Microsoft cabinet ------------------------------------------------------------------------

_CAB_METHODS = {0: "none", 1: "mszip", 2: "quantum", 3: "lzx"}


def unpack_cab(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """Folders stored or MSZIP-compressed (deflate blocks that share a 32 KB
    window); each folder is decompressed up to `cap` bytes."""
    if len(data) < 36:
        raise UnpackError("corrupt cab: short header")
    coff_files, n_folders, n_files, flags = _u32(data, 16), _u16(data, 26), _u16(data, 28), _u16(data, 30)
    pos = 36
    res_folder = res_data = 0
    if flags & 4:
        res_header, res_folder, res_data = _u16(data, 36), data[38], data[39]
        pos = 40 + res_header
    try:
        for bit in (1, 2):           # previous / next cabinet: two names each
            if flags & bit:
                _, pos = _cstr(data, pos)
                _, pos = _cstr(data, pos)
    except UnpackError:
        raise UnpackError("corrupt cab: bad cabinet names") from None
    folders = []
    for _ in range(n_folders):
        if pos + 8 > len(data):
            raise UnpackError("corrupt cab: truncated folder table")
        folders.append((_u32(data, pos), _u16(data, pos + 4), _u16(data, pos + 6)))
        pos += 8 + res_folder
    files = []
    pos = coff_files
    for _ in range(n_files):
        if pos + 16 > len(data):
            raise UnpackError("corrupt cab: truncated file table")
        size, offset, folder = _u32(data, pos), _u32(data, pos + 4), _u16(data, pos + 8)
        fname, pos = _cstr(data, pos + 16)
        files.append((fname.replace("\\", "/"), size, offset, folder))
    streams: dict[int, bytes | str] = {}
    for fname, size, offset, folder in files:
        if folder >= len(folders):
            yield Member(fname, None, "corrupt member: folder out of range", size)
            continue
        if folder not in streams:
            streams[folder] = _cab_folder(data, folders[folder], res_data, cap)
        stream = streams[folder]
        if isinstance(stream, str):
            yield Member(fname, None, stream, size)
        elif size > cap:
            yield Member(fname, None, "too large", size)
        elif offset + size > len(stream):
            yield Member(fname, None, "too large" if len(stream) > cap else "truncated", size)
        else:
            yield Member(fname, stream[offset:offset + size])


def _cab_folder(data: bytes, folder: tuple[int, int, int], res_data: int, cap: int) -> bytes | str:
    """The folder's uncompressed bytes (cut after `cap` + 1), or why not."""
    start, blocks, ctype = folder
    method = ctype & 0xF
    if method not in (0, 1):
        return f"unsupported compression: {_CAB_METHODS.get(method, str(method))}"
    out = bytearray()
    pos = start
    for _ in range(blocks):
        if pos + 8 > len(data):
            return "truncated"
        cb = _u16(data, pos + 4)
        pos += 8 + res_data
        block = data[pos:pos + cb]
        pos += cb
        if len(block) < cb:
            return "truncated"
        if method == 0:
            out += block
        else:
            if not block.startswith(b"CK"):
                return "corrupt member: bad mszip block"
            try:
                d = zlib.decompressobj(-zlib.MAX_WBITS, zdict=bytes(out[-32768:]))
                out += d.decompress(block[2:], cap + 1 - len(out))
            except zlib.error:
                return "corrupt member: bad mszip data"
        if len(out) > cap:
            break
    return bytes(out)


# -- SZDD (MS-DOS COMPRESS.EXE) -------------------------------------------------------------------

def unpack_szdd(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """LZSS with a 4 KB window primed with spaces."""
    if len(data) < 14:
        raise UnpackError("corrupt szdd: short header")
    want = _u32(data, 10)
    missing = chr(data[9]) if 32 < data[9] < 127 else ""
    inner = name.rsplit("/", 1)[-1]
    inner = inner[:-1] + missing if inner.endswith("_") and missing else inner + ".out"
    if want > cap:
        yield Member(inner, None, "too large", want)
        return
    window = bytearray(b" " * 4096)
    wpos = 4096 - 16
    out = bytearray()
    pos = 14
    while pos < len(data) and len(out) < want:
        control = data[pos]
        pos += 1
        for bit in range(8):
            if pos >= len(data) or len(out) >= want:
                break
            if control & (1 << bit):
                b = data[pos]
                pos += 1
                out.append(b)
                window[wpos] = b
                wpos = (wpos + 1) & 0xFFF
            else:
                if pos + 1 >= len(data):
                    pos = len(data)
                    break
                off = data[pos] | ((data[pos + 1] & 0xF0) << 4)
                length = (data[pos + 1] & 0x0F) + 3
                pos += 2
                for i in range(length):
                    b = window[(off + i) & 0xFFF]
                    out.append(b)
                    window[wpos] = b
                    wpos = (wpos + 1) & 0xFFF
    if len(out) < want:
        yield Member(inner, None, "truncated", want)
    else:
        yield Member(inner, bytes(out[:want]))


# -- BinHex 4.0 -------------------------------------------------------------------------------

_HQX = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
_HQX_VALUE = {c: i for i, c in enumerate(_HQX)}


def unpack_binhex(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """The data and resource forks of a BinHex 4.0 file."""
    start = data.find(b":", data.find(b"BinHex"))
    end = data.find(b":", start + 1)
    if start < 0 or end < 0:
        raise UnpackError("corrupt binhex: no data between colons")
    bits = acc = 0
    packed = bytearray()
    for c in data[start + 1:end]:
        v = _HQX_VALUE.get(c)
        if v is None:
            if c in b" \t\r\n":
                continue
            raise UnpackError("corrupt binhex: bad character")
        acc = (acc << 6) | v
        bits += 6
        if bits >= 8:
            bits -= 8
            packed.append((acc >> bits) & 0xFF)
        if len(packed) > 2 * cap + 1024:
            break
    raw = _rle90(packed, 2 * cap + 1024)
    if not raw:
        raise UnpackError("corrupt binhex: empty")
    n = raw[0]
    fname = raw[1:1 + n].decode("latin-1") or "data"
    pos = 1 + n + 1 + 4 + 4 + 2
    dlen, rlen = int.from_bytes(raw[pos:pos + 4], "big"), int.from_bytes(raw[pos + 4:pos + 8], "big")
    pos += 8 + 2
    for label, length in ((fname, dlen), (f"{fname}.rsrc", rlen)):
        if length == 0:
            pos += 2
            continue
        if length > cap:
            yield Member(label, None, "too large", length)
        elif pos + length > len(raw):
            yield Member(label, None, "truncated", length)
        else:
            yield Member(label, bytes(raw[pos:pos + length]))
        pos += length + 2


def _rle90(packed: bytes | bytearray, limit: int) -> bytes:
    """BinHex run-length: 0x90 n repeats the previous byte n-1 more times; 0x90 0 is 0x90."""
    out = bytearray()
    i = 0
    while i < len(packed) and len(out) <= limit:
        b = packed[i]
        if b == 0x90 and i + 1 < len(packed):
            n = packed[i + 1]
            if n == 0:
                out.append(0x90)
            elif out:
                out += out[-1:] * (n - 1)
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


# -- TNEF (winmail.dat) -----------------------------------------------------------------------

_ATT_ATTACH_DATA = 0x0006800F
_ATT_ATTACH_TITLE = 0x00018010
_ATT_ATTACH_REND = 0x00069002


def unpack_tnef(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """Attachments of a TNEF stream: each attAttachData, named by its attAttachTitle."""
    pos, title, n = 6, "", 0
    pending: tuple[str, bytes | None, int] | None = None
    while pos + 9 <= len(data):
        level, attr, length = data[pos], _u32(data, pos + 1), _u32(data, pos + 5)
        body = data[pos + 9:pos + 9 + length]
        if level not in (1, 2) or len(body) < length:
            raise UnpackError("corrupt tnef: bad attribute")
        pos += 9 + length + 2
        if attr == _ATT_ATTACH_REND:          # a new attachment starts
            if pending is not None:
                yield _tnef_member(*pending)
            pending, title = None, ""
        elif attr == _ATT_ATTACH_TITLE:
            title = body.rstrip(b"\x00").decode("latin-1")
            if pending is not None:
                pending = (title, pending[1], pending[2])
        elif attr == _ATT_ATTACH_DATA:
            n += 1
            pending = (title or f"attachment{n}", body if length <= cap else None, length)
    if pending is not None:
        yield _tnef_member(*pending)


def _tnef_member(label: str, body: bytes | None, length: int) -> Member:
    return Member(label, body) if body is not None else Member(label, None, "too large", length)


# -- ISO 9660 ---------------------------------------------------------------------------------

_ISO_MAX_ENTRIES = 100_000


def unpack_iso(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """Files of an ISO 9660 image, walked from the primary volume's root directory."""
    pvd = None
    for sector in range(16, 32):
        at = sector * 2048
        if data[at + 1:at + 6] != b"CD001":
            break
        if data[at] == 1:
            pvd = at
            break
    if pvd is None:
        raise UnpackError("corrupt iso: no primary volume descriptor")
    bs = _u16(data, pvd + 128) or 2048
    root = data[pvd + 156:pvd + 190]
    stack = [("", _u32(root, 2), _u32(root, 10))]
    seen: set[int] = set()
    entries = 0
    while stack:
        prefix, lba, size = stack.pop()
        if lba in seen:
            continue
        seen.add(lba)
        at, end = lba * bs, min(lba * bs + size, len(data))
        while at < end and entries < _ISO_MAX_ENTRIES:
            rlen = data[at]
            if rlen == 0:                    # records do not cross sectors: skip to the next one
                at = (at // bs + 1) * bs
                continue
            rec = data[at:at + rlen]
            at += rlen
            if len(rec) < 34:
                break
            entries += 1
            nlen = rec[32]
            raw_name = rec[33:33 + nlen]
            if raw_name in (b"\x00", b"\x01"):
                continue
            fname = prefix + raw_name.decode("latin-1").split(";", 1)[0]
            f_lba, f_size, fflags = _u32(rec, 2), _u32(rec, 10), rec[25]
            if fflags & 2:
                stack.append((fname + "/", f_lba, f_size))
            elif f_size > cap:
                yield Member(fname, None, "too large", f_size)
            elif f_lba * bs + f_size > len(data):
                yield Member(fname, None, "truncated", f_size)
            else:
                yield Member(fname, data[f_lba * bs:f_lba * bs + f_size])
