"""The cloud's state folder: CA key and certificate, server certificate, the SQLite store.

DIR/ca.key (0600), DIR/ca.pem, DIR/server.key (0600), DIR/server.pem
(re-issued at each start for the names the agents dial), DIR/command.key
(0600, Ed25519: signs remote commands; its public half is given to each
device at enrolment), DIR/cloud.sqlite, DIR/tuf/ (the TUF repository of definitions packages and
its four role keys, see refcloud/tuf_repo.py).
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloudlink.protocol import CommandEnvelope, CommandKind, EnrolCode
from firmware.base.atomic import write_atomic
from refcloud.ca import CertificateAuthority
from refcloud.errors import CloudStateError
from refcloud.store import DEFAULT_CUSTOMER, CloudStore
from refcloud.tuf_repo import TufRepository

DEFAULT_CODE_VALID_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class CloudState:
    folder: Path
    ca: CertificateAuthority
    store: CloudStore
    command_key: Ed25519PrivateKey
    tuf: TufRepository

    @property
    def command_public_b64(self) -> str:
        raw = self.command_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

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
        key, tuf = _command_key(folder), TufRepository.open(folder / "tuf", now)
        return cls(folder, ca, CloudStore(folder / "cloud.sqlite"), key, tuf)

    def close(self) -> None:
        self.store.close()

    def sign_command(self, device_id: str, kind: CommandKind, args: tuple[str, ...], now: float,
                     ttl_s: float) -> CommandEnvelope:
        """A new command with a random id and nonce, signed, stored for the device's next poll."""
        issued = datetime.fromtimestamp(now, timezone.utc)
        env = CommandEnvelope(command_id="cmd-" + os.urandom(8).hex(), device_id=device_id, kind=kind, args=args,
                              issued_at=issued.isoformat(timespec="microseconds"),
                              expires_at=(issued + timedelta(seconds=ttl_s)).isoformat(timespec="microseconds"),
                              nonce=os.urandom(16).hex())
        sig = base64.b64encode(self.command_key.sign(env.signed_bytes())).decode("ascii")
        signed = CommandEnvelope(**{**{f: getattr(env, f) for f in env.__dataclass_fields__}, "signature": sig})
        self.store.add_command(signed, now)
        return signed

    def new_enrol_code(self, now: float, valid_s: float = DEFAULT_CODE_VALID_S,
                       customer: str = DEFAULT_CUSTOMER) -> EnrolCode:
        code = EnrolCode.new(os.urandom(10), self.ca.cert_der)
        self.store.add_code(code.secret, now, valid_s, customer)
        return code


def _command_key(folder: Path) -> Ed25519PrivateKey:
    """Load DIR/command.key, making it on first use (also for state folders from before commands)."""
    path = folder / "command.key"
    try:
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), None)
            if not isinstance(key, Ed25519PrivateKey):
                raise CloudStateError(f"{path}: not an Ed25519 key")
            return key
        key = Ed25519PrivateKey.generate()
        write_atomic(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), mode=0o600)
        return key
    except (OSError, ValueError) as e:
        raise CloudStateError(f"{path}: {e}") from None
