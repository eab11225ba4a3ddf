"""byte_test, byte_jump, byte_extract and base64_decode, as pure functions of (item, data, cursor).

Each mirrors Suricata's ``Detect*DoMatch``: how the read position is derived
from the cursor and offset, when a read falls outside the buffer, how a
``string`` number is parsed (C ``strtoull`` on at most 23 bytes, leading
whitespace and a sign allowed, a parse that consumes fewer bytes than asked
still counts), and how byte_jump clamps a jump before the start but fails a
jump to or past the end. Values are unsigned 64-bit, wrapping as in C.
"""
from __future__ import annotations

import binascii
from typing import Mapping

from signatures.matches import (
    Base64Decode, ByteExtract, ByteJump, ByteOp, ByteTest, Endian, JumpFrom, NumBase, ValueRef,
)

MASK64 = (1 << 64) - 1
BASE64_DECODE_MAX = 128     # Suricata's default ``bytes`` for base64_decode
_BASES = {NumBase.DEC: 10, NumBase.HEX: 16, NumBase.OCT: 8}
_WS = b" \t\n\x0b\x0c\r"
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def resolve(ref: ValueRef, variables: Mapping[str, int]) -> int:
    """An int, or the value a byte_extract stored under that name (0 if it never ran, as Suricata's zeroed slots)."""
    return ref if isinstance(ref, int) else variables.get(ref, 0)


def strtoull(chunk: bytes, base: int) -> tuple[int, int] | None:
    """C strtoull on `chunk` (which ends at a NUL if it has one): (value, bytes consumed) or None."""
    nul = chunk.find(b"\0")
    if nul >= 0:
        chunk = chunk[:nul]
    i, n = 0, len(chunk)
    while i < n and chunk[i] in _WS:
        i += 1
    negative = False
    if i < n and chunk[i] in b"+-":
        negative = chunk[i] == 0x2D
        i += 1
    if base == 16 and chunk[i:i + 2].lower() == b"0x" and i + 2 < n and _digit(chunk[i + 2], 16):
        i += 2
    start = i
    value = 0
    while i < n and _digit(chunk[i], base):
        value = value * base + int(chr(chunk[i]), base)
        i += 1
    if i == start:
        return None
    if value > MASK64:
        return None                                   # ERANGE
    return ((-value) & MASK64 if negative else value), i


def _digit(c: int, base: int) -> bool:
    ch = chr(c)
    return ch.isascii() and ch.isalnum() and int(ch, 36) < base


def read_number(data: bytes, pos: int, nbytes: int, endian: Endian, base: NumBase | None) -> tuple[int, int] | None:
    """(value, bytes consumed) of the number at `pos`; the caller has checked that `nbytes` fit."""
    if base is None:
        chunk = data[pos:pos + nbytes]
        return int.from_bytes(chunk, "little" if endian is Endian.LITTLE else "big"), nbytes
    if nbytes > 23:
        return None
    return strtoull(data[pos:pos + nbytes], _BASES[base])


def _mask(value: int, bitmask: int | None) -> int:
    if bitmask is None:
        return value
    value &= bitmask
    if value and bitmask:
        value >>= (bitmask & -bitmask).bit_length() - 1     # shift by the mask's trailing zero bits
    return value


def _read_at(data: bytes, cursor: int, offset: int, relative: bool, nbytes: int,
             endian: Endian, base: NumBase | None) -> tuple[int, int, int] | None:
    """(value, position read, bytes consumed), or None when the read is outside the buffer."""
    length = len(data)
    pos = offset + (cursor if relative else 0)
    remaining = length - pos
    if relative and remaining <= 0:
        return None
    if nbytes == 0 and base is not None:
        nbytes = max(remaining, 0)                    # "bytes 0" with string: the rest of the buffer
    if pos < 0 or nbytes > remaining:
        return None
    got = read_number(data, pos, nbytes, endian, base)
    if got is None:
        return None
    return got[0], pos, got[1]


def byte_test(item: ByteTest, data: bytes, cursor: int, variables: Mapping[str, int]) -> bool:
    if not data:
        return False
    got = _read_at(data, cursor, resolve(item.offset, variables), item.relative, item.nbytes, item.endian, item.base)
    if got is None:
        return False
    val = _mask(got[0], item.bitmask)
    ref = resolve(item.value, variables) & MASK64
    op = item.op
    if op is ByteOp.EQ:
        ok = val == ref
    elif op is ByteOp.LT:
        ok = val < ref
    elif op is ByteOp.GT:
        ok = val > ref
    elif op is ByteOp.LE:
        ok = val <= ref
    elif op is ByteOp.GE:
        ok = val >= ref
    elif op is ByteOp.AND:
        ok = bool(val & ref)
    else:
        ok = bool(val ^ ref)
    return ok != item.negated


def byte_jump(item: ByteJump, data: bytes, cursor: int, variables: Mapping[str, int]) -> int | None:
    """The new cursor, or None (no match)."""
    length = len(data)
    if not length:
        return None
    got = _read_at(data, cursor, resolve(item.offset, variables), item.relative, item.nbytes, item.endian, item.base)
    if got is None:
        return None
    val, pos, consumed = got
    val = (_mask(val, item.bitmask) * item.multiplier) & MASK64
    if item.align and val % 4:
        val = (val + 4 - val % 4) & MASK64
    val = (val + item.post_offset) & MASK64
    signed = val - (1 << 64) if val >> 63 else val
    if item.jump_from is JumpFrom.BEGINNING:
        target = signed
    elif item.jump_from is JumpFrom.END:
        target = length + signed
    else:
        target = pos + signed + consumed
    if target < 0:
        return 0
    if target >= length:
        return None
    return target


def byte_extract(item: ByteExtract, data: bytes, cursor: int) -> tuple[int, int] | None:
    """(value, new cursor), or None (no match)."""
    got = _read_at(data, cursor, item.offset, item.relative, item.nbytes, item.endian, item.base)
    if got is None:
        return None
    val, pos, consumed = got
    val = (_mask(val, item.bitmask) * item.multiplier) & MASK64
    if item.align and val % item.align:
        val = (val + item.align - val % item.align) & MASK64
    return val, pos + consumed


def base64_decode(item: Base64Decode, data: bytes, cursor: int) -> bytes:
    """The decoded bytes (empty: nothing decoded, which Suricata treats as no match).

    RFC 4648 mode as Suricata's: decoding stops at the first byte outside the
    alphabet (padding included); a trailing partial quantum of 2 or 3
    characters still yields its 1 or 2 bytes.
    """
    if item.relative:
        data = data[cursor:]
    if item.offset:
        if item.offset >= len(data):
            return b""
        data = data[item.offset:]
    data = data[:item.nbytes or BASE64_DECODE_MAX]
    end = 0
    while end < len(data) and data[end] in _B64:
        end += 1
    text = data[:end]
    usable = len(text) - len(text) % 4
    tail = text[usable:]
    try:
        out = binascii.a2b_base64(text[:usable]) if usable else b""
        if len(tail) >= 2:
            out += binascii.a2b_base64(tail + b"=" * (4 - len(tail)))
    except binascii.Error:
        return b""
    return out
