"""A signed definitions package feeds `utm inspect` and `utm scan` as its parts would one by one."""
from __future__ import annotations

import hashlib
import json

from firmware.cli.main import main
from tests.unit.engine.test_inspect_cli import of, run
from tests.unit.engine.test_inspect_files import EXE, _download_and_upload


def _package(tmp_path, capsys, version="2026.11.22.1"):
    key = tmp_path / "vendor.key"
    if not key.exists():
        assert main(["definitions", "keygen", "-o", str(key)]) == 0
    rules = tmp_path / "r.rules"
    rules.write_text('alert http any any -> any any (msg:"setup download"; http.uri; content:"/dl/"; sid:9;)\n')
    bundle = tmp_path / "r.bundle"
    assert main(["rules", "compile", "-S", str(rules), "-o", str(bundle)]) == 0
    hashes = tmp_path / "block.txt"
    hashes.write_text(hashlib.sha256(EXE).hexdigest() + "\n")
    yara = tmp_path / "yara"
    yara.mkdir(exist_ok=True)
    (yara / "pdf.yar").write_text('rule fake_pdf { strings: $a = "%PDF-1.4 fake" condition: $a }\n')
    pkg = tmp_path / "defs.pkg"
    assert main(["definitions", "build", "--key", str(key), "--version", version, "--rules", str(bundle),
                 "--hashes", str(hashes), "--yara", str(yara), "-o", str(pkg)]) == 0
    capsys.readouterr()
    return pkg, f"{key}.pub"


def test_inspect_takes_rules_hashes_and_yara_from_one_package(tmp_path, capsys):
    pkg, pub = _package(tmp_path, capsys)
    rc, ev = run(tmp_path, _download_and_upload(), "--definitions", str(pkg), "--trusted-key", pub)
    assert rc == 0
    assert [a["alert"]["signature_id"] for a in of(ev, "alert")] == [9]
    verdicts = {e["fileinfo"]["filename"]: e["fileinfo"]["verdict"] for e in of(ev, "fileinfo")}
    assert verdicts["setup.exe"]["verdict"] == "malicious" and verdicts["setup.exe"]["reason"].startswith("hash:")
    assert verdicts["report.pdf"]["verdict"] == "malicious" and "fake_pdf" in verdicts["report.pdf"]["reason"]


def test_scan_takes_hashes_from_a_package(tmp_path, capsys):
    pkg, pub = _package(tmp_path, capsys)
    f = tmp_path / "setup.exe"
    f.write_bytes(EXE)
    assert main(["scan", str(f), "--definitions", str(pkg), "--trusted-key", pub, "-q"]) == 1   # 1: malicious
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["verdict"] == "malicious"


def test_untrusted_or_conflicting_packages_are_refused(tmp_path, capsys):
    pkg, pub = _package(tmp_path, capsys)
    other = tmp_path / "other.key"
    main(["definitions", "keygen", "-o", str(other)])
    f = tmp_path / "x.bin"
    f.write_bytes(b"x")
    capsys.readouterr()
    assert main(["scan", str(f), "--definitions", str(pkg), "--trusted-key", f"{other}.pub"]) == 2
    assert "signature" in capsys.readouterr().err
    rules = tmp_path / "r.rules"
    rc, _ = run(tmp_path, _download_and_upload(), "--definitions", str(pkg), "--trusted-key", pub, "-S", str(rules))
    assert rc == 2
