"""The desired state remote commands change: isolated devices, modes per threat class, exclusions.

DIR/desired.json, written atomically (temp + fsync + rename) before a command
is reported done. Applying it to the box is not the agent's business: after
each change it runs the apply hook (`utm cloudlink run --apply-hook`, an
argument list run without a shell, e.g. `utm net apply --config FILE
--desired DIR/desired.json --reload-logdir LOGDIR`), and the command is done
only if the hook succeeds. When it fails the previous desired.json is put
back (the box kept its previous state too) and the command is reported
failed. Without a hook the change is recorded and the result says it was not
applied.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

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


class ApplyHookError(StateError):
    """The apply hook could not be started, timed out or exited non-zero."""


def apply_hook(argv: Sequence[str], timeout_s: float = 120.0) -> Callable[[Path], str]:
    """An apply callable running `argv` (an argument list, never a shell string) with the path of
    desired.json in UTM_DESIRED; returns the last line it printed, raises ApplyHookError."""
    if not argv:
        raise ValueError("the apply hook needs at least a program")

    def run(path: Path) -> str:
        try:
            done = subprocess.run(list(argv), env={**os.environ, "UTM_DESIRED": str(path)}, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ApplyHookError(f"apply hook {argv[0]}: {e}") from None
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise ApplyHookError(f"apply hook {argv[0]} exited {done.returncode}: {err[0][:300]}")
        return (done.stdout.decode("utf-8", "replace").strip().splitlines()[-1:] or [""])[0][:300]
    return run


@dataclass(slots=True)
class DesiredStateFile:
    path: Path
    apply_hook: Callable[[Path], str] | None = None     # makes the box take the file (see `apply_hook`)

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
        """Apply one command, write the file atomically and run the apply hook; returns what changed.
        Raises ApplyHookError (the previous file put back) when the box did not take it."""
        old_raw = self._raw()
        new, what = self.load().apply(kind, args, command_id)
        self._write(orjson.dumps(new.to_json(), option=orjson.OPT_INDENT_2))
        if self.apply_hook is None:
            return f"{what} (desired state revision {new.revision}; not applied to the box: no apply hook configured)"
        try:
            said = self.apply_hook(self.path)
        except ApplyHookError as e:
            if old_raw is None:
                self.path.unlink(missing_ok=True)
            else:
                self._write(old_raw)
            raise ApplyHookError(f"{what}, but the box did not apply it (desired state left at revision "
                                 f"{new.revision - 1}): {e}") from None
        return f"{what} (desired state revision {new.revision}, applied to the box" + (f": {said})" if said else ")")

    def _raw(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StateError(f"{self.path}: {e.strerror or e}") from None

    def _write(self, data: bytes) -> None:
        try:
            write_atomic(self.path, data)
        except OSError as e:
            raise StateError(f"{self.path}: cannot write: {e.strerror or e}") from None
