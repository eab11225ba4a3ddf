"""The device-cloud protocol, sans-IO: typed messages and their strict encoding.

Both ends import this module and nothing else of each other, so the agent and
the reference cloud cannot drift apart. Every message is a JSON object with
`type` and `v`; decoding refuses unknown keys, wrong types, out-of-range
values and anything over an explicit size limit with a `ProtocolError`.

A detection is an allowlist (SPEC.md section 6): the fields below and nothing
else. Payload bytes, file contents and mail bodies have no field, so they
cannot be uploaded; an event that carries any other key is refused
(`FieldNotAllowedError`), never trimmed and sent.

No I/O, no clock: callers pass times in.
"""
from __future__ import annotations

import base64
import enum
import hashlib
import ipaddress
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

import orjson

from cloudlink.errors import (DecodeError, FieldError, FieldNotAllowedError, LimitError, ProtocolError)

__all__ = [
    "VERSION", "EnrolCode", "Action", "LinkState", "CommandKind", "Detection", "DetectionBatch", "BatchAck",
    "Heartbeat", "HeartbeatAck", "EnrolRequest", "EnrolResponse", "CommandEnvelope", "ErrorReply",
    "encode", "decode", "encode_batch", "decode_batch", "ProtocolError", "DecodeError", "FieldError",
    "FieldNotAllowedError", "LimitError", "DETECTION_FIELDS", "MAX_BATCH_EVENTS",
]

VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024            # any uncompressed message but a batch
MAX_BATCH_EVENTS = 500
MAX_BATCH_COMPRESSED = 1024 * 1024
MAX_BATCH_JSON = 4 * 1024 * 1024          # decompression stops here: no zip bombs
MAX_COUNTERS = 64
BATCH_MEDIA_TYPE = "application/vnd.utm.detections+json+zlib"

_KEY_RE = re.compile(r"[A-Za-z0-9_-]{8,64}\Z")
_MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
_HEX_RE = {32: re.compile(r"[0-9a-f]{32}\Z"), 64: re.compile(r"[0-9a-f]{64}\Z")}
_COUNTER_RE = re.compile(r"[a-z0-9_.]{1,64}\Z")
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f]")


class Action(enum.Enum):
    ALLOWED = "allowed"
    BLOCKED = "blocked"


