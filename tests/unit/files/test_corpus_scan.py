"""The scanner against other people's expectations (../shared/corpus; skipped where absent).

- clamav-testfiles: ClamAV's harmless test executable inside containers and
  clamav.hdb with its hash. Every file is found by that hash or is
  ``unscanned`` with a reason, never clean. Run with -s to see which.
- YARA_ORACLE.json: yara-python's matches of both rule collections on each
  sample file; ours must include them (as /work/shared/tools/yara_check.py
  judges through the CLI).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspection.files.hashlist import parse_hash_list
from inspection.files.model import VerdictKind
from inspection.files.scanner import ContentScanner
from inspection.files.unpack import UNPACKERS

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
CLAM = CORPUS / "clamav-testfiles"


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"corpus absent ({path}); nothing to measure")


@pytest.mark.corpus
def test_clamav_testfiles_found_or_unscanned_with_reason():
    _need(CLAM / "clamav.hdb")
    scanner = ContentScanner(parse_hash_list((CLAM / "clamav.hdb").read_text(), "clamav.hdb"))
    detected, unscanned = [], []
    for f in sorted((CLAM / "clamav_hdb_scanfiles").iterdir()):
        res = scanner.scan(f.read_bytes(), f.name)
        assert res.verdict is not VerdictKind.CLEAN, f.name
        if res.verdict is VerdictKind.MALICIOUS:
            assert "hash:clamav.hdb:ClamAV-Test-File" in res.all_reasons()
            detected.append(f"{f.name} ({res.type})")
        else:
            reasons = [r for r in res.all_reasons() if r.startswith("unscanned: ")]
            assert res.verdict is VerdictKind.UNSCANNED and reasons, f.name
            # a container we claim to unpack may miss the file only for a named reason inside it
            if res.type in UNPACKERS:
                assert not any("unsupported container" in r for r in reasons), f.name
            unscanned.append(f"{f.name}: {reasons[0]}")
    print(f"\nclamav-testfiles: {len(detected)} detected: " + ", ".join(detected))
    print(f"{len(unscanned)} unscanned: " + "; ".join(unscanned))
    assert len(detected) >= len(unscanned)


@pytest.mark.corpus
@pytest.mark.slow
def test_yara_matches_include_yara_pythons(tmp_path_factory):
    oracle_file = CORPUS / "YARA_ORACLE.json"
    _need(oracle_file)
    from inspection.files.yara_rules import load_yara
    roots = [CORPUS / "yara-rules-Yara-Rules", CORPUS / "yara-signature-base"]
    rules = load_yara(roots, tmp_path_factory.mktemp("yara-cache"))
    scanner = ContentScanner(matchers=[rules])
    agree = total = 0
    missed = []
    for rec in json.loads(oracle_file.read_text())["results"]:
        f = CORPUS / rec["file"]
        if not f.exists():
            continue
        want = {m.rsplit(":", 1)[-1] for m in rec["yara_rules_matches"] + rec["signature_base_matches"]}
        got = {r.rsplit(":", 1)[-1] for r in scanner.scan(f.read_bytes(), str(f)).all_reasons()}
        total += 1
        if want <= got:
            agree += 1
        else:
            missed.append((rec["file"], sorted(want - got)[:3]))
    print(f"\nyara: {agree}/{total} files include yara-python's matches; "
          f"{len(rules.loaded)} rule files, {len(rules.skipped)} skipped; compile {rules.seconds:.2f} s")
    assert total and agree == total, missed[:5]
