"""Per-flow file tracking: message bodies in, finished files out.

Sans-IO: the engine hands each flow's `BodyChunk`s and transaction records
to that flow's `FileTracker` and logs the `FileEvent`s it returns. Which
bodies are files follows Suricata: a response body with content (named by
its Content-Disposition filename, else the request path), a POST or PUT
request body (named by the path), and each part with a filename of a
multipart/form-data upload. Mail parsers pass each attachment of a message
as a named body of its own (already MIME-decoded; see `inspection.files.mime`).

Files are hashed as they stream by (sha256 always; md5 and sha1 when
`FileLimits.hashes` asks for them or the scanner's hash list needs them;
never buffered whole), their type is sniffed from the first bytes, and a scanner session
(see `scan`) may follow them. A file is logged once it is closed *and* its
transaction record is known, so the log line carries the transaction's
``http`` object: a request body usually ends before its transaction is
logged and waits for it; a response body ends after (stray lines may still
join it, as in Suricata). At flow end everything still open is closed as
TRUNCATED and logged. Cost: a keep-alive connection whose last response had
a body keeps that file's hash state (about 1.3 KB) until its next response.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from inspection.files.digests import Digests, InlineDigests
from inspection.files.model import UNSCANNED, FileCounters, FileLimits, FileRecord, FileState, Verdict, VerdictKind
from inspection.files.multipart import MultipartSplitter, PartData, PartEnd, PartEvent, PartStart, multipart_boundary
from inspection.files.scan import NoScanner, Scanner, ScanSession
from inspection.files.sniff import SNIFF_BYTES, FileType, sniff
from inspection.model import Anomaly, AnomalyKind, AppRecord, BodyChunk, Direction

if TYPE_CHECKING:
    from inspection.files.disarm import Disarmer

__all__ = ["FileEvent", "FileTracker", "FileContext"]

_REQUEST_FILE_METHODS = frozenset({"POST", "PUT"})


@dataclass(frozen=True, slots=True)
class FileEvent:
    """A finished file and the transaction it came with (None if never seen)."""

    event_type: ClassVar[str] = "fileinfo"
    file: FileRecord
    record: AppRecord | None

    @property
    def tx_id(self) -> int:
        return self.file.tx_id

    @property
    def direction(self) -> Direction:
        return self.file.direction


TOO_LARGE = "unscanned: too large (its Content-Length passes the file size limit)"


class FileContext:
    """What all flows share: limits, limit counters, the scanner, and the disarmer that
    stores the copies of files the scanner's sessions sanitised (None: no sanitising)."""

    __slots__ = ("limits", "counters", "scanner", "disarmer", "digests")

    def __init__(self, limits: FileLimits | None = None, scanner: Scanner | None = None,
                 disarmer: Disarmer | None = None, digests: Digests | None = None) -> None:
        self.limits = limits or FileLimits()
        self.counters = FileCounters()
        self.scanner: Scanner = scanner or NoScanner()
        self.disarmer = disarmer
        self.digests: Digests = digests or InlineDigests()


