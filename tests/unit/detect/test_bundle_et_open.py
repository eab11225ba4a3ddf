"""ET Open (../shared/corpus/et-open) through a bundle: every rule, skip and match survives the trip.

Prints (run with -s) the bundle size and how long encoding and loading took;
no timing is asserted (the figures belong to `utm bench`).
"""
from __future__ import annotations

import time

import pytest

from signatures.buffers import Buffer
from signatures.parser import load_rules

from inspection.detect.bundle import compile_bundle, decode_bundle, encode_bundle
from tests.unit.detect.test_corpus_et_open import ET_RULES

SAMPLES = [
    {Buffer.HTTP_URI: b"/index.php?id=1&cmd=whoami", Buffer.HTTP_METHOD: b"GET",
     Buffer.HTTP_HOST: b"example.com", Buffer.HTTP_USER_AGENT: b"Mozilla/5.0 (compatible; MSIE 6.0)",
     Buffer.HTTP_HEADER: b"Host: example.com\r\nUser-Agent: Mozilla/5.0\r\n\r\n"},
    {Buffer.PAYLOAD: b"GET /wp-login.php HTTP/1.1\r\nHost: a\r\nUser-Agent: sqlmap/1.0\r\n\r\n"},
    {Buffer.DNS_QUERY: b"pool.minexmr.com"},
    {Buffer.TLS_SNI: b"api.telegram.org"},
]


@pytest.mark.corpus
@pytest.mark.slow
def test_et_open_round_trip():
    files = sorted(ET_RULES.glob("*.rules")) if ET_RULES.is_dir() else []
    if not files:
        pytest.skip(f"ET Open corpus absent ({ET_RULES})")
    loaded = load_rules(files, require_msg=False)
    content, original = compile_bundle(loaded.rules, loaded.skipped)
    started = time.perf_counter()
    data = encode_bundle(content, sources=[f.name for f in files])
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    got = decode_bundle(data, "et-open.bundle")
    load_s = time.perf_counter() - started
    assert got.content.rules == loaded.rules and got.content.parse_skipped == loaded.skipped
    assert got.detector.skipped == original.skipped
    found = 0
    for buffers in SAMPLES:
        want = [m.sid for m in original.inspect(buffers)]
        assert [m.sid for m in got.detector.inspect(buffers)] == want
        found += len(want)
    assert found > 0 and got.detector.late_skipped == []
    print(f"\nET Open bundle: {len(data) / 1e6:.1f} MB, {len(loaded.rules)} rules, encode {encode_s:.2f} s, "
          f"load {load_s:.2f} s, {found} matches on {len(SAMPLES)} samples agree")
