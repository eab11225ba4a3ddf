"""Following the live box's EVE files, the pure part: bytes -> lines -> detections and stats samples.

`utm run` appends one JSON object per line to LOGDIR/eve.qN.json (one file
per worker queue). The agent reads what was appended since its last offset,
like a log shipper. This module does no I/O: `split_lines` cuts a chunk read
at the stored offset into complete lines (a partial last line waits for its
newline), `convert` turns lines into detections and `stats` samples, and
`LiveStatsTracker` turns the samples into the heartbeat's share and counters.
The driver (cloudlink/follower.py) reads the files and commits the offsets
in the same SQLite transaction as the detections.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

import orjson

from cloudlink.errors import ProtocolError
from cloudlink.eve import detection_from_eve
from cloudlink.protocol import Detection

MAX_LINE = 1 << 20           # a longer line is counted and skipped (EVE lines are a few KiB)
STALE_AFTER_S = 150.0        # stats older than this (five 30-s periods) say nothing about the box now


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where following one file stands: its inode, the offset of the next unread byte, and whether
    the bytes from there on belong to an over-long line being skipped."""
    inode: int
    offset: int = 0
    skipping: bool = False

    def __post_init__(self) -> None:
        if self.offset < 0 or self.inode < 0:
            raise ValueError("cursor offset and inode must be >= 0")


@dataclass(frozen=True, slots=True)
class Split:
    lines: tuple[bytes, ...]
    consumed: int             # bytes of the chunk that are done with (complete lines, skipped bytes)
    oversize: int             # over-long lines skipped (counted once each, when first seen)
    skipping: bool            # the chunk ended inside an over-long line


def split_lines(chunk: bytes, skipping: bool = False, max_line: int = MAX_LINE) -> Split:
    """Complete lines of `chunk` (without their newline). A remainder without newline is left for the
    next read unless it is already longer than `max_line`: then it is skipped up to its newline."""
    lines: list[bytes] = []
    oversize = 0
    pos = 0
    n = len(chunk)
    while pos < n:
        nl = chunk.find(b"\n", pos)
        if nl < 0:
            break
        if skipping:
            skipping = False                   # the end of a line already counted
        elif nl - pos > max_line:
            oversize += 1
        else:
            lines.append(chunk[pos:nl])
        pos = nl + 1
    rest = n - pos
    if skipping:
        return Split(tuple(lines), n, oversize, True)
    if rest > max_line:
        return Split(tuple(lines), n, oversize + 1, True)
    return Split(tuple(lines), pos, oversize, False)


@dataclass(frozen=True, slots=True)
class StatsSample:
    """What the heartbeat needs from one `stats` event of one worker (cumulative since it started)."""
    ts: float                 # the event's time (epoch seconds)
    packets: int              # packets the worker judged
    drops: int                # drop verdicts
    kernel_dropped: int       # packets the kernel dropped at the queue (full without fail-open, undeliverable)
    worker_restarts: int
    engine_errors: int
    # packets the kernel queued (numbered) that never reached the worker: sent to it and lost
    # (fail-open accepted them uninspected, or user_dropped without it); 0 when the stats predate it
    kernel_unreached: int = 0
    user_dropped: int = 0     # part of kernel_dropped, and of kernel_unreached
    # packets of the whole box the NFQUEUE rule matched that reached no queue (fail-open at a full
    # queue, no worker bound): only the first queue's worker reports it, None from the others
    kernel_bypassed: int | None = None

    @property
    def missed(self) -> int:
        """Offered to the queue and not judged, as far as the kernel counts it: full queue without
        fail-open (queue_dropped) plus numbered-but-unreached (which holds user_dropped)."""
        return self.kernel_dropped + max(0, self.kernel_unreached - self.user_dropped)


@dataclass(slots=True)
class Converted:
    detections: list[Detection] = field(default_factory=list)
    stats: list[StatsSample] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)     # follow.* counter -> increment

    def bump(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] = self.counts.get(name, 0) + n


