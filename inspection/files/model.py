"""Vocabulary of file extraction: a file's end state, its verdict, the
finished-file record the engine logs as EVE ``fileinfo``, and the limits.

A "file" is what a transfer carries as one object: an HTTP request or
response body, or one part of a multipart/form-data upload. Records are
frozen: once a file is closed, nothing about it changes.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import ClassVar

from firmware.base.values import value
from inspection.model import Direction

__all__ = ["FileCounters", "FileLimits", "FileRecord", "FileState", "SanitisedCopy", "Verdict", "VerdictKind",
           "UNSCANNED", "with_signature_hits"]


class FileState(enum.Enum):
    """How a file ended, under Suricata's names (``fileinfo.state``)."""

    CLOSED = "CLOSED"        # every byte seen, in order
    TRUNCATED = "TRUNCATED"  # ended early: gap, size cap, connection end before the declared length


class VerdictKind(enum.Enum):
    """What scanning concluded. There is deliberately no default "clean": a
    file nobody looked at must never read as harmless."""

    UNSCANNED = "unscanned"     # not looked at, or not completely (too large, too deep, encrypted, ...)
    CLEAN = "clean"             # every byte was scanned and nothing matched
    MALICIOUS = "malicious"     # a hash list entry, YARA rule or signature matched
    SUSPICIOUS = "suspicious"   # risky content without a detection (auto-exec macros, PDF JavaScript)
    SANITISED = "sanitised"     # active content was removed before the file went on
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class SanitisedCopy:
    """The disarmed copy behind a ``sanitised`` verdict: its sha256, size and
    name (the sanitiser's suggested name, e.g. docm -> docx), and the verdict
    the file had before, so a later detection (a signature on the body) can
    undo the sanitising. `data` travels only from the scanner to the engine,
    which stores it and drops it; it is never compared or printed."""

    sha256: str
    size: int
    filename: str
    original: Verdict
    data: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.sha256) != 64 or self.size < 0 or self.original.kind is not VerdictKind.SUSPICIOUS:
            raise ValueError("a sanitised copy needs a sha256, a size and the suspicious verdict it replaced")


@dataclass(frozen=True, slots=True)
class Verdict:
    """`reason` is the one-line summary (kept for EVE consumers that read
    only it); `reasons` lists every reason, e.g. ``hash:list:name``,
    ``yara:ns:rule``, ``unscanned: too deep``. `sanitised` is set exactly
    when the kind is SANITISED."""

    kind: VerdictKind
    reason: str
    reasons: tuple[str, ...] = ()
    sanitised: SanitisedCopy | None = None

    def __post_init__(self) -> None:
        if not self.reason:
            raise ValueError("a verdict needs a reason")
        if (self.sanitised is not None) != (self.kind is VerdictKind.SANITISED):
            raise ValueError("a sanitised verdict, and only one, carries its sanitised copy")


UNSCANNED = Verdict(VerdictKind.UNSCANNED, "no scanner configured")


FILE_HASHES = frozenset({"md5", "sha1", "sha256"})


@dataclass(frozen=True, slots=True)
class FileLimits:
    """`max_size`: bytes hashed and scanned per file; past it the file is
    TRUNCATED (its size still counts every byte that went by).
    `max_open`: files open at once per flow; more are not tracked (counted).
    `max_part_header`: bytes of one multipart part's header block.
    `hashes`: the digests logged besides sha256, which is always computed
    (the scanner and the cloud key files by it)."""

    max_size: int = 32 << 20
    max_open: int = 64
    max_part_header: int = 8 << 10
    hashes: tuple[str, ...] = ("md5", "sha1", "sha256")

    def __post_init__(self) -> None:
        if self.max_size < 0 or self.max_open < 1 or self.max_part_header < 64:
            raise ValueError("file limits out of range")
        if not set(self.hashes) <= FILE_HASHES:
            raise ValueError(f"file hashes: {', '.join(sorted(FILE_HASHES))}")


@dataclass(slots=True)
class FileCounters:
    """Limits hit, for the run summary."""

    size_limit: int = 0       # files cut at `max_size`
    announced_large: int = 0  # files whose Content-Length passes `max_size` (never judged whole)
    open_limit: int = 0       # files not tracked because `max_open` were open
    gaps: int = 0             # files with missing bytes


@value
class FileRecord:
    """One finished file, as logged in EVE ``fileinfo``.

    `size` counts every byte of the file that went by, including bytes lost
    in gaps (as Suricata counts). Hashes follow Suricata: none when bytes are
    missing (`gaps`); md5 and sha1 only for a CLOSED file; sha256 also for a
    TRUNCATED one, over the bytes seen. `magic` is the sniffed type
    description, `mime_type` its media type (both None for an empty file).
    """

    event_type: ClassVar[str] = "fileinfo"
    app_proto: str
    tx_id: int
    direction: Direction
    filename: str
    size: int
    state: FileState
    gaps: bool
    md5: str | None
    sha1: str | None
    sha256: str | None
    magic: str | None
    mime_type: str | None
    verdict: Verdict = field(default=UNSCANNED)
    stored: bool = False


def with_signature_hits(rec: FileRecord, reasons: list[str]) -> FileRecord:
    """The file as logged once rules matched the body that carried it: malicious, with
    ``signature:gid:sid`` reasons first and what scanning found after them. A file
    sanitised by then goes back to what it was found to be: malware is never disarmed
    into something that passes (and its copy is never stored)."""
    v = rec.verdict
    if v.sanitised is not None:
        v = v.sanitised.original
    before = () if v.kind is VerdictKind.UNSCANNED and not v.reasons else (v.reasons or (v.reason,))
    merged = tuple(dict.fromkeys([*reasons, *before]))
    return replace(rec, verdict=Verdict(VerdictKind.MALICIOUS, reasons[0], merged))
