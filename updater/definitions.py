"""Definitions updates: TUF-verified download, vendor signature, staging, atomic switch, reload, revert.

DIR/definitions/
  tuf/            python-tuf's metadata cache (its trusted timestamp/snapshot are what rollback is judged by)
  packages/V.pkg  verified packages: the current one and the one before it
  current.pkg     symlink to the package in use (replaced atomically: the one switch)
  previous.pkg    symlink to the package before it (what a failed load reverts to)
  rejected.json   versions that failed to load: not installed again (a newer one is)

A check (`DefinitionsUpdater.check`) does, in order: python-tuf refresh
(root -> timestamp -> snapshot -> targets, against the root pinned at
enrolment and the metadata cached from earlier checks); look up the one
target `definitions.pkg` and its signed `custom.version`; refuse an older
version; download it (length and SHA-256 checked by python-tuf); verify it
again with `signatures.definitions.open_package` against the vendor keys
(the TUF keys live on the cloud, the vendor key does not: a cloud that is
broken into still cannot sign definitions); stage it; switch `current.pkg`;
run the load check and the reload hook; on any failure there, switch back
and reload the previous package.
"""
from __future__ import annotations

import enum
import fcntl
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from tuf.api import exceptions as tuf_errors
from tuf.ngclient import Updater, UpdaterConfig
from tuf.ngclient.fetcher import FetcherInterface

from firmware.base.atomic import write_atomic
from signatures.definitions import (DefinitionsError, DefinitionsRollbackError, DefinitionsSignatureError,
                                    open_package, version_key)
from updater.errors import FetchError, RefusedError, StageError, UpdaterError

TARGET_NAME = "definitions.pkg"
METADATA_URL = "utm-cloud:/tuf/metadata/"
TARGETS_URL = "utm-cloud:/tuf/targets/"
MAX_PACKAGE_BYTES = 512 << 20
_VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")
# metadata here is small: a few KB; python-tuf's defaults (2-5 MB) would let a hostile mirror waste more
TUF_LIMITS = UpdaterConfig(max_root_rotations=32, root_max_length=64 * 1024, timestamp_max_length=16 * 1024,
                           snapshot_max_length=64 * 1024, targets_max_length=1024 * 1024)


class LoadError(UpdaterError):
    """The engine could not load a staged package (load check or reload hook failed)."""


class Outcome(enum.Enum):
    NONE_PUBLISHED = "none_published"
    UP_TO_DATE = "up_to_date"
    UPDATED = "updated"
    REVERTED = "reverted"           # the new package failed to load; the previous one is back in use
    SKIPPED = "skipped"             # the newest version failed to load before; waiting for a newer one


@dataclass(frozen=True, slots=True)
class CheckResult:
    outcome: Outcome
    version: str | None             # the version in use afterwards
    detail: str
    offered: str | None = None      # the version the repository offered


