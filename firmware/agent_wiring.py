"""Composition root of the cloud agent: wires the definitions updater and the local hooks into cloudlink.

cloudlink and updater do not import each other (import-linter contract);
this module gives the agent a `DefinitionsPort`. The long-running agent
uses `ChildCheckPort`: each check is `utm cloudlink check-definitions` in a
child process, so python-tuf, the package bytes and the engine's decoder
never stay in the agent's memory (the agent's goal is 60 MB), and a crash
or a hang there is a failed check, not a dead agent. `UpdaterPort` runs the
same check in-process (that CLI command is built on it). The load check runs
in its own child (firmware.definitions_gate) in both cases.

Imports of `updater` (python-tuf) are inside the functions that need them,
so importing this module does not load python-tuf into the agent.
"""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import orjson

from cloudlink.state import AgentState

if TYPE_CHECKING:
    from updater.definitions import DefinitionsUpdater

_VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")
CHECK_TIMEOUT_S = 900.0


def load_check(pubkeys: Sequence[Path], timeout_s: float = 300.0) -> Callable[[Path], None]:
    """The load check in a child process (firmware.definitions_gate): the engine's decoder stays out of
    this process, and a crash in it is just a package that does not load."""
    from updater.definitions import LoadError

    def check(path: Path) -> None:
        argv = [sys.executable, "-m", "firmware.definitions_gate", str(path)]
        for k in pubkeys:
            argv += ["--pubkey", str(k)]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise LoadError(f"load check: {e}") from None
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
            raise LoadError(f"load check: {why[0][:300]}")
    return check


def current_version(state_dir: Path) -> str | None:
    """The package in use: the name `DIR/definitions/current.pkg` points at."""
    try:
        v = Path(os.readlink(Path(state_dir) / "definitions" / "current.pkg")).name.removesuffix(".pkg")
    except OSError:
        return None
    return v if _VERSION.match(v) else None


class UpdaterPort:
    """A DefinitionsPort that runs the check in this process (in a thread), one at a time."""

    def __init__(self, make: Callable[[], "DefinitionsUpdater"], state_dir: Path) -> None:
        self._make = make
        self._dir = Path(state_dir)
        self._lock = asyncio.Lock()
        self.last_fetched_bytes = 0

    def current_version(self) -> str | None:
        return current_version(self._dir)

    def check_sync(self) -> tuple[bool, str]:
        from updater.definitions import Outcome
        from updater.errors import FetchError, RefusedError, StageError
        upd = self._make()
        try:
            r = upd.check()
        except RefusedError as e:
            return False, f"refused: {e}"
        except (FetchError, StageError) as e:
            return False, str(e)
        finally:
            self.last_fetched_bytes = getattr(upd.fetcher, "bytes_received", 0)
            close = getattr(upd.fetcher, "close", None)
            if close is not None:
                close()
        return r.outcome is not Outcome.REVERTED, f"{r.outcome.value}: {r.detail}"

    async def check_now(self) -> tuple[bool, str]:
        async with self._lock:
            return await asyncio.to_thread(self.check_sync)


class ChildCheckPort:
    """A DefinitionsPort whose checks are `utm cloudlink check-definitions` child processes."""

    def __init__(self, state_dir: Path, trusted_keys: Sequence[Path], reload_hook: str | None, *,
                 timeout_s: float = CHECK_TIMEOUT_S) -> None:
        self._dir = Path(state_dir)
        self._argv = [sys.executable, "-m", "firmware.cli.main", "cloudlink", "check-definitions",
                      "--state", str(self._dir)]
        for k in trusted_keys:
            self._argv += ["--trusted-key", str(k)]
        if reload_hook:
            self._argv += ["--reload-hook", reload_hook]
        self._timeout = timeout_s
        self._lock = asyncio.Lock()

    def current_version(self) -> str | None:
        return current_version(self._dir)

    async def check_now(self) -> tuple[bool, str]:
        async with self._lock:
            try:
                proc = await asyncio.create_subprocess_exec(*self._argv, stdin=subprocess.DEVNULL,
                                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            except OSError as e:
                return False, f"cannot start the definitions check: {e}"
            try:
                out, err = await asyncio.wait_for(proc.communicate(), self._timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return False, f"definitions check killed after {self._timeout:g} s"
        try:
            res = orjson.loads(out)
            return bool(res["ok"]), str(res["result"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            why = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            return False, f"definitions check failed: {why[0][:400]}"


def _unavailable(state: AgentState, trusted_keys: Sequence[Path]) -> str | None:
    """Why definitions updates cannot run for this agent, or None."""
    from signatures.definitions import DefinitionsError, load_public_key
    if not state.tuf_root_path.is_file():
        return "no TUF root pinned at enrolment (enrolled before definitions updates): enrol again"
    if not trusted_keys:
        return "no vendor key to verify definitions with (--trusted-key, or /etc/utm/definitions.pub)"
    try:
        for k in trusted_keys:
            load_public_key(Path(k).read_bytes())
    except (OSError, DefinitionsError) as e:
        return f"vendor key unusable: {e}"
    return None


def child_definitions_port(state: AgentState, trusted_keys: Sequence[Path],
                           reload_hook: str | None) -> tuple[ChildCheckPort | None, str]:
    """The port `utm cloudlink run` uses, or None and why it cannot be built."""
    why = _unavailable(state, trusted_keys)
    if why is not None:
        return None, why
    return ChildCheckPort(state.folder, [Path(k).resolve() for k in trusted_keys], reload_hook), ""


def definitions_port(state: AgentState, trusted_keys: Sequence[Path],
                     reload_hook: Sequence[str] | None) -> tuple[UpdaterPort | None, str]:
    """The in-process port, or None and why it cannot be built (no TUF root pinned, no vendor key)."""
    from signatures.definitions import key_id, load_public_key
    from updater.definitions import DefinitionsUpdater, PackageStore, run_hook
    from updater.fetch import MtlsFetcher
    why = _unavailable(state, trusted_keys)
    if why is not None:
        return None, why
    root = state.tuf_root_path.read_bytes()
    keys = {}
    for k in trusted_keys:
        pub = load_public_key(Path(k).read_bytes())
        keys[key_id(pub)] = pub
    ssl_ctx = state.client_ssl_context()
    folder = state.folder / "definitions"
    hook = list(reload_hook) if reload_hook else None
    reload = (lambda p: run_hook(hook, p)) if hook else None

    def make() -> DefinitionsUpdater:
        return DefinitionsUpdater(PackageStore(folder), root, MtlsFetcher(state.endpoints, ssl_ctx), keys,
                                  load_check=load_check(list(trusted_keys)), reload=reload)
    return UpdaterPort(make, state.folder), ""
