"""Definitions packages: what is signed together is taken together, or not at all."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.cli.main import main
from signatures.definitions import (
    ComponentKind, DefinitionsFormatError, DefinitionsRollbackError, DefinitionsSignatureError, build_package,
    key_id, open_package,
)

KEY = Ed25519PrivateKey.generate()
TRUSTED = {key_id(KEY.public_key()): KEY.public_key()}
PARTS = [(ComponentKind.RULES, "rules-et.bundle", b"R" * 1000), (ComponentKind.HASHES, "hashes-block.txt", b"ab" * 32 + b"\n")]


def pkg(version="2026.11.22.1", key=KEY, parts=PARTS) -> bytes:
    return build_package(parts, version=version, created="2026-11-22T00:00:00Z", key=key)


def test_round_trip_gives_each_component_in_order():
    p = open_package(pkg(), TRUSTED)
    assert [c.name for c in p.manifest.components] == ["rules-et.bundle", "hashes-block.txt"]
    assert p.payloads == (b"R" * 1000, b"ab" * 32 + b"\n")
    assert [c.name for c, _ in p.of(ComponentKind.HASHES)] == ["hashes-block.txt"]


def test_another_key_is_refused():
    with pytest.raises(DefinitionsSignatureError):
        open_package(pkg(key=Ed25519PrivateKey.generate()), TRUSTED)
    with pytest.raises(DefinitionsSignatureError):
        open_package(pkg(), {})


@pytest.mark.parametrize("where", ["magic", "manifest", "signature", "payload"])
def test_any_changed_byte_is_refused(where):
    data = bytearray(pkg())
    at = {"magic": 0, "manifest": 20, "signature": len(data) - 1065 - 10, "payload": len(data) - 5}[where]
    data[at] ^= 0x01
    with pytest.raises((DefinitionsFormatError, DefinitionsSignatureError)):
        open_package(bytes(data), TRUSTED)


def test_truncated_or_extended_is_refused():
    data = pkg()
    for bad in (data[:-1], data[:30], data + b"x", b""):
        with pytest.raises(DefinitionsFormatError):
            open_package(bad, TRUSTED)


def test_older_version_is_refused_newer_and_same_accepted():
    with pytest.raises(DefinitionsRollbackError):
        open_package(pkg("2026.11.3"), TRUSTED, current_version="2026.11.22")
    assert open_package(pkg("2026.11.22"), TRUSTED, current_version="2026.11.22")
    assert open_package(pkg("2026.12"), TRUSTED, current_version="2026.11.22")


def test_bad_names_and_versions_are_refused_when_building():
    with pytest.raises(DefinitionsFormatError):
        pkg(version="latest")
    with pytest.raises(DefinitionsFormatError):
        pkg(parts=[(ComponentKind.YARA, "../etc/passwd", b"x")])


def test_cli_keygen_build_verify(tmp_path, capsys):
    key = tmp_path / "vendor.key"
    assert main(["definitions", "keygen", "-o", str(key)]) == 0
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    yara = tmp_path / "yara"
    (yara / "sub").mkdir(parents=True)
    (yara / "a.yar").write_text("rule a { condition: true }")
    (yara / "sub" / "b.yar").write_text("rule b { condition: false }")
    hashes = tmp_path / "block.txt"
    hashes.write_text("0" * 64 + "\n")
    out = tmp_path / "defs.pkg"
    args = ["definitions", "build", "--key", str(key), "--version", "2026.11.22.1", "--yara", str(yara),
            "--hashes", str(hashes), "-o", str(out)]
    assert main(args) == 0
    first = out.read_bytes()
    capsys.readouterr()
    assert main(["definitions", "verify", str(out), "--pubkey", f"{key}.pub"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in manifest["components"]] == ["yara-yara.tar", "hashes-block.txt"]
    # the folder packs the same way twice: the same component hash
    assert main(args) == 0 and first != b""
    capsys.readouterr()
    assert main(["definitions", "verify", str(out), "--pubkey", f"{key}.pub"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["components"][0]["sha256"] == manifest["components"][0]["sha256"]
    other = tmp_path / "other.key"
    main(["definitions", "keygen", "-o", str(other)])
    capsys.readouterr()
    assert main(["definitions", "verify", str(out), "--pubkey", f"{other}.pub"]) == 2
    assert "signature" in capsys.readouterr().err
    assert main(["definitions", "verify", str(out), "--pubkey", f"{key}.pub", "--current-version", "2027"]) == 2
    assert main(["definitions", "build", "--key", str(key), "--version", "1", "-o", str(out)]) == 2
    assert main(["definitions", "keygen", "-o", str(key)]) == 2       # never overwrites a key
