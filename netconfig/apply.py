"""validate -> observe -> plan -> apply -> verify -> commit, or roll back.

Every backend call that changes something first records its inverse in a
journal; a failure in apply or verify replays the journal backwards and
restores the rulesets saved just before, so the box is left as it was (the
previous working state). Commit writes the config and both rulesets to the
state folder atomically: they are the last known good state (what boot
re-applies, what `utm net show` compares with).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware.base.atomic import write_atomic
from netconfig import ruleset as rs
from netconfig import schema
from netconfig.errors import ApplyError, ConfigError, NetconfigError, PlanError
from netconfig.model import Change, Observed, Op, Plan
from netconfig.observe import FilterBackend, LinkBackend, observe
from netconfig.plan import make_plan

DEFAULT_STATE_DIR = Path("/var/lib/utm/netconfig")
CONFIG_NAME = "committed.toml"
RULES_NAME = {rs.Family.IPV4: "committed.rules.v4", rs.Family.IPV6: "committed.rules.v6"}


class StateStore:
    """The last committed config and rulesets on disk, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def committed_text(self) -> bytes | None:
        try:
            return (self.folder / CONFIG_NAME).read_bytes()
        except OSError:
            return None

    def committed(self) -> schema.NetConfig | None:
        raw = self.committed_text()
        if raw is None:
            return None
        try:
            return schema.loads(raw)
        except ConfigError:
            return None       # an unreadable committed file is treated as "nothing committed"

    def commit(self, config_text: bytes, plan: Plan) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for family, name in RULES_NAME.items():
            write_atomic(self.folder / name, plan.ruleset_text(family).encode())
        write_atomic(self.folder / CONFIG_NAME, config_text)   # last: the config marks the commit


@dataclass(frozen=True, slots=True)
class Result:
    plan: Plan
    applied: tuple[Change, ...]      # what apply executed (empty when nothing to do)


class Applier:
    def __init__(self, links: LinkBackend, filters: FilterBackend, store: StateStore) -> None:
        self.links, self.filters, self.store = links, filters, store

    def plan(self, cfg: schema.NetConfig) -> tuple[Plan, Observed]:
        obs = observe(cfg, self.links, self.filters)
        return make_plan(cfg, obs, self.store.committed()), obs

    def apply(self, cfg: schema.NetConfig, config_text: bytes) -> Result:
        """Run every stage; raises ApplyError (after rolling back) if apply or verify fails."""
        plan, _ = self.plan(cfg)
        if plan.problems:
            raise PlanError(plan.problems)
        if not plan.actions:
            if self.store.committed_text() != config_text:
                self.store.commit(config_text, plan)
            return Result(plan=plan, applied=())
        saved = {f: self.filters.save(f) for f in rs.Family}
        journal: list[Callable[[], None]] = []
        stage = "apply"
        try:
            for change in plan.actions:
                self._do(change, plan, saved, journal)
            stage = "verify"
            after = make_plan(cfg, observe(cfg, self.links, self.filters), cfg)
            left = [c.describe().strip() for c in after.actions] + list(after.problems)
            if left:
                raise NetconfigError("still different after apply: " + "; ".join(left))
        except NetconfigError as e:
            err = self._rollback(journal)
            raise ApplyError(stage, str(e), rolled_back=not err, rollback_error=err) from None
        self.store.commit(config_text, plan)
        return Result(plan=plan, applied=plan.actions)

    def _do(self, c: Change, plan: Plan, saved: dict[rs.Family, str], journal: list[Callable[[], None]]) -> None:
        ln = self.links
        before = {x.name: x for x in ln.links()}
        if c.op is Op.CREATE_BRIDGE:
            ln.create_bridge(c.target)
            journal.append(lambda: ln.delete_link(c.target))
        elif c.op is Op.SET_MASTER:
            old = before[c.target].master
            ln.set_master(c.target, c.value or None)
            journal.append(lambda: ln.set_master(c.target, old))
        elif c.op is Op.SET_UP:
            was_up = before[c.target].up
            ln.set_up(c.target, c.value == "up")
            journal.append(lambda: ln.set_up(c.target, was_up))
        elif c.op is Op.ADD_ADDRESS:
            ln.add_address(c.target, c.value)
            journal.append(lambda: ln.del_address(c.target, c.value))
        elif c.op is Op.DEL_ADDRESS:
            gw_before = ln.gateway4()
            ln.del_address(c.target, c.value)

            def undo_del() -> None:    # the kernel dropped the default route with the address: put both back
                ln.add_address(c.target, c.value)
                if gw_before is not None and ln.gateway4() != gw_before:
                    ln.set_gateway4(gw_before)
            journal.append(undo_del)
        elif c.op is Op.SET_GATEWAY:
            old_gw = ln.gateway4()
            ln.set_gateway4(c.value or None)
            journal.append(lambda: ln.set_gateway4(old_gw))
        elif c.op is Op.SET_SYSCTL:
            old_v = ln.sysctl_get(c.target)
            ln.sysctl_set(c.target, c.value)
            if old_v is not None:
                journal.append(lambda: ln.sysctl_set(c.target, old_v))
        elif c.op is Op.LOAD_RULESET:
            family = rs.Family(c.target)
            self.filters.restore(family, plan.ruleset_text(family))   # atomic: a failure changed nothing
            journal.append(lambda: self.filters.restore(family, _restorable(saved[family])))
        else:  # pragma: no cover - Op.NONE never reaches here (Plan.actions filters it)
            raise NetconfigError(f"no backend operation for {c.op}")

    def _rollback(self, journal: list[Callable[[], None]]) -> str:
        """Undo in reverse order; keep going past a failing step and report the failures."""
        errors = []
        for undo in reversed(journal):
            try:
                undo()
            except NetconfigError as e:
                errors.append(str(e))
        return "; ".join(errors)


def _restorable(saved: str) -> str:
    """iptables-save output of the owned tables, or empty tables when there was nothing."""
    text = saved if saved.strip() else ""
    for table in rs.OWNED_TABLES:
        if f"*{table}" not in text:
            text += f"*{table}\nCOMMIT\n"
    return text
