"""Type identification and unpacking of archives and compressed streams.

Pure: bytes in, members out. Each unpacker is a generator of `Member`s so
the scanner can check its time, member and size budgets between members
and stop early. Decompression never produces more than `cap` bytes per
member: a member that would is yielded without data as "too large" (zip
bombs are cut while reading, not after). A container that cannot be read
raises `UnpackError`; members already yielded stay valid.

Here: identification, zip, gzip/bzip2/xz, tar. Other formats have their own
modules (`unpack_docs`: mail, OLE, RTF, PDF, HTML, cpio; `unpack_legacy`:
cab, SZDD, BinHex, TNEF, ISO; `unpack_7z`; `unpack_arj`; `unpack_chm`; `unpack_pe`: PE
overlays, OneNote); `UNPACKERS` maps each type to its unpacker.
"""
from __future__ import annotations

import bisect
import bz2
import io
import itertools
import lzma
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from inspection.files import unpack_7z, unpack_arj, unpack_chm, unpack_docs, unpack_legacy, unpack_pe
from inspection.files.explode import MAX_DECODE as MAX_EXPLODE
from inspection.files.explode import explode
from inspection.files.inflate64 import inflate64
from inspection.files.unpack_base import Member, UnpackError, read_capped

__all__ = ["Member", "UnpackError", "UNPACKERS", "UNSUPPORTED", "identify", "read_capped"]  # re-exported


Unpacker = Callable[[bytes, str, int], Iterator[Member]]

# -- identification --------------------------------------------------------------------------

# (offset, magic, type): first match wins.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", "zip"), (0, b"PK\x05\x06", "zip"), (0, b"PK\x07\x08PK", "zip"), (0, b"PK00PK", "zip"),
    (0, b"\x1f\x8b", "gzip"), (0, b"BZh", "bz2"), (0, b"\xfd7zXZ\x00", "xz"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"), (0, b"%PDF-", "pdf"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z"), (0, b"Rar!\x1a\x07", "rar"), (0, b"MSCF\x00\x00\x00\x00", "cab"),
    (0, b"ITSF", "chm"), (0, b"SZDD\x88\xf0\x27\x33", "szdd"), (0, b"KWAJ\x88\xf0\x27\xd1", "kwaj"),
    (0, b"\x78\x9f\x3e\x22", "tnef"), (0, b"\x60\xea", "arj"), (7, b"**ACE**", "ace"), (0, b"xar!", "xar"),
    (0, b"070701", "cpio"), (0, b"070702", "cpio"), (0, b"070707", "cpio"), (0, b"\xc7\x71", "cpio"),
    (0, b"\x71\xc7", "cpio"), (2, b"-lh", "lha"), (0, b"\x28\xb5\x2f\xfd", "zstd"), (0, b"LZIP", "lzip"),
    (0x8001, b"CD001", "iso"), (0x8801, b"CD001", "iso"), (0x9001, b"CD001", "iso"),
    (0, bytes.fromhex("e4525c7b8cd8a74daeb15378d02996d3"), "onenote"),
    (0, b"\x7a\x1a\x20\x10", "sis"), (8, b"\x19\x04\x00\x10", "sis"),
    (257, b"ustar", "tar"), (0, b"MZ", "pe"), (0, b"\x7fELF", "elf"), (0, b"{\\rt", "rtf"),
    (0, b"\xcf\xfa\xed\xfe", "macho"), (0, b"\xce\xfa\xed\xfe", "macho"), (0, b"\xca\xfe\xba\xbe", "macho"),
    (0, b"\x89PNG\r\n\x1a\n", "png"), (0, b"GIF8", "gif"), (0, b"\xff\xd8\xff", "jpeg"),
)

_MAIL_HEADERS = (b"from:", b"to:", b"subject:", b"mime-version:", b"content-type:", b"received:",
                 b"return-path:", b"message-id:", b"date:", b"delivered-to:", b"x-")
_UU = re.compile(rb"begin [0-7]{3,4} [^\r\n]+\r?\n")
_TEXT_BYTES = bytes(range(0x20, 0x7f)) + b"\t\n\r\x0c"
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<a ", b"<script", b"<iframe", b"<div")


IDENTIFY_BYTES = 4096   # `identify` reads no further: a file's first IDENTIFY_BYTES decide its kind


