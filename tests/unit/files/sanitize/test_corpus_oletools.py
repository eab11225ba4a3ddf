"""oletools' own test files (../shared/corpus/oletools-testdata): whatever oletools flags with
VBA, XLM or DDE, it no longer finds after sanitising; its harmless-clean files come out unchanged;
every disarmed Office file still opens as a zip of well-formed XML, and a second pass changes nothing."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile

import pytest

from inspection.files.sanitize import sanitize
from tests.conformance import sanitize_report

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


@pytest.fixture(scope="module")
def rows():
    if not sanitize_report.TESTDATA.is_dir():
        pytest.skip(f"oletools corpus absent ({sanitize_report.TESTDATA})")
    return sanitize_report.run()


def test_flagged_files_are_clean_after(rows):
    flagged = [r for r in rows if r.before]
    assert len(flagged) >= 10
    assert [r for r in flagged if r.after] == []
    assert all(r.outcome in ("disarmed", "notice") for r in flagged)


def test_harmless_clean_files_are_unchanged(rows):
    clean = [r for r in rows if "harmless-clean" in r.name]
    assert clean and all(r.outcome == "unchanged" for r in clean)


def test_disarmed_office_files_still_parse():
    if not sanitize_report.TESTDATA.is_dir():
        pytest.skip("oletools corpus absent")
    checked = 0
    for path in sorted(sanitize_report.TESTDATA.rglob("*")):
        if not path.is_file():
            continue
        result = sanitize(path.read_bytes(), path.name)
        if result.changed and not result.is_notice:          # disarming is a fixed point
            assert not sanitize(result.data, result.suggested_name or path.name).changed, path.name
        if result.changed and not result.is_notice and result.data[:4] == b"PK\x03\x04":
            z = zipfile.ZipFile(io.BytesIO(result.data))
            assert z.testzip() is None
            for name in z.namelist():
                if name.endswith((".xml", ".rels")):
                    ET.fromstring(z.read(name))
            checked += 1
    assert checked >= 5
