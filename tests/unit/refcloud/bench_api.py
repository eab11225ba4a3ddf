"""Time the portal API on a synthetic store (not a test: run it by hand).

    PYTHONPATH=$PWD .venv/bin/python -m tests.unit.refcloud.bench_api DETECTIONS CUSTOMERS

Two devices per customer, detections spread over 14 days; each request is
timed 5 times through aiohttp's test server (no TLS) and the median printed.
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from refcloud.api import make_api_app
from refcloud.state import CloudState
from tests.unit.cloudlink.helpers import det

TOKEN = "t" * 43


def load(folder: Path, n: int, customers: int, now: float) -> int:
    st = CloudState.open(folder, now, create=True)
    try:
        devs = []
        for c in range(customers):
            for k in range(2):
                code = st.new_enrol_code(now, 60, f"cust{c}")
                st.store.enrol(code.secret, now, f"dev-{c:04d}-{k:04d}", "0.1.0", lambda: "s")
                devs.append(f"dev-{c:04d}-{k:04d}")
        per = n // len(devs)
        for i, d in enumerate(devs):
            for j in range(0, per, 500):
                st.store.ingest(d, tuple(det(x) for x in range(j, min(per, j + 500))),
                                now - (i * 997 + j) % (14 * 86400))
        return per * len(devs)
    finally:
        st.close()


async def timings(folder: Path) -> None:
    async with TestClient(TestServer(make_api_app(folder, token=TOKEN))) as c:
        h = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/api/stats", "/api/devices", "/api/devices/dev-0000-0000",
                     "/api/devices/dev-0000-0000/detections?limit=500",
                     "/api/devices/dev-0000-0000/detections?limit=50"):
            ts = []
            for _ in range(5):
                t = time.perf_counter()
                r = await c.get(path, headers=h)
                body = await r.read()
                ts.append(time.perf_counter() - t)
            print(f"{path}: {r.status}, {len(body)} B, median {sorted(ts)[2] * 1000:.1f} ms")

        async def timed(path: str) -> float:
            t = time.perf_counter()
            await (await c.get(path, headers=h)).read()
            return time.perf_counter() - t
        stats_task = asyncio.create_task(timed("/api/stats"))
        await asyncio.sleep(0.01)
        during = await timed("/api/devices/dev-0000-0000")
        print(f"a device's status while /api/stats runs: {during * 1000:.1f} ms "
              f"(stats {await stats_task * 1000:.1f} ms)")


def main(argv: list[str]) -> int:
    n, customers = int(argv[0]), int(argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stored = load(Path(tmp) / "c", n, customers, time.time())
        print(f"loaded {stored} detections for {customers} customers in {time.perf_counter() - t0:.1f} s")
        asyncio.run(timings(Path(tmp) / "c"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
