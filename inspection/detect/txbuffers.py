"""The sticky buffers a transaction offers to rules: HTTP request and response
fields and TLS handshake fields, each encoded once as the bytes rules match.

Split from the inspector, which decides when a transaction is inspected;
this module only says what its buffers hold.
"""
from __future__ import annotations

from typing import overload

from inspection.applayer.http_tx import HttpTransaction
from inspection.applayer.tls import TlsRecord
from signatures.buffers import Buffer


# A str always gives bytes: callers that pass one need no None test
@overload
def field_bytes(s: str) -> bytes: ...
@overload
def field_bytes(s: str | None) -> bytes | None: ...


def field_bytes(s: str | None) -> bytes | None:
    """A header name or value as rules see it (latin-1, unmappable characters as "?")."""
    return None if s is None else s.encode("latin-1", "replace")


def _headers(pairs: tuple[tuple[str, str], ...], skip: frozenset[str] = frozenset()) -> bytes:
    return b"".join(field_bytes(f"{n}: {v}\r\n") for n, v in pairs if n.lower() not in skip)


def _names(pairs: tuple[tuple[str, str], ...]) -> bytes | None:
    """``http.header_names``: CRLF, then each name and CRLF, then CRLF."""
    return b"\r\n" + b"".join(field_bytes(n) + b"\r\n" for n, _ in pairs) + b"\r\n" if pairs else None


class _Fields:
    """A message's header lines encoded once (the header buffers, http.start and the single-header
    buffers all derive from them): the raw block and the first value of each lowercased name."""

    __slots__ = ("pairs", "raw", "first")

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self.pairs = pairs
        self.raw: bytes = field_bytes("".join(f"{n}: {v}\r\n" for n, v in pairs))
        first: dict[str, str] = {}
        for n, v in pairs:
            first.setdefault(n.lower(), v)
        self.first = first

    def get(self, name: str) -> bytes | None:
        return field_bytes(self.first.get(name))

    def without(self, name: str) -> bytes | None:
        """The block without the lines called `name` (``http.header`` leaves the cookies out)."""
        return (self.raw if name not in self.first else _headers(self.pairs, frozenset({name}))) or None

    def start(self, line: str | None) -> bytes | None:
        """``http.start``: the start line and the headers, as Suricata builds it."""
        return None if line is None else field_bytes(line) + b"\r\n" + self.raw + b"\r\n"


def http_request_buffers(tx: HttpTransaction) -> dict[Buffer, bytes]:
    f = _Fields(tx.request_headers)
    out: dict[Buffer, bytes | None] = {
        Buffer.HTTP_URI: field_bytes(tx.normalized_uri or tx.uri),
        Buffer.HTTP_URI_RAW: field_bytes(tx.uri),
        Buffer.HTTP_HOST: field_bytes(tx.host.lower()) if tx.host else None,
        Buffer.HTTP_HOST_RAW: f.get("host"),
        Buffer.HTTP_METHOD: field_bytes(tx.method),
        Buffer.HTTP_USER_AGENT: field_bytes(tx.user_agent),
        Buffer.HTTP_HEADER: f.without("cookie"),
        Buffer.HTTP_HEADER_RAW: f.raw or None,
        Buffer.HTTP_COOKIE: f.get("cookie"),
        Buffer.HTTP_REFERER: field_bytes(tx.referer),
        Buffer.HTTP_REQUEST_LINE: field_bytes(tx.request_line),
        Buffer.HTTP_PROTOCOL: field_bytes(tx.protocol),
        Buffer.HTTP_ACCEPT: f.get("accept"),
        Buffer.HTTP_CONNECTION: f.get("connection"),
        Buffer.HTTP_CONTENT_TYPE: f.get("content-type"),
        Buffer.HTTP_CONTENT_LEN: f.get("content-length"),
        Buffer.HTTP_START: f.start(tx.request_line),
        Buffer.HTTP_HEADER_NAMES: _names(tx.request_headers),
    }
    return {k: v for k, v in out.items() if v is not None}


def http_response_buffers(tx: HttpTransaction) -> dict[Buffer, bytes]:
    f = _Fields(tx.response_headers)
    out: dict[Buffer, bytes | None] = {
        Buffer.HTTP_STAT_CODE: field_bytes(str(tx.status)) if tx.status is not None else None,
        Buffer.HTTP_HEADER: f.without("set-cookie"),
        Buffer.HTTP_HEADER_RAW: f.raw or None,
        Buffer.HTTP_COOKIE: f.get("set-cookie"),
        Buffer.HTTP_CONTENT_TYPE: f.get("content-type"),
        Buffer.HTTP_CONTENT_LEN: f.get("content-length"),
        Buffer.HTTP_START: f.start(tx.response_line),
        Buffer.HTTP_HEADER_NAMES: _names(tx.response_headers),
        Buffer.HTTP_RESPONSE_LINE: field_bytes(tx.response_line),
        Buffer.HTTP_SERVER: f.get("server"),
        Buffer.HTTP_LOCATION: field_bytes(tx.redirect),
    }
    line = tx.response_line
    if line:
        parts = line.split(" ", 2)
        if len(parts) == 3:
            out[Buffer.HTTP_STAT_MSG] = field_bytes(parts[2])
    return {k: v for k, v in out.items() if v is not None}


def tls_buffers(rec: TlsRecord) -> dict[Buffer, bytes]:
    out: dict[Buffer, bytes | None] = {
        Buffer.TLS_SNI: field_bytes(rec.sni),
        Buffer.TLS_CERT_SUBJECT: field_bytes(rec.subject),
        Buffer.TLS_CERT_ISSUER: field_bytes(rec.issuerdn),
        Buffer.TLS_CERT_SERIAL: field_bytes(rec.serial),
        Buffer.TLS_CERT_FINGERPRINT: field_bytes(rec.fingerprint),
        Buffer.JA3_HASH: field_bytes(rec.ja3_hash),
        Buffer.JA3_STRING: field_bytes(rec.ja3),
        Buffer.JA3S_HASH: field_bytes(rec.ja3s_hash),
        Buffer.JA3S_STRING: field_bytes(rec.ja3s),
        Buffer.JA4_HASH: field_bytes(rec.ja4),
    }
    return {k: v for k, v in out.items() if v is not None}
