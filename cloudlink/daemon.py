"""The agent loop: heartbeats, queued uploads and remote commands, each with its own backoff.

Independent tasks so a slow upload never delays a heartbeat and vice versa;
the command task keeps one long-lived request open to the cloud. The
producer (the engine, or `utm inspect --export-to`) only ever writes the
SQLite queue; it never waits for this loop or for the cloud. While the cloud is unreachable each task waits an exponentially growing,
jittered delay (base * 2^failures, capped, then a random point in its upper
half) so a fleet of boxes does not reconnect in lockstep.
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable

import orjson

from cloudlink.commands import (CommandExecutor, CommandLog, DefinitionsPort, boot_id, handle_command,
                                load_command_key, resolve_reboots)
from cloudlink.errors import CloudlinkError, ProtocolError, QueueError
from cloudlink.follower import EveFollower
from cloudlink.protocol import MAX_BATCH_EVENTS, DetectionBatch, Heartbeat, LinkState
from cloudlink.queue import DetectionQueue
from cloudlink.state import AgentState
from cloudlink.transport import CloudPort
from firmware.base.atomic import write_atomic


@dataclass(frozen=True, slots=True)
class AgentConfig:
    heartbeat_interval_s: float = 60.0
    batch_size: int = 200
    poll_interval_s: float = 2.0          # how often an empty queue is looked at again
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    command_wait_s: float = 50.0          # the long poll for commands; the cloud answers at once if one waits
    firmware_version: str = "0+unknown"
    definitions_interval_s: float = 3600.0   # scheduled definitions checks (jittered); the command checks at once

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch size must be 1..{MAX_BATCH_EVENTS}")
        if min(self.heartbeat_interval_s, self.poll_interval_s, self.backoff_base_s,
               self.definitions_interval_s) <= 0:
            raise ValueError("intervals must be positive")
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("the backoff cap must be at least its base")


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Delay before retry number `failures` (1 = first retry): capped exponential, jittered in its upper half."""
    d = min(cap, base * (2 ** min(max(failures - 1, 0), 30)))
    return d / 2 + rng.uniform(0, d / 2)


@dataclass(slots=True)
class AgentStatus:
    """What the loop did; written to status.json for `utm cloudlink status` (not a protocol message)."""
    started_at: float
    pid: int
    endpoint: str | None = None
    last_heartbeat_ok: float | None = None
    last_upload_ok: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    uploaded: int = 0
    cloud_duplicates: int = 0
    upload_failures: int = 0
    heartbeat_failures: int = 0
    heartbeats_sent: int = 0
    commands: dict[str, int] = field(default_factory=dict)     # result status -> count
    definitions_checked: float | None = None
    definitions_result: str | None = None
    retry_at: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


