"""The agent's durable detection queue: SQLite in WAL mode.

Delivery is at-least-once: a batch is read, sent, and deleted only when the
cloud's ack names its keys. A crash between the cloud storing a batch and the
ack being applied resends it, and the cloud's unique (device, key) index
absorbs the duplicate.

Durability: `synchronous=FULL`. In WAL mode NORMAL already survives a process
crash (SIGKILL); FULL also survives a power cut, at one fsync per commit. The
box has no UPS and detections are the thing we must not lose, and enqueues
and acks are batched, so the extra fsync is cheap next to what it buys.

Bounds: at most `max_events` events and `max_bytes` of stored JSON. Past
either, the lowest-stars events go first, oldest first among equal stars, and
every drop is added to a counter kept in the same database (so it survives
restarts and is reported in heartbeats). If the disk itself is full, the
events being enqueued are lost: `QueueFullError` says how many, and the count
is added to `lost_disk_full` with the next write that succeeds.

Followed EVE files (cloudlink/follower.py): the offset up to which each file
was read is stored in the same transaction as the detections read from it,
so a crash at any point neither loses nor duplicates a line; on a full disk
nothing is committed and the same lines are read again later (not lost).
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import orjson

from cloudlink.errors import ProtocolError, QueueError, QueueFullError
from cloudlink.protocol import Detection

DEFAULT_MAX_EVENTS = 100_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
COUNTERS = ("enqueued", "duplicates", "dropped", "acked", "lost_disk_full", "unreadable")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    stars INTEGER NOT NULL,
    size INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_send ON events (stars DESC, id ASC);
CREATE INDEX IF NOT EXISTS events_drop ON events (stars ASC, id ASC);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS follow_offsets (
    path TEXT PRIMARY KEY,
    inode INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    skipping INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    added: int
    duplicates: int
    dropped: int


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    bytes: int
    enqueued: int
    duplicates: int
    dropped: int
    acked: int
    lost_disk_full: int
    unreadable: int
    max_events: int
    max_bytes: int


class DetectionQueue:
    """One connection per process; safe to share the file between the agent and `utm inspect --export-to`."""

    def __init__(self, path: str | Path, *, max_events: int = DEFAULT_MAX_EVENTS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_events < 1 or max_bytes < 1024:
            raise QueueError("queue caps must be at least 1 event and 1 KiB")
        self.path = Path(path)
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._lost_pending = 0          # lost to a full disk, not yet written to the counter
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise QueueError(f"{self.path}: cannot open queue: {e}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "DetectionQueue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, fn, *args, lost_if_full: int = 0):  # type: ignore[no-untyped-def]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(*args)
                if self._lost_pending:
                    self._bump("lost_disk_full", self._lost_pending)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._lost_pending = 0
            return result
        except sqlite3.Error as e:
            if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                self._lost_pending += lost_if_full
                raise QueueFullError(f"{self.path}: disk full, {lost_if_full} event(s) lost", lost_if_full) from None
            raise QueueError(f"{self.path}: {e}") from None

    def _bump(self, name: str, n: int) -> None:
        if n:
            self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))

    def enqueue(self, detections: Iterable[Detection]) -> EnqueueResult:
        """Add detections in one transaction; a key already queued is a duplicate, not a second copy."""
        rows = _rows(detections)
        return self._write(self._enqueue, rows, lost_if_full=len(rows))

    def _enqueue(self, rows: list[tuple[str, int, int, bytes]]) -> EnqueueResult:
        added = 0
        for r in rows:
            cur = self._db.execute("INSERT OR IGNORE INTO events (key, stars, size, body) VALUES (?, ?, ?, ?)", r)
            added += cur.rowcount
        dropped = self._enforce_caps()
        self._bump("enqueued", added)
        self._bump("duplicates", len(rows) - added)
        self._bump("dropped", dropped)
        return EnqueueResult(added, len(rows) - added, dropped)

    def _enforce_caps(self) -> int:
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()
        dropped = 0
        if count > self.max_events:
            n = count - self.max_events
            size -= self._db.execute("SELECT COALESCE(SUM(size), 0) FROM (SELECT size FROM events "
                                     "ORDER BY stars ASC, id ASC LIMIT ?)", (n,)).fetchone()[0]
            self._db.execute("DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY stars ASC, id ASC "
                             "LIMIT ?)", (n,))
            dropped += n
        while size > self.max_bytes:
            victims = self._db.execute("SELECT id, size FROM events ORDER BY stars ASC, id ASC LIMIT 256").fetchall()
            if not victims:
                break
            chosen = []
            for vid, vsize in victims:
                if size <= self.max_bytes:
                    break
                chosen.append(vid)
                size -= vsize
            self._db.executemany("DELETE FROM events WHERE id = ?", [(v,) for v in chosen])
            dropped += len(chosen)
        return dropped

    def take(self, limit: int) -> list[Detection]:
        """The next events to send, highest stars first, oldest first among equals; nothing is removed.

        A row that no longer decodes (written by another schema version, or
        damaged) would block the queue forever: it is deleted and counted as
        `unreadable` instead.
        """
        try:
            rows = self._db.execute("SELECT id, body FROM events ORDER BY stars DESC, id ASC LIMIT ?",
                                    (limit,)).fetchall()
        except sqlite3.Error as e:
            raise QueueError(f"{self.path}: {e}") from None
        out, bad = [], []
        for rid, body in rows:
            try:
                out.append(Detection.from_json(orjson.loads(body)))
            except (orjson.JSONDecodeError, ProtocolError):
                bad.append((rid,))
        if bad:
            def _drop() -> None:
                self._db.executemany("DELETE FROM events WHERE id = ?", bad)
                self._bump("unreadable", len(bad))
            self._write(_drop)
        return out

    def ack(self, keys: Iterable[str]) -> int:
        """Delete acknowledged events; keys not in the queue (already acked) are ignored."""
        ks = [(k,) for k in keys]

        def _ack() -> int:
            n = 0
            for k in ks:
                n += self._db.execute("DELETE FROM events WHERE key = ?", k).rowcount
            self._bump("acked", n)
            return n
        return self._write(_ack)

    def enqueue_followed(self, path: str, inode: int, offset: int, skipping: bool,
                         detections: Iterable[Detection], counts: dict[str, int]) -> EnqueueResult:
        """Detections read from `path` up to `offset`, the new offset and the follower's counters, in one
        transaction. QueueFullError (with lost=0) if the disk is full: the offset stays where it was."""
        rows = _rows(detections)

        def _commit() -> EnqueueResult:
            r = self._enqueue(rows)
            self._db.execute("INSERT INTO follow_offsets (path, inode, offset, skipping) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT(path) DO UPDATE SET inode = excluded.inode, offset = excluded.offset, "
                             "skipping = excluded.skipping", (path, inode, offset, int(skipping)))
            for name, n in counts.items():
                self._bump(name, n)
            return r
        return self._write(_commit)

    def add_counts(self, counts: dict[str, int]) -> None:
        def _add() -> None:
            for name, n in counts.items():
                self._bump(name, n)
        self._write(_add)

    def follow_offsets(self) -> dict[str, tuple[int, int, bool]]:
        """path -> (inode, offset, skipping) of every followed file."""
        try:
            rows = self._db.execute("SELECT path, inode, offset, skipping FROM follow_offsets").fetchall()
        except sqlite3.Error as e:
            raise QueueError(f"{self.path}: {e}") from None
        return {p: (i, o, bool(sk)) for p, i, o, sk in rows}

    def counters(self, prefix: str) -> dict[str, int]:
        """Counters whose name starts with `prefix` (the follower's `follow.*`)."""
        try:
            rows = self._db.execute("SELECT name, value FROM counters WHERE substr(name, 1, ?) = ?",
                                    (len(prefix), prefix)).fetchall()
        except sqlite3.Error as e:
            raise QueueError(f"{self.path}: {e}") from None
        return {n: int(v) for n, v in rows}

    def stats(self) -> QueueStats:
        try:
            depth, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()
            c = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            c["lost_disk_full"] = c.get("lost_disk_full", 0) + self._lost_pending
        except sqlite3.Error as e:
            raise QueueError(f"{self.path}: {e}") from None
        return QueueStats(depth=depth, bytes=size, max_events=self.max_events, max_bytes=self.max_bytes,
                          **{name: int(c.get(name, 0)) for name in COUNTERS})


def _rows(detections: Iterable[Detection]) -> list[tuple[str, int, int, bytes]]:
    """(key, stars, size, body) per detection; one with a device id is refused (the upload adds it)."""
    rows = []
    for d in detections:
        if d.device_id is not None:
            raise ProtocolError("queued detections carry no device id; it is added on upload")
        body = orjson.dumps(d.to_json())
        rows.append((d.key, d.stars, len(body), body))
    return rows
