"""`CopyStore` on a folder: disarmed copies as ``DIR/<sha256>``, written atomically.

Content-addressed, so the name says nothing an attacker chose and the same copy
seen twice is one file. Copies already in the folder (from earlier runs) count
against the limits; other files there are left alone and not counted.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from firmware.base.atomic import write_atomic

__all__ = ["DirCopyStore"]

_NAME = re.compile(r"[0-9a-f]{64}")


class DirCopyStore:
    """Creates the folder if needed; raises OSError if it cannot be created or listed."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        files = size = 0
        with os.scandir(self.folder) as it:
            for entry in it:
                if _NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    files += 1
                    size += entry.stat(follow_symlinks=False).st_size
        self._usage = (files, size)

    def usage(self) -> tuple[int, int]:
        return self._usage

    def has(self, sha256: str) -> bool:
        return (self.folder / _checked(sha256)).is_file()

    def write(self, sha256: str, data: bytes) -> None:
        write_atomic(self.folder / _checked(sha256), data)


def _checked(sha256: str) -> str:
    if not _NAME.fullmatch(sha256):
        raise ValueError("a copy is named by its lower-case hex sha256")
    return sha256
