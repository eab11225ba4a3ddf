"""Remote commands on the agent: verify, remember, carry out, report.

Verification (`verify_command`, clock passed in) refuses, with a reason that
is reported back: no signature (`unsigned`), a signature that does not
verify with the command key pinned at enrolment (`bad_signature`: tampered
or forged), another device's command (`wrong_device`), one not yet valid or
expired (`not_yet_valid`, `expired`), one valid for more than a day
(`too_long`: it would outlive the nonce memory), and a nonce already used
(`replayed`).

`CommandLog` (DIR/commands.sqlite) remembers used nonces until their
command expires, and every result until the cloud has it, so a result is
reported even if the agent dies (or the box reboots) before reporting; a
command delivered again after that gets its stored result, not a second
execution.
"""
from __future__ import annotations

import asyncio
import base64
import sqlite3
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Protocol, Sequence

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloudlink.desired import DesiredStateFile
from cloudlink.errors import CommandRefusedError, FieldError, QueueError, StateError
from cloudlink.protocol import CommandEnvelope, CommandKind, CommandResult, CommandStatus

CLOCK_SKEW_S = 300.0
MAX_LIFETIME_S = 86400.0


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def verify_command(env: CommandEnvelope, key: Ed25519PublicKey, device_id: str, now: float,
                   seen: Callable[[str], bool]) -> None:
    """Raise CommandRefusedError unless the command is authentic, ours, current and new."""
    if env.signature is None:
        raise CommandRefusedError("unsigned", "the command carries no signature")
    try:
        key.verify(base64.b64decode(env.signature), env.signed_bytes())
    except (InvalidSignature, ValueError):
        raise CommandRefusedError("bad_signature", "the signature does not verify with the pinned command key") \
            from None
    if env.device_id != device_id:
        raise CommandRefusedError("wrong_device", f"the command is for {env.device_id}")
    issued, expires = _t(env.issued_at), _t(env.expires_at)
    if expires - issued > MAX_LIFETIME_S:
        raise CommandRefusedError("too_long", "a command may be valid for at most a day")
    if issued > now + CLOCK_SKEW_S:
        raise CommandRefusedError("not_yet_valid", f"issued in the future ({env.issued_at})")
    if expires <= now:
        raise CommandRefusedError("expired", f"expired at {env.expires_at}")
    if seen(env.nonce):
        raise CommandRefusedError("replayed", "this nonce was already used")


def load_command_key(b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64, validate=True))


class CommandExecutor(Protocol):
    async def execute(self, env: CommandEnvelope) -> tuple[CommandStatus, str]: ...


class DefinitionsPort(Protocol):
    """The definitions updater as the agent sees it (the composition root wires `updater` in)."""

    def current_version(self) -> str | None: ...

    async def check_now(self) -> tuple[bool, str]: ...


