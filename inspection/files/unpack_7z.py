"""7-Zip archives: LZMA, LZMA2, deflate, bzip2 or stored folders, with or
without the x86 BCJ filter, plain or compressed headers.

Same contract as `unpack`. What 7-Zip can write but this reader does not
decode (AES encryption, BCJ2, PPMd, ARM filters...) is named per file:
``encrypted`` or ``unsupported compression: <method>``. A solid folder is
decompressed up to `cap` bytes; files past that are "too large".
"""
from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from inspection.files.unpack_base import Member, UnpackError

__all__ = ["unpack_7z"]

_COPY, _LZMA, _LZMA2, _DEFLATE, _BZIP2 = b"\x00", b"\x03\x01\x01", b"\x21", b"\x04\x01\x08", b"\x04\x02\x02"
_BCJ_X86, _AES = b"\x03\x03\x01\x03", b"\x06\xf1\x07\x01"
_NAMES = {b"\x03\x03\x01\x1b": "bcj2", b"\x03\x04\x01": "ppmd", b"\x03\x03\x05\x01": "arm", b"\x0a": "arm64",
          b"\x03\x03\x04\x01": "powerpc", b"\x03\x03\x07\x01": "sparc", b"\x03": "delta", b"\x04\x01\x09": "deflate64"}
_MAX_ITEMS = 1_000_000


class _Reader:
    __slots__ = ("b", "pos")

    def __init__(self, b: bytes) -> None:
        self.b, self.pos = b, 0

    def byte(self) -> int:
        if self.pos >= len(self.b):
            raise UnpackError("corrupt 7z: header ends early")
        self.pos += 1
        return self.b[self.pos - 1]

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.b):
            raise UnpackError("corrupt 7z: header ends early")
        self.pos += n
        return self.b[self.pos - n:self.pos]

    def num(self) -> int:
        first, mask, value = self.byte(), 0x80, 0
        for i in range(8):
            if not first & mask:
                return value | ((first & (mask - 1)) << (8 * i))
            value |= self.byte() << (8 * i)
            mask >>= 1
        return value

    def count(self) -> int:
        n = self.num()
        if n > _MAX_ITEMS:
            raise UnpackError("corrupt 7z: too many items")
        return n

    def bits(self, n: int) -> list[bool]:
        out, cur, mask = [], 0, 0
        for _ in range(n):
            if not mask:
                cur, mask = self.byte(), 0x80
            out.append(bool(cur & mask))
            mask >>= 1
        return out

    def defined(self, n: int) -> list[bool]:
        return [True] * n if self.byte() else self.bits(n)


@dataclass(slots=True)
class _Coder:
    method: bytes
    n_in: int
    n_out: int
    props: bytes


@dataclass(slots=True)
class _Folder:
    coders: list[_Coder]
    binds: list[tuple[int, int]]          # (in index, out index)
    packed: list[int]                      # in indexes fed by pack streams
    sizes: list[int] = field(default_factory=list)   # one per out stream

    def unpack_size(self) -> int:
        bound = {o for _, o in self.binds}
        for i, s in enumerate(self.sizes):
            if i not in bound:
                return s
        return 0


@dataclass(slots=True)
class _Streams:
    pack_pos: int = 0
    pack_sizes: list[int] = field(default_factory=list)
    folders: list[_Folder] = field(default_factory=list)
    sub_counts: list[int] = field(default_factory=list)
    sub_sizes: list[int] = field(default_factory=list)


def _skip_digests(r: _Reader, n: int) -> None:
    r.take(4 * sum(r.defined(n)))


def _folder(r: _Reader) -> _Folder:
    coders = []
    for _ in range(r.count()):
        flag = r.byte()
        method = r.take(flag & 0x0F)
        n_in, n_out = (r.count(), r.count()) if flag & 0x10 else (1, 1)
        props = r.take(r.count()) if flag & 0x20 else b""
        if flag & 0x80:
            raise UnpackError("corrupt 7z: alternative methods")
        coders.append(_Coder(method, n_in, n_out, props))
    total_in, total_out = sum(c.n_in for c in coders), sum(c.n_out for c in coders)
    binds = [(r.count(), r.count()) for _ in range(total_out - 1)]
    n_packed = total_in - len(binds)
    if n_packed == 1:
        bound_in = {i for i, _ in binds}
        packed = [next((i for i in range(total_in) if i not in bound_in), 0)]
    else:
        packed = [r.count() for _ in range(n_packed)]
    return _Folder(coders, binds, packed)


