"""Address and port specifications of a rule header, and the variables they use.

A spec (``[$HOME_NET,!10.1.0.0/16]``, ``[1024:5000,49152:]``, ``!$HTTP_PORTS``)
is resolved once, at load time, into sorted disjoint integer intervals: the
matcher then answers "is this address/port in the spec" with one bisect, and
two specs written differently but meaning the same compare equal.

Semantics follow Suricata: a list is the union of its plain items minus the
union of its negated items (``[!x]`` alone means "everything but x"); ``!`` in
front of an item or group complements it; a spec that matches nothing
(``!any``) is an error.
"""
from __future__ import annotations

import ipaddress
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Callable, Mapping

from signatures.errors import VariableError

Intervals = tuple[tuple[int, int], ...]

_V4_MAX = (1 << 32) - 1
_V6_MAX = (1 << 128) - 1
_PORT_MAX = 65535
_MAX_DEPTH = 32
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PORT = re.compile(r"([0-9]{1,5})?(:([0-9]{1,5})?)?\Z")


class SpecError(ValueError):
    """Internal: a spec cannot be resolved. Callers turn it into a typed error."""


# --- interval arithmetic -----------------------------------------------------------

def _normalise(ivs: list[tuple[int, int]]) -> Intervals:
    ivs.sort()
    out: list[tuple[int, int]] = []
    for lo, hi in ivs:
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def _complement(ivs: Intervals, top: int) -> Intervals:
    out = []
    nxt = 0
    for lo, hi in ivs:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= top:
        out.append((nxt, top))
    return tuple(out)


