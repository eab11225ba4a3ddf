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
import re
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from cloudlink import fields as F
from cloudlink.errors import (DecodeError, FieldError, FieldNotAllowedError, LimitError, ProtocolError)

__all__ = [
    "VERSION", "EnrolCode", "Action", "LinkState", "CommandKind", "Detection", "DetectionBatch", "BatchAck",
    "Heartbeat", "HeartbeatAck", "EnrolRequest", "EnrolResponse", "CommandEnvelope", "ErrorReply",
    "CommandBatch", "CommandResult", "CommandStatus",
    "encode", "decode", "encode_batch", "decode_batch", "ProtocolError", "DecodeError", "FieldError",
    "FieldNotAllowedError", "LimitError", "DETECTION_FIELDS", "MAX_BATCH_EVENTS",
]

VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024            # any uncompressed message but a batch
MAX_BATCH_EVENTS = 500
MAX_BATCH_COMPRESSED = 1024 * 1024
MAX_BATCH_JSON = 4 * 1024 * 1024          # decompression stops here: no zip bombs
MAX_COUNTERS = 64
MAX_TUF_ROOT = 64 * 1024
BATCH_MEDIA_TYPE = "application/vnd.utm.detections+json+zlib"

class Action(enum.Enum):
    ALLOWED = "allowed"
    BLOCKED = "blocked"


