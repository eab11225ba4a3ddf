"""The content scanner behind the engine's `Scanner` seam (see `scan`).

Files arrive as streams; the scanner needs whole files (archives are read
from their end, YARA conditions look anywhere). So a session buffers the
file up to `ScanLimits.max_file_size` and scans it when the file closes.
Past the limit the buffer is dropped and only the file's SHA-256 (which
the tracker computes while streaming) is looked up: "too large". A file
that ended TRUNCATED (gap, size cap, cut connection) is scanned for what
it holds but never called clean: "truncated". The bytes all open files hold
together are capped (`max_held`, `files.scan-memcap`): a file whose next
bytes would pass the cap drops what it holds and is judged by its digests
alone, "unscanned: memory cap", counted (`memcap_files`); a hundred risky
downloads at once must not take the box's memory. With a `Disarmer`
(``utm inspect --sanitize-dir``), a whole ``suspicious`` file is handed to
the sanitiser while its bytes are still here (see `disarm`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from inspection.files.model import FileRecord, FileState, Verdict, VerdictKind
from inspection.files.scanner import ContentScanner
from inspection.files.scanner_model import UNSCANNED_PREFIX, ScanResult, worst
from inspection.files.unpack import IDENTIFY_BYTES

if TYPE_CHECKING:
    from inspection.files.disarm import Disarmer

__all__ = ["StreamScanner"]

MAX_HELD = 128 << 20     # bytes of open files held for scanning at once, all flows together
MEMCAP = "memory cap (files held for scanning)"


class _Session:
    """One file's bytes until it closes: the chunks themselves (bytes are immutable), joined
    once at the end, rather than copied into a growing buffer and copied out again. Once the
    first `IDENTIFY_BYTES` show that the scan would read nothing but the digests (no YARA, no
    container, no type with risky content: `ContentScanner.reads_content`), only that head is
    kept: a 32 MB download is then neither held in memory nor joined while its last packet waits."""

    __slots__ = ("_owner", "_name", "_buf", "_size", "_over", "_head", "_asked", "_held")

    def __init__(self, owner: StreamScanner, name: str) -> None:
        self._owner, self._name = owner, name
        self._buf: list[bytes] | None = []
        self._size = 0
        self._over = ""                      # why the bytes were dropped: "too large", MEMCAP
        self._head: bytes | None = None     # set: the scan reads the digests only
        self._asked = owner.disarmer is not None   # the sanitiser needs the whole file anyway
        self._held = 0                      # bytes of `_buf` counted in the owner's `held`

    def data(self, chunk: bytes) -> None:
        if self._over:
            return
        owner, n = self._owner, len(chunk)
        if self._size + n > owner.content.limits.max_file_size:
            self._drop("too large")     # release now: nothing more will be scanned
            return
        self._size += n
        buf = self._buf
        if buf is None:
            return
        if owner.held + n > owner.max_held:
            owner.memcap_files += 1
            self._drop(MEMCAP)
            return
        buf.append(chunk if type(chunk) is bytes else bytes(chunk))   # a caller's buffer may change
        self._held += n
        owner.held += n
        if owner.held > owner.held_peak:
            owner.held_peak = owner.held
        if not self._asked and self._size >= IDENTIFY_BYTES:
            self._asked = True
            first = buf[0]
            head = first[:IDENTIFY_BYTES] if len(first) >= IDENTIFY_BYTES else b"".join(buf)[:IDENTIFY_BYTES]
            if not owner.content.reads_content(head, self._name):
                self._buf, self._head = None, head
                self._release()

    def _drop(self, why: str) -> None:
        self._buf, self._over = None, why
        self._release()

    def _release(self) -> None:
        """The bytes this file held no longer count against the owner's cap."""
        self._owner.held -= self._held
        self._held = 0

    def __del__(self) -> None:
        # a file's session normally ends in `finish`; one dropped without it (its flow gone
        # on an error) must not keep its bytes counted against the cap for good
        if self._held:
            self._release()

    def finish(self, record: FileRecord) -> Verdict:
        content = self._owner.content
        data: bytes | None = None
        if self._over:
            sha = record.sha256 if record.state is FileState.CLOSED else None
            res = content.oversized(self._name, record.size, sha, record.md5, record.sha1, self._over)
        else:
            # the tracker hashed the bytes it handed here while they streamed by: not again while a
            # packet is held. CLOSED: all of the file (md5, sha1, sha256). TRUNCATED without gaps:
            # sha256 over the bytes seen, which are the bytes held (it feeds both from one chunk)
            if record.state is FileState.CLOSED and self._size == record.size:
                digests = (record.sha256, record.md5, record.sha1)
            elif record.state is FileState.TRUNCATED and not record.gaps:
                digests = (record.sha256, None, None)
            else:
                digests = None
            if self._head is not None:
                res = content.scan_digests(self._head, self._size, self._name, digests or (None, None, None))
            else:
                data, self._buf = b"".join(self._buf or ()), None
                self._release()
                res = content.scan(data, self._name, digests)   # type: ignore[arg-type]
        if record.state is FileState.TRUNCATED:
            res = _truncated(res)
        self._owner.verdicts[res.verdict.value] = self._owner.verdicts.get(res.verdict.value, 0) + 1
        verdict = res.to_verdict()
        disarmer = self._owner.disarmer
        if disarmer is not None and verdict.kind is VerdictKind.SUSPICIOUS:
            not_whole = ("truncated" if record.state is FileState.TRUNCATED else
                         (self._over or "too large") if data is None else None)
            verdict = disarmer.prepare(data, self._name, verdict, not_whole)
        return verdict


def _truncated(res: ScanResult) -> ScanResult:
    from dataclasses import replace
    return replace(res, verdict=worst(res.verdict, VerdictKind.UNSCANNED),
                   reasons=(*res.reasons, UNSCANNED_PREFIX + "truncated"))


class StreamScanner:
    """`Scanner` for the file tracker: one buffering session per file."""

    def __init__(self, content: ContentScanner, disarmer: Disarmer | None = None,
                 max_held: int = MAX_HELD) -> None:
        self.content = content
        self.disarmer = disarmer
        self.verdicts: dict[str, int] = {}     # verdict kind -> files, for the run summary
        self.max_held = max_held
        self.held = 0              # bytes the open files hold now
        self.held_peak = 0
        self.memcap_files = 0      # files that dropped their bytes at the cap (judged by digests)

    @property
    def digests_wanted(self) -> tuple[str, ...]:
        """The digests its hash list is keyed by besides sha256 (the tracker computes them)."""
        h = self.content.hashes
        return ("md5",) * bool(h.md5) + ("sha1",) * bool(h.sha1)

    def open(self, app_proto: str, filename: str, direction: int) -> _Session:
        return _Session(self, filename or "file")