class AgentExecutor:
    """Carries out what this build can do honestly; anything it cannot is `unsupported`, with the reason.

    diagnostics: metadata only. check_definitions: the updater's check, now.
    isolate/release/set_mode/exclusions: written to DIR/desired.json, then the
    apply hook (if configured) makes the box take it; failed if it does not. reboot:
    the reboot hook (an argument list) after the command was recorded as
    pending; its result is reported when the agent starts on the next boot.
    """

    def __init__(self, diagnostics: Callable[[], dict], *, definitions: DefinitionsPort | None = None,
                 definitions_unavailable: str = "no definitions updater configured",
                 desired: DesiredStateFile | None = None,
                 reboot: Callable[[], None] | None = None) -> None:
        self._diagnostics = diagnostics
        self.definitions, self.definitions_unavailable = definitions, definitions_unavailable
        self.desired, self.reboot = desired, reboot

    def can_reboot(self) -> bool:
        return self.reboot is not None

    async def execute(self, env: CommandEnvelope) -> tuple[CommandStatus, str]:
        kind = env.kind
        if kind is CommandKind.DIAGNOSTICS:
            return CommandStatus.DONE, orjson.dumps(self._diagnostics()).decode()[:4096]
        if kind is CommandKind.CHECK_DEFINITIONS:
            if self.definitions is None:
                return CommandStatus.UNSUPPORTED, self.definitions_unavailable
            ok, detail = await self.definitions.check_now()
            return (CommandStatus.DONE if ok else CommandStatus.FAILED), detail[:4096]
        if kind is CommandKind.REBOOT:
            if self.reboot is None:
                return CommandStatus.UNSUPPORTED, "no reboot hook configured"
            try:
                self.reboot()
            except RebootError as e:
                return CommandStatus.FAILED, str(e)[:4096]
            return CommandStatus.DONE, "reboot requested"
        if kind in _DESIRED:
            if self.desired is None:
                return CommandStatus.UNSUPPORTED, "no desired-state file configured"
            try:
                # the apply hook may take seconds (a staged `utm net apply`): off the event loop
                return CommandStatus.DONE, await asyncio.to_thread(self.desired.apply, kind, env.args,
                                                                   env.command_id)
            except FieldError as e:
                return CommandStatus.REFUSED, f"bad_argument: {e}"[:4096]
            except StateError as e:
                return CommandStatus.FAILED, str(e)[:4096]
        return CommandStatus.UNSUPPORTED, f"{kind.value} is not supported by this build"


_DESIRED = frozenset({CommandKind.ISOLATE, CommandKind.RELEASE, CommandKind.SET_MODE, CommandKind.ADD_EXCLUSION,
                      CommandKind.REMOVE_EXCLUSION})


class RebootError(Exception):
    """The reboot hook could not be started or failed."""


def reboot_hook(argv: Sequence[str], timeout_s: float = 60.0) -> Callable[[], None]:
    """A reboot callable running `argv` (an argument list, never a shell string), e.g. systemctl reboot."""
    if not argv:
        raise ValueError("the reboot hook needs at least a program")

    def run() -> None:
        try:
            done = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RebootError(f"reboot hook {argv[0]}: {e}") from None
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise RebootError(f"reboot hook {argv[0]} exited {done.returncode}: {err[0][:200]}")
    return run


