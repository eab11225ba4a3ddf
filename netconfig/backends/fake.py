"""An in-memory kernel for unit tests: links, addresses, sysctls and saved rulesets.

Shipped in the package (STYLE habit 9) so tests exercise the real planner and
applier. `fail_on` makes one operation raise, to test rollback.
"""
from __future__ import annotations

import dataclasses

from netconfig import ruleset as rs
from netconfig.errors import BackendError
from netconfig.model import Link

EMPTY_TABLES = "*filter\nCOMMIT\n*mangle\nCOMMIT"


class FakeKernel:
    """Implements both LinkBackend and FilterBackend."""

    def __init__(self, links: tuple[Link, ...] = ()) -> None:
        self._links: dict[str, Link] = {ln.name: ln for ln in links}
        self._gw: str | None = None
        self._sysctl: dict[str, str] = {}
        self._rules: dict[rs.Family, str] = {}
        self.fail_on: set[str] = set()       # operation names, e.g. {"restore:ipv6", "set_master:eth3"}
        self.fail_once: set[str] = set()     # the same, but each fails only the first time (a transient error)
        self.calls: list[str] = []           # every mutating call, for assertions

    def _mut(self, op: str) -> None:
        self.calls.append(op)
        if op in self.fail_on or op.split(":")[0] in self.fail_on:
            raise BackendError(op, "injected failure")
        for key in (op, op.split(":")[0]):
            if key in self.fail_once:
                self.fail_once.discard(key)
                raise BackendError(op, "injected failure")

    def _get(self, name: str) -> Link:
        if name not in self._links:
            raise BackendError(f"link {name}", "no such device")
        return self._links[name]

    # LinkBackend
    def links(self) -> tuple[Link, ...]:
        return tuple(self._links[n] for n in sorted(self._links))

    def gateway4(self) -> str | None:
        return self._gw

    def sysctl_get(self, key: str) -> str | None:
        dev = key.split("/")[3] if key.startswith("net/ipv6/conf/") else None
        if dev is not None and dev not in self._links:
            return None
        return self._sysctl.get(key, "0" if key.endswith("disable_ipv6") else "1")

    def create_bridge(self, name: str) -> None:
        self._mut(f"create_bridge:{name}")
        if name in self._links:
            raise BackendError(f"create bridge {name}", "file exists")
        self._links[name] = Link(name=name, kind="bridge", up=False)

    def delete_link(self, name: str) -> None:
        self._mut(f"delete_link:{name}")
        self._get(name)
        del self._links[name]
        for key in [k for k in self._sysctl if k.split("/")[3:4] == [name]]:
            del self._sysctl[key]      # as in the kernel: a device's sysctls go with it
        for n, ln in list(self._links.items()):
            if ln.master == name:
                self._links[n] = dataclasses.replace(ln, master=None)

    def set_master(self, name: str, master: str | None) -> None:
        self._mut(f"set_master:{name}")
        link = self._get(name)
        if master is not None:
            self._get(master)
        self._links[name] = dataclasses.replace(link, master=master)

    def set_up(self, name: str, up: bool) -> None:
        self._mut(f"set_up:{name}")
        self._links[name] = dataclasses.replace(self._get(name), up=up)

    def add_address(self, name: str, cidr: str) -> None:
        self._mut(f"add_address:{name}")
        link = self._get(name)
        self._links[name] = dataclasses.replace(link, addresses=link.addresses + (cidr,))

    def del_address(self, name: str, cidr: str) -> None:
        self._mut(f"del_address:{name}")
        link = self._get(name)
        self._links[name] = dataclasses.replace(link, addresses=tuple(a for a in link.addresses if a != cidr))

    def set_gateway4(self, gateway: str | None) -> None:
        self._mut("set_gateway4")
        self._gw = gateway

    def sysctl_set(self, key: str, value: str) -> None:
        self._mut(f"sysctl_set:{key}")
        self._sysctl[key] = value

    # FilterBackend
    def save(self, family: rs.Family) -> str:
        return self._rules.get(family, EMPTY_TABLES)   # like iptables-nft-save -t: the tables, empty

    def restore(self, family: rs.Family, text: str) -> None:
        self._mut(f"restore:{family.value}")
        self._rules[family] = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
