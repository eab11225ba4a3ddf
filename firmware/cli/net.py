"""`utm net plan|apply|show`: the box's bridge and netfilter ruleset from one config file.

Exit codes: 0 ok (or nothing to do), 2 invalid config or usage (the message
names the key), 1 the system could not take the config: apply failed and was
rolled back, or a port is missing (nothing changed).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from netconfig import schema
from netconfig.apply import DEFAULT_STATE_DIR, Applier, StateStore
from netconfig.errors import ApplyError, BackendError, ConfigError, NetconfigError, PlanError
from netconfig.ruleset import Family, parse_saved

RELOAD_WAIT_S = 60.0     # --reload-logdir: how long the workers of `utm run` may take to reload


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("net", help="plan, apply and show the bridge and netfilter configuration",
                       description="Configure the box's bridge (WAN/LAN/SSID ports), management address and "
                                   "inspection ruleset from one TOML file (see docs/netconfig.md).")
    net_sub = p.add_subparsers(dest="net_command", metavar="SUBCOMMAND")
    for name, helptext in (("plan", "show what apply would change, change nothing"),
                           ("apply", "apply the config in stages; roll back on failure")):
        c = net_sub.add_parser(name, help=helptext, description=helptext)
        c.add_argument("--config", required=True, metavar="FILE", help="netconfig TOML file")
        c.add_argument("--desired", default=None, metavar="DESIRED_JSON",
                       help="the agent's desired state (isolated devices, modes, exclusions from remote "
                            "commands) applied on top of the file; it never removes what the file declares")
        _common(c)
        if name == "apply":
            c.add_argument("--reload-logdir", default=None, metavar="LOGDIR",
                           help="after a commit, make the `utm run` of LOGDIR reload so it takes the modes "
                                "(it must run with --net-config on the committed file); checked before applying")
        c.set_defaults(run=run_plan if name == "plan" else run_apply)
    s = net_sub.add_parser("show", help="print the live state", description="Print the live bridge, ports, "
                           "addresses and ruleset, and whether they match the last committed config.")
    _common(s)
    s.add_argument("--json", action="store_true", help="one JSON object instead of text")
    s.set_defaults(run=run_show)
    p.set_defaults(run=_usage(p))


def _common(c: argparse.ArgumentParser) -> None:
    c.add_argument("--netns", metavar="NAME", help="work inside this network namespace (testbed, tests)")
    c.add_argument("--state-dir", metavar="DIR", type=Path, default=DEFAULT_STATE_DIR,
                   help=f"where the last committed config and rulesets live (default {DEFAULT_STATE_DIR})")


def _usage(p: argparse.ArgumentParser):
    def run_usage(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2
    return run_usage


def _backends(args: argparse.Namespace):
    from netconfig.backends.iptables import IptablesBackend
    from netconfig.backends.netlink import NetlinkBackend   # pyroute2 only when the kernel is needed
    return NetlinkBackend(args.netns), IptablesBackend(args.netns)


def _load(args: argparse.Namespace, cmd: str) -> tuple[schema.NetConfig, bytes] | int:
    try:
        if getattr(args, "desired", None):
            merged = _merged(args)
            for note in merged.not_applied:
                print(f"  NOT APPLIED  {note}")
            return merged.config, merged.text
        cfg = schema.load(args.config)
        return cfg, Path(args.config).read_bytes()
    except ConfigError as e:
        print(f"utm net {cmd}: invalid config {args.config}" + (" with the desired state" if args.desired else "")
              + f": {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"utm net {cmd}: cannot read {e.filename or args.config}: {e.strerror}", file=sys.stderr)
        return 2


def _merged(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The base file with the agent's desired state on top (raises ConfigError, OSError)."""
    import tomllib

    from cloudlink.desired import DesiredStateFile
    from cloudlink.errors import StateError
    from netconfig.overlay import Overlay, merge

    try:
        want = DesiredStateFile(Path(args.desired)).load()
    except StateError as e:
        raise ConfigError("", f"desired state: {e}") from None
    raw = Path(args.config).read_bytes()
    if len(raw) > schema.MAX_CONFIG_BYTES:
        raise ConfigError("", f"{args.config} is larger than {schema.MAX_CONFIG_BYTES} bytes")
    try:
        base = tomllib.loads(raw.decode("utf-8", "replace"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", f"not valid TOML: {e}") from None
    merged = merge(base, Overlay(want.isolated, want.modes, want.exclusions, want.revision), source=args.config)
    if merged.config.mode("phishing") is not merged.config.mode("category"):
        raise ConfigError("modes.phishing", "must agree with modes.category for `utm run` (every blocked URL "
                                            "category is treated alike)")
    return merged


def run_plan(args: argparse.Namespace) -> int:
    loaded = _load(args, "plan")
    if isinstance(loaded, int):
        return loaded
    cfg, _ = loaded
    try:
        links, filters = _backends(args)
        plan, _ = Applier(links, filters, StateStore(args.state_dir)).plan(cfg)
        links.close()
    except NetconfigError as e:
        print(f"utm net plan: {e}", file=sys.stderr)
        return 1
    for c in plan.changes:
        print(c.describe())
    for p in plan.problems:
        print(f"  PROBLEM  {p}")
    n = len(plan.actions)
    if plan.problems:
        print(f"cannot apply: {len(plan.problems)} problem(s); apply would change nothing")
    else:
        print(f"{n} change(s) to apply" if n else "nothing to change")
    return 1 if plan.problems else 0


def run_apply(args: argparse.Namespace) -> int:
    loaded = _load(args, "apply")
    if isinstance(loaded, int):
        return loaded
    cfg, text = loaded
    if args.reload_logdir is not None:
        from firmware.cli.run import running_pid
        pid, why = running_pid(Path(args.reload_logdir))
        if pid is None:
            print(f"utm net apply: nothing applied: {why}", file=sys.stderr)
            return 1
    try:
        links, filters = _backends(args)
    except NetconfigError as e:
        print(f"utm net apply: {e}", file=sys.stderr)
        return 1
    try:
        result = Applier(links, filters, StateStore(args.state_dir)).apply(cfg, text)
    except (ApplyError, PlanError) as e:
        print(f"utm net apply: {e}", file=sys.stderr)
        return 1
    except (NetconfigError, OSError) as e:     # e.g. the state folder cannot be written
        print(f"utm net apply: {e}", file=sys.stderr)
        return 1
    finally:
        links.close()
    for c in result.applied:
        print(c.describe())
    notes = [c for c in result.plan.changes if c.target == "engine" and c.cls.value != "no change"]
    for c in notes:
        print(c.describe())
    print(f"applied {len(result.applied)} change(s), committed" if result.applied else "nothing to change")
    if args.reload_logdir is not None:
        import time

        from firmware.cli.run import signal_reload, wait_reload
        asked = time.time()
        ok, msg = signal_reload(Path(args.reload_logdir))
        rc, msg = wait_reload(Path(args.reload_logdir), asked, RELOAD_WAIT_S) if ok else (1, msg)
        if rc:
            print(f"utm net apply: committed, but `utm run` did not take it: {msg}", file=sys.stderr)
            return 1
        print(f"utm run: {msg}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    store = StateStore(args.state_dir)
    committed = store.committed()
    try:
        links, filters = _backends(args)
        all_links = links.links()
        gw = links.gateway4()
        saved = {f: parse_saved(filters.save(f)) for f in Family}
        links.close()
    except BackendError as e:
        print(f"utm net show: {e}", file=sys.stderr)
        return 1
    bridges = {ln.name for ln in all_links if ln.kind == "bridge"}
    if committed is not None:
        bridges.add(committed.ports.bridge)
    state = {
        "committed": committed is not None,
        "bridges": [{
            "name": b,
            "present": any(ln.name == b for ln in all_links),
            "up": any(ln.name == b and ln.up for ln in all_links),
            "addresses": next((list(ln.addresses) for ln in all_links if ln.name == b), []),
            "ports": [{"name": ln.name, "up": ln.up, "mac": ln.mac} for ln in all_links if ln.master == b],
        } for b in sorted(bridges)],
        "gateway4": gw,
        "rulesets": {f.value: {"digest": d, "rules": dict(c)} for f, (d, c) in saved.items()},
    }
    if committed is not None:
        from netconfig.ruleset import render
        state["rulesets_match_committed"] = all(
            saved[f][0] == render(committed, f).digest for f in Family)
        roles = dict((n, r) for r, n in committed.ports.by_role())
        for b in state["bridges"]:
            for p in b["ports"]:
                p["role"] = roles.get(p["name"], "")
    if args.json:
        print(json.dumps(state, indent=2))
        return 0
    for b in state["bridges"]:
        print(f"bridge {b['name']}: {'up' if b['up'] else 'down' if b['present'] else 'missing'}"
              f"  addresses: {', '.join(b['addresses']) or '-'}")
        for p in b["ports"]:
            role = f" ({p['role']})" if p.get("role") else ""
            print(f"  port {p['name']}{role}: {'up' if p['up'] else 'down'} {p['mac']}")
    print(f"default gateway (IPv4): {gw or '-'}")
    for fam, r in state["rulesets"].items():
        rules = sum(r["rules"].values())
        print(f"{fam} ruleset: {r['digest'] or 'not ours/absent'}, {rules} rule(s) in UTM chains")
    if committed is not None and committed.management.ipv4.value == "dhcp":
        b = next((x for x in state["bridges"] if x["name"] == committed.ports.bridge), None)
        if b is not None and not any(":" not in a for a in b["addresses"]):
            print(f"no IPv4 address on {b['name']} yet: management is by DHCP and netconfig does not run a DHCP "
                  "client; start one on the bridge")
    if committed is None:
        print(f"no committed config in {args.state_dir}")
    else:
        print("live ruleset matches the committed config" if state["rulesets_match_committed"]
              else "live ruleset DIFFERS from the committed config")
    return 0
