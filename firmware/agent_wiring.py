"""Composition root of the cloud agent: wires the definitions updater and the local hooks into cloudlink.

cloudlink and updater do not import each other (import-linter contract);
this module gives the agent a `DefinitionsPort` backed by the updater, and
the load check that may use the engine's own decoder (inspection.detect.bundle).
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable, Sequence

from cloudlink.state import AgentState
from signatures.definitions import ComponentKind, DefinitionsError, key_id, load_public_key, open_package
from updater.definitions import DefinitionsUpdater, LoadError, Outcome, PackageStore, run_hook
from updater.errors import FetchError, RefusedError, StageError
from updater.fetch import MtlsFetcher


def load_check(vendor_keys: dict) -> Callable[[Path], None]:
    """What the engine would refuse, checked before the switch sticks: signature and every rule bundle decodes."""
    def check(path: Path) -> None:
        from inspection.detect.bundle import decode_bundle
        try:
            pkg = open_package(path.read_bytes(), vendor_keys)
            for comp, data in pkg.of(ComponentKind.RULES):
                decode_bundle(data, comp.name)
        except DefinitionsError as e:
            raise LoadError(e.reason) from None
        except OSError as e:
            raise LoadError(f"{path}: {e.strerror or e}") from None
        except Exception as e:  # noqa: BLE001 - the bundle decoder's own errors: any means "cannot load"
            raise LoadError(f"rule bundle: {type(e).__name__}: {e}"[:300]) from None
    return check


class UpdaterPort:
    """cloudlink's DefinitionsPort over updater: one check at a time, in a thread (python-tuf is blocking)."""

    def __init__(self, make: Callable[[], DefinitionsUpdater]) -> None:
        self._make = make
        self._store: PackageStore = make().store
        self._lock = asyncio.Lock()
        self.last_fetched_bytes = 0

    def current_version(self) -> str | None:
        return self._store.current_version()

    def check_sync(self) -> tuple[bool, str]:
        upd: DefinitionsUpdater = self._make()
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
        ok = r.outcome is not Outcome.REVERTED
        return ok, f"{r.outcome.value}: {r.detail}"

    async def check_now(self) -> tuple[bool, str]:
        async with self._lock:
            return await asyncio.to_thread(self.check_sync)


def definitions_port(state: AgentState, trusted_keys: Sequence[Path],
                     reload_hook: Sequence[str] | None) -> tuple[UpdaterPort | None, str]:
    """The port, or None and why it cannot be built (no TUF root pinned, no vendor key)."""
    try:
        root = state.tuf_root_path.read_bytes()
    except OSError:
        return None, "no TUF root pinned at enrolment (enrolled before definitions updates): enrol again"
    if not trusted_keys:
        return None, "no vendor key to verify definitions with (--trusted-key, or /etc/utm/definitions.pub)"
    keys = {}
    try:
        for k in trusted_keys:
            pub = load_public_key(Path(k).read_bytes())
            keys[key_id(pub)] = pub
    except (OSError, DefinitionsError) as e:
        return None, f"vendor key unusable: {e}"
    ssl_ctx = state.client_ssl_context()
    folder = state.folder / "definitions"
    reload = (lambda p: run_hook(reload_hook, p)) if reload_hook else None

    def make() -> DefinitionsUpdater:
        return DefinitionsUpdater(PackageStore(folder), root, MtlsFetcher(state.endpoints, ssl_ctx), keys,
                                  load_check=load_check(keys), reload=reload)
    return UpdaterPort(make), ""
