"""X.509 certificate summary in Suricata's EVE formats.

`summarize_certificate` turns one DER certificate (as carried in a TLS
Certificate message) into a `CertSummary`:

* subject / issuerdn: RDNs in certificate order, ``", "`` between RDNs and
  ``" + "`` inside a multi-valued RDN, attribute names as x509-parser prints
  them (``C=FR, ST=IDF, L=Paris, O=Stamus, CN=SELKS``). String values are the
  raw bytes read as UTF-8, embedded NULs kept; other values in upper-case hex.
* serial: the raw DER INTEGER content bytes, upper-case hex joined by ``:``
  (a leading ``00`` sign byte is kept, ``00:97:E6:47:...``).
* fingerprint: SHA-1 of the DER bytes, lower-case hex joined by ``:``.
* notbefore / notafter: UTC, ``2017-01-01T00:00:00``.
* subjectaltname: DNS names (and IP addresses) in certificate order.

This is a small, lenient DER walk rather than a full X.509 decoder: Suricata
(x509-parser) accepts certificates that strict decoders such as
`cryptography` refuse - a NUL inside a PrintableString is the classic
evasion (suricata-verify tls-subject-zero) - and the summary must still name
them. Signatures are not checked. Never raises; a certificate that cannot be
summarised yields the name of a Suricata certificate event instead.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
from dataclasses import dataclass

MAX_SUBJECT_ALT_NAMES = 512

# x509-parser prints these abbreviations, then the OID registry's short name,
# then the dotted OID.
_ABBREV = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "Email",
}
_SHORT_NAMES = {
    "2.5.4.0": "objectClass", "2.5.4.1": "aliasedEntryName", "2.5.4.2": "knowledgeInformation",
    "2.5.4.4": "surname", "2.5.4.9": "streetAddress", "2.5.4.12": "title",
    "2.5.4.13": "description", "1.2.840.113549.1.9.2": "unstructuredName",
}
# ASN.1 string types x509-parser prints as text (everything else: hex).
_STRING_TAGS = frozenset({0x07, 0x0C, 0x12, 0x13, 0x14, 0x15, 0x16, 0x19, 0x1A, 0x1B, 0x1E})
_SAN_OID = "2.5.29.17"

# Suricata certificate event names (lower case).
EV_INVALID_CERTIFICATE = "invalid_certificate"
EV_INVALID_LENGTH = "certificate_invalid_length"
EV_INVALID_DER = "certificate_invalid_der"
EV_INVALID_SERIAL = "certificate_invalid_serial"
EV_INVALID_X509NAME = "certificate_invalid_x509name"
EV_INVALID_DATE = "certificate_invalid_date"
EV_INVALID_EXTENSIONS = "certificate_invalid_extensions"


@dataclass(frozen=True, slots=True)
class CertSummary:
    """What the TLS EVE record says about one (the first decodable) certificate."""

    subject: str
    issuerdn: str
    serial: str
    fingerprint: str
    notbefore: str
    notafter: str
    subjectaltname: tuple[str, ...] = ()


class _Bad(Exception):
    """Malformed certificate; carries the Suricata event name."""

    def __init__(self, event: str) -> None:
        super().__init__(event)
        self.event = event


def sha1_fingerprint(der: bytes) -> str:
    return hashlib.sha1(der, usedforsecurity=False).digest().hex(":")


def _tlv(buf: bytes, pos: int, end: int, event: str = EV_INVALID_DER) -> tuple[int, int, int]:
    """(tag, content_start, content_end) of the TLV at `pos`, inside [pos, end)."""
    if pos + 2 > end:
        raise _Bad(event)
    tag, first = buf[pos], buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise _Bad(event)
        length = int.from_bytes(buf[pos:pos + count], "big")
        pos += count
    if pos + length > end:
        raise _Bad(event)
    return tag, pos, pos + length


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        item = _tlv(buf, start, end)
        items.append(item)
        start = item[2]
    return items


def _oid(raw: bytes) -> str:
    if not raw:
        raise _Bad(EV_INVALID_X509NAME)
    arcs, value = [], 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2) if arcs else 0
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def _name(buf: bytes, start: int, end: int) -> str:
    rdns = []
    for tag, rs, re_ in _children(buf, start, end):
        if tag != 0x31:
            raise _Bad(EV_INVALID_X509NAME)
        attrs = []
        for atag, as_, ae in _children(buf, rs, re_):
            parts = _children(buf, as_, ae) if atag == 0x30 else []
            if len(parts) != 2 or parts[0][0] != 0x06:
                raise _Bad(EV_INVALID_X509NAME)
            dotted = _oid(buf[parts[0][1]:parts[0][2]])
            vtag, vs, ve = parts[1]
            raw = buf[vs:ve]
            text = raw.decode("utf-8", "replace") if vtag in _STRING_TAGS else raw.hex().upper()
            label = _ABBREV.get(dotted) or _SHORT_NAMES.get(dotted) or f"OID({dotted})"
            attrs.append(f"{label}={text}")
        rdns.append(" + ".join(attrs))
    return ", ".join(rdns)


def _time(buf: bytes, tag: int, start: int, end: int) -> str:
    text = buf[start:end].decode("ascii", "replace").rstrip("Z")
    try:
        if tag == 0x17:  # UTCTime YYMMDDHHMM[SS]
            year = int(text[0:2])
            year += 1900 if year >= 50 else 2000
            rest = text[2:]
        elif tag == 0x18:  # GeneralizedTime YYYYMMDDHHMM[SS[.fff]]
            year, rest = int(text[0:4]), text[4:].split(".")[0]
        else:
            raise _Bad(EV_INVALID_DATE)
        if not rest.isdigit() or len(rest) not in (8, 10):
            raise _Bad(EV_INVALID_DATE)
        second = int(rest[8:10]) if len(rest) == 10 else 0
        moment = _dt.datetime(year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]), second)
    except ValueError:
        raise _Bad(EV_INVALID_DATE) from None
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def _subject_alt_names(buf: bytes, start: int, end: int) -> tuple[str, ...]:
    """GeneralNames from the SAN extension inside the [3] extensions wrapper."""
    tag, start, end = _tlv(buf, start, end, EV_INVALID_EXTENSIONS)
    for etag, es, ee in _children(buf, start, end) if tag == 0x30 else ():
        parts = _children(buf, es, ee) if etag == 0x30 else []
        if len(parts) < 2 or parts[0][0] != 0x06 or _oid(buf[parts[0][1]:parts[0][2]]) != _SAN_OID:
            continue
        vtag, vs, ve = parts[-1]
        if vtag != 0x04:
            raise _Bad(EV_INVALID_EXTENSIONS)
        gtag, gs, ge = _tlv(buf, vs, ve, EV_INVALID_EXTENSIONS)
        names: list[str] = []
        for ntag, ns, ne in _children(buf, gs, ge):
            if ntag == 0x82:  # dNSName
                names.append(buf[ns:ne].decode("utf-8", "replace"))
            elif ntag == 0x87 and ne - ns in (4, 16):  # iPAddress
                names.append(str(ipaddress.ip_address(buf[ns:ne])))
            if len(names) >= MAX_SUBJECT_ALT_NAMES:
                break
        return tuple(names)
    return ()


def parse_certificate_list(body: bytes, max_certs: int = 64) -> tuple[tuple[bytes, ...], bool]:
    """DER certificates of a TLS <= 1.2 Certificate message body: (certs, well_formed)."""
    if len(body) < 3:
        return (), False
    end = 3 + int.from_bytes(body[:3], "big")
    if end > len(body):
        return (), False
    certs: list[bytes] = []
    pos = 3
    while pos < end and len(certs) < max_certs:
        size = int.from_bytes(body[pos:pos + 3], "big")
        if pos + 3 + size > end:
            return tuple(certs), False
        certs.append(body[pos + 3:pos + 3 + size])
        pos += 3 + size
    return tuple(certs), True


def summarize_certificate(der: bytes) -> tuple[CertSummary | None, str | None]:
    """Decode one DER certificate: (summary, None) or (None, certificate event name)."""
    try:
        tag, start, end = _tlv(der, 0, len(der), EV_INVALID_LENGTH)
        if tag != 0x30 or end != len(der):
            raise _Bad(EV_INVALID_LENGTH if tag == 0x30 else EV_INVALID_DER)
        tag, start, end = _tlv(der, start, end)
        if tag != 0x30:
            raise _Bad(EV_INVALID_DER)
        fields = _children(der, start, end)
        if fields and fields[0][0] == 0xA0:
            fields = fields[1:]
        if len(fields) < 6 or fields[0][0] != 0x02 or fields[0][1] == fields[0][2]:
            raise _Bad(EV_INVALID_SERIAL if fields and fields[0][0] != 0x02 else EV_INVALID_DER)
        serial, _alg, issuer, validity, subject = fields[:5]
        if issuer[0] != 0x30 or subject[0] != 0x30 or validity[0] != 0x30:
            raise _Bad(EV_INVALID_X509NAME if validity[0] == 0x30 else EV_INVALID_DATE)
        times = _children(der, validity[1], validity[2])
        if len(times) != 2:
            raise _Bad(EV_INVALID_DATE)
        sans: tuple[str, ...] = ()
        for ftag, fs, fe in fields[6:]:
            if ftag == 0xA3:
                sans = _subject_alt_names(der, fs, fe)
        summary = CertSummary(
            subject=_name(der, subject[1], subject[2]),
            issuerdn=_name(der, issuer[1], issuer[2]),
            serial=der[serial[1]:serial[2]].hex(":").upper(),
            fingerprint=sha1_fingerprint(der),
            notbefore=_time(der, *times[0]),
            notafter=_time(der, *times[1]),
            subjectaltname=sans,
        )
    except _Bad as bad:
        return None, bad.event
    except (ValueError, IndexError):
        return None, EV_INVALID_DER
    return summary, None
