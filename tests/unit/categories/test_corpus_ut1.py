"""The full UT1 lists (../shared/corpus/ut1-blacklists): compile them and find a sample of their own entries."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from signatures.categories.compile import compile_lists, url_key
from signatures.categories.db import encode
from signatures.categories.lookup import CategoryDB

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus" / "ut1-blacklists"


@pytest.mark.corpus
@pytest.mark.slow
def test_full_lists_compile_and_find_their_entries():
    if not (CORPUS / "blacklists").is_dir():
        pytest.skip(f"UT1 corpus absent ({CORPUS}); nothing to compile")
    compiled = compile_lists(CORPUS)
    assert len(compiled.categories) >= 60 and len(compiled.domains) > 100_000
    db = CategoryDB.from_buffer(encode(compiled))
    rnd = random.Random(7)
    root = CORPUS / "blacklists"
    checked = 0
    for cat in sorted(p.name for p in root.iterdir() if (p / "domains").is_file()):
        lines = [ln.strip() for ln in (root / cat / "domains").read_text(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith("#")]
        for entry in rnd.sample(lines, min(20, len(lines))):
            got = {c.name for c in db.lookup(entry)}
            assert cat in got, (cat, entry, got)
            if not entry[-1].isdigit():
                assert cat in {c.name for c in db.lookup("www." + entry)}, (cat, entry)
            checked += 1
    for cat in sorted(p.name for p in root.iterdir() if (p / "urls").is_file()):
        lines = [ln.strip() for ln in (root / cat / "urls").read_text(errors="replace").splitlines()
                 if "/" in ln and url_key(ln) is not None]
        for entry in rnd.sample(lines, min(20, len(lines))):
            got = {c.name for c in db.lookup_url("http://" + entry)}
            assert cat in got, (cat, entry, got)
            checked += 1
    assert checked > 1000


@pytest.mark.corpus
@pytest.mark.slow
def test_full_lists_load_under_100_mb(tmp_path):
    """The brief's memory bound, measured in a fresh process (VmRSS after loading the database)."""
    import json
    import subprocess
    import sys

    from signatures.categories.db import write_db

    if not (CORPUS / "blacklists").is_dir():
        pytest.skip(f"UT1 corpus absent ({CORPUS}); nothing to measure")
    db = tmp_path / "ut1.db"
    write_db(db, encode(compile_lists(CORPUS)))
    out = subprocess.run([sys.executable, "-m", "firmware.bench.categories", str(db), str(CORPUS / "blacklists"),
                          "1000", "1"], capture_output=True, text=True, check=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[3])
    m = json.loads(out.stdout)
    assert m["rss_after_mb"] < 100, m
    assert m["host_hit_share"] > 0.3
