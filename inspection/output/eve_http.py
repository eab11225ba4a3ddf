"""EVE ``http`` object of an `HttpTransaction`, in Suricata's extended field order.

Absent values are omitted, as Suricata does (no ``protocol`` for HTTP/0.9, no
``status`` before a response, ``http_port`` only when the Host header or an
absolute URI named a port); ``length`` is always present, 0 without a body.

One deliberate difference: when the request named a port, ``hostname`` keeps
it (``example.com:8080``), as the Host header, tshark and Zeek show it; the
port is also in ``http_port``. Without it two services on one host could not
be told apart by hostname alone.
"""
from __future__ import annotations

from inspection.applayer.http1 import HttpTransaction
from inspection.applayer.http_tx import Http2Info

# (EVE key, HttpTransaction attribute), in the order Suricata writes them.
_FIELDS = (
    ("hostname", "host"),
    ("http_port", "port"),
    ("url", "uri"),
    ("http_user_agent", "user_agent"),
    ("xff", "xff"),
    ("http_content_type", "content_type"),
    ("http_refer", "referer"),
    ("http_method", "method"),
    ("protocol", "protocol"),
    ("status", "status"),
    ("redirect", "redirect"),
)


def _headers(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in pairs]


def http_to_eve(tx: HttpTransaction, *, log_headers: bool = False) -> dict:
    """The value of the EVE ``http`` key for one transaction.

    `log_headers` adds Suricata's ``request_headers``/``response_headers``
    (``dump-all-headers: both``) as lists of ``{"name", "value"}``.
    """
    eve: dict = {}
    for key, attr in _FIELDS:
        value = getattr(tx, attr)
        if value is not None:
            eve[key] = value
    if tx.method is not None and tx.uri is None:
        eve["url"] = ""  # a request line with a method and no target: logged as empty, as tshark and Zeek do
    if tx.host is not None and tx.port is not None:
        eve["hostname"] = f"{tx.host}:{tx.port}"
    eve["length"] = tx.response_length
    if log_headers:
        eve["request_headers"] = _headers(tx.request_headers)
        eve["response_headers"] = _headers(tx.response_headers)
    if tx.http2 is not None:
        eve["http2"] = _http2(tx.http2)
    return eve


def _http2(h2: Http2Info) -> dict:
    """Suricata's ``http.http2``: the stream, and per direction its SETTINGS,
    RST_STREAM error code and (request) priority."""
    req: dict = {}
    resp: dict = {}
    for side, settings, error in ((req, h2.request_settings, h2.request_error),
                                  (resp, h2.response_settings, h2.response_error)):
        if settings:
            side["settings"] = [{"settings_id": n, "settings_value": v} for n, v in settings]
        if error is not None:
            side["error_code"] = error
    if h2.priority is not None:
        req["priority"] = h2.priority
    return {"stream_id": h2.stream_id, "request": req, "response": resp}
