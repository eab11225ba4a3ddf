"""EVE ``tls`` object of a `TlsRecord`, in Suricata 8's extended field order.

Absent values are omitted, as Suricata does: no certificate means no
subject/issuerdn/serial/...; ``session_resumed`` only appears when true;
``version`` is always present (``UNDETERMINED`` when no server spoke).
"""
from __future__ import annotations

import base64

from inspection.applayer.tls import TlsRecord
from inspection.applayer.tls_cert import CertSummary


def _b64(der: bytes) -> str:
    return base64.b64encode(der).decode("ascii")


def _add_chain(eve: dict, chain: tuple[bytes, ...], with_certificates: bool) -> None:
    if with_certificates and chain:
        eve["certificate"] = _b64(chain[0])
        eve["chain"] = [_b64(der) for der in chain]


def _client_cert(cert: CertSummary | None, chain: tuple[bytes, ...], with_certificates: bool) -> dict:
    client: dict = {}
    if cert is not None:
        client.update(
            subject=cert.subject, issuerdn=cert.issuerdn, fingerprint=cert.fingerprint,
            serial=cert.serial, notbefore=cert.notbefore, notafter=cert.notafter,
        )
    _add_chain(client, chain, with_certificates)
    return client


def tls_to_eve(rec: TlsRecord, *, with_certificates: bool = False) -> dict:
    """The value of the EVE ``tls`` key for one TLS record.

    `with_certificates` adds Suricata's optional ``certificate``/``chain``
    (base64 DER) for the server and under ``client`` (the custom fields
    ``certificate, chain, client_certificate, client_chain``).
    """
    eve: dict = {}
    for key in ("subject", "issuerdn"):
        value = getattr(rec, key)
        if value is not None:
            eve[key] = value
    if rec.subjectaltname:
        eve["subjectaltname"] = list(rec.subjectaltname)
    if rec.session_resumed:
        eve["session_resumed"] = True
    for key in ("serial", "fingerprint", "sni"):
        value = getattr(rec, key)
        if value is not None:
            eve[key] = value
    eve["version"] = rec.version
    for key in ("notbefore", "notafter"):
        value = getattr(rec, key)
        if value is not None:
            eve[key] = value
    _add_chain(eve, rec.server_chain, with_certificates)
    if rec.ja3 is not None:
        eve["ja3"] = {"hash": rec.ja3_hash, "string": rec.ja3}
    if rec.ja3s is not None:
        eve["ja3s"] = {"hash": rec.ja3s_hash, "string": rec.ja3s}
    if rec.ja4 is not None:
        eve["ja4"] = rec.ja4
    if rec.client_alpns:
        eve["client_alpns"] = list(rec.client_alpns)
    if rec.server_alpns:
        eve["server_alpns"] = list(rec.server_alpns)
    if rec.client_cert is not None:
        eve["client"] = _client_cert(rec.client_cert, rec.client_chain, with_certificates)
    return eve