def boot_id() -> str:
    """This boot's id (changes at every boot): how a pending reboot is known to have happened."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


class CommandLog:
    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(
                "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires REAL NOT NULL);"
                "CREATE TABLE IF NOT EXISTS results (command_id TEXT PRIMARY KEY, body BLOB NOT NULL, "
                "reported INTEGER NOT NULL DEFAULT 0);"
                "CREATE TABLE IF NOT EXISTS reboots (command_id TEXT PRIMARY KEY, boot_id TEXT NOT NULL, "
                "requested REAL NOT NULL);")
        except sqlite3.Error as e:
            raise QueueError(f"{path}: cannot open the command log: {e}") from None

    def close(self) -> None:
        self._db.close()

    def seen(self, nonce: str) -> bool:
        return self._db.execute("SELECT 1 FROM nonces WHERE nonce = ?", (nonce,)).fetchone() is not None

    def result_for(self, command_id: str) -> CommandResult | None:
        row = self._db.execute("SELECT body FROM results WHERE command_id = ?", (command_id,)).fetchone()
        return None if row is None else CommandResult.from_json(orjson.loads(row[0]))

    def record(self, nonce: str | None, expires: float, result: CommandResult, now: float) -> None:
        """The nonce (if the command verified) and its result in one transaction; old nonces pruned."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            if nonce is not None:
                self._db.execute("INSERT OR IGNORE INTO nonces (nonce, expires) VALUES (?, ?)", (nonce, expires))
            self._db.execute("INSERT OR IGNORE INTO results (command_id, body) VALUES (?, ?)",
                             (result.command_id, orjson.dumps(result.to_json())))
            self._db.execute("DELETE FROM nonces WHERE expires < ?", (now - CLOCK_SKEW_S,))
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise QueueError(f"command log: {e}") from None

    def unreported(self) -> list[CommandResult]:
        rows = self._db.execute("SELECT body FROM results WHERE reported = 0 ORDER BY rowid").fetchall()
        return [CommandResult.from_json(orjson.loads(r[0])) for r in rows]

    def mark_reported(self, command_id: str) -> None:
        self._db.execute("UPDATE results SET reported = 1 WHERE command_id = ?", (command_id,))


    # --- reboots: pending from the hook until the agent starts on the next boot -------------

    def begin_reboot(self, env: CommandEnvelope, boot: str, now: float) -> None:
        """The nonce and a pending reboot in one transaction, before the hook runs: the box may go down
        before the hook even returns."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR IGNORE INTO nonces (nonce, expires) VALUES (?, ?)",
                             (env.nonce, _t(env.expires_at)))
            self._db.execute("INSERT OR IGNORE INTO reboots (command_id, boot_id, requested) VALUES (?, ?, ?)",
                             (env.command_id, boot, now))
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise QueueError(f"command log: {e}") from None

    def reboot_pending(self, command_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM reboots WHERE command_id = ?", (command_id,)).fetchone() is not None

    def finish_reboot(self, result: CommandResult) -> None:
        """The reboot's result (the hook failed, or the box is back) replaces the pending entry."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM reboots WHERE command_id = ?", (result.command_id,))
            self._db.execute("INSERT OR IGNORE INTO results (command_id, body) VALUES (?, ?)",
                             (result.command_id, orjson.dumps(result.to_json())))
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise QueueError(f"command log: {e}") from None

    def pending_reboots(self) -> list[tuple[str, str, float]]:
        return self._db.execute("SELECT command_id, boot_id, requested FROM reboots ORDER BY requested").fetchall()


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="microseconds")


def resolve_reboots(log: CommandLog, boot: str, now: float) -> list[CommandResult]:
    """At agent start: a reboot requested in another boot is done; one still in this boot did not happen."""
    out = []
    for command_id, then_boot, requested in log.pending_reboots():
        if then_boot != boot:
            r = CommandResult(command_id, CommandStatus.DONE,
                              f"rebooted: back up {max(0, int(now - requested))} s after the request", _iso(now))
        else:
            r = CommandResult(command_id, CommandStatus.FAILED,
                              "the agent restarted but the box did not reboot (same boot id)", _iso(now))
        log.finish_reboot(r)
        out.append(r)
    return out


async def handle_command(env: CommandEnvelope, key: Ed25519PublicKey, device_id: str, now: float,
                         log: CommandLog, executor: CommandExecutor, *,
                         boot: Callable[[], str] = boot_id) -> CommandResult | None:
    """Verify, carry out, record; a command seen before gets its recorded result back.
    None: a reboot under way, whose result is reported after the next boot."""
    done = log.result_for(env.command_id)
    if done is not None:
        return done
    if log.reboot_pending(env.command_id):
        return None
    finished = _iso(now)
    try:
        verify_command(env, key, device_id, now, log.seen)
    except CommandRefusedError as e:
        result = CommandResult(env.command_id, CommandStatus.REFUSED, str(e)[:4096], finished)
        log.record(None, 0.0, result, now)
        return result
    if env.kind is CommandKind.REBOOT and getattr(executor, "can_reboot", lambda: False)():
        log.begin_reboot(env, boot(), now)
        status, detail = await executor.execute(env)
        if status is CommandStatus.DONE:
            return None
        result = CommandResult(env.command_id, status, detail, finished)
        log.finish_reboot(result)
        return result
    status, detail = await executor.execute(env)
    result = CommandResult(env.command_id, status, detail, _iso(now))
    log.record(env.nonce, _t(env.expires_at), result, now)
    return result
