"""Emerging Threats Open (../shared/corpus/et-open): every loadable rule goes through the detector.

Prints (run with -s) how many rules got a prefilter literal and how many are
always verified, the prefilter compile time, database size, memory growth,
the load time of a serialized prefilter, and what the verifier refused.
"""
from __future__ import annotations

import resource
import time
from collections import Counter
from pathlib import Path

import pytest

from signatures.buffers import Buffer
from signatures.parser import load_rules

from inspection.detect.engine import Detector
from inspection.detect.prefilter import Prefilter

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
ET_RULES = CORPUS / "et-open" / "rules"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.corpus
@pytest.mark.slow
def test_et_open_prefilter_builds():
    files = sorted(ET_RULES.glob("*.rules")) if ET_RULES.is_dir() else []
    if not files:
        pytest.skip(f"ET Open corpus absent ({ET_RULES}); nothing to measure")
    rules = load_rules(files).rules
    rss_before = _rss_mb()
    started = time.perf_counter()
    detector = Detector(rules)
    build = time.perf_counter() - started
    p = detector.prefilter
    skipped = {s.index for s in detector.skipped}
    with_literal = sum(1 for i, c in enumerate(p.choices) if c is not None and i not in skipped)
    explicit = sum(1 for i, c in enumerate(p.choices) if c is not None and c.explicit and i not in skipped)
    started = time.perf_counter()
    image = p.to_image()
    reloaded = Prefilter.from_image(image, rules)
    reload_s = time.perf_counter() - started

    sample = {Buffer.HTTP_URI: b"/index.php?id=1&cmd=whoami", Buffer.HTTP_METHOD: b"GET",
              Buffer.HTTP_HOST: b"example.com", Buffer.HTTP_USER_AGENT: b"Mozilla/5.0",
              Buffer.HTTP_HEADER: b"Host: example.com\r\nUser-Agent: Mozilla/5.0\r\n\r\n",
              Buffer.PAYLOAD: b"GET /index.php?id=1&cmd=whoami HTTP/1.1\r\nHost: example.com\r\n\r\n"}
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        scan = detector.scan(sample, header_check=lambda r: bool(r.buffers))
    per_scan = (time.perf_counter() - started) / rounds

    print(f"\nET Open detector: {len(rules)} rules, {with_literal} with a prefilter literal "
          f"({explicit} explicit fast_pattern), {len(p.always)} always verified, {len(skipped)} refused")
    print(f"  build {build:.2f} s (prefilter compile {p.compile_seconds:.2f} s), {len(p.keys)} buffer databases, "
          f"{p.pattern_count} distinct literals, {p.database_bytes / 1e6:.1f} MB of databases, "
          f"peak RSS +{_rss_mb() - rss_before:.0f} MB")
    print(f"  image {sum(len(d.blob) for d in image.databases) / 1e6:.1f} MB, reload {reload_s * 1000:.0f} ms; "
          f"sample HTTP transaction: {scan.candidates} candidates, {len(scan.matches)} matches, "
          f"{per_scan * 1e6:.0f} us per scan")
    for (keyword, reason), n in Counter((s.keyword, s.reason[:90]) for s in detector.skipped).most_common(5):
        print(f"  refused {n:>4} {keyword}: {reason}")

    assert len(rules) > 20000
    assert with_literal + len(p.always) + len(skipped) == len(rules)
    assert with_literal > 0.9 * len(rules)
    assert len(skipped) < 0.01 * len(rules)
    assert reloaded.keys == p.keys and reloaded.always == p.always
