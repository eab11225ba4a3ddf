"""Sticky-buffer transforms (``dotprefix``, ``to_lowercase``, ``url_decode``...), applied in rule order.

A block with transforms inspects the transformed buffer, and its prefilter
pattern is looked for in the transformed buffer too, so both the verifier and
the prefilter go through `apply_transforms`. Each transform follows
Suricata's (``detect-transform-*.c``) byte for byte, quirks included:
``compress_whitespace`` keeps the first whitespace byte of a run as it is,
``url_decode`` also turns ``+`` into a space, ``pcrexform`` leaves the buffer
unchanged when its expression does not match.
"""
from __future__ import annotations

import hashlib
import re
from typing import Callable, Sequence

from signatures.matches import Transform
from signatures.buffers import TransformKind

from inspection.detect.errors import UnsupportedItem, UnsupportedPattern
from inspection.detect.pcre import Regex, compile_pcre

_WS_RUN = re.compile(rb"([ \t\n\x0b\x0c\r])[ \t\n\x0b\x0c\r]+")
_WS_ANY = re.compile(rb"[ \t\n\x0b\x0c\r]+")


def _dotprefix(data: bytes) -> bytes:
    return b"." + data if data else data


def _compress_whitespace(data: bytes) -> bytes:
    return _WS_RUN.sub(rb"\1", data)


def _url_decode(data: bytes) -> bytes:
    # One pass, so a decoded %2B stays a '+' while a literal '+' becomes a space.
    if b"%" not in data and b"+" not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0x25 and i + 2 < n and _is_hex(data[i + 1]) and _is_hex(data[i + 2]):
            out.append(int(data[i + 1:i + 3], 16))
            i += 3
            continue
        out.append(0x20 if c == 0x2B else c)
        i += 1
    return bytes(out)


def _is_hex(c: int) -> bool:
    return 0x30 <= c <= 0x39 or 0x41 <= c <= 0x46 or 0x61 <= c <= 0x66


def _header_lowercase(data: bytes) -> bytes:
    lines = data.split(b"\n")
    for n, line in enumerate(lines):
        name, sep, rest = line.partition(b":")
        if sep:
            lines[n] = name.lower() + sep + rest
    return b"\n".join(lines)


def _strip_pseudo_headers(data: bytes) -> bytes:
    return b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(b":"))


def _xor(key: bytes) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        if not data:
            return data
        reps = key * (len(data) // len(key) + 1)
        return bytes(a ^ b for a, b in zip(data, reps))
    return apply


def _pcrexform(regex: Regex) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        m = regex.find(data, 0)
        if m is None or m.re.groups < 1 or m.group(1) is None:
            return data
        return m.group(1)
    return apply


_SIMPLE: dict[TransformKind, Callable[[bytes], bytes]] = {
    TransformKind.DOTPREFIX: _dotprefix,
    TransformKind.STRIP_WHITESPACE: lambda d: _WS_ANY.sub(b"", d),
    TransformKind.COMPRESS_WHITESPACE: _compress_whitespace,
    TransformKind.TO_LOWERCASE: bytes.lower,
    TransformKind.TO_UPPERCASE: bytes.upper,
    TransformKind.TO_MD5: lambda d: hashlib.md5(d).digest(),
    TransformKind.TO_SHA1: lambda d: hashlib.sha1(d).digest(),
    TransformKind.TO_SHA256: lambda d: hashlib.sha256(d).digest(),
    TransformKind.URL_DECODE: _url_decode,
    TransformKind.HEADER_LOWERCASE: _header_lowercase,
    TransformKind.STRIP_PSEUDO_HEADERS: _strip_pseudo_headers,
}


def compile_transform(t: Transform) -> Callable[[bytes], bytes]:
    """The function for one transform; raises `UnsupportedItem` for a pcrexform regex `re` cannot run."""
    if t.kind is TransformKind.XOR:
        return _xor(bytes.fromhex(t.argument or ""))
    if t.kind is TransformKind.PCREXFORM:
        try:
            return _pcrexform(compile_pcre(t.argument or ""))
        except UnsupportedPattern as e:  # reported under the transform's own keyword
            raise UnsupportedItem("pcrexform", str(e)) from None
    return _SIMPLE[t.kind]


def compile_transforms(transforms: Sequence[Transform]) -> tuple[Callable[[bytes], bytes], ...]:
    return tuple(compile_transform(t) for t in transforms)


def apply_transforms(data: bytes, transforms: Sequence[Transform]) -> bytes:
    """`data` after each transform in order (no transforms: `data` itself)."""
    for fn in compile_transforms(transforms):
        data = fn(data)
    return data


def run_compiled(data: bytes, fns: Sequence[Callable[[bytes], bytes]]) -> bytes:
    for fn in fns:
        data = fn(data)
    return data
