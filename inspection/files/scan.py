"""The seam where a content scanner (YARA, hash reputation, AV) plugs in.

A scanner sees each tracked file as a stream: `Scanner.open` is called when
a file starts and returns a `ScanSession` (or None to pass on the file), the
session gets every byte that is hashed, and `finish` gives the verdict once
the file is closed. Until one is configured, `NoScanner` stands in and every
file is "unscanned"; nothing here ever calls a file clean by default.
"""
from __future__ import annotations

from typing import Protocol

from inspection.files.model import UNSCANNED, FileRecord, Verdict

__all__ = ["NoScanner", "ScanSession", "Scanner"]


class ScanSession(Protocol):
    def data(self, chunk: bytes) -> None: ...

    def finish(self, record: FileRecord) -> Verdict:
        """`record` is the file as it will be logged (with `UNSCANNED` as its verdict)."""
        ...


class Scanner(Protocol):
    def open(self, app_proto: str, filename: str, direction: int) -> ScanSession | None: ...


class NoScanner:
    """No scanner configured: no session, so every file is `UNSCANNED`."""

    verdict = UNSCANNED

    def open(self, app_proto: str, filename: str, direction: int) -> ScanSession | None:
        return None
