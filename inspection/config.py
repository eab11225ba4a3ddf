"""Engine configuration and Suricata-style ``--set KEY=VALUE`` overrides.

Known keys are validated (a bad value is a `ConfigError` naming the key);
unknown keys are returned to the caller, which warns once and carries on,
as Suricata users expect.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from inspection.errors import ConfigError


class ChecksumMode(enum.Enum):
    AUTO = "auto"   # validate, but stop when most packets fail (checksum offload in the capture)
    ALL = "all"
    NONE = "none"


XFF_MODES = ("extra-data", "overwrite")
XFF_DEPLOYMENTS = ("reverse", "forward")


@dataclass(frozen=True, slots=True)
class XffConfig:
    """Suricata's alert ``xff`` block: behind a proxy the peer address is the proxy's, so
    the client's address is taken from a header: the last one a reverse proxy appended, or
    the first one a forward proxy saw. `extra-data` logs it as ``alert.xff``; `overwrite`
    writes it over the alert's client address (``src_ip`` to the server, ``dest_ip`` back)."""

    enabled: bool = False
    mode: str = "extra-data"
    deployment: str = "reverse"
    header: str = "X-Forwarded-For"

    def __post_init__(self) -> None:
        if self.mode not in XFF_MODES:
            raise ConfigError("xff.mode", f"expected extra-data or overwrite, got {self.mode!r}")
        if self.deployment not in XFF_DEPLOYMENTS:
            raise ConfigError("xff.deployment", f"expected reverse or forward, got {self.deployment!r}")
        if not self.header or any(c in self.header for c in ": \t\r\n"):
            raise ConfigError("xff.header", f"not a header name: {self.header!r}")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    checksum: ChecksumMode = ChecksumMode.AUTO
    midstream: bool = True      # unlike Suricata: a restarted engine keeps inspecting open sessions
    async_oneside: bool = True   # unlike Suricata: one-sided captures (asymmetric routes) still parse
    stream_inline: bool = False  # data reaches the parsers on arrival, not when acknowledged (IPS mode)
    stream_depth: int = 1 << 20
    stream_memcap: int = 64 << 20
    flow_memcap: int = 256 << 20
    tcp_timeouts: tuple[float, float, float] = (60.0, 600.0, 60.0)
    udp_timeouts: tuple[float, float, float] = (30.0, 300.0, 0.0)
    other_timeouts: tuple[float, float, float] = (30.0, 300.0, 0.0)
    defrag_timeout: float = 60.0
    defrag_memcap: int = 32 << 20
    defrag_policy: str = "bsd"
    http_body_limit: int = 100 << 10   # bytes of each HTTP body the rules inspect (Suricata: 100 KiB)
    http_lzma: bool = False             # libhtp's lzma-enabled: off by default, as in Suricata
    http_decompress_layers: int = 3     # content codings undone per body
    http2: bool = True                  # HTTP/2 in clear (prior knowledge, Upgrade: h2c) is parsed
    file_size_limit: int = 32 << 20     # bytes hashed/scanned per file; past it the file is TRUNCATED
    file_scan_memcap: int = 128 << 20   # bytes of open files held for the scanner, all flows together
    app_layer_memcap: int = 64 << 20    # bytes parsers hold for unfinished messages, all flows together
    # digests in fileinfo: sha256 always; md5 and sha1 cost CPU on every file byte (`utm run` logs md5)
    file_hashes: tuple[str, ...] = ("md5", "sha1", "sha256")
    http_log_headers: bool = False
    alert_packet: bool = True    # alerts carry the packet (base64) and its link type, for the analyst
    alert_payload: bool = True   # ... and the payload or stream data that matched (base64, and printable)
    alert_metadata: bool = True  # ... and the rule's metadata (Suricata's alert ``metadata: no`` drops it)
    ipv6_compress: bool = False  # EVE addresses as fe80::1 (Suricata's ``ipv6-compress``; off, as in Suricata)
    xff: "XffConfig | None" = None   # X-Forwarded-For on alerts (Suricata's alert ``xff`` block); None: off
    # target-based reassembly: (policy, network) pairs from host-os-policy; the rest is Suricata's bsd
    host_os_policy: tuple[tuple[str, str], ...] = ()
    address_vars: tuple[tuple[str, str], ...] = ()   # rule variables from a config file (vars.address-groups)
    port_vars: tuple[tuple[str, str], ...] = ()      # ... and vars.port-groups
    # 53, plus mDNS and LLMNR, which use the same message format
    dns_udp_ports: frozenset[int] = field(default_factory=lambda: frozenset({53, 5353, 5355}))
    dns_tcp_ports: frozenset[int] = field(default_factory=lambda: frozenset({53}))
    app_detect_limit: int = 4096
    vlan_tracking: bool = True          # VLAN ids are part of the flow key

    @classmethod
    def from_sets(cls, sets: list[str], base: "EngineConfig | None" = None) -> tuple["EngineConfig", list[str]]:
        """Apply ``KEY=VALUE`` strings; return the config and the unknown keys."""
        cfg = base or cls()
        unknown: list[str] = []
        for item in sets:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(item, "expected KEY=VALUE")
            setter = _SETTERS.get(key)
            if setter is None:
                setter = next((f for p, f in _PREFIX_SETTERS.items() if key.startswith(p) and key != p), None)
            if setter is None:
                unknown.append(key)
                continue
            cfg = setter(cfg, key, value.strip())
        return cfg, unknown


