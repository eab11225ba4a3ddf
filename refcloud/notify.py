"""The cloud's mail loop: alert digests and down-device mail over SMTP (stdlib smtplib, in a thread).

At-least-once: the alert cursor and a device's watch state move only after
the mail was accepted by the SMTP server; a failure is counted
(`mail.failed`) and retried on the next round.
"""
from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Callable, Protocol

from refcloud.mail import MAX_RECIPIENTS, Mail, WatchConfig, alert_mail, watch_step
from refcloud.store import CloudStore

ALERT_CURSOR = "mail.alert_cursor"
LAST_ALERT = "mail.last_alert"


class MailSender(Protocol):
    def send(self, mail: Mail) -> None: ...


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    smtp_host: str
    smtp_port: int
    recipients: tuple[str, ...]
    mail_from: str = "utm-cloud@localhost"
    alert_interval_s: float = 60.0     # at most one alert digest per interval
    tick_s: float = 5.0
    watch: WatchConfig = field(default_factory=WatchConfig)

    def __post_init__(self) -> None:
        if not 1 <= len(self.recipients) <= MAX_RECIPIENTS:
            raise ValueError(f"alert mail goes to 1..{MAX_RECIPIENTS} recipients")
        if any("@" not in r or any(c in r for c in "\r\n,; ") for r in self.recipients):
            raise ValueError("each recipient must be one plain address")
        if self.alert_interval_s <= 0 or self.tick_s <= 0:
            raise ValueError("intervals must be positive")


@dataclass(frozen=True, slots=True)
class SmtpSender:
    host: str
    port: int
    mail_from: str
    recipients: tuple[str, ...]
    timeout_s: float = 30.0

    def send(self, mail: Mail) -> None:
        msg = EmailMessage()
        msg["From"] = self.mail_from
        msg["To"] = ", ".join(self.recipients)
        msg["Subject"] = mail.subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid(domain="utm-cloud.invalid")
        msg["X-UTM-Kind"] = mail.kind
        msg.set_content(mail.body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as s:
            s.send_message(msg)


async def notify_once(store: CloudStore, sender: MailSender, cfg: NotifyConfig, now: float) -> list[Mail]:
    """One round: an alert digest if one is due, then the watch of every device. Returns what was sent."""
    sent: list[Mail] = []

    async def send(m: Mail) -> bool:
        try:
            await asyncio.to_thread(sender.send, m)
        except (OSError, smtplib.SMTPException):
            store.bump("mail.failed")
            return False
        store.bump(f"mail.sent.{m.kind}")
        sent.append(m)
        return True

    if now - store.meta(LAST_ALERT, float("-inf")) >= cfg.alert_interval_s:
        rows = store.detections_after(int(store.meta(ALERT_CURSOR)), 100_000)
        if rows and await send(alert_mail([(r.device_id, r.detection) for r in rows])):
            store.set_meta(ALERT_CURSOR, rows[-1].id)
            store.set_meta(LAST_ALERT, now)
    for device_id, last_seen, cur in store.watch_states():
        new, mail = watch_step(device_id, cur, last_seen, now, cfg.watch)
        if mail is not None and not await send(mail):
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
        except RefcloudError:
            pass                # the store is unusable this round; the next round tries again
        try:
            await asyncio.wait_for(stop.wait(), cfg.tick_s)
        except TimeoutError:
            pass
