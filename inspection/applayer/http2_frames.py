"""HTTP/2 framing (RFC 7540 section 4 and 6): the pieces the stream parser needs.

Pure helpers and tables: the connection preface, frame types, setting and
error-code names (as Suricata logs them), and the per-direction frame reader
that reassembles one frame's payload across segments within a cap. DATA
payloads are streamed instead (a body can be far larger than any cap), so
the reader hands them out in pieces with the padding removed.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["PREFACE", "FrameType", "Flag", "FrameHeader", "FrameReader", "SETTING_NAMES", "ERROR_NAMES",
           "parse_settings"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER_LEN = 9


class FrameType(enum.IntEnum):
    DATA = 0
    HEADERS = 1
    PRIORITY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PUSH_PROMISE = 5
    PING = 6
    GOAWAY = 7
    WINDOW_UPDATE = 8
    CONTINUATION = 9


class Flag(enum.IntFlag):
    END_STREAM = 0x1     # also ACK on SETTINGS and PING
    END_HEADERS = 0x4
    PADDED = 0x8
    PRIORITY = 0x20


# Frames of a fixed payload size; another size is Suricata's ``invalid_frame_length``.
FIXED_LENGTH = {FrameType.PRIORITY: 5, FrameType.RST_STREAM: 4, FrameType.PING: 8, FrameType.WINDOW_UPDATE: 4}
# Frames that belong to a stream (stream id 0 is invalid) and those of the connection (must be 0).
STREAM_FRAMES = frozenset({FrameType.DATA, FrameType.HEADERS, FrameType.PRIORITY, FrameType.RST_STREAM,
                           FrameType.PUSH_PROMISE, FrameType.CONTINUATION})
CONNECTION_FRAMES = frozenset({FrameType.SETTINGS, FrameType.PING, FrameType.GOAWAY})

SETTING_NAMES = {1: "SETTINGS_HEADER_TABLE_SIZE", 2: "SETTINGS_ENABLE_PUSH", 3: "SETTINGS_MAX_CONCURRENT_STREAMS",
                 4: "SETTINGS_INITIAL_WINDOW_SIZE", 5: "SETTINGS_MAX_FRAME_SIZE", 6: "SETTINGS_MAX_HEADER_LIST_SIZE",
                 8: "SETTINGS_ENABLE_CONNECT_PROTOCOL"}
ERROR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 8: "CANCEL",
               9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM", 12: "INADEQUATE_SECURITY",
               13: "HTTP_1_1_REQUIRED"}


@dataclass(frozen=True, slots=True)
class FrameHeader:
    length: int
    type: int
    flags: int
    stream_id: int

    @classmethod
    def parse(cls, b: bytes) -> "FrameHeader":
        return cls(int.from_bytes(b[0:3], "big"), b[3], b[4], int.from_bytes(b[5:9], "big") & 0x7FFFFFFF)


def parse_settings(payload: bytes) -> list[tuple[int, int]] | None:
    """(identifier, value) pairs of a SETTINGS payload; None if its length is not a multiple of 6."""
    if len(payload) % 6:
        return None
    return [(int.from_bytes(payload[i:i + 2], "big"), int.from_bytes(payload[i + 2:i + 6], "big"))
            for i in range(0, len(payload), 6)]


class FrameReader:
    """Splits one direction's bytes into frames, bounded.

    `feed` returns items: ``("frame", header, payload)`` for a whole non-DATA
    frame, ``("data", header, piece, last)`` for DATA payload pieces (padding
    removed; `last` on the frame's final piece), ``("long", header)`` once for
    a frame longer than `cap` (a non-DATA one is then skipped, its payload
    never held), ``("bad_padding", header)`` for a pad length past the frame.
    """

    __slots__ = ("cap", "buf", "hdr", "got", "payload", "pad", "skip")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.hdr: FrameHeader | None = None
        self.got = 0              # payload bytes of the current frame consumed so far
        self.payload = bytearray()
        self.pad: int | None = None
        self.skip = False

    def feed(self, data: bytes) -> list[tuple]:
        out: list[tuple] = []
        self.buf += data
        pos = 0
        buf = self.buf
        while True:
            if self.hdr is None:
                if len(buf) - pos < HEADER_LEN:
                    break
                h = self.hdr = FrameHeader.parse(bytes(buf[pos:pos + HEADER_LEN]))
                pos += HEADER_LEN
                self.got, self.pad, self.skip = 0, None, False
                self.payload = bytearray()
                if h.length > self.cap:
                    out.append(("long", h))
                    self.skip = h.type != FrameType.DATA
            h = self.hdr
            n = min(h.length - self.got, len(buf) - pos)
            piece = bytes(buf[pos:pos + n])
            pos += n
            if h.type == FrameType.DATA:
                self._data(h, piece, out)
            elif not self.skip:
                self.payload += piece
            self.got += n
            if self.got < h.length:
                break
            if h.type != FrameType.DATA and not self.skip:
                out.append(("frame", h, bytes(self.payload)))
            self.hdr, self.payload = None, bytearray()
        del buf[:pos]
        return out

    def _data(self, h: FrameHeader, piece: bytes, out: list) -> None:
        start = self.got
        if h.flags & Flag.PADDED:
            if start == 0 and piece:
                self.pad = piece[0]
                piece, start = piece[1:], 1
                if self.pad > h.length - 1:
                    out.append(("bad_padding", h))
                    self.pad = h.length - 1
            lo = 1
            hi = h.length - (self.pad or 0)
        else:
            lo, hi = 0, h.length
        end = self.got + (len(piece) + (1 if start != self.got else 0))
        # bytes of `piece` span [start, end); keep the part inside [lo, hi)
        a, b = max(start, lo), min(end, hi)
        keep = piece[a - start:b - start] if b > a else b""
        last = end >= h.length
        if keep or last:
            out.append(("data", h, keep, last))
