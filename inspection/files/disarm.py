"""The engine's use of the sanitiser: a ``suspicious`` file becomes ``sanitised``.

Two steps, because the verdict is final only in the engine (a rule on the body
that carried the file may still make it malicious):

1. `Disarmer.prepare`, called by the scanner session that holds the file's
   bytes: a whole (CLOSED, not cut by a size cap) ``suspicious`` file goes
   through the same `sanitize()` call as ``utm sanitize``; the copy must have
   changed, must not be a notice, and must scan clean with the same scanner.
   Then the verdict is SANITISED and carries the copy (bytes included);
   otherwise it stays what it was with a ``sanitise_failed: ...`` reason.
2. `Disarmer.commit`, called by the engine just before the ``fileinfo`` event:
   the copy goes to the `CopyStore` under its sha256 (written once, however
   often it is seen), within the store's file and byte limits; the bytes are
   dropped from the verdict. If it cannot be stored, the verdict goes back to
   ``suspicious`` with a reason: nothing is called sanitised that is not there.

Pure apart from the store, which is a Protocol (`MemoryCopyStore` here; the
folder adapter is `inspection.io.copydir.DirCopyStore`). Every refusal and
every limit hit is counted in `DisarmCounters`.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from inspection.files.model import SanitisedCopy, Verdict, VerdictKind
from inspection.files.sanitize import SanitizeLimits, sanitize
from inspection.files.scanner_model import ScanResult

__all__ = ["CopyStore", "DisarmCounters", "DisarmLimits", "Disarmer", "MemoryCopyStore", "SANITISED_PREFIX",
           "SANITISE_FAILED", "no_store"]

SANITISED_PREFIX = "sanitised: "
SANITISE_FAILED = "sanitise_failed: "


class CopyStore(Protocol):
    """Where disarmed copies go, named by their sha256 (hex)."""

    def usage(self) -> tuple[int, int]:
        """Copies and bytes already held when the run starts (they count against the limits)."""
        ...

    def has(self, sha256: str) -> bool: ...

    def write(self, sha256: str, data: bytes) -> None:
        """Store atomically; raises OSError when it cannot."""
        ...


class MemoryCopyStore:
    """`CopyStore` in memory: the fake for tests, and a way to run without a folder."""

    def __init__(self, fail: str | None = None) -> None:
        self.copies: dict[str, bytes] = {}
        self.fail = fail     # an OSError message every write raises (to test the refusal)

    def usage(self) -> tuple[int, int]:
        return len(self.copies), sum(len(d) for d in self.copies.values())

    def has(self, sha256: str) -> bool:
        return sha256 in self.copies

    def write(self, sha256: str, data: bytes) -> None:
        if self.fail is not None:
            raise OSError(self.fail)
        self.copies[sha256] = data


@dataclass(frozen=True, slots=True)
class DisarmLimits:
    """`max_files` / `max_bytes`: copies and bytes the store may hold in all (what it held
    before the run included); `max_pending_bytes`: bytes of copies held in memory between
    the scanner and the engine (an upload's parts wait for their transaction to be logged);
    `max_reasons`: ``sanitised: ...`` reasons on one verdict (the rest are summed up in one
    more); `sanitize`: the limits of each `sanitize()` call."""

    max_files: int = 10_000
    max_bytes: int = 1 << 30
    max_pending_bytes: int = 256 << 20
    max_reasons: int = 16
    sanitize: SanitizeLimits = field(default_factory=SanitizeLimits)

    def __post_init__(self) -> None:
        if self.max_files < 1 or self.max_bytes < 1 or self.max_pending_bytes < 1 or self.max_reasons < 1:
            raise ValueError("sanitise limits out of range")


@dataclass(slots=True)
class DisarmCounters:
    """For the run summary: what became of the suspicious files."""

    sanitised: int = 0         # verdicts that ended ``sanitised`` (copy written or already stored)
    written: int = 0           # copies written
    already_stored: int = 0    # copies the store had (same content seen before)
    bytes_written: int = 0
    not_whole: int = 0         # truncated or over a size cap: not sanitised
    failed: int = 0            # sanitize() gave a notice or removed nothing, or the copy still scanned unclean
    files_limit: int = 0       # the store's `max_files` was reached
    bytes_limit: int = 0       # the store's `max_bytes` was reached
    store_errors: int = 0      # the store refused a write (disk full, permissions)
    pending_limit: int = 0     # `max_pending_bytes` of copies were already waiting for the engine
    undone: int = 0            # sanitised, then found malicious by a rule: copy not stored

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}   # type: ignore[attr-defined]


class Disarmer:
    """See the module docstring. `rescan(data, name)` scans a copy with the scanner that judged
    the original (None: copies are not rescanned, for tests of the sanitising alone)."""

    def __init__(self, store: CopyStore, limits: DisarmLimits | None = None,
                 rescan: Callable[[bytes, str], ScanResult] | None = None) -> None:
        self.store = store
        self.limits = limits or DisarmLimits()
        self.rescan = rescan
        self.counters = DisarmCounters()
        self._files, self._bytes = store.usage()
        self._pending = 0     # bytes of prepared copies the engine has not committed or undone yet

    # -- step 1: in the scanner session, with the bytes ---------------------------------------

    def prepare(self, data: bytes | None, name: str, verdict: Verdict, not_whole: str | None = None) -> Verdict:
        """The verdict of a file whose bytes are `data`; `not_whole` says why the bytes are not
        the whole file (then `data` is not looked at). Only ``suspicious`` files are touched."""
        if verdict.kind is not VerdictKind.SUSPICIOUS:
            return verdict
        if not_whole is not None or data is None:
            self.counters.not_whole += 1
            return _refused(verdict, f"not whole ({not_whole or 'not held'})")
        res = sanitize(data, name, self.limits.sanitize)
        if res.notice is not None:
            self.counters.failed += 1
            return _refused(verdict, res.notice)
        if not res.changed:
            self.counters.failed += 1
            return _refused(verdict, "nothing the sanitiser removes")
        base = _base(res.suggested_name or name)
        if self.rescan is not None:
            again = self.rescan(res.data, base)
            if again.verdict is not VerdictKind.CLEAN:
                self.counters.failed += 1
                why = again.all_reasons()
                return _refused(verdict, f"copy still {again.verdict.value}" + (f" ({why[0]})" if why else ""))
        if self._pending + len(res.data) > self.limits.max_pending_bytes:
            self.counters.pending_limit += 1
            return _refused(verdict, f"too many copies waiting ({self.limits.max_pending_bytes} bytes)")
        self._pending += len(res.data)
        sha = hashlib.sha256(res.data).hexdigest()
        copy = SanitisedCopy(sha, len(res.data), base, verdict, res.data)
        removed = list(dict.fromkeys(f"{SANITISED_PREFIX}{a.kind.value} {a.target}".rstrip() for a in res.actions))
        cap = self.limits.max_reasons
        if len(removed) > cap:
            removed = [*removed[:cap], f"{SANITISED_PREFIX}{len(removed) - cap} more actions"]
        reasons = (*(verdict.reasons or (verdict.reason,)), *removed)
        return Verdict(VerdictKind.SANITISED, verdict.reason, reasons, copy)

    # -- step 2: in the engine, once the verdict is final --------------------------------------

    def commit(self, verdict: Verdict) -> Verdict:
        """Store the copy of a SANITISED verdict (once per content) and drop its bytes; a copy
        that cannot be stored turns the verdict back into the suspicious one it replaced."""
        copy = verdict.sanitised
        if copy is None or copy.data is None:
            return verdict
        c, lim = self.counters, self.limits
        self._pending -= len(copy.data)
        if self.store.has(copy.sha256):
            c.already_stored += 1
        elif self._files + 1 > lim.max_files:
            c.files_limit += 1
            return _refused(copy.original, f"sanitise folder full ({lim.max_files} files)")
        elif self._bytes + copy.size > lim.max_bytes:
            c.bytes_limit += 1
            return _refused(copy.original, f"sanitise folder full ({lim.max_bytes} bytes)")
        else:
            try:
                self.store.write(copy.sha256, copy.data)
            except OSError as e:
                c.store_errors += 1
                return _refused(copy.original, f"copy not stored ({e.strerror or e})")
            self._files += 1
            self._bytes += copy.size
            c.written += 1
            c.bytes_written += copy.size
        c.sanitised += 1
        return replace(verdict, sanitised=replace(copy, data=None))

    def undone(self, verdict: Verdict) -> None:
        """A sanitised verdict was overruled (a rule matched the body): counted, nothing stored."""
        if verdict.sanitised is not None and verdict.sanitised.data is not None:
            self._pending -= len(verdict.sanitised.data)
            self.counters.undone += 1


def no_store(verdict: Verdict) -> Verdict:
    """A sanitised verdict with nowhere to store its copy: back to what it replaced."""
    copy = verdict.sanitised
    return verdict if copy is None else _refused(copy.original, "no store for the copy")


def _refused(verdict: Verdict, why: str) -> Verdict:
    reason = SANITISE_FAILED + why
    return replace(verdict, reasons=tuple(dict.fromkeys((*(verdict.reasons or (verdict.reason,)), reason))))


def _base(name: str) -> str:
    base = name.replace("\\", "/").rpartition("/")[2]
    return base or "file"
