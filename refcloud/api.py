"""The reference cloud's read-only JSON API for the portal and operators (`utm cloud serve --api`).

A separate aiohttp app on its own listener, never on the devices' mutual-TLS
path: it serves server-authenticated TLS with the same server certificate
(clients pin DIR/ca.pem) and demands a bearer token kept in DIR/api.token
(0600, made on first use). It opens its own connection to the store and
only reads it. Pure helpers (parameter parsing, status, averages) take their
inputs and the time; the handlers do the I/O.
"""
from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from firmware.base.atomic import write_atomic
from refcloud.errors import BadParameter, CloudStateError, RefcloudError
from refcloud.store import CloudStore, DeviceRow, StoredDetection, check_customer

Clock = Callable[[], float]

TOKEN_FILE = "api.token"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500                   # one page; the next is asked for with `before`
WINDOWS = (("24h", 86400.0), ("7d", 7 * 86400.0))


@dataclass(frozen=True, slots=True)
class ApiConfig:
    down_after_s: float = 600.0   # a device not heard from for this long is "down" (as the mail watcher)

    def __post_init__(self) -> None:
        if not self.down_after_s > 0:
            raise ValueError("down_after_s must be positive")


API_STORE = web.AppKey("api_store", CloudStore)
STATS_STORE = web.AppKey("stats_store", CloudStore)    # used from one worker thread at a time (STATS_LOCK)
STATS_LOCK = web.AppKey("stats_lock", asyncio.Lock)
API_DIR = web.AppKey("api_dir", Path)
API_TOKEN = web.AppKey("api_token", bytes)
API_CONFIG = web.AppKey("api_config", ApiConfig)
API_CLOCK: web.AppKey[Clock] = web.AppKey("api_clock")


def api_token(folder: Path) -> str:
    """The bearer token in DIR/api.token, made (0600) on first use; rotate it by deleting the file."""
    path = Path(folder) / TOKEN_FILE
    try:
        if not path.exists():
            write_atomic(path, (secrets.token_urlsafe(32) + "\n").encode("ascii"), mode=0o600)
        if path.stat().st_mode & 0o077:
            raise CloudStateError(f"{path}: readable by others; chmod 600 it")
        token = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise CloudStateError(f"{path}: {getattr(e, 'strerror', None) or e}") from None
    if len(token) < 32:
        raise CloudStateError(f"{path}: token too short (at least 32 characters)")
    return token


# --- pure helpers ------------------------------------------------------------------------------

def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds")


def parse_page(query: Mapping[str, str]) -> tuple[int, float | None, int | None]:
    """(limit, since as epoch seconds, before id) from ?limit=&since=&before=; anything else is a 400."""
    unknown = sorted(set(query) - {"limit", "since", "before"})
    if unknown:
        raise BadParameter("unknown parameter", unknown[0][:64])
    limit = _int(query.get("limit", str(DEFAULT_LIMIT)), "limit", 1, MAX_LIMIT)
    before = _int(query["before"], "before", 1, 2**62) if "before" in query else None
    since = None
    if "since" in query:
        try:
            dt = datetime.fromisoformat(query["since"][:40])
        except ValueError:
            raise BadParameter("must be an ISO 8601 time with an offset", "since") from None
        if dt.tzinfo is None:
            raise BadParameter("must be an ISO 8601 time with an offset", "since")
        since = dt.timestamp()
    return limit, since, before


def _int(text: str, name: str, lo: int, hi: int) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 19 or not lo <= int(text) <= hi:
        raise BadParameter(f"must be an integer {lo}..{hi}", name)
    return int(text)


def device_summary(d: DeviceRow) -> dict:
    return {"id": d.id, "customer": d.customer, "enrolled": _iso(d.enrolled), "firmware": d.firmware}


def device_status(d: DeviceRow, now: float, down_after_s: float) -> dict:
    """Up when heard from (heartbeat or upload) within `down_after_s`; the rest from its last heartbeat."""
    hb = d.heartbeat or {}
    up = d.last_seen is not None and now - d.last_seen <= down_after_s
    return {**device_summary(d), "status": "up" if up else "down", "last_seen": _iso(d.last_seen),
            "last_heartbeat": hb.get("sent_at"), "heartbeats": d.heartbeats,
            "definitions_version": hb.get("definitions_version"), "last_error": hb.get("last_error"),
            "inspected_share": hb.get("inspected_share"), "link_state": hb.get("link_state"),
            "uptime_s": hb.get("uptime_s")}


def detection_json(row: StoredDetection) -> dict:
    """Only the allowlisted fields (Detection.to_json is exactly SPEC section 6), plus when we got it."""
    return {**row.detection.to_json(), "device_id": row.device_id, "id": row.id, "received": _iso(row.received)}


