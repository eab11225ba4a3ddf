"""The agent follows the live box's EVE files (`utm run -l LOGDIR` writes LOGDIR/eve.qN.json).

A log shipper, in the agent's process: the data path never waits for it, and
a dead or slow agent only delays reports. Each poll reads what was appended
to each file since its stored offset, queues the alerts' detections and
stores the new offset in the same SQLite transaction (cloudlink/queue.py),
so a SIGKILL at any point neither loses nor duplicates a line.

Files:
- `--eve-dir LOGDIR` follows every `LOGDIR/eve.q*.json`, looked for again
  at each poll: a queue that appears later, or a box that starts after the
  agent, is picked up. A file that does not exist yet is not an error.
- `utm run` opens its files for appending: a restarted `utm run` continues
  the same file and the offset stays valid.
- A file whose size fell below the offset (truncated, e.g. logrotate's
  copytruncate) is read again from 0. A file replaced by another (new inode:
  rename rotation) is read from 0 after what is left of the old one, if the
  agent still holds the old one open; after an agent restart the old file's
  unread tail is not looked for (`follow.rotations` counts the switches).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

from cloudlink.follow import MAX_LINE, BadFiles, Cursor, LiveStatsTracker, convert, split_lines
from cloudlink.queue import DetectionQueue

FILE_GLOB = "eve.q*.json"
READ_CHUNK = 256 << 10            # small reads keep the agent's memory flat (its goal is 60 MB)
MAX_FILES = 64                    # more than any box has queues; past it files are counted and ignored


@dataclass(slots=True)
class _Open:
    fh: BinaryIO
    cur: Cursor


class EveFollower:
    """Reads, converts and commits; `poll` is called by the agent's follow loop (and once by --drain)."""

    def __init__(self, queue: DetectionQueue, dirs: Sequence[Path], *, tracker: LiveStatsTracker | None = None,
                 max_line: int = MAX_LINE, per_poll_bytes: int = 16 << 20,
                 on_error: Callable[[str], None] | None = None) -> None:
        if max_line < 1 or per_poll_bytes < 1:
            raise ValueError("follower limits must be positive")
        self.queue = queue
        self.dirs = [Path(d) for d in dirs]
        self.tracker = tracker or LiveStatsTracker()
        self.max_line = max_line
        self.chunk = min(READ_CHUNK, max_line + 2)  # a line longer than this is read again whole (below)
        self.per_poll_bytes = per_poll_bytes
        self.on_error = on_error or (lambda _msg: None)
        self._stored = queue.follow_offsets()
        self._open: dict[str, _Open] = {}
        self._too_many = False
        self._files = BadFiles()

    def files(self) -> list[Path]:
        found: list[Path] = []
        for d in self.dirs:
            try:
                found += sorted(p for p in d.glob(FILE_GLOB) if p.is_file())
            except OSError:
                continue
        return found

    def close(self) -> None:
        for o in self._open.values():
            o.fh.close()
        self._open.clear()

    def poll(self) -> int:
        """Read every file up to its end (at most `per_poll_bytes` each); bytes consumed in all.
        QueueError propagates (the agent backs off); a file that cannot be read is reported and skipped."""
        files = self.files()
        if len(files) > MAX_FILES:
            if not self._too_many:          # counted once per file over the cap, not once per poll
                self.queue.add_counts({"follow.files_ignored": len(files) - MAX_FILES})
                self._too_many = True
            files = files[:MAX_FILES]
        total = 0
        for p in files:
            try:
                total += self._follow(p)
            except OSError as e:
                self.on_error(f"follow {p}: {e.strerror or e}")
        for key in [k for k in self._open if Path(k) not in files]:      # gone, and the rest read
            try:
                total += self._follow(Path(key))
            except OSError as e:
                self.on_error(f"follow {key}: {e.strerror or e}")
        return total

    def _reopen(self, key: str, path: Path, counts: dict[str, int]) -> _Open | None:
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            return None
        ino = os.fstat(fh.fileno()).st_ino
        stored = self._stored.get(key)
        if stored is not None and stored[0] == ino:
            cur = Cursor(ino, stored[1], stored[2])
        else:
            if stored is not None:
                counts["follow.rotations"] = counts.get("follow.rotations", 0) + 1
            cur = Cursor(ino)
        o = self._open[key] = _Open(fh, cur)
        return o

    def _follow(self, path: Path) -> int:
        key = str(path)
        counts: dict[str, int] = {}
        o = self._open.get(key)
        if o is not None:
            try:
                now_ino = os.stat(path).st_ino
            except FileNotFoundError:
                now_ino = None
            if now_ino != o.cur.inode:          # replaced or removed: finish the old one, then switch
                done = self._read(key, o, counts)
                o.fh.close()
                del self._open[key]
                self._stored[key] = (o.cur.inode, o.cur.offset, o.cur.skipping)
                if now_ino is None:
                    return done
                o2 = self._reopen(key, path, counts)
                return done + (self._read(key, o2, counts) if o2 is not None else 0)
        else:
            o = self._reopen(key, path, counts)
            if o is None:
                return 0
        return self._read(key, o, counts)

    def _read(self, key: str, o: _Open, counts: dict[str, int]) -> int:
        size = os.fstat(o.fh.fileno()).st_size
        if size < o.cur.offset:
            counts["follow.truncations"] = counts.get("follow.truncations", 0) + 1
            o.cur = Cursor(o.cur.inode)
        done = 0
        while True:
            o.fh.seek(o.cur.offset)
            data = o.fh.read(self.chunk)
            sp = split_lines(data, o.cur.skipping, self.max_line)
            if sp.consumed == 0 and len(data) == self.chunk:     # one long line: read up to the cap at once
                o.fh.seek(o.cur.offset)
                data = o.fh.read(self.max_line + 2)
                sp = split_lines(data, o.cur.skipping, self.max_line)
            conv = convert(sp.lines, self._files)
            for k, v in counts.items():
                conv.bump(k, v)
            counts.clear()
            conv.bump("follow.oversize_lines", sp.oversize)
            new = Cursor(o.cur.inode, o.cur.offset + sp.consumed, sp.skipping)
            if new != o.cur or conv.counts:
                self.queue.enqueue_followed(key, new.inode, new.offset, new.skipping, conv.detections, conv.counts)
                self._stored[key] = (new.inode, new.offset, new.skipping)
                for s in conv.stats:
                    self.tracker.feed(key, s)
            done += sp.consumed
            o.cur = new
            if len(data) < self.chunk or sp.consumed == 0 or done >= self.per_poll_bytes:
                return done
