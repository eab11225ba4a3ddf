"""An in-memory cloud behind `CloudPort`, for tests of the agent loop without sockets.

It stores by (key) like the real cloud, can be switched off (every call
raises CloudUnreachableError) and can be told to "lose" the next answer
(store the batch, then fail), the case at-least-once delivery exists for.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cloudlink.errors import CloudUnreachableError
from cloudlink.protocol import (BatchAck, CommandBatch, CommandEnvelope, CommandResult, Detection, DetectionBatch,
                                Heartbeat, HeartbeatAck)


@dataclass
class FakeCloud:
    up: bool = True
    lose_next_answers: int = 0
    stored: dict[str, Detection] = field(default_factory=dict)
    heartbeats: list[Heartbeat] = field(default_factory=list)
    duplicates: int = 0
    calls: int = 0
    endpoint: str | None = "fake://cloud"
    pending: list[CommandEnvelope] = field(default_factory=list)
    results: list[CommandResult] = field(default_factory=list)

    def _check(self) -> None:
        self.calls += 1
        if not self.up:
            raise CloudUnreachableError("fake cloud is down")

    async def heartbeat(self, hb: Heartbeat) -> HeartbeatAck:
        self._check()
        self.heartbeats.append(hb)
        return HeartbeatAck(hb.sent_at, 60)

    async def upload(self, batch: DetectionBatch) -> BatchAck:
        self._check()
        acc, dup = [], []
        for d in batch.events:
            if d.key in self.stored:
                dup.append(d.key)
            else:
                self.stored[d.key] = d
                acc.append(d.key)
        self.duplicates += len(dup)
        if self.lose_next_answers:
            self.lose_next_answers -= 1
            raise CloudUnreachableError("fake cloud: answer lost after storing")
        return BatchAck(tuple(acc), tuple(dup))

    async def poll_commands(self, wait_s: float) -> CommandBatch:
        """Hands out every pending command once (the real cloud repeats until a result arrives)."""
        self._check()
        out, self.pending = tuple(self.pending), []
        return CommandBatch(out)

    async def report_result(self, result: CommandResult) -> None:
        self._check()
        self.results.append(result)
