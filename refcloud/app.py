"""The reference cloud's HTTPS service (aiohttp): enrolment, heartbeats, idempotent ingest, commands.

Background work (mail, retention) are tasks owned by the app through
`cleanup_ctx`; the app is frozen by the runner at startup (STYLE habit 12).

One listener does both trust levels: the TLS context asks for a client
certificate but does not demand one (CERT_OPTIONAL), so a new device can
enrol over server-authenticated TLS; every other endpoint then demands a
certificate that verified against our CA, names a device (CN) and is that
device's current one (serial). A certificate from another CA, an expired
one or one without the clientAuth usage fails the TLS handshake itself.
"""
from __future__ import annotations

import asyncio
import os
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from cloudlink.protocol import (MAX_BATCH_COMPRESSED, MAX_COMMANDS, MAX_MESSAGE_BYTES, BatchAck, CommandBatch,
                                CommandResult, DecodeError, EnrolRequest, EnrolResponse, ErrorReply, FieldError,
                                Heartbeat, HeartbeatAck, LimitError, ProtocolError, decode, decode_batch, encode)
from firmware.base.atomic import write_atomic
from refcloud.ca import cert_pem, key_pem
from refcloud.errors import DeviceRefused, EnrolmentRefused, NoClientCert, RefcloudError
from refcloud.notify import NotifyConfig, SmtpSender, notify_loop
from refcloud.state import CloudState

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class CloudConfig:
    heartbeat_interval_s: int = 60
    notify: NotifyConfig | None = None    # alert and down-device mail; None: no mail
    retention_s: float = 90 * 86400.0     # SPEC section 6: detections are kept 90 days
    keepalive_s: float = 300.0    # longer than the agents' (heartbeat + 30 s): the client always closes first
    ingest_delay_s: float = 0.0   # fault injection for tests: widens the window between storing and acking
    tuf_resign_s: float = 60.0    # how often TUF metadata past half its lifetime is re-signed
    down_after_s: float = 600.0   # the portal API calls a device this long silent "down"


STATE_DIR = web.AppKey("state_dir", Path)
STATE = web.AppKey("state", CloudState)
CONFIG = web.AppKey("config", CloudConfig)
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
CLOSING = web.AppKey("closing", asyncio.Event)   # set at shutdown: long polls answer at once


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds")


def _reply(msg: object, status: int = 200) -> web.Response:
    return web.Response(body=encode(msg), status=status, content_type="application/json")


def _error(status: int, code: str, message: str) -> web.Response:
    """Messages can quote untrusted input (an unknown field's name): control characters are escaped."""
    clean = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in message)
    return _reply(ErrorReply(code, clean[:512]), status)


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    """Every refusal is a typed ErrorReply with a stable code; nothing leaks a traceback."""
    try:
        return await handler(request)
    except LimitError as e:
        return _error(413, "too_large", str(e))
    except (DecodeError, FieldError, ProtocolError) as e:
        return _error(400, "bad_message", str(e))
    except EnrolmentRefused as e:
        return _error(403, e.code, str(e))
    except DeviceRefused as e:
        return _error(403, "unknown_device", str(e))
    except NoClientCert as e:
        return _error(401, "client_cert_required", str(e))
    except RefcloudError as e:          # the store failed: the agent backs off and retries
        return _error(503, "unavailable", str(e))


def _peer_device(request: web.Request) -> str:
    """The device id of the verified client certificate, or a 401/403."""
    sslobj = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
    if not der:
        raise NoClientCert("this endpoint needs the device's client certificate")
    cert = x509.load_der_x509_certificate(der)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    device_id = str(cns[0].value) if cns else ""
    request.app[STATE].store.check_device(device_id, format(cert.serial_number, "x"))
    return device_id