class _OpenFile:
    """One file being received."""

    __slots__ = ("app_proto", "tx_id", "direction", "name", "size", "hashed", "gaps", "capped", "head",
                 "ftype", "md5", "sha1", "sha256", "hashers", "session", "too_large")

    def __init__(self, ctx: FileContext, app_proto: str, tx_id: int, direction: Direction, name: str,
                 announced: int | None = None) -> None:
        self.app_proto, self.tx_id, self.direction, self.name = app_proto, tx_id, direction, name
        self.size = self.hashed = 0
        self.gaps = self.capped = False
        # its Content-Length says it will pass the size limit: it can never be judged whole
        self.too_large = announced is not None and announced > ctx.limits.max_size
        if self.too_large:
            ctx.counters.announced_large += 1
        self.head = bytearray()     # leading bytes until the type is sniffed, then released
        self.ftype: FileType | None = None
        self.session: ScanSession | None = ctx.scanner.open(app_proto, name, int(direction))
        wanted = ctx.limits.hashes
        if self.session is not None:
            wanted = (*wanted, *getattr(ctx.scanner, "digests_wanted", ()))
        # md5 takes half again as long as sha256 on a large file: computed only when asked for
        self.md5 = hashlib.md5() if "md5" in wanted else None
        self.sha1 = hashlib.sha1() if "sha1" in wanted else None
        self.sha256 = hashlib.sha256()
        self.hashers = tuple(h for h in (self.md5, self.sha1, self.sha256) if h is not None)

    def data(self, ctx: FileContext, data: bytes) -> None:
        self.size += len(data)
        if self.gaps or self.capped:
            return
        room = ctx.limits.max_size - self.hashed
        if len(data) > room:
            data = data[:room]
            self.capped = True
            ctx.counters.size_limit += 1
        if not data:
            return
        self.hashed += len(data)
        if self.ftype is None:
            self.head += data[: SNIFF_BYTES - len(self.head)]
            if len(self.head) >= SNIFF_BYTES:
                self.ftype, self.head = sniff(bytes(self.head)), bytearray()
        ctx.digests.feed(self.hashers, data)
        if self.session is not None:
            self.session.data(data)

    def gap(self, ctx: FileContext, length: int) -> None:
        self.size += length
        if not self.gaps:
            self.gaps = True
            ctx.counters.gaps += 1

    def close(self, ctx: FileContext, truncated: bool) -> FileRecord:
        ctx.digests.settle()
        state = FileState.TRUNCATED if truncated or self.gaps or self.capped else FileState.CLOSED
        closed = state is FileState.CLOSED
        ftype = self.ftype or sniff(bytes(self.head))
        fields: dict[str, Any] = dict(
            app_proto=self.app_proto, tx_id=self.tx_id, direction=self.direction, filename=self.name,
            size=self.size, state=state, gaps=self.gaps,
            md5=self.md5.hexdigest() if closed and self.md5 is not None else None,
            sha1=self.sha1.hexdigest() if closed and self.sha1 is not None else None,
            sha256=None if self.gaps else self.sha256.hexdigest(),
            magic=None if ftype is None else ftype.description,
            mime_type=None if ftype is None else ftype.mime_type,
        )
        rec = FileRecord(**fields)
        if self.session is not None:
            verdict = self.session.finish(rec)
            if self.too_large and verdict.kind is VerdictKind.UNSCANNED:   # say why first
                verdict = Verdict(VerdictKind.UNSCANNED, TOO_LARGE, (TOO_LARGE, *verdict.reasons))
            if verdict is not UNSCANNED:
                # built again rather than `dataclasses.replace`d: a file closes while the live
                # path holds its last packet, and replace costs three times the constructor
                rec = FileRecord(**fields, verdict=verdict)
        return rec


class _Body:
    """One message body on its way to becoming files: a single file, or a
    multipart splitter and the part file being received (None for a field)."""

    __slots__ = ("file", "splitter")

    def __init__(self, file: _OpenFile | None, splitter: MultipartSplitter | None) -> None:
        self.file, self.splitter = file, splitter


