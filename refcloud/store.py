"""The cloud's SQLite store: enrolment codes, devices, detections, counters, customers' alert mail.

Idempotent ingest is the unique index on (device, key): a batch that is sent
again after a lost ack stores nothing new and is answered the same way.
Codes are kept as SHA-256 hashes, redeemed with a conditional UPDATE inside
the enrolment transaction, so each works once even under concurrent use.
Times are passed in (epoch seconds); nothing here reads the clock.
"""
from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import orjson

from cloudlink.protocol import CommandEnvelope, CommandResult, Detection, Heartbeat, ProtocolError
from refcloud.errors import BadParameter, CloudStateError, DeviceRefused, EnrolmentRefused
from refcloud.mail import Watch, WatchState, check_recipients

_SCHEMA = """
CREATE TABLE IF NOT EXISTS codes (
    hash TEXT PRIMARY KEY, created REAL NOT NULL, expires REAL NOT NULL, used REAL, device_id TEXT,
    customer TEXT NOT NULL DEFAULT 'default');
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY, serial TEXT NOT NULL, enrolled REAL NOT NULL, firmware TEXT NOT NULL,
    last_seen REAL, heartbeat TEXT, heartbeats INTEGER NOT NULL DEFAULT 0,
    customer TEXT NOT NULL DEFAULT 'default');
CREATE TABLE IF NOT EXISTS detections (
    id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, key TEXT NOT NULL, received REAL NOT NULL,
    ts TEXT NOT NULL, stars INTEGER NOT NULL, body TEXT NOT NULL, UNIQUE (device_id, key));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY, device_id TEXT NOT NULL, body TEXT NOT NULL, created REAL NOT NULL, expires TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0, result TEXT, result_at REAL);
CREATE INDEX IF NOT EXISTS detections_received ON detections (received);
CREATE TABLE IF NOT EXISTS watch (
    device_id TEXT PRIMARY KEY, state TEXT NOT NULL, since REAL NOT NULL, last_mail REAL);
CREATE TABLE IF NOT EXISTS customer_mail (customer TEXT PRIMARY KEY, recipients TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS alert_cursors (
    customer TEXT PRIMARY KEY, last_id INTEGER NOT NULL, last_sent REAL, sent INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_failed REAL);
"""


# Stores made before customers existed get the column, with every device in the default customer.
_MIGRATIONS = (("codes", "customer", "ALTER TABLE codes ADD COLUMN customer TEXT NOT NULL DEFAULT 'default'"),
               ("devices", "customer", "ALTER TABLE devices ADD COLUMN customer TEXT NOT NULL DEFAULT 'default'"))
DEFAULT_CUSTOMER = "default"
# Before alert mail was per customer, one cursor and one last-sent time in `meta` served every device: a
# customer without its own row in alert_cursors starts from them, so nothing already mailed goes out again.
LEGACY_ALERT_CURSOR = "mail.alert_cursor"
LEGACY_LAST_ALERT = "mail.last_alert"
CUSTOMER_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_customer(name: str) -> str:
    """Customer names are short lower-case tokens: they end up in URLs, mail and JSON."""
    if not isinstance(name, str) or not CUSTOMER_RE.fullmatch(name):
        raise BadParameter("customer names are 1-64 of [a-z0-9._-], starting with a letter or digit", "customer")
    return name


def _code_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    serial: str
    enrolled: float
    firmware: str
    last_seen: float | None
    heartbeats: int
    heartbeat: dict | None       # the last reported heartbeat, as decoded
    customer: str = DEFAULT_CUSTOMER
    heartbeat_error: str | None = None   # why the stored heartbeat no longer decodes (then `heartbeat` is None)


@dataclass(frozen=True, slots=True)
class StoredDetection:
    id: int
    device_id: str
    received: float
    detection: Detection


@dataclass(frozen=True, slots=True)
class AlertState:
    """Where a customer's alert mail stands: detections up to `last_id` are mailed (or skipped as undecodable)."""
    customer: str
    last_id: int
    last_sent: float | None
    sent: int = 0
    failed: int = 0
    last_error: str | None = None
    last_failed: float | None = None


@dataclass(frozen=True, slots=True)
class AlertBatch:
    rows: tuple[StoredDetection, ...]   # the decodable ones, oldest first
    last_id: int | None                 # the cursor once these are mailed (None: nothing stored after it)
    undecodable: int                    # rows skipped because their body no longer decodes
    more: bool                          # the batch hit its limit: more are pending


@dataclass(frozen=True, slots=True)
class CustomerRow:
    name: str
    devices: int
    recipients: tuple[str, ...] | None  # its own; None: the cloud's --mail-to
    alert: AlertState
    pending: int                        # detections not mailed yet


