"""LinkBackend on pyroute2 netlink, optionally inside a named network namespace.

pyroute2's string verbs stay in this file (STYLE: keep `ipr.link("add", ...)`
behind typed changes). Sysctls of another namespace are read and written with
`ip netns exec NS sysctl` (argument lists), since /proc/sys shows the caller's
namespace.
"""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netconfig.errors import BackendError
from netconfig.model import Link

IFF_UP = 0x1
NETNS_DIR = "/run/netns"      # where `ip netns add` mounts named namespaces
TIMEOUT = 10.0


class NetlinkBackend:
    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        if netns is not None and not (Path(NETNS_DIR) / netns).exists():
            # checked first: pyroute2 would otherwise create a namespace of that name
            raise BackendError(f"open network namespace {netns}", f"no such namespace in {NETNS_DIR}")
        try:
            self._ipr = IPRoute(netns=netns, flags=0) if netns else IPRoute()
        except (OSError, NetlinkError) as e:
            raise BackendError(f"open netlink{' in ' + netns if netns else ''}", str(e)) from None

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> NetlinkBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except NetlinkError as e:
            raise BackendError(what, f"{e.args[1] if len(e.args) > 1 else e} (errno {e.code})") from None
        except OSError as e:
            raise BackendError(what, str(e)) from None

    def _index(self, name: str) -> int:
        found = self._call(f"look up {name}", self._ipr.link_lookup, ifname=name)
        if not found:
            raise BackendError(f"look up {name}", "no such device")
        return found[0]

    def links(self) -> tuple[Link, ...]:
        msgs = list(self._call("list links", self._ipr.get_links))
        names = {m["index"]: m.get("IFLA_IFNAME") for m in msgs}
        addrs: dict[int, list[str]] = {}
        for a in self._call("list addresses", self._ipr.get_addr):
            if a["scope"] != 0:          # global scope only: link-local is not configuration
                continue
            addrs.setdefault(a["index"], []).append(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
        out = []
        for m in msgs:
            info = m.get("IFLA_LINKINFO")
            kind = info.get("IFLA_INFO_KIND") if info is not None else None
            master = m.get("IFLA_MASTER")
            out.append(Link(name=m.get("IFLA_IFNAME"), kind=kind or "", up=bool(m["flags"] & IFF_UP),
                            master=names.get(master) if master else None,
                            mac=m.get("IFLA_ADDRESS") or "",
                            addresses=tuple(sorted(addrs.get(m["index"], ())))))
        return tuple(sorted(out, key=lambda ln: ln.name))

    def gateway4(self) -> str | None:
        for r in self._call("list routes", self._ipr.get_routes, family=socket.AF_INET, table=254):
            if r["dst_len"] == 0 and r.get("RTA_GATEWAY"):
                return r.get("RTA_GATEWAY")
        return None

    def create_bridge(self, name: str) -> None:
        self._call(f"create bridge {name}", self._ipr.link, "add", ifname=name, kind="bridge",
                   br_stp_state=0, br_forward_delay=0)

    def delete_link(self, name: str) -> None:
        self._call(f"delete {name}", self._ipr.link, "del", index=self._index(name))

    def set_master(self, name: str, master: str | None) -> None:
        idx = self._index(name)
        self._call(f"set master of {name}", self._ipr.link, "set", index=idx,
                   master=self._index(master) if master else 0)

    def set_up(self, name: str, up: bool) -> None:
        self._call(f"set {name} {'up' if up else 'down'}", self._ipr.link, "set", index=self._index(name),
                   state="up" if up else "down")

    def add_address(self, name: str, cidr: str) -> None:
        addr, plen = cidr.split("/")
        self._call(f"add {cidr} to {name}", self._ipr.addr, "add", index=self._index(name), address=addr,
                   prefixlen=int(plen))

    def del_address(self, name: str, cidr: str) -> None:
        addr, plen = cidr.split("/")
        self._call(f"remove {cidr} from {name}", self._ipr.addr, "del", index=self._index(name), address=addr,
                   prefixlen=int(plen))

    def set_gateway4(self, gateway: str | None) -> None:
        if gateway:
            self._call(f"default via {gateway}", self._ipr.route, "replace", dst="0.0.0.0/0", gateway=gateway)
        elif self.gateway4() is not None:
            self._call("remove default route", self._ipr.route, "del", dst="0.0.0.0/0")

    def sysctl_get(self, key: str) -> str | None:
        if self.netns is None:
            try:
                return Path("/proc/sys", key).read_text().strip()
            except OSError:
                return None
        r = _run(["ip", "netns", "exec", self.netns, "sysctl", "-n", key.replace("/", ".")], check=False)
        return r.stdout.strip() if r.returncode == 0 else None

    def sysctl_set(self, key: str, value: str) -> None:
        if self.netns is None:
            try:
                Path("/proc/sys", key).write_text(value)
            except OSError as e:
                raise BackendError(f"sysctl {key}", str(e)) from None
            return
        r = _run(["ip", "netns", "exec", self.netns, "sysctl", "-q", "-w", f"{key.replace('/', '.')}={value}"],
                 check=False)
        if r.returncode != 0:
            raise BackendError(f"sysctl {key}", r.stderr.strip() or f"exit {r.returncode}")


def _run(argv: list[str], *, check: bool, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=check)
    except (OSError, subprocess.SubprocessError) as e:
        raise BackendError(" ".join(argv[:4]), str(e)) from None
