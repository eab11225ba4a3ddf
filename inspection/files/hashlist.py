"""SHA-256 block lists: our plain format and ClamAV's ``.hdb``.

Plain: one hex SHA-256 per line, optionally followed by whitespace and a
name; ``#`` starts a comment. ClamAV ``.hdb``/``.hsb``: ``hash:size:name``
where the hash is MD5 (32 hex), SHA-1 (40 hex, ``.hsb``) or SHA-256 (64
hex) and size may be ``*``. Each kind is kept, keyed by digest, so a file is
looked up by its SHA-256 and, when the lists have MD5 or SHA-1 entries, by
those digests too (computed only then).
Malformed lines are counted and skipped, never fatal.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["HashEntry", "HashList", "HashListError", "parse_hash_list"]

_HEX = re.compile(r"[0-9a-fA-F]+")


class HashListError(Exception):
    """A hash list that cannot be used at all (e.g. unreadable)."""


@dataclass(frozen=True, slots=True)
class HashEntry:
    name: str            # the entry's name, or the digest when the list gave none
    size: int | None     # expected size (hdb), None for any


@dataclass(slots=True)
class HashList:
    """Entries of one or more lists. `source` names each entry's list so a
    hit can say where it came from (``hash:<list>:<name>``)."""

    sha256: dict[str, tuple[str, HashEntry]] = field(default_factory=dict)
    md5: dict[str, tuple[str, HashEntry]] = field(default_factory=dict)
    sha1: dict[str, tuple[str, HashEntry]] = field(default_factory=dict)
    malformed: int = 0

    def __len__(self) -> int:
        return len(self.sha256) + len(self.md5) + len(self.sha1)

    def merge(self, other: HashList) -> None:
        self.sha256.update(other.sha256)
        self.md5.update(other.md5)
        self.sha1.update(other.sha1)
        self.malformed += other.malformed

    def lookup(self, sha256: str, size: int, md5: str | None = None, sha1: str | None = None) -> str | None:
        """The reason for a hit (``hash:<list>:<name>``), or None."""
        for table, digest in ((self.sha256, sha256), (self.md5, md5), (self.sha1, sha1)):
            if digest is None:
                continue
            hit = table.get(digest)
            if hit is not None and (hit[1].size is None or hit[1].size == size):
                return f"hash:{hit[0]}:{hit[1].name}"
        return None


def parse_hash_list(text: str, source: str) -> HashList:
    """Parse a plain or ``.hdb`` list (told apart per line by its colons)."""
    out = HashList()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if ":" in line:
            parts = line.split(":")
            digest, size_s, name = parts[0], parts[1] if len(parts) > 1 else "*", ":".join(parts[2:])
            if size_s == "*" or not size_s:
                size = None
            elif size_s.isdigit():
                size = int(size_s)
            else:
                out.malformed += 1
                continue
        else:
            fields = line.split(None, 1)
            digest, size, name = fields[0], None, fields[1].strip() if len(fields) > 1 else ""
        digest = digest.lower()
        table = {64: out.sha256, 40: out.sha1, 32: out.md5}.get(len(digest))
        if table is None or not _HEX.fullmatch(digest):
            out.malformed += 1
            continue
        table[digest] = (source, HashEntry(name or digest, size))
    return out
