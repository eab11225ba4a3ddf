"""A real TUF repository (refcloud.tuf_repo) and an agent-side updater reading it through a tamperable fetcher."""
from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from refcloud.tuf_repo import TufRepository
from signatures.definitions import ComponentKind, build_package, key_id
from updater.definitions import DefinitionsUpdater, PackageStore
from updater.fake import FolderFetcher

VENDOR = Ed25519PrivateKey.generate()
VENDOR_KEYS = {key_id(VENDOR.public_key()): VENDOR.public_key()}


def package(version: str, *, key: Ed25519PrivateKey = VENDOR, extra: bytes = b"",
            rules: bytes | None = None) -> bytes:
    parts = [(ComponentKind.HASHES, "block.txt", b"%064x\n" % int(version.replace(".", "")) + extra)]
    if rules is not None:
        parts.append((ComponentKind.RULES, "et.bundle", rules))
    return build_package(parts, version=version, created="2026-11-22T00:00:00Z", key=key)


class Rig:
    """The cloud's repository in tmp/cloud/tuf, the agent's store in tmp/agent/definitions."""

    def __init__(self, tmp: Path, now: float | None = None, **updater_kw) -> None:
        self.repo = TufRepository.open(tmp / "cloud" / "tuf", time.time() if now is None else now)
        self.root = self.repo.root_bytes()          # pinned at enrolment
        self.store_dir = tmp / "agent" / "definitions"
        self.fetcher = FolderFetcher(self.repo.metadata_dir, self.repo.targets_dir)
        self.kw = updater_kw

    def publish(self, version: str, data: bytes | None = None, now: float | None = None):
        return self.repo.publish(package(version) if data is None else data, version,
                                 time.time() if now is None else now)

    def updater(self) -> DefinitionsUpdater:
        return DefinitionsUpdater(PackageStore(self.store_dir), self.root, self.fetcher, VENDOR_KEYS, **self.kw)

    def check(self):
        return self.updater().check()

    def meta(self, name: str) -> bytes:
        return (self.repo.metadata_dir / name).read_bytes()

    def current(self) -> str | None:
        return PackageStore(self.store_dir).current_version()
