"""The TUF fetcher over the agent's mutual-TLS link: the one narrow seam between python-tuf and the network.

URLs handed to the Updater are `utm-cloud:/tuf/...`; this fetcher maps the
path onto the cloud's endpoints (8443, then 443; the one that answered last
first) with the device's client certificate and only the pinned CA. It is
synchronous (python-tuf's Updater is); the agent runs a check in a thread.
Bytes are yielded in chunks so python-tuf's length limits stop endless data.
"""
from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.ngclient.fetcher import FetcherInterface

SCHEME = "utm-cloud:"
CHUNK = 65536


class MtlsFetcher(FetcherInterface):
    """One HTTPS connection per endpoint, kept for the fetcher's life (one check): a check with nothing new
    costs one TLS handshake, not one per file."""

    def __init__(self, endpoints: tuple[str, ...], ssl_ctx: ssl.SSLContext, *, timeout_s: float = 30.0) -> None:
        if not endpoints:
            raise ValueError("no endpoints")
        self._endpoints = endpoints
        self._ssl = ssl_ctx
        self._timeout = timeout_s
        self._conns: dict[str, http.client.HTTPSConnection] = {}
        self.endpoint: str | None = None
        self.bytes_received = 0          # payload bytes (TLS and HTTP headers not counted)
        self.requests = 0

    def close(self) -> None:
        for c in self._conns.values():
            c.close()
        self._conns.clear()

    def _conn(self, ep: str) -> http.client.HTTPSConnection:
        c = self._conns.get(ep)
        if c is None:
            u = urlsplit(ep)
            c = http.client.HTTPSConnection(u.hostname or "", u.port or 443, context=self._ssl,
                                            timeout=self._timeout)
            self._conns[ep] = c
        return c

    def _request(self, ep: str, path: str) -> http.client.HTTPResponse:
        for attempt in (0, 1):             # a kept connection the server closed meanwhile: reconnect once
            c = self._conn(ep)
            try:
                c.request("GET", path, headers={"Accept-Encoding": "identity"})
                return c.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                c.close()
                self._conns.pop(ep, None)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith(SCHEME + "/"):
            raise DownloadError(f"not a cloud URL: {url}")
        path = url[len(SCHEME):]
        order = self._endpoints
        if self.endpoint in order:
            order = (self.endpoint,) + tuple(e for e in order if e != self.endpoint)
        last: Exception | None = None
        for ep in order:
            self.requests += 1
            try:
                resp = self._request(ep, path)
            except (ConnectionRefusedError, TimeoutError) as e:
                self._conns.pop(ep, None)
                last = e
                continue                  # the next port (8443, then 443)
            except (OSError, http.client.HTTPException) as e:
                self._conns.pop(ep, None)
                raise DownloadError(f"{ep}{path}: {type(e).__name__}: {e}") from None
            self.endpoint = ep
            if resp.status != 200:
                resp.read(65536)           # error bodies are small; one that is not spoils the connection
                if not resp.isclosed():
                    resp.close()
                    self._conns.pop(ep, None)
                raise DownloadHTTPError(f"{ep}{path}: HTTP {resp.status}", resp.status)
            return self._chunks(ep, resp)
        raise DownloadError(f"cannot connect to {', '.join(order)}: {last}")

    def _chunks(self, ep: str, resp: http.client.HTTPResponse) -> Iterator[bytes]:
        try:
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    return
                self.bytes_received += len(chunk)
                yield chunk
        except (OSError, http.client.HTTPException) as e:
            self._conns.pop(ep, None)
            raise DownloadError(f"read failed: {e}") from None
        finally:
            if not resp.isclosed():        # stopped early (endless data): this connection is unusable
                resp.close()
                self._conns.pop(ep, None)