class LinkState(enum.Enum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"


class CommandKind(enum.Enum):
    """Remote commands (issue 5). Every kind is verified; only DIAGNOSTICS is carried out yet."""
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
        F.key(self.key)
        for f, v in (("ts", self.ts), ("flow_start", self.flow_start)):
            if v is not None and F.ts(v, f) != v:
                raise FieldError("time must be normalised UTC (use Detection.from_json)", f)
        F.integer(self.rule_id, "rule_id", 0, 2**32 - 1)
        F.text(self.rule_msg, "rule_msg", 512)
        F.integer(self.stars, "stars", 0, 3)
        if not isinstance(self.action, Action):
            raise FieldError("must be an Action", "action")
        if self.device_id is not None:
            F.key(self.device_id, "device_id")
        for f in ("src_ip", "dest_ip"):
            v = getattr(self, f)
            if v is not None and F.ip(v, f) != v:
                raise FieldError("must be a normalised IP address", f)
        for f in ("src_mac", "dest_mac"):
            v = getattr(self, f)
            if v is not None and F.mac(v, f) != v:
                raise FieldError("must be a lower-case MAC address", f)
        F.opt_text(self.url, "url", 2048)
        F.opt_text(self.file_name, "file_name", 255)
        F.opt_text(self.category, "category", 128)
        if self.file_sha256 is not None and F.hexdigits(self.file_sha256, "file_sha256", 64) != self.file_sha256:
            raise FieldError("must be lower-case hex", "file_sha256")
        if self.file_md5 is not None and F.hexdigits(self.file_md5, "file_md5", 32) != self.file_md5:
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
            key=F.key(obj["key"]), ts=F.ts(obj["ts"], "ts"),
            rule_id=F.integer(obj["rule_id"], "rule_id", 0, 2**32 - 1),
            rule_msg=F.text(obj["rule_msg"], "rule_msg", 512),
            stars=F.integer(obj["stars"], "stars", 0, 3), action=F.member(Action, obj["action"], "action"),
            device_id=None if obj.get("device_id") is None else F.key(obj["device_id"], "device_id"),
            flow_start=None if obj.get("flow_start") is None else F.ts(obj["flow_start"], "flow_start"),
            src_ip=F.ip(obj.get("src_ip"), "src_ip"), dest_ip=F.ip(obj.get("dest_ip"), "dest_ip"),
            src_mac=F.mac(obj.get("src_mac"), "src_mac"), dest_mac=F.mac(obj.get("dest_mac"), "dest_mac"),
            url=F.opt_text(obj.get("url"), "url", 2048),
            file_name=F.opt_text(obj.get("file_name"), "file_name", 255),
            file_sha256=F.hexdigits(obj.get("file_sha256"), "file_sha256", 64),
            file_md5=F.hexdigits(obj.get("file_md5"), "file_md5", 32),
            category=F.opt_text(obj.get("category"), "category", 128),
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
        F.exact_keys(obj, frozenset({"events"}), frozenset({"events"}), "detections")
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

    def __post_init__(self) -> None:
        for name in ("accepted", "duplicates"):
            keys = getattr(self, name)
            if len(keys) > MAX_BATCH_EVENTS:
                raise LimitError(f"{name}: more than {MAX_BATCH_EVENTS} keys", MAX_BATCH_EVENTS)
            for k in keys:
                F.key(k, name)

    def to_json(self) -> dict[str, Any]:
        return {"accepted": list(self.accepted), "duplicates": list(self.duplicates)}

    @classmethod
    def from_json(cls, obj: dict) -> "BatchAck":
        both = frozenset({"accepted", "duplicates"})
        F.exact_keys(obj, both, both, "ack")
        out = []
        for name in ("accepted", "duplicates"):
            v = obj[name]
            if not isinstance(v, list) or len(v) > MAX_BATCH_EVENTS:
                raise FieldError(f"must be a list of at most {MAX_BATCH_EVENTS} keys", name)
            out.append(tuple(F.key(k, name) for k in v))
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
        if F.ts(self.sent_at, "sent_at") != self.sent_at:
            raise FieldError("time must be normalised UTC", "sent_at")
        F.text(self.firmware_version, "firmware_version", 64, minlen=1)
        F.integer(self.uptime_s, "uptime_s", 0, 2**40)
        if not isinstance(self.link_state, LinkState):
            raise FieldError("must be a LinkState", "link_state")
        F.opt_text(self.definitions_version, "definitions_version", 64)
        F.opt_text(self.last_error, "last_error", 512)
        if len(self.counters) > MAX_COUNTERS:
            raise LimitError(f"at most {MAX_COUNTERS} counters", MAX_COUNTERS)
        for name, value in self.counters:
            if not isinstance(name, str) or not F.COUNTER_RE.match(name):
                raise FieldError("counter names are [a-z0-9_.]{1,64}", "counters")
            F.integer(value, f"counters.{name}", 0, 2**63 - 1)
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
        F.exact_keys(obj, req | {"definitions_version", "inspected_share", "last_error", "counters"}, req,
                    "heartbeat")
        counters = obj.get("counters") or {}
        if not isinstance(counters, dict):
            raise FieldError("must be an object", "counters")
        share = obj.get("inspected_share")
        return cls(sent_at=F.ts(obj["sent_at"], "sent_at"),
                   firmware_version=F.text(obj["firmware_version"], "firmware_version", 64, minlen=1),
                   uptime_s=F.integer(obj["uptime_s"], "uptime_s", 0, 2**40),
                   link_state=F.member(LinkState, obj["link_state"], "link_state"),
                   definitions_version=F.opt_text(obj.get("definitions_version"), "definitions_version", 64),
                   inspected_share=float(share) if isinstance(share, int) and not isinstance(share, bool)
                   else share,
                   last_error=F.opt_text(obj.get("last_error"), "last_error", 512),
                   counters=tuple(sorted(counters.items())))


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    server_time: str
    heartbeat_interval_s: int

    def __post_init__(self) -> None:
        if F.ts(self.server_time, "server_time") != self.server_time:
            raise FieldError("time must be normalised UTC", "server_time")
        F.integer(self.heartbeat_interval_s, "heartbeat_interval_s", 1, 86400)

    def to_json(self) -> dict[str, Any]:
        return {"server_time": self.server_time, "heartbeat_interval_s": self.heartbeat_interval_s}

    @classmethod
    def from_json(cls, obj: dict) -> "HeartbeatAck":
        both = frozenset({"server_time", "heartbeat_interval_s"})
        F.exact_keys(obj, both, both, "heartbeat_ack")
        return cls(F.ts(obj["server_time"], "server_time"),
                   F.integer(obj["heartbeat_interval_s"], "heartbeat_interval_s", 1, 86400))


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

    def __post_init__(self) -> None:
        F.text(self.code, "code", 64, minlen=8)
        F.text(self.firmware_version, "firmware_version", 64, minlen=1)
        if not isinstance(self.csr_pem, str) or not 0 < len(self.csr_pem) <= 8192 or not self.csr_pem.startswith(
                "-----BEGIN CERTIFICATE REQUEST-----"):
            raise FieldError("must be a PEM certificate request of at most 8 KiB", "csr_pem")

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "csr_pem": self.csr_pem, "firmware_version": self.firmware_version}

    @classmethod
    def from_json(cls, obj: dict) -> "EnrolRequest":
        keys = frozenset({"code", "csr_pem", "firmware_version"})
        F.exact_keys(obj, keys, keys, "enrol")
        return cls(obj["code"], obj["csr_pem"], obj["firmware_version"])


