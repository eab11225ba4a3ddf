"""The box's network as one validated TOML file, turned into frozen dataclasses.

TOML because the standard library reads it (tomllib) and it takes comments, which
an installer's file needs. Every error names the dotted key it is about, so a
field technician can fix the file without reading code. Unknown keys are errors:
a typo must not silently fall back to a default.
"""
from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Mapping

from firmware.base.addresses import routable_host
from netconfig.errors import ConfigError

MAX_CONFIG_BYTES = 256 * 1024
MAX_LIST_ITEMS = 4096            # isolated devices, exclusions: bounded, each list
PORT_ROLES = ("wan", "lan", "ssid1", "ssid2")
THREAT_CLASSES = ("intrusion", "malware", "phishing", "category")
# names the live policy gives a meaning of its own: never a classtype of [classtypes]
RESERVED_CLASSES = (*THREAT_CLASSES, "rules", "file", "*")
DEFAULT_DEPTH = 64 * 1024
DEFAULT_CEILING = 32 * 1024 * 1024   # the file size limit: a file in transit stays queued up to here
MAX_QUEUE = 65535

_IFNAME = re.compile(r"^[A-Za-z0-9_.\-]{1,15}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CLASSTYPE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class FailMode(Enum):
    OPEN = "open"       # no worker bound -> traffic passes (--queue-bypass)
    CLOSED = "closed"   # no worker bound -> traffic stops


class Action(Enum):
    BLOCK = "block"
    DETECT = "detect"


class Ipv4Mode(Enum):
    DHCP = "dhcp"
    STATIC = "static"


class Ipv6Mode(Enum):
    SLAAC = "slaac"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Ports:
    bridge: str
    wan: str
    lan: str
    ssid1: str | None = None
    ssid2: str | None = None

    def by_role(self) -> tuple[tuple[str, str], ...]:
        """(role, ifname) for each configured port, in the fixed role order."""
        return tuple((r, n) for r in PORT_ROLES if (n := getattr(self, r)) is not None)


@dataclass(frozen=True, slots=True)
class Management:
    ipv4: Ipv4Mode = Ipv4Mode.DHCP
    address: ipaddress.IPv4Interface | None = None
    gateway: ipaddress.IPv4Address | None = None
    dns: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()
    ipv6: Ipv6Mode = Ipv6Mode.SLAAC


@dataclass(frozen=True, slots=True)
class Inspection:
    depth: int = DEFAULT_DEPTH
    ceiling: int = DEFAULT_CEILING
    fail_mode: FailMode = FailMode.OPEN
    queue: int = 0
    workers: int = 1
    dns_block_answer: tuple[str, ...] = ()   # one IPv4 and/or one IPv6 address; () = off (docs/live.md)
    # QUIC (UDP 443) across the bridge is dropped: the engine reads no QUIC, so a browser falls back
    # to TLS over TCP, whose SNI the categories and rules see (docs/netconfig.md)
    block_quic: bool = True

    @property
    def queues(self) -> tuple[int, int]:
        """First and last NFQUEUE number used (inclusive)."""
        return self.queue, self.queue + self.workers - 1


@dataclass(frozen=True, slots=True)
class Exclusions:
    devices: tuple[str, ...] = ()     # MACs never queued (their flows are bypassed in the kernel)
    hashes: tuple[str, ...] = ()      # sha256 of files never blocked (engine side)
    domains: tuple[str, ...] = ()     # engine side
    urls: tuple[str, ...] = ()        # engine side
    rules: tuple[int, ...] = ()       # signature ids, engine side
    addresses: tuple[str, ...] = ()   # IP addresses/networks (either end of a flow), engine side


@dataclass(frozen=True, slots=True)
class NetConfig:
    ports: Ports
    management: Management = field(default_factory=Management)
    inspection: Inspection = field(default_factory=Inspection)
    modes: tuple[tuple[str, Action], ...] = tuple((c, Action.BLOCK) for c in THREAT_CLASSES)
    isolated: tuple[str, ...] = ()
    exclusions: Exclusions = field(default_factory=Exclusions)
    classtypes: tuple[tuple[str, Action], ...] = ()   # modes of single rule classtypes (win over intrusion)

    def mode(self, threat_class: str) -> Action:
        return dict(self.modes)[threat_class]


def load(path: str | Path) -> NetConfig:
    """Read and validate a config file; any problem is a ConfigError naming the key."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError("", f"cannot read {p}: {e.strerror or e}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError("", f"{p} is larger than {MAX_CONFIG_BYTES} bytes")
    return loads(raw)


def loads(raw: bytes | str) -> NetConfig:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", f"not valid TOML: {e}") from None
    return from_dict(doc)


def from_dict(doc: Mapping[str, Any]) -> NetConfig:
    _only(doc, "", ("ports", "management", "inspection", "modes", "classtypes", "isolation", "exclusions"))
    if "ports" not in doc:
        raise ConfigError("ports", "missing section (wan and lan are required)")
    ports = _ports(_table(doc["ports"], "ports"))
    isolation = _table(doc.get("isolation", {}), "isolation")
    _only(isolation, "isolation", ("devices",))
    isolated = _macs(isolation.get("devices", []), "isolation.devices")
    excl = _exclusions(_table(doc.get("exclusions", {}), "exclusions"))
    both = sorted(set(isolated) & set(excl.devices))
    if both:
        raise ConfigError("exclusions.devices", f"{both[0]} is also in isolation.devices; a device is either")
    management = _management(_table(doc.get("management", {}), "management"))
    inspection = _inspection(_table(doc.get("inspection", {}), "inspection"))
    _block_answer_off_link(inspection.dns_block_answer, management)
    return NetConfig(
        ports=ports,
        management=management,
        inspection=inspection,
        modes=_modes(_table(doc.get("modes", {}), "modes")),
        isolated=isolated,
        exclusions=excl,
        classtypes=_classtypes(_table(doc.get("classtypes", {}), "classtypes")),
    )


def _table(v: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise ConfigError(key, f"must be a table, got {type(v).__name__}")
    return v


def _only(t: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> None:
    for k in t:
        if k not in allowed:
            where = f"{key}.{k}" if key else k
            raise ConfigError(where, f"unknown key (allowed here: {', '.join(allowed)})")


def _str(t: Mapping[str, Any], k: str, key: str, default: str | None = None) -> str | None:
    v = t.get(k, default)
    if v is not None and not isinstance(v, str):
        raise ConfigError(key, f"must be a string, got {type(v).__name__}")
    return v


def _int(t: Mapping[str, Any], k: str, key: str, default: int, lo: int, hi: int) -> int:
    v = t.get(k, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(key, f"must be an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise ConfigError(key, f"{v} is out of range {lo}..{hi}")
    return v


def _enum(t: Mapping[str, Any], k: str, key: str, cls: type[Enum], default: Enum) -> Any:
    v = _str(t, k, key, default.value)
    try:
        return cls(v)
    except ValueError:
        raise ConfigError(key, f"{v!r} is not one of {', '.join(m.value for m in cls)}") from None


def _ifname(v: str | None, key: str) -> str | None:
    if v is None:
        return None
    if not _IFNAME.match(v) or v in (".", ".."):
        raise ConfigError(key, f"{v!r} is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)")
    return v


def _ports(t: Mapping[str, Any]) -> Ports:
    _only(t, "ports", ("bridge",) + PORT_ROLES)
    names: dict[str, str] = {}
    for role in ("bridge",) + PORT_ROLES:
        key = f"ports.{role}"
        v = _ifname(_str(t, role, key, "br0" if role == "bridge" else None), key)
        if v is None and role in ("wan", "lan"):
            raise ConfigError(key, "required")
        if v is not None:
            for other, name in names.items():
                if name == v:
                    raise ConfigError(key, f"{v!r} is already used by ports.{other}")
            names[role] = v
    return Ports(**names)


def _management(t: Mapping[str, Any]) -> Management:
    _only(t, "management", ("ipv4", "address", "gateway", "dns", "ipv6"))
    mode = _enum(t, "ipv4", "management.ipv4", Ipv4Mode, Ipv4Mode.DHCP)
    ipv6 = _enum(t, "ipv6", "management.ipv6", Ipv6Mode, Ipv6Mode.SLAAC)
    if mode is Ipv4Mode.DHCP:
        for k in ("address", "gateway", "dns"):
            if k in t:
                raise ConfigError(f"management.{k}", "only allowed with ipv4 = \"static\"")
        return Management(ipv4=mode, ipv6=ipv6)
    addr_s = _str(t, "address", "management.address")
    if addr_s is None:
        raise ConfigError("management.address", "required with ipv4 = \"static\" (e.g. \"192.0.2.2/24\")")
    try:
        addr = ipaddress.IPv4Interface(addr_s)
    except ValueError as e:
        raise ConfigError("management.address", f"not an IPv4 address/prefix: {e}") from None
    if "/" not in addr_s:
        raise ConfigError("management.address", "needs a prefix length, e.g. \"192.0.2.2/24\"")
    gw = None
    gw_s = _str(t, "gateway", "management.gateway")
    if gw_s is not None:
        try:
            gw = ipaddress.IPv4Address(gw_s)
        except ValueError as e:
            raise ConfigError("management.gateway", str(e)) from None
        if gw not in addr.network:
            raise ConfigError("management.gateway", f"{gw} is not inside {addr.network}")
    dns_raw = t.get("dns", [])
    if not isinstance(dns_raw, list):
        raise ConfigError("management.dns", "must be a list of addresses")
    dns = []
    for i, d in enumerate(dns_raw):
        try:
            dns.append(ipaddress.ip_address(d))
        except (ValueError, TypeError):
            raise ConfigError(f"management.dns[{i}]", f"{d!r} is not an IP address") from None
    return Management(ipv4=mode, address=addr, gateway=gw, dns=tuple(dns), ipv6=ipv6)


def _inspection(t: Mapping[str, Any]) -> Inspection:
    _only(t, "inspection", ("depth", "ceiling", "fail_mode", "queue", "workers", "dns_block_answer", "block_quic"))
    depth = _int(t, "depth", "inspection.depth", DEFAULT_DEPTH, 1024, 1 << 31)
    ceiling = _int(t, "ceiling", "inspection.ceiling", max(DEFAULT_CEILING, depth), 1024, 1 << 40)
    if ceiling < depth:
        raise ConfigError("inspection.ceiling", f"{ceiling} is below inspection.depth {depth}")
    workers = _int(t, "workers", "inspection.workers", 1, 1, 64)
    queue = _int(t, "queue", "inspection.queue", 0, 0, MAX_QUEUE)
    if queue + workers - 1 > MAX_QUEUE:
        raise ConfigError("inspection.workers", f"queues {queue}..{queue + workers - 1} pass {MAX_QUEUE}")
    fail = _enum(t, "fail_mode", "inspection.fail_mode", FailMode, FailMode.OPEN)
    quic = t.get("block_quic", True)
    if not isinstance(quic, bool):
        raise ConfigError("inspection.block_quic", f"must be true or false, got {type(quic).__name__}")
    return Inspection(depth=depth, ceiling=ceiling, fail_mode=fail, queue=queue, workers=workers,
                      dns_block_answer=_dns_block_answer(t.get("dns_block_answer", [])), block_quic=quic)


def _dns_block_answer(v: Any) -> tuple[str, ...]:
    """Where `utm run` points DNS answers for blocked names: at most one address per family."""
    key = "inspection.dns_block_answer"
    out: list[str] = []
    versions: set[int] = set()
    for i, a in enumerate(_list(v, key)):
        try:
            addr = ipaddress.ip_address(a)
        except (ValueError, TypeError):
            raise ConfigError(f"{key}[{i}]", f"{a!r} is not an IP address") from None
        if addr.version in versions:
            raise ConfigError(f"{key}[{i}]", f"one IPv{addr.version} address only")
        if not routable_host(addr):
            raise ConfigError(f"{key}[{i}]", f"{addr} cannot be a host's address beyond the router")
        versions.add(addr.version)
        out.append(str(addr))
    return tuple(out)


def _block_answer_off_link(answers: tuple[str, ...], mgmt: Management) -> None:
    """The block address must be reached through the router: on the office's own subnet the
    devices would ask for its MAC, which nobody gives, and the box's own address is not bridged."""
    key = "inspection.dns_block_answer"
    for i, a in enumerate(answers):
        addr = ipaddress.ip_address(a)
        if mgmt.address is not None and addr == mgmt.address.ip:
            raise ConfigError(f"{key}[{i}]", f"{addr} is the box's own address; traffic to the box is not inspected")
        if mgmt.address is not None and addr in mgmt.address.network:
            raise ConfigError(f"{key}[{i}]", f"{addr} is on the office subnet {mgmt.address.network}: devices "
                                             "would look for it there and nobody answers; use an unused address "
                                             "beyond the router")


def _modes(t: Mapping[str, Any]) -> tuple[tuple[str, Action], ...]:
    _only(t, "modes", THREAT_CLASSES)
    return tuple((c, _enum(t, c, f"modes.{c}", Action, Action.BLOCK)) for c in THREAT_CLASSES)


def _classtypes(t: Mapping[str, Any]) -> tuple[tuple[str, Action], ...]:
    """[classtypes]: trojan-activity = "detect" | "block"; a classtype's own mode wins over modes.intrusion."""
    if len(t) > MAX_LIST_ITEMS:
        raise ConfigError("classtypes", f"{len(t)} entries; at most {MAX_LIST_ITEMS}")
    out = []
    for k in t:
        if k in RESERVED_CLASSES:
            raise ConfigError(f"classtypes.{k}", "not a rule classtype: threat classes go in [modes]")
        if not _CLASSTYPE.match(k):
            raise ConfigError(f"classtypes.{k}", "not a rule classtype (a-z 0-9 _ -, at most 64)")
        out.append((k, _enum(t, k, f"classtypes.{k}", Action, Action.BLOCK)))
    return tuple(out)


def _list(v: Any, key: str) -> list[Any]:
    if not isinstance(v, list):
        raise ConfigError(key, f"must be a list, got {type(v).__name__}")
    if len(v) > MAX_LIST_ITEMS:
        raise ConfigError(key, f"{len(v)} entries; at most {MAX_LIST_ITEMS}")
    return v


def _macs(v: Any, key: str) -> tuple[str, ...]:
    out: list[str] = []
    for i, m in enumerate(_list(v, key)):
        norm = m.strip().lower().replace("-", ":") if isinstance(m, str) else ""
        if not _MAC.match(norm):
            raise ConfigError(f"{key}[{i}]", f"{m!r} is not a MAC address like 02:00:00:00:00:01")
        if norm not in out:
            out.append(norm)
    return tuple(out)


def _strings(v: Any, key: str, check: re.Pattern[str] | None = None, what: str = "") -> tuple[str, ...]:
    out: list[str] = []
    for i, s in enumerate(_list(v, key)):
        if not isinstance(s, str) or not s.strip() or len(s) > 2048:
            raise ConfigError(f"{key}[{i}]", "must be a non-empty string of at most 2048 characters")
        s = s.strip()
        if check is not None and not check.match(s.lower()):
            raise ConfigError(f"{key}[{i}]", f"{s!r} is not {what}")
        out.append(s.lower() if check is not None else s)
    return tuple(out)


def _exclusions(t: Mapping[str, Any]) -> Exclusions:
    _only(t, "exclusions", ("devices", "hashes", "domains", "urls", "rules", "addresses"))
    rules = []
    for i, r in enumerate(_list(t.get("rules", []), "exclusions.rules")):
        if isinstance(r, bool) or not isinstance(r, int) or not 0 < r < 1 << 32:
            raise ConfigError(f"exclusions.rules[{i}]", f"{r!r} is not a signature id (1..2^32-1)")
        rules.append(r)
    return Exclusions(
        devices=_macs(t.get("devices", []), "exclusions.devices"),
        hashes=_strings(t.get("hashes", []), "exclusions.hashes", _SHA256, "a sha256 in hex"),
        domains=_strings(t.get("domains", []), "exclusions.domains"),
        urls=_strings(t.get("urls", []), "exclusions.urls"),
        rules=tuple(rules),
        addresses=_networks(t.get("addresses", []), "exclusions.addresses"),
    )


def _networks(v: Any, key: str) -> tuple[str, ...]:
    out: list[str] = []
    for i, a in enumerate(_list(v, key)):
        try:
            n = str(ipaddress.ip_network(a.strip(), strict=False)) if isinstance(a, str) else None
        except ValueError:
            n = None
        if n is None:
            raise ConfigError(f"{key}[{i}]", f"{a!r} is not an IP address or network like 192.0.2.0/24")
        if n not in out:
            out.append(n)
    return tuple(out)