class LinkState(enum.Enum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


class CommandKind(enum.Enum):
    """Remote commands (issue 5). Only the envelope exists yet; nothing executes them."""
    REBOOT = "reboot"
    ISOLATE = "isolate"
    RELEASE = "release"
    SET_MODE = "set_mode"
    ADD_EXCLUSION = "add_exclusion"
    REMOVE_EXCLUSION = "remove_exclusion"
    DIAGNOSTICS = "diagnostics"
    CHECK_DEFINITIONS = "check_definitions"


_COMMAND_ARGS = {CommandKind.REBOOT: 0, CommandKind.ISOLATE: 1, CommandKind.RELEASE: 1,
                 CommandKind.SET_MODE: 2, CommandKind.ADD_EXCLUSION: 2, CommandKind.REMOVE_EXCLUSION: 2,
                 CommandKind.DIAGNOSTICS: 0, CommandKind.CHECK_DEFINITIONS: 0}


# --- field checks -----------------------------------------------------------------------------

def _str(v: Any, name: str, maxlen: int, *, minlen: int = 0) -> str:
    if not isinstance(v, str):
        raise FieldError("must be a string", name)
    if not minlen <= len(v) <= maxlen:
        raise FieldError(f"length must be {minlen}..{maxlen}", name)
    if _CTRL_RE.search(v):
        raise FieldError("control characters are not allowed", name)
    return v


def _opt_str(v: Any, name: str, maxlen: int) -> str | None:
    return None if v is None else _str(v, name, maxlen, minlen=1)


def _int(v: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise FieldError("must be an integer", name)
    if not lo <= v <= hi:
        raise FieldError(f"must be {lo}..{hi}", name)
    return v


def _key(v: Any, name: str = "key") -> str:
    if not isinstance(v, str) or not _KEY_RE.match(v):
        raise FieldError("must be 8-64 characters of [A-Za-z0-9_-]", name)
    return v


def _ts(v: Any, name: str) -> str:
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


def _ip(v: Any, name: str) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > 45:
        raise FieldError("must be an IP address", name)
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        raise FieldError("must be an IP address", name) from None


def _mac(v: Any, name: str) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or not _MAC_RE.match(v.lower()):
        raise FieldError("must be a MAC address aa:bb:cc:dd:ee:ff", name)
    return v.lower()


def _hex(v: Any, name: str, n: int) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or not _HEX_RE[n].match(v.lower()):
        raise FieldError(f"must be {n} hex digits", name)
    return v.lower()


def _enum(cls: type[enum.Enum], v: Any, name: str) -> Any:
    try:
        return cls(v)
    except ValueError:
        raise FieldError(f"must be one of {', '.join(m.value for m in cls)}", name) from None


def _exact_keys(obj: Mapping[str, Any], allowed: frozenset[str], required: frozenset[str], what: str) -> None:
    extra = set(obj) - allowed
    if extra:
        raise FieldError(f"unknown field(s) in {what}: {', '.join(sorted(extra)[:5])}", sorted(extra)[0])
    missing = required - set(obj)
    if missing:
        raise FieldError(f"missing in {what}", sorted(missing)[0])


def _check_envelope(obj: Any, type_: str) -> dict:
    if not isinstance(obj, dict):
        raise DecodeError("message must be a JSON object")
    if obj.get("type") != type_:
        raise DecodeError(f"expected a {type_!r} message, got {str(obj.get('type'))[:40]!r}")
    if obj.get("v") != VERSION:
        raise DecodeError(f"unsupported protocol version {str(obj.get('v'))[:20]!r}")
    return {k: v for k, v in obj.items() if k not in ("type", "v")}


# --- detections -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Detection:
    """One detection's metadata: exactly the SPEC.md section 6 allowlist."""
    key: str                      # idempotency key: stable for the same detection, unique otherwise
    ts: str                       # when it was detected (ISO 8601, UTC)
    rule_id: int
    rule_msg: str
    stars: int                    # 0 = under investigation .. 3 = high
    action: Action
    device_id: str | None = None  # filled in on upload; the cloud checks it against the client cert
    flow_start: str | None = None
    src_ip: str | None = None
    dest_ip: str | None = None
    src_mac: str | None = None
    dest_mac: str | None = None
    url: str | None = None
    file_name: str | None = None
    file_sha256: str | None = None
    file_md5: str | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        _key(self.key)
        for f, v in (("ts", self.ts), ("flow_start", self.flow_start)):
            if v is not None and _ts(v, f) != v:
                raise FieldError("time must be normalised UTC (use Detection.from_json)", f)
        _int(self.rule_id, "rule_id", 0, 2**32 - 1)
        _str(self.rule_msg, "rule_msg", 512)
        _int(self.stars, "stars", 0, 3)
        if not isinstance(self.action, Action):
            raise FieldError("must be an Action", "action")
        if self.device_id is not None:
            _key(self.device_id, "device_id")
        for f in ("src_ip", "dest_ip"):
            v = getattr(self, f)
            if v is not None and _ip(v, f) != v:
                raise FieldError("must be a normalised IP address", f)
        for f in ("src_mac", "dest_mac"):
            v = getattr(self, f)
            if v is not None and _mac(v, f) != v:
                raise FieldError("must be a lower-case MAC address", f)
        _opt_str(self.url, "url", 2048)
        _opt_str(self.file_name, "file_name", 255)
        _opt_str(self.category, "category", 128)
        if self.file_sha256 is not None and _hex(self.file_sha256, "file_sha256", 64) != self.file_sha256:
            raise FieldError("must be lower-case hex", "file_sha256")
        if self.file_md5 is not None and _hex(self.file_md5, "file_md5", 32) != self.file_md5:
            raise FieldError("must be lower-case hex", "file_md5")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in DETECTION_FIELDS:
            v = getattr(self, f)
            if v is not None:
                out[f] = v.value if isinstance(v, Action) else v
        return out

    @classmethod
    def from_json(cls, obj: Any) -> "Detection":
        """Validate an untrusted object; any key outside the allowlist refuses the whole event."""
        if not isinstance(obj, dict):
            raise DecodeError("a detection must be a JSON object")
        for k in obj:
            if k not in DETECTION_FIELDS:
                raise FieldNotAllowedError(str(k)[:64])
        missing = _DETECTION_REQUIRED - set(obj)
        if missing:
            raise FieldError("missing in detection", sorted(missing)[0])
        return cls(
            key=_key(obj["key"]), ts=_ts(obj["ts"], "ts"),
            rule_id=_int(obj["rule_id"], "rule_id", 0, 2**32 - 1),
            rule_msg=_str(obj["rule_msg"], "rule_msg", 512),
            stars=_int(obj["stars"], "stars", 0, 3), action=_enum(Action, obj["action"], "action"),
            device_id=None if obj.get("device_id") is None else _key(obj["device_id"], "device_id"),
            flow_start=None if obj.get("flow_start") is None else _ts(obj["flow_start"], "flow_start"),
            src_ip=_ip(obj.get("src_ip"), "src_ip"), dest_ip=_ip(obj.get("dest_ip"), "dest_ip"),
            src_mac=_mac(obj.get("src_mac"), "src_mac"), dest_mac=_mac(obj.get("dest_mac"), "dest_mac"),
            url=_opt_str(obj.get("url"), "url", 2048),
            file_name=_opt_str(obj.get("file_name"), "file_name", 255),
            file_sha256=_hex(obj.get("file_sha256"), "file_sha256", 64),
            file_md5=_hex(obj.get("file_md5"), "file_md5", 32),
            category=_opt_str(obj.get("category"), "category", 128),
        )


DETECTION_FIELDS: tuple[str, ...] = (
    "key", "device_id", "ts", "flow_start", "src_ip", "dest_ip", "src_mac", "dest_mac", "url",
    "file_name", "file_sha256", "file_md5", "rule_id", "rule_msg", "category", "stars", "action")
_DETECTION_REQUIRED = frozenset({"key", "ts", "rule_id", "rule_msg", "stars", "action"})


@dataclass(frozen=True, slots=True)
class DetectionBatch:
    events: tuple[Detection, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.events) <= MAX_BATCH_EVENTS:
            raise LimitError(f"a batch holds 1..{MAX_BATCH_EVENTS} events, not {len(self.events)}",
                             MAX_BATCH_EVENTS)
        if len({e.key for e in self.events}) != len(self.events):
            raise FieldError("duplicate keys in one batch", "events")

    def to_json(self) -> dict[str, Any]:
        return {"events": [e.to_json() for e in self.events]}

    @classmethod
    def from_json(cls, obj: dict) -> "DetectionBatch":
        _exact_keys(obj, frozenset({"events"}), frozenset({"events"}), "detections")
        ev = obj["events"]
        if not isinstance(ev, list):
            raise FieldError("must be a list", "events")
        if len(ev) > MAX_BATCH_EVENTS:
            raise LimitError(f"more than {MAX_BATCH_EVENTS} events in a batch", MAX_BATCH_EVENTS)
        return cls(tuple(Detection.from_json(e) for e in ev))


@dataclass(frozen=True, slots=True)
class BatchAck:
    """The cloud's answer to a batch: every key is either newly stored or already was."""
    accepted: tuple[str, ...]
    duplicates: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"accepted": list(self.accepted), "duplicates": list(self.duplicates)}

    @classmethod
    def from_json(cls, obj: dict) -> "BatchAck":
        both = frozenset({"accepted", "duplicates"})
        _exact_keys(obj, both, both, "ack")
        out = []
        for name in ("accepted", "duplicates"):
            v = obj[name]
            if not isinstance(v, list) or len(v) > MAX_BATCH_EVENTS:
                raise FieldError(f"must be a list of at most {MAX_BATCH_EVENTS} keys", name)
            out.append(tuple(_key(k, name) for k in v))
        return cls(out[0], out[1])


# --- heartbeat --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Heartbeat:
    sent_at: str
    firmware_version: str
    uptime_s: int
    link_state: LinkState
    definitions_version: str | None = None
    inspected_share: float | None = None      # share of traffic actually inspected, 0..1
    last_error: str | None = None
    counters: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if len(self.counters) > MAX_COUNTERS:
            raise LimitError(f"at most {MAX_COUNTERS} counters", MAX_COUNTERS)
        for name, value in self.counters:
            if not isinstance(name, str) or not _COUNTER_RE.match(name):
                raise FieldError("counter names are [a-z0-9_.]{1,64}", "counters")
            _int(value, f"counters.{name}", 0, 2**63 - 1)
        if self.inspected_share is not None and (
                isinstance(self.inspected_share, bool) or not isinstance(self.inspected_share, (int, float))
                or not 0.0 <= self.inspected_share <= 1.0):
            raise FieldError("must be a number 0..1", "inspected_share")

    def to_json(self) -> dict[str, Any]:
        return {"sent_at": self.sent_at, "firmware_version": self.firmware_version, "uptime_s": self.uptime_s,
                "link_state": self.link_state.value, "definitions_version": self.definitions_version,
                "inspected_share": self.inspected_share, "last_error": self.last_error,
                "counters": dict(self.counters)}

    @classmethod
    def from_json(cls, obj: dict) -> "Heartbeat":
        req = frozenset({"sent_at", "firmware_version", "uptime_s", "link_state"})
        _exact_keys(obj, req | {"definitions_version", "inspected_share", "last_error", "counters"}, req,
                    "heartbeat")
        counters = obj.get("counters") or {}
        if not isinstance(counters, dict):
            raise FieldError("must be an object", "counters")
        share = obj.get("inspected_share")
        return cls(sent_at=_ts(obj["sent_at"], "sent_at"),
                   firmware_version=_str(obj["firmware_version"], "firmware_version", 64, minlen=1),
                   uptime_s=_int(obj["uptime_s"], "uptime_s", 0, 2**40),
                   link_state=_enum(LinkState, obj["link_state"], "link_state"),
                   definitions_version=_opt_str(obj.get("definitions_version"), "definitions_version", 64),
                   inspected_share=float(share) if isinstance(share, int) and not isinstance(share, bool)
                   else share,
                   last_error=_opt_str(obj.get("last_error"), "last_error", 512),
                   counters=tuple(sorted(counters.items())))


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    server_time: str
    heartbeat_interval_s: int

    def to_json(self) -> dict[str, Any]:
        return {"server_time": self.server_time, "heartbeat_interval_s": self.heartbeat_interval_s}

    @classmethod
    def from_json(cls, obj: dict) -> "HeartbeatAck":
        both = frozenset({"server_time", "heartbeat_interval_s"})
        _exact_keys(obj, both, both, "heartbeat_ack")
        return cls(_ts(obj["server_time"], "server_time"),
                   _int(obj["heartbeat_interval_s"], "heartbeat_interval_s", 1, 86400))


# --- enrolment --------------------------------------------------------------------------------

_CODE_RE = re.compile(r"([A-Z2-7]{16})-([A-Z2-7]{26})\Z")


@dataclass(frozen=True, slots=True)
class EnrolCode:
    """A one-time enrolment code: an 80-bit secret and the cloud CA's pin.

    `pin` is the first 128 bits of the SHA-256 of the CA certificate (DER),
    base32. The agent fetches the CA over unauthenticated TLS, accepts it only
    if it hashes to the pin, and sends the secret only over TLS verified
    against that CA. So the code alone bootstraps trust: no CA file to carry.
    """
    secret: str
    pin: str

    def __post_init__(self) -> None:
        if not _CODE_RE.match(f"{self.secret}-{self.pin}"):
            raise FieldError("an enrolment code is 16 and 26 base32 characters joined by '-'", "code")

    def __str__(self) -> str:
        return f"{self.secret}-{self.pin}"

    @classmethod
    def parse(cls, text: str) -> "EnrolCode":
        m = _CODE_RE.match(text.strip().upper().replace(" ", ""))
        if not m:
            raise FieldError("an enrolment code is 16 and 26 base32 characters joined by '-'", "code")
        return cls(m.group(1), m.group(2))

    @staticmethod
    def pin_for(ca_der: bytes) -> str:
        return base64.b32encode(hashlib.sha256(ca_der).digest()[:16]).decode("ascii").rstrip("=")

    @classmethod
    def new(cls, random_bytes: bytes, ca_der: bytes) -> "EnrolCode":
        """`random_bytes` (10 of them) come from the caller: no hidden randomness in the protocol."""
        if len(random_bytes) != 10:
            raise FieldError("the secret needs exactly 10 random bytes", "secret")
        return cls(base64.b32encode(random_bytes).decode("ascii"), cls.pin_for(ca_der))


@dataclass(frozen=True, slots=True)
class EnrolRequest:
    """The one-time code's secret and a CSR; the private key never leaves the device."""
    code: str
    csr_pem: str
    firmware_version: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "csr_pem": self.csr_pem, "firmware_version": self.firmware_version}

    @classmethod
    def from_json(cls, obj: dict) -> "EnrolRequest":
        keys = frozenset({"code", "csr_pem", "firmware_version"})
        _exact_keys(obj, keys, keys, "enrol")
        csr = obj["csr_pem"]
        if not isinstance(csr, str) or not 0 < len(csr) <= 8192 or not csr.startswith(
                "-----BEGIN CERTIFICATE REQUEST-----"):
            raise FieldError("must be a PEM certificate request of at most 8 KiB", "csr_pem")
        return cls(_str(obj["code"], "code", 64, minlen=8), csr,
                   _str(obj["firmware_version"], "firmware_version", 64, minlen=1))


