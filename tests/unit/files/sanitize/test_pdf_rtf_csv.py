"""PDF names renamed in place (offsets kept), RTF objects and DDE fields dropped, CSV DDE formulas quoted."""
from __future__ import annotations

import re
import zlib

from inspection.files.sanitize import ActionKind, InputKind, sanitize
from inspection.files.sanitize.pdf import DANGEROUS
from tests.unit.files.sanitize import builders, oletools_helpers as ot

_NAME = re.compile(rb"/([^\s/\[\]<>(){}%]*)")


def _names(data: bytes) -> set[str]:
    return {re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), m.group(1)).decode("latin-1")
            for m in _NAME.finditer(data)}


def _xref_ok(data: bytes) -> bool:
    start = int(data.rsplit(b"startxref", 1)[1].split()[0])
    assert data[start:start + 4] == b"xref"
    rows = data[start:].split(b"\n")[3:]
    for i, row in enumerate(rows, 1):
        if not row.endswith(b" n "):
            break
        off = int(row[:10])
        assert data[off:].startswith(b"%d 0 obj" % i), (i, off)
    return True


def test_pdf_dangerous_names_are_renamed_in_place():
    original = builders.pdf_with_javascript()
    assert DANGEROUS & _names(original)
    result = sanitize(original, "a.pdf")
    assert result.kind is InputKind.PDF and result.changed
    assert len(result.data) == len(original) and result.data.startswith(b"%PDF-1.7")
    assert _xref_ok(result.data)
    outside = re.sub(rb"stream\n.*?\nendstream", b"", result.data, flags=re.S)
    assert not DANGEROUS & _names(outside)
    assert b"/javaScript" in result.data and b"/openAction" in result.data and b"/launch" in result.data
    assert b"/j#41vaScript" not in result.data and b"/J#61vaScript" not in result.data   # escaped name handled
    assert b"(/JavaScript in a content stream)" in result.data                       # stream bytes untouched
    assert all(a.kind is ActionKind.NEUTRALISED_PDF_NAME for a in result.actions)


def test_pdf_object_stream_with_javascript_becomes_a_notice():
    inner = b"4 0 << /S /JavaScript /JS (x) >>"
    objstm = builders.stream_obj(b"/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode", zlib.compress(inner))
    data = builders.pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>", objstm])
    result = sanitize(data, "b.pdf")
    assert result.is_notice and "object stream" in result.notice


def test_pdf_object_stream_without_active_names_is_fine_and_clean_pdf_unchanged():
    objstm = builders.stream_obj(b"/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode", zlib.compress(b"4 0 << /A 1 >>"))
    data = builders.pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>", objstm])
    result = sanitize(data, "c.pdf")
    assert not result.changed and result.data == data


def test_rtf_objects_and_dde_fields_are_removed():
    original = builders.rtf_with_object_and_dde()
    assert ot.rtf_objects(original) == 1 and "calc" in ot.dde(original, "a.rtf")
    result = sanitize(original, "a.rtf")
    assert result.kind is InputKind.RTF and result.changed
    out = result.data
    assert ot.rtf_objects(out) == 0 and ot.dde(out, "b.rtf") == ""
    assert b"HYPERLINK" in out and b"\\\\object is text here" in out and b"after" in out
    assert out.endswith(b"{\\pict\\pngblip\\bin4 }}{{}after\\par}\n")     # \\bin payload passed over intact
    assert out.count(b"{") == out.count(b"}")                                # whole groups removed
    assert {a.kind for a in result.actions} == {ActionKind.REMOVED_RTF_OBJECT, ActionKind.REMOVED_RTF_DDE_FIELD}


def test_rtf_stray_objdata_outside_a_group_becomes_a_notice():
    result = sanitize(b"{\\rtf1 hello \\objdata 0105000002000000}", "s.rtf")
    assert result.is_notice


def test_rtf_without_active_content_unchanged():
    data = b"{\\rtf1\\ansi plain \\b bold\\b0 text}"
    assert sanitize(data, "p.rtf").changed is False


def test_csv_dde_formulas_become_text():
    data = b"a,=cmd|'/k calc.exe'!A0,b\r\n\"=MSEXCEL|'\\..\\x'!''\",2\r\n=SUM(A1:A2),3\r\n"
    assert ot.dde(data, "x.csv")
    result = sanitize(data, "x.csv")
    assert result.kind is InputKind.CSV and result.changed
    assert b"a,\"'=cmd|'/k calc.exe'!A0\",b" in result.data and b"\"'=MSEXCEL" in result.data
    assert b"=SUM(A1:A2)" in result.data                       # ordinary formulas stay
    assert ot.dde(result.data, "x.csv") == ""


def test_csv_is_judged_by_name_only():
    data = b"=cmd|'/k calc.exe'!A0\r\n"
    assert sanitize(data, "x.txt").changed is False
    assert sanitize(data, "x.CSV").changed is True


WORD2003 = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<?mso-application progid="Word.Document"?>\n'
            b'<w:wordDocument xmlns:w="http://schemas.microsoft.com/office/word/2003/wordml"><w:body><w:p>'
            b'<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>DDEAUTO c:\\\\cmd.exe "/k calc"</w:instrText></w:r>'
            b'<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>seen</w:t></w:r>'
            b'<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p></w:body></w:wordDocument>')
EXCEL2003 = (b'<?xml version="1.0"?>\n<?mso-application progid="Excel.Sheet"?>\n'
             b'<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
             b'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet"><Worksheet ss:Name="S"><Table><Row>'
             b'<Cell ss:Formula="=cmd|\'/c calc.exe\'!A1"><Data ss:Type="Number">0</Data></Cell>'
             b'<Cell ss:Formula="=SUM(1,2)"><Data ss:Type="Number">3</Data></Cell></Row></Table></Worksheet></Workbook>')


def test_flat_office_xml_dde_is_disarmed_in_place_and_macros_make_a_notice():
    for data, name in ((WORD2003, "w.xml"), (EXCEL2003, "e.xml")):
        assert ot.dde(data, name)
        result = sanitize(data, name)
        assert result.kind is InputKind.OFFICE_XML and result.changed and not result.is_notice
        assert ot.dde(result.data, name) == ""
    assert b"seen" in sanitize(WORD2003, "w.xml").data
    assert b'ss:Formula="=SUM(1,2)"' in sanitize(EXCEL2003, "e.xml").data
    with_vba = WORD2003.replace(b"<w:body>", b'<w:docSuppData><w:binData w:name="editdata.mso">AAAA</w:binData>'
                                              b"</w:docSuppData><w:body>")
    assert sanitize(with_vba, "v.xml").is_notice


def test_rtf_dde_spelled_with_unicode_escapes_or_quote_codes_is_removed():
    for data in (rb"{\rtf1 {\field{\*\fldinst \u68?\u68?\u69?AUTO c:\\x.exe}{\fldrslt r}} ok}",
                 rb"{\rtf1 {\field{\*\fldinst {\field{\*\fldinst QUOTE 68 68 69 32}} c:\\x.exe}{\fldrslt r}} ok}"):
        result = sanitize(data, "u.rtf")
        assert result.data == rb"{\rtf1  ok}" and result.actions[0].kind is ActionKind.REMOVED_RTF_DDE_FIELD


def test_rtf_deep_nesting_is_bounded():
    result = sanitize(b"{\\rtf1 " + b"{" * 5000 + b"x" + b"}" * 5001, "d.rtf")
    assert result.is_notice and "nested" in result.notice
