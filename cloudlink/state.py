"""The agent's state folder and identity.

DIR/agent.json   server endpoints, device id, CA pin (written atomically)
DIR/ca.pem       the cloud CA, pinned at enrolment (its SHA-256 matched the code)
DIR/device.key   the device's private key (0600): made here, never sent anywhere
DIR/device.pem   the client certificate the cloud signed for it
DIR/tuf-root.json the definitions repository's TUF root, pinned at enrolment (the updater's trust anchor)
DIR/commands.sqlite  used command nonces and results not yet reported
DIR/queue.sqlite the durable detection queue (usable before enrolment: offline exports)
DIR/status.json  what `utm cloudlink run` last did, for `utm cloudlink status`

Trust decision: the enrolment code carries a 128-bit pin of the CA
certificate, so enrolment needs no CA file and no trust-on-first-use; after
enrolment only the pinned CA is trusted (never the system store).
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cloudlink.errors import EnrolError, StateError
from firmware.base.atomic import write_atomic

DEFAULT_PORTS = (8443, 443)   # SPEC section 2: the customer firewall allows both


def endpoints_for(server: str) -> tuple[str, ...]:
    """`https://host` -> 8443 then 443; a URL with an explicit port is used as given."""
    try:
        u = urlsplit(server)
        port = u.port
    except ValueError:
        raise EnrolError(f"not a URL: {server!r}") from None
    if u.scheme != "https" or not u.hostname:
        raise EnrolError(f"the server must be an https:// URL, not {server!r}")
    if u.path not in ("", "/") or u.query or u.fragment or u.username:
        raise EnrolError(f"give the server as https://HOST[:PORT] only, not {server!r}")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    if port is not None:
        return (f"https://{host}:{port}",)
    return tuple(f"https://{host}:{p}" for p in DEFAULT_PORTS)


def new_device_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key: ec.EllipticCurvePrivateKey) -> str:
    """A CSR proving possession of the key; the cloud picks the subject, so ours is a placeholder."""
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "utm-device")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def check_issued_cert(cert_pem: str, key: ec.EllipticCurvePrivateKey, ca_pem: bytes, device_id: str) -> None:
    """The cloud's certificate must be for our key, signed by the pinned CA, and name our device id."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as e:
        raise EnrolError(f"the issued certificate does not verify against the pinned CA: {e}") from None
    ours = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    theirs = cert.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    if ours != theirs:
        raise EnrolError("the issued certificate is not for this device's key")
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or cns[0].value != device_id:
        raise EnrolError("the issued certificate does not name the device id the cloud gave")


@dataclass(frozen=True, slots=True)
class AgentState:
    folder: Path
    endpoints: tuple[str, ...]
    device_id: str
    ca_pin: str
    command_key: str          # the cloud's Ed25519 command key (base64), pinned at enrolment

    @property
    def commands_path(self) -> Path:
        return self.folder / "commands.sqlite"

    @property
    def tuf_root_path(self) -> Path:
        return self.folder / "tuf-root.json"

    @property
    def queue_path(self) -> Path:
        return self.folder / "queue.sqlite"

    @property
    def status_path(self) -> Path:
        return self.folder / "status.json"

    @classmethod
    def load(cls, folder: Path) -> "AgentState":
        folder = Path(folder)
        try:
            obj = orjson.loads((folder / "agent.json").read_bytes())
            for f in ("ca.pem", "device.key", "device.pem"):
                if not (folder / f).is_file():
                    raise StateError(f"{folder}: {f} is missing; enrol again")
            return cls(folder, tuple(obj["endpoints"]), str(obj["device_id"]), str(obj["ca_pin"]),
                       str(obj["command_key"]))
        except FileNotFoundError:
            raise StateError(f"{folder}: not enrolled (no agent.json); run `utm cloudlink enroll` first") from None
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as e:
            raise StateError(f"{folder}: agent.json unreadable: {e}") from None

    @staticmethod
    def save(folder: Path, endpoints: tuple[str, ...], device_id: str, ca_pin: str, ca_pem: bytes,
             key: ec.EllipticCurvePrivateKey, cert_pem: str, command_key: str,
             tuf_root: str | None = None) -> "AgentState":
        """Write key, certificate and CA first, agent.json last: a folder with agent.json is complete."""
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(folder / "device.key", key.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()), mode=0o600)
        write_atomic(folder / "device.pem", cert_pem.encode("ascii"))
        write_atomic(folder / "ca.pem", ca_pem)
        if tuf_root is not None:
            write_atomic(folder / "tuf-root.json", tuf_root.encode("utf-8"))
        write_atomic(folder / "agent.json", orjson.dumps(
            {"endpoints": list(endpoints), "device_id": device_id, "ca_pin": ca_pin, "command_key": command_key},
            option=orjson.OPT_INDENT_2))
        return AgentState(folder, endpoints, device_id, ca_pin, command_key)

    def client_ssl_context(self) -> ssl.SSLContext:
        """Mutual TLS: trust only the pinned CA, check the host name, present the device certificate."""
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.folder / "ca.pem"))
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(self.folder / "device.pem", self.folder / "device.key")
        except (OSError, ssl.SSLError) as e:
            raise StateError(f"{self.folder}: cannot load the device identity: {e}") from None
        return ctx

    def certificate(self) -> x509.Certificate:
        try:
            return x509.load_pem_x509_certificate((self.folder / "device.pem").read_bytes())
        except (OSError, ValueError) as e:
            raise StateError(f"{self.folder}: device.pem unreadable: {e}") from None