@dataclass(frozen=True, slots=True)
class EnrolResponse:
    device_id: str
    cert_pem: str

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "cert_pem": self.cert_pem}

    @classmethod
    def from_json(cls, obj: dict) -> "EnrolResponse":
        keys = frozenset({"device_id", "cert_pem"})
        _exact_keys(obj, keys, keys, "enrolled")
        cert = obj["cert_pem"]
        if not isinstance(cert, str) or not 0 < len(cert) <= 16384 or not cert.startswith(
                "-----BEGIN CERTIFICATE-----"):
            raise FieldError("must be a PEM certificate of at most 16 KiB", "cert_pem")
        return cls(_key(obj["device_id"], "device_id"), cert)


# --- commands (envelope only) -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CommandEnvelope:
    """A remote command as the cloud will sign it. Signing and execution are not built yet."""
    command_id: str
    device_id: str
    kind: CommandKind
    args: tuple[str, ...]
    issued_at: str
    expires_at: str
    nonce: str
    signature: str | None = None   # base64, over signed_bytes(); checked by the agent (later)

    def __post_init__(self) -> None:
        _key(self.command_id, "command_id")
        _key(self.device_id, "device_id")
        if len(self.args) != _COMMAND_ARGS[self.kind]:
            raise FieldError(f"{self.kind.value} takes {_COMMAND_ARGS[self.kind]} argument(s)", "args")
        for a in self.args:
            _str(a, "args", 256, minlen=1)
        if _ts(self.expires_at, "expires_at") <= _ts(self.issued_at, "issued_at"):
            raise FieldError("must be after issued_at", "expires_at")
        _hex(self.nonce, "nonce", 32)

    def signed_bytes(self) -> bytes:
        """Canonical bytes a signature covers: every field but the signature, sorted keys."""
        d = self.to_json()
        d.pop("signature")
        return orjson.dumps(d, option=orjson.OPT_SORT_KEYS)

    def to_json(self) -> dict[str, Any]:
        return {"command_id": self.command_id, "device_id": self.device_id, "kind": self.kind.value,
                "args": list(self.args), "issued_at": self.issued_at, "expires_at": self.expires_at,
                "nonce": self.nonce, "signature": self.signature}

    @classmethod
    def from_json(cls, obj: dict) -> "CommandEnvelope":
        req = frozenset({"command_id", "device_id", "kind", "args", "issued_at", "expires_at", "nonce"})
        _exact_keys(obj, req | {"signature"}, req, "command")
        args = obj["args"]
        if not isinstance(args, list) or len(args) > 4:
            raise FieldError("must be a list of at most 4 strings", "args")
        sig = obj.get("signature")
        if sig is not None:
            if not isinstance(sig, str) or len(sig) > 1024:
                raise FieldError("must be base64 of at most 1 KiB", "signature")
            try:
                base64.b64decode(sig, validate=True)
            except ValueError:
                raise FieldError("must be base64", "signature") from None
        return cls(_key(obj["command_id"], "command_id"), _key(obj["device_id"], "device_id"),
                   _enum(CommandKind, obj["kind"], "kind"), tuple(_str(a, "args", 256, minlen=1) for a in args),
                   _ts(obj["issued_at"], "issued_at"), _ts(obj["expires_at"], "expires_at"),
                   _hex(obj["nonce"], "nonce", 32) or "", sig)


