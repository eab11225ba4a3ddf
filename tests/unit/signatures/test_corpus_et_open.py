"""Emerging Threats Open (../shared/corpus/et-open): what share of the active rules loads, and how fast.

The signature engine issue's goal is at least 84% of active ET Open rules. The
figure, the load time and the top skip reasons are printed (run with -s).
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from signatures.parser import SkipKind, load_rules

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
ET_RULES = CORPUS / "et-open" / "rules"
GOAL = 0.84


@pytest.mark.corpus
def test_et_open_active_rules_load():
    files = sorted(ET_RULES.glob("*.rules")) if ET_RULES.is_dir() else []
    if not files:
        pytest.skip(f"ET Open corpus absent ({ET_RULES}); nothing to measure")
    started = time.perf_counter()
    result = load_rules(files)
    seconds = time.perf_counter() - started
    ratio = result.loaded_ratio
    print(f"\nET Open: {len(result.rules)}/{result.active} active rules loaded ({100 * ratio:.2f}%) "
          f"from {len(files)} files in {seconds:.2f} s")
    for keyword, count, example in result.skipped_by_keyword()[:10]:
        print(f"  skipped {count:>5} {keyword}: {example.reason} (e.g. sid {example.sid})")
    assert result.active > 20000
    assert ratio >= GOAL, f"only {100 * ratio:.2f}% of ET Open loads (goal {100 * GOAL:.0f}%)"
    # ET Open is written for Suricata and loads there: nothing should crash or be a duplicate.
    kinds = Counter(s.kind for s in result.skipped)
    assert kinds[SkipKind.INTERNAL] == 0 and kinds[SkipKind.DUPLICATE] == 0
    # Every ET classtype is in the shipped classification table.
    assert not [s for s in result.skipped if s.keyword == "classtype"]
