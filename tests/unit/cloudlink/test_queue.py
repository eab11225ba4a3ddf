from __future__ import annotations

import pytest

from cloudlink.errors import ProtocolError, QueueError
from cloudlink.queue import DetectionQueue
from tests.unit.cloudlink.helpers import det


def test_order_is_stars_then_age(tmp_path):
    with DetectionQueue(tmp_path / "q.sqlite") as q:
        q.enqueue([det(1, 1), det(2, 3), det(3, 0), det(4, 3), det(5, 2)])
        assert [d.key for d in q.take(10)] == ["k00000002", "k00000004", "k00000005", "k00000001", "k00000003"]
        assert [d.key for d in q.take(2)] == ["k00000002", "k00000004"]


def test_duplicates_and_ack(tmp_path):
    with DetectionQueue(tmp_path / "q.sqlite") as q:
        r = q.enqueue([det(1), det(2)])
        assert (r.added, r.duplicates) == (2, 0)
        r = q.enqueue([det(2), det(3)])
        assert (r.added, r.duplicates) == (1, 1)
        assert q.ack(["k00000001", "k00000002", "k00000099"]) == 2
        s = q.stats()
        assert (s.depth, s.enqueued, s.duplicates, s.acked) == (1, 3, 1, 2)


def test_count_cap_drops_lowest_stars_oldest_first_and_counts(tmp_path):
    with DetectionQueue(tmp_path / "q.sqlite", max_events=4) as q:
        q.enqueue([det(1, 2), det(2, 0), det(3, 3), det(4, 0)])
        r = q.enqueue([det(5, 1), det(6, 3)])
        assert r.dropped == 2
        assert sorted(d.key for d in q.take(10)) == ["k00000001", "k00000003", "k00000005", "k00000006"]
        q.enqueue([det(7, 0)])          # a new 0-star event into a queue of better ones goes itself
        assert "k00000007" not in {d.key for d in q.take(10)}
    with DetectionQueue(tmp_path / "q.sqlite", max_events=4) as q:   # the counter is persisted
        assert q.stats().dropped == 3


def test_byte_cap_holds(tmp_path):
    with DetectionQueue(tmp_path / "q.sqlite", max_bytes=4096) as q:
        for i in range(200):
            q.enqueue([det(i, stars=i % 4, url="http://example.com/" + "a" * 100)])
        s = q.stats()
        assert s.bytes <= 4096 and s.depth + s.dropped == 200 and s.dropped > 150
        assert min(d.stars for d in q.take(1000)) >= 2   # what survived is the most severe


def test_refuses_device_id_and_bad_file(tmp_path):
    with DetectionQueue(tmp_path / "q.sqlite") as q:
        with pytest.raises(ProtocolError):
            q.enqueue([det(1, device_id="dev00000001")])
    (tmp_path / "bad.sqlite").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(QueueError):
        DetectionQueue(tmp_path / "bad.sqlite")
    with pytest.raises(QueueError):
        DetectionQueue(tmp_path / "missing" / "q.sqlite")


def test_shared_between_two_connections(tmp_path):
    a = DetectionQueue(tmp_path / "q.sqlite")
    b = DetectionQueue(tmp_path / "q.sqlite")
    try:
        a.enqueue([det(1)])
        assert [d.key for d in b.take(5)] == ["k00000001"]
        b.ack(["k00000001"])
        assert a.stats().depth == 0
    finally:
        a.close()
        b.close()


def test_full_disk_loses_counted_events_and_recovers(tmp_path):
    """max_page_count stands in for a full disk: SQLite answers SQLITE_FULL exactly as it would."""
    from cloudlink.errors import QueueFullError
    with DetectionQueue(tmp_path / "q.sqlite") as q:
        q._db.execute("PRAGMA max_page_count = 40")
        lost = 0
        for i in range(400):
            try:
                q.enqueue([det(i, url="http://example.com/" + "b" * 400)])
            except QueueFullError as e:
                lost += e.lost
        s = q.stats()
        assert lost > 0 and s.depth + lost == 400 and s.lost_disk_full == lost
        q.ack([d.key for d in q.take(50)])          # the link delivers; pages are freed and reused
        q.enqueue([det(1000)])
        assert q.stats().lost_disk_full == lost and q.stats().depth == s.depth - 50 + 1
    with DetectionQueue(tmp_path / "q.sqlite") as q:   # persisted
        assert q.stats().lost_disk_full == lost


def test_unreadable_rows_are_dropped_and_counted_not_blocking(tmp_path):
    with DetectionQueue(tmp_path / "q.sqlite") as q:
        q.enqueue([det(1, stars=3), det(2, stars=2)])
        q._db.execute("UPDATE events SET body = ? WHERE key = 'k00000001'", (b'{"key":"k00000001","payload":"x"}',))
        assert [d.key for d in q.take(10)] == ["k00000002"]
        s = q.stats()
        assert s.unreadable == 1 and s.depth == 1