def _device_row(r: tuple) -> DeviceRow:
    """A device row whose stored heartbeat no longer decodes is still listed: its heartbeat
    is None and `heartbeat_error` says why, so one bad row never hides the others."""
    hb, err = None, None
    if r[6]:
        try:
            hb = orjson.loads(r[6])
        except orjson.JSONDecodeError as e:
            err = f"stored heartbeat does not decode: {e}"
        else:
            if not isinstance(hb, dict):
                hb, err = None, "stored heartbeat is not an object"
    return DeviceRow(id=r[0], serial=r[1], enrolled=r[2], firmware=r[3], last_seen=r[4], heartbeats=r[5],
                     heartbeat=hb, customer=r[7], heartbeat_error=err)


class CloudStore:
    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")   # an acked detection must survive a power cut
            for table, column, alter in _MIGRATIONS:
                if self._db.execute(f"SELECT 1 FROM sqlite_master WHERE name = '{table}'").fetchone() and not any(
                        r[1] == column for r in self._db.execute(f"PRAGMA table_info({table})")):
                    self._db.execute(alter)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise CloudStateError(f"{path}: cannot open the store: {e}") from None

    def close(self) -> None:
        self._db.close()

    def _tx(self, fn: Callable, *args):  # type: ignore[no-untyped-def, type-arg]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(*args)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return out
        except sqlite3.Error as e:
            raise CloudStateError(f"store: {e}") from None

    def _bump(self, name: str, n: int = 1) -> None:
        if n:
            self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))

    def counters(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT name, value FROM counters ORDER BY name").fetchall())

    # --- enrolment ---------------------------------------------------------------------------

    def add_code(self, secret: str, now: float, valid_s: float, customer: str = DEFAULT_CUSTOMER) -> None:
        """The device that redeems the code belongs to `customer`."""
        check_customer(customer)
        self._tx(lambda: self._db.execute("INSERT INTO codes (hash, created, expires, customer) VALUES (?, ?, ?, ?)",
                                          (_code_hash(secret), now, now + valid_s, customer)))

    def enrol(self, secret: str, now: float, device_id: str, firmware: str,
              issue: Callable[[], str]) -> None:
        """Redeem the code and record the device in one transaction; `issue` returns the new cert's serial."""
        def _enrol() -> None:
            row = self._db.execute("SELECT expires, used, customer FROM codes WHERE hash = ?",
                                   (_code_hash(secret),)).fetchone()
            if row is None:
                raise EnrolmentRefused("unknown enrolment code", "bad_code")
            if row[1] is not None:
                raise EnrolmentRefused("this enrolment code was already used", "code_used")
            if row[0] < now:
                raise EnrolmentRefused("this enrolment code has expired", "code_expired")
            serial = issue()
            self._db.execute("UPDATE codes SET used = ?, device_id = ? WHERE hash = ? AND used IS NULL",
                             (now, device_id, _code_hash(secret)))
            self._db.execute("INSERT INTO devices (id, serial, enrolled, firmware, customer) VALUES (?, ?, ?, ?, ?)",
                             (device_id, serial, now, firmware, row[2]))
            self._bump("enrol.ok")
        try:
            self._tx(_enrol)
        except EnrolmentRefused:
            self._tx(lambda: self._bump("enrol.refused"))   # the refusing transaction was rolled back
            raise

    def check_device(self, device_id: str, serial: str) -> None:
        """The certificate must be the device's current one (a re-enrolled device's old cert is refused)."""
        row = self._db.execute("SELECT serial FROM devices WHERE id = ?", (device_id,)).fetchone()
        if row is None or row[0] != serial:
            raise DeviceRefused(f"certificate {serial} is not the current one of a known device")

    # --- heartbeats and detections -------------------------------------------------------------

    def heartbeat(self, device_id: str, hb: Heartbeat, now: float) -> None:
        self._tx(lambda: self._db.execute(
            "UPDATE devices SET last_seen = ?, heartbeat = ?, heartbeats = heartbeats + 1, firmware = ? "
            "WHERE id = ?", (now, orjson.dumps(hb.to_json()).decode(), hb.firmware_version, device_id)))

    def ingest(self, device_id: str, events: tuple[Detection, ...], now: float) -> tuple[list[str], list[str]]:
        """Store new events; return (accepted, duplicates) keys. A repeated key stores nothing."""
        def _ingest() -> tuple[list[str], list[str]]:
            acc: list[str] = []
            dup: list[str] = []
            for d in events:
                body = orjson.dumps({**d.to_json(), "device_id": device_id}).decode()
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO detections (device_id, key, received, ts, stars, body) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (device_id, d.key, now, d.ts, d.stars, body))
                (acc if cur.rowcount else dup).append(d.key)
            self._bump("ingest.accepted", len(acc))
            self._bump("ingest.duplicates", len(dup))
            self._db.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (now, device_id))
            return acc, dup
        return self._tx(_ingest)

    _DEVICE_COLS = "id, serial, enrolled, firmware, last_seen, heartbeats, heartbeat, customer"

    def devices(self) -> list[DeviceRow]:
        rows = self._db.execute(f"SELECT {self._DEVICE_COLS} FROM devices ORDER BY enrolled").fetchall()
        return [_device_row(r) for r in rows]

    def device(self, device_id: str) -> DeviceRow | None:
        r = self._db.execute(f"SELECT {self._DEVICE_COLS} FROM devices WHERE id = ?", (device_id,)).fetchone()
        return None if r is None else _device_row(r)

    def detections_page(self, device_id: str, *, limit: int, since: float | None = None,
                        before_id: int | None = None) -> list[StoredDetection]:
        """Newest first: at most `limit` rows received at or after `since`, with ids below `before_id`."""
        q = "SELECT id, device_id, received, body FROM detections WHERE device_id = ?"
        args: list[object] = [device_id]
        if since is not None:
            q, args = q + " AND received >= ?", args + [since]
        if before_id is not None:
            q, args = q + " AND id < ?", args + [before_id]
        rows = self._db.execute(q + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        out = []
        for r in rows:
            try:
                out.append(StoredDetection(r[0], r[1], r[2], Detection.from_json(orjson.loads(r[3]))))
            except (ProtocolError, orjson.JSONDecodeError) as e:      # re-checked: the API shows only the allowlist
                raise CloudStateError(f"stored detection {r[0]} does not decode: {e}") from None
        return out

    def customer_counts(self, windows: tuple[float, ...], now: float) -> dict[str, list[int]]:
        """Per customer (every customer with a device, zero if quiet): detections received in each window."""
        out: dict[str, list[int]] = {c: [0] * len(windows) for (c,) in
                                     self._db.execute("SELECT DISTINCT customer FROM devices")}
        for i, w in enumerate(windows):
            for customer, n in self._db.execute(
                    "SELECT d.customer, COUNT(*) FROM detections x JOIN devices d ON d.id = x.device_id "
                    "WHERE x.received >= ? GROUP BY d.customer", (now - w,)):
                out[customer][i] = n
        return out

    def detections(self, device_id: str | None = None,
                   on_bad: Callable[[int, str], None] | None = None) -> Iterator[StoredDetection]:
        """Oldest first. A row whose body no longer decodes is a CloudStateError naming it; with `on_bad`
        it is reported there (row id, reason) and skipped, so one bad row does not hide the rest."""
        q = "SELECT id, device_id, received, body FROM detections"
        args: tuple = ()
        if device_id is not None:
            q, args = q + " WHERE device_id = ?", (device_id,)
        for rid, dev, received, body in self._db.execute(q + " ORDER BY id", args):
            try:
                d = Detection.from_json(orjson.loads(body))
            except (ProtocolError, orjson.JSONDecodeError) as e:
                if on_bad is None:
                    raise CloudStateError(f"stored detection {rid} does not decode: {e}") from None
                on_bad(rid, str(e))
                continue
            yield StoredDetection(rid, dev, received, d)

    def detection_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM detections").fetchone()[0]

    # --- what the notifier needs -----------------------------------------------------------

    def bump(self, name: str, n: int = 1) -> None:
        self._tx(self._bump, name, n)

    def meta(self, name: str, default: float = 0.0) -> float:
        return self._meta(name, default)  # type: ignore[return-value]

    def _meta(self, name: str, default: float | None) -> float | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, name: str, value: float) -> None:
        self._tx(lambda: self._db.execute("INSERT INTO meta (name, value) VALUES (?, ?) "
                                          "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value)))

    def watch_states(self) -> list[tuple[str, str, float, WatchState]]:
        """(device id, customer, last heard from, watch state) for every device; a device never heard is timed
        from enrolment."""
        rows = self._db.execute("SELECT d.id, d.customer, COALESCE(d.last_seen, d.enrolled), w.state, w.since, "
                                "w.last_mail FROM devices d LEFT JOIN watch w ON w.device_id = d.id "
                                "ORDER BY d.id").fetchall()
        return [(r[0], r[1], r[2], WatchState(Watch(r[3]), r[4], r[5]) if r[3] else WatchState(Watch.UP, r[2], None))
                for r in rows]

    def set_watch(self, device_id: str, st: WatchState) -> None:
        self._tx(lambda: self._db.execute(
            "INSERT INTO watch (device_id, state, since, last_mail) VALUES (?, ?, ?, ?) ON CONFLICT(device_id) "
            "DO UPDATE SET state = excluded.state, since = excluded.since, last_mail = excluded.last_mail",
            (device_id, st.state.value, st.since, st.last_mail)))

    # --- customers' alert mail -----------------------------------------------------------------

    def set_recipients(self, customer: str, addrs: tuple[str, ...] | list[str], now: float) -> tuple[str, ...]:
        """A customer's own alert and down-device recipients (1..3), replacing any it had."""
        check_customer(customer)
        try:
            addrs = check_recipients(addrs)
        except ValueError as e:
            raise BadParameter(str(e), "mail") from None
        self._tx(lambda: self._db.execute(
            "INSERT INTO customer_mail (customer, recipients, updated) VALUES (?, ?, ?) ON CONFLICT(customer) "
            "DO UPDATE SET recipients = excluded.recipients, updated = excluded.updated",
            (customer, orjson.dumps(list(addrs)).decode(), now)))
        return addrs

    def remove_recipients(self, customer: str) -> bool:
        """Back to the cloud's recipients; False if the customer had none of its own."""
        check_customer(customer)
        return bool(self._tx(lambda: self._db.execute("DELETE FROM customer_mail WHERE customer = ?",
                                                      (customer,)).rowcount))

    def recipients(self) -> dict[str, tuple[str, ...]]:
        """Every customer's own recipients; a customer not in it uses the cloud's."""
        return {c: tuple(orjson.loads(r)) for c, r in
                self._db.execute("SELECT customer, recipients FROM customer_mail ORDER BY customer")}

    def alert_states(self) -> list[AlertState]:
        """One per customer with a device, by name; a customer never mailed starts at the legacy cursor."""
        cursor, last = int(self._meta(LEGACY_ALERT_CURSOR, 0.0) or 0), self._meta(LEGACY_LAST_ALERT, None)
        rows = self._db.execute(
            "SELECT c.customer, a.last_id, a.last_sent, a.sent, a.failed, a.last_error, a.last_failed FROM "
            "(SELECT DISTINCT customer FROM devices) c LEFT JOIN alert_cursors a ON a.customer = c.customer "
            "ORDER BY c.customer").fetchall()
        return [AlertState(*r) if r[1] is not None
                else AlertState(r[0], cursor, last) for r in rows]

    def pending_alerts(self, customer: str, after_id: int, limit: int) -> AlertBatch:
        """The customer's detections after `after_id`, oldest first, at most `limit`. A row that no longer
        decodes is skipped and counted, so it cannot hold the customer's mail back forever.

        The scan stops at the newest id stored when it starts: writers are serialised and ids only grow, so
        every detection up to it is visible now, and with no more than `limit` found the cursor may move to it.
        A quiet customer's cursor keeps up that way and its next scan covers only newer detections."""
        top = self._db.execute("SELECT MAX(id) FROM detections").fetchone()[0]
        if top is None or top <= after_id:
            return AlertBatch((), None, 0, False)
        rows = self._db.execute(
            "SELECT x.id, x.device_id, x.received, x.body FROM detections x JOIN devices d ON d.id = x.device_id "
            "WHERE x.id > ? AND x.id <= ? AND d.customer = ? ORDER BY x.id LIMIT ?",
            (after_id, top, customer, limit + 1)).fetchall()
        more, rows = len(rows) > limit, rows[:limit]
        good, bad = [], 0
        for r in rows:
            try:
                good.append(StoredDetection(r[0], r[1], r[2], Detection.from_json(orjson.loads(r[3]))))
            except (ProtocolError, orjson.JSONDecodeError):
                bad += 1
        return AlertBatch(tuple(good), rows[-1][0] if more else top, bad, more)

    def _alert_upsert(self, customer: str, sets: str, args: tuple) -> None:  # type: ignore[type-arg]
        legacy = (int(self._meta(LEGACY_ALERT_CURSOR, 0.0) or 0), self._meta(LEGACY_LAST_ALERT, None))
        self._db.execute("INSERT OR IGNORE INTO alert_cursors (customer, last_id, last_sent) VALUES (?, ?, ?)",
                         (customer, *legacy))
        self._db.execute(f"UPDATE alert_cursors SET {sets} WHERE customer = ?", (*args, customer))

    def alert_sent(self, customer: str, last_id: int, now: float) -> None:
        """The mail up to `last_id` was accepted: those detections are done for this customer only."""
        self._tx(self._alert_upsert, customer, "last_id = MAX(last_id, ?), last_sent = ?, sent = sent + 1",
                 (last_id, now))

    def alert_skipped(self, customer: str, last_id: int) -> None:
        """Nothing of this customer's to mail up to `last_id` (none stored, or undecodable): move on."""
        self._tx(self._alert_upsert, customer, "last_id = MAX(last_id, ?)", (last_id,))

    def alert_failed(self, customer: str, reason: str, now: float) -> None:
        """The cursor stays: the same detections (and any newer) are tried again next round."""
        self._tx(self._alert_upsert, customer, "failed = failed + 1, last_error = ?, last_failed = ?",
                 (reason[:200], now))

    def customers(self) -> list[CustomerRow]:
        """Every customer the cloud knows of (a code, a device or recipients), with its mail state."""
        names = sorted({c for (c,) in self._db.execute(
            "SELECT customer FROM codes UNION SELECT customer FROM devices UNION SELECT customer FROM customer_mail")})
        own = self.recipients()
        states = {r[0]: AlertState(*r) for r in self._db.execute(
            "SELECT customer, last_id, last_sent, sent, failed, last_error, last_failed FROM alert_cursors")}
        legacy = (int(self._meta(LEGACY_ALERT_CURSOR, 0.0) or 0), self._meta(LEGACY_LAST_ALERT, None))
        out = []
        for name in names:
            st = states.get(name) or AlertState(name, *legacy)
            devices, pending = self._db.execute(
                "SELECT (SELECT COUNT(*) FROM devices WHERE customer = ?), (SELECT COUNT(*) FROM detections x "
                "JOIN devices d ON d.id = x.device_id WHERE d.customer = ? AND x.id > ?)",
                (name, name, st.last_id)).fetchone()
            out.append(CustomerRow(name, devices, own.get(name), st, pending))
        return out

    # --- commands ------------------------------------------------------------------------------

    def add_command(self, env: CommandEnvelope, now: float) -> None:
        if not self._db.execute("SELECT 1 FROM devices WHERE id = ?", (env.device_id,)).fetchone():
            raise DeviceRefused(f"no device {env.device_id}")
        self._tx(lambda: self._db.execute(
            "INSERT INTO commands (id, device_id, body, created, expires) VALUES (?, ?, ?, ?, ?)",
            (env.command_id, env.device_id, orjson.dumps(env.to_json()).decode(), now, env.expires_at)))

    def pending_commands(self, device_id: str, now_iso: str, limit: int) -> list[CommandEnvelope]:
        """Commands without a result that have not expired; handed out again until a result comes."""
        rows = self._db.execute("SELECT id, body FROM commands WHERE device_id = ? AND result IS NULL AND expires > ? "
                                "ORDER BY created LIMIT ?", (device_id, now_iso, limit)).fetchall()
        if rows:
            self._tx(lambda: self._db.executemany("UPDATE commands SET delivered = delivered + 1 WHERE id = ?",
                                                  [(r[0],) for r in rows]))
        return [CommandEnvelope.from_json(orjson.loads(r[1])) for r in rows]

    def add_result(self, device_id: str, result: CommandResult, now: float) -> bool:
        """Store a device's result for its own command, once; False for a command it was not sent."""
        def _add() -> bool:
            cur = self._db.execute("UPDATE commands SET result = ?, result_at = ? WHERE id = ? AND device_id = ? "
                                   "AND result IS NULL", (orjson.dumps(result.to_json()).decode(), now,
                                                          result.command_id, device_id))
            if cur.rowcount:
                self._bump(f"commands.{result.status.value}")
            return cur.rowcount == 1 or self._db.execute(
                "SELECT 1 FROM commands WHERE id = ? AND device_id = ?", (result.command_id, device_id)).fetchone() \
                is not None
        return self._tx(_add)

    def commands(self) -> list[tuple[CommandEnvelope, int, dict | None]]:
        rows = self._db.execute("SELECT body, delivered, result FROM commands ORDER BY created").fetchall()
        return [(CommandEnvelope.from_json(orjson.loads(b)), d, orjson.loads(r) if r else None) for b, d, r in rows]

    # --- retention -----------------------------------------------------------------------------

    def expire(self, now: float, keep_s: float) -> int:
        """Delete detections received more than `keep_s` ago (SPEC: 90 days) and finished commands as old."""
        def _expire() -> int:
            n = self._db.execute("DELETE FROM detections WHERE received < ?", (now - keep_s,)).rowcount
            self._db.execute("DELETE FROM commands WHERE created < ?", (now - keep_s,))
            self._bump("retention.deleted", n)
            return n
        return self._tx(_expire)
