"""Desired config vs observed state -> a typed, ordered plan (pure).

Order matters and is fixed: bridge, ports, link state, addresses, routes,
sysctls, then the rulesets (physdev rules name ports that must exist).
Ports that are missing from the system, or a non-bridge link holding the
bridge's name, are problems: apply refuses and touches nothing.
"""
from __future__ import annotations

from netconfig import ruleset as rs
from netconfig.model import Change, ChangeClass, Observed, Op, Plan
from netconfig.schema import Ipv4Mode, Ipv6Mode, NetConfig

NC, AP, RS, RC = ChangeClass.NO_CHANGE, ChangeClass.APPLY, ChangeClass.RESTART, ChangeClass.RECREATE


def sysctl_keys(cfg: NetConfig) -> tuple[str, ...]:
    """The sysctls plan compares; observe reads exactly these."""
    br = cfg.ports.bridge
    return (f"net/ipv6/conf/{br}/disable_ipv6", f"net/ipv6/conf/{br}/accept_ra", f"net/ipv6/conf/{br}/autoconf")


def desired_sysctls(cfg: NetConfig) -> tuple[tuple[str, str], ...]:
    dis, ra, auto = sysctl_keys(cfg)
    if cfg.management.ipv6 is Ipv6Mode.SLAAC:
        return ((dis, "0"), (ra, "2"), (auto, "1"))     # 2: RAs count even if forwarding gets enabled
    return ((dis, "1"),)


def make_plan(cfg: NetConfig, obs: Observed, committed: NetConfig | None = None) -> Plan:
    ch: list[Change] = []
    problems: list[str] = []
    br = cfg.ports.bridge
    bridge = obs.link(br)
    if bridge is None:
        ch.append(Change(RC, Op.CREATE_BRIDGE, br, note="bridge missing"))
    elif bridge.kind != "bridge":
        problems.append(f"ports.bridge: {br} exists and is a {bridge.kind or 'plain'} link, not a bridge")
    else:
        ch.append(Change(NC, Op.NONE, f"bridge {br}"))

    wanted = {name for _, name in cfg.ports.by_role()}
    for role, name in cfg.ports.by_role():
        link = obs.link(name)
        if link is None:
            problems.append(f"ports.{role}: interface {name!r} does not exist")
            continue
        if link.kind == "bridge":
            problems.append(f"ports.{role}: {name!r} is a bridge, not a port")
            continue
        if link.master != br:
            note = f"{role} port" + (f", leaves {link.master}" if link.master else "")
            if link.addresses:   # an enslaved port's own addresses stop working: say so before it happens
                note += f"; its addresses {', '.join(link.addresses)} stop working as a bridge port"
            ch.append(Change(AP, Op.SET_MASTER, name, br, note=note))
        else:
            ch.append(Change(NC, Op.NONE, f"port {name} ({role}) in {br}"))
        ch.append(Change(NC, Op.NONE, f"port {name} up") if link.up else Change(AP, Op.SET_UP, name, "up"))
    for link in obs.links:   # ports of our bridge that the config no longer names are released
        if link.master == br and link.name not in wanted:
            ch.append(Change(AP, Op.SET_MASTER, link.name, "", note=f"no longer a port of {br}"))
    if bridge is None or not bridge.up:
        ch.append(Change(AP, Op.SET_UP, br, "up"))

    ch += _addresses(cfg, obs)
    for key, value in desired_sysctls(cfg):
        cur = obs.sysctl(key)
        ch.append(Change(NC, Op.NONE, f"{key} = {value}") if cur == value
                  else Change(AP, Op.SET_SYSCTL, key, value, note=f"was {cur if cur is not None else 'unset'}"))

    texts = []
    for family in rs.Family:
        r = rs.render(cfg, family)
        texts.append((family, r.text))
        live = obs.ruleset(family)
        if live is not None and live.digest == r.digest and live.rule_counts == tuple(sorted(r.rule_counts)):
            ch.append(Change(NC, Op.NONE, f"{family.value} ruleset {r.digest}"))
        else:
            was = live.digest if live is not None and live.digest else "none of ours"
            ch.append(Change(AP, Op.LOAD_RULESET, family.value, r.digest, note=f"live: {was}"))
    ch += _engine(cfg, committed)
    return Plan(changes=tuple(ch), problems=tuple(problems), rulesets=tuple(texts))


def _addresses(cfg: NetConfig, obs: Observed) -> list[Change]:
    m = cfg.management
    br = cfg.ports.bridge
    if m.ipv4 is Ipv4Mode.DHCP:
        return [Change(NC, Op.NONE, f"{br} IPv4 by DHCP",
                       note="the address belongs to a DHCP client on the bridge; netconfig does not start one yet")]
    out: list[Change] = []
    link = obs.link(br)
    have = {a for a in (link.addresses if link else ()) if ":" not in a}
    want = str(m.address)
    # old addresses go first: removing a primary address takes its secondaries (the new one) with it
    out += [Change(AP, Op.DEL_ADDRESS, br, a, note="not in the config") for a in sorted(have - {want})]
    out.append(Change(NC, Op.NONE, f"{br} address {want}") if want in have
               else Change(AP, Op.ADD_ADDRESS, br, want))
    gw = str(m.gateway) if m.gateway else None
    if gw is not None:   # a removed address takes the default route through it along: set it again then
        same = obs.gateway4 == gw and want in have and have == {want}
        out.append(Change(NC, Op.NONE, f"default via {gw}") if same
                   else Change(AP, Op.SET_GATEWAY, "default", gw, note=f"was {obs.gateway4 or 'none'}"))
    return out


def _engine(cfg: NetConfig, committed: NetConfig | None) -> list[Change]:
    """Settings only the engine reads: restart for queue layout, reload for policy."""
    new, old = cfg.inspection, committed.inspection if committed else None
    if old is not None and (old.queues != new.queues):
        return [Change(RS, Op.NONE, "engine", note=f"queues {old.queues} -> {new.queues}: restart utm run")]
    if committed is not None and (committed.modes, committed.classtypes, committed.exclusions, old) != (
            cfg.modes, cfg.classtypes, cfg.exclusions, new):
        return [Change(AP, Op.NONE, "engine", note="modes/exclusions/depth changed: utm run reloads")]
    return [Change(NC, Op.NONE, "engine settings")]
