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

import base64
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloudlink.errors import CommandRefusedError, QueueError
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
    def execute(self, env: CommandEnvelope) -> tuple[CommandStatus, str]: ...


class AgentExecutor:
    """What this build can do: diagnostics (metadata only). Everything else is reported unsupported."""

    def __init__(self, diagnostics: Callable[[], dict]) -> None:
        self._diagnostics = diagnostics

    def execute(self, env: CommandEnvelope) -> tuple[CommandStatus, str]:
        if env.kind is CommandKind.DIAGNOSTICS:
            return CommandStatus.DONE, orjson.dumps(self._diagnostics()).decode()[:4096]
        return CommandStatus.UNSUPPORTED, f"{env.kind.value} is not supported yet by this build"


class CommandLog:
    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(
                "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires REAL NOT NULL);"
                "CREATE TABLE IF NOT EXISTS results (command_id TEXT PRIMARY KEY, body BLOB NOT NULL, "
                "reported INTEGER NOT NULL DEFAULT 0);")
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


def handle_command(env: CommandEnvelope, key: Ed25519PublicKey, device_id: str, now: float, log: CommandLog,
                   executor: CommandExecutor) -> CommandResult:
    """Verify, carry out, record; a command seen before gets its recorded result back."""
    done = log.result_for(env.command_id)
    if done is not None:
        return done
    finished = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="microseconds")
    try:
        verify_command(env, key, device_id, now, log.seen)
    except CommandRefusedError as e:
        result = CommandResult(env.command_id, CommandStatus.REFUSED, str(e)[:4096], finished)
        log.record(None, 0.0, result, now)
        return result
    status, detail = executor.execute(env)
    result = CommandResult(env.command_id, status, detail, finished)
    log.record(env.nonce, _t(env.expires_at), result, now)
    return result
