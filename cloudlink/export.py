"""Put the alerts of an offline run (`utm inspect --export-to DIR`) into the agent's queue in DIR.

Reads the run's eve.json line by line and queues each alert's allowlisted
detection, 500 per transaction. An alert that cannot be expressed in the
schema is counted by reason and skipped; non-alert events are ignored. The
queue can be filled before enrolment: `utm cloudlink run` sends it later.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from cloudlink.errors import ProtocolError, QueueError, QueueFullError
from cloudlink.eve import detection_from_eve
from cloudlink.protocol import Detection
from cloudlink.queue import DetectionQueue

_CHUNK = 500


@dataclass(slots=True)
class ExportResult:
    alerts: int = 0
    queued: int = 0
    duplicates: int = 0
    dropped: int = 0                     # by the queue's cap (lowest stars, oldest first)
    lost_disk_full: int = 0
    refused: dict[str, int] = field(default_factory=dict)   # reason -> count


def export_eve(eve: Path, state_dir: Path) -> ExportResult:
    """Queue every alert of `eve` into `state_dir`/queue.sqlite; QueueError if the queue is unusable."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise QueueError(f"{state_dir}: {e.strerror}") from None
    res = ExportResult()
    pending: list[Detection] = []
    with DetectionQueue(state_dir / "queue.sqlite") as q:
        def flush() -> None:
            try:
                r = q.enqueue(pending)
            except QueueFullError as e:
                res.lost_disk_full += e.lost
                pending.clear()
                return
            res.queued += r.added
            res.duplicates += r.duplicates
            res.dropped += r.dropped
            pending.clear()
        with open(eve, "rb") as fh:
            for line in fh:
                if b'"event_type":"alert"' not in line:
                    continue
                res.alerts += 1
                try:
                    d = detection_from_eve(orjson.loads(line))
                except orjson.JSONDecodeError:
                    res.refused["not_json"] = res.refused.get("not_json", 0) + 1
                    continue
                except ProtocolError as e:
                    reason = getattr(e, "field", None) or type(e).__name__
                    res.refused[reason] = res.refused.get(reason, 0) + 1
                    continue
                if d is not None:
                    pending.append(d)
                if len(pending) >= _CHUNK:
                    flush()
        if pending:
            flush()
    return res
