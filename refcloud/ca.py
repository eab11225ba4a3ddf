"""The cloud's own CA: a self-signed root that issues the server certificate and device certificates.

EC P-256 throughout. Server certificates carry only the serverAuth usage and
device certificates only clientAuth, so OpenSSL refuses one in the other's
place. A device certificate's subject CN is the device id the cloud chose;
the CSR's subject is ignored, only its key (and self-signature) is used.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from firmware.base.atomic import write_atomic
from refcloud.errors import CloudStateError, EnrolmentRefused

CA_YEARS = 10
SERVER_DAYS = 365
DEVICE_DAYS = 365


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UTM reference cloud"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @classmethod
    def create(cls, now: datetime) -> "CertificateAuthority":
        key = new_key()
        name = _name(f"UTM reference cloud CA {os.urandom(4).hex()}")
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=365 * CA_YEARS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             key_cert_sign=True, crl_sign=True, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    def save(self, folder: Path) -> None:
        write_atomic(folder / "ca.key", key_pem(self.key), mode=0o600)
        write_atomic(folder / "ca.pem", self.cert_pem)

    @classmethod
    def load(cls, folder: Path) -> "CertificateAuthority":
        try:
            key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
            cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
        except (OSError, ValueError) as e:
            raise CloudStateError(f"{folder}: cannot load the CA: {e}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CloudStateError(f"{folder}: the CA key is not an EC key")
        return cls(key, cert)

    def _issue(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, days: int,
               usage: x509.ObjectIdentifier, now: datetime, sans: list[x509.GeneralName] | None = None,
               not_after: datetime | None = None) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
             .public_key(public_key).serial_number(x509.random_serial_number())
             .not_valid_before(now - timedelta(minutes=5))
             .not_valid_after(not_after if not_after is not None else now + timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                                          key_cert_sign=False, crl_sign=False, encipher_only=False,
                                          decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                            critical=False))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(self.key, hashes.SHA256())

    def issue_server(self, names: list[str], now: datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A fresh server key and certificate for the host names and addresses the agents will dial."""
        sans: list[x509.GeneralName] = []
        for n in dict.fromkeys(names):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        key = new_key()
        return key, self._issue(_name(names[0]), key.public_key(), SERVER_DAYS, ExtendedKeyUsageOID.SERVER_AUTH,
                                now, sans)

    def sign_device_csr(self, csr_pem: str, device_id: str, now: datetime, *,
                        not_after: datetime | None = None) -> x509.Certificate:
        """A client certificate for the CSR's key with CN = device_id; the CSR must be self-signed and strong."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise EnrolmentRefused("the CSR is not a PEM certificate request", "bad_csr") from None
        try:
            ok = csr.is_signature_valid
        except (InvalidSignature, ValueError):
            ok = False
        if not ok:
            raise EnrolmentRefused("the CSR's signature does not verify", "bad_csr")
        pub = csr.public_key()
        if isinstance(pub, ec.EllipticCurvePublicKey):
            if pub.curve.key_size < 256:
                raise EnrolmentRefused("EC keys must be at least 256 bits", "weak_key")
        elif isinstance(pub, rsa.RSAPublicKey):
            if pub.key_size < 2048:
                raise EnrolmentRefused("RSA keys must be at least 2048 bits", "weak_key")
        else:
            raise EnrolmentRefused("only EC and RSA keys are accepted", "weak_key")
        return self._issue(_name(device_id), pub, DEVICE_DAYS, ExtendedKeyUsageOID.CLIENT_AUTH, now,
                           not_after=not_after)


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
