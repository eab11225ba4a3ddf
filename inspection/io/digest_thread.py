"""File digests on a thread of their own (the live worker's `Digests`).

hashlib releases the GIL while it hashes a buffer over 2 KB, so md5 and
sha256 of a queued download run on the second core while the packet loop
decodes, reassembles and gives verdicts. Chunks of one file stay in order
(one thread, one FIFO). `settle` waits for the thread to catch up: the
packet that ends a file is held until its digests are final, as it was when
they were computed inline. Chunks too small to be worth the hand-over are
hashed inline while nothing is waiting on the thread. What waits for the
thread is bounded (`max_queued` bytes): a CPU that hashes slower than the
loop reads makes `feed` wait for the thread, as hashing inline would, rather
than grow the queue without end (counted in `waits`).
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Sequence

__all__ = ["ThreadDigests"]

INLINE_BELOW = 16 << 10   # a chunk this small costs less to hash than to hand over
MAX_QUEUED = 16 << 20     # bytes waiting for the thread before `feed` waits for it


class ThreadDigests:
    def __init__(self, max_queued: int = MAX_QUEUED) -> None:
        self._jobs: deque[tuple[Sequence[Any], bytes]] = deque()
        self._cond = threading.Condition()
        self._busy = False            # the thread is hashing a job it took
        self._closed = False
        self._queued = 0              # bytes in `_jobs`
        self._max_queued = max_queued
        self.errors = 0               # updates that raised (a digest is then wrong, never a hang)
        self.waits = 0                # feeds that waited for the thread to catch up
        self._thread = threading.Thread(target=self._run, name="digests", daemon=True)
        self._thread.start()

    def feed(self, hashers: Sequence[Any], data: bytes) -> None:
        if len(data) < INLINE_BELOW and not self._jobs and not self._busy:
            for h in hashers:          # nothing queued: inline keeps the order
                h.update(data)
            return
        if type(data) is not bytes:
            data = bytes(data)         # a caller's buffer may change before the thread reads it
        with self._cond:
            if self._queued > self._max_queued and not self._closed:
                self.waits += 1
                while self._queued > self._max_queued and not self._closed:
                    self._cond.wait()
            self._jobs.append((hashers, data))
            self._queued += len(data)
            self._cond.notify()        # the thread: the only other one waiting here

    def settle(self) -> None:
        with self._cond:
            while self._jobs or self._busy:
                self._cond.wait()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(5)

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._jobs and not self._closed:
                    cond.wait()
                if not self._jobs:
                    return
                hashers, data = self._jobs.popleft()
                self._queued -= len(data)
                self._busy = True
            try:
                for h in hashers:
                    h.update(data)     # without the GIL for buffers over 2 KB
            except Exception:   # noqa: BLE001 - never leave `settle` waiting on a dead thread
                self.errors += 1
            with cond:
                self._busy = False
                if not self._jobs or self._queued <= self._max_queued:
                    cond.notify_all()     # `settle`, or a `feed` waiting for room
