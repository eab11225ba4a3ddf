"""Alert digests and the down-device watch: the pure rules, then a real SMTP server (aiosmtpd) on loopback."""
from __future__ import annotations

import asyncio
import email
import time
from dataclasses import replace

import pytest

from refcloud.mail import LEVELS, Watch, WatchConfig, WatchState, alert_mail, watch_step
from refcloud.notify import NotifyConfig, SmtpSender, notify_once
from refcloud.state import CloudState
from tests.unit.cloudlink.helpers import det
from tests.unit.refcloud.smtp_server import smtp_server

DAY = 86400.0


def test_subject_carries_the_highest_level():
    m = alert_mail([("dev-a", det(1, stars=1)), ("dev-b", det(2, stars=3)), ("dev-a", det(3, stars=0))])
    assert m.subject == "[UTM] *** high: 3 detections on 2 devices"
    assert "strongly advised" in m.body and m.body.index("TEST rule 2") < m.body.index("TEST rule 1")
    only0 = alert_mail([("dev-a", det(1, stars=0))])
    assert "under investigation" in only0.subject and LEVELS[0][1] == "under investigation"
    with pytest.raises(ValueError):
        alert_mail([])


def test_watch_table_down_once_daily_then_back():
    cfg = WatchConfig(down_after_s=600, repeat_s=DAY)
    st = WatchState(Watch.UP, 0, None)
    kinds = []
    last_seen = 1000.0
    for now in (1500, 1700, 5000, 1700 + DAY - 1, 1700 + DAY, 1700 + DAY + 60, 1700 + 2 * DAY):
        st, mail = watch_step("dev-a", st, last_seen, now, cfg)
        kinds.append(mail.kind if mail else None)
    assert kinds == [None, "down", None, None, "still_down", None, "still_down"]
    st, mail = watch_step("dev-a", st, 1700 + 2 * DAY + 10, 1700 + 2 * DAY + 20, cfg)
    assert mail.kind == "back" and st.state is Watch.UP
    st, mail = watch_step("dev-a", st, 1700 + 2 * DAY + 10, 1700 + 2 * DAY + 30, cfg)
    assert mail is None


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.rcpts: list[list[str]] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.messages.append(email.message_from_bytes(envelope.content))
        self.rcpts.append(list(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = _Inbox()
    with smtp_server(inbox) as port:
        yield inbox, port


def _cfg(port: int, **kw) -> NotifyConfig:
    return NotifyConfig("127.0.0.1", port, ("a@example.com", "b@example.com"), alert_interval_s=60,
                        watch=WatchConfig(down_after_s=600), **kw)


def test_digest_and_down_mail_through_a_real_smtp_server(tmp_path, smtp):
    inbox, port = smtp
    cfg = _cfg(port)
    sender = SmtpSender("127.0.0.1", port, cfg.mail_from)
    st = CloudState.open(tmp_path / "c", 1000.0, create=True)
    try:
        code = st.new_enrol_code(1000.0, 60)
        st.store.enrol(code.secret, 1000.0, "dev-000000000001", "0.1.0", lambda: "s1")
        st.store.ingest("dev-000000000001", (det(1, stars=2), det(2, stars=1)), 1010.0)
        sent = asyncio.run(notify_once(st.store, sender, cfg, 1020.0))
        assert [m.kind for m in sent] == ["alert"]
        st.store.ingest("dev-000000000001", (det(3, stars=3),), 1030.0)
        assert asyncio.run(notify_once(st.store, sender, cfg, 1040.0)) == []        # batched: not yet due
        sent = asyncio.run(notify_once(st.store, sender, cfg, 1090.0))
        assert [m.kind for m in sent] == ["alert"] and "1 detection on 1 device" in sent[0].subject
        assert asyncio.run(notify_once(st.store, sender, cfg, 1200.0)) == []        # nothing new
        assert [m.kind for m in asyncio.run(notify_once(st.store, sender, cfg, 1700.0))] == ["down"]
        assert asyncio.run(notify_once(st.store, sender, cfg, 1800.0)) == []
        assert [m.kind for m in asyncio.run(notify_once(st.store, sender, cfg, 1700.0 + DAY))] == ["still_down"]
        st.store.ingest("dev-000000000001", (det(4, stars=0),), 1800.0 + DAY)    # heard from again
        kinds = [m.kind for m in asyncio.run(notify_once(st.store, sender, cfg, 1810.0 + DAY))]
        assert kinds == ["alert", "back"]
    finally:
        st.close()
    subjects = [m["Subject"] for m in inbox.messages]
    assert subjects[0] == "[UTM] ** medium: 2 detections on 1 device"
    assert subjects[1] == "[UTM] *** high: 1 detection on 1 device"
    assert [m["X-UTM-Kind"] for m in inbox.messages] == ["alert", "alert", "down", "still_down", "alert", "back"]
    assert all(r == ["a@example.com", "b@example.com"] for r in inbox.rcpts)


def test_smtp_down_retries_without_losing_the_digest(tmp_path, smtp):
    inbox, port = smtp
    st = CloudState.open(tmp_path / "c", 1000.0, create=True)
    try:
        code = st.new_enrol_code(1000.0, 60)
        st.store.enrol(code.secret, 1000.0, "dev-000000000001", "0.1.0", lambda: "s1")
        st.store.ingest("dev-000000000001", (det(1, stars=3),), 1010.0)
        dead = SmtpSender("127.0.0.1", 1, "x@localhost", timeout_s=2)
        assert asyncio.run(notify_once(st.store, dead, _cfg(port), 1020.0)) == []
        assert st.store.counters()["mail.failed"] == 1
        live = SmtpSender("127.0.0.1", port, "x@localhost")
        assert asyncio.run(notify_once(st.store, live, _cfg(port), 1030.0)) == []    # retried an interval later
        assert [m.kind for m in asyncio.run(notify_once(st.store, live, _cfg(port), 1080.0))] == ["alert"]
    finally:
        st.close()
    assert len(inbox.messages) == 1


def test_recipients_checked():
    with pytest.raises(ValueError):
        NotifyConfig("h", 25, ())
    with pytest.raises(ValueError):
        NotifyConfig("h", 25, ("a@x", "b@x", "c@x", "d@x"))
    with pytest.raises(ValueError):
        NotifyConfig("h", 25, ("a@x\r\nBcc: evil@x",))


def test_served_cloud_mails_what_an_agent_uploads(tmp_path, smtp):
    from cloudlink.daemon import Agent, AgentConfig
    from cloudlink.queue import DetectionQueue
    from cloudlink.transport import HttpsCloud, enrol
    from refcloud.app import CloudConfig
    from tests.sim.cloud import CloudThread, new_code
    inbox, port = smtp
    new_code(tmp_path / "cloud")
    cfg = CloudConfig(notify=replace(_cfg(port), alert_interval_s=0.1, tick_s=0.1))
    with CloudThread(tmp_path / "cloud", cfg) as cloud:
        st = asyncio.run(enrol(cloud.url, new_code(tmp_path / "cloud"), tmp_path / "agent", "0.1.0"))

        async def go():
            async with HttpsCloud(st) as c:
                with DetectionQueue(st.queue_path) as q:
                    q.enqueue([det(i, stars=i % 4) for i in range(7)])
                    assert await Agent(st, c, q, AgentConfig()).drain()
        asyncio.run(go())
        deadline = time.monotonic() + 10
        while not inbox.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    assert inbox.messages[0]["Subject"] == "[UTM] *** high: 7 detections on 1 device"
    assert st.device_id in inbox.messages[0].get_payload(decode=True).decode()