def _by_first_byte() -> dict[int, tuple[tuple[int, bytes, str], ...]]:
    """_MAGIC's entries at offset 0 under their first byte, each with its place in _MAGIC."""
    out: dict[int, list[tuple[int, bytes, str]]] = {}
    for i, (offset, magic, kind) in enumerate(_MAGIC):
        if offset == 0:
            out.setdefault(magic[0], []).append((i, magic, kind))
    return {b: tuple(v) for b, v in out.items()}


_AT_START = _by_first_byte()
_ELSEWHERE = tuple((i, offset, magic, kind) for i, (offset, magic, kind) in enumerate(_MAGIC) if offset)


def _magic_kind(data: bytes) -> str | None:
    """The kind of the first entry of _MAGIC that `data` matches, as a walk of the whole table
    would find it, without trying the three dozen signatures at offset 0 one by one (a file
    closes while the live path holds its last packet)."""
    first, kind = len(_MAGIC), None
    for i, magic, k in _AT_START.get(data[0], ()) if data else ():
        if data.startswith(magic):
            first, kind = i, k
            break
    for i, offset, magic, k in _ELSEWHERE:
        if i > first:
            break
        if data.startswith(magic, offset):
            return k
    return kind


def identify(data: bytes, name: str = "") -> str:
    """Short type name of `data`: a container kind (a key of `UNPACKERS` or
    `UNSUPPORTED`) or a leaf kind (``pe``, ``elf``, ``text``, ``data``...)."""
    kind = _magic_kind(data)
    if kind is not None:
        return kind
    head = data[:IDENTIFY_BYTES]
    if head.startswith(b"(This file must be converted with BinHex") or b"\n(This file must be converted with BinHex" \
            in head[:512]:
        return "binhex"
    if _UU.match(head):
        return "uu"
    if head.startswith(b"From ") and b"\n" in head:
        second = head.split(b"\n", 2)[1].lower()
        if second.startswith(_MAIL_HEADERS):
            return "mbox"
    low = head.lstrip(b"\r\n\t ").lower()
    if _looks_like_mail(low):
        return "mail"
    if low.startswith(_HTML_STARTS) or b"<html" in low[:1024]:
        return "html"
    if _is_old_tar(data):
        return "tar"
    if not head.translate(None, _TEXT_BYTES):
        return "text"
    return "data"


def _looks_like_mail(low: bytes) -> bool:
    """Headers first (``Name: value`` lines), at least two of them known ones."""
    lines = low.split(b"\n", 12)[:12]
    if not lines or b":" not in lines[0] or b" " in lines[0].split(b":", 1)[0]:
        return False
    known = sum(1 for ln in lines if ln.startswith(_MAIL_HEADERS))
    return known >= 2


def _is_old_tar(data: bytes) -> bool:
    """A pre-POSIX tar header: its checksum field matches the header's sum."""
    if len(data) < 512:
        return False
    hdr = data[:512]
    try:
        chk = int(hdr[148:156].strip(b" \x00") or b"-1", 8)
    except ValueError:
        return False
    total = sum(hdr[:148]) + 8 * 32 + sum(hdr[156:])
    return chk == total and hdr[0] != 0


# -- shared helpers ---------------------------------------------------------------------------

def _decompress(make: Callable[[], object], data: bytes, cap: int, kind: str, multi: bool) -> bytes | None:
    """Run a zlib/bz2/lzma decompressor over `data`, never producing more
    than `cap` bytes; concatenated streams (gzip members) when `multi`."""
    out = bytearray()
    rest = data
    while rest:
        d: Any = make()
        try:
            out += d.decompress(rest, cap + 1 - len(out))
            if hasattr(d, "unconsumed_tail"):      # zlib: input left over when the output cap was reached
                while d.unconsumed_tail and len(out) <= cap:
                    out += d.decompress(d.unconsumed_tail, cap + 1 - len(out))
            else:                                   # bz2/lzma: output kept back until asked for
                while len(out) <= cap and not d.eof and not d.needs_input:
                    out += d.decompress(b"", cap + 1 - len(out))
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as e:
            raise UnpackError(f"corrupt {kind}: {e}") from None
        if len(out) > cap:
            return None
        if not d.eof:
            raise UnpackError(f"corrupt {kind}: truncated stream")
        rest = d.unused_data.lstrip(b"\x00") if multi else b""
    return bytes(out)


def _inner_name(name: str, suffixes: tuple[str, ...]) -> str:
    base = name.rsplit("/", 1)[-1]
    for s in suffixes:
        if base.lower().endswith(s) and len(base) > len(s):
            return base[: -len(s)]
    return base + ".out"


# -- unpackers --------------------------------------------------------------------------------

