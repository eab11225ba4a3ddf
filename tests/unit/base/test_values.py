"""`value` records: built as plain slotted dataclasses, refused a field assignment by the type checker."""
from __future__ import annotations

import textwrap
from pathlib import Path

from firmware.base.values import value
from inspection.io.nfqueue import VerdictMsg, Verdict


@value
class Point:
    x: int
    y: int = 0


def test_a_value_compares_and_hashes_by_its_fields_and_has_no_dict():
    assert Point(1, 2) == Point(1, 2) and hash(Point(1, 2)) == hash(Point(1, 2))
    assert len({Point(1), Point(1), Point(2)}) == 2
    assert not hasattr(Point(1), "__dict__")
    assert hash(VerdictMsg(1, Verdict.ACCEPT)) == hash(VerdictMsg(1, Verdict.ACCEPT))


def test_the_type_checker_refuses_an_assignment_to_a_field(tmp_path: Path):
    from mypy import api
    src = tmp_path / "uses_value.py"
    src.write_text(textwrap.dedent("""
        from firmware.base.values import value

        @value
        class P:
            a: int

        P(1).a = 2
    """))
    out, _, status = api.run([str(src), "--no-incremental", "--follow-imports=silent"])
    assert status == 1 and 'Property "a" defined in "P" is read-only' in out
