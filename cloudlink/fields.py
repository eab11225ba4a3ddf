"""Field checks shared by the protocol's messages: each returns the normalised value or raises FieldError."""
from __future__ import annotations

import enum
import ipaddress
import re
from datetime import datetime, timezone
from typing import Any, Mapping

from cloudlink.errors import DecodeError, FieldError

KEY_RE = re.compile(r"[A-Za-z0-9_-]{8,64}\Z")
MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
HEX_RE = {32: re.compile(r"[0-9a-f]{32}\Z"), 64: re.compile(r"[0-9a-f]{64}\Z")}
COUNTER_RE = re.compile(r"[a-z0-9_.]{1,64}\Z")
CTRL_RE = re.compile(r"[\x00-\x1f\x7f]")


def text(v: Any, name: str, maxlen: int, *, minlen: int = 0) -> str:
    if not isinstance(v, str):
        raise FieldError("must be a string", name)
    if not minlen <= len(v) <= maxlen:
        raise FieldError(f"length must be {minlen}..{maxlen}", name)
    if CTRL_RE.search(v):
        raise FieldError("control characters are not allowed", name)
    return v


def opt_text(v: Any, name: str, maxlen: int) -> str | None:
    return None if v is None else text(v, name, maxlen, minlen=1)


def integer(v: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise FieldError("must be an integer", name)
    if not lo <= v <= hi:
        raise FieldError(f"must be {lo}..{hi}", name)
    return v


def key(v: Any, name: str = "key") -> str:
    if not isinstance(v, str) or not KEY_RE.match(v):
        raise FieldError("must be 8-64 characters of [A-Za-z0-9_-]", name)
    return v


def ts(v: Any, name: str) -> str:
    """An ISO 8601 time with an offset, normalised to UTC with microseconds (stable keys, sortable)."""
    if not isinstance(v, str) or len(v) > 40:
        raise FieldError("must be an ISO 8601 time", name)
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise FieldError("must be an ISO 8601 time", name) from None
    if dt.tzinfo is None:
        raise FieldError("time needs a UTC offset", name)
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


def ip(v: Any, name: str) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > 45:
        raise FieldError("must be an IP address", name)
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        raise FieldError("must be an IP address", name) from None


def mac(v: Any, name: str) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or not MAC_RE.match(v.lower()):
        raise FieldError("must be a MAC address aa:bb:cc:dd:ee:ff", name)
    return v.lower()


def hexdigits(v: Any, name: str, n: int) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or not HEX_RE[n].match(v.lower()):
        raise FieldError(f"must be {n} hex digits", name)
    return v.lower()


def member(cls: type[enum.Enum], v: Any, name: str) -> Any:
    try:
        return cls(v)
    except ValueError:
        raise FieldError(f"must be one of {', '.join(m.value for m in cls)}", name) from None


def exact_keys(obj: Mapping[str, Any], allowed: frozenset[str], required: frozenset[str], what: str) -> None:
    extra = set(obj) - allowed
    if extra:
        raise FieldError(f"unknown field(s) in {what}: {', '.join(sorted(extra)[:5])}", sorted(extra)[0])
    missing = required - set(obj)
    if missing:
        raise FieldError(f"missing in {what}", sorted(missing)[0])


def check_envelope(obj: Any, type_: str, version: int) -> dict:
    if not isinstance(obj, dict):
        raise DecodeError("message must be a JSON object")
    if obj.get("type") != type_:
        raise DecodeError(f"expected a {type_!r} message, got {str(obj.get('type'))[:40]!r}")
    if obj.get("v") != version:
        raise DecodeError(f"unsupported protocol version {str(obj.get('v'))[:20]!r}")
    return {k: v for k, v in obj.items() if k not in ("type", "v")}
