"""Time the per-customer alert mail round on a synthetic store (not a test: run it by hand).

    PYTHONPATH=$PWD .venv/bin/python -m tests.unit.refcloud.bench_notify STORED CUSTOMERS NEW

Two devices per customer; STORED detections already mailed, then NEW ones
spread over every customer; each round goes through a real SMTP server
(aiosmtpd on loopback) and is timed once: the burst (one mail per
customer), a round with nothing new, and a round where one customer has one
new detection and every other customer is due but quiet.
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path


from refcloud.notify import NotifyConfig, SmtpSender, notify_once
from refcloud.state import CloudState
from refcloud.store import LEGACY_ALERT_CURSOR
from tests.unit.cloudlink.helpers import det
from tests.unit.refcloud.smtp_server import smtp_server


class _Count:
    def __init__(self) -> None:
        self.n = 0

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd hook
        self.n += 1
        return "250 OK"


def _ingest(st: CloudState, devs: list[str], n: int, base: int, now: float) -> None:
    per = max(1, n // len(devs))
    for i, d in enumerate(devs):
        for j in range(0, per, 500):
            st.store.ingest(d, tuple(det(base + i * per + x, stars=x % 4) for x in range(j, min(per, j + 500))), now)


def main(stored: int, customers: int, new: int) -> None:
    inbox = _Count()
    with smtp_server(inbox) as port:
        _rounds(inbox, port, stored, customers, new)


def _rounds(inbox: "_Count", port: int, stored: int, customers: int, new: int) -> None:
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        st = CloudState.open(Path(tmp), now, create=True)
        try:
            devs = []
            for c in range(customers):
                for k in range(2):
                    code = st.new_enrol_code(now, 60, f"cust{c}")
                    st.store.enrol(code.secret, now, f"dev-{c:04d}-{k}", "0.1.0", lambda: "s")
                    devs.append(f"dev-{c:04d}-{k}")
            _ingest(st, devs, stored, 0, now)
            st.store.set_meta(LEGACY_ALERT_CURSOR, st.store.detection_count() and max(
                r.id for r in st.store.detections()))
            _ingest(st, devs, new, 10_000_000, now)
            cfg = NotifyConfig("127.0.0.1", port, ("ops@example.net",), alert_interval_s=60)
            sender = SmtpSender("127.0.0.1", port, "cloud@example.net")
            for label, at, prep in (("burst", now, None), ("nothing new", now + 60, None),
                                    ("one customer new, the rest quiet", now + 120,
                                     lambda: st.store.ingest(devs[0], (det(20_000_000),), now + 100))):
                if prep:
                    prep()
                before = inbox.n
                t = time.perf_counter()
                asyncio.run(notify_once(st.store, sender, cfg, at))
                print(f"{label}: {inbox.n - before} mails, {time.perf_counter() - t:.3f} s")
        finally:
            st.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
