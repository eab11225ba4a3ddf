"""The bytes all open files hold for the scanner are capped: past it a file is judged by its digests."""
from __future__ import annotations

import gc
import hashlib

import pytest

from inspection.config import EngineConfig
from inspection.config_file import engine_config
from inspection.errors import ConfigError
from inspection.files.model import FileRecord, FileState, VerdictKind
from inspection.files.scanner import ContentScanner
from inspection.files.scanner_stream import MEMCAP, StreamScanner
from inspection.model import Direction
from tests.unit.files.test_scanner import EVIL, EVIL_SHA, HASHES, zip_of

ZIP = zip_of({"a.txt": b"nothing to see here\n" * 200})   # a container: held for unpacking


def _closed(data: bytes) -> FileRecord:
    return FileRecord(app_proto="http", tx_id=0, direction=Direction.TO_CLIENT, filename="/f", size=len(data),
                      state=FileState.CLOSED, gaps=False, sha256=hashlib.sha256(data).hexdigest(),
                      md5=None, sha1=None, magic=None, mime_type=None)


def _feed(scanner: StreamScanner, data: bytes, name: str = "/f.zip"):
    s = scanner.open("http", name, 1)
    for i in range(0, len(data), 1000):
        s.data(data[i:i + 1000])
    return s


def test_a_file_past_the_cap_drops_its_bytes_and_is_judged_by_its_digests():
    scanner = StreamScanner(ContentScanner(HASHES), max_held=len(ZIP) + len(EVIL) // 2)
    first = _feed(scanner, ZIP)                       # held whole: under the cap
    assert scanner.held == len(ZIP)
    second = _feed(scanner, EVIL, "/x.exe")          # its bytes would pass the cap
    assert scanner.memcap_files == 1 and scanner.held == len(ZIP)
    verdict = second.finish(_closed(EVIL))
    assert verdict.kind is VerdictKind.MALICIOUS      # listed: its sha256 still finds it
    assert first.finish(_closed(ZIP)).kind is VerdictKind.CLEAN   # unpacked and scanned
    assert scanner.held == 0 and scanner.held_peak <= scanner.max_held


def test_an_unlisted_file_past_the_cap_says_why_it_was_not_scanned():
    scanner = StreamScanner(ContentScanner(HASHES), max_held=len(ZIP) // 2)
    verdict = _feed(scanner, ZIP).finish(_closed(ZIP))
    assert verdict.kind is VerdictKind.UNSCANNED and f"unscanned: {MEMCAP}" in verdict.reasons
    assert scanner.content.counters.too_large == 0    # not the per-file size limit
    assert scanner.held == 0


def test_a_file_dropped_without_its_end_gives_its_bytes_back():
    scanner = StreamScanner(ContentScanner(HASHES), max_held=1 << 20)
    s = _feed(scanner, ZIP)
    assert scanner.held == len(ZIP)
    del s
    gc.collect()
    assert scanner.held == 0


def test_the_cap_is_a_setting():
    cfg, _ = engine_config(None, EngineConfig(), ["files.scan-memcap=64mb"])
    assert cfg.file_scan_memcap == 64 << 20 and EngineConfig().file_scan_memcap == 128 << 20
    with pytest.raises(ConfigError):
        engine_config(None, EngineConfig(), ["files.scan-memcap=0"])
