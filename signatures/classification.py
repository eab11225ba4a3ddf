"""``classification.config``: classtype -> (description, priority).

A rule's ``classtype`` names an entry here; its priority is the rule's default
priority (an explicit ``priority`` option wins). Suricata refuses a rule whose
classtype is not in the table, so the parser needs the table before it parses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from signatures._classification_data import CLASSIFICATION_CONFIG
from signatures.errors import ClassificationError

_NAME = re.compile(r"[A-Za-z0-9_.\-]+\Z")
_LINE = re.compile(r"config\s+classification\s*:\s*(.*)\Z")


@dataclass(frozen=True, slots=True)
class Classification:
    """One classtype: short name, human description, priority (1 is most severe)."""

    name: str
    description: str
    priority: int

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"bad classtype name {self.name!r}")
        if not 1 <= self.priority <= 255:
            raise ValueError(f"classtype priority {self.priority} out of 1..255")


@dataclass(frozen=True, slots=True)
class ClassificationTable:
    """An ordered set of classtypes with lookup by name (case-insensitive, like Suricata)."""

    entries: tuple[Classification, ...]
    _by_name: Mapping[str, Classification] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {}
        for c in self.entries:
            if not isinstance(c, Classification):
                raise TypeError("entries must be Classification")
            by_name[c.name.lower()] = c  # a later definition overrides, as in Suricata
        object.__setattr__(self, "_by_name", MappingProxyType(by_name))

    def get(self, name: str) -> Classification | None:
        return self._by_name.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name

    def __len__(self) -> int:
        return len(self._by_name)


def parse_classification_config(text: str, *, source: str = "<text>") -> ClassificationTable:
    """Parse Suricata's format; blank lines and ``#`` comments are skipped.

    Raises `ClassificationError` naming the line of the first malformed entry:
    a broken table would silently re-prioritise every rule, so it is not skipped.
    """
    entries = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise ClassificationError(source, no, "expected 'config classification: name,description,priority'")
        name, _, rest = m.group(1).partition(",")
        description, sep, prio = rest.rpartition(",")
        if not sep:
            raise ClassificationError(source, no, "expected three comma-separated fields")
        name, description, prio = name.strip(), description.strip(), prio.strip()
        if not (prio.isascii() and prio.isdigit()):
            raise ClassificationError(source, no, f"priority {prio!r} is not a number")
        try:
            entries.append(Classification(name, description, int(prio)))
        except ValueError as e:
            raise ClassificationError(source, no, str(e)) from None
    return ClassificationTable(tuple(entries))


def load_classification_file(path: str | Path) -> ClassificationTable:
    """Read and parse a classification.config file (I/O edge of `parse_classification_config`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ClassificationError(str(p), 0, e.strerror or str(e)) from None
    return parse_classification_config(text, source=str(p))


def default_classifications() -> ClassificationTable:
    """The table shipped with the package (ET Open's, see `_classification_data`)."""
    return _DEFAULT


_DEFAULT = parse_classification_config(CLASSIFICATION_CONFIG, source="<builtin>")
