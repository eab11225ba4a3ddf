"""Scan definitions bundles: compiled YARA rules and hash lists in one checked file.

What `utm scan --write-bundle` writes and `utm scan --bundle` (or `utm
inspect --scan-bundle`) loads, so an appliance gets its definitions as one
file that loads in a fraction of a second, the way signature bundles do
(`inspection.detect.bundle`). Layout (integers big-endian)::

    magic "UTMSCANS"  (8)
    header length     (4)
    SHA-256 of header (32)
    header            JSON: format, yara (version), yara_bytes, hash_bytes, payload_sha256,
                      yara_files, yara_skipped, hash_sources
    payload           compiled YARA rules (yara's own format, may be empty) + hash list text

Checks run before anything is loaded: magic, header hash, format, YARA
version (compiled rules only load into the YARA that wrote them), payload
length and hash. The hashes catch corruption, not forgery: authenticity is
the job of the signed update that delivers the file.
"""
from __future__ import annotations

import hashlib
import io
import json
import struct
from dataclasses import dataclass

__all__ = ["SCAN_MAGIC", "ScanBundle", "ScanBundleError", "decode_scan_bundle", "encode_scan_bundle"]

SCAN_MAGIC = b"UTMSCANS"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">8sI32s")
_HEADER_LIMIT = 1 << 20


class ScanBundleError(Exception):
    """A bundle that is not one, is damaged, or was written for another YARA."""


@dataclass(frozen=True, slots=True)
class ScanBundle:
    yara_rules: bytes                     # compiled, as yara.Rules.save writes them; b"" for none
    hash_text: str                        # hash list lines (plain or .hdb), sources concatenated
    yara_files: tuple[str, ...]           # namespaces compiled
    yara_skipped: tuple[tuple[str, str], ...]   # (namespace, reason)
    hash_sources: tuple[str, ...]


def encode_scan_bundle(b: ScanBundle, yara_version: str) -> bytes:
    hashes = b.hash_text.encode("utf-8")
    payload = b.yara_rules + hashes
    header = json.dumps({
        "format": FORMAT_VERSION, "yara": yara_version, "yara_bytes": len(b.yara_rules),
        "hash_bytes": len(hashes), "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "yara_files": list(b.yara_files), "yara_skipped": [list(s) for s in b.yara_skipped],
        "hash_sources": list(b.hash_sources),
    }, sort_keys=True).encode()
    return _PREFIX.pack(SCAN_MAGIC, len(header), hashlib.sha256(header).digest()) + header + payload


def decode_scan_bundle(data: bytes, yara_version: str) -> ScanBundle:
    if len(data) < _PREFIX.size:
        raise ScanBundleError("not a scan definitions bundle (too short)")
    magic, hlen, hsha = _PREFIX.unpack_from(data)
    if magic != SCAN_MAGIC:
        raise ScanBundleError("not a scan definitions bundle (bad magic)")
    if hlen > _HEADER_LIMIT or _PREFIX.size + hlen > len(data):
        raise ScanBundleError("damaged bundle: header length")
    raw = data[_PREFIX.size:_PREFIX.size + hlen]
    if hashlib.sha256(raw).digest() != hsha:
        raise ScanBundleError("damaged bundle: header hash mismatch")
    try:
        h = json.loads(raw)
        fmt, ybytes, hbytes = h["format"], int(h["yara_bytes"]), int(h["hash_bytes"])
    except (ValueError, KeyError, TypeError) as e:
        raise ScanBundleError(f"damaged bundle: header: {e}") from None
    if fmt != FORMAT_VERSION:
        raise ScanBundleError(f"bundle format {fmt} is not supported (this engine reads {FORMAT_VERSION})")
    if ybytes and h.get("yara") != yara_version:
        raise ScanBundleError(f"bundle was compiled with YARA {h.get('yara')}, this engine has {yara_version}")
    payload = data[_PREFIX.size + hlen:]
    if ybytes < 0 or hbytes < 0 or len(payload) != ybytes + hbytes:
        raise ScanBundleError("damaged bundle: payload length")
    if hashlib.sha256(payload).hexdigest() != h.get("payload_sha256"):
        raise ScanBundleError("damaged bundle: payload hash mismatch")
    try:
        return ScanBundle(payload[:ybytes], payload[ybytes:].decode("utf-8"), tuple(h.get("yara_files", ())),
                          tuple((str(a), str(b)) for a, b in h.get("yara_skipped", ())),
                          tuple(h.get("hash_sources", ())))
    except (ValueError, TypeError) as e:
        raise ScanBundleError(f"damaged bundle: {e}") from None


def rules_to_bytes(rules) -> bytes:
    """Compiled YARA rules as bytes (yara-python saves to a file object)."""
    buf = io.BytesIO()
    rules.save(file=buf)
    return buf.getvalue()