class FileTracker:
    """Files of one flow (see the module docstring)."""

    __slots__ = ("_ctx", "_bodies", "_waiting", "_last", "_released")

    def __init__(self, ctx: FileContext) -> None:
        self._ctx = ctx
        self._bodies: dict[tuple[int, Direction], _Body | None] = {}    # None: a body that is no file
        self._waiting: dict[int, list[FileRecord]] = {}                 # closed, record not yet seen
        self._last: AppRecord | None = None      # stray bytes after it may still make a file of its tx
        self._released = False                   # see `release`

    @property
    def idle(self) -> bool:
        """Nothing open or waiting (bodies that are no file do not count: what
        still arrives of one cannot make it a file)."""
        return not self._released and not self._waiting and all(b is None for b in self._bodies.values())

    def judging(self) -> set[Direction]:
        """Directions with a file open whose bytes still reach the hashes and the scanner (not
        past the size limit, no gap, not announced larger than it), or a multipart body that
        may still start one: the live path keeps such a flow queued until the file is judged.
        A file whose Content-Length passes the limit is not: it would be cut at the limit and
        its verdict, whatever the first bytes show, would come when the flow is handed back
        there, too late to hold anything (nor can its whole be hashed)."""
        limit = self._ctx.limits.max_size   # the parser may stop handing on bytes right at it
        out: set[Direction] = set()
        for (_, d), b in self._bodies.items():
            if b is None:
                continue
            f = b.file
            if f is None:
                if b.splitter is not None:
                    out.add(d)
            elif not (f.capped or f.gaps or f.too_large or f.hashed >= limit):
                out.add(d)
        return out

    # -- input ------------------------------------------------------------------------------

    def body(self, chunk: BodyChunk) -> list[FileEvent | Anomaly]:
        out: list[FileEvent | Anomaly] = []
        if self._released:
            return out
        key = (chunk.tx_id, chunk.direction)
        if key in self._bodies:
            body = self._bodies[key]
        elif not chunk.data and not chunk.gap:
            return out     # an empty body is no file
        else:
            body = self._bodies[key] = self._open_body(chunk)
        if body is not None:
            if chunk.gap:
                self._gap(body, chunk.gap)
            elif chunk.data:
                self._data(body, chunk, chunk.data, out)
        if chunk.final:
            del self._bodies[key]
            if body is not None:
                self._end_body(body, chunk, out)
        return out

    def record(self, rec: AppRecord) -> list[FileEvent | Anomaly]:
        """A transaction was logged: its files that waited for it go out.

        A response body stays open after its transaction is logged: as in
        libhtp and Suricata, stray lines until the next response still join
        it, so it closes with the body's last chunk."""
        self._last = rec
        return [FileEvent(f, rec) for f in self._waiting.pop(rec.tx_id, ())]

    def close_complete(self, complete, snapshot=None) -> tuple[list[FileEvent | Anomaly], list[FileRecord]]:
        """Live path: close now every single-file body that `complete(tx_id, direction)` says is
        whole by its framing (Content-Length, last chunk), rather than when the next message or
        the flow's end confirms it; returns (outputs, the records just judged). Multipart
        bodies are left to their own boundaries (their files closed by a boundary go out
        here too, as files closed by the connection's close do). `snapshot(tx_id)` gives the transaction as it
        stands (not logged yet), so the file's event need not wait for it."""
        out: list[FileEvent | Anomaly] = []
        judged: list[FileRecord] = []
        for key, body in list(self._bodies.items()):
            if body is None or body.splitter is not None or body.file is None or not complete(*key):
                continue
            del self._bodies[key]
            rec = body.file.close(self._ctx, False)
            judged.append(rec)
            tx = self._record_of(rec.tx_id) or (snapshot(rec.tx_id) if snapshot is not None else None)
            if tx is not None:
                out.append(FileEvent(rec, tx))
            else:
                self._closed(rec, out)
        if snapshot is not None and self._waiting:
            # files that closed by their own end (a part's boundary, a body ended by the
            # connection's close) but wait for their transaction to be logged: judged already,
            # their event goes out now, with the transaction as it stands
            for tx_id in list(self._waiting):
                tx = snapshot(tx_id)
                if tx is not None:
                    for rec in self._waiting.pop(tx_id):
                        judged.append(rec)
                        out.append(FileEvent(rec, tx))
        return out, judged

    def release(self) -> list[FileEvent | Anomaly]:
        """Live path: the flow was handed back to the kernel and no more of it comes here. What
        is open closes now (TRUNCATED: the scanner judges what it holds and frees its buffer,
        up to the file size limit each) instead of when the flow times out; bytes of packets
        still on their way are ignored, not taken for new files. Stays non-idle (kept)."""
        out = self.flush()
        self._released = True
        return out

    def flush(self) -> list[FileEvent | Anomaly]:
        """Flow end: close what is open (TRUNCATED) and log everything left."""
        out: list[FileEvent | Anomaly] = []
        for (tx_id, d), body in list(self._bodies.items()):
            if body is not None:
                self._end_body(body, _end_marker((tx_id, d), "http", truncated=True), out)
        self._bodies.clear()
        for tx_id, files in self._waiting.items():
            rec = self._record_of(tx_id)
            out.extend(FileEvent(f, rec) for f in files)
        self._waiting.clear()
        self._last = None
        return out

    # -- bodies -----------------------------------------------------------------------------

    def _open_body(self, chunk: BodyChunk) -> _Body | None:
        # mail parsers (smtp, pop3, imap) hand on each attachment decoded and named, either way
        if chunk.direction is Direction.TO_SERVER and chunk.app_proto in ("http", "http2"):
            method = (chunk.method or "").upper()
            if method not in _REQUEST_FILE_METHODS:
                return None
            boundary = multipart_boundary(chunk.content_type) if method == "POST" else None
            if boundary is not None:
                return _Body(None, MultipartSplitter(boundary, self._ctx.limits.max_part_header))
        if not chunk.filename:
            return None
        f = self._new_file(chunk, chunk.filename, chunk.length)
        return None if f is None else _Body(f, None)

    def _new_file(self, chunk: BodyChunk, name: str, announced: int | None = None) -> _OpenFile | None:
        open_now = sum(1 for b in self._bodies.values() if b is not None and b.file is not None)
        if open_now >= self._ctx.limits.max_open:
            self._ctx.counters.open_limit += 1
            return None
        return _OpenFile(self._ctx, chunk.app_proto, chunk.tx_id, chunk.direction, name, announced)

    def _data(self, body: _Body, chunk: BodyChunk, data: bytes, out: list) -> None:
        if body.splitter is None:
            f = body.file
            if chunk.filename and chunk.filename != f.name:   # type: ignore[union-attr]
                f.name = chunk.filename   # type: ignore[union-attr]  # junk came before the head naming it
            f.data(self._ctx, data)   # type: ignore[union-attr]
            return
        self._parts(body, chunk, body.splitter.feed(data), out)

    def _gap(self, body: _Body, length: int) -> None:
        if body.splitter is None:
            body.file.gap(self._ctx, length)   # type: ignore[union-attr]
        elif body.file is not None:
            body.file.gap(self._ctx, length)
            # the part's end may have been in the hole: the rest is unreliable
            body.splitter = MultipartSplitter(b"\x00gap\x00", self._ctx.limits.max_part_header)

    def _end_body(self, body: _Body, chunk: BodyChunk, out: list) -> None:
        if body.splitter is not None:
            self._parts(body, chunk, body.splitter.finish(), out)
            if body.file is not None:       # cut off inside a part
                self._closed(body.file.close(self._ctx, True), out)
                body.file = None
        elif body.file is not None:
            self._closed(body.file.close(self._ctx, chunk.truncated), out)

    def _parts(self, body: _Body, chunk: BodyChunk, events: list[PartEvent], out: list) -> None:
        for ev in events:
            if isinstance(ev, PartData):
                if body.file is not None:
                    body.file.data(self._ctx, ev.data)
            elif isinstance(ev, PartStart):
                body.file = None if ev.filename is None else self._new_file(chunk, ev.filename)
            elif isinstance(ev, PartEnd):
                if body.file is not None:
                    self._closed(body.file.close(self._ctx, not ev.complete), out)
                body.file = None
        splitter = body.splitter
        if splitter is not None and splitter.anomalies:
            for name in splitter.anomalies:
                out.append(Anomaly(AnomalyKind.APPLAYER, name, chunk.app_proto or "http", chunk.direction,
                                   chunk.tx_id))
            splitter.anomalies.clear()

    def _closed(self, rec: FileRecord, out: list) -> None:
        tx = self._record_of(rec.tx_id)
        if tx is not None:
            out.append(FileEvent(rec, tx))
        else:
            self._waiting.setdefault(rec.tx_id, []).append(rec)

    def _record_of(self, tx_id: int) -> AppRecord | None:
        last = self._last
        return last if last is not None and last.tx_id == tx_id else None


def _end_marker(key: tuple[int, Direction], app_proto: str, truncated: bool) -> BodyChunk:
    """The end of a body the tracker decides itself (transaction logged, flow end)."""
    return BodyChunk(app_proto, key[0], key[1], b"", True, truncated)
