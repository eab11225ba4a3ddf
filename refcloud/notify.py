"""The cloud's mail loop: alert digests per customer and down-device mail over SMTP (stdlib smtplib, in a thread).

Every `tick_s` the new detections are grouped by the customer of their
device, and each customer with detections that is due gets one mail, to its
own recipients (`utm cloud customer set`) or, if it has none, to the
cloud's (`--mail-to`). A customer is due `alert_interval_s` after its last
mail or failed attempt: the first detection after a quiet spell goes out
within a tick, and a burst after it waits and goes out as one mail.

At-least-once, per customer: a customer's alert cursor and a device's watch
state move only after the SMTP server accepted the mail; a failure is
counted (`mail.failed`, and on the customer's row) and that customer's
detections are tried again an interval later, while the customers already
mailed are not mailed again. Once the server cannot be reached, the rest of
the round is deferred (`mail.deferred`) to the next tick rather than tried:
one connection attempt per tick while it is down, not one per mail.
"""
from __future__ import annotations

import asyncio
import smtplib
import sqlite3
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Callable, Protocol

from refcloud.mail import Mail, WatchConfig, alert_mail, check_recipients, watch_step
from refcloud.store import CloudStore

MAX_BATCH = 10_000      # detections read for one customer's mail per round; past it, the rest go next round
DEFERRED = "deferred: the SMTP server could not be reached earlier in this round"


class MailSender(Protocol):
    def send(self, mail: Mail, to: tuple[str, ...]) -> tuple[str, ...]:
        """Deliver or raise OSError/SMTPException; returns the recipients the server refused (others took it)."""


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    smtp_host: str
    smtp_port: int
    recipients: tuple[str, ...]        # the cloud's: for every customer without recipients of its own
    mail_from: str = "utm-cloud@localhost"
    alert_interval_s: float = 60.0     # at most one alert mail per customer per interval
    tick_s: float = 5.0
    watch: WatchConfig = field(default_factory=WatchConfig)
    max_batch: int = MAX_BATCH

    def __post_init__(self) -> None:
        check_recipients(self.recipients)
        if self.alert_interval_s <= 0 or self.tick_s <= 0:
            raise ValueError("intervals must be positive")
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")


@dataclass(frozen=True, slots=True)
class SmtpSender:
    host: str
    port: int
    mail_from: str
    timeout_s: float = 30.0

    def send(self, mail: Mail, to: tuple[str, ...]) -> tuple[str, ...]:
        msg = EmailMessage()
        msg["From"] = self.mail_from
        msg["To"] = ", ".join(to)
        msg["Subject"] = mail.subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain="utm-cloud.invalid")
        msg["X-UTM-Kind"] = mail.kind
        if mail.customer is not None:
            msg["X-UTM-Customer"] = mail.customer
        msg.set_content(mail.body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as s:
            refused = s.send_message(msg, to_addrs=list(to))
        return tuple(sorted(refused))


def _unreachable(e: BaseException) -> bool:
    """The server, not this mail, failed: no connection, a timeout, or it hung up. (SMTPException is an
    OSError too: a refusal of this mail's recipients or data is not this.)"""
    if isinstance(e, (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected)):
        return True
    return isinstance(e, OSError) and not isinstance(e, smtplib.SMTPException)


def _reason(e: BaseException) -> str:
    """One printable line for the customer's row: the SMTP reply or the socket error, no traceback."""
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        text = "every recipient refused: " + "; ".join(
            f"{a} {c} {m.decode('utf-8', 'replace') if isinstance(m, bytes) else m}"
            for a, (c, m) in e.recipients.items())
    elif isinstance(e, smtplib.SMTPResponseException):
        err = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        text = f"{e.smtp_code} {err}"
    elif isinstance(e, OSError):
        text = e.strerror or str(e) or type(e).__name__
    else:
        text = str(e) or type(e).__name__
    return "".join(c if c.isprintable() else " " for c in text)[:200]


async def notify_once(store: CloudStore, sender: MailSender, cfg: NotifyConfig, now: float) -> list[Mail]:
    """One round: an alert mail for each customer with new detections that is due, then the watch of
    every device. Returns what was sent."""
    sent: list[Mail] = []
    own = store.recipients()        # read each round: `utm cloud customer set` applies without a restart
    unreachable: list[str] = []     # the server could not be reached: the rest of the round is deferred

    async def send(m: Mail, to: tuple[str, ...]) -> str | None:
        if unreachable:
            store.bump("mail.deferred")
            return DEFERRED
        try:
            refused = await asyncio.to_thread(sender.send, m, to)
        except (OSError, smtplib.SMTPException) as e:
            store.bump("mail.failed")
            store.bump(f"mail.failed.{m.kind}")
            if _unreachable(e):
                unreachable.append(_reason(e))
            return _reason(e)
        store.bump(f"mail.sent.{m.kind}")
        if refused:
            store.bump("mail.recipients_refused", len(refused))
        sent.append(m)
        return None

    for st in store.alert_states():
        last_try = max((t for t in (st.last_sent, st.last_failed) if t is not None), default=None)
        if last_try is not None and now - last_try < cfg.alert_interval_s:
            continue            # mailed, or failed, within the interval: what came since waits for the next
        batch = store.pending_alerts(st.customer, st.last_id, cfg.max_batch)
        if batch.last_id is None:
            continue
        if batch.undecodable:
            store.bump("mail.undecodable", batch.undecodable)
        if batch.more:
            store.bump("mail.batch_capped")
        if not batch.rows:
            store.alert_skipped(st.customer, batch.last_id)
            continue
        mail = alert_mail([(r.device_id, r.detection) for r in batch.rows], st.customer, batch.more)
        error = await send(mail, own.get(st.customer, cfg.recipients))
        if error is None:
            store.alert_sent(st.customer, batch.last_id, now)
        elif error is not DEFERRED:
            store.alert_failed(st.customer, error, now)
    for device_id, customer, last_seen, cur in store.watch_states():
        new, wmail = watch_step(device_id, cur, last_seen, now, cfg.watch)
        if wmail is not None and await send(replace(wmail, customer=customer),
                                            own.get(customer, cfg.recipients)) is not None:
            continue
        if new != cur:
            store.set_watch(device_id, new)
    return sent


async def notify_loop(store: CloudStore, sender: MailSender, cfg: NotifyConfig, clock: Callable[[], float],
                      stop: asyncio.Event) -> None:
    from refcloud.errors import RefcloudError
    while not stop.is_set():
        try:
            await notify_once(store, sender, cfg, clock())
        except (RefcloudError, sqlite3.Error):
            pass                # the store is unusable this round; the next round tries again
        try:
            await asyncio.wait_for(stop.wait(), cfg.tick_s)
        except TimeoutError:
            pass
