"""The cloud's state folder: CA key and certificate, server certificate, the SQLite store.

DIR/ca.key (0600), DIR/ca.pem, DIR/server.key (0600), DIR/server.pem
(re-issued at each start for the names the agents dial), DIR/cloud.sqlite.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cloudlink.protocol import EnrolCode
from refcloud.ca import CertificateAuthority
from refcloud.errors import CloudStateError
from refcloud.store import CloudStore

DEFAULT_CODE_VALID_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class CloudState:
    folder: Path
    ca: CertificateAuthority
    store: CloudStore

    @classmethod
    def open(cls, folder: Path, now: float, *, create: bool = False) -> "CloudState":
        """Open an existing state folder; with `create`, make the folder and a new CA if there is none."""
        folder = Path(folder)
        if not (folder / "ca.pem").exists():
            if not create:
                raise CloudStateError(f"{folder}: not a cloud state folder (no ca.pem); "
                                      "`utm cloud enroll-code --state DIR` creates one")
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as e:
                raise CloudStateError(f"{folder}: {e.strerror}") from None
            CertificateAuthority.create(datetime.fromtimestamp(now, timezone.utc)).save(folder)
        ca = CertificateAuthority.load(folder)
        return cls(folder, ca, CloudStore(folder / "cloud.sqlite"))

    def close(self) -> None:
        self.store.close()

    def new_enrol_code(self, now: float, valid_s: float = DEFAULT_CODE_VALID_S) -> EnrolCode:
        code = EnrolCode.new(os.urandom(10), self.ca.cert_der)
        self.store.add_code(code.secret, now, valid_s)
        return code
