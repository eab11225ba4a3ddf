"""`python -m tests.conformance.sanitize_report`: the sanitiser against oletools' own test files.

For every file in ../shared/corpus/oletools-testdata: what oletools finds
before (VBA, XLM, DDE), what `sanitize()` did (unchanged, disarmed in place,
replaced by a notice), and what oletools finds after. Prints the counts and
every failure with its reason; exits 1 if any flagged file still has
findings after sanitising or a clean file was changed.
"""
from __future__ import annotations

import io
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from inspection.files.sanitize import sanitize
from tests.conformance.corpus import CORPUS
from tests.oletools_check import findings, flagged

TESTDATA = CORPUS / "oletools-testdata" / "tests" / "test-data"


@dataclass(frozen=True)
class Row:
    name: str
    before: frozenset[str]
    after: frozenset[str]
    outcome: str        # unchanged | disarmed | notice
    detail: str


def _row(rel: str, name: str, data: bytes) -> Row:
    before = flagged(findings(data, name))
    result = sanitize(data, name)
    after = flagged(findings(result.data, result.suggested_name or name)) if result.changed else before
    outcome = "notice" if result.is_notice else ("disarmed" if result.changed else "unchanged")
    detail = result.notice or ", ".join(sorted({a.kind.value for a in result.actions}))
    return Row(rel, frozenset(before), frozenset(after), outcome, detail)


def _unzipped(data: bytes) -> list[tuple[str, bytes]]:
    """oletools keeps some samples in zips encrypted with the password its own tests use, "infected-test"
    (so virus scanners leave them alone); those members are checked as files of their own too."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        return [(i.filename, zf.read(i, pwd=b"infected-test")) for i in zf.infolist()
                if i.flag_bits & 1 and not i.is_dir()]
    except (zipfile.BadZipFile, RuntimeError, ValueError):
        return []


def run(root: Path = TESTDATA) -> list[Row]:
    rows = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        rel = str(path.relative_to(root))
        rows.append(_row(rel, path.name, data))
        if data[:4] == b"PK\x03\x04":
            rows += [_row(f"{rel}!{member}", member, body) for member, body in _unzipped(data)]
    return rows


def main(argv: list[str]) -> int:
    if not TESTDATA.is_dir():
        print(f"sanitize report: no corpus at {TESTDATA}; nothing to measure")
        return 0
    started = time.perf_counter()
    rows = run()
    seconds = time.perf_counter() - started
    flagged_rows = [r for r in rows if r.before]
    clean_rows = [r for r in rows if not r.before]
    still = [r for r in flagged_rows if r.after]
    by = {k: sum(1 for r in flagged_rows if r.outcome == k) for k in ("disarmed", "notice", "unchanged")}
    clean_changed = [r for r in clean_rows if r.outcome != "unchanged"]
    print(f"oletools-testdata: {len(rows)} files (members of the password-protected sample zips included)"
          f" in {seconds:.1f} s")
    print(f"flagged by oletools before (VBA/XLM/DDE): {len(flagged_rows)}")
    print(f"  clean after sanitising: {len(flagged_rows) - len(still)}/{len(flagged_rows)}"
          f"  (disarmed in place {by['disarmed']}, replaced by notice {by['notice']}, unchanged {by['unchanged']})")
    print(f"not flagged before: {len(clean_rows)}; changed by the sanitiser: {len(clean_changed)}")
    for r in flagged_rows:
        print(f"  {r.outcome:9} {r.name}: before {sorted(r.before)} after {sorted(r.after)} ({r.detail})")
    if clean_changed:
        print("not flagged by oletools but changed (by our stricter rules):")
        for r in clean_changed:
            print(f"  {r.outcome:9} {r.name}: {r.detail}")
    if still:
        print("FAILURES (oletools still finds active content):")
        for r in still:
            print(f"  {r.name}: {sorted(r.after)} after {r.outcome} ({r.detail})")
    return 1 if still else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
