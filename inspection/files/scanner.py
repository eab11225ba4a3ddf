"""The content scanner: bytes (and a name) in, a `ScanResult` tree out.

Sans-IO: the caller reads the file, the clock is a parameter, and the
matchers (YARA) sit behind `Matcher` so the core runs with a fake. Per
object: SHA-256 (and MD5 if the list has MD5 entries) against the block
list, every matcher over the whole bytes, risky-content checks, then, for a
container, its members the same way, recursively. Every limit of
`ScanLimits` that is hit turns into an ``unscanned: ...`` reason on the
object concerned and a count in `ScanCounters`; nothing is ever clean by
default and nothing raises on hostile input.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from inspection.files.hashlist import HashList
from inspection.files.model import VerdictKind
from inspection.files.scanner_model import UNSCANNED_PREFIX, ScanCounters, ScanLimits, ScanResult, worst
from inspection.files.unpack import IDENTIFY_BYTES, UNPACKERS, UNSUPPORTED, Member, UnpackError, identify
from inspection.files.unpack_docs import SUSPICIOUS_KINDS, suspicious

__all__ = ["FileMeta", "MatchTimeout", "Matcher", "ContentScanner"]

Digests = tuple["str | None", "str | None", "str | None"]   # (sha256, md5, sha1); None: not known


@dataclass(frozen=True, slots=True)
class FileMeta:
    """What a matcher may know of the object besides its bytes (YARA externals)."""

    filename: str     # base name
    filepath: str     # full path, ``container/member`` inside containers
    extension: str    # lower-case, with the dot (".exe"), "" when none
    filetype: str     # short type name from `identify` ("pe", "zip", ...)


class MatchTimeout(Exception):
    """A matcher ran out of the time it was given."""


class Matcher(Protocol):
    def match(self, data: bytes, meta: FileMeta, timeout: float) -> list[str]:
        """Reasons (``yara:<namespace>:<rule>``) for each match; may raise `MatchTimeout`."""
        ...


def _extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return base[base.rfind("."):].lower() if "." in base.lstrip(".") else ""


class _Job:
    """Budgets of one top-level file."""

    __slots__ = ("deadline", "scanned", "members", "stopped")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.scanned = 0
        self.members = 0
        self.stopped: str | None = None     # the limit that ended unpacking for the whole file


class ContentScanner:
    """Scans objects with one hash list and matchers under `limits`."""

    def __init__(self, hashes: HashList | None = None, matchers: Sequence[Matcher] = (),
                 limits: ScanLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.hashes = hashes or HashList()
        self.matchers = tuple(matchers)
        self.limits = limits or ScanLimits()
        self.clock = clock
        self.counters = ScanCounters()

    # -- entry points -------------------------------------------------------------------------

    def scan(self, data: bytes, path: str, digests: Digests | None = None) -> ScanResult:
        """Scan a whole file held in memory (at most `max_file_size` bytes). `digests`: its
        (sha256, md5, sha1) as far as the caller hashed it already (the live path holds a
        packet while the file is judged: hashing 32 MB twice would double that hold); the
        missing ones the hash list needs are computed here."""
        self.counters.files += 1
        if len(data) > self.limits.max_file_size:
            return self.oversized(path, len(data), *_digests(data, self.hashes, digests))
        job = _Job(self.clock() + self.limits.max_seconds)
        return self._scan(data, path, path, 0, job, digests=digests)

    def reads_content(self, head: bytes, name: str) -> bool:
        """Would scanning a file that starts with `head` (its first `IDENTIFY_BYTES`, or all of
        it) read more than its digests: YARA rules, a container to unpack, a type whose risky
        content is looked for? If not, a streamed file need not be held for the scan."""
        if self.matchers:
            return True
        kind = identify(head[:IDENTIFY_BYTES], name)
        return kind in UNPACKERS or kind in SUSPICIOUS_KINDS

    def scan_digests(self, head: bytes, size: int, path: str, digests: Digests) -> ScanResult:
        """The verdict `scan` gives a file of `size` bytes starting with `head` when it reads
        nothing but the head and the digests (`reads_content` said no). A digest the caller
        does not have is not looked up: it cannot be computed from the head."""
        self.counters.files += 1
        self.counters.bytes_scanned += size
        sha256, md5, sha1 = digests
        kind = identify(head[:IDENTIFY_BYTES], path)
        reasons: list[str] = []
        hit = self.hashes.lookup(sha256, size, md5, sha1) if sha256 else None
        if hit:
            reasons.append(hit)
        if kind in UNSUPPORTED:
            self.counters.unsupported += 1
            reasons.append(f"{UNSCANNED_PREFIX}unsupported container: {kind}")
        return ScanResult(path, kind, size, sha256, _own_verdict(reasons), tuple(reasons))

    def oversized(self, path: str, size: int, sha256: str | None, md5: str | None = None,
                  sha1: str | None = None, why: str = "too large") -> ScanResult:
        """A file past `max_file_size` (or that the caller could not hold: `why`): only its
        hashes are looked up (the caller hashed it while streaming); otherwise unscanned."""
        if why == "too large":
            self.counters.too_large += 1
        reasons = [UNSCANNED_PREFIX + why]
        kind = VerdictKind.UNSCANNED
        hit = self.hashes.lookup(sha256, size, md5, sha1) if sha256 else None
        if hit:
            reasons.insert(0, hit)
            kind = VerdictKind.MALICIOUS
        return ScanResult(path, "data", size, sha256, kind, tuple(reasons))

    # -- one object ---------------------------------------------------------------------------

    def _scan(self, data: bytes, path: str, name: str, depth: int, job: _Job, parent: str = "",
              digests: Digests | None = None) -> ScanResult:
        c = self.counters
        c.bytes_scanned += len(data)
        job.scanned += len(data)
        sha256, md5, sha1 = _digests(data, self.hashes, digests)
        kind = identify(data, name)
        reasons: list[str] = []
        hit = self.hashes.lookup(sha256, len(data), md5, sha1)
        if hit:
            reasons.append(hit)
        meta = FileMeta(name.rsplit("/", 1)[-1], path, _extension(name), kind)
        for m in self.matchers:
            remaining = job.deadline - self.clock()
            if remaining <= 0:
                reasons.append(self._time_up(job))
                break
            try:
                reasons.extend(m.match(data, meta, remaining))
            except MatchTimeout:
                reasons.append(self._time_up(job))
                break
        vba = parent == "ole" and ("/VBA/" in f"/{name}")     # a module stream of a VBA project
        reasons.extend(suspicious("vba" if vba else kind, data))
        members: list[ScanResult] = []
        if kind in UNSUPPORTED:
            c.unsupported += 1
            reasons.append(f"{UNSCANNED_PREFIX}unsupported container: {kind}")
        elif kind in UNPACKERS:
            reasons.extend(self._unpack(kind, data, path, name, depth, job, members))
        verdict = _own_verdict(reasons)
        for member in members:
            verdict = worst(verdict, member.verdict)
        return ScanResult(path, kind, len(data), sha256, verdict, tuple(dict.fromkeys(reasons)), tuple(members))

    def _unpack(self, kind: str, data: bytes, path: str, name: str, depth: int, job: _Job,
                out: list[ScanResult]) -> list[str]:
        """Members of a container into `out`; reasons for the container itself."""
        lim, c = self.limits, self.counters
        if depth >= lim.max_depth:
            c.too_deep += 1
            return [UNSCANNED_PREFIX + "too deep"]
        if job.stopped:
            return [UNSCANNED_PREFIX + job.stopped]
        cap = min(lim.max_file_size, max(0, lim.max_scan_size - job.scanned))
        try:
            for member in UNPACKERS[kind](data, name, cap):
                stop = self._budget(job)
                if stop:
                    return [UNSCANNED_PREFIX + stop]
                job.members += 1
                c.members += 1
                mpath = f"{path}/{member.name}"
                if member.data is None:
                    out.append(self._unread(member, mpath, job))
                elif job.scanned + len(member.data) > lim.max_scan_size:
                    c.scan_size_limit += 1
                    job.stopped = "scan size limit"
                    out.append(ScanResult(mpath, "data", len(member.data), None, VerdictKind.UNSCANNED,
                                          (UNSCANNED_PREFIX + "scan size limit",)))
                else:
                    out.append(self._scan(member.data, mpath, member.name, depth + 1, job, kind))
        except UnpackError as e:
            c.corrupt += 1
            return [f"{UNSCANNED_PREFIX}{e}"]
        except Exception as e:   # noqa: BLE001 - last resort: a library (zipfile, olefile, email) raising on
            c.corrupt += 1       # hostile input it was not written for must not end the scan
            return [f"{UNSCANNED_PREFIX}corrupt {kind}: {type(e).__name__}"]
        return []

    def _budget(self, job: _Job) -> str | None:
        """The limit that stops unpacking now, counted once per file."""
        if job.stopped:
            return job.stopped
        if job.members >= self.limits.max_members:
            self.counters.too_many_members += 1
            job.stopped = "too many members"
        elif self.clock() >= job.deadline:
            self.counters.time_budget += 1
            job.stopped = "time budget"
        elif job.scanned >= self.limits.max_scan_size:
            self.counters.scan_size_limit += 1
            job.stopped = "scan size limit"
        return job.stopped

    def _unread(self, member: Member, path: str, job: _Job) -> ScanResult:
        reason = member.reason or "not read"
        c = self.counters
        if reason == "encrypted":
            c.encrypted += 1
        elif reason == "too large":
            c.too_large += 1
        elif reason.startswith("unsupported"):
            c.unsupported += 1
        else:
            c.corrupt += 1
        return ScanResult(path, "data", member.size, None, VerdictKind.UNSCANNED, (UNSCANNED_PREFIX + reason,))

    def _time_up(self, job: _Job) -> str:
        if job.stopped != "time budget":
            self.counters.time_budget += 1
            job.stopped = "time budget"
        return UNSCANNED_PREFIX + "time budget"


def _own_verdict(reasons: list[str]) -> VerdictKind:
    kind = VerdictKind.CLEAN
    for r in reasons:
        if r.startswith(("hash:", "yara:")):
            return VerdictKind.MALICIOUS
        if r.startswith("suspicious:"):
            kind = worst(kind, VerdictKind.SUSPICIOUS)
        elif r.startswith(UNSCANNED_PREFIX):
            kind = worst(kind, VerdictKind.UNSCANNED)
    return kind


def _digests(data: bytes, hashes: HashList, known: Digests | None = None) -> tuple[str, str | None, str | None]:
    """The hashes a lookup in `hashes` needs (SHA-256 always, MD5/SHA-1 when the list has
    them), taken from `known` where given."""
    sha256, md5, sha1 = known or (None, None, None)
    return (sha256 or hashlib.sha256(data).hexdigest(),
            md5 or (hashlib.md5(data).hexdigest() if hashes.md5 else None),
            sha1 or (hashlib.sha1(data).hexdigest() if hashes.sha1 else None))
