"""Per-rule alert thresholds: Suricata's ``threshold`` (types limit, threshold,
both) and ``detection_filter``, decided after a rule has matched.

Sans-IO: the caller hands in the matched rule, the endpoints of the matched
data (src, dst as raw address bytes), the flow's id and the packet timestamp;
no clock is read. Semantics follow Suricata 7/8 (detect-engine-threshold.c)
exactly, so a ruleset tuned on Suricata alerts the same number of times here:

- an entry per (gid, sid, rev) and tracked value: the source address
  (by_src), the destination (by_dst), the unordered address pair (by_both),
  nothing (by_rule: one entry per rule) or the flow (by_flow);
- its window starts at the first match and holds while ``ts <= start +
  seconds``; the first match after it starts a new window, counted as 1;
- limit: alert on the first `count` matches of a window;
- threshold: alert on every `count`-th match of a window (the count restarts
  after each alert, the window does not); count 1 alerts on every match and
  keeps no entry;
- both: alert once per window, on the `count`-th match;
- detection_filter: alert on every match after the `count`-th of a window.

Thresholding decides the alert only: the caller applies flowbits and other
state changes of a matched rule whatever the outcome (Suricata does the same).
`Outcome.QUIET` is Suricata's "silent match" (limit and both past their
count): no alert, but a drop/reject rule still acts; `Outcome.IGNORE` means
neither (threshold and both before their count, detection_filter up to it).
The inspector turns only ALERT into hits today: nothing blocks yet, so QUIET
waits for the inline verdict path.

Memory: at most `max_entries` tracked entries (65,536 by default, about
270 bytes each). An entry whose window has passed behaves exactly like a
missing one, so each thresholded match first drops the entries whose window
ended before its timestamp (a heap ordered by window end keeps that O(log n)
per entry). A match that needs a new entry while the table is full is not
tracked: it is counted in `counters.untracked` and it ALERTS. That is the
safe default for an inspection box (an attack under a threshold rule is never
hidden because memory ran out; the price is extra alerts on noisy rules);
Suricata, out of memory for thresholds, drops the alert instead.

Not handled here: ``threshold.config`` files (global ``suppress``,
``threshold``, ``rate_filter`` and ``event_filter`` lines); the rule loader
rejects ``type backoff`` by name.
"""
from __future__ import annotations

import enum
import heapq
import itertools
from dataclasses import dataclass

from signatures.model import Rule, Threshold, ThresholdType, Track

DEFAULT_MAX_ENTRIES = 65536


class Outcome(enum.Enum):
    ALERT = "alert"     # log the alert (and act on it)
    QUIET = "quiet"     # Suricata's silent match: act (drop/reject) but do not log
    IGNORE = "ignore"   # neither: the match does not count as an alert


@dataclass(slots=True)
class ThresholdCounters:
    """What the summary reports: matches held back, and matches that could not be tracked."""

    suppressed: int = 0   # matches that did not alert (QUIET or IGNORE)
    untracked: int = 0    # matches that needed a new entry while the table was full (they alerted)
    expired: int = 0      # entries dropped because their window had passed
    peak: int = 0         # most entries held at once


class ThresholdTable:
    """The tracked entries of every thresholded rule, for one detection worker."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self.counters = ThresholdCounters()
        # key -> matches counted in its window. A window that has passed is never reset in
        # place: its entry expires and the next match makes a new one (Suricata's reset).
        self._entries: dict[tuple, int] = {}
        # (window end, tie-break, key), one per entry; the end is start + seconds, the last
        # instant still inside the window
        self._ends: list[tuple[float, int, tuple]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, rule: Rule, src: bytes, dst: bytes, flow_id: int, ts: float) -> Outcome:
        """The outcome of `rule` matching data sent from `src` to `dst` on flow `flow_id` at `ts`.

        A rule without a threshold always alerts.
        """
        t = rule.threshold
        if t is None:
            return Outcome.ALERT
        out = self._decide(rule, t, src, dst, flow_id, ts)
        if out is not Outcome.ALERT:
            self.counters.suppressed += 1
        return out

    def expire(self, ts: float) -> int:
        """Drop the entries whose window has passed at `ts`; how many went."""
        ends, entries = self._ends, self._entries
        gone = 0
        while ends and ends[0][0] < ts:
            del entries[heapq.heappop(ends)[2]]
            gone += 1
        self.counters.expired += gone
        return gone

    def _decide(self, rule: Rule, t: Threshold, src: bytes, dst: bytes, flow_id: int, ts: float) -> Outcome:
        if t.type is ThresholdType.THRESHOLD and t.count == 1:
            return Outcome.ALERT   # every match is the count-th: nothing to remember
        if self._ends and self._ends[0][0] < ts:
            self.expire(ts)
        key = (rule.gid, rule.sid, rule.rev, _tracked(t.track, src, dst, flow_id))
        entries = self._entries
        n = entries.get(key)
        if n is None:
            if len(entries) >= self.max_entries:
                self.counters.untracked += 1
                return Outcome.ALERT
            entries[key] = 1
            heapq.heappush(self._ends, (ts + t.seconds, next(self._seq), key))
            if len(entries) > self.counters.peak:
                self.counters.peak = len(entries)
            return _first(t)
        n += 1   # expire() left only entries whose window still holds at ts
        out = _again(t, n)
        # type threshold counts again from zero after each alert; its window stays
        entries[key] = 0 if out is Outcome.ALERT and t.type is ThresholdType.THRESHOLD else n
        return out


def _tracked(track: Track, src: bytes, dst: bytes, flow_id: int) -> object:
    if track is Track.BY_SRC:
        return src
    if track is Track.BY_DST:
        return dst
    if track is Track.BY_BOTH:
        return (src, dst) if src <= dst else (dst, src)   # either direction is the same pair
    if track is Track.BY_FLOW:
        return flow_id
    return None   # BY_RULE


def _first(t: Threshold) -> Outcome:
    """The first match of a window."""
    if t.type is ThresholdType.LIMIT:
        return Outcome.ALERT
    if t.type is ThresholdType.DETECTION_FILTER:
        return Outcome.IGNORE
    return Outcome.ALERT if t.count == 1 else Outcome.IGNORE   # threshold, both


def _again(t: Threshold, n: int) -> Outcome:
    """A later match inside the window, the `n`-th counted."""
    kind = t.type
    if kind is ThresholdType.LIMIT:
        return Outcome.ALERT if n <= t.count else Outcome.QUIET
    if kind is ThresholdType.THRESHOLD:
        return Outcome.ALERT if n >= t.count else Outcome.IGNORE
    if kind is ThresholdType.BOTH:
        if n == t.count:
            return Outcome.ALERT
        return Outcome.QUIET if n > t.count else Outcome.IGNORE
    return Outcome.ALERT if n > t.count else Outcome.IGNORE   # detection_filter
