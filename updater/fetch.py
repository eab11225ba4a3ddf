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
import urllib.error
import urllib.request
from collections.abc import Iterator

from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.ngclient.fetcher import FetcherInterface

SCHEME = "utm-cloud:"
CHUNK = 65536


class MtlsFetcher(FetcherInterface):
    def __init__(self, endpoints: tuple[str, ...], ssl_ctx: ssl.SSLContext, *, timeout_s: float = 30.0) -> None:
        if not endpoints:
            raise ValueError("no endpoints")
        self._endpoints = endpoints
        self._ssl = ssl_ctx
        self._timeout = timeout_s
        self.endpoint: str | None = None
        self.bytes_received = 0          # payload bytes (TLS and HTTP headers not counted)
        self.requests = 0

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith(SCHEME + "/"):
            raise DownloadError(f"not a cloud URL: {url}")
        path = url[len(SCHEME):]
        order = self._endpoints
        if self.endpoint in order:
            order = (self.endpoint,) + tuple(e for e in order if e != self.endpoint)
        last: Exception | None = None
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self._ssl))
        for ep in order:
            self.requests += 1
            try:
                resp = opener.open(urllib.request.Request(ep + path, headers={"Accept-Encoding": "identity"}),
                                   timeout=self._timeout)
            except urllib.error.HTTPError as e:
                e.close()
                raise DownloadHTTPError(f"{ep}{path}: HTTP {e.code}", e.code) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                reason = getattr(e, "reason", e)
                if isinstance(reason, (ConnectionRefusedError, TimeoutError)) or "refused" in str(reason):
                    last = e
                    continue              # the next port
                raise DownloadError(f"{ep}{path}: {reason}") from None
            self.endpoint = ep
            return self._chunks(resp)
        raise DownloadError(f"cannot connect to {', '.join(order)}: {last}")

    def _chunks(self, resp: http.client.HTTPResponse) -> Iterator[bytes]:
        try:
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    return
                self.bytes_received += len(chunk)
                yield chunk
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(f"read failed: {e}") from None
        finally:
            resp.close()
