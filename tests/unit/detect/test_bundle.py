"""Compiled rule bundles: what goes in comes out, and anything else is refused by name."""
from __future__ import annotations

import hashlib
import pickle
import struct

import pytest

from signatures.buffers import Buffer
from signatures.parser import load_rules

from inspection.detect import bundle as bundle_mod
from inspection.detect.bundle import (
    MAGIC, BundleContent, compile_bundle, decode_bundle, encode_bundle, engine_version, hyperscan_version,
    python_version, read_header,
)
from inspection.detect.engine import Detector, SkippedRule
from inspection.detect.prefilter import Prefilter
from inspection.detect.errors import (
    BundleError, BundleFormatError, BundleIntegrityError, BundleVersionError,
)
from inspection.model import Direction

RULES = r'''
alert http any any -> any any (msg:"uri"; flow:established,to_server; http.uri; content:"/admin"; nocase; sid:1; rev:3;)
alert tcp any any -> any 80 (msg:"payload"; content:"User-Agent|3a| evil"; pcre:"/evil\/\d+\.\d/i"; sid:2;)
alert http any any -> any any (msg:"host"; http.host; dotprefix; content:".example.com"; endswith; sid:3;)
alert tcp any any -> any any (msg:"no literal"; pcre:"/^GET\s+\/x{3,}/"; sid:4;)
alert http any any -> any any (msg:"dce"; content:"abc"; byte_test:1,>,1,0,relative,dce; sid:5;)
alert tcp any any -> any any (msg:"asn1"; asn1:oversize_length 1; sid:6;)
alert http any any -> any any (msg:"b64"; http.uri; content:"q="; base64_decode:relative; base64_data; content:"secret"; sid:7;)
alert tcp any any -> any any (msg:"bytes"; content:"|00 01|"; byte_extract:1,0,len,relative; isdataat:len,relative; sid:8;)
'''

SAMPLES = [
    {Buffer.HTTP_URI: b"/ADMIN/index.php?q=c2VjcmV0", Buffer.HTTP_HOST: b"www.example.com"},
    {Buffer.PAYLOAD: b"GET /xxxx HTTP/1.1\r\nUser-Agent: evil/1.2\r\n\r\n"},
    {Buffer.PAYLOAD: b"\x00\x01\x03abcdef"},
    {Buffer.PAYLOAD: b"\x00\x01\x09ab"},
    {Buffer.HTTP_HOST: b"example.org", Buffer.HTTP_URI: b"/"},
]


@pytest.fixture(scope="module")
def compiled():
    loaded = load_rules(lines=RULES.splitlines(), require_msg=False)
    content, detector = compile_bundle(loaded.rules, loaded.skipped)
    return loaded, content, detector, encode_bundle(content, sources=["t.rules"])


def sids(detector: Detector, buffers, direction=None) -> list[int]:
    return [m.sid for m in detector.inspect(buffers, direction=direction)]


def test_round_trip_gives_the_same_rules_skips_and_matches(compiled):
    loaded, content, original, data = compiled
    got = decode_bundle(data, "t.bundle")
    assert got.content.rules == loaded.rules
    assert got.content.parse_skipped == loaded.skipped and [s.keyword for s in loaded.skipped] == ["asn1"]
    assert [s.rule.sid for s in got.detector.skipped] == [5]
    assert got.detector.skipped == original.skipped
    assert got.header.sources == ("t.rules",) and got.header.rules == len(loaded.rules)
    seen = set()
    for buffers in SAMPLES:
        for direction in (None, Direction.TO_SERVER, Direction.TO_CLIENT):
            want = sids(original, buffers, direction)
            assert sids(got.detector, buffers, direction) == want
            seen.update(want)
    assert seen == {1, 2, 3, 4, 7, 8}      # the samples exercise every loadable rule
    assert got.detector.late_skipped == []


def test_bundle_is_deterministic(compiled):
    _, content, _, data = compiled
    assert encode_bundle(content, sources=["t.rules"]) == data


def test_header_names_the_versions(compiled):
    header, offset = read_header(compiled[3])
    assert header.engine == engine_version() and header.python == python_version()
    version, _, build = header.engine.partition("+")      # another build of the same version is refused too
    assert version and len(build) == 12 and int(build, 16) >= 0
    assert header.hyperscan == hyperscan_version() and header.hyperscan[0].isdigit()
    assert header.payload_bytes == len(compiled[3]) - offset


