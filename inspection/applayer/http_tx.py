"""HTTP/1.x transactions: the logged record, the builder and its post-log stub.

`HttpTransaction` is what `http1.Http1Parser` emits (one per request/response
pair, as EVE "http" events). `TxBuilder` collects it while the messages are
parsed; `LoggedTx` is the little that must survive the record while stray
lines may still join a finished message's body (libhtp's state AFTER), so an
idle keep-alive connection does not keep the whole builder alive. `probe_http`
lives here too: dispatch asks it before any parser exists.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Generic, Literal, Protocol, TypeVar

from firmware.base.values import value
from inspection.applayer import http_headers as hh
from inspection.model import Direction

__all__ = ["Http2Info", "HttpTransaction", "LoggedTx", "TxBuilder", "probe_http"]

APP = "http"
NON_WS = re.compile(rb"[^ \t\r\n\x0b\x0c]")


def _s(b: bytes | None) -> str | None:
    return None if b is None else b.decode("latin-1")


@dataclass(frozen=True, slots=True)
class Http2Info:
    """What an HTTP/2 stream adds to its transaction (EVE ``http.http2``): the
    stream, the SETTINGS each side sent on the connection so far, the
    RST_STREAM error code each side sent and the priority weight the client gave."""

    stream_id: int
    request_settings: tuple[tuple[str, int], ...] = ()
    response_settings: tuple[tuple[str, int], ...] = ()
    request_error: str | None = None
    response_error: str | None = None
    priority: int | None = None
    request_fields: tuple[tuple[str, str], ...] = ()    # as decoded, pseudo-headers included
    response_fields: tuple[tuple[str, str], ...] = ()


@value
class HttpTransaction:
    """One HTTP request/response pair, as logged in EVE "http" events.

    Strings are the wire bytes decoded as latin-1. `uri` is the raw
    request-target, `normalized_uri` its libhtp-style normalisation (path
    percent-decoded, dot segments removed, query kept). `response_length` is
    Suricata's ``http.length``: response body bytes on the wire (chunk framing
    included, before decompression); `response_body_len` excludes framing.
    `complete` is False for a transaction flushed unfinished (gap, close).
    """

    event_type: ClassVar[str] = "http"
    tx_id: int
    direction: Direction = Direction.TO_SERVER
    method: str | None = None
    uri: str | None = None
    normalized_uri: str | None = None
    protocol: str | None = None
    request_line: str | None = None
    host: str | None = None
    port: int | None = None
    user_agent: str | None = None
    referer: str | None = None
    xff: str | None = None
    request_headers: tuple[tuple[str, str], ...] = ()
    request_body_len: int = 0
    request_body_truncated: bool = False
    status: int | None = None
    response_protocol: str | None = None
    response_line: str | None = None
    content_type: str | None = None
    redirect: str | None = None
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body_len: int = 0
    response_length: int = 0
    response_body_truncated: bool = False
    http09: bool = False
    request_seen: bool = True
    response_seen: bool = False
    complete: bool = True
    http2: Http2Info | None = None   # set for transactions of HTTP/2 streams


# Shared, read-only stand-in for the header maps of a logged transaction.
NO_MAP: MappingProxyType[bytes, list[bytes]] = MappingProxyType({})


class _Named(Protocol):
    """What `TxBuilder.filename` reads, which `LoggedTx` (sharing the method) has too."""

    @property
    def resp_map(self) -> Mapping[bytes, list[bytes]]: ...

    @property
    def norm_uri(self) -> bytes | None: ...


class TxBuilder:
    """Mutable transaction under construction."""

    __slots__ = ("tx_id", "method", "uri", "protocol", "request_line", "req_fields", "req_map", "host", "port",
                 "norm_uri", "is09", "req_done", "req_complete", "req_body_len", "req_truncated", "expect_continue",
                 "resp_seen", "status", "resp_protocol", "response_line", "resp_fields", "resp_map", "resp_done",
                 "resp_complete", "resp_body_len", "resp_message_len", "resp_truncated", "events", "emitted",
                 "request_seen")

    # Typed here: `__init__` sets them to None in chains, which cannot carry annotations.
    method: bytes | None
    uri: bytes | None
    protocol: bytes | None
    request_line: bytes | None
    host: bytes | None
    norm_uri: bytes | None
    resp_protocol: bytes | None
    response_line: bytes | None

    def __init__(self, tx_id: int) -> None:
        self.tx_id = tx_id
        self.method = self.uri = self.protocol = self.request_line = self.host = self.norm_uri = None
        self.resp_protocol = self.response_line = None
        self.port: int | None = None
        self.status: int | None = None
        self.req_fields: list[tuple[bytes, bytes]] = []
        self.resp_fields: list[tuple[bytes, bytes]] = []
        self.req_map: dict[bytes, list[bytes]] = {}
        self.resp_map: dict[bytes, list[bytes]] = {}
        self.is09 = self.req_done = self.req_complete = self.req_truncated = self.expect_continue = False
        self.resp_seen = self.resp_done = self.resp_complete = self.resp_truncated = self.emitted = False
        self.request_seen = True
        self.req_body_len = self.resp_body_len = self.resp_message_len = 0
        self.events: set[str] | None = None   # anomaly names already raised (created on first)

    def filename(self: _Named, response: bool) -> str | None:
        """A body's file name as Suricata gives it: a response's Content-Disposition
        filename, else (and always for a request body) the request path."""
        cd = self.resp_map.get(b"content-disposition") if response else None
        name = hh.content_disposition_filename(cd[0]) if cd else None
        if name is None and self.norm_uri is not None:
            name = self.norm_uri.partition(b"?")[0] or None
        return _s(name)

    def record(self) -> HttpTransaction:
        req, resp = self.req_map, self.resp_map
        ua, ref, xff = req.get(b"user-agent"), req.get(b"referer"), req.get(b"x-forwarded-for")
        ctype, loc = resp.get(b"content-type"), resp.get(b"location")
        return HttpTransaction(
            tx_id=self.tx_id, method=_s(self.method), uri=_s(self.uri), normalized_uri=_s(self.norm_uri),
            protocol=_s(self.protocol), request_line=_s(self.request_line), host=_s(self.host), port=self.port,
            user_agent=_s(ua[0]) if ua else None, referer=_s(ref[0]) if ref else None,
            xff=_s(xff[0]) if xff else None,
            request_headers=tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in self.req_fields),
            request_body_len=self.req_body_len, request_body_truncated=self.req_truncated,
            status=self.status, response_protocol=_s(self.resp_protocol), response_line=_s(self.response_line),
            content_type=_s(ctype[0].split(b";", 1)[0].strip()) if ctype else None,
            redirect=_s(loc[0]) if loc else None,
            response_headers=tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in self.resp_fields),
            response_body_len=self.resp_body_len, response_length=self.resp_message_len,
            response_body_truncated=self.resp_truncated, http09=self.is09, request_seen=self.request_seen,
            response_seen=self.resp_seen, complete=self.req_complete and self.resp_complete,
        )


_T = TypeVar("_T")


class _Dropped(Generic[_T]):
    """Class attribute of `LoggedTx` that reads as `value` and ignores writes."""

    __slots__ = ("value",)

    def __init__(self, value: _T) -> None:
        self.value = value

    def __get__(self, obj: object, owner: type | None = None) -> _T:
        return self.value

    def __set__(self, obj: object, value: _T) -> None:
        pass


class LoggedTx:
    """Stand-in for a logged `TxBuilder` that a side still holds in state AFTER.

    Until the next start line, stray lines join the finished message's body
    (libhtp), so the side needs a transaction: its id, the path the body
    chunks take their filename from (the header maps were released at logging,
    so only the path is left), and the anomaly names already raised. Nothing
    else can change what was logged: the counters and flags the parser still
    updates in passing are dropped here, and the method is never CONNECT (a
    CONNECT request ends at once, it never waits in AFTER). About a fifth of
    the builder, without the request and status lines it referenced.
    """

    __slots__ = ("tx_id", "norm_uri", "events")

    emitted: Literal[True] = True   # so where `emitted` is false, mypy knows the transaction is a TxBuilder
    method = None
    is09 = False
    req_map = resp_map = NO_MAP
    req_body_len = resp_body_len = resp_message_len = _Dropped(0)
    req_truncated = resp_truncated = _Dropped(False)
    req_done = req_complete = resp_done = resp_complete = _Dropped(True)
    filename = TxBuilder.filename

    def __init__(self, tx: TxBuilder) -> None:
        self.tx_id, self.norm_uri, self.events = tx.tx_id, tx.norm_uri, tx.events


def probe_http(data: bytes, direction: Direction) -> bool | None:
    """Does a stream starting with `data` look like HTTP/1.x? None: too few bytes to tell."""
    start = NON_WS.search(data)
    if start is None:
        return None if len(data) < 64 else False
    pos = start.start()
    if direction is Direction.TO_SERVER:
        return hh.looks_like_request_line(data, pos, final=False)
    head = data[pos : pos + 5].upper()
    if head == b"HTTP/":
        return True
    return None if b"HTTP/".startswith(head) else False
