"""The reference cloud's TUF repository for definitions packages (python-tuf `tuf.api.metadata`).

Four top-level roles, each with its own Ed25519 key in DIR/tuf/keys/ROLE.key
(0600, made on first use), threshold 1. Consistent snapshots: snapshot and
targets metadata are written as N.snapshot.json / N.targets.json and target
files under their SHA-256 (`HASH.definitions.pkg`), so a publish never
changes a file a client may be reading; `timestamp.json` is replaced last
and is the one switch. Writers (publish, the serve loop's re-signing) hold
an flock on DIR/tuf/lock, so `utm cloud publish` may run next to `serve`.

One target, `definitions.pkg`, whose `custom.version` is the package version:
the newest package is whatever the current targets metadata names, and each
publish must carry a higher version than the last.

Lifetimes: root 1 year, targets 90 days, snapshot 7 days, timestamp 1 day.
`refresh_expiring` re-signs any role past half its lifetime (and the roles
above it), which the serve loop calls every minute: a running cloud never
serves expired metadata, and a stopped one makes agents refuse updates
after a day (the freeze attack defence).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp)
from tuf.api.serialization.json import JSONSerializer

from firmware.base.atomic import write_atomic
from refcloud.errors import CloudStateError, PublishRefused

TARGET_NAME = "definitions.pkg"
ROLES = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
LIFETIME = {Root.type: timedelta(days=365), Targets.type: timedelta(days=90),
            Snapshot.type: timedelta(days=7), Timestamp.type: timedelta(days=1)}
MAX_TARGET_BYTES = 512 << 20
KEEP_TARGET_FILES = 3          # the current package and two before it stay servable
_SAFE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
_VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")


def _dt(now: float) -> datetime:
    return datetime.fromtimestamp(int(now), timezone.utc)


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


@dataclass(frozen=True, slots=True)
class Published:
    version: str
    length: int
    sha256: str
    targets_version: int


class TufRepository:
    """DIR/tuf/{keys,metadata,targets}: open (and create on first use), publish, re-sign, serve files."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.keys_dir = self.folder / "keys"
        self.metadata_dir = self.folder / "metadata"
        self.targets_dir = self.folder / "targets"

    # --- files and keys ----------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _signer(self, role: str) -> CryptoSigner:
        path = self.keys_dir / f"{role}.key"
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), None)
        except (OSError, ValueError) as e:
            raise CloudStateError(f"{path}: cannot load the TUF {role} key: {e}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise CloudStateError(f"{path}: not an Ed25519 key")
        return CryptoSigner(key)

    def _write(self, name: str, md: Metadata) -> None:
        write_atomic(self.metadata_dir / name, md.to_bytes(JSONSerializer(compact=False)))

    def _load(self, name: str) -> Metadata:
        try:
            return Metadata.from_bytes((self.metadata_dir / name).read_bytes())
        except (OSError, ValueError) as e:
            raise CloudStateError(f"{self.metadata_dir / name}: unreadable TUF metadata: {e}") from None

    def _root_version(self) -> int:
        versions = [int(p.name.split(".")[0]) for p in self.metadata_dir.glob("*.root.json")
                    if p.name.split(".")[0].isdigit()]
        if not versions:
            raise CloudStateError(f"{self.metadata_dir}: no root metadata")
        return max(versions)

    def root_bytes(self) -> bytes:
        """The current root metadata, as agents pin it at enrolment."""
        return (self.metadata_dir / f"{self._root_version()}.root.json").read_bytes()

    # --- life cycle ----------------------------------------------------------------------------

    @classmethod
    def open(cls, folder: Path, now: float) -> "TufRepository":
        """Open DIR/tuf, creating keys and version-1 metadata (no targets yet) on first use."""
        repo = cls(folder)
        try:
            repo.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            with repo._locked():
                if not (repo.metadata_dir / "timestamp.json").exists():
                    repo._create(now)
        except OSError as e:
            raise CloudStateError(f"{repo.folder}: {e.strerror or e}") from None
        return repo

    def _create(self, now: float) -> None:
        for d in (self.keys_dir, self.metadata_dir, self.targets_dir):
            d.mkdir(mode=0o700, exist_ok=True)
        signers = {}
        for role in ROLES:
            path = self.keys_dir / f"{role}.key"
            if not path.exists():
                key = Ed25519PrivateKey.generate()
                write_atomic(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()), mode=0o600)
            signers[role] = self._signer(role)
        t = _dt(now)
        root = Root(expires=t + LIFETIME[Root.type], consistent_snapshot=True)
        for role in ROLES:
            root.add_key(signers[role].public_key, role)
        md_root = Metadata(root)
        md_root.sign(signers[Root.type])
        self._write("1.root.json", md_root)
        self._sign_chain(Metadata(Targets(expires=t + LIFETIME[Targets.type])), now, signers)

    def _sign_chain(self, targets: Metadata, now: float, signers: dict[str, CryptoSigner] | None = None) -> None:
        """Write targets (already bumped), then a snapshot naming it, then the timestamp: the switch last."""
        s = signers or {r: self._signer(r) for r in (Targets.type, Snapshot.type, Timestamp.type)}
        targets.signatures.clear()
        targets.sign(s[Targets.type])
        self._write(f"{targets.signed.version}.targets.json", targets)
        try:
            snap = self._load(f"{self._current_snapshot_version()}.snapshot.json")
            snap.signed.version += 1
        except CloudStateError:
            snap = Metadata(Snapshot())
        snap.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
        self._sign_snapshot_and_timestamp(snap, now, s)

    def _sign_snapshot_and_timestamp(self, snap: Metadata, now: float, s: dict[str, CryptoSigner]) -> None:
        snap.signed.expires = _dt(now) + LIFETIME[Snapshot.type]
        snap.signatures.clear()
        snap.sign(s[Snapshot.type])
        raw = snap.to_bytes(JSONSerializer(compact=False))
        write_atomic(self.metadata_dir / f"{snap.signed.version}.snapshot.json", raw)
        try:
            ts = self._load("timestamp.json")
            ts.signed.version += 1
        except CloudStateError:
            ts = Metadata(Timestamp())
        ts.signed.snapshot_meta = MetaFile(version=snap.signed.version, length=len(raw),
                                           hashes={"sha256": hashlib.sha256(raw).hexdigest()})
        self._sign_timestamp(ts, now, s)

    def _sign_timestamp(self, ts: Metadata, now: float, s: dict[str, CryptoSigner]) -> None:
        ts.signed.expires = _dt(now) + LIFETIME[Timestamp.type]
        ts.signatures.clear()
        ts.sign(s[Timestamp.type])
        self._write("timestamp.json", ts)

    def _current_snapshot_version(self) -> int:
        return self._load("timestamp.json").signed.snapshot_meta.version

    def _current_targets(self) -> Metadata:
        snap = self._load(f"{self._current_snapshot_version()}.snapshot.json")
        return self._load(f"{snap.signed.meta['targets.json'].version}.targets.json")

    def current(self) -> TargetFile | None:
        """The definitions target the current metadata names, if any was published."""
        return self._current_targets().signed.targets.get(TARGET_NAME)

    # --- publish and re-sign ---------------------------------------------------------------

    def publish(self, data: bytes, version: str, now: float) -> Published:
        """Add a package as the `definitions.pkg` target; its version must be higher than the last one's."""
        if not _VERSION.match(version):
            raise PublishRefused(f"version {version!r} is not dotted numbers")
        if not 0 < len(data) <= MAX_TARGET_BYTES:
            raise PublishRefused(f"a package is 1..{MAX_TARGET_BYTES} bytes, not {len(data)}")
        with self._locked():
            md = self._current_targets()
            old = md.signed.targets.get(TARGET_NAME)
            old_v = (old.custom or {}).get("version") if old is not None else None
            if isinstance(old_v, str) and _VERSION.match(old_v) and _vkey(version) <= _vkey(old_v):
                raise PublishRefused(f"version {version} is not newer than the published {old_v}")
            digest = hashlib.sha256(data).hexdigest()
            try:
                write_atomic(self.targets_dir / f"{digest}.{TARGET_NAME}", data)
                md.signed.targets[TARGET_NAME] = TargetFile(length=len(data), hashes={"sha256": digest},
                                                            path=TARGET_NAME,
                                                            unrecognized_fields={"custom": {"version": version}})
                md.signed.version += 1
                md.signed.expires = _dt(now) + LIFETIME[Targets.type]
                self._sign_chain(md, now)
                self._prune()
            except OSError as e:
                raise CloudStateError(f"{self.folder}: cannot write: {e.strerror or e}") from None
            return Published(version, len(data), digest, md.signed.version)

    def _prune(self) -> None:
        files = sorted(self.targets_dir.glob(f"*.{TARGET_NAME}"), key=lambda p: p.stat().st_mtime, reverse=True)
        for p in files[KEEP_TARGET_FILES:]:
            p.unlink(missing_ok=True)

    def refresh_expiring(self, now: float) -> list[str]:
        """Re-sign every role past half its lifetime (and the ones above it); the roles re-signed."""
        t = _dt(now)

        def stale(md: Metadata) -> bool:
            return md.signed.expires - t < LIFETIME[md.signed.type] / 2

        with self._locked():
            root = self._load(f"{self._root_version()}.root.json")
            done: list[str] = []
            if stale(root):
                root.signed.version += 1
                root.signed.expires = t + LIFETIME[Root.type]
                root.signatures.clear()
                root.sign(self._signer(Root.type))
                self._write(f"{root.signed.version}.root.json", root)
                done.append(Root.type)
            s = {r: self._signer(r) for r in (Targets.type, Snapshot.type, Timestamp.type)}
            targets = self._current_targets()
            snap = self._load(f"{self._current_snapshot_version()}.snapshot.json")
            ts = self._load("timestamp.json")
            if stale(targets):
                targets.signed.version += 1
                targets.signed.expires = t + LIFETIME[Targets.type]
                self._sign_chain(targets, now, s)
                return done + [Targets.type, Snapshot.type, Timestamp.type]
            if stale(snap):
                snap.signed.version += 1
                self._sign_snapshot_and_timestamp(snap, now, s)
                return done + [Snapshot.type, Timestamp.type]
            if stale(ts):
                ts.signed.version += 1
                self._sign_timestamp(ts, now, s)
                return done + [Timestamp.type]
            return done

    # --- serving -------------------------------------------------------------------------------

    def metadata_path(self, name: str) -> Path | None:
        """A metadata file by its served name (`timestamp.json`, `3.snapshot.json`...), None if unknown."""
        if not _SAFE.match(name) or not name.endswith(".json"):
            return None
        p = self.metadata_dir / name
        return p if p.is_file() else None

    def target_path(self, name: str) -> Path | None:
        if not _SAFE.match(name):
            return None
        p = self.targets_dir / name
        return p if p.is_file() else None
