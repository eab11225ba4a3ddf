"""`utm sanitize IN OUT`: writes the result, prints one JSON line, exit codes 0 and 2."""
from __future__ import annotations

import json
import zipfile

from firmware.cli.main import main
from tests.unit.files.sanitize import builders


def test_docm_is_written_disarmed_with_one_json_line(tmp_path, capsys):
    src = tmp_path / "report.docm"
    src.write_bytes(builders.docm())
    out = tmp_path / "out.docx"
    assert main(["sanitize", str(src), str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["kind"] == "ooxml" and line["changed"] is True and line["suggested_name"] == "report.docx"
    assert {"removed-vba-project", "removed-dde-field"} <= {a["kind"] for a in line["actions"]}
    assert "word/vbaProject.bin" not in zipfile.ZipFile(out).namelist()
    assert not list(tmp_path.glob(".*.part"))


def test_unchanged_file_is_copied(tmp_path, capsys):
    src = tmp_path / "a.bin"
    src.write_bytes(b"\x00\x01plain")
    assert main(["sanitize", str(src), str(tmp_path / "b.bin")]) == 0
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01plain"
    assert json.loads(capsys.readouterr().out)["actions"] == []


def test_notice_and_limit_are_reported(tmp_path, capsys):
    src = tmp_path / "x.pdf"
    src.write_bytes(builders.pdf_with_javascript())
    assert main(["sanitize", "--max-input-bytes", "10", str(src), str(tmp_path / "y")]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["limit_hit"] == "max_input_bytes" and line["notice"]
    assert (tmp_path / "y").read_text().startswith("This file was replaced")


def test_bad_input_output_and_arguments_exit_2(tmp_path, capsys):
    assert main(["sanitize", str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    src = tmp_path / "a"
    src.write_bytes(b"x")
    assert main(["sanitize", str(src), str(tmp_path / "no" / "such" / "dir")]) == 2
    assert main(["sanitize", "--max-members", "0", str(src), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(e.startswith("utm sanitize: ") for e in err)
    assert not (tmp_path / "o").exists()