async def _read(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise LimitError(f"body of {request.content_length} bytes exceeds {limit}", limit)
    return await request.read()


async def get_ca(request: web.Request) -> web.Response:
    return web.Response(body=request.app[STATE].ca.cert_pem, content_type="application/x-pem-file")


async def post_enrol(request: web.Request) -> web.Response:
    req = decode(await _read(request, MAX_MESSAGE_BYTES), EnrolRequest)
    st, now = request.app[STATE], request.app[CLOCK]()
    device_id = "dev-" + os.urandom(8).hex()
    issued: list[x509.Certificate] = []

    def issue() -> str:
        cert = st.ca.sign_device_csr(req.csr_pem, device_id, datetime.fromtimestamp(now, timezone.utc))
        issued.append(cert)
        return format(cert.serial_number, "x")
    st.store.enrol(req.code, now, device_id, req.firmware_version, issue)
    return _reply(EnrolResponse(device_id, cert_pem(issued[0]).decode("ascii"), st.command_public_b64,
                                st.tuf.root_bytes().decode("utf-8")))


async def post_heartbeat(request: web.Request) -> web.Response:
    device_id = _peer_device(request)
    hb = decode(await _read(request, MAX_MESSAGE_BYTES), Heartbeat)
    now = request.app[CLOCK]()
    request.app[STATE].store.heartbeat(device_id, hb, now)
    return _reply(HeartbeatAck(_iso(now), request.app[CONFIG].heartbeat_interval_s))


async def post_detections(request: web.Request) -> web.Response:
    device_id = _peer_device(request)
    batch = decode_batch(await _read(request, MAX_BATCH_COMPRESSED))
    for d in batch.events:
        if d.device_id is not None and d.device_id != device_id:
            raise FieldError(f"event for {d.device_id} sent by {device_id}", "device_id")
    acc, dup = request.app[STATE].store.ingest(device_id, batch.events, request.app[CLOCK]())
    delay = request.app[CONFIG].ingest_delay_s
    if delay:
        await asyncio.sleep(delay)
    return _reply(BatchAck(tuple(acc), tuple(dup)))


async def get_tuf_metadata(request: web.Request) -> web.StreamResponse:
    """TUF metadata for enrolled devices only (mutual TLS); a missing version is a 404, which ends the
    client's walk through newer root versions."""
    _peer_device(request)
    path = request.app[STATE].tuf.metadata_path(request.match_info["name"])
    if path is None:
        return _error(404, "not_found", "no such metadata")
    return web.FileResponse(path, headers={"Content-Type": "application/json", "Cache-Control": "no-store"})


async def get_tuf_target(request: web.Request) -> web.StreamResponse:
    _peer_device(request)
    path = request.app[STATE].tuf.target_path(request.match_info["name"])
    if path is None:
        return _error(404, "not_found", "no such target")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


MAX_POLL_S = 55.0


async def get_commands(request: web.Request) -> web.Response:
    """Long poll: answer as soon as the device has a pending command, or after `wait` seconds with none.
    `utm cloud command` writes from another process, so the store is looked at twice a second."""
    device_id = _peer_device(request)
    try:
        wait = min(MAX_POLL_S, max(0.0, float(request.query.get("wait", "0"))))
    except ValueError:
        raise FieldError("must be a number of seconds", "wait") from None
    st, clock = request.app[STATE], request.app[CLOCK]
    deadline = clock() + wait
    closing = request.app[CLOSING]
    while True:
        pending = st.store.pending_commands(device_id, _iso(clock()), MAX_COMMANDS)
        if pending or clock() >= deadline or closing.is_set():
            return _reply(CommandBatch(tuple(pending)))
        try:
            await asyncio.wait_for(closing.wait(), min(0.5, max(0.0, deadline - clock())))
        except TimeoutError:
            pass


async def post_command_result(request: web.Request) -> web.Response:
    device_id = _peer_device(request)
    result = decode(await _read(request, MAX_MESSAGE_BYTES), CommandResult)
    if not request.app[STATE].store.add_result(device_id, result, request.app[CLOCK]()):
        raise FieldError(f"no command {result.command_id} for this device", "command_id")
    return web.Response(status=204)


async def _state_ctx(app: web.Application) -> AsyncIterator[None]:
    """The store is opened at startup and closed at cleanup, whatever happened in between."""
    st = CloudState.open(app[STATE_DIR], app[CLOCK]())
    app[STATE] = st
    yield
    st.close()


async def _notify_ctx(app: web.Application) -> AsyncIterator[None]:
    """The mail loop is a background task owned by the app: started after the store, stopped before it."""
    cfg = app[CONFIG].notify
    if cfg is None:
        yield
        return
    stop = asyncio.Event()
    sender = SmtpSender(cfg.smtp_host, cfg.smtp_port, cfg.mail_from)
    task = asyncio.create_task(notify_loop(app[STATE].store, sender, cfg, app[CLOCK], stop))
    yield
    stop.set()
    await task


async def _retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """Hourly, and once at start: detections older than the retention period are deleted."""
    async def loop() -> None:
        while True:
            try:
                app[STATE].store.expire(app[CLOCK](), app[CONFIG].retention_s)
            except RefcloudError:
                pass            # retried next hour
            await asyncio.sleep(3600)
    task = asyncio.create_task(loop())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _tuf_ctx(app: web.Application) -> AsyncIterator[None]:
    """Re-sign TUF metadata past half its lifetime, at start and every `tuf_resign_s`: the timestamp
    lives a day, so a running cloud never serves expired metadata."""
    async def loop() -> None:
        while True:
            try:
                roles = await asyncio.to_thread(app[STATE].tuf.refresh_expiring, app[CLOCK]())
                if roles:
                    app[STATE].store.bump("tuf.resigned")
            except RefcloudError:
                app[STATE].store.bump("tuf.resign_failed")
            await asyncio.sleep(app[CONFIG].tuf_resign_s)
    task = asyncio.create_task(loop())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _closing(app: web.Application) -> None:
    app[CLOSING].set()


def make_app(state_dir: Path, config: CloudConfig = CloudConfig(), clock: Clock | None = None) -> web.Application:
    import time
    app = web.Application(client_max_size=MAX_BATCH_COMPRESSED + 1024, middlewares=[_errors])
    app[STATE_DIR] = Path(state_dir)
    app[CONFIG] = config
    app[CLOCK] = clock or time.time
    app[CLOSING] = asyncio.Event()
    app.cleanup_ctx.append(_state_ctx)
    app.cleanup_ctx.append(_notify_ctx)
    app.cleanup_ctx.append(_retention_ctx)
    app.cleanup_ctx.append(_tuf_ctx)
    app.on_shutdown.append(_closing)
    app.router.add_get("/v1/ca", get_ca)
    app.router.add_post("/v1/enrol", post_enrol)
    app.router.add_post("/v1/heartbeat", post_heartbeat)
    app.router.add_post("/v1/detections", post_detections)
    app.router.add_get("/v1/commands", get_commands)
    app.router.add_post("/v1/command-results", post_command_result)
    app.router.add_get("/tuf/metadata/{name}", get_tuf_metadata)
    app.router.add_get("/tuf/targets/{name}", get_tuf_target)
    return app


def server_names(host: str, extra: list[str]) -> list[str]:
    names = [] if host in ("", "0.0.0.0", "::") else [host]
    return names + list(extra) + ["localhost", "127.0.0.1", "::1", socket.gethostname()]


def server_ssl_context(state: CloudState, names: list[str], now: float) -> ssl.SSLContext:
    """Issue a fresh server certificate for `names`; ask for (not demand) a client cert from our CA."""
    key, cert = state.ca.issue_server(names, datetime.fromtimestamp(now, timezone.utc))
    write_atomic(state.folder / "server.key", key_pem(key), mode=0o600)
    write_atomic(state.folder / "server.pem", cert_pem(cert))   # no CA in the chain: every agent has it pinned
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.num_tickets = 0           # agents do not resume sessions; tickets would be ~500 B per connection
    ctx.load_cert_chain(state.folder / "server.pem", state.folder / "server.key")
    ctx.load_verify_locations(cadata=state.ca.cert_pem.decode("ascii"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def api_ssl_context(state: CloudState) -> ssl.SSLContext:
    """The portal API listener: the same server certificate, no client certificate asked for."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(state.folder / "server.pem", state.folder / "server.key")
    return ctx


async def serve(state_dir: Path, host: str, port: int, *, names: list[str], config: CloudConfig,
                stop: asyncio.Event, ready: Callable[[str, int], None] | None = None,
                clock: Clock | None = None, api: tuple[str, int] | None = None,
                api_ready: Callable[[str, int], None] | None = None) -> None:
    """Run until `stop` is set. `ready(host, port)` gets the bound address (port 0 picks a free one).
    With `api` (host, port), the read-only portal API (refcloud/api.py) gets its own listener and app."""
    import time

    from refcloud.api import ApiConfig, api_token, make_api_app
    clock = clock or time.time
    st = CloudState.open(state_dir, clock())
    try:
        ctx = server_ssl_context(st, server_names(host, names) + ([api[0]] if api else []), clock())
        api_ctx = api_ssl_context(st) if api else None
        token = api_token(st.folder) if api else None
    finally:
        st.close()
    runner = web.AppRunner(make_app(state_dir, config, clock), access_log=None, keepalive_timeout=config.keepalive_s)
    api_runner = web.AppRunner(make_api_app(state_dir, ApiConfig(config.down_after_s), clock, token),
                               access_log=None) if api else None
    await runner.setup()
    try:
        if api_runner is not None:
            await api_runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ctx)
        await site.start()
        bound = runner.addresses[0]
        if ready is not None:
            ready(bound[0], bound[1])
        if api_runner is not None and api is not None:
            await web.TCPSite(api_runner, api[0], api[1], ssl_context=api_ctx).start()
            if api_ready is not None:
                api_ready(*api_runner.addresses[0][:2])
        await stop.wait()
    finally:
        if api_runner is not None:
            await api_runner.cleanup()
        await runner.cleanup()
