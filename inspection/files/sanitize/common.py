"""What the per-format disarmers share: the internal errors that turn a file
into a notice, the per-call budget, and the notice text itself.

The errors never leave `sanitize()`: hostile input must not raise out of the
data path, so a format module raises `Unsafe` (or `LimitExceeded`) and the
entry point answers with a notice naming the reason.
"""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from typing import Callable

from inspection.files.sanitize.model import Action, LimitKind, SanitizeLimits, SanitizeResult

__all__ = ["Budget", "Context", "LimitExceeded", "Outcome", "SanitizeError", "Unsafe", "notice_text"]


class SanitizeError(Exception):
    """Base of the sanitiser's internal errors (caught by `sanitize()`)."""


class Unsafe(SanitizeError):
    """The file cannot be disarmed safely; `reason` goes into the notice."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LimitExceeded(SanitizeError):
    def __init__(self, limit: LimitKind, detail: str) -> None:
        super().__init__(f"{limit.value} exceeded: {detail}")
        self.limit = limit
        self.reason = f"limit {limit.value} exceeded ({detail})"


@dataclass(slots=True)
class Budget:
    """Decompressed bytes still allowed in this call (shared by nested containers)."""

    remaining: int

    def take(self, n: int, what: str) -> None:
        if n > self.remaining:
            raise LimitExceeded(LimitKind.EXPANDED_BYTES, what)
        self.remaining -= n


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a format module did: new bytes and actions (none = unchanged)."""

    data: bytes
    actions: tuple[Action, ...] = ()
    suggested_name: str | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """Per-call state handed to format modules; `recurse` sanitises a member
    (archives) and returns its full result, one level deeper."""

    limits: SanitizeLimits
    budget: Budget
    depth: int = 0
    recurse: Callable[[bytes, str, Context], SanitizeResult] | None = field(default=None, compare=False)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")


def notice_text(*, name: str, sha256: str, reason: str, removed: str) -> bytes:
    """The replacement for a file that could not be made safe: plain UTF-8
    prose without formula or markup characters, so no Office parser reads it
    as a document, field or formula."""
    shown = _SAFE_NAME.sub("_", name)[:200] or "(unnamed)"
    lines = [
        "This file was replaced by the content filter of your network appliance.",
        "",
        f"Original name: {shown}",
        f"Original SHA-256: {sha256}",
        f"Reason: {_SAFE_NAME.sub(' ', reason)[:300]}",
        f"Removed: {_SAFE_NAME.sub(' ', removed)[:300]}",
        "",
        "Ask the sender for a copy without active content, or ask your administrator",
        "to release the original.",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget) -> bytes:
    """One member's bytes, charged to the expansion budget; a member that cannot be
    read or is not the size its header says is refused (`Unsafe`), never guessed at."""
    budget.take(info.file_size, info.filename)
    try:
        with zf.open(info) as fh:
            body = fh.read(info.file_size + 1)
    except (zipfile.BadZipFile, NotImplementedError, ValueError, OSError, EOFError, RuntimeError) as e:
        raise Unsafe(f"zip member {info.filename!r} cannot be read ({e})") from None
    if len(body) != info.file_size:
        raise Unsafe(f"zip member {info.filename!r} is not the size its header says")
    return body