def _streams_info(r: _Reader) -> _Streams:
    s = _Streams()
    pid = r.byte()
    if pid == 0x06:                                   # PackInfo
        s.pack_pos, n = r.num(), r.count()
        while (pid := r.byte()) != 0x00:
            if pid == 0x09:
                s.pack_sizes = [r.num() for _ in range(n)]
            elif pid == 0x0A:
                _skip_digests(r, n)
            else:
                raise UnpackError("corrupt 7z: pack info")
        pid = r.byte()
    if pid == 0x07:                                   # UnpackInfo
        if r.byte() != 0x0B:
            raise UnpackError("corrupt 7z: no folders")
        n = r.count()
        if r.byte():
            raise UnpackError("corrupt 7z: external folders")
        s.folders = [_folder(r) for _ in range(n)]
        if r.byte() != 0x0C:
            raise UnpackError("corrupt 7z: no unpack sizes")
        for f in s.folders:
            f.sizes = [r.num() for _ in range(sum(c.n_out for c in f.coders))]
        while (pid := r.byte()) != 0x00:
            if pid == 0x0A:
                _skip_digests(r, n)
            else:
                raise UnpackError("corrupt 7z: unpack info")
        pid = r.byte()
    s.sub_counts = [1] * len(s.folders)
    if pid == 0x08:                                   # SubStreamsInfo
        pid = r.byte()
        if pid == 0x0D:
            s.sub_counts = [r.count() for _ in s.folders]
            pid = r.byte()
        if pid == 0x09:
            for f, k in zip(s.folders, s.sub_counts):
                sizes = [r.num() for _ in range(k - 1)] if k else []
                s.sub_sizes += sizes + ([f.unpack_size() - sum(sizes)] if k else [])
            pid = r.byte()
        while pid != 0x00:
            if pid == 0x0A:
                _skip_digests(r, sum(k for f, k in zip(s.folders, s.sub_counts)))
            else:
                raise UnpackError("corrupt 7z: substreams info")
            pid = r.byte()
        pid = r.byte()
    if not s.sub_sizes:
        for f, k in zip(s.folders, s.sub_counts):
            s.sub_sizes += [f.unpack_size()] if k == 1 else [0] * k
    if pid != 0x00:
        raise UnpackError("corrupt 7z: streams info")
    return s


