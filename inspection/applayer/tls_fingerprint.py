"""ClientHello/ServerHello decoding and the TLS fingerprints built from them.

The hello decoders are pure functions from a handshake message body to a
frozen `ClientHello`/`ServerHello` (plus Suricata event names); they keep what
was parsed before a malformed field, the way Suricata's JA3 does. The
fingerprints are pure functions over those fields. GREASE values (RFC 8701)
are dropped everywhere, as both specifications require.

* JA3 / JA3S (Salesforce): ``version,ciphers,extensions,groups,point_formats``
  (decimal, ``-`` separated) and its MD5; JA3S is ``version,cipher,extensions``.
* JA4 (FoxIO, technical_details/JA4.md): ``t13d1516h2_<ciphers>_<exts+sigalgs>``
  where the two hashes are truncated SHA-256 over sorted hex lists. Empty
  lists hash to ``000000000000`` and a missing signature-algorithm list leaves
  no trailing underscore, as the FoxIO spec says (Suricata 7/8 differ from the
  spec on these two corner cases).
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

EXT_SERVER_NAME, EXT_GROUPS, EXT_POINT_FORMATS, EXT_SIG_ALGS = 0x0000, 0x000A, 0x000B, 0x000D
EXT_ALPN, EXT_SESSION_TICKET, EXT_EARLY_DATA, EXT_SUPPORTED_VERSIONS = 0x0010, 0x0023, 0x002A, 0x002B
TLS_VERSION_13 = 0x0304

# Suricata TLS event names raised while decoding hellos.
EV_HANDSHAKE_INVALID_LENGTH = "handshake_invalid_length"
EV_MULTIPLE_SNI = "multiple_sni_extensions"
EV_INVALID_SNI_TYPE = "invalid_sni_type"
EV_INVALID_SNI_LENGTH = "invalid_sni_length"


@dataclass(frozen=True, slots=True)
class ClientHello:
    """Fields of a ClientHello in wire order (GREASE kept; the fingerprints drop it)."""

    legacy_version: int
    ciphers: tuple[int, ...] = ()
    extensions: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    point_formats: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    alpns: tuple[bytes, ...] = ()
    supported_versions: tuple[int, ...] | None = None
    sni: bytes | None = None
    session_id: bytes = b""
    session_ticket: bool = False
    early_data: bool = False
    sslv2: bool = False
    complete: bool = True          # False: parsing stopped at a malformed field


@dataclass(frozen=True, slots=True)
class ServerHello:
    """Fields of a ServerHello; `selected_version` comes from supported_versions."""

    legacy_version: int
    random: bytes = b""
    session_id: bytes = b""
    cipher: int | None = None
    extensions: tuple[int, ...] = ()
    alpns: tuple[bytes, ...] = ()
    selected_version: int | None = None


class _Short(Exception):
    """A length field points past its container (internal control flow)."""


class _Cursor:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf, self.pos, self.end = buf, pos, len(buf) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise _Short
        self.pos += n
        return self.buf[self.pos - n:self.pos]

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u24(self) -> int:
        return int.from_bytes(self.take(3), "big")


def _u16_list(data: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{len(data) // 2}H", data[: len(data) & ~1])


def _u16_vector(data: bytes) -> tuple[int, ...]:
    """A 16-bit-length-prefixed list of 16-bit values (groups, signature algorithms)."""
    cur = _Cursor(data)
    size = cur.u16()
    if size % 2:
        raise _Short
    return _u16_list(cur.take(size))


def _alpn_list(data: bytes) -> tuple[bytes, ...]:
    cur = _Cursor(data)
    body = _Cursor(cur.take(cur.u16()))
    names = []
    while body.remaining:
        size = body.u8()
        if size > body.remaining:
            break
        names.append(body.take(size))
    return tuple(names)


def _sni(data: bytes) -> tuple[bytes | None, str | None]:
    cur = _Cursor(data)
    cur.u16()
    if cur.u8() != 0:
        return None, EV_INVALID_SNI_TYPE
    size = cur.u16()
    if size == 0 or size > 255 or size > cur.remaining:
        return None, EV_INVALID_SNI_LENGTH
    return cur.take(size), None


def parse_client_hello(body: bytes) -> tuple[ClientHello | None, list[str]]:
    """Decode a ClientHello body; keeps what was parsed before a malformed field."""
    cur = _Cursor(body)
    if cur.remaining < 2:
        return None, [EV_HANDSHAKE_INVALID_LENGTH]
    f: dict = {"legacy_version": cur.u16()}
    events: list[str] = []
    exts: list[int] = []
    try:
        cur.take(32)
        f["session_id"] = cur.take(cur.u8())
        size = cur.u16()
        if size % 2:
            raise _Short
        f["ciphers"] = _u16_list(cur.take(size))
        cur.take(cur.u8())
        if cur.remaining >= 2:
            block = _Cursor(cur.take(cur.u16()))
            while block.remaining:
                etype, data = block.u16(), block.take(block.u16())
                if data:
                    error = _client_extension(etype, data, f, events)
                    if error:
                        events.append(error)
                        f["complete"] = False
                        break
                elif etype == EXT_SESSION_TICKET:
                    f["session_ticket"] = True
                elif etype == EXT_EARLY_DATA:
                    f["early_data"] = True
                exts.append(etype)
    except _Short:
        events.append(EV_HANDSHAKE_INVALID_LENGTH)
        f["complete"] = False
    return ClientHello(extensions=tuple(exts), **f), events


def _client_extension(etype: int, data: bytes, f: dict, events: list[str]) -> str | None:
    """Store one non-empty ClientHello extension; an event name stops the list."""
    if etype == EXT_SERVER_NAME:
        name, error = _sni(data)
        if error:
            return error
        if "sni" in f:
            events.append(EV_MULTIPLE_SNI)
        else:
            f["sni"] = name
    elif etype == EXT_GROUPS:
        f["groups"] = _u16_vector(data)
    elif etype == EXT_POINT_FORMATS:
        cur = _Cursor(data)
        f["point_formats"] = tuple(cur.take(cur.u8()))
    elif etype == EXT_SIG_ALGS:
        f["signature_algorithms"] = _u16_vector(data)
    elif etype == EXT_ALPN:
        f["alpns"] = _alpn_list(data)
    elif etype == EXT_SUPPORTED_VERSIONS:
        cur = _Cursor(data)
        size = cur.u8()
        if size < 2:
            raise _Short
        f["supported_versions"] = _u16_list(cur.take(size))
    elif etype == EXT_SESSION_TICKET:
        f["session_ticket"] = True
    elif etype == EXT_EARLY_DATA:
        f["early_data"] = True
    return None


def parse_server_hello(body: bytes) -> tuple[ServerHello | None, list[str]]:
    """Decode a ServerHello, including TLS 1.3 drafts < 22 (no session id/compression)."""
    cur = _Cursor(body)
    if cur.remaining < 2:
        return None, [EV_HANDSHAKE_INVALID_LENGTH]
    version = cur.u16()
    draft = version == TLS_VERSION_13 or (version >> 8) == 0x7F
    f: dict = {}
    exts: list[int] = []
    events: list[str] = []
    try:
        f["random"] = cur.take(32)
        if not draft:
            f["session_id"] = cur.take(cur.u8())
        f["cipher"] = cur.u16()
        if not draft:
            cur.take(1)
        if cur.remaining >= 2:
            block = _Cursor(cur.take(cur.u16()))
            while block.remaining:
                etype, data = block.u16(), block.take(block.u16())
                if etype == EXT_SUPPORTED_VERSIONS and data:
                    f["selected_version"] = _Cursor(data).u16()
                elif etype == EXT_ALPN and data:
                    f["alpns"] = _alpn_list(data)
                exts.append(etype)
    except _Short:
        events.append(EV_HANDSHAKE_INVALID_LENGTH)
    return ServerHello(legacy_version=version, extensions=tuple(exts), **f), events


# -- fingerprints ---------------------------------------------------------------

GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))

_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
_EMPTY_HASH = "000000000000"


def is_grease(value: int) -> bool:
    return value in GREASE


def _dec(values: Iterable[int]) -> str:
    return "-".join(str(v) for v in values if v not in GREASE)


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("ascii"), usedforsecurity=False).hexdigest()


def ja3_string(
    version: int,
    ciphers: Sequence[int],
    extensions: Sequence[int],
    groups: Sequence[int],
    point_formats: Sequence[int],
) -> str:
    """The JA3 text of a ClientHello (legacy ``client_version`` in decimal)."""
    return f"{version},{_dec(ciphers)},{_dec(extensions)},{_dec(groups)},{_dec(point_formats)}"


def ja3s_string(version: int, cipher: int, extensions: Sequence[int]) -> str:
    """The JA3S text of a ServerHello (legacy ``server_version``, chosen cipher)."""
    cipher_text = "" if cipher in GREASE else str(cipher)
    return f"{version},{cipher_text},{_dec(extensions)}"


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def _alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def ja4_alpn_code(first_alpn: bytes | None) -> str:
    """Two characters from the first ALPN value ("00" when there is none)."""
    if not first_alpn:
        return "00"
    first, last = first_alpn[0], first_alpn[-1]
    if _alnum(first) and _alnum(last):
        return chr(first) + chr(last)
    hex_text = first_alpn.hex()
    return hex_text[0] + hex_text[-1]


def ja4_version_code(legacy_version: int, supported_versions: Sequence[int] | None) -> str:
    """Highest non-GREASE supported_versions entry, else the legacy version."""
    version = legacy_version
    if supported_versions is not None:
        real = [v for v in supported_versions if v not in GREASE]
        version = max(real) if real else 0
    return _JA4_VERSIONS.get(version, "00")


def ja4_parts(
    *,
    legacy_version: int,
    supported_versions: Sequence[int] | None,
    ciphers: Sequence[int],
    extensions: Sequence[int],
    signature_algorithms: Sequence[int],
    first_alpn: bytes | None,
    transport: str = "t",
) -> tuple[str, str, str]:
    """The raw (unhashed) JA4 sections a, b and c (FoxIO ``JA4_r``)."""
    cipher_list = [c for c in ciphers if c not in GREASE]
    ext_list = [e for e in extensions if e not in GREASE]
    sni = "d" if EXT_SERVER_NAME in ext_list else "i"
    part_a = (
        f"{transport}{ja4_version_code(legacy_version, supported_versions)}{sni}"
        f"{min(99, len(cipher_list)):02d}{min(99, len(ext_list)):02d}{ja4_alpn_code(first_alpn)}"
    )
    part_b = ",".join(f"{c:04x}" for c in sorted(cipher_list))
    hashed_exts = sorted(e for e in ext_list if e not in (EXT_SERVER_NAME, EXT_ALPN))
    part_c = ",".join(f"{e:04x}" for e in hashed_exts)
    sigalgs = [s for s in signature_algorithms if s not in GREASE]
    if sigalgs and part_c:
        part_c += "_" + ",".join(f"{s:04x}" for s in sigalgs)
    return part_a, part_b, part_c


def ja4(
    *,
    legacy_version: int,
    supported_versions: Sequence[int] | None,
    ciphers: Sequence[int],
    extensions: Sequence[int],
    signature_algorithms: Sequence[int],
    first_alpn: bytes | None,
    transport: str = "t",
) -> str:
    """JA4 fingerprint of a ClientHello, e.g. ``t13d1516h2_8daaf6152771_e5627efa2ab1``."""
    part_a, part_b, part_c = ja4_parts(
        legacy_version=legacy_version,
        supported_versions=supported_versions,
        ciphers=ciphers,
        extensions=extensions,
        signature_algorithms=signature_algorithms,
        first_alpn=first_alpn,
        transport=transport,
    )
    hash_b = _sha12(part_b) if part_b else _EMPTY_HASH
    hash_c = _sha12(part_c) if part_c else _EMPTY_HASH
    return f"{part_a}_{hash_b}_{hash_c}"


def client_ja3(hello: ClientHello) -> str:
    return ja3_string(hello.legacy_version, hello.ciphers, hello.extensions, hello.groups, hello.point_formats)


def client_ja4(hello: ClientHello, transport: str = "t") -> str:
    return ja4(
        legacy_version=hello.legacy_version,
        supported_versions=hello.supported_versions,
        ciphers=hello.ciphers,
        extensions=hello.extensions,
        signature_algorithms=hello.signature_algorithms,
        first_alpn=hello.alpns[0] if hello.alpns else None,
        transport=transport,
    )


def server_ja3s(hello: ServerHello) -> str | None:
    return None if hello.cipher is None else ja3s_string(hello.legacy_version, hello.cipher, hello.extensions)
