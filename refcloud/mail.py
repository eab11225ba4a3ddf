"""What the cloud mails and when, pure: alert digests and the down-device watch.

Alert mail (SPEC section 6): the detections of one customer's devices received
since that customer's last mail go out as one message whose subject carries
the highest severity among them, to at most three recipients. Severity words
are the service's: 3 stars high, 2 medium, 1 low, none "under investigation".

Down-device watch, a table of transitions (STYLE habit 2): a device silent
for longer than `down_after_s` is DOWN and mailed once; while it stays down
it is mailed again every `repeat_s` (a day); when it is heard from again it
is UP and mailed once more. The clock is a parameter.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from cloudlink.protocol import Detection

MAX_RECIPIENTS = 3
MAX_LINES = 200          # detections listed in one mail; the rest are counted
MAX_ADDRESS = 254        # RFC 5321's limit on a forward path, less the brackets

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@{_LABEL}(?:\.{_LABEL})*")

LEVELS = {
    3: ("***", "high", "a device is probably infected; a full antivirus scan is strongly advised"),
    2: ("**", "medium", "a device is possibly infected"),
    1: ("*", "low", "caution"),
    0: ("-", "under investigation", "the vendor is still assessing this detection"),
}


@dataclass(frozen=True, slots=True)
class Mail:
    subject: str
    body: str
    kind: str            # "alert", "down", "still_down", "back"
    customer: str | None = None      # whose devices the mail is about (an X-UTM-Customer header)


def check_recipients(addrs: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """1..3 distinct plain addresses (local@domain: no display name, no list, no quoting), because each goes
    as given into To: and RCPT TO; anything else is a ValueError that says which and why."""
    addrs = tuple(addrs)
    if len(addrs) > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} recipients (SPEC section 6), {len(addrs)} given")
    if not addrs:
        raise ValueError("at least one recipient is needed")
    for a in addrs:
        m = _ADDRESS.fullmatch(a) if isinstance(a, str) and len(a) <= MAX_ADDRESS else None
        if m is None or len(m["local"]) > 64:
            raise ValueError(f"{str(a)[:80]!r} is not one plain address (local@domain, no name, spaces or commas)")
    if len({a.lower() for a in addrs}) != len(addrs):
        raise ValueError("the same recipient is given twice")
    return addrs


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def alert_mail(rows: list[tuple[str, Detection]], customer: str | None = None, more: bool = False) -> Mail:
    """One digest for (device id, detection) rows, all of one customer; the subject names the highest level
    among them. `more`: the batch was capped and the rest waits for the next mail."""
    if not rows:
        raise ValueError("an alert mail needs at least one detection")
    top = max(d.stars for _, d in rows)
    glyph, word, _ = LEVELS[top]
    devices = sorted({dev for dev, _ in rows})
    subject = (f"[UTM] {glyph} {word}: {len(rows)} detection{'s' if len(rows) != 1 else ''} "
               f"on {len(devices)} device{'s' if len(devices) != 1 else ''}")
    lines = ([f"Customer: {customer}"] if customer is not None else []) + [
        f"{len(rows)} detection(s) since the last report. Highest level: {word} ({LEVELS[top][2]}).", ""]
    for stars in (3, 2, 1, 0):
        n = sum(1 for _, d in rows if d.stars == stars)
        if n:
            lines.append(f"  {LEVELS[stars][1]}: {n}")
    lines.append("")
    ordered = sorted(rows, key=lambda r: (-r[1].stars, r[1].ts))
    for dev, d in ordered[:MAX_LINES]:
        where = " -> ".join(x for x in (d.src_ip, d.dest_ip) if x)
        lines.append(f"{d.ts}  {LEVELS[d.stars][1]:<19}  {d.action.value:<7}  {dev}  {where}  "
                     f"[{d.rule_id}] {d.rule_msg}" + (f"  {d.url}" if d.url else "")
                     + (f"  file {d.file_name}" if d.file_name else ""))
    if len(ordered) > MAX_LINES:
        lines.append(f"... and {len(ordered) - MAX_LINES} more (see the portal)")
    if more:
        lines.append("More detections are waiting: they follow in the next mail.")
    return Mail(subject, "\n".join(lines) + "\n", "alert", customer)


class Watch(enum.Enum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class WatchState:
    state: Watch
    since: float              # when the current state began (down: the last time the device was heard)
    last_mail: float | None   # when the last down/still-down mail went out


@dataclass(frozen=True, slots=True)
class WatchConfig:
    down_after_s: float = 600.0
    repeat_s: float = 86400.0

    def __post_init__(self) -> None:
        if self.down_after_s <= 0 or self.repeat_s <= 0:
            raise ValueError("down_after_s and repeat_s must be positive")


def watch_step(device_id: str, cur: WatchState, last_seen: float, now: float,
               cfg: WatchConfig) -> tuple[WatchState, Mail | None]:
    """The next watch state and the mail to send, if any."""
    silent = now - last_seen > cfg.down_after_s
    if cur.state is Watch.UP and silent:
        return WatchState(Watch.DOWN, last_seen, now), Mail(
            f"[UTM] device {device_id} is down",
            f"Device {device_id} has not been heard from since {_iso(last_seen)}.\n"
            "Check its power and its network cable. We will write again daily while it stays down.\n", "down")
    if cur.state is Watch.DOWN and not silent:
        return WatchState(Watch.UP, last_seen, None), Mail(
            f"[UTM] device {device_id} is back",
            f"Device {device_id} is reporting again since {_iso(last_seen)} "
            f"(down since {_iso(cur.since)}).\n", "back")
    if cur.state is Watch.DOWN and cur.last_mail is not None and now - cur.last_mail >= cfg.repeat_s:
        return WatchState(Watch.DOWN, cur.since, now), Mail(
            f"[UTM] device {device_id} is still down",
            f"Device {device_id} has not been heard from since {_iso(cur.since)}.\n", "still_down")
    return cur, None