def stats(counts: Mapping[str, list[int]], only: str | None = None) -> dict:
    """Per-customer counts for each window and their mean over all customers (quiet ones count as 0)."""
    n = len(counts)
    average = {name: (round(sum(c[i] for c in counts.values()) / n, 3) if n else 0.0)
               for i, (name, _) in enumerate(WINDOWS)}
    rows = [{"customer": c, **{name: v[i] for i, (name, _) in enumerate(WINDOWS)}}
            for c, v in sorted(counts.items()) if only is None or c == only]
    return {"customers": rows, "average": average, "customer_count": n, "counted_by": "received"}


# --- handlers ----------------------------------------------------------------------------------

def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _error(status: int, code: str, message: str) -> web.Response:
    clean = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in message)[:512]
    return _json({"code": code, "message": clean}, status)


@web.middleware
async def _guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    """The token first (compared in constant time), then typed errors as JSON; never a traceback."""
    auth = request.headers.get("Authorization", "")
    scheme, _, given = auth.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "replace"),
                                                             request.app[API_TOKEN]):
        resp = _error(401, "unauthorized", "a bearer token is needed (`utm cloud api-token --state DIR`)")
        resp.headers["WWW-Authenticate"] = "Bearer"
        return resp
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status == 404:
            return _error(404, "not_found", "no such endpoint")
        if e.status == 405:
            return _error(405, "method_not_allowed", "the API is read-only: GET only")
        raise
    except BadParameter as e:
        return _error(400, "bad_parameter", str(e))
    except RefcloudError as e:
        return _error(503, "unavailable", str(e))


def _device_or_404(request: web.Request) -> DeviceRow | web.Response:
    d = request.app[API_STORE].device(request.match_info["id"])
    return _error(404, "unknown_device", "no such device") if d is None else d


async def get_devices(request: web.Request) -> web.Response:
    if request.query:
        raise BadParameter("unknown parameter", sorted(request.query)[0][:64])
    return _json({"devices": [device_summary(d) for d in request.app[API_STORE].devices()]})


async def get_device(request: web.Request) -> web.Response:
    if request.query:
        raise BadParameter("unknown parameter", sorted(request.query)[0][:64])
    d = _device_or_404(request)
    if isinstance(d, web.Response):
        return d
    return _json(device_status(d, request.app[API_CLOCK](), request.app[API_CONFIG].down_after_s))


async def get_detections(request: web.Request) -> web.Response:
    limit, since, before = parse_page(request.query)
    d = _device_or_404(request)
    if isinstance(d, web.Response):
        return d
    rows = request.app[API_STORE].detections_page(d.id, limit=limit, since=since, before_id=before)
    more = len(rows) == limit and bool(request.app[API_STORE].detections_page(
        d.id, limit=1, since=since, before_id=rows[-1].id))
    return _json({"device_id": d.id, "detections": [detection_json(r) for r in rows],
                  "next_before": rows[-1].id if more else None})


async def get_stats(request: web.Request) -> web.Response:
    unknown = sorted(set(request.query) - {"customer"})
    if unknown:
        raise BadParameter("unknown parameter", unknown[0][:64])
    only = check_customer(request.query["customer"]) if "customer" in request.query else None
    # linear in the detections of the last 7 days (0.6 s for a million): off the event loop, which the
    # devices' listener shares, one at a time on a connection of its own
    async with request.app[STATS_LOCK]:
        counts = await asyncio.to_thread(request.app[STATS_STORE].customer_counts, tuple(w for _, w in WINDOWS),
                                         request.app[API_CLOCK]())
    if only is not None and only not in counts:
        return _error(404, "unknown_customer", "no device belongs to this customer")
    return _json(stats(counts, only))


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    """Its own connection to the store (WAL: reads do not block the ingest listener)."""
    if not (app[API_DIR] / "ca.pem").exists():
        raise CloudStateError(f"{app[API_DIR]}: not a cloud state folder")
    store = CloudStore(app[API_DIR] / "cloud.sqlite")
    try:
        app[STATS_STORE] = CloudStore(app[API_DIR] / "cloud.sqlite")
    except RefcloudError:
        store.close()
        raise
    app[API_STORE], app[STATS_LOCK] = store, asyncio.Lock()
    yield
    app[STATS_STORE].close()
    store.close()


def make_api_app(state_dir: Path, config: ApiConfig = ApiConfig(), clock: Clock | None = None,
                 token: str | None = None) -> web.Application:
    import time
    app = web.Application(client_max_size=4096, middlewares=[_guard])
    app[API_DIR] = Path(state_dir)
    app[API_TOKEN] = (token if token is not None else api_token(Path(state_dir))).encode("utf-8")
    app[API_CONFIG] = config
    app[API_CLOCK] = clock or time.time
    app.cleanup_ctx.append(_store_ctx)
    app.router.add_get("/api/devices", get_devices, allow_head=False)
    app.router.add_get("/api/devices/{id}", get_device, allow_head=False)
    app.router.add_get("/api/devices/{id}/detections", get_detections, allow_head=False)
    app.router.add_get("/api/stats", get_stats, allow_head=False)
    return app