def _subtract(a: Intervals, b: Intervals, top: int) -> Intervals:
    # a minus b == a intersect complement(b)
    comp = _complement(b, top)
    out = []
    i = j = 0
    while i < len(a) and j < len(comp):
        lo = max(a[i][0], comp[j][0])
        hi = min(a[i][1], comp[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < comp[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def intervals_contain(ivs: Intervals, value: int) -> bool:
    """Whether `value` (an address as an integer, or a port) lies in the sorted intervals."""
    i = bisect_right(ivs, (value, 1 << 129)) - 1
    return i >= 0 and ivs[i][0] <= value <= ivs[i][1]



def _check_intervals(ivs: Intervals, top: int, what: str) -> None:
    prev = -2
    for iv in ivs:
        if not (isinstance(iv, tuple) and len(iv) == 2):
            raise ValueError(f"{what}: intervals must be (low, high) pairs")
        lo, hi = iv
        if not (0 <= lo <= hi <= top) or lo <= prev + 1:
            raise ValueError(f"{what}: intervals must be sorted, disjoint, within 0..{top}")
        prev = hi


# --- resolved specs ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AddressSpec:
    """The addresses a header field covers, as IPv4 and IPv6 intervals; `text` is as written."""

    text: str
    ipv4: Intervals
    ipv6: Intervals

    def __post_init__(self) -> None:
        _check_intervals(self.ipv4, _V4_MAX, "ipv4")
        _check_intervals(self.ipv6, _V6_MAX, "ipv6")
        if not self.ipv4 and not self.ipv6:
            raise ValueError("an address spec must cover at least one address")

    @property
    def is_any(self) -> bool:
        return self.ipv4 == ((0, _V4_MAX),) and self.ipv6 == ((0, _V6_MAX),)

    def contains(self, address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        return intervals_contain(self.ipv4 if ip.version == 4 else self.ipv6, int(ip))

    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The covered addresses as CIDR blocks (for display and kernel sets)."""
        nets: list = []
        for ivs, cls in ((self.ipv4, ipaddress.IPv4Address), (self.ipv6, ipaddress.IPv6Address)):
            for lo, hi in ivs:
                nets.extend(ipaddress.summarize_address_range(cls(lo), cls(hi)))
        return tuple(nets)


@dataclass(frozen=True, slots=True)
class PortSpec:
    """The ports a header field covers, as inclusive intervals; `text` is as written."""

    text: str
    ranges: Intervals

    def __post_init__(self) -> None:
        _check_intervals(self.ranges, _PORT_MAX, "ports")
        if not self.ranges:
            raise ValueError("a port spec must cover at least one port")

    @property
    def is_any(self) -> bool:
        return self.ranges == ((0, _PORT_MAX),)

    def contains(self, port: int) -> bool:
        return intervals_contain(self.ranges, port)


# --- the spec grammar, shared by addresses and ports ---------------------------------

_Set = tuple[Intervals, ...]  # one interval list per family (2 for addresses, 1 for ports)


class _Grammar:
    """Recursive descent over ``!``, ``[ , ]`` and atoms; `atom` resolves one token."""

    def __init__(self, tops: tuple[int, ...], atom: Callable[[str, int], _Set]) -> None:
        self.tops = tops
        self.atom = atom

    def universe(self) -> _Set:
        return tuple(((0, t),) for t in self.tops)

    def complement(self, s: _Set) -> _Set:
        return tuple(_complement(ivs, t) for ivs, t in zip(s, self.tops))

    def parse(self, text: str, depth: int) -> _Set:
        if depth > _MAX_DEPTH:
            raise SpecError("nesting too deep")
        result, pos = self._item(text, 0, depth)
        if text[pos:].strip():
            raise SpecError(f"unexpected {text[pos:].strip()[:20]!r}")
        return result

    def _item(self, s: str, i: int, depth: int) -> tuple[_Set, int]:
        neg, i = self._negations(s, i)
        if i < len(s) and s[i] == "[":
            value, i = self._list(s, i + 1, depth + 1)
        else:
            j = i
            while j < len(s) and s[j] not in ",[]":
                j += 1
            token = s[i:j].strip()
            if not token or any(c.isspace() for c in token) or "!" in token:
                raise SpecError(f"bad item {s[i:j].strip()[:40]!r}" if token else "empty item")
            value, i = self.atom(token, depth), j
        return (self.complement(value) if neg else value), i

    @staticmethod
    def _negations(s: str, i: int) -> tuple[bool, int]:
        neg = False
        while True:
            while i < len(s) and s[i].isspace():
                i += 1
            if i < len(s) and s[i] == "!":
                neg = not neg
                i += 1
            else:
                return neg, i

    def _list(self, s: str, i: int, depth: int) -> tuple[_Set, int]:
        if depth > _MAX_DEPTH:
            raise SpecError("nesting too deep")
        include: list[list[tuple[int, int]]] = [[] for _ in self.tops]
        exclude: list[list[tuple[int, int]]] = [[] for _ in self.tops]
        any_plain = False
        while True:
            neg, i = self._negations(s, i)
            value, i = self._item(s, i, depth)
            target = exclude if neg else include
            any_plain |= not neg
            for fam, ivs in enumerate(value):
                target[fam].extend(ivs)
            while i < len(s) and s[i].isspace():
                i += 1
            if i >= len(s):
                raise SpecError("unterminated '['")
            if s[i] == "]":
                i += 1
                break
            if s[i] != ",":
                raise SpecError(f"expected ',' or ']' at {s[i:i + 10]!r}")
            i += 1
        base = tuple(_normalise(ivs) for ivs in include) if any_plain else self.universe()
        return tuple(_subtract(b, _normalise(ex), t) for b, ex, t in zip(base, exclude, self.tops)), i


# --- variables -----------------------------------------------------------------------

DEFAULT_ADDRESS_VARS: Mapping[str, str] = {
    "HOME_NET": "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]",
    "EXTERNAL_NET": "!$HOME_NET",
    "HTTP_SERVERS": "$HOME_NET",
    "SMTP_SERVERS": "$HOME_NET",
    "SQL_SERVERS": "$HOME_NET",
    "DNS_SERVERS": "$HOME_NET",
    "TELNET_SERVERS": "$HOME_NET",
    "AIM_SERVERS": "$EXTERNAL_NET",
    "DC_SERVERS": "$HOME_NET",
    "DNP3_SERVER": "$HOME_NET",
    "DNP3_CLIENT": "$HOME_NET",
    "MODBUS_CLIENT": "$HOME_NET",
    "MODBUS_SERVER": "$HOME_NET",
    "ENIP_CLIENT": "$HOME_NET",
    "ENIP_SERVER": "$HOME_NET",
}
"""Suricata's shipped ``vars.address-groups`` (suricata.yaml)."""

DEFAULT_PORT_VARS: Mapping[str, str] = {
    "HTTP_PORTS": "80",
    "SHELLCODE_PORTS": "!80",
    "ORACLE_PORTS": "1521",
    "SSH_PORTS": "22",
    "DNP3_PORTS": "20000",
    "MODBUS_PORTS": "502",
    "FILE_DATA_PORTS": "[$HTTP_PORTS,110,143]",
    "FTP_PORTS": "21",
    "GENEVE_PORTS": "6081",
    "VXLAN_PORTS": "4789",
    "TEREDO_PORTS": "3544",
}
"""Suricata's shipped ``vars.port-groups`` (suricata.yaml)."""


@dataclass(frozen=True, slots=True)
class Variables:
    """Address and port variables; every value is resolved (and so validated) at construction.

    `_cache` memoises resolved specs by text: ET Open writes the same dozen
    header fields tens of thousands of times, and a frozen spec can be shared.
    """

    addresses: tuple[tuple[str, str], ...]
    ports: tuple[tuple[str, str], ...]
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        for kind, pairs in (("address", self.addresses), ("port", self.ports)):
            for pair in pairs:
                if not (isinstance(pair, tuple) and len(pair) == 2
                        and isinstance(pair[0], str) and isinstance(pair[1], str)):
                    raise TypeError(f"{kind} variables must be (name, value) string pairs")
                if not _VAR_NAME.match(pair[0]):
                    raise VariableError(pair[0], "not a valid variable name")
        names = [n for n, _ in self.addresses] + [n for n, _ in self.ports]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise VariableError(sorted(dup)[0], "defined more than once (as address and port?)")
        for name, value in self.addresses:
            try:
                self.address(value)
            except SpecError as e:
                raise VariableError(name, f"{value!r}: {e}") from None
        for name, value in self.ports:
            try:
                self.port(value)
            except SpecError as e:
                raise VariableError(name, f"{value!r}: {e}") from None

    @classmethod
    def default(cls) -> "Variables":
        return cls(tuple(DEFAULT_ADDRESS_VARS.items()), tuple(DEFAULT_PORT_VARS.items()))

    def with_overrides(self, values: Mapping[str, str]) -> "Variables":
        """Replace or add variables. A new name is a port variable when it ends in ``_PORT(S)``."""
        addrs = dict(self.addresses)
        ports = dict(self.ports)
        for name, value in values.items():
            name = name.lstrip("$")
            if name in ports or (name not in addrs and name.upper().endswith(("_PORTS", "_PORT"))):
                ports[name] = value
            else:
                addrs[name] = value
        return Variables(tuple(addrs.items()), tuple(ports.items()))

    def address(self, text: str) -> AddressSpec:
        """Resolve an address spec; raises `SpecError` (internal) when it is invalid."""
        key = ("a", text)
        hit = self._cache.get(key)
        if hit is None:
            v4, v6 = _Grammar((_V4_MAX, _V6_MAX), self._address_atom).parse(text, 0)
            if not v4 and not v6:
                raise SpecError("matches no address")
            hit = self._cache[key] = AddressSpec(text, v4, v6)
        return hit

    def port(self, text: str) -> PortSpec:
        """Resolve a port spec; raises `SpecError` (internal) when it is invalid."""
        key = ("p", text)
        hit = self._cache.get(key)
        if hit is None:
            (ranges,) = _Grammar((_PORT_MAX,), self._port_atom).parse(text, 0)
            if not ranges:
                raise SpecError("matches no port")
            hit = self._cache[key] = PortSpec(text, ranges)
        return hit

    # atoms

    def _lookup(self, token: str, depth: int, want_port: bool) -> str:
        name = token[1:]
        table, other = (self.ports, self.addresses) if want_port else (self.addresses, self.ports)
        for n, v in table:
            if n == name:
                if depth >= _MAX_DEPTH // 2:
                    raise SpecError(f"variable {token} nests too deep (cycle?)")
                return v
        if any(n == name for n, _ in other):
            raise SpecError(f"{token} is a{'n address' if want_port else ' port'} variable")
        raise SpecError(f"undefined variable {token}")

    def _address_atom(self, token: str, depth: int) -> _Set:
        if token == "any":
            return ((0, _V4_MAX),), ((0, _V6_MAX),)
        if token.startswith("$"):
            value = self._lookup(token, depth, want_port=False)
            return _Grammar((_V4_MAX, _V6_MAX), self._address_atom).parse(value, depth + 1)
        try:
            if "-" in token and "/" not in token:
                lo_s, hi_s = token.split("-", 1)
                lo, hi = ipaddress.ip_address(lo_s), ipaddress.ip_address(hi_s)
                if lo.version != hi.version or int(lo) > int(hi):
                    raise SpecError(f"bad address range {token!r}")
                iv = ((int(lo), int(hi)),)
                return (iv, ()) if lo.version == 4 else ((), iv)
            net = ipaddress.ip_network(token, strict=False)
        except ValueError:
            raise SpecError(f"bad address {token[:40]!r}") from None
        iv = ((int(net.network_address), int(net.broadcast_address)),)
        return (iv, ()) if net.version == 4 else ((), iv)

    def _port_atom(self, token: str, depth: int) -> _Set:
        if token == "any":
            return (((0, _PORT_MAX),),)
        if token.startswith("$"):
            value = self._lookup(token, depth, want_port=True)
            return _Grammar((_PORT_MAX,), self._port_atom).parse(value, depth + 1)
        m = _PORT.match(token)
        if not m or not (m.group(1) or m.group(3)):
            raise SpecError(f"bad port {token[:40]!r}")
        lo = int(m.group(1)) if m.group(1) else 0
        hi = (int(m.group(3)) if m.group(3) else _PORT_MAX) if m.group(2) else lo
        if not 0 <= lo <= hi <= _PORT_MAX:
            raise SpecError(f"bad port range {token!r}")
        return (((lo, hi),),)