class Agent:
    def __init__(self, state: AgentState, cloud: CloudPort, queue: DetectionQueue, config: AgentConfig, *,
                 clock: Callable[[], float] = time.time, uptime: Callable[[], int] | None = None,
                 rng: random.Random | None = None, commands: CommandLog | None = None,
                 executor: CommandExecutor | None = None, definitions: DefinitionsPort | None = None,
                 boot: Callable[[], str] = boot_id, follower: EveFollower | None = None) -> None:
        self.state, self.cloud, self.queue, self.config = state, cloud, queue, config
        self.follower = follower
        if follower is not None:           # a file it cannot read is the agent's last error, not a crash
            follower.on_error = lambda msg: self._error("follow", RuntimeError(msg))
        self.commands, self.executor, self.definitions, self.boot = commands, executor, definitions, boot
        self.clock = clock
        self.uptime = uptime or _boot_uptime
        self.rng = rng or random.Random()
        self.status = AgentStatus(started_at=clock(), pid=_pid())
        self._carry_over()

    def _carry_over(self) -> None:
        """Keep the last good heartbeat and upload times of the previous run: 'never' would be wrong."""
        try:
            prev = orjson.loads(self.state.status_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        for f in ("last_heartbeat_ok", "last_upload_ok"):
            v = prev.get(f) if isinstance(prev, dict) else None
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                setattr(self.status, f, float(v))

    def _error(self, what: str, e: Exception) -> None:
        self.status.last_error = f"{what}: {e}"[:512]
        self.status.last_error_at = self.clock()

    def _save_status(self) -> None:
        self.status.endpoint = getattr(self.cloud, "endpoint", None)
        try:
            write_atomic(self.state.status_path, orjson.dumps(self.status.to_json(), option=orjson.OPT_INDENT_2))
        except OSError:
            pass            # status is for humans; a full disk must not stop uploads

    def heartbeat_message(self) -> Heartbeat:
        q = self.queue.stats()
        ok = self.status.last_error is None or (self.status.last_heartbeat_ok or 0) >= (self.status.last_error_at or 0)
        counters: tuple[tuple[str, int], ...] = (
            ("queue.depth", q.depth), ("queue.dropped", q.dropped), ("queue.enqueued", q.enqueued),
            ("queue.duplicates", q.duplicates), ("queue.lost_disk_full", q.lost_disk_full),
            ("queue.unreadable", q.unreadable), ("upload.sent", self.status.uploaded),
            ("upload.failures", self.status.upload_failures))
        share = None                 # no live box followed: unknown, not guessed
        if self.follower is not None:
            live = self.follower.tracker.report(self.clock())
            share = live.inspected_share
            counters += live.counters + tuple(self.queue.counters("follow.").items())
        return Heartbeat(sent_at=datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(timespec="microseconds"),
                         firmware_version=self.config.firmware_version, uptime_s=self.uptime(),
                         link_state=LinkState.UP if ok else LinkState.DEGRADED,
                         definitions_version=self._definitions_version(),
                         inspected_share=share,
                         last_error=self.status.last_error, counters=tuple(sorted(counters)))

    def _definitions_version(self) -> str | None:
        if self.definitions is None:
            return None
        try:
            return self.definitions.current_version()
        except OSError:
            return None

    async def definitions_once(self) -> bool:
        """One definitions check (scheduled); the outcome goes to status.json, the version to the next heartbeat."""
        assert self.definitions is not None
        ok, detail = await self.definitions.check_now()
        self.status.definitions_checked = self.clock()
        self.status.definitions_result = detail[:512]
        if not ok:
            self._error("definitions", RuntimeError(detail))
        return ok

    async def _definitions_loop(self, stop: asyncio.Event) -> None:
        failures = 0
        interval = self.config.definitions_interval_s
        await self._sleep(stop, self.rng.uniform(0, min(interval, 60.0)))    # not all at start, not in lockstep
        while not stop.is_set():
            ok = await self.definitions_once()
            failures = 0 if ok else failures + 1
            # after a failure: 1, 2, 4... minutes, up to the interval (a refusal that persists, e.g. a package
            # signed with another vendor key, must not cost a TLS handshake every few minutes all day)
            delay = interval * self.rng.uniform(0.9, 1.1) if ok else backoff_delay(
                failures, min(60.0, interval), max(interval, 60.0), self.rng)
            self._save_status()
            await self._sleep(stop, delay)

    def resolve_reboots(self) -> None:
        """At start: a reboot requested before this boot is reported done (after the box came back)."""
        if self.commands is not None:
            for r in resolve_reboots(self.commands, self.boot(), self.clock()):
                self.status.commands[r.status.value] = self.status.commands.get(r.status.value, 0) + 1

    async def heartbeat_once(self) -> bool:
        try:
            await self.cloud.heartbeat(self.heartbeat_message())
        except (CloudlinkError, QueueError) as e:
            self.status.heartbeat_failures += 1
            self._error("heartbeat", e)
            return False
        self.status.heartbeats_sent += 1
        self.status.last_heartbeat_ok = self.clock()
        if self.follower is not None:
            self.follower.tracker.sent()
        return True

    async def upload_once(self) -> int | None:
        """Send one batch; the number of events the cloud acknowledged, 0 if the queue is empty, None on failure."""
        try:
            batch = self.queue.take(self.config.batch_size)
        except (QueueError, ProtocolError) as e:
            self._error("queue", e)
            return None
        if not batch:
            return 0
        sent = DetectionBatch(tuple(replace(d, device_id=self.state.device_id) for d in batch))
        try:
            ack = await self.cloud.upload(sent)
        except CloudlinkError as e:
            self.status.upload_failures += 1
            self._error("upload", e)
            return None
        keys = {d.key for d in batch}
        done = [k for k in ack.accepted + ack.duplicates if k in keys]   # keys we did not send are ignored
        try:
            self.queue.ack(done)
        except QueueError as e:        # acked at the cloud, still queued here: resent later, deduplicated there
            self._error("queue", e)
            return None
        self.status.uploaded += len(ack.accepted)
        self.status.cloud_duplicates += len(ack.duplicates)
        self.status.last_upload_ok = self.clock()
        return len(done)

    def diagnostics(self) -> dict:
        """The diagnostics command's answer: metadata about the agent, never traffic or files."""
        q = self.queue.stats()
        return {"device_id": self.state.device_id, "firmware_version": self.config.firmware_version,
                "uptime_s": self.uptime(), "endpoint": getattr(self.cloud, "endpoint", None),
                "queue": {f: getattr(q, f) for f in q.__dataclass_fields__},
                "link": {k: v for k, v in self.status.to_json().items() if k != "retry_at"}}

    async def commands_once(self, wait_s: float | None = None) -> bool:
        """Report results still owed, then wait for commands and carry them out; False on a link failure."""
        assert self.commands is not None and self.executor is not None
        try:
            for r in self.commands.unreported():        # e.g. from before a restart
                await self.cloud.report_result(r)
                self.commands.mark_reported(r.command_id)
            batch = await self.cloud.poll_commands(self.config.command_wait_s if wait_s is None else wait_s)
            key = load_command_key(self.state.command_key)
            for env in batch.commands:
                result = await handle_command(env, key, self.state.device_id, self.clock(), self.commands,
                                              self.executor, boot=self.boot)
                if result is None:           # a reboot under way: reported after the next boot
                    continue
                self.status.commands[result.status.value] = self.status.commands.get(result.status.value, 0) + 1
                await self.cloud.report_result(result)
                self.commands.mark_reported(result.command_id)
        except (CloudlinkError, ValueError) as e:
            self._error("commands", e)
            return False
        return True

    async def _commands(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            if await self.commands_once():
                failures = 0
                continue
            failures += 1
            await self._sleep(stop, backoff_delay(failures, self.config.backoff_base_s, self.config.backoff_max_s,
                                                  self.rng))

    def follow_once(self) -> int | None:
        """Read what the live box appended to its EVE files: bytes consumed, None if the queue refused them
        (the offsets did not move: read again later)."""
        assert self.follower is not None
        try:
            return self.follower.poll()
        except QueueError as e:
            self._error("follow", e)
            return None

    async def _follow(self, stop: asyncio.Event) -> None:
        follower = self.follower
        if follower is None:         # started only with a live box to follow
            return
        failures = 0
        while not stop.is_set():
            n = self.follow_once()
            failures = 0 if n is not None else failures + 1
            if n is None:
                delay = backoff_delay(failures, self.config.backoff_base_s, self.config.backoff_max_s, self.rng)
            else:                          # a backlog is read in slices, letting uploads and heartbeats run
                delay = 0 if n >= follower.per_poll_bytes else self.config.poll_interval_s
            if delay:
                await self._sleep(stop, delay)
            else:
                await asyncio.sleep(0)

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            ok = await self.heartbeat_once()
            failures = 0 if ok else failures + 1
            delay = self.config.heartbeat_interval_s if ok else min(
                self.config.heartbeat_interval_s,
                backoff_delay(failures, self.config.backoff_base_s, self.config.backoff_max_s, self.rng))
            self.status.retry_at.pop("heartbeat", None)
            if not ok:
                self.status.retry_at["heartbeat"] = self.clock() + delay
            self._save_status()
            await self._sleep(stop, delay)

    async def _uploads(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            n = await self.upload_once()
            if n is None:
                failures += 1
                delay = backoff_delay(failures, self.config.backoff_base_s, self.config.backoff_max_s, self.rng)
                self.status.retry_at["upload"] = self.clock() + delay
                self._save_status()
                await self._sleep(stop, delay)
                continue
            if failures or n:
                failures = 0
                self.status.retry_at.pop("upload", None)
                self._save_status()
            if n == 0:
                await self._sleep(stop, self.config.poll_interval_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set. If a task dies of a bug the other is stopped and the error raised, so a
        supervisor restarts the agent instead of it running half-alive."""
        self.resolve_reboots()
        tasks = [asyncio.create_task(self._heartbeats(stop)), asyncio.create_task(self._uploads(stop))]
        if self.commands is not None and self.executor is not None:
            tasks.append(asyncio.create_task(self._commands(stop)))
        if self.definitions is not None:
            tasks.append(asyncio.create_task(self._definitions_loop(stop)))
        if self.follower is not None:
            tasks.append(asyncio.create_task(self._follow(stop)))
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (stopper, *tasks):
                t.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            self._save_status()
        for r in results:
            if isinstance(r, Exception):
                raise r

    async def drain(self) -> bool:
        """One heartbeat, upload until the queue is empty, pending commands once (no waiting);
        False at the first failure (no retrying). Followed EVE files are read to their end first."""
        self.resolve_reboots()
        while self.follower is not None:
            n = self.follow_once()
            if n is None:
                self._save_status()
                return False
            if n < self.follower.per_poll_bytes:      # to the end (a file growing faster is read next time)
                break
        ok = await self.heartbeat_once()
        while ok:
            n = await self.upload_once()
            if n is None:
                ok = False
            elif n == 0:
                break
        if ok and self.commands is not None and self.executor is not None:
            ok = await self.commands_once(wait_s=0)
        self._save_status()
        return ok


def _boot_uptime() -> int:
    try:
        with open("/proc/uptime", "rb") as fh:
            return int(float(fh.read().split()[0]))
    except (OSError, ValueError, IndexError):
        return int(time.monotonic())


def _pid() -> int:
    import os
    return os.getpid()