# --- errors on the wire -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ErrorReply:
    """What the cloud answers instead of a message: a stable code and a human message."""
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_json(cls, obj: dict) -> "ErrorReply":
        keys = frozenset({"code", "message"})
        _exact_keys(obj, keys, keys, "error")
        return cls(_str(obj["code"], "code", 64, minlen=1), _str(obj["message"], "message", 512))


_TYPES: dict[type, str] = {
    DetectionBatch: "detections", BatchAck: "ack", Heartbeat: "heartbeat", HeartbeatAck: "heartbeat_ack",
    EnrolRequest: "enrol", EnrolResponse: "enrolled", CommandEnvelope: "command", ErrorReply: "error",
}


def encode(msg: Any) -> bytes:
    """A message as JSON bytes with its type and protocol version."""
    type_ = _TYPES.get(type(msg))
    if type_ is None:
        raise ProtocolError(f"not a protocol message: {type(msg).__name__}")
    return orjson.dumps({"type": type_, "v": VERSION, **msg.to_json()})


def decode(data: bytes, kind: type) -> Any:
    """Parse and validate untrusted bytes as message `kind`; a ProtocolError on anything wrong."""
    type_ = _TYPES.get(kind)
    if type_ is None:
        raise ProtocolError(f"not a protocol message: {kind.__name__}")
    limit = MAX_BATCH_JSON if kind is DetectionBatch else MAX_MESSAGE_BYTES
    if len(data) > limit:
        raise LimitError(f"message of {len(data)} bytes exceeds {limit}", limit)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise DecodeError(f"not JSON: {str(e)[:80]}") from None
    return kind.from_json(_check_envelope(obj, type_))


def encode_batch(batch: DetectionBatch) -> bytes:
    """A batch as zlib-compressed JSON (detections compress about 5-10x)."""
    return zlib.compress(encode(batch), 6)


def decode_batch(data: bytes) -> DetectionBatch:
    """Decompress with a hard output limit, then decode strictly."""
    if len(data) > MAX_BATCH_COMPRESSED:
        raise LimitError(f"compressed batch of {len(data)} bytes exceeds {MAX_BATCH_COMPRESSED}",
                         MAX_BATCH_COMPRESSED)
    d = zlib.decompressobj()
    try:
        raw = d.decompress(data, MAX_BATCH_JSON + 1)
    except zlib.error as e:
        raise DecodeError(f"not zlib data: {e}") from None
    if len(raw) > MAX_BATCH_JSON or d.unconsumed_tail:
        raise LimitError(f"batch decompresses past {MAX_BATCH_JSON} bytes", MAX_BATCH_JSON)
    if not d.eof:
        raise DecodeError("truncated zlib data")
    return decode(raw, DetectionBatch)