@dataclass(frozen=True, slots=True)
class EnrolResponse:
    """The signed certificate, and the cloud's command key and TUF root, pinned with it (same trusted channel)."""
    device_id: str
    cert_pem: str
    command_key: str          # base64 of the raw 32-byte Ed25519 public key that signs commands
    tuf_root: str | None = None   # the definitions repository's root.json: the agent's TUF trust anchor

    def __post_init__(self) -> None:
        F.key(self.device_id, "device_id")
        try:
            raw = base64.b64decode(self.command_key, validate=True) if isinstance(self.command_key, str) else b""
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise FieldError("must be base64 of a 32-byte Ed25519 public key", "command_key")
        if not isinstance(self.cert_pem, str) or not 0 < len(self.cert_pem) <= 16384 or not self.cert_pem.startswith(
                "-----BEGIN CERTIFICATE-----"):
            raise FieldError("must be a PEM certificate of at most 16 KiB", "cert_pem")
        if self.tuf_root is not None and (not isinstance(self.tuf_root, str)
                                          or not 0 < len(self.tuf_root) <= MAX_TUF_ROOT
                                          or not self.tuf_root.lstrip().startswith("{")):
            raise FieldError(f"must be TUF root metadata (JSON) of at most {MAX_TUF_ROOT} bytes", "tuf_root")

    def to_json(self) -> dict[str, Any]:
        out = {"device_id": self.device_id, "cert_pem": self.cert_pem, "command_key": self.command_key}
        if self.tuf_root is not None:
            out["tuf_root"] = self.tuf_root
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "EnrolResponse":
        keys = frozenset({"device_id", "cert_pem", "command_key"})
        F.exact_keys(obj, keys | {"tuf_root"}, keys, "enrolled")
        return cls(obj["device_id"], obj["cert_pem"], obj["command_key"], obj.get("tuf_root"))


# --- commands ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CommandEnvelope:
    """A remote command, signed by the cloud's command key over signed_bytes(); see cloudlink/commands.py."""
    command_id: str
    device_id: str
    kind: CommandKind
    args: tuple[str, ...]
    issued_at: str
    expires_at: str
    nonce: str
    signature: str | None = None   # base64 Ed25519 signature over signed_bytes(); None is refused by the agent

    def __post_init__(self) -> None:
        F.key(self.command_id, "command_id")
        F.key(self.device_id, "device_id")
        if len(self.args) != _COMMAND_ARGS[self.kind]:
            raise FieldError(f"{self.kind.value} takes {_COMMAND_ARGS[self.kind]} argument(s)", "args")
        for a in self.args:
            F.text(a, "args", 256, minlen=1)
        if F.ts(self.expires_at, "expires_at") <= F.ts(self.issued_at, "issued_at"):
            raise FieldError("must be after issued_at", "expires_at")
        F.hexdigits(self.nonce, "nonce", 32)

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
        F.exact_keys(obj, req | {"signature"}, req, "command")
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
        return cls(F.key(obj["command_id"], "command_id"), F.key(obj["device_id"], "device_id"),
                   F.member(CommandKind, obj["kind"], "kind"), tuple(F.text(a, "args", 256, minlen=1) for a in args),
                   F.ts(obj["issued_at"], "issued_at"), F.ts(obj["expires_at"], "expires_at"),
                   F.hexdigits(obj["nonce"], "nonce", 32) or "", sig)


