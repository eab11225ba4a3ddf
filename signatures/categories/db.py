"""The compiled database: one self-checking file, written atomically.

Layout (little-endian)::

    header   magic b"UTMCATDB" | u16 version | u16 reserved | u32 section count | sha256 of the rest
    table    u64 length per section
    sections 0 meta JSON (categories in rank order, aliases, category combinations, expressions, counts)
             1 domain nodes, ASCII, one per line, sorted: listed names and the parents of longer ones
             2 u16 per node: combination index (0x7FFF: not listed itself) | 0x8000 if a longer name
               below it is listed
             3 URL keys ("host/path"), one per line, sorted
             4 u16 combination index per URL key

A combination is the sorted tuple of category indexes one key is listed in, so
each key costs one u16 whatever the number of its categories. Loading checks the
magic, the version, the length and the digest before anything is parsed: a
truncated or foreign file is refused with a `DatabaseError`, never half-loaded.
"""
from __future__ import annotations

import hashlib
import mmap
import os
import struct
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path

import orjson

from firmware.base.atomic import write_atomic
from signatures.categories.compile import CompiledLists
from signatures.categories.errors import DatabaseError
from signatures.categories.normalize import is_ip

MAGIC = b"UTMCATDB"
VERSION = 1
_HEADER = struct.Struct("<8sHHI32s")
SECTIONS = 5
MAX_DB_BYTES = 1 << 30
DEEPER = 0x8000          # domain node flag: some listed name is longer than this one
NO_COMBO = 0x7FFF        # domain node combination index: this suffix is not listed itself


def _u16(values: list[int]) -> bytes:
    a = array("H", values)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def encode(c: CompiledLists, *, source: str = "") -> bytes:
    """The database bytes for `c`."""
    combos: dict[frozenset[int], int] = {}

    def combo(s: frozenset[int]) -> int:
        i = combos.get(s)
        if i is None:
            i = combos[s] = len(combos)
            if i >= NO_COMBO:
                raise DatabaseError("<compile>", "too many category combinations for the format")
        return i

    # Domain nodes for a right-to-left walk: every listed name, plus each parent suffix of a
    # longer listed name, flagged DEEPER so a lookup knows whether to try one more label.
    tld_keys = any("." not in k and not is_ip(k) for k in c.domains)
    nodes: dict[str, int] = {}
    for k, cats in c.domains.items():
        nodes[k] = nodes.get(k, NO_COMBO) & DEEPER | combo(cats)
        if is_ip(k):
            continue
        labels = k.split(".")
        for n in range(1 if tld_keys else 2, len(labels)):
            parent = ".".join(labels[-n:])
            nodes[parent] = nodes.get(parent, NO_COMBO) | DEEPER
    dkeys = sorted(nodes)
    dvals = [nodes[k] for k in dkeys]
    ukeys = sorted(c.urls)
    uvals = [combo(c.urls[k]) for k in ukeys]
    meta = {
        "categories": [cat.to_json() for cat in c.categories],
        "aliases": c.aliases,
        "combos": [sorted(s) for s, _ in sorted(combos.items(), key=lambda kv: kv[1])],
        "expressions": [[cat, p] for cat, p in c.expressions],
        "tld_keys": tld_keys,
        "counts": {"domains": len(c.domains), "nodes": len(dkeys), "urls": len(ukeys),
                   "expressions": len(c.expressions)},
        "source": source,
    }
    for k in dkeys + ukeys:
        if "\n" in k or not k.isascii():
            raise DatabaseError("<compile>", f"key {k!r} is not a normalised ASCII key")
    sections = [orjson.dumps(meta), "\n".join(dkeys).encode("ascii"), _u16(dvals),
                "\n".join(ukeys).encode("ascii"), _u16(uvals)]
    body = struct.pack(f"<{len(sections)}Q", *(len(s) for s in sections)) + b"".join(sections)
    return _HEADER.pack(MAGIC, VERSION, 0, len(sections), hashlib.sha256(body).digest()) + body


def write_db(path: Path, data: bytes) -> None:
    write_atomic(path, data)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A checked database: the meta object, and where the key blobs lie in the buffer (one key a line)."""

    meta: dict
    domain_keys: tuple[int, int]
    domain_combos: array
    url_keys: tuple[int, int]
    url_combos: array


def decode(buf: "bytes | mmap.mmap", where: str = "<db>") -> Decoded:
    """Check magic, version, lengths and digest, then parse the small sections; `DatabaseError` otherwise.

    Key blobs are not copied: the loader reads them from `buf` a slice at a time
    (with an mmap the file's pages are released when it is closed, so loading
    needs no second copy of the file in memory).
    """
    if len(buf) < _HEADER.size:
        raise DatabaseError(where, f"truncated: {len(buf)} bytes, shorter than the header")
    magic, version, _, count, digest = _HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise DatabaseError(where, "not a URL category database (wrong magic)")
    if version != VERSION:
        raise DatabaseError(where, f"database format version {version}, this build reads version {VERSION}; "
                                   "recompile it with `utm categories compile`")
    if count != SECTIONS:
        raise DatabaseError(where, f"{count} sections, expected {SECTIONS}")
    base = _HEADER.size
    table = struct.calcsize(f"<{count}Q")
    if len(buf) < base + table:
        raise DatabaseError(where, "truncated: section table incomplete")
    lengths = struct.unpack_from(f"<{count}Q", buf, base)
    if base + table + sum(lengths) != len(buf):
        raise DatabaseError(where, f"truncated or padded: sections need {base + table + sum(lengths)} bytes, "
                                   f"file has {len(buf)}")
    h = hashlib.sha256()
    with memoryview(buf) as mv:
        for off in range(base, len(buf), 1 << 20):
            h.update(mv[off:min(off + (1 << 20), len(buf))])
    if h.digest() != digest:
        raise DatabaseError(where, "checksum mismatch (corrupted file)")
    spans, off = [], base + table
    for n in lengths:
        spans.append((off, off + n))
        off += n
    try:
        meta = orjson.loads(buf[spans[0][0]:spans[0][1]])
    except orjson.JSONDecodeError as e:
        raise DatabaseError(where, f"bad meta section: {e}") from None
    if not isinstance(meta, dict):
        raise DatabaseError(where, "bad meta section: not an object")
    arrays = []
    for key_span, val_span in ((spans[1], spans[2]), (spans[3], spans[4])):
        a = array("H")
        raw = buf[val_span[0]:val_span[1]]
        if len(raw) % 2:
            raise DatabaseError(where, "bad section: odd length of a u16 array")
        a.frombytes(raw)
        if sys.byteorder != "little":
            a.byteswap()
        a0, a1 = key_span
        n = 1 + sum(buf[o:min(o + (1 << 20), a1)].count(b"\n") for o in range(a0, a1, 1 << 20)) if a1 > a0 else 0
        if len(a) != n:
            raise DatabaseError(where, "bad section: keys and values disagree in number")
        arrays.append(a)
    return Decoded(meta, spans[1], arrays[0], spans[3], arrays[1])


def map_db(path: Path) -> "mmap.mmap | bytes":
    """The file mapped read-only (an empty file as bytes: it cannot be mapped); the caller closes the map."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_DB_BYTES:
                raise DatabaseError(str(path), f"{size} bytes, larger than the {MAX_DB_BYTES} byte limit")
            if size == 0:
                return b""
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise DatabaseError(str(path), e.strerror or str(e)) from None
