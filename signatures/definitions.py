"""Definitions packages: every kind of definition the box uses, in one signed file.

The box judges traffic with several kinds of definitions: the compiled rule
bundle, the URL category database, YARA rules and SHA-256 block lists. They
are published together and must be taken together (a rule update that
expects a new category, or a hash list from another release, would give
verdicts nobody tested), so they travel as one package signed once.

Layout (integers big-endian)::

    magic "UTMDEFS1"   (8)
    manifest length    (4)
    manifest           canonical JSON: format, version, created, key_id, components
                       [{kind, name, size, sha256}], in payload order
    signature          (64) Ed25519 over magic + length + manifest
    payloads           each component's bytes, in manifest order

`open_package` checks in the order python-tuf and RAUC taught: sizes are
bounded before anything is read in full, the signature is verified before
the manifest is parsed, each component's size and SHA-256 before it is
handed out, trailing bytes are refused, and a package older than the one in
use (its `version`) is refused so an attacker cannot roll the box back. The
outer delivery (the update channel) adds its own TUF signatures; this one
lets an offline tool or a staged file be checked on its own.

Components are opaque here: each `ComponentKind` names the loader that will
read it (the rule bundle loader, the category database, YARA, hash lists).
A YARA rule folder is packed as a deterministic tar by the caller.
"""
from __future__ import annotations

import enum
import hashlib
import json
import re
import struct
from dataclasses import dataclass
from typing import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from signatures.errors import SignatureError

__all__ = [
    "Component", "ComponentKind", "DefinitionsError", "DefinitionsFormatError", "DefinitionsRollbackError",
    "DefinitionsSignatureError", "Manifest", "Package", "build_package", "key_id", "open_package", "peek_manifest",
    "version_key",
]

MAGIC = b"UTMDEFS1"
FORMAT = 1
SIGNATURE_BYTES = 64
MANIFEST_LIMIT = 1 << 16            # a manifest is a few hundred bytes
COMPONENT_LIMIT = 512 << 20         # one component (the largest is the category database, ~30 MB)
_PREFIX = struct.Struct(">8sI")
_VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class DefinitionsError(SignatureError):
    """A definitions package cannot be used; `reason` says why in the operator's words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DefinitionsFormatError(DefinitionsError):
    """Not a package, truncated, malformed, oversized, or a component that does not match its manifest."""


class DefinitionsSignatureError(DefinitionsError):
    """The signature is missing, made with a key not trusted here, or does not match."""


class DefinitionsRollbackError(DefinitionsError):
    """The package is older than the one in use."""


class ComponentKind(enum.Enum):
    """What a component is, i.e. which loader reads it."""

    RULES = "rules"              # a compiled rule bundle (inspection.detect.bundle)
    CATEGORIES = "categories"    # a URL category database
    YARA = "yara"                # YARA rule sources: one file, or a tar of a folder
    HASHES = "hashes"            # a SHA-256 block list (one hash per line, or ClamAV .hdb)


@dataclass(frozen=True, slots=True)
class Component:
    kind: ComponentKind
    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    format: int
    version: str
    created: str
    key_id: str
    components: tuple[Component, ...]


@dataclass(frozen=True, slots=True)
class Package:
    """A verified package: its manifest and each component's bytes, in manifest order."""

    manifest: Manifest
    payloads: tuple[bytes, ...]

    def of(self, kind: ComponentKind) -> list[tuple[Component, bytes]]:
        return [(c, p) for c, p in zip(self.manifest.components, self.payloads) if c.kind is kind]