def _int(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def stats_sample(rec: Mapping[str, Any]) -> StatsSample | None:
    """The sample of a live `stats` event; None for one without a `live` branch (an offline run's)."""
    st = rec.get("stats")
    live = st.get("live") if isinstance(st, dict) else None
    ts = rec.get("timestamp")
    if not isinstance(live, dict) or not isinstance(ts, str):
        return None
    try:
        when = datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None
    verdicts = live.get("verdicts")
    verdicts = verdicts if isinstance(verdicts, dict) else {}
    kq = live.get("kernel_queue")
    kq = kq if isinstance(kq, dict) else {}
    return StatsSample(ts=when, packets=_int(live.get("packets")), drops=_int(verdicts.get("drop")),
                       kernel_dropped=_int(kq.get("queue_dropped")) + _int(kq.get("user_dropped")),
                       worker_restarts=_int(live.get("worker_restarts")),
                       engine_errors=_int(live.get("engine_errors")),
                       kernel_unreached=_int(kq.get("unreached")), user_dropped=_int(kq.get("user_dropped")),
                       kernel_bypassed=_int(live["kernel_bypassed"]) if "kernel_bypassed" in live else None)


class BadFiles:
    """Malicious files seen in `fileinfo` events, by (flow, SHA-256), so the alert that blocks the file
    (which names it only by hash) can carry its name and MD5. Bounded; oldest forgotten first."""

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._seen: dict[tuple[Any, str], dict[str, str]] = {}

    def note(self, rec: Mapping[str, Any]) -> None:
        fi = rec.get("fileinfo")
        if not isinstance(fi, dict) or not isinstance(fi.get("sha256"), str):
            return
        verdict = fi.get("verdict")
        if not isinstance(verdict, dict) or verdict.get("verdict") != "malicious":
            return
        if len(self._seen) >= self.limit:
            del self._seen[next(iter(self._seen))]
        self._seen[(rec.get("flow_id"), fi["sha256"])] = {
            k: fi[k] for k in ("filename", "sha256", "md5") if isinstance(fi.get(k), str)}

    def enrich(self, rec: dict[str, Any]) -> dict[str, Any]:
        """The alert with the `fileinfo` of the file it blocked, if it has none and the file was seen."""
        alert = rec.get("alert")
        meta = alert.get("metadata") if isinstance(alert, dict) else None
        sha = meta.get("sha256") if isinstance(meta, dict) else None
        if "fileinfo" in rec or not isinstance(sha, list) or len(sha) != 1 or not isinstance(sha[0], str):
            return rec
        fi = self._seen.pop((rec.get("flow_id"), sha[0]), None)
        return rec if fi is None else {**rec, "fileinfo": fi}


def convert(lines: Iterable[bytes], files: BadFiles | None = None) -> Converted:
    """Alerts -> detections, live `stats` -> samples; other events are read and ignored.

    Drops and malicious files need no conversion of their own: the live path
    raises an alert with action `blocked` for every block (rule, category,
    file), and that alert is the detection; a malicious file's `fileinfo`,
    written just before its alert, lends it the file's name and MD5 (`files`).
    A line that is not a JSON object is `follow.bad_lines`; an alert the
    allowlisted schema cannot express is `follow.refused`.
    """
    out = Converted()
    for line in lines:
        out.bump("follow.lines")
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            out.bump("follow.bad_lines")
            continue
        if not isinstance(rec, dict):
            out.bump("follow.bad_lines")
            continue
        et = rec.get("event_type")
        if et == "alert":
            out.bump("follow.alerts")
            try:
                d = detection_from_eve(files.enrich(rec) if files is not None else rec)
            except ProtocolError:
                out.bump("follow.refused")
                continue
            if d is not None:
                out.detections.append(d)
        elif et == "fileinfo" and files is not None:
            files.note(rec)
        elif et == "stats":
            s = stats_sample(rec)
            if s is not None:
                out.stats.append(s)
    return out


def _delta(new: int, old: int, restarted: bool) -> int:
    """Growth of a cumulative counter; after a restart (or a counter that went down) it counts from 0."""
    return new if restarted or new < old else new - old


@dataclass(frozen=True, slots=True)
class LiveReport:
    inspected_share: float | None
    counters: tuple[tuple[str, int], ...]


class LiveStatsTracker:
    """The latest stats per queue (file) -> the heartbeat's `inspected_share` and `live.*` counters.

    `inspected_share` = packets the workers judged / (packets judged + packets
    the kernel dropped at the queues + packets the kernel numbered for a queue
    that never reached its worker), over the stats that arrived since the
    previous heartbeat, plus `kernel_bypassed` when a worker reports it (below).
    The last term is the kernel's id sequence less what the worker read and
    what still waits (`unreached`): with fail-open the kernel accepts those
    uninspected when the send to the worker fails. With `utm run --net-config`
    the first queue's stats also carry `kernel_bypassed`: packets the NFQUEUE
    rule matched that reached no queue (fail-open at a full queue, no worker
    bound), read from the rule's own counter; they are offered, not judged.
    None when no fresh stats
    arrived (box down, agent just started: the first sample of a queue is only
    a baseline) or no packet was offered in the interval: an unknown is not
    guessed. What never reaches a queue is not in it: flows the ruleset hands
    back by connmark (depth reached, TLS; by design), and, without
    `kernel_bypassed` (no --net-config), packets fail-open passes at a full
    queue (the kernel's queue line does not count them).
    """

    def __init__(self, stale_after_s: float = STALE_AFTER_S) -> None:
        self.stale_after_s = stale_after_s
        self._last: dict[str, StatsSample] = {}
        self._judged = 0
        self._offered = 0
        self._fed = False                  # a delta arrived since the last report
        self._last_share: float | None = None
        self._pending_share: float | None = None

    def feed(self, source: str, s: StatsSample) -> None:
        prev = self._last.get(source)
        if prev is not None and s.ts < prev.ts:
            return                         # older than what we have (a replaced file read again)
        if prev is not None:
            restarted = s.worker_restarts != prev.worker_restarts or s.packets < prev.packets
            judged = _delta(s.packets, prev.packets, restarted)
            self._judged += judged
            self._offered += judged + _delta(s.missed, prev.missed, restarted)
            if s.kernel_bypassed is not None:
                self._offered += _delta(s.kernel_bypassed, prev.kernel_bypassed or 0, restarted)
            self._fed = True
        self._last[source] = s

    def report(self, now: float) -> LiveReport:
        """The heartbeat's view. Heartbeats more frequent than stats repeat the last share while its
        stats are fresh. The interval goes on until `sent()`: a heartbeat that failed loses nothing."""
        fresh = [s for s in self._last.values() if now - s.ts <= self.stale_after_s]
        if not self._fed:
            share = self._last_share if fresh else None
        else:
            share = min(1.0, self._judged / self._offered) if fresh and self._offered > 0 else None
        self._pending_share = share
        counters = (("live.queues", len(fresh)), ("live.packets", sum(s.packets for s in fresh)),
                    ("live.drops", sum(s.drops for s in fresh)),
                    ("live.kernel_dropped", sum(s.kernel_dropped for s in fresh)),
                    ("live.kernel_unreached", sum(s.kernel_unreached for s in fresh)),
                    ("live.kernel_bypassed", sum(s.kernel_bypassed or 0 for s in fresh)),
                    ("live.worker_restarts", sum(s.worker_restarts for s in fresh)),
                    ("live.engine_errors", sum(s.engine_errors for s in fresh)))
        return LiveReport(share, counters)

    def sent(self) -> None:
        """The last report reached the cloud: the next interval starts."""
        self._last_share = self._pending_share
        self._judged = self._offered = 0
        self._fed = False