_ZIP_METHODS = {0: "stored", 1: "shrink", 6: "implode", 8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma",
                93: "zstd", 95: "xz", 98: "ppmd", 99: "aes"}
_ZIP_SUPPORTED = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA})


def unpack_zip(data: bytes, name: str, cap: int) -> Iterator[Member]:
    """Zip and OOXML/ODF/JAR. Encrypted members and unsupported methods are
    named, not read; a member whose CRC fails is yielded as corrupt. Local
    entries the central directory does not list (a damaged or doctored
    directory, a truncated download) are read from their local headers, as
    an extracting tool that walks the file might."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, IndexError,
            NotImplementedError):
        zf, infos = None, []
    covered: list[tuple[int, int]] = []
    for info in infos:
        covered.append((info.header_offset, info.header_offset + 30 + len(info.filename.encode("utf-8", "replace"))
                        + len(info.extra) + info.compress_size))
        if not info.is_dir():
            yield _zip_member(zf, info, cap, data)
    found = False
    covered.sort()
    starts = [lo for lo, _ in covered]
    reach = list(itertools.accumulate((hi for _, hi in covered), max))   # furthest end up to each start
    for m in _ZIP_LOCAL.finditer(data):
        at = m.start()
        i = bisect.bisect_right(starts, at) - 1
        if i >= 0 and at < reach[i]:
            continue
        found = True
        member = _local_member(data, at, cap)
        if member is not None:
            yield member
    if zf is None:   # what was read from local headers stands; what may be missing is named
        raise UnpackError("truncated zip: no central directory" if found else
                          "corrupt zip: no central directory and no local entries")


_ZIP_LOCAL = re.compile(rb"PK\x03\x04")


def _zip_member(zf: zipfile.ZipFile | None, info: zipfile.ZipInfo, cap: int, data: bytes) -> Member:
    if info.flag_bits & 0x1:
        return Member(info.filename, None, "encrypted", info.file_size)
    if info.compress_type in _ZIP_PURE and zf is not None:
        return _pure_python(data, info.header_offset, info.filename, info.compress_type, info.compress_size,
                            info.file_size, info.flag_bits, info.CRC, cap)
    if info.compress_type not in _ZIP_SUPPORTED or zf is None:
        method = _ZIP_METHODS.get(info.compress_type, str(info.compress_type))
        return Member(info.filename, None, f"unsupported compression: {method}", info.file_size)
    try:
        with zf.open(info) as f:
            body = read_capped(f, cap)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError, RuntimeError,
            lzma.LZMAError, IndexError) as e:
        return Member(info.filename, None, f"corrupt member: {type(e).__name__}", info.file_size)
    if body is None:
        return Member(info.filename, None, "too large", info.file_size)
    return Member(info.filename, body)


_ZIP_PURE = frozenset({6, 9})     # implode, deflate64: decoded here, in Python


def _pure_python(data: bytes, header_at: int, label: str, method: int, csize: int, usize: int, flags: int,
                 crc: int, cap: int) -> Member:
    """Methods zlib does not have, decoded from the bytes after the entry's
    local header (pure Python, so entries over 8 MB are "too large")."""
    hdr = data[header_at:header_at + 30]
    if len(hdr) < 30 or hdr[:4] != b"PK\x03\x04":
        return Member(label, None, "corrupt member: no local header", usize)
    start = header_at + 30 + int.from_bytes(hdr[26:28], "little") + int.from_bytes(hdr[28:30], "little")
    if usize > cap or usize > MAX_EXPLODE:
        return Member(label, None, "too large", usize)
    try:
        packed = data[start:start + csize]
        body = explode(packed, usize, flags) if method == 6 else inflate64(packed, usize)
    except UnpackError as e:
        return Member(label, None, f"corrupt member: {e}", usize)
    if zlib.crc32(body) != crc:
        return Member(label, None, "corrupt member: CRC mismatch", usize)
    return Member(label, body)


def _local_member(data: bytes, at: int, cap: int) -> Member | None:
    """An entry read from its local header alone (stored or deflated)."""
    hdr = data[at:at + 30]
    if len(hdr) < 30:
        return Member(f"local entry at {at}", None, "truncated")
    flags, method = int.from_bytes(hdr[6:8], "little"), int.from_bytes(hdr[8:10], "little")
    csize, usize = int.from_bytes(hdr[18:22], "little"), int.from_bytes(hdr[22:26], "little")
    nlen, elen = int.from_bytes(hdr[26:28], "little"), int.from_bytes(hdr[28:30], "little")
    start = at + 30 + nlen + elen
    fname = data[at + 30:at + 30 + nlen].decode("utf-8", "replace") or "unnamed"
    label = f"{fname} (local entry at {at})"
    if fname.endswith("/") and csize == 0:
        return None
    if flags & 0x1:
        return Member(label, None, "encrypted", usize)
    if method == 0 and not flags & 0x8:
        body = data[start:start + csize]
        if len(body) > cap:
            return Member(label, None, "too large", usize)
        return Member(label, body) if len(body) == csize else Member(label, None, "truncated", usize)
    if method in _ZIP_PURE and not flags & 0x8:
        return _pure_python(data, at, label, method, csize, usize, flags, int.from_bytes(hdr[14:18], "little"), cap)
    if method == 8:
        d = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            body = d.decompress(data[start:], cap + 1)
        except zlib.error:
            return Member(label, None, "corrupt member: bad deflate data", usize)
        if len(body) > cap:
            return Member(label, None, "too large", usize)
        return Member(label, body) if d.eof else Member(label, None, "truncated", usize)
    return Member(label, None, f"unsupported compression: {_ZIP_METHODS.get(method, str(method))}", usize)


def unpack_gzip(data: bytes, name: str, cap: int) -> Iterator[Member]:
    inner = _inner_name(name, (".gz", ".tgz", ".z"))
    if name.lower().endswith(".tgz"):
        inner += ".tar"
    body = _decompress(lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), data, cap, "gzip", multi=True)
    yield Member(inner, body) if body is not None else Member(inner, None, "too large")


def unpack_bz2(data: bytes, name: str, cap: int) -> Iterator[Member]:
    inner = _inner_name(name, (".bz2", ".tbz2", ".tbz"))
    body = _decompress(bz2.BZ2Decompressor, data, cap, "bz2", multi=True)
    yield Member(inner, body) if body is not None else Member(inner, None, "too large")


def unpack_xz(data: bytes, name: str, cap: int) -> Iterator[Member]:
    inner = _inner_name(name, (".xz", ".txz"))
    body = _decompress(lzma.LZMADecompressor, data, cap, "xz", multi=True)
    yield Member(inner, body) if body is not None else Member(inner, None, "too large")


def unpack_tar(data: bytes, name: str, cap: int) -> Iterator[Member]:
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    except (tarfile.TarError, OSError, ValueError, EOFError) as e:
        raise UnpackError(f"corrupt tar: {e}") from None
    while True:
        try:
            info = tf.next()
        except (tarfile.TarError, OSError, ValueError, EOFError, UnicodeDecodeError) as e:
            raise UnpackError(f"corrupt tar: {e}") from None
        if info is None:
            return
        if not info.isfile():
            continue
        if info.size > cap:
            yield Member(info.name, None, "too large", info.size)
            continue
        try:
            f = tf.extractfile(info)
            body = b"" if f is None else f.read(info.size)
        except (tarfile.TarError, OSError, ValueError, EOFError) as e:
            raise UnpackError(f"corrupt tar: {e}") from None
        if len(body) < info.size:
            yield Member(info.name, None, "truncated", info.size)
        else:
            yield Member(info.name, body)


def _table() -> dict[str, Unpacker]:
    return {"zip": unpack_zip, "gzip": unpack_gzip, "bz2": unpack_bz2, "xz": unpack_xz, "tar": unpack_tar,
            "mail": unpack_docs.unpack_mail, "mbox": unpack_docs.unpack_mbox, "ole": unpack_docs.unpack_ole,
            "pdf": unpack_docs.unpack_pdf, "html": unpack_docs.unpack_html, "cpio": unpack_docs.unpack_cpio,
            "rtf": unpack_docs.unpack_rtf, "uu": unpack_docs.unpack_uu, "cab": unpack_legacy.unpack_cab, "szdd": unpack_legacy.unpack_szdd,
            "binhex": unpack_legacy.unpack_binhex, "tnef": unpack_legacy.unpack_tnef, "iso": unpack_legacy.unpack_iso,
            "7z": unpack_7z.unpack_7z, "pe": unpack_pe.unpack_pe, "onenote": unpack_pe.unpack_onenote,
            "arj": unpack_arj.unpack_arj, "chm": unpack_chm.unpack_chm}


UNPACKERS: dict[str, Unpacker] = _table()

# Containers recognised but not opened: a file of these kinds is "unscanned", never clean.
UNSUPPORTED = frozenset({"rar", "kwaj", "ace", "xar", "lha", "zstd", "lzip", "sis"})
