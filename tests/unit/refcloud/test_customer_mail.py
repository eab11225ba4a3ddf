"""Alert mail per customer: recipients in the store, one mail per customer per round through a real SMTP
server (aiosmtpd on loopback), no customer seeing another's devices, per-customer at-least-once."""
from __future__ import annotations

import asyncio
import email
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from refcloud.errors import BadParameter
from refcloud.mail import MAX_RECIPIENTS, WatchConfig, check_recipients
from refcloud.notify import NotifyConfig, SmtpSender, notify_once
from refcloud.state import CloudState
from refcloud.store import LEGACY_ALERT_CURSOR, LEGACY_LAST_ALERT, CloudStore
from tests.unit.cloudlink.helpers import det
from tests.unit.refcloud.smtp_server import smtp_server

T0 = 1_800_000_000.0
FALLBACK = ("ops@example.net",)
REFUSED_DOMAIN = "@refused.example"


class _Inbox:
    """Keeps every accepted message with its envelope recipients; refuses any address at REFUSED_DOMAIN."""

    def __init__(self) -> None:
        self.mails: list[tuple[tuple[str, ...], email.message.Message]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # aiosmtpd hook
        if address.endswith(REFUSED_DOMAIN):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook
        self.mails.append((tuple(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"

    def by_customer(self) -> dict[str, tuple[tuple[str, ...], email.message.Message]]:
        out = {m["X-UTM-Customer"]: (to, m) for to, m in self.mails}
        assert len(out) == len(self.mails), "one mail per customer"
        return out


@pytest.fixture
def smtp():
    inbox = _Inbox()
    with smtp_server(inbox) as port:
        yield inbox, port


def _body(m: email.message.Message) -> str:
    return m.get_payload(decode=True).decode()


def _enrol(st: CloudState, customer: str, n: int) -> str:
    code = st.new_enrol_code(T0, 3600, customer)
    dev = f"dev-{customer}-{n}"
    st.store.enrol(code.secret, T0, dev, "0.1.0", lambda: f"s-{customer}-{n}")
    return dev


@pytest.fixture
def cloud(tmp_path):
    """acme: two devices and two recipients of its own; beta: one device, one recipient; default: one
    device, no recipients of its own (the cloud's FALLBACK)."""
    st = CloudState.open(tmp_path / "c", T0, create=True)
    devs = {"acme": [_enrol(st, "acme", 1), _enrol(st, "acme", 2)], "beta": [_enrol(st, "beta", 1)],
            "default": [_enrol(st, "default", 1)]}
    st.store.set_recipients("acme", ["sec@acme.example", "boss@acme.example"], T0)
    st.store.set_recipients("beta", ["it@beta.example"], T0)
    try:
        yield st, devs
    finally:
        st.close()


def _cfg(port: int, **kw) -> NotifyConfig:
    kw.setdefault("watch", WatchConfig(down_after_s=3600))
    return NotifyConfig("127.0.0.1", port, FALLBACK, alert_interval_s=60, **kw)


def _round(st: CloudState, port: int, now: float, **kw):  # type: ignore[no-untyped-def]
    return asyncio.run(notify_once(st.store, SmtpSender("127.0.0.1", port, "cloud@example.net"), _cfg(port, **kw),
                                   now))


def _burst(st: CloudState, devs: dict[str, list[str]], start: float) -> dict[str, set[str]]:
    """Detections arriving one upload at a time over 30 s, interleaved across customers; the rule
    messages each customer's mail may name."""
    plan = {"acme": (1, 3, 0, 2, 1), "beta": (1, 0, 1), "default": (0, 0)}
    msgs: dict[str, set[str]] = {c: set() for c in plan}
    i = 0
    for step in range(5):
        for customer, stars in plan.items():
            if step < len(stars):
                dev = devs[customer][step % len(devs[customer])]
                d = det(int(start) % 100_000 * 100 + i, stars=stars[step], rule_msg=f"{customer} rule {start} {i}")
                st.store.ingest(dev, (d,), start + i)
                msgs[customer].add(d.rule_msg)
                i += 1
    return msgs


def test_recipients_are_one_to_three_plain_addresses():
    assert check_recipients(["a@example.com"]) == ("a@example.com",)
    assert check_recipients(("first.last+tag@mail.example.co.jp", "ops@localhost", "x@y")) == (
        "first.last+tag@mail.example.co.jp", "ops@localhost", "x@y")
    with pytest.raises(ValueError, match=r"at most 3 recipients .* 4 given"):
        check_recipients(["a@x", "b@x", "c@x", "d@x"])
    with pytest.raises(ValueError, match="at least one"):
        check_recipients([])
    for bad in ("Alice <a@example.com>", "a@example.com, b@example.com", "a@x\r\nBcc: evil@x", " a@x", "a",
                "@x", "a@", "a@-x", "a..b@x", "a@x..y", "a b@x", '"a"@x', "a@x@y", "a;b@x",
                "x" * 65 + "@example.com", "a@" + "b" * 64 + ".com", "a@" + ".".join(["b" * 60] * 5)):
        with pytest.raises(ValueError, match="not one plain address"):
            check_recipients([bad])
    with pytest.raises(ValueError, match="twice"):
        check_recipients(["a@example.com", "A@Example.com"])
    assert MAX_RECIPIENTS == 3


def test_store_keeps_replaces_and_removes_a_customers_recipients(tmp_path):
    store = CloudStore(tmp_path / "cloud.sqlite")
    try:
        assert store.recipients() == {}
        assert store.set_recipients("acme", ["a@acme.example"], T0) == ("a@acme.example",)
        store.set_recipients("acme", ["b@acme.example", "c@acme.example"], T0 + 1)
        store.set_recipients("beta", ["x@beta.example"], T0)
        assert store.recipients() == {"acme": ("b@acme.example", "c@acme.example"), "beta": ("x@beta.example",)}
        with pytest.raises(BadParameter) as e:
            store.set_recipients("acme", ["1@a.example", "2@a.example", "3@a.example", "4@a.example"], T0)
        assert e.value.field == "mail" and "at most 3" in str(e.value)
        with pytest.raises(BadParameter) as e:
            store.set_recipients("Acme Inc", ["a@acme.example"], T0)
        assert e.value.field == "customer"
        assert store.recipients()["acme"] == ("b@acme.example", "c@acme.example")     # refusals changed nothing
        assert store.remove_recipients("acme") and not store.remove_recipients("acme")
        assert store.recipients() == {"beta": ("x@beta.example",)}
    finally:
        store.close()


def test_a_burst_is_one_mail_per_customer_with_only_its_own_devices(cloud, smtp):
    st, devs = cloud
    inbox, port = smtp
    msgs = _burst(st, devs, T0 + 10)
    sent = _round(st, port, T0 + 100)
    assert sorted(m.customer for m in sent) == ["acme", "beta", "default"]
    got = inbox.by_customer()
    assert got["acme"][0] == ("sec@acme.example", "boss@acme.example")
    assert got["beta"][0] == ("it@beta.example",)
    assert got["default"][0] == FALLBACK          # no recipients of its own: the cloud's
    assert got["acme"][1]["Subject"] == "[UTM] *** high: 5 detections on 2 devices"
    assert got["beta"][1]["Subject"] == "[UTM] * low: 3 detections on 1 device"
    assert got["default"][1]["Subject"] == "[UTM] - under investigation: 2 detections on 1 device"
    for customer, (_, m) in got.items():
        body = _body(m)
        assert all(msg in body for msg in msgs[customer])
        for other in set(devs) - {customer}:
            assert not any(d in body for d in devs[other]), f"{customer}'s mail names {other}'s device"
            assert not any(msg in body for msg in msgs[other]), f"{customer}'s mail lists {other}'s detection"
    assert st.store.counters()["mail.sent.alert"] == 3

    # within the interval: a new burst waits, then goes out as one mail per customer, with only the new ones
    more = _burst(st, devs, T0 + 120)
    assert _round(st, port, T0 + 130) == [] and _round(st, port, T0 + 155) == []
    inbox.mails.clear()
    assert len(_round(st, port, T0 + 160)) == 3
    got = inbox.by_customer()
    assert got["acme"][1]["Subject"] == "[UTM] *** high: 5 detections on 2 devices"
    assert all(not any(msg in _body(m) for msg in msgs[c]) and all(msg in _body(m) for msg in more[c])
               for c, (_, m) in got.items())
    assert _round(st, port, T0 + 300) == []        # nothing new: no mail


def test_a_failed_send_keeps_only_that_customer_pending(cloud, smtp):
    st, devs = cloud
    inbox, port = smtp
    st.store.set_recipients("beta", ["it" + REFUSED_DOMAIN], T0)
    msgs = _burst(st, devs, T0 + 10)
    assert sorted(m.customer for m in _round(st, port, T0 + 100)) == ["acme", "default"]
    c = st.store.counters()
    assert (c["mail.sent.alert"], c["mail.failed"], c["mail.failed.alert"]) == (2, 1, 1)
    beta = next(r for r in st.store.customers() if r.name == "beta")
    assert (beta.alert.failed, beta.alert.sent, beta.pending) == (1, 0, 3)
    assert beta.alert.last_error.startswith("every recipient refused: it@refused.example 550")

    st.store.set_recipients("beta", ["it@beta.example"], T0 + 101)     # fixed; tried again an interval later
    inbox.mails.clear()
    assert _round(st, port, T0 + 105) == [] and _round(st, port, T0 + 155) == []
    assert [m.customer for m in _round(st, port, T0 + 160)] == ["beta"]
    (to, m), = inbox.mails
    assert to == ("it@beta.example",) and all(msg in _body(m) for msg in msgs["beta"])
    assert m["Subject"] == "[UTM] * low: 3 detections on 1 device"
    rows = {r.name: r for r in st.store.customers()}
    assert (rows["beta"].alert.sent, rows["beta"].pending) == (1, 0)
    assert (rows["acme"].alert.sent, rows["acme"].pending) == (1, 0)


def test_smtp_server_down_then_back_mails_every_customer_once(cloud, smtp):
    st, devs = cloud
    inbox, port = smtp
    _burst(st, devs, T0 + 10)
    dead = SmtpSender("127.0.0.1", 1, "cloud@example.net", timeout_s=2)
    assert asyncio.run(notify_once(st.store, dead, _cfg(port, watch=WatchConfig(down_after_s=30)), T0 + 100)) == []
    c = st.store.counters()     # one attempt; the other two customers and four down mails wait for the next tick
    assert (c["mail.failed"], c["mail.deferred"]) == (1, 6)
    rows = {r.name: r for r in st.store.customers()}
    assert rows["acme"].alert.last_error == "Connection refused"
    assert (rows["beta"].alert.failed, rows["default"].alert.failed) == (0, 0)
    assert all(a.state.value == "up" for *_, a in st.store.watch_states())
    assert sorted(m.customer for m in _round(st, port, T0 + 105)) == ["beta", "default"]   # back: the deferred
    assert _round(st, port, T0 + 110) == []             # acme, which failed, waits an interval: no retry storm
    assert [m.customer for m in _round(st, port, T0 + 160)] == ["acme"]
    assert len(inbox.mails) == 3 and _round(st, port, T0 + 200) == []


def test_a_quiet_customers_cursor_keeps_up(cloud, smtp):
    """A customer with devices but nothing new is not rescanned from its old cursor every round."""
    st, devs = cloud
    _, port = smtp
    st.store.ingest(devs["acme"][0], tuple(det(i) for i in range(4)), T0 + 1)
    top = max(r.id for r in st.store.detections())
    assert [m.customer for m in _round(st, port, T0 + 100)] == ["acme"]
    states = {a.customer: a for a in st.store.alert_states()}
    assert {c: (a.last_id, a.sent) for c, a in states.items()} == {"acme": (top, 1), "beta": (top, 0),
                                                                   "default": (top, 0)}
    assert st.store.pending_alerts("beta", top, 10).last_id is None
    st.store.ingest(devs["acme"][1], (det(10),), T0 + 101)
    batch = st.store.pending_alerts("beta", top, 10)
    assert (batch.rows, batch.last_id, batch.more) == ((), top + 1, False)


def test_a_capped_batch_is_counted_and_the_rest_follows(cloud, smtp):
    st, devs = cloud
    inbox, port = smtp
    st.store.ingest(devs["beta"][0], tuple(det(i, stars=1) for i in range(5)), T0 + 1)
    assert len(_round(st, port, T0 + 100, max_batch=3)) == 1
    assert "3 detections" in inbox.mails[0][1]["Subject"] and "follow in the next mail" in _body(inbox.mails[0][1])
    assert st.store.counters()["mail.batch_capped"] == 1
    assert len(_round(st, port, T0 + 160, max_batch=3)) == 1
    assert "2 detections" in inbox.mails[1][1]["Subject"] and "next mail" not in _body(inbox.mails[1][1])


def test_an_undecodable_row_is_skipped_and_counted(cloud, smtp):
    st, devs = cloud
    inbox, port = smtp
    st.store.ingest(devs["beta"][0], (det(1, stars=2), det(2, stars=3)), T0 + 1)
    st.store.ingest(devs["acme"][0], (det(3, stars=1),), T0 + 1)
    db = sqlite3.connect(st.folder / "cloud.sqlite")
    db.execute("UPDATE detections SET body = '{\"key\": 1}' WHERE key IN ('k00000002', 'k00000003')")
    db.commit()
    db.close()
    assert [m.customer for m in _round(st, port, T0 + 100)] == ["beta"]    # acme's only row is unreadable
    assert inbox.mails[0][1]["Subject"] == "[UTM] ** medium: 1 detection on 1 device"
    assert st.store.counters()["mail.undecodable"] == 2
    assert {r.name: r.pending for r in st.store.customers()} == {"acme": 0, "beta": 0, "default": 0}
    assert _round(st, port, T0 + 200) == []


def test_down_mail_goes_to_the_devices_customer(cloud, smtp):
    st, devs = cloud
    inbox, port = smtp
    sent = _round(st, port, T0 + 4000)
    assert sorted((m.kind, m.customer) for m in sent) == [("down", "acme"), ("down", "acme"), ("down", "beta"),
                                                          ("down", "default")]
    for to, m in inbox.mails:
        customer = m["X-UTM-Customer"]
        assert to == {"acme": ("sec@acme.example", "boss@acme.example"), "beta": ("it@beta.example",),
                      "default": FALLBACK}[customer]
        assert any(d in m["Subject"] for d in devs[customer])


def test_a_store_from_before_per_customer_mail(tmp_path, smtp):
    """An old store: no recipient or cursor tables, one global cursor in meta. It opens, and only what
    the old single digest had not mailed yet goes out."""
    inbox, port = smtp
    st = CloudState.open(tmp_path / "c", T0, create=True)
    a, b = _enrol(st, "acme", 1), _enrol(st, "beta", 1)
    st.store.ingest(a, (det(1, stars=3),), T0 + 1)
    st.store.ingest(b, (det(2, stars=3),), T0 + 2)
    old = max(r.id for r in st.store.detections())
    st.store.set_meta(LEGACY_ALERT_CURSOR, old)
    st.store.set_meta(LEGACY_LAST_ALERT, T0 + 50)
    st.store.ingest(b, (det(3, stars=1),), T0 + 60)
    st.close()
    db = sqlite3.connect(tmp_path / "c" / "cloud.sqlite")
    db.executescript("DROP TABLE customer_mail; DROP TABLE alert_cursors;")
    db.close()
    st = CloudState.open(tmp_path / "c", T0 + 70)
    try:
        assert _round(st, port, T0 + 70) == []          # the old digest's interval still holds
        assert [m.customer for m in _round(st, port, T0 + 110)] == ["beta"]
        assert inbox.mails[0][1]["Subject"] == "[UTM] * low: 1 detection on 1 device"
        assert inbox.mails[0][0] == FALLBACK
        assert {r.name: (r.recipients, r.pending) for r in st.store.customers()} == {"acme": (None, 0),
                                                                                    "beta": (None, 0)}
    finally:
        st.close()


def test_cli_customer_set_list_remove(tmp_path, capsys):
    from firmware.cli.main import main
    c = str(tmp_path / "c")
    assert main(["cloud", "customer", "set", "--state", c, "acme", "--mail", "a@acme.example"]) == 2
    assert "not a cloud state folder" in capsys.readouterr().err
    assert main(["cloud", "enroll-code", "--state", c, "--customer", "acme"]) == 0
    assert main(["cloud", "enroll-code", "--state", c, "--customer", "beta"]) == 0
    capsys.readouterr()
    four = [x for i in range(4) for x in ("--mail", f"{i}@acme.example")]
    for argv, words in ((["acme", *four], "at most 3 recipients (SPEC section 6), 4 given"),
                        (["acme", "--mail", "Al <a@acme.example>"], "not one plain address"),
                        (["Acme", "--mail", "a@acme.example"], "customer names are"),
                        (["acme", "--mail", "a@acme.example", "--mail", "a@acme.example"], "twice")):
        assert main(["cloud", "customer", "set", "--state", c, *argv]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["cloud", "customer", "set", "--state", c, "acme", "--mail", "sec@acme.example",
                 "--mail", "boss@acme.example"]) == 0
    out = capsys.readouterr()
    assert out.out == "acme: alert and down-device mail to sec@acme.example, boss@acme.example\n"
    assert "no device belongs to acme yet" in out.err      # enrolled with a code, not yet redeemed
    assert main(["cloud", "customer", "list", "--state", c, "--json"]) == 0
    rows = [__import__("json").loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["customer"], r["recipients"], r["pending"]) for r in rows] == [
        ("acme", ["sec@acme.example", "boss@acme.example"], 0), ("beta", None, 0)]
    assert main(["cloud", "customer", "list", "--state", c]) == 0
    assert "beta  devices 0  mail to (the cloud's --mail-to)" in capsys.readouterr().out
    st = CloudState.open(tmp_path / "c", T0)
    try:
        st.store.alert_failed("beta", "421 try later", T0)
    finally:
        st.close()
    assert main(["cloud", "customer", "list", "--state", c]) == 0
    assert "beta  devices 0  mail to (the cloud's --mail-to)  sent 0  failed 1  pending 0  failing: 421 try later" \
        in capsys.readouterr().out
    st = CloudState.open(tmp_path / "c", T0)
    try:
        st.store.alert_sent("beta", 0, T0 + 60)
    finally:
        st.close()
    assert main(["cloud", "customer", "list", "--state", c]) == 0
    assert "failing" not in capsys.readouterr().out
    assert main(["cloud", "customer", "list", "--state", c, "--json"]) == 0
    beta = __import__("json").loads(capsys.readouterr().out.splitlines()[1])
    assert (beta["alerts_sent"], beta["alerts_failed"], beta["last_error"]) == (1, 1, "421 try later")
    assert beta["last_sent"] > beta["last_failed"]
    assert main(["cloud", "customer", "remove", "--state", c, "acme"]) == 0
    assert main(["cloud", "customer", "remove", "--state", c, "acme"]) == 2
    assert "no recipients of its own" in capsys.readouterr().err
    assert main(["cloud", "serve", "--state", c, "--listen", "127.0.0.1:0", "--smtp", "127.0.0.1:25",
                 *[x for i in range(4) for x in ("--mail-to", f"{i}@ops.example")]]) == 2
    assert "at most 3" in capsys.readouterr().err


def test_served_cloud_mails_each_customer_what_its_agent_uploads(tmp_path, smtp, capsys):
    """`utm cloud serve`'s app with two agents of two customers over real mutual TLS: each customer's
    recipients get one mail naming only its own device."""
    import time

    from cloudlink.daemon import Agent, AgentConfig
    from cloudlink.queue import DetectionQueue
    from cloudlink.transport import HttpsCloud, enrol
    from firmware.cli.main import main
    from refcloud.app import CloudConfig
    from tests.sim.cloud import CloudThread
    inbox, port = smtp
    c = tmp_path / "cloud"
    codes = {}
    for customer in ("acme", "beta"):
        assert main(["cloud", "enroll-code", "--state", str(c), "--customer", customer]) == 0
        codes[customer] = capsys.readouterr().out.strip()
    assert main(["cloud", "customer", "set", "--state", str(c), "acme", "--mail", "sec@acme.example"]) == 0
    cfg = CloudConfig(notify=NotifyConfig("127.0.0.1", port, FALLBACK, alert_interval_s=3600, tick_s=0.1))
    devices = {}
    with CloudThread(c, cfg) as cloud:
        for customer, stars in (("acme", 3), ("beta", 2)):
            st = asyncio.run(enrol(cloud.url, codes[customer], tmp_path / customer, "0.1.0"))
            devices[customer] = st.device_id

            async def go(st=st, stars=stars, customer=customer):  # type: ignore[no-untyped-def]
                async with HttpsCloud(st) as link:
                    with DetectionQueue(st.queue_path) as q:
                        q.enqueue([det(i, stars=min(i, stars), rule_msg=f"{customer} rule {i}") for i in range(6)])
                        assert await Agent(st, link, q, AgentConfig()).drain()
            asyncio.run(go())
        deadline = time.monotonic() + 10
        while len(inbox.mails) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    got = inbox.by_customer()
    assert got["acme"][0] == ("sec@acme.example",) and got["beta"][0] == FALLBACK
    assert got["acme"][1]["Subject"] == "[UTM] *** high: 6 detections on 1 device"
    assert got["beta"][1]["Subject"] == "[UTM] ** medium: 6 detections on 1 device"
    for customer, other in (("acme", "beta"), ("beta", "acme")):
        body = _body(got[customer][1])
        assert devices[customer] in body and devices[other] not in body and f"{other} rule" not in body


def test_what_counts_as_the_server_unreachable():
    import smtplib

    from refcloud.notify import _unreachable
    assert all(_unreachable(e) for e in (ConnectionRefusedError(111, "refused"), TimeoutError(), OSError(113, "x"),
                                         smtplib.SMTPServerDisconnected(), smtplib.SMTPConnectError(421, b"busy")))
    assert not any(_unreachable(e) for e in (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no")}),
                                             smtplib.SMTPDataError(554, b"spam"), smtplib.SMTPSenderRefused(
                                                 553, b"no", "cloud@x")))


@settings(max_examples=300, deadline=None)
@given(hs.lists(hs.one_of(hs.text(max_size=40),
                          hs.from_regex(r"[a-z.+\-]{0,10}@[a-z0-9.\-]{0,12}", fullmatch=True)), max_size=5))
def test_recipients_never_crash_and_what_passes_is_one_bare_address(addrs):
    from email.utils import getaddresses
    try:
        ok = check_recipients(addrs)
    except ValueError:
        return
    assert 1 <= len(ok) <= 3
    for a in ok:
        assert getaddresses([a]) == [("", a)] and a.isascii() and a.isprintable() and " " not in a
