"""`inspection.files.disarm`: when a suspicious file becomes sanitised, when it does not (and why,
counted), and the folder store's limits. Files are built here; the store is the in-memory fake
except where the folder adapter itself is under test."""
from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.files.disarm import DisarmLimits, Disarmer, MemoryCopyStore, no_store
from inspection.files.model import (FileRecord, FileState, SanitisedCopy, Verdict, VerdictKind,
                                    with_signature_hits)
from inspection.files.sanitize import sanitize
from inspection.files.scanner import ContentScanner
from inspection.io.copydir import DirCopyStore
from inspection.model import Direction
from tests.unit.files.sanitize import builders

DOCM = builders.docm()
SUSPICIOUS = Verdict(VerdictKind.SUSPICIOUS, "suspicious: macro with auto-exec", ("suspicious: macro with auto-exec",))


def test_docm_becomes_sanitised_and_commit_stores_the_copy_once():
    store = MemoryCopyStore()
    d = Disarmer(store, rescan=ContentScanner().scan)
    v = d.prepare(DOCM, "/dl/a.docm", SUSPICIOUS)
    expect = sanitize(DOCM, "/dl/a.docm").data
    assert v.kind is VerdictKind.SANITISED and v.reason == SUSPICIOUS.reason
    assert v.sanitised.sha256 == hashlib.sha256(expect).hexdigest() and v.sanitised.filename == "a.docx"
    assert v.sanitised.original == SUSPICIOUS and store.copies == {}      # nothing stored before the commit
    done = d.commit(v)
    assert done.sanitised.data is None and store.copies == {v.sanitised.sha256: expect}
    d.commit(d.prepare(DOCM, "b.docm", SUSPICIOUS))
    c = d.counters
    assert (c.sanitised, c.written, c.already_stored, c.bytes_written) == (2, 1, 1, len(expect))


@pytest.mark.parametrize("kind", [VerdictKind.CLEAN, VerdictKind.MALICIOUS, VerdictKind.UNSCANNED])
def test_only_suspicious_files_are_touched(kind):
    v = Verdict(kind, "x", ("x",))
    assert Disarmer(MemoryCopyStore()).prepare(DOCM, "a.docm", v) is v


def test_refusals_keep_the_verdict_with_a_counted_reason():
    d = Disarmer(MemoryCopyStore())
    cut = d.prepare(DOCM, "a.docm", SUSPICIOUS, "truncated")
    plain = d.prepare(b"Sub AutoOpen()\nEnd Sub\n", "a.txt", SUSPICIOUS)
    notice = d.prepare(b"%PDF-1.4\n1 0 obj\n<< /JavaScript 2 0 R /Length 9 >>\nstream\nnever ends", "x.pdf",
                       SUSPICIOUS)
    assert cut.reasons[-1] == "sanitise_failed: not whole (truncated)"
    assert plain.reasons[-1] == "sanitise_failed: nothing the sanitiser removes"
    assert notice.kind is VerdictKind.SUSPICIOUS and notice.reasons[-1].startswith("sanitise_failed: ")
    assert notice.reasons[-1] != "sanitise_failed: nothing the sanitiser removes"
    assert all(v.kind is VerdictKind.SUSPICIOUS and v.sanitised is None for v in (cut, plain, notice))
    assert (d.counters.not_whole, d.counters.failed, d.counters.sanitised) == (1, 2, 0)


def test_a_copy_that_still_scans_unclean_is_refused():
    class Flags:   # a matcher that flags everything: the copy is no better than the original
        def match(self, data, meta, timeout):
            return ["yara:t:any"]
    d = Disarmer(MemoryCopyStore(), rescan=ContentScanner(matchers=[Flags()]).scan)
    v = d.prepare(DOCM, "a.docm", SUSPICIOUS)
    assert v.kind is VerdictKind.SUSPICIOUS and v.reasons[-1] == "sanitise_failed: copy still malicious (yara:t:any)"