@pytest.mark.parametrize("component, kwargs, text", [
    ("engine", {"engine": "0.0.1"}, f"made by engine 0.0.1, this is {engine_version()}"),
    ("Python", {"python": "2.7"}, f"made by Python 2.7, this is {python_version()}"),
    ("Hyperscan", {"hyperscan": "4.0.0"}, "made by Hyperscan 4.0.0"),
    ("bundle format", {"fmt": 99}, "made by bundle format 99, this is 2"),
])
def test_other_versions_are_refused_by_name(compiled, component, kwargs, text):
    data = encode_bundle(compiled[1], **kwargs)
    with pytest.raises(BundleVersionError) as e:
        decode_bundle(data, "old.bundle")
    assert e.value.component == component and text in str(e.value)
    assert "old.bundle" in str(e.value) and "utm rules compile" in str(e.value)


def test_wrong_magic(compiled):
    with pytest.raises(BundleFormatError, match="wrong magic"):
        decode_bundle(b"NOTABUND" + compiled[3][8:])
    with pytest.raises(BundleFormatError, match="wrong magic"):
        decode_bundle(b"alert tcp any any -> any any (sid:1;)\n")


def test_payload_byte_flip_is_a_content_hash_mismatch(compiled):
    data = bytearray(compiled[3])
    data[-100] ^= 0x01
    with pytest.raises(BundleIntegrityError, match="content hash mismatch: corrupted"):
        decode_bundle(bytes(data))


def test_every_flipped_byte_is_refused(compiled):
    data = compiled[3]
    _, offset = read_header(data)
    positions = list(range(0, offset + 8)) + list(range(offset + 8, len(data), max(1, len(data) // 300)))
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 0x40
        with pytest.raises(BundleError):
            decode_bundle(bytes(bad))


def test_truncated_anywhere_is_refused(compiled):
    data = compiled[3]
    _, offset = read_header(data)
    for size in [0, 3, 8, 12, 40, offset - 1, offset, offset + 1, len(data) // 2, len(data) - 1]:
        with pytest.raises(BundleFormatError, match="truncated"):
            decode_bundle(data[:size])
    with pytest.raises(BundleFormatError, match="trailing bytes"):
        decode_bundle(data + b"\0")


def _forge(payload: bytes, rules: int = 0) -> bytes:
    """A bundle with valid hashes around an arbitrary payload: what an attacker (not corruption) can make."""
    header = bundle_mod.BundleHeader(bundle_mod.FORMAT_VERSION, engine_version(), python_version(), hyperscan_version(), len(payload),
                                     hashlib.sha256(payload).hexdigest(), rules).to_json()
    return struct.pack(">8sI32s", MAGIC, len(header), hashlib.sha256(header).digest()) + header + payload


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os
        return os.remove, (self.path,)


def test_payload_cannot_run_code(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("still here")
    with pytest.raises(BundleIntegrityError, match="refused global"):
        decode_bundle(_forge(pickle.dumps(_Evil(str(victim)))))
    assert victim.read_text() == "still here"
    with pytest.raises(BundleIntegrityError, match="refused global"):
        decode_bundle(_forge(pickle.dumps(Detector)))     # a project class that is not model data


def test_payload_of_the_wrong_shape_is_refused(compiled):
    with pytest.raises(BundleIntegrityError, match="not a rule bundle"):
        decode_bundle(_forge(pickle.dumps((1, 2, 3))))
    content: BundleContent = compiled[1]
    for bad in (BundleContent(5, (), (), content.prefilter),                                  # type: ignore[arg-type]
                BundleContent(content.rules, (), (SkippedRule(-1, content.rules[0], "x", "y"),), content.prefilter),
                BundleContent(content.rules, (), (), None)):                                  # type: ignore[arg-type]
        with pytest.raises(BundleIntegrityError, match="not a rule bundle"):
            decode_bundle(_forge(pickle.dumps(bad)))
    payload = pickle.dumps(content)
    with pytest.raises(BundleIntegrityError, match="header says 99"):
        decode_bundle(_forge(payload, rules=99))


def test_prefilter_built_for_other_rules_is_refused(compiled):
    content: BundleContent = compiled[1]
    other = BundleContent(content.rules[:-1], (), (), content.prefilter)
    with pytest.raises(BundleIntegrityError, match="different ruleset"):
        decode_bundle(encode_bundle(other))


def test_prepared_detector_plans_on_first_use_and_keeps_out_what_it_cannot_plan(compiled):
    loaded, content, original, _ = compiled
    image = Prefilter(content.rules).to_image()          # the dce rule's skip withheld from image and list
    lazy = Detector.prepared(content.rules, (), image)
    assert sids(lazy, {Buffer.PAYLOAD: b"abc\x05"}) == []
    assert [(s.rule.sid, s.reason) for s in lazy.late_skipped] == [(5, original.skipped[0].reason)]
    assert sids(lazy, SAMPLES[1]) == sids(original, SAMPLES[1])
