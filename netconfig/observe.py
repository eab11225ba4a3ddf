"""Live state through two narrow Protocols (links, netfilter); the kernel is never read elsewhere."""
from __future__ import annotations

from typing import Protocol

from netconfig import plan as planner
from netconfig import ruleset as rs
from netconfig.model import Link, Observed, RulesetState
from netconfig.schema import NetConfig


class LinkBackend(Protocol):
    """Links, bridge ports, addresses, the default route and sysctls of one network namespace."""

    def links(self) -> tuple[Link, ...]: ...
    def gateway4(self) -> str | None: ...
    def sysctl_get(self, key: str) -> str | None: ...
    def create_bridge(self, name: str) -> None: ...
    def delete_link(self, name: str) -> None: ...
    def set_master(self, name: str, master: str | None) -> None: ...
    def set_up(self, name: str, up: bool) -> None: ...
    def add_address(self, name: str, cidr: str) -> None: ...
    def del_address(self, name: str, cidr: str) -> None: ...
    def set_gateway4(self, gateway: str | None) -> None: ...
    def sysctl_set(self, key: str, value: str) -> None: ...


class FilterBackend(Protocol):
    """The owned tables (filter, mangle) of one family: saved as text, replaced atomically."""

    def save(self, family: rs.Family) -> str: ...
    def restore(self, family: rs.Family, text: str) -> None: ...


def observe(cfg: NetConfig, links: LinkBackend, filters: FilterBackend) -> Observed:
    states = []
    for family in rs.Family:
        digest, counts = rs.parse_saved(filters.save(family))
        states.append(RulesetState(family=family, digest=digest, rule_counts=counts))
    return Observed(
        links=links.links(),
        gateway4=links.gateway4(),
        sysctls=tuple((k, links.sysctl_get(k)) for k in planner.sysctl_keys(cfg)),
        rulesets=tuple(states),
    )