def test_store_errors_and_limits_turn_the_verdict_back():
    failing = Disarmer(MemoryCopyStore(fail="No space left on device"))
    v = failing.commit(failing.prepare(DOCM, "a.docm", SUSPICIOUS))
    assert v == replace(SUSPICIOUS, reasons=(*SUSPICIOUS.reasons, "sanitise_failed: copy not stored (No space left "
                                                                  "on device)"))
    assert failing.counters.store_errors == 1 and failing.counters.sanitised == 0
    small = Disarmer(MemoryCopyStore(), DisarmLimits(max_bytes=100))
    v = small.commit(small.prepare(DOCM, "a.docm", SUSPICIOUS))
    assert v.kind is VerdictKind.SUSPICIOUS and v.reasons[-1] == "sanitise_failed: sanitise folder full (100 bytes)"
    assert small.counters.bytes_limit == 1 and small.store.copies == {}


def test_copies_waiting_for_the_engine_are_bounded():
    d = Disarmer(MemoryCopyStore(), DisarmLimits(max_pending_bytes=3000))
    first = d.prepare(DOCM, "a.docm", SUSPICIOUS)          # about 2 KB, held until committed
    second = d.prepare(DOCM, "b.docm", SUSPICIOUS)
    assert first.kind is VerdictKind.SANITISED
    assert second.reasons[-1] == "sanitise_failed: too many copies waiting (3000 bytes)"
    assert d.counters.pending_limit == 1
    d.commit(first)                                        # stored: its bytes are released
    third = d.prepare(DOCM, "c.docm", SUSPICIOUS)
    assert third.kind is VerdictKind.SANITISED
    d.undone(third)                                        # overruled by a rule: released too
    assert d.prepare(DOCM, "d.docm", SUSPICIOUS).kind is VerdictKind.SANITISED
    assert d.counters.pending_limit == 1 and d.counters.undone == 1


def test_action_reasons_are_capped():
    d = Disarmer(MemoryCopyStore(), DisarmLimits(max_reasons=2))
    v = d.prepare(DOCM, "a.docm", SUSPICIOUS)
    n = len(dict.fromkeys((a.kind, a.target) for a in sanitize(DOCM, "a.docm").actions))
    assert v.reasons[1:] == (*v.reasons[1:3], f"sanitised: {n - 2} more actions")


def test_signature_hit_and_missing_store_undo_the_sanitising():
    v = Disarmer(MemoryCopyStore()).prepare(DOCM, "a.docm", SUSPICIOUS)
    rec = FileRecord("http", 0, Direction.TO_CLIENT, "a.docm", 1, FileState.CLOSED, False, None, None, None, None,
                     None, v)
    hit = with_signature_hits(rec, ["signature:1:5"]).verdict
    assert hit == Verdict(VerdictKind.MALICIOUS, "signature:1:5", ("signature:1:5", *SUSPICIOUS.reasons))
    assert no_store(v).reasons[-1] == "sanitise_failed: no store for the copy"


def test_verdict_and_copy_invariants():
    with pytest.raises(ValueError):
        Verdict(VerdictKind.SANITISED, "x")
    with pytest.raises(ValueError):
        SanitisedCopy("0" * 64, 1, "a", Verdict(VerdictKind.CLEAN, "no detection"))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=0, max_value=len(DOCM)))
def test_prepare_never_raises_on_garbled_input(junk, cut):
    d = Disarmer(MemoryCopyStore(), rescan=ContentScanner().scan)
    for data in (junk, DOCM[:cut], DOCM[:cut] + junk):
        v = d.prepare(data, "f.docm", SUSPICIOUS)
        assert v.kind in (VerdictKind.SUSPICIOUS, VerdictKind.SANITISED)
        d.commit(v)


def test_folder_store_counts_earlier_copies_and_writes_atomically(tmp_path):
    (tmp_path / ("a" * 64)).write_bytes(b"12345")
    (tmp_path / "notes.txt").write_bytes(b"not counted")
    (tmp_path / ("B" * 64)).write_bytes(b"upper case: not ours")
    store = DirCopyStore(tmp_path)
    assert store.usage() == (1, 5)
    sha = hashlib.sha256(b"copy").hexdigest()
    assert not store.has(sha)
    store.write(sha, b"copy")
    assert store.has(sha) and (tmp_path / sha).read_bytes() == b"copy"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    with pytest.raises(ValueError):
        store.write("../escape", b"x")
