"""Digests on the live worker's hashing thread: the same digests as inline, in order, settled on demand."""
from __future__ import annotations

import hashlib
import random

from inspection.files.model import FileLimits
from inspection.files.tracker import FileContext, FileTracker
from inspection.io.digest_thread import INLINE_BELOW, ThreadDigests
from inspection.model import Direction
from tests.unit.files.test_tracker import Rec, chunks, run


def test_interleaved_files_get_the_digests_of_their_own_bytes_in_order():
    rnd = random.Random(7)
    d = ThreadDigests()
    try:
        files = {n: [rnd.randbytes(rnd.choice((100, INLINE_BELOW - 1, INLINE_BELOW, 70_000))) for _ in range(40)]
                 for n in range(3)}
        hashers = {n: (hashlib.md5(), hashlib.sha256()) for n in files}
        for i in range(40):                        # small chunks inline, large ones on the thread, mixed
            for n, parts in files.items():
                d.feed(hashers[n], parts[i])
        d.settle()
        for n, parts in files.items():
            whole = b"".join(parts)
            assert hashers[n][0].hexdigest() == hashlib.md5(whole).hexdigest()
            assert hashers[n][1].hexdigest() == hashlib.sha256(whole).hexdigest()
    finally:
        d.close()


def test_a_changing_caller_buffer_is_hashed_as_it_was_when_fed():
    d = ThreadDigests()
    try:
        buf = bytearray(b"a" * 100_000)
        h = hashlib.sha256()
        d.feed((h,), buf)
        buf[:] = b"b" * 100_000
        d.settle()
        assert h.hexdigest() == hashlib.sha256(b"a" * 100_000).hexdigest()
    finally:
        d.close()


def test_the_tracker_logs_the_same_file_with_either_digests():
    data = random.Random(3).randbytes(300_000)
    records = []
    for digests in (None, ThreadDigests()):
        ctx = FileContext(FileLimits(), digests=digests)
        records.append(run(FileTracker(ctx), [Rec(0)] + chunks(0, Direction.TO_CLIENT, data, step=65536))[0].file)
        if digests is not None:
            digests.close()
    assert records[0] == records[1] and records[0].sha256 == hashlib.sha256(data).hexdigest()


def test_an_update_that_raises_does_not_stop_the_thread():
    class Broken:
        def update(self, data):
            raise ValueError("no")

    d = ThreadDigests()
    try:
        d.feed((Broken(),), b"x" * 100_000)
        h = hashlib.sha256()
        d.feed((h,), b"y" * 100_000)
        d.settle()                                   # returns: the thread went on
        assert d.errors == 1 and h.hexdigest() == hashlib.sha256(b"y" * 100_000).hexdigest()
    finally:
        d.close()


def test_a_thread_that_falls_behind_makes_feed_wait_instead_of_queueing_without_end():
    import threading

    release = threading.Event()

    class Slow:
        def __init__(self) -> None:
            self.h = hashlib.sha256()

        def update(self, data):
            release.wait(5)            # the thread cannot keep up until released
            self.h.update(data)

    d = ThreadDigests(max_queued=100_000)
    slow, chunk = Slow(), b"z" * 30_000
    fed = []

    def feeder():
        for _ in range(20):
            d.feed((slow,), chunk)
            fed.append(d._queued)

    t = threading.Thread(target=feeder)
    try:
        t.start()
        t.join(0.5)
        assert t.is_alive() and len(fed) < 20              # feed waits for the thread
        assert max(fed) <= 100_000 + len(chunk)             # the queue stopped at its bound
        release.set()
        t.join(5)
        d.settle()
        assert len(fed) == 20 and d.waits >= 1
        assert slow.h.hexdigest() == hashlib.sha256(chunk * 20).hexdigest()   # all of it, in order
    finally:
        release.set()
        d.close()
