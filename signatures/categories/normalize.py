"""Host and URL normalisation shared by the compiler and the lookup, so both sides agree.

As UT1/squidGuard lists are written: lowercase, no scheme, no port, no trailing
dot, internationalised names as punycode (IDNA), IP addresses as hosts. URL
entries and URL lookups also drop a leading ``www.``/``www2.``/``web3.``/``ftp.``
label (squidGuard strips ``(www|web|ftp)[0-9]*.`` before matching its URL lists);
domain entries need no such rule: ``example.com`` covers ``www.example.com``.
"""
from __future__ import annotations

import ipaddress
import re

_HOST_CHARS = re.compile(r"^[a-z0-9_*-]+(\.[a-z0-9_-]+)*$")
_WWW = re.compile(r"^(?:www|web|ftp)[0-9]*\.")
MAX_HOST = 253


def normalize_host(raw: str) -> str | None:
    """The host as it is stored and looked up, or None when it is not a host name or an IP address."""
    h = raw.strip().lower()
    if not h:
        return None
    if h.startswith("["):                       # [v6]:port
        end = h.find("]")
        if end < 0:
            return None
        return _ip(h[1:end])
    if h.count(":") == 1:                        # name:port or v4:port
        h, _, port = h.partition(":")
        if port and not port.isdigit():
            return None
    elif ":" in h:                               # bare IPv6
        return _ip(h)
    h = h.rstrip(".")
    if h.startswith("*."):
        h = h[2:]
    h = h.lstrip(".")
    if not h:
        return None
    if not h.isascii():
        try:
            h = h.encode("idna").decode("ascii")
        except (UnicodeError, ValueError):
            return None
    if h[-1].isdigit():
        ip = _ip(h)
        if ip is not None:
            return ip
    if len(h) > MAX_HOST or not _HOST_CHARS.match(h) or "*" in h:
        return None
    return h


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def is_ip(host: str) -> bool:
    """True for a normalised IP address (a name never ends in a digit: TLDs are letters)."""
    return bool(host) and (host[-1].isdigit() or ":" in host)


def strip_www(host: str) -> str:
    """``www2.example.com`` -> ``example.com``, as squidGuard does for URL lists; names with two labels are kept."""
    m = _WWW.match(host)
    if m is None or host.count(".") < 2:
        return host
    return host[m.end():]


def split_url(text: str) -> tuple[str, str | None]:
    """``http://Host:80/a/b?c`` -> (``Host:80``, ``/a/b?c``); a bare host gives (host, None)."""
    t = text.strip()
    scheme = t.find("://")
    if 0 < scheme < 12:
        t = t[scheme + 3:]
    cut = len(t)
    for sep in "/?#":
        i = t.find(sep)
        if 0 <= i < cut:
            cut = i
    host, rest = t[:cut], t[cut:]
    if "@" in host:                              # user:pass@host
        host = host.rpartition("@")[2]
    if not rest:
        return host, None
    if not rest.startswith("/"):
        rest = "/" + rest
    return host, rest


def normalize_path(path: str) -> str:
    """Lowercased, fragment dropped, always starting with ``/`` (squidGuard compares URLs case-insensitively);
    non-ASCII characters percent-encoded as UTF-8, as a browser sends them."""
    p = path.lower()
    if not p.isascii():
        p = "".join(c if c < "\x80" else "".join(f"%{b:02x}" for b in c.encode("utf-8", "surrogatepass"))
                    for c in p)
    if "#" in p:
        p = p[:p.index("#")]
    return p if p[:1] == "/" else "/" + p
