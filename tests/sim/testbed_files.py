"""What the testbed's internet serves, generated at `testbed up` (pure data, no network)."""
from __future__ import annotations

import datetime
import io
import ipaddress
import os
import zipfile
from pathlib import Path

# The EICAR anti-virus test file: harmless by definition, detected by every scanner.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLEAN_SIZE = 10 * 1024 * 1024
HOSTS = ("www.example.test", "files.example.test", "phish.example.test")

PHISH_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example Bank - Sign in</title></head>
<body><h1>Example Bank</h1><p>Testbed phishing page: a name in the testbed's phishing category.</p>
<form action="/login" method="post"><input name="user"><input name="password" type="password">
<button>Sign in</button></form></body></html>
"""
WWW_INDEX = "<!doctype html><title>www.example.test</title><p>Ordinary page of the testbed internet.</p>\n"


def eicar_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("eicar.com", EICAR)
    return buf.getvalue()


_VBA_PROJECT = Path(__file__).resolve().parents[1] / "unit" / "files" / "sanitize" / "data" / "vbaProject.bin"


def macro_docm() -> bytes:
    """A tiny Word macro-enabled document carrying a real (harmless) VBA project."""
    ct = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
          '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
          '<Default Extension="xml" ContentType="application/xml"/>'
          '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>'
          '<Override PartName="/word/document.xml" '
          'ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/></Types>')
    rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="word/document.xml"/></Relationships>')
    doc_rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                '<Relationship Id="rId1" Type="http://schemas.microsoft.com/office/2006/relationships/vbaProject" '
                'Target="vbaProject.bin"/></Relationships>')
    doc = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
           '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
           '<w:t>Testbed macro document (inert).</w:t></w:r></w:p></w:body></w:document>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", ct)
        z.writestr("_rels/.rels", rels)
        z.writestr("word/document.xml", doc)
        z.writestr("word/_rels/document.xml.rels", doc_rels)
        # a real VBA project (oletools' test sample, BSD-2; see its README) so the scanner and
        # the sanitiser judge what an office would really receive
        z.writestr("word/vbaProject.bin", _VBA_PROJECT.read_bytes())
    return buf.getvalue()


def write_site(root: Path) -> None:
    """Create the virtual hosts' folders; clean.bin is random once and kept across `up`s."""
    www, files, phish = (root / h for h in HOSTS)
    for d in (www, files, phish):
        d.mkdir(parents=True, exist_ok=True)
    clean = www / "clean.bin"
    if not clean.exists() or clean.stat().st_size != CLEAN_SIZE:
        clean.write_bytes(os.urandom(CLEAN_SIZE))
    (www / "index.html").write_text(WWW_INDEX)
    (www / "eicar.com").write_bytes(EICAR)
    (files / "eicar.zip").write_bytes(eicar_zip())
    (files / "macro.docm").write_bytes(macro_docm())
    (phish / "index.html").write_text(PHISH_PAGE)
    (phish / "login").write_text(PHISH_PAGE)


def self_signed(cert_path: Path, key_path: Path) -> None:
    """A test certificate for the three names (and nothing else), valid for 30 days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.test"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UTM testbed (not trusted)")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in HOSTS]
                                                       + [x509.IPAddress(ipaddress.ip_address("192.0.2.80"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
