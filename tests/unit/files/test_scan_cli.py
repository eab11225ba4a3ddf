"""`utm scan` as a user runs it: JSON lines, folders, exit codes, messages."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile

import pytest

from firmware.cli.main import main

EVIL = b"MZ" + b"\x90cli test payload\x00" * 20


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    d = tmp_path / "files"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_bytes(b"plain text\n")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("inner/tool.exe.gz", gzip.compress(EVIL))
    (d / "sub" / "pack.zip").write_bytes(buf.getvalue())
    (d / "sub" / "odd.rar").write_bytes(b"Rar!\x1a\x07\x01\x00" + b"\0" * 40)
    hashes = tmp_path / "block.hdb"
    hashes.write_text(f"{hashlib.sha256(EVIL).hexdigest()}:{len(EVIL)}:Cli-Test\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "text.yar").write_text('rule plain_text { strings: $a = "plain text" condition: $a }')
    (rules / "bad.yar").write_text("rule bad {")
    return d, hashes, rules


def lines(out: str) -> dict[str, dict]:
    recs = [json.loads(line) for line in out.splitlines()]
    return {r["path"].rsplit("/", 1)[-1]: r for r in recs}


def test_folder_walk_hash_and_yara(tree, capsys):
    d, hashes, rules = tree
    rc = main(["scan", str(d), "--hashes", str(hashes), "--yara", str(rules)])
    out, err = capsys.readouterr()
    assert rc == 1       # something malicious, as clamscan
    recs = lines(out)
    assert sorted(recs) == ["a.txt", "odd.rar", "pack.zip"]
    assert recs["a.txt"]["verdict"] == "malicious" and recs["a.txt"]["reasons"] == ["yara:text.yar:plain_text"]
    pack = recs["pack.zip"]
    assert pack["verdict"] == "malicious" and pack["reasons"] == ["hash:block.hdb:Cli-Test"]
    gz = pack["members"][0]
    assert gz["path"].endswith("pack.zip/inner/tool.exe.gz") and gz["type"] == "gzip"
    assert gz["members"][0]["verdict"] == "malicious" and gz["members"][0]["sha256"] == hashlib.sha256(EVIL).hexdigest()
    assert recs["odd.rar"] == {**recs["odd.rar"], "verdict": "unscanned",
                              "reasons": ["unscanned: unsupported container: rar"]}
    assert "1 skipped" in err and "scanned: 3 files" in err


def test_clean_run_exits_0_and_quiet(tree, capsys):
    d, hashes, _ = tree
    rc = main(["scan", "-q", str(d / "a.txt"), "--hashes", str(hashes)])
    out, err = capsys.readouterr()
    assert rc == 0 and err == ""
    (rec,) = lines(out).values()
    assert rec["verdict"] == "clean" and rec["reasons"] == [] and rec["type"] == "text"


def test_limits_from_the_command_line(tree, capsys):
    d, hashes, _ = tree
    rc = main(["scan", "-q", str(d / "sub" / "pack.zip"), "--hashes", str(hashes), "--max-recursion", "1"])
    rec = lines(capsys.readouterr().out)["pack.zip"]
    assert rc == 0 and rec["verdict"] == "unscanned" and "unscanned: too deep" in rec["reasons"]


@pytest.mark.parametrize("argv, message", [
    (["scan", "/nonexistent/file"], "no such file or folder"),
    (["scan", ".", "--yara", "/nonexistent/rules"], "no such rule file or folder"),
    (["scan", ".", "--hashes", "/nonexistent/list"], "cannot read hash list"),
    (["scan", ".", "--bundle", "/nonexistent/x.bundle"], "cannot read bundle"),
    (["scan"], "no PATH to scan"),
    (["scan", ".", "--max-recursion", "-1"], "scan limits out of range"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_definitions_bundle_round_trip_and_refusals(tree, tmp_path, capsys):
    d, hashes, rules = tree
    bundle = tmp_path / "defs.bundle"
    assert main(["scan", "--write-bundle", str(bundle), "--yara", str(rules), "--hashes", str(hashes)]) == 0
    assert "1 YARA rule files (1 skipped), 1 hashes from 1 lists" in capsys.readouterr().out
    rc = main(["scan", str(d), "--bundle", str(bundle)])
    out, err = capsys.readouterr()
    recs = lines(out)
    assert rc == 1 and "loaded from bundle" in err
    assert recs["a.txt"]["reasons"] == ["yara:text.yar:plain_text"]
    assert recs["pack.zip"]["reasons"] == ["hash:block.hdb:Cli-Test"]
    data = bytearray(bundle.read_bytes())
    data[-1] ^= 1
    bundle.write_bytes(bytes(data))
    assert main(["scan", str(d), "--bundle", str(bundle)]) == 2
    assert "bundle refused: damaged bundle: payload hash mismatch" in capsys.readouterr().err
    assert main(["scan", "--write-bundle", str(bundle), str(d)]) == 2


def test_bundle_from_another_yara_is_refused(tmp_path):
    import pytest as _pytest

    from inspection.files.scan_bundle import ScanBundle, ScanBundleError, decode_scan_bundle, encode_scan_bundle
    data = encode_scan_bundle(ScanBundle(b"compiled", "", ("a.yar",), (), ()), "4.0.0")
    assert decode_scan_bundle(data, "4.0.0").yara_rules == b"compiled"
    with _pytest.raises(ScanBundleError, match="compiled with YARA 4.0.0"):
        decode_scan_bundle(data, "4.5.4")
    with _pytest.raises(ScanBundleError, match="bad magic"):
        decode_scan_bundle(b"X" * 100, "4.5.4")


def test_fifo_is_not_read(tmp_path, capsys):
    import os
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert main(["scan", "-q", str(tmp_path)]) == 0
    (rec,) = lines(capsys.readouterr().out).values()
    assert rec["verdict"] == "unscanned" and rec["reasons"] == ["unscanned: not a regular file"]