def _symlink_atomic(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fd = os.open(link.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PackageStore:
    """The staged packages and the two symlinks; every change is a rename, so a crash leaves a usable state."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.packages = self.folder / "packages"
        self.current_link = self.folder / "current.pkg"
        self.previous_link = self.folder / "previous.pkg"
        self.tuf_dir = self.folder / "tuf"
        self.download_dir = self.folder / "download"
        try:
            for d in (self.folder, self.packages, self.tuf_dir, self.download_dir):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise StageError(f"{self.folder}: {e.strerror or e}") from None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One check at a time per state folder (python-tuf's cache is single-writer): the agent's scheduled
        check and a `utm cloudlink check-definitions` by hand wait for each other."""
        try:
            fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StageError(f"{self.folder}/lock: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _version_of(link: Path) -> str | None:
        try:
            name = os.readlink(link)
        except OSError:
            return None
        v = Path(name).name.removesuffix(".pkg")
        return v if _VERSION.match(v) else None

    def current_version(self) -> str | None:
        return self._version_of(self.current_link)

    def previous_version(self) -> str | None:
        return self._version_of(self.previous_link)

    def path_of(self, version: str) -> Path:
        return self.packages / f"{version}.pkg"

    def stage(self, version: str, data: bytes) -> Path:
        try:
            write_atomic(self.path_of(version), data, mode=0o600)
        except OSError as e:
            raise StageError(f"cannot stage {version}: {e.strerror or e}") from None
        return self.path_of(version)

    def switch(self, version: str) -> None:
        """previous := current; current := version (each one rename)."""
        cur = self.current_version()
        try:
            if cur is not None and cur != version:
                _symlink_atomic(self.previous_link, f"packages/{cur}.pkg")
            _symlink_atomic(self.current_link, f"packages/{version}.pkg")
        except OSError as e:
            raise StageError(f"cannot switch to {version}: {e.strerror or e}") from None

    def revert(self, to: str | None) -> None:
        """Point current back at `to` (None: no package in use, as before the first install)."""
        try:
            if to is None:
                self.current_link.unlink(missing_ok=True)
            else:
                _symlink_atomic(self.current_link, f"packages/{to}.pkg")
        except OSError as e:
            raise StageError(f"cannot revert to {to}: {e.strerror or e}") from None

    def rejected(self) -> list[str]:
        try:
            v = orjson.loads((self.folder / "rejected.json").read_bytes())
            return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []
        except (OSError, orjson.JSONDecodeError):
            return []

    def reject(self, version: str) -> None:
        try:
            write_atomic(self.folder / "rejected.json", orjson.dumps((self.rejected() + [version])[-32:]))
        except OSError as e:
            raise StageError(f"cannot record the rejected {version}: {e.strerror or e}") from None

    def prune(self) -> None:
        """Only the current and the previous package stay."""
        keep = {self.current_version(), self.previous_version()}
        for p in self.packages.glob("*.pkg"):
            if p.name.removesuffix(".pkg") not in keep:
                p.unlink(missing_ok=True)


def run_hook(argv: Sequence[str], package: Path, timeout_s: float = 120.0) -> None:
    """The engine's reload hook: an argument list (never a shell string), the package in UTM_DEFINITIONS."""
    try:
        done = subprocess.run(list(argv), env={**os.environ, "UTM_DEFINITIONS": str(package)},
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LoadError(f"reload hook {argv[0]}: {e}") from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise LoadError(f"reload hook {argv[0]} exited {done.returncode}: {tail[0][:200]}")


def _tuf_refusal(e: tuf_errors.RepositoryError) -> RefusedError:
    reason = {"ExpiredMetadataError": "expired", "BadVersionNumberError": "rollback",
              "EqualVersionNumberError": "rollback", "UnsignedMetadataError": "bad_signature",
              "LengthOrHashMismatchError": "hash_mismatch"}.get(type(e).__name__, "bad_metadata")
    return RefusedError(reason, f"TUF: {type(e).__name__}: {e}"[:400])


class DefinitionsUpdater:
    """One check = one python-tuf Updater (it refreshes once per life), over the given fetcher."""

    def __init__(self, store: PackageStore, root: bytes, fetcher: FetcherInterface,
                 vendor_keys: Mapping[str, Ed25519PublicKey], *,
                 load_check: Callable[[Path], None] | None = None,
                 reload: Callable[[Path], None] | None = None) -> None:
        self.store, self.root, self.fetcher, self.vendor_keys = store, root, fetcher, vendor_keys
        self.load_check, self.reload = load_check, reload

    def current_version(self) -> str | None:
        return self.store.current_version()

    def _updater(self) -> Updater:
        try:
            return Updater(str(self.store.tuf_dir), METADATA_URL, str(self.store.download_dir), TARGETS_URL,
                           self.fetcher, TUF_LIMITS, bootstrap=self.root)
        except tuf_errors.RepositoryError as e:
            raise _tuf_refusal(e) from None
        except (OSError, ValueError) as e:
            raise StageError(f"cannot start the TUF client: {e}") from None

    def check(self) -> CheckResult:
        """Fetch and install the newest package if there is one; raises FetchError/RefusedError/StageError."""
        with self.store.locked():
            return self._check()

    def _check(self) -> CheckResult:
        upd = self._updater()
        try:
            upd.refresh()
            info = upd.get_targetinfo(TARGET_NAME)
            if info is None:
                return CheckResult(Outcome.NONE_PUBLISHED, self.current_version(), "no definitions published")
            offered = (info.custom or {}).get("version")
            if not isinstance(offered, str) or not _VERSION.match(offered):
                raise RefusedError("bad_metadata", f"target {TARGET_NAME} has no valid custom.version")
            cur = self.current_version()
            if cur == offered:
                return CheckResult(Outcome.UP_TO_DATE, cur, f"{cur} is current", offered)
            if cur is not None and version_key(offered) < version_key(cur):
                raise RefusedError("rollback", f"offered {offered} is older than {cur} in use")
            if offered in self.store.rejected():
                return CheckResult(Outcome.SKIPPED, cur, f"{offered} failed to load before; waiting for a newer "
                                                         "one", offered)
            if info.length > MAX_PACKAGE_BYTES:
                raise RefusedError("too_large", f"{info.length} bytes is over {MAX_PACKAGE_BYTES}")
            path = Path(upd.download_target(info, str(self.store.download_dir / TARGET_NAME)))
        except tuf_errors.DownloadLengthMismatchError as e:
            raise RefusedError("too_large", f"TUF: {e}"[:400]) from None
        except tuf_errors.DownloadHTTPError as e:
            raise FetchError(f"TUF: HTTP {e.status_code}: {e}"[:400]) from None
        except tuf_errors.DownloadError as e:
            raise FetchError(f"TUF: {e}: {e.__cause__ or ''}"[:400]) from None
        except tuf_errors.RepositoryError as e:
            raise _tuf_refusal(e) from None
        except OSError as e:
            raise StageError(f"TUF cache: {e.strerror or e}") from None
        try:
            data = path.read_bytes()
        except OSError as e:
            raise StageError(f"{path}: {e.strerror or e}") from None
        finally:
            path.unlink(missing_ok=True)
        return self._install(offered, data, cur)

    def _install(self, offered: str, data: bytes, cur: str | None) -> CheckResult:
        try:
            pkg = open_package(data, self.vendor_keys, current_version=cur)
        except DefinitionsSignatureError as e:
            raise RefusedError("vendor_signature", e.reason) from None
        except DefinitionsRollbackError as e:
            raise RefusedError("rollback", e.reason) from None
        except DefinitionsError as e:
            raise RefusedError("bad_package", e.reason) from None
        if pkg.manifest.version != offered:
            raise RefusedError("version_mismatch", f"the package says {pkg.manifest.version}, TUF says {offered}")
        path = self.store.stage(offered, data)
        self.store.switch(offered)
        try:
            if self.load_check is not None:
                self.load_check(path)
            if self.reload is not None:
                self.reload(path)
        except LoadError as e:
            self.store.reject(offered)
            self.store.revert(cur)
            again = ""
            if self.reload is not None and cur is not None:
                try:
                    self.reload(self.store.path_of(cur))
                except LoadError as e2:
                    again = f"; reloading {cur} failed too: {e2}"
            return CheckResult(Outcome.REVERTED, cur, f"{offered} failed to load ({e}); back to {cur}{again}"[:900],
                               offered)
        self.store.prune()
        return CheckResult(Outcome.UPDATED, offered, f"{cur or 'none'} -> {offered}", offered)
