"""`utm inspect --hashes/--yara`: files carried over HTTP get scanner verdicts in fileinfo."""
from __future__ import annotations

import hashlib

from firmware.bench.frames import TcpConversation
from tests.unit.engine.test_inspect_cli import CLI, SRV, of, run
from tests.unit.engine.test_inspect_files import EXE, _download_and_upload


def test_hash_listed_download_is_malicious_and_upload_clean(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    hashes = tmp_path / "block.hdb"
    hashes.write_text(f"{hashlib.sha256(EXE).hexdigest()}:{len(EXE)}:Test-Download\n")
    rules = tmp_path / "pdf.yar"
    rules.write_text('rule fake_pdf { strings: $a = "fake" condition: $a and extension == ".pdf" }')
    rc, ev = run(tmp_path, _download_and_upload(), "--hashes", str(hashes), "--yara", str(rules))
    assert rc == 0
    files = {e["fileinfo"]["filename"]: e["fileinfo"] for e in of(ev, "fileinfo")}
    assert files["setup.exe"]["verdict"] == {"verdict": "malicious", "reason": "hash:block.hdb:Test-Download",
                                             "reasons": ["hash:block.hdb:Test-Download"]}
    assert files["report.pdf"]["verdict"]["reasons"] == ["yara:pdf.yar:fake_pdf"]


def test_clean_download_says_clean(tmp_path):
    hashes = tmp_path / "empty.txt"
    hashes.write_text("# nothing listed\n")
    rc, ev = run(tmp_path, _download_and_upload(), "--hashes", str(hashes))
    files = {e["fileinfo"]["filename"]: e["fileinfo"] for e in of(ev, "fileinfo")}
    assert files["setup.exe"]["verdict"] == {"verdict": "clean", "reason": "no detection"}


def test_truncated_download_is_never_clean(tmp_path):
    c = TcpConversation(CLI, SRV, 40102, 80, start=1_700_000_000.0)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    pkts = (list(c.handshake()) + list(c.send(b"GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n"))
            + list(c.send(head + b"x" * 5000, from_client=False)) + list(c.close()))
    hashes = tmp_path / "empty.txt"
    hashes.write_text("")
    rc, ev = run(tmp_path, pkts, "--hashes", str(hashes))
    (f,) = of(ev, "fileinfo")
    assert f["fileinfo"]["state"] == "TRUNCATED"
    assert f["fileinfo"]["verdict"] == {"verdict": "unscanned", "reason": "unscanned: truncated",
                                        "reasons": ["unscanned: truncated"]}


def test_unreadable_rule_source_exits_2(tmp_path, capsys):
    rc, _ = run(tmp_path, _download_and_upload(), "--yara", str(tmp_path / "missing"))
    assert rc == 2 and "no such rule file or folder" in capsys.readouterr().err


def test_scan_bundle_gives_the_same_verdict(tmp_path, capsys):
    from firmware.cli.main import main
    hashes = tmp_path / "block.hdb"
    hashes.write_text(f"{hashlib.sha256(EXE).hexdigest()}:{len(EXE)}:Test-Download\n")
    bundle = tmp_path / "defs.bundle"
    assert main(["scan", "--write-bundle", str(bundle), "--hashes", str(hashes)]) == 0
    rc, ev = run(tmp_path, _download_and_upload(), "--scan-bundle", str(bundle))
    files = {e["fileinfo"]["filename"]: e["fileinfo"] for e in of(ev, "fileinfo")}
    assert rc == 0 and files["setup.exe"]["verdict"]["reason"] == "hash:block.hdb:Test-Download"


def test_summary_counts_scanned_files(tmp_path, capsys):
    from tests.unit.engine.test_inspect_cli import write_pcap
    from firmware.cli.main import main
    hashes = tmp_path / "block.hdb"
    hashes.write_text(f"{hashlib.sha256(EXE).hexdigest()}:{len(EXE)}:Test-Download\n")
    pcap = write_pcap(tmp_path / "in.pcap", _download_and_upload())
    assert main(["inspect", "-r", str(pcap), "-l", str(tmp_path / "out"), "--hashes", str(hashes)]) == 0
    assert "files scanned: clean=1, malicious=1 (0 members unpacked)" in capsys.readouterr().out
