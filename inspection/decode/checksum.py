"""Internet checksums (RFC 1071) computed in C-speed chunks.

The one's-complement sum is independent of byte order as long as the final
fold is swapped back (RFC 1071 section 2(B)), so the words are summed in the
machine's native order through `array` and the result is swapped once.
"""
from __future__ import annotations

import sys
from array import array

_LITTLE = sys.byteorder == "little"


def ones_sum(data: bytes) -> int:
    """Unfolded one's-complement sum of `data` as big-endian 16-bit words."""
    if len(data) & 1:
        data = data + b"\x00"
    words = array("H", data)
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    if _LITTLE:
        total = ((total & 0xFF) << 8) | (total >> 8)
    return total


def fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data: bytes, initial: int = 0) -> int:
    """The checksum field value for `data` (with its checksum field zeroed)."""
    return (~fold(ones_sum(data) + initial)) & 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Sum of the IPv4 or IPv6 pseudo-header for TCP, UDP and ICMPv6."""
    return ones_sum(src) + ones_sum(dst) + proto + (length & 0xFFFF) + (length >> 16)
