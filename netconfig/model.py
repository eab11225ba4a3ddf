"""Observed state and typed changes: what plan reads and what apply executes."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from netconfig.ruleset import Family


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    kind: str                      # "bridge", "veth", "" for plain devices
    up: bool
    master: str | None = None      # name of the bridge it is enslaved to
    mac: str = ""
    addresses: tuple[str, ...] = ()   # "192.0.2.2/24", "2001:db8::2/64" (global scope only)


@dataclass(frozen=True, slots=True)
class RulesetState:
    family: Family
    digest: str | None                           # what our FORWARD jump carries; None = not ours / absent
    rule_counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Observed:
    links: tuple[Link, ...]
    gateway4: str | None
    sysctls: tuple[tuple[str, str | None], ...]   # only the keys the plan asked about
    rulesets: tuple[RulesetState, ...]

    def link(self, name: str) -> Link | None:
        return next((ln for ln in self.links if ln.name == name), None)

    def sysctl(self, key: str) -> str | None:
        return dict(self.sysctls).get(key)

    def ruleset(self, family: Family) -> RulesetState | None:
        return next((r for r in self.rulesets if r.family is family), None)


class ChangeClass(Enum):
    NO_CHANGE = "no change"
    APPLY = "apply"          # changed in place, traffic keeps flowing
    RESTART = "restart"      # the engine (utm run) must restart to pick it up
    RECREATE = "recreate"    # an object is (re)created; the link drops for a moment


class Op(Enum):
    NONE = "none"                    # NO_CHANGE rows and engine notes: nothing for a backend to do
    CREATE_BRIDGE = "create-bridge"
    DELETE_LINK = "delete-link"
    SET_MASTER = "set-master"        # value: bridge name or "" for no master
    SET_UP = "set-up"                # value: "up" / "down"
    ADD_ADDRESS = "add-address"
    DEL_ADDRESS = "del-address"
    SET_GATEWAY = "set-gateway"      # value: gateway or "" to remove the default route
    SET_SYSCTL = "set-sysctl"
    LOAD_RULESET = "load-ruleset"    # target: family value; text carried by the plan


@dataclass(frozen=True, slots=True)
class Change:
    cls: ChangeClass
    op: Op
    target: str          # link name, sysctl key, "ipv4"/"ipv6" for rulesets, "engine"
    value: str = ""
    note: str = ""       # human text for `utm net plan`

    def describe(self) -> str:
        what = f"{self.op.value} {self.target}" + (f" = {self.value}" if self.value else "")
        if self.op is Op.NONE:
            what = self.target
        return f"{self.cls.value:>9}  {what}" + (f"  ({self.note})" if self.note else "")


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    problems: tuple[str, ...]        # reasons the plan cannot be applied at all (nothing is touched)
    rulesets: tuple[tuple[Family, str], ...]   # rendered iptables-restore texts

    @property
    def actions(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.op is not Op.NONE)

    @property
    def unchanged(self) -> bool:
        return not self.problems and all(c.cls is ChangeClass.NO_CHANGE for c in self.changes)

    def ruleset_text(self, family: Family) -> str:
        return dict(self.rulesets)[family]
