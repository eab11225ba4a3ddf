"""The desired state remote commands change: isolated devices, modes per threat class, exclusions.

DIR/desired.json, written atomically (temp + fsync + rename) before a command
is reported done. The agent only records what the cloud asked for; reading
it and applying it to the live box (netconfig / `utm net apply` for
isolation, the engine's policy for modes and exclusions) is the composition
root's next step and not done yet.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

from cloudlink.command_args import normalise
from cloudlink.errors import FieldError, StateError
from cloudlink.protocol import CommandKind
from firmware.base.atomic import write_atomic

FORMAT = 1
MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class DesiredState:
    isolated: tuple[str, ...] = ()                          # MAC addresses, sorted
    modes: tuple[tuple[str, str], ...] = ()                  # (threat class, block|detect), sorted
    exclusions: tuple[tuple[str, str], ...] = ()             # (mac|ip|rule|domain, value), sorted
    revision: int = 0
    last_command: str | None = None

    def to_json(self) -> dict:
        return {"format": FORMAT, "revision": self.revision, "last_command": self.last_command,
                "isolated": list(self.isolated), "modes": dict(self.modes),
                "exclusions": [{"kind": k, "value": v} for k, v in self.exclusions]}

    @classmethod
    def from_json(cls, obj: object) -> "DesiredState":
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise StateError("desired.json: not format 1")
        try:
            iso = tuple(sorted(normalise(CommandKind.ISOLATE, (m,))[0] for m in obj.get("isolated", [])))
            modes = tuple(sorted(normalise(CommandKind.SET_MODE, (c, m)) for c, m in obj.get("modes", {}).items()))
            exc = tuple(sorted(normalise(CommandKind.ADD_EXCLUSION, (e["kind"], e["value"]))
                               for e in obj.get("exclusions", [])))
            rev = obj.get("revision", 0)
            last = obj.get("last_command")
        except (FieldError, AttributeError, KeyError, TypeError) as e:
            raise StateError(f"desired.json: {e}") from None
        if not isinstance(rev, int) or (last is not None and not isinstance(last, str)):
            raise StateError("desired.json: bad revision or last_command")
        return cls(iso, modes, exc, rev, last)  # type: ignore[arg-type]

    def apply(self, kind: CommandKind, args: tuple[str, ...], command_id: str) -> tuple["DesiredState", str]:
        """The state after one command, and what changed in words (a repeat changes nothing)."""
        a = normalise(kind, args)
        iso, modes, exc = set(self.isolated), dict(self.modes), set(self.exclusions)
        if kind is CommandKind.ISOLATE:
            what = f"{a[0]} already isolated" if a[0] in iso else f"{a[0]} isolated"
            iso.add(a[0])
        elif kind is CommandKind.RELEASE:
            what = f"{a[0]} released" if a[0] in iso else f"{a[0]} was not isolated"
            iso.discard(a[0])
        elif kind is CommandKind.SET_MODE:
            what = f"class {a[0]}: {modes.get(a[0], 'default')} -> {a[1]}"
            modes[a[0]] = a[1]
        elif kind is CommandKind.ADD_EXCLUSION:
            what = f"exclusion {a[0]} {a[1]} " + ("already present" if (a[0], a[1]) in exc else "added")
            exc.add((a[0], a[1]))
        elif kind is CommandKind.REMOVE_EXCLUSION:
            what = f"exclusion {a[0]} {a[1]} " + ("removed" if (a[0], a[1]) in exc else "was not present")
            exc.discard((a[0], a[1]))
        else:
            raise FieldError(f"{kind.value} does not change the desired state", "kind")
        if len(iso) + len(modes) + len(exc) > MAX_ENTRIES:
            raise FieldError(f"more than {MAX_ENTRIES} entries in the desired state", "args")
        return DesiredState(tuple(sorted(iso)), tuple(sorted(modes.items())), tuple(sorted(exc)),
                            self.revision + 1, command_id), what


@dataclass(slots=True)
class DesiredStateFile:
    path: Path

    def load(self) -> DesiredState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return DesiredState()
        except OSError as e:
            raise StateError(f"{self.path}: {e.strerror or e}") from None
        try:
            return DesiredState.from_json(orjson.loads(raw))
        except orjson.JSONDecodeError as e:
            raise StateError(f"{self.path}: not JSON: {e}") from None

    def apply(self, kind: CommandKind, args: tuple[str, ...], command_id: str) -> str:
        """Apply one command and write the file atomically; returns what changed."""
        new, what = self.load().apply(kind, args, command_id)
        try:
            write_atomic(self.path, orjson.dumps(new.to_json(), option=orjson.OPT_INDENT_2))
        except OSError as e:
            raise StateError(f"{self.path}: cannot write: {e.strerror or e}") from None
        return f"{what} (desired state revision {new.revision}; not applied to the live box by this build)"