MAX_COMMANDS = 16


@dataclass(frozen=True, slots=True)
class CommandBatch:
    """The answer to the agent's long poll: the device's pending commands (possibly none)."""
    commands: tuple[CommandEnvelope, ...]

    def __post_init__(self) -> None:
        if len(self.commands) > MAX_COMMANDS:
            raise LimitError(f"at most {MAX_COMMANDS} commands per answer", MAX_COMMANDS)

    def to_json(self) -> dict[str, Any]:
        return {"commands": [c.to_json() for c in self.commands]}

    @classmethod
    def from_json(cls, obj: dict) -> "CommandBatch":
        F.exact_keys(obj, frozenset({"commands"}), frozenset({"commands"}), "commands")
        cs = obj["commands"]
        if not isinstance(cs, list) or len(cs) > MAX_COMMANDS:
            raise FieldError(f"must be a list of at most {MAX_COMMANDS} commands", "commands")
        out = []
        for c in cs:
            if not isinstance(c, dict):
                raise FieldError("must be an object", "commands")
            out.append(CommandEnvelope.from_json(c))
        return cls(tuple(out))


class CommandStatus(enum.Enum):
    DONE = "done"
    REFUSED = "refused"           # failed verification: unsigned, tampered, expired, replayed, not ours
    UNSUPPORTED = "unsupported"   # verified, but this build cannot carry it out yet
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CommandResult:
    command_id: str
    status: CommandStatus
    detail: str
    finished_at: str

    def __post_init__(self) -> None:
        F.key(self.command_id, "command_id")
        if not isinstance(self.status, CommandStatus):
            raise FieldError("must be a CommandStatus", "status")
        F.text(self.detail, "detail", 4096)
        if F.ts(self.finished_at, "finished_at") != self.finished_at:
            raise FieldError("time must be normalised UTC", "finished_at")

    def to_json(self) -> dict[str, Any]:
        return {"command_id": self.command_id, "status": self.status.value, "detail": self.detail,
                "finished_at": self.finished_at}

    @classmethod
    def from_json(cls, obj: dict) -> "CommandResult":
        keys = frozenset({"command_id", "status", "detail", "finished_at"})
        F.exact_keys(obj, keys, keys, "command_result")
        return cls(obj["command_id"], F.member(CommandStatus, obj["status"], "status"), obj["detail"],
                   F.ts(obj["finished_at"], "finished_at"))


# --- errors on the wire -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ErrorReply:
    """What the cloud answers instead of a message: a stable code and a human message."""
    code: str
    message: str

    def __post_init__(self) -> None:
        F.text(self.code, "code", 64, minlen=1)
        F.text(self.message, "message", 512)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_json(cls, obj: dict) -> "ErrorReply":
        keys = frozenset({"code", "message"})
        F.exact_keys(obj, keys, keys, "error")
        return cls(F.text(obj["code"], "code", 64, minlen=1), F.text(obj["message"], "message", 512))


_TYPES: dict[type, str] = {
    DetectionBatch: "detections", BatchAck: "ack", Heartbeat: "heartbeat", HeartbeatAck: "heartbeat_ack",
    EnrolRequest: "enrol", EnrolResponse: "enrolled", CommandEnvelope: "command", ErrorReply: "error",
    CommandBatch: "commands", CommandResult: "command_result",
}


def encode(msg: Any) -> bytes:
    """A message as JSON bytes with its type and protocol version."""
    type_ = _TYPES.get(type(msg))
    if type_ is None:
        raise ProtocolError(f"not a protocol message: {type(msg).__name__}")
    return orjson.dumps({"type": type_, "v": VERSION, **msg.to_json()})


def decode(data: bytes, kind: type[Any]) -> Any:
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
    return kind.from_json(F.check_envelope(obj, type_, VERSION))


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