def _lzma_filter(c: _Coder, out_size: int) -> dict:
    """Raw LZMA filter options from the coder's properties. The dictionary
    never needs to exceed the output, so a hostile 4 GB one is not allocated."""
    room = max(1 << 12, out_size)
    if c.method == _LZMA and len(c.props) >= 5 and c.props[0] < 225:
        d = c.props[0]
        return {"id": lzma.FILTER_LZMA1, "lc": d % 9, "lp": (d // 9) % 5, "pb": d // 45,
                "dict_size": max(1 << 12, min(int.from_bytes(c.props[1:5], "little"), room))}
    if c.method == _LZMA2 and c.props:
        p = min(c.props[0], 40)
        size = 0xFFFFFFFF if p == 40 else (2 | (p & 1)) << (p // 2 + 11)
        return {"id": lzma.FILTER_LZMA2, "dict_size": max(1 << 12, min(size, room))}
    raise UnpackError("corrupt 7z: lzma properties")


def _decode(folder: _Folder, packed: bytes, cap: int) -> bytes | str:
    """The folder's output (at most `cap` + 1 bytes), or the reason it cannot be read."""
    coders = folder.coders
    for c in coders:
        if c.method == _AES:
            return "encrypted"
    chain = coders
    if len(coders) == 2 and folder.binds:
        inner = coders[folder.binds[0][1]]            # its output feeds the other coder
        outer = coders[1 - folder.binds[0][1]]
        if outer.method != _BCJ_X86:
            return f"unsupported compression: {_NAMES.get(outer.method, outer.method.hex())}"
        chain = [outer, inner]
    elif len(coders) != 1:
        return "unsupported compression: " + "+".join(_NAMES.get(c.method, c.method.hex()) for c in coders)
    last = chain[-1]
    want = min(folder.unpack_size(), cap + 1)
    try:
        if last.method in (_LZMA, _LZMA2):
            filters = [{"id": lzma.FILTER_X86}] * (len(chain) - 1) + [_lzma_filter(last, folder.unpack_size())]
            return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters).decompress(packed, want)
        if len(chain) > 1:
            return "unsupported compression: bcj without lzma"
        if last.method == _COPY:
            return packed[:want]
        if last.method == _DEFLATE:
            return zlib.decompressobj(-zlib.MAX_WBITS).decompress(packed, want)
        if last.method == _BZIP2:
            return bz2.BZ2Decompressor().decompress(packed, want)
    except (lzma.LZMAError, zlib.error, OSError, ValueError, EOFError):
        return "corrupt member: bad compressed data"
    return f"unsupported compression: {_NAMES.get(last.method, last.method.hex())}"


def _folder_outputs(data: bytes, s: _Streams, cap: int) -> list[bytes | str]:
    pos = 32 + s.pack_pos
    out: list[bytes | str] = []
    idx = 0
    for f in s.folders:
        chunks = []
        for _ in f.packed:
            if idx >= len(s.pack_sizes):
                raise UnpackError("corrupt 7z: pack streams")
            chunks.append(data[pos:pos + s.pack_sizes[idx]])
            pos += s.pack_sizes[idx]
            idx += 1
        if len(f.packed) != 1:
            out.append("unsupported compression: " + "+".join(_NAMES.get(c.method, c.method.hex())
                                                                for c in f.coders))
        else:
            out.append(_decode(f, chunks[0], cap))
    return out


def unpack_7z(data: bytes, name: str, cap: int) -> Iterator[Member]:
    if len(data) < 32:
        raise UnpackError("corrupt 7z: short signature header")
    next_off, next_size = int.from_bytes(data[12:20], "little"), int.from_bytes(data[20:28], "little")
    header = data[32 + next_off:32 + next_off + next_size]
    if len(header) < next_size or not header:
        raise UnpackError("truncated 7z: header missing")
    r = _Reader(header)
    pid = r.byte()
    if pid == 0x17:                                   # the header is itself packed
        (decoded, *_) = _folder_outputs(data, _streams_info(r), cap) or ["corrupt"]
        if isinstance(decoded, str):
            if decoded == "encrypted":
                yield Member("header", None, "encrypted")
                return
            raise UnpackError(f"corrupt 7z: header: {decoded}")
        r = _Reader(decoded)
        pid = r.byte()
    if pid != 0x01:
        raise UnpackError("corrupt 7z: no header")
    pid = r.byte()
    if pid == 0x02:                                   # archive properties: skipped
        while r.byte() != 0x00:
            r.take(r.num())
        pid = r.byte()
    if pid == 0x03:                                   # additional streams: not used for files
        _streams_info(r)
        pid = r.byte()
    s = _Streams()
    if pid == 0x04:
        s = _streams_info(r)
        pid = r.byte()
    names, empty = _files_info(r) if pid == 0x05 else ([], [])
    outputs = _folder_outputs(data, s, cap)
    yield from _members(s, outputs, names, empty, cap)


def _files_info(r: _Reader) -> tuple[list[str], list[bool]]:
    n = r.count()
    names = [f"file{i}" for i in range(n)]
    empty = [False] * n
    while (pid := r.num()) != 0x00:
        size = r.num()
        body = _Reader(r.take(size))
        if pid == 0x0E:
            empty = body.bits(n)
        elif pid == 0x11:
            if body.byte():
                continue
            text = body.b[1:].decode("utf-16-le", "replace").split("\x00")
            names = [t or names[i] for i, t in enumerate(text[:n])] + names[len(text[:n]):]
    return names, empty


def _members(s: _Streams, outputs: list[bytes | str], names: list[str], empty: list[bool],
             cap: int) -> Iterator[Member]:
    file_i = 0
    sub_i = 0
    for f_i, k in enumerate(s.sub_counts):
        out = outputs[f_i] if f_i < len(outputs) else "corrupt member: missing folder"
        offset = 0
        for _ in range(k):
            while file_i < len(names) and file_i < len(empty) and empty[file_i]:
                file_i += 1
            label = names[file_i] if file_i < len(names) else f"stream{sub_i}"
            size = s.sub_sizes[sub_i] if sub_i < len(s.sub_sizes) else 0
            file_i += 1
            sub_i += 1
            if isinstance(out, str):
                yield Member(label, None, out, size)
            elif size > cap or offset + size > cap:
                yield Member(label, None, "too large", size)
            elif offset + size > len(out):
                yield Member(label, None, "truncated", size)
            else:
                yield Member(label, out[offset:offset + size])
            offset += size