def parse_bool(key: str, value: str) -> bool:
    v = value.lower()
    if v in ("1", "yes", "true", "on"):
        return True
    if v in ("0", "no", "false", "off"):
        return False
    raise ConfigError(key, f"expected a boolean, got {value!r}")


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)i?b?\s*$", re.IGNORECASE)


def parse_size(key: str, value: str) -> int:
    m = _SIZE.match(value)
    if not m:
        raise ConfigError(key, f"expected a size like 1mb, got {value!r}")
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]


def _at_least_one(key: str, n: int) -> int:
    if n < 1:
        raise ConfigError(key, "must be at least 1 byte")
    return n


def parse_seconds(key: str, value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise ConfigError(key, f"expected seconds, got {value!r}") from None
    if v < 0:
        raise ConfigError(key, "must not be negative")
    return v


def parse_ports(key: str, value: str) -> frozenset[int]:
    ports: set[int] = set()
    for part in value.strip("[] ").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ConfigError(key, f"expected ports, got {value!r}") from None
        if not (0 <= a <= b <= 65535):
            raise ConfigError(key, f"port out of range in {value!r}")
        ports.update(range(a, b + 1))
    if not ports:
        raise ConfigError(key, "no ports given")
    return frozenset(ports)


def _field(name: str, conv: Callable[[str, str], object]) -> Callable[[EngineConfig, str, str], EngineConfig]:
    """A setter for one field; a converter returning None leaves the field as it was."""
    def set_(cfg: EngineConfig, key: str, value: str) -> EngineConfig:
        v: Any = conv(key, value)      # the field's own type: `conv` was chosen for it
        return cfg if v is None else replace(cfg, **{name: v})
    return set_


def _timeout(name: str, idx: int) -> Callable[[EngineConfig, str, str], EngineConfig]:
    def set_(cfg: EngineConfig, key: str, value: str) -> EngineConfig:
        t = list(getattr(cfg, name))
        t[idx] = parse_seconds(key, value)
        timeouts: Any = tuple(t)
        return replace(cfg, **{name: timeouts})
    return set_


def _positive(key: str, value: str, most: int) -> int:
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise ConfigError(key, f"expected a whole number from 1 to {most}, got {value!r}")
    return int(value)


def _policy(key: str, value: str) -> str:
    v = value.lower()
    if v not in ("first", "last", "bsd", "linux", "windows", "solaris", "bsd-right"):
        raise ConfigError(key, f"unknown defrag policy {value!r}")
    return v


def _hashes(key: str, value: str) -> tuple[str, ...]:
    """``md5,sha256`` or ``[md5, sha1]``: the digests logged; sha256 is always among them."""
    names = {v.strip().lower() for v in value.strip("[] ").split(",") if v.strip()}
    bad = names - {"md5", "sha1", "sha256"}
    if bad:
        raise ConfigError(key, f"unknown hash {sorted(bad)[0]!r} (md5, sha1, sha256)")
    return tuple(sorted(names | {"sha256"}))


def _inline(key: str, value: str) -> bool | None:
    """``auto`` (Suricata's shipped value) means inline only in IPS mode: left as the
    caller's default, which knows its mode."""
    return None if value.lower() == "auto" else parse_bool(key, value)


def _both_dns_ports(cfg: EngineConfig, key: str, value: str) -> EngineConfig:
    p = parse_ports(key, value)
    return replace(cfg, dns_udp_ports=p, dns_tcp_ports=p)


def _xff(name: str, conv: Callable[[str, str], object]) -> Callable[[EngineConfig, str, str], EngineConfig]:
    def set_(cfg: EngineConfig, key: str, value: str) -> EngineConfig:
        try:
            v: Any = conv(key, value)
            xff = replace(cfg.xff or XffConfig(), **{name: v})
        except ConfigError as e:
            raise ConfigError(key, str(e).partition(": ")[2]) from None
        return replace(cfg, xff=xff)
    return set_


def _var(kind: str) -> Callable[[EngineConfig, str, str], EngineConfig]:
    """``vars.address-groups.NAME`` / ``vars.port-groups.NAME``: a later value replaces an earlier one."""
    def set_(cfg: EngineConfig, key: str, value: str) -> EngineConfig:
        name = key.rpartition(".")[2]
        pairs: Any = tuple(p for p in getattr(cfg, kind) if p[0] != name) + ((name, value),)
        return replace(cfg, **{kind: pairs})
    return set_


def _host_os_policy(cfg: EngineConfig, key: str, value: str) -> EngineConfig:
    """``host-os-policy.POLICY=[net, ...]``: a later list for the same policy replaces the earlier."""
    import ipaddress

    from inspection.stream.policy import POLICIES

    policy = key.rpartition(".")[2]
    if policy not in POLICIES:
        raise ConfigError(key, f"unknown policy {policy!r} (one of {', '.join(sorted(POLICIES))})")
    nets = []
    for part in value.strip().strip("[]").split(","):
        part = part.strip().strip("'\"")
        if not part:
            continue
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise ConfigError(key, f"not an address or network: {part!r}") from None
        nets.append((policy, part))
    kept = tuple(e for e in cfg.host_os_policy if e[0] != policy)
    return replace(cfg, host_os_policy=kept + tuple(nets))


_PREFIX_SETTERS = {"vars.address-groups.": _var("address_vars"), "vars.port-groups.": _var("port_vars"),
                   "host-os-policy.": _host_os_policy}


_SETTERS: dict[str, Callable[[EngineConfig, str, str], EngineConfig]] = {
    "stream.midstream": _field("midstream", parse_bool),
    "stream.inline": _field("stream_inline", lambda k, v: _inline(k, v)),
    "vlan.use-for-tracking": _field("vlan_tracking", parse_bool),
    "stream.async-oneside": _field("async_oneside", parse_bool),
    "stream.reassembly.depth": _field("stream_depth", parse_size),
    "stream.reassembly.memcap": _field("stream_memcap", parse_size),
    "stream.memcap": _field("stream_memcap", parse_size),
    "flow.memcap": _field("flow_memcap", parse_size),
    "defrag.timeout": _field("defrag_timeout", parse_seconds),
    "defrag.memcap": _field("defrag_memcap", parse_size),
    "defrag.policy": _field("defrag_policy", _policy),
    "app-layer.protocols.http.libhtp.default-config.response-body-limit": _field("http_body_limit", parse_size),
    "app-layer.protocols.http.libhtp.default-config.request-body-limit": _field("http_body_limit", parse_size),
    "app-layer.protocols.http.libhtp.default-config.lzma-enabled": _field("http_lzma", parse_bool),
    "app-layer.protocols.http.libhtp.default-config.response-body-decompress-layer-limit":
        _field("http_decompress_layers", lambda k, v: _positive(k, v, 16)),
    "app-layer.protocols.http2.enabled": _field("http2", parse_bool),
    "app-layer.memcap": _field("app_layer_memcap", lambda k, v: _at_least_one(k, parse_size(k, v))),
    "files.max-size": _field("file_size_limit", parse_size),
    "files.scan-memcap": _field("file_scan_memcap", lambda k, v: _at_least_one(k, parse_size(k, v))),
    "files.hashes": _field("file_hashes", _hashes),
    "outputs.eve.files.force-hash": _field("file_hashes", _hashes),
    "outputs.eve.alert.packet": _field("alert_packet", parse_bool),
    "outputs.eve.alert.payload": _field("alert_payload", parse_bool),
    "outputs.eve.alert.metadata": _field("alert_metadata", parse_bool),
    "outputs.eve.ipv6-compress": _field("ipv6_compress", parse_bool),
    "outputs.eve.alert.xff.enabled": _xff("enabled", parse_bool),
    "outputs.eve.alert.xff.mode": _xff("mode", lambda k, v: v.lower()),
    "outputs.eve.alert.xff.deployment": _xff("deployment", lambda k, v: v.lower()),
    "outputs.eve.alert.xff.header": _xff("header", lambda k, v: v),
    "outputs.eve.http.dump-all-headers": _field("http_log_headers", lambda k, v: v.lower() in ("both", "all", "yes", "true")),
    "app-layer.protocols.dns.detection-ports.dp": _both_dns_ports,
    "app-layer.protocols.dns.udp.detection-ports.dp": _field("dns_udp_ports", parse_ports),
    "app-layer.protocols.dns.tcp.detection-ports.dp": _field("dns_tcp_ports", parse_ports),
}
for _i, _state in enumerate(("new", "established", "closed")):
    _SETTERS[f"flow-timeouts.tcp.{_state}"] = _timeout("tcp_timeouts", _i)
    _SETTERS[f"flow-timeouts.udp.{_state}"] = _timeout("udp_timeouts", _i)
    _SETTERS[f"flow-timeouts.default.{_state}"] = _timeout("other_timeouts", _i)
    _SETTERS[f"flow-timeouts.icmp.{_state}"] = _timeout("other_timeouts", _i)