def version_key(version: str) -> tuple[int, ...]:
    """Versions compare as dotted integers: ``2026.11.22.1`` > ``2026.11.3``."""
    if not _VERSION.match(version):
        raise DefinitionsFormatError(f"version {version!r} is not dotted numbers (e.g. 2026.11.22.1)")
    return tuple(int(x) for x in version.split("."))


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name for a key: the first 16 hex digits of the SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def build_package(components: Iterable[tuple[ComponentKind, str, bytes]], *, version: str, created: str,
                  key: Ed25519PrivateKey) -> bytes:
    """Sign `components` ((kind, name, bytes), in the order loaders should see them) as one package."""
    version_key(version)
    parts = list(components)
    if not parts:
        raise DefinitionsFormatError("a package needs at least one component")
    entries = []
    for kind, name, data in parts:
        if not _NAME.match(name):
            raise DefinitionsFormatError(f"component name {name!r}: letters, digits, '.', '_', '-' only")
        if len(data) > COMPONENT_LIMIT:
            raise DefinitionsFormatError(f"component {name}: {len(data)} bytes is over the {COMPONENT_LIMIT} limit")
        entries.append({"kind": kind.value, "name": name, "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"format": FORMAT, "version": version, "created": created,
                "key_id": key_id(key.public_key()), "components": entries}
    body = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    if len(body) > MANIFEST_LIMIT:
        raise DefinitionsFormatError("manifest too large")
    signed = _PREFIX.pack(MAGIC, len(body)) + body
    return b"".join([signed, key.sign(signed), *(data for _, _, data in parts)])


def open_package(data: bytes, trusted: Mapping[str, Ed25519PublicKey], *,
                 current_version: str | None = None) -> Package:
    """Verify `data` against the `trusted` keys (by `key_id`) and return its components.

    Raises `DefinitionsFormatError`, `DefinitionsSignatureError` or
    `DefinitionsRollbackError`; nothing of an unverified package is returned."""
    if len(data) < _PREFIX.size or data[:len(MAGIC)] != MAGIC:
        raise DefinitionsFormatError("not a definitions package (bad magic)")
    _, mlen = _PREFIX.unpack_from(data)
    if mlen > MANIFEST_LIMIT:
        raise DefinitionsFormatError(f"manifest length {mlen} is over the {MANIFEST_LIMIT}-byte limit")
    sig_at = _PREFIX.size + mlen
    if len(data) < sig_at + SIGNATURE_BYTES:
        raise DefinitionsFormatError("truncated before the end of the signature")
    signed, signature = data[:sig_at], data[sig_at:sig_at + SIGNATURE_BYTES]
    _verify(signed, signature, trusted)
    manifest = _parse_manifest(data[_PREFIX.size:sig_at])
    if current_version is not None and version_key(manifest.version) < version_key(current_version):
        raise DefinitionsRollbackError(f"package version {manifest.version} is older than {current_version} in use")
    payloads = []
    at = sig_at + SIGNATURE_BYTES
    for c in manifest.components:
        chunk = data[at:at + c.size]
        if len(chunk) != c.size:
            raise DefinitionsFormatError(f"component {c.name}: truncated ({len(chunk)} of {c.size} bytes)")
        if hashlib.sha256(chunk).hexdigest() != c.sha256:
            raise DefinitionsFormatError(f"component {c.name}: SHA-256 does not match the manifest")
        payloads.append(chunk)
        at += c.size
    if at != len(data):
        raise DefinitionsFormatError(f"{len(data) - at} unexpected bytes after the last component")
    return Package(manifest, tuple(payloads))


def peek_manifest(data: bytes) -> Manifest:
    """The manifest, NOT verified: for a publisher that only needs the version to label a TUF target.
    Nothing that acts on definitions may use this; boxes use `open_package`."""
    if len(data) < _PREFIX.size or data[:len(MAGIC)] != MAGIC:
        raise DefinitionsFormatError("not a definitions package (bad magic)")
    _, mlen = _PREFIX.unpack_from(data)
    if mlen > MANIFEST_LIMIT or len(data) < _PREFIX.size + mlen + SIGNATURE_BYTES:
        raise DefinitionsFormatError("truncated or oversized manifest")
    return _parse_manifest(data[_PREFIX.size:_PREFIX.size + mlen])


def _verify(signed: bytes, signature: bytes, trusted: Mapping[str, Ed25519PublicKey]) -> None:
    """Try the trusted keys; the manifest's own key_id is not believed before the signature holds."""
    if not trusted:
        raise DefinitionsSignatureError("no trusted definitions key configured")
    for key in trusted.values():
        try:
            key.verify(signature, signed)
            return
        except InvalidSignature:
            continue
    raise DefinitionsSignatureError("signature does not verify with any trusted key "
                                    f"({', '.join(sorted(trusted))})")


def _parse_manifest(body: bytes) -> Manifest:
    try:
        raw = json.loads(body)
        comps = tuple(Component(ComponentKind(c["kind"]), str(c["name"]), int(c["size"]), str(c["sha256"]))
                      for c in raw["components"])
        m = Manifest(int(raw["format"]), str(raw["version"]), str(raw["created"]), str(raw["key_id"]), comps)
    except (ValueError, KeyError, TypeError) as e:
        raise DefinitionsFormatError(f"malformed manifest: {e}") from None
    if m.format != FORMAT:
        raise DefinitionsFormatError(f"package format {m.format}; this engine reads format {FORMAT}")
    version_key(m.version)
    if not m.components:
        raise DefinitionsFormatError("manifest lists no components")
    for c in m.components:
        if not 0 <= c.size <= COMPONENT_LIMIT or not re.fullmatch(r"[0-9a-f]{64}", c.sha256) or not _NAME.match(c.name):
            raise DefinitionsFormatError(f"component {c.name!r}: bad size, hash or name")
    return m


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise DefinitionsSignatureError(f"not a usable private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DefinitionsSignatureError("definitions are signed with Ed25519 keys only")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise DefinitionsSignatureError(f"not a usable public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise DefinitionsSignatureError("definitions are signed with Ed25519 keys only")
    return key
