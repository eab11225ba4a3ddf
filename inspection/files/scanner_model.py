"""Vocabulary of content scanning: limits, the result tree and the reasons.

A scan result is a tree: the file and, for a container, its members, each
with its own path inside the container, type, sha256, verdict and reasons.
A file's verdict is the worst of its own and its members': malicious over
suspicious over unscanned over clean, so a container one of whose members
could not be looked at is never called clean.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from inspection.files.model import Verdict, VerdictKind

__all__ = ["ScanCounters", "ScanLimits", "ScanResult", "worst", "UNSCANNED_PREFIX"]

UNSCANNED_PREFIX = "unscanned: "

# Order of severity for folding member verdicts into their container's.
_RANK = {VerdictKind.CLEAN: 0, VerdictKind.SANITISED: 1, VerdictKind.UNSCANNED: 2, VerdictKind.ERROR: 2,
         VerdictKind.SUSPICIOUS: 3, VerdictKind.MALICIOUS: 4}


def worst(a: VerdictKind, b: VerdictKind) -> VerdictKind:
    return a if _RANK[a] >= _RANK[b] else b


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """ClamAV's defaults (MaxFileSize, MaxScanSize, MaxRecursion, MaxFiles,
    MaxScanTime). Each one hit makes the file or member concerned
    ``unscanned`` with a reason and is counted; none raises."""

    max_file_size: int = 100 << 20     # bytes of one file or unpacked member
    max_scan_size: int = 400 << 20     # bytes scanned for one top-level file, members included
    max_depth: int = 17                # container nesting
    max_members: int = 10_000          # members unpacked for one top-level file
    max_seconds: float = 120.0         # wall time for one top-level file, checked between members

    def __post_init__(self) -> None:
        if (self.max_file_size < 1 or self.max_scan_size < 1 or self.max_depth < 0 or self.max_members < 0
                or not self.max_seconds > 0):
            raise ValueError("scan limits out of range")


@dataclass(slots=True)
class ScanCounters:
    """Limits hit and what was skipped, for summaries (one per scanner)."""

    files: int = 0
    members: int = 0
    bytes_scanned: int = 0
    too_large: int = 0
    too_deep: int = 0
    too_many_members: int = 0
    scan_size_limit: int = 0
    time_budget: int = 0
    encrypted: int = 0
    unsupported: int = 0
    corrupt: int = 0


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One scanned object. `path` is the file's own path at the top level
    and ``container/member`` below it; `type` a short type name (``zip``,
    ``pe``, ``data``); `sha256` None when the bytes were not all read."""

    path: str
    type: str
    size: int
    sha256: str | None
    verdict: VerdictKind
    reasons: tuple[str, ...]
    members: tuple[ScanResult, ...] = field(default=())

    def to_verdict(self) -> Verdict:
        """The file-model verdict (for EVE fileinfo): summary plus every reason."""
        reasons = self.all_reasons()
        summary = reasons[0] if reasons else ("no detection" if self.verdict is VerdictKind.CLEAN else
                                              self.verdict.value)
        return Verdict(self.verdict, summary, reasons)

    def all_reasons(self) -> tuple[str, ...]:
        """Own reasons and the members', once each, in tree order."""
        seen: dict[str, None] = {}
        stack = [self]
        while stack:
            r = stack.pop()
            for reason in r.reasons:
                seen.setdefault(reason, None)
            stack.extend(reversed(r.members))
        return tuple(seen)

    def to_json(self, top: bool = True) -> dict:
        """The top level lists every reason in the tree (what decided the
        verdict); each member lists its own."""
        reasons = self.all_reasons() if top else self.reasons
        out: dict = {"path": self.path, "sha256": self.sha256, "type": self.type, "size": self.size,
                     "verdict": self.verdict.value, "reasons": list(reasons)}
        if self.members:
            out["members"] = [m.to_json(top=False) for m in self.members]
        return out
