"""oletools' test files (../shared/corpus/oletools-testdata, and the members of its password-protected
sample zips) downloaded over built HTTP connections through `utm inspect --sanitize-dir`: every
file the scanner calls suspicious is either sanitised, with a stored copy that is what `sanitize()`
gives and in which oletools finds no VBA, XLM or DDE, or keeps its verdict with a reason."""
from __future__ import annotations

import hashlib
import re

import pytest

from inspection.files.sanitize import sanitize
from tests.conformance import sanitize_report
from tests.oletools_check import findings, flagged
from tests.unit.engine.test_inspect_cli import of, run
from tests.unit.engine.test_inspect_sanitise import downloads

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


def _samples() -> list[tuple[str, bytes]]:
    out = []
    for path in sorted(p for p in sanitize_report.TESTDATA.rglob("*") if p.is_file()):
        data = path.read_bytes()
        items = [(path.name, data), *sanitize_report._unzipped(data)]
        for name, body in items:
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", name.rpartition("/")[2]) or "file"
            out.append((f"{len(out):03d}-{safe}", body))
    return out


def test_oletools_samples_over_http(tmp_path):
    if not sanitize_report.TESTDATA.is_dir():
        pytest.skip(f"oletools corpus absent ({sanitize_report.TESTDATA})")
    samples = dict(_samples())
    out = tmp_path / "clean"
    # one connection per file: a keep-alive connection would reach the stream depth
    pkts = [p for i, item in enumerate(samples.items()) for p in downloads(item, port=42000 + i)]
    rc, ev = run(tmp_path, pkts, "--sanitize-dir", str(out))
    assert rc == 0
    files = {e["fileinfo"]["filename"]: e["fileinfo"] for e in of(ev, "fileinfo")}
    assert sorted(files) == sorted(n for n, d in samples.items() if d)
    sanitised = {n: f for n, f in files.items() if f["verdict"]["verdict"] == "sanitised"}
    kept = {n: f for n, f in files.items() if f["verdict"]["verdict"] == "suspicious"}
    assert sanitised, "no sample was sanitised"
    for name, fi in sanitised.items():
        assert fi["verdict"]["reason"].startswith("suspicious: ")
        expect = sanitize(samples[name], name)
        copy = (out / fi["sanitised"]["sha256"]).read_bytes()
        assert copy == expect.data and hashlib.sha256(copy).hexdigest() == fi["sanitised"]["sha256"]
        assert not flagged(findings(copy, fi["sanitised"]["filename"])), name
    for name, fi in kept.items():
        assert any(r.startswith("sanitise_failed: ") for r in fi["verdict"]["reasons"]), name
    assert len(list(out.iterdir())) == len({f["sanitised"]["sha256"] for f in sanitised.values()})
    print(f"\n{len(files)} files: {len(sanitised)} sanitised, {len(kept)} kept suspicious: "
          + "; ".join(f"{n}: {f['verdict']['reasons'][-1]}" for n, f in kept.items()))
