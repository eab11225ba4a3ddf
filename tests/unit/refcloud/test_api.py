"""The portal API (refcloud/api.py): auth, each endpoint, paging, 400/404, the all-customer average."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import ssl
import stat
import threading
from datetime import datetime, timezone

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloudlink.protocol import Detection, Heartbeat, LinkState
from firmware.cli.main import main
from refcloud.api import MAX_LIMIT, ApiConfig, api_token, make_api_app, stats
from refcloud.errors import BadParameter, CloudStateError
from refcloud.state import CloudState
from refcloud.store import CloudStore
from tests.unit.cloudlink.helpers import det

NOW = 1_800_000_000.0
DAY = 86400.0
TOKEN = "t" * 43
ALLOWED = set(Detection.__dataclass_fields__) | {"id", "received"}


def _enrol(st: CloudState, customer: str, n: int, when: float) -> str:
    code = st.new_enrol_code(when, 3600, customer)
    dev = f"dev-{customer}-{n}"
    st.store.enrol(code.secret, when, dev, "0.1.0", lambda: f"serial{customer}{n}")
    return dev


@pytest.fixture
def cloud(tmp_path):
    """acme: two devices, beta: one, quiet: one device that never sent a detection."""
    folder = tmp_path / "c"
    st = CloudState.open(folder, NOW - 30 * DAY, create=True)
    try:
        a1, a2 = _enrol(st, "acme", 1, NOW - 30 * DAY), _enrol(st, "acme", 2, NOW - 30 * DAY)
        b1, _ = _enrol(st, "beta", 1, NOW - 30 * DAY), _enrol(st, "quiet", 1, NOW - 30 * DAY)
        # acme: 3 in the last 24 h (over both devices), 2 more within 7 d, 1 older
        for i, age in enumerate((1.0, 2.0, 3.0, 3 * DAY, 5 * DAY, 10 * DAY)):
            st.store.ingest(a1 if i != 1 else a2, (det(i),), NOW - age)
        # beta: 1 in the last 24 h, 4 within 7 d
        for i, age in enumerate((60.0, 2 * DAY, 2 * DAY, 6 * DAY)):
            st.store.ingest(b1, (det(100 + i, stars=2),), NOW - age)
        st.store.heartbeat(a1, Heartbeat("2026-11-22T10:00:00.000000+00:00", "0.2.0", 77, LinkState.UP,
                                         "2026.11.22.1", 0.97, "nfqueue: 3 packets dropped",
                                         (("packets", 10),)), NOW - 30)
    finally:
        st.close()
    return folder


def _run(folder, fn, token=TOKEN, clock=lambda: NOW):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        app = make_api_app(folder, ApiConfig(down_after_s=600), clock, token)
        async with TestClient(TestServer(app)) as client:
            return await fn(client)
    return asyncio.run(go())


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _get(client, path, headers=None):  # type: ignore[no-untyped-def]
    r = await client.get(path, headers=_auth() if headers is None else headers)
    return r.status, await r.json()


def test_every_endpoint_needs_the_token(cloud):
    async def fn(c):  # type: ignore[no-untyped-def]
        out = []
        for path in ("/api/devices", "/api/devices/dev-acme-1", "/api/devices/dev-acme-1/detections",
                     "/api/stats", "/api/nothing-here"):
            for h in ({}, _auth("x" * 43), _auth(TOKEN + "x"), {"Authorization": f"Basic {TOKEN}"},
                      {"Authorization": TOKEN}):
                r = await c.get(path, headers=h)
                out.append((r.status, r.headers.get("WWW-Authenticate"), (await r.json())["code"]))
        ok = (await c.get("/api/devices", headers=_auth())).status
        return out, ok
    out, ok = _run(cloud, fn)
    assert set(out) == {(401, "Bearer", "unauthorized")} and len(out) == 25
    assert ok == 200


def test_devices_list_with_customers(cloud):
    status, body = _run(cloud, lambda c: _get(c, "/api/devices"))
    assert status == 200
    assert [(d["id"], d["customer"]) for d in body["devices"]] == [
        ("dev-acme-1", "acme"), ("dev-acme-2", "acme"), ("dev-beta-1", "beta"), ("dev-quiet-1", "quiet")]


def test_device_status_up_and_down(cloud):
    async def fn(c):  # type: ignore[no-untyped-def]
        return [await _get(c, f"/api/devices/{d}") for d in ("dev-acme-1", "dev-quiet-1", "dev-nope")]
    (s1, up), (s2, never), (s3, missing) = _run(cloud, fn)
    assert (s1, up["status"], up["last_heartbeat"], up["firmware"]) == (
        200, "up", "2026-11-22T10:00:00.000000+00:00", "0.2.0")
    assert (up["definitions_version"], up["inspected_share"], up["last_error"], up["customer"]) == (
        "2026.11.22.1", 0.97, "nfqueue: 3 packets dropped", "acme")
    assert s2 == 200 and never["status"] == "down" and never["last_seen"] is None and never["last_error"] is None
    assert (s3, missing["code"]) == (404, "unknown_device")
    # the same device 11 minutes later: silent longer than down_after_s
    _, later = _run(cloud, lambda c: _get(c, "/api/devices/dev-acme-1"), clock=lambda: NOW + 660)
    assert later["status"] == "down"


def test_detections_paged_newest_first(cloud):
    async def fn(c):  # type: ignore[no-untyped-def]
        pages, before = [], None
        while True:
            q = "limit=2" + (f"&before={before}" if before else "")
            status, body = await _get(c, f"/api/devices/dev-acme-1/detections?{q}")
            assert status == 200
            pages.append(body["detections"])
            before = body["next_before"]
            if before is None:
                return pages
    pages = _run(cloud, fn)
    assert [len(p) for p in pages] == [2, 2, 1]
    rows = [d for p in pages for d in p]
    assert [d["key"] for d in rows] == ["k00000005", "k00000004", "k00000003", "k00000002", "k00000000"]
    assert [d["id"] for d in rows] == sorted((d["id"] for d in rows), reverse=True)
    assert all(set(d) <= ALLOWED and d["device_id"] == "dev-acme-1" for d in rows)


def test_detections_since_and_exact_last_page(cloud):
    since = datetime.fromtimestamp(NOW - 3600, timezone.utc).isoformat()
    async def fn(c):  # type: ignore[no-untyped-def]
        a = await _get(c, f"/api/devices/dev-acme-1/detections?since={since.replace('+', '%2B')}")
        b = await _get(c, "/api/devices/dev-beta-1/detections?limit=4")
        return a, b
    (s1, recent), (s2, beta) = _run(cloud, fn)
    assert s1 == 200 and [d["key"] for d in recent["detections"]] == ["k00000002", "k00000000"]
    assert s2 == 200 and len(beta["detections"]) == 4 and beta["next_before"] is None   # exactly one full page


@pytest.mark.parametrize("query", ["limit=0", f"limit={MAX_LIMIT + 1}", "limit=abc", "limit=-1", "limit=1e3",
                                   "before=0", "before=x", "since=yesterday", "since=2026-11-22T10:00:00",
                                   "offset=3", "limit=%EF%BC%91"])
def test_bad_parameters_are_400(cloud, query):
    status, body = _run(cloud, lambda c: _get(c, f"/api/devices/dev-acme-1/detections?{query}"))
    assert (status, body["code"]) == (400, "bad_parameter")


def test_other_refusals(cloud):
    async def fn(c):  # type: ignore[no-untyped-def]
        return [await _get(c, p) for p in ("/api/devices?x=1", "/api/stats?customer=No%20Such",
                                           "/api/stats?customer=nobody", "/api/devices/dev-nope/detections",
                                           "/api/nothing")] + \
            [((r := await c.post("/api/devices", headers=_auth())).status, await r.json())]
    got = [(s, b["code"]) for s, b in _run(cloud, fn)]
    assert got == [(400, "bad_parameter"), (400, "bad_parameter"), (404, "unknown_customer"),
                   (404, "unknown_device"), (404, "not_found"), (405, "method_not_allowed")]


def test_a_stored_row_that_does_not_decode_is_a_503_not_a_traceback(cloud):
    db = sqlite3.connect(cloud / "cloud.sqlite")
    db.execute("UPDATE detections SET body = '{\"key\": 1}' WHERE device_id = 'dev-beta-1'")
    db.commit()
    db.close()
    status, body = _run(cloud, lambda c: _get(c, "/api/devices/dev-beta-1/detections"))
    assert (status, body["code"]) == (503, "unavailable") and "does not decode" in body["message"]


def test_stats_average_over_all_customers(cloud):
    async def fn(c):  # type: ignore[no-untyped-def]
        return await _get(c, "/api/stats"), await _get(c, "/api/stats?customer=beta")
    (s1, full), (s2, beta) = _run(cloud, fn)
    assert s1 == 200 and full["customers"] == [{"customer": "acme", "24h": 3, "7d": 5},
                                               {"customer": "beta", "24h": 1, "7d": 4},
                                               {"customer": "quiet", "24h": 0, "7d": 0}]
    assert full["average"] == {"24h": round(4 / 3, 3), "7d": 3.0} and full["customer_count"] == 3
    assert s2 == 200 and beta["customers"] == [{"customer": "beta", "24h": 1, "7d": 4}]
    assert beta["average"] == full["average"]      # a customer sees where they stand against everyone


def test_stats_pure():
    assert stats({}) == {"customers": [], "average": {"24h": 0.0, "7d": 0.0}, "customer_count": 0,
                         "counted_by": "received"}
    assert stats({"a": [10, 20], "b": [0, 1]})["average"] == {"24h": 5.0, "7d": 10.5}


def test_token_file_made_0600_once_and_checked(tmp_path):
    CloudState.open(tmp_path, NOW, create=True).close()
    tok = api_token(tmp_path)
    assert len(tok) >= 32 and api_token(tmp_path) == tok
    assert stat.S_IMODE(os.stat(tmp_path / "api.token").st_mode) == 0o600
    os.chmod(tmp_path / "api.token", 0o644)
    with pytest.raises(CloudStateError):
        api_token(tmp_path)
    os.chmod(tmp_path / "api.token", 0o600)
    (tmp_path / "api.token").write_text("short\n")
    with pytest.raises(CloudStateError):
        api_token(tmp_path)


def test_old_store_gets_the_customer_column(tmp_path):
    db = sqlite3.connect(tmp_path / "cloud.sqlite")
    db.executescript("CREATE TABLE devices (id TEXT PRIMARY KEY, serial TEXT NOT NULL, enrolled REAL NOT NULL, "
                     "firmware TEXT NOT NULL, last_seen REAL, heartbeat TEXT, heartbeats INTEGER NOT NULL DEFAULT 0);"
                     "CREATE TABLE codes (hash TEXT PRIMARY KEY, created REAL NOT NULL, expires REAL NOT NULL, "
                     "used REAL, device_id TEXT);"
                     "INSERT INTO devices (id, serial, enrolled, firmware) VALUES ('dev-old', 's', 1.0, '0.1.0');")
    db.close()
    store = CloudStore(tmp_path / "cloud.sqlite")
    try:
        assert [(d.id, d.customer) for d in store.devices()] == [("dev-old", "default")]
        with pytest.raises(BadParameter):
            store.add_code("x", 1.0, 60, "Bad Name")
    finally:
        store.close()


def test_cli_enroll_code_customer_and_api_token(tmp_path, capsys):
    assert main(["cloud", "enroll-code", "--state", str(tmp_path / "c"), "--customer", "Acme Inc"]) == 2
    assert "customer" in capsys.readouterr().err
    assert main(["cloud", "api-token", "--state", str(tmp_path / "c")]) == 2      # no state yet
    assert main(["cloud", "enroll-code", "--state", str(tmp_path / "c"), "--customer", "acme"]) == 0
    capsys.readouterr()
    assert main(["cloud", "api-token", "--state", str(tmp_path / "c")]) == 0
    assert capsys.readouterr().out.strip() == (tmp_path / "c" / "api.token").read_text().strip()
    assert main(["cloud", "serve", "--state", str(tmp_path / "c"), "--listen", "127.0.0.1:0",
                 "--api", "127.0.0.1:x"]) == 2


def test_real_listeners_keep_the_two_paths_apart(tmp_path):
    """serve() with --api: the API answers over TLS on its own port; neither port serves the other's paths."""
    import time
    from refcloud.app import CloudConfig, serve
    cloud, now = tmp_path / "c", time.time()
    st = CloudState.open(cloud, now, create=True)
    try:
        for customer in ("acme", "beta", "gamma"):
            st.store.ingest(_enrol(st, customer, 1, now), (det(1),), now)
    finally:
        st.close()
    ports: dict[str, int] = {}
    token = api_token(cloud)

    async def go():  # type: ignore[no-untyped-def]
        stop = asyncio.Event()
        task = asyncio.create_task(serve(cloud, "127.0.0.1", 0, names=[], config=CloudConfig(), stop=stop,
                                         ready=lambda h, p: ports.setdefault("dev", p), api=("127.0.0.1", 0),
                                         api_ready=lambda h, p: ports.setdefault("api", p)))
        try:
            for _ in range(100):
                if "api" in ports:
                    break
                await asyncio.sleep(0.05)
            ctx = ssl.create_default_context(cafile=str(cloud / "ca.pem"))
            async with aiohttp.ClientSession() as s:
                api, dev = f"https://127.0.0.1:{ports['api']}", f"https://127.0.0.1:{ports['dev']}"
                async with s.get(api + "/api/stats", headers=_auth(token), ssl=ctx) as r:
                    body = await r.json()
                    stats_ok = r.status, body["customer_count"], body["average"]["24h"]
                async with s.get(api + "/api/stats", ssl=ctx) as r:
                    no_token = r.status
                async with s.get(api + "/v1/ca", headers=_auth(token), ssl=ctx) as r:
                    device_path_on_api = r.status
                async with s.get(dev + "/api/stats", headers=_auth(token), ssl=ctx) as r:
                    api_path_on_dev = r.status
        finally:
            stop.set()
            await task
        return stats_ok, no_token, device_path_on_api, api_path_on_dev
    assert threading.current_thread() is threading.main_thread()
    assert asyncio.run(go()) == ((200, 3, 1.0), 401, 404, 404)
