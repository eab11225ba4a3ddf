"""Macro-enabled Office Open XML becomes the macro-free document, and oletools agrees."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile

from inspection.files.sanitize import ActionKind, InputKind, sanitize
from tests.unit.files.sanitize import builders, oletools_helpers as ot


def _parts(data: bytes) -> dict[str, bytes]:
    z = zipfile.ZipFile(io.BytesIO(data))
    assert z.testzip() is None
    return {n: z.read(n) for n in z.namelist()}


def _assert_parses(parts: dict[str, bytes]) -> None:
    for name, body in parts.items():
        if name.endswith((".xml", ".rels")):
            ET.fromstring(body)


def test_docm_becomes_docx_without_macros_external_links_or_dde():
    original = builders.docm()
    assert ot.vba(original) and "calc.exe" in ot.dde(original, "in.docm")   # the test can fail
    result = sanitize(original, "report.docm")
    assert result.kind is InputKind.OOXML and result.changed and not result.is_notice
    assert result.suggested_name == "report.docx"
    parts = _parts(result.data)
    _assert_parses(parts)
    assert not {"word/vbaProject.bin", "word/vbaData.xml", "word/_rels/vbaProject.bin.rels",
                "word/customizations.xml"} & set(parts)
    types = parts["[Content_Types].xml"].decode()
    assert "macroEnabled" not in types and "vbaProject" not in types and "vbaData" not in types
    assert "keyMapCustomizations" not in types
    assert "wordprocessingml.document.main+xml" in types
    doc = parts["word/document.xml"].decode()
    assert "DDE" not in doc and "OLEObject" not in doc
    assert "PAGE" in doc and "shown" in doc and 'r:id="rId3"' in doc       # other fields, results, hyperlinks stay
    assert 'xmlns:w14=' in doc and 'mc:Ignorable="w14"' in doc              # prefixes untouched
    rels = parts["word/_rels/document.xml.rels"].decode()
    assert "http://example.com/" in rels and "attacker" not in rels and "vbaProject" not in rels
    assert "attachedTemplate" not in parts["word/settings.xml"].decode()
    assert "attacker" not in parts["word/_rels/settings.xml.rels"].decode()
    kinds = {a.kind for a in result.actions}
    assert {ActionKind.REMOVED_VBA_PROJECT, ActionKind.REMOVED_EXTERNAL_RELATIONSHIP, ActionKind.REMOVED_DDE_FIELD,
            ActionKind.RENAMED_CONTENT_TYPE, ActionKind.REMOVED_CONTENT_TYPE, ActionKind.REMOVED_REFERENCE,
            ActionKind.REMOVED_MACRO_CUSTOMIZATION} <= kinds
    targets = {a.detail for a in result.actions if a.kind is ActionKind.REMOVED_EXTERNAL_RELATIONSHIP}
    assert any("t.dotm" in t for t in targets) and any("x.docx" in t for t in targets)
    assert not ot.vba(result.data, "out.docx")
    assert ot.dde(result.data, "out.docx") == ""


def test_xlsm_loses_macro_sheet_auto_open_dde_link_and_vba():
    original = builders.xlsm()
    assert ot.vba(original, "in.xlsm") and ot.dde(original, "in.xlsm")
    result = sanitize(original, "book.xlsm")
    assert result.suggested_name == "book.xlsx"
    parts = _parts(result.data)
    _assert_parses(parts)
    assert not [n for n in parts if "macrosheets" in n or "vbaProject" in n or "externalLink" in n]
    wb = parts["xl/workbook.xml"].decode()
    assert "Macro1" not in wb and "Auto_Open" not in wb and '"Run"' not in wb
    assert 'name="Sheet1"' in wb and 'name="Kept"' in wb
    assert "externalReference " not in wb
    assert "spreadsheetml.sheet.main+xml" in parts["[Content_Types].xml"].decode()
    kinds = {a.kind for a in result.actions}
    assert {ActionKind.REMOVED_MACRO_SHEET, ActionKind.REMOVED_DEFINED_NAME, ActionKind.REMOVED_DDE_LINK,
            ActionKind.REMOVED_VBA_PROJECT} <= kinds
    assert not ot.vba(result.data, "out.xlsx")
    assert ot.dde(result.data, "out.xlsx") == ""


def test_clean_docx_passes_unchanged():
    clean = builders.zip_of({
        "[Content_Types].xml": builders._types(("word/document.xml",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"), vba_default=False),
        "_rels/.rels": builders._rels(("rId1", f"{builders.RT}/officeDocument", "word/document.xml", False)),
        "word/document.xml": builders.HEAD + f'<w:document xmlns:w="{builders.W}"><w:body/></w:document>',
    })
    result = sanitize(clean, "a.docx")
    assert result.data == clean
    assert not result.changed and result.actions == ()


def test_addin_becomes_a_notice():
    addin = builders.zip_of({
        "[Content_Types].xml": builders._types(("xl/workbook.xml", "application/vnd.ms-excel.addin.macroEnabled.main+xml")),
        "_rels/.rels": builders._rels(("rId1", f"{builders.RT}/officeDocument", "xl/workbook.xml", False)),
        "xl/workbook.xml": builders.HEAD + f'<workbook xmlns="{builders.S}"/>',
    })
    result = sanitize(addin, "tool.xlam")
    assert result.is_notice and "add-in" in result.notice
    assert result.suggested_name == "tool.xlam.removed.txt"
    assert result.data.decode("utf-8").startswith("This file was replaced")


def test_doctype_in_a_part_is_refused():
    bad = builders.zip_of({
        "[Content_Types].xml": builders._types(("word/document.xml", "application/xml")),
        "word/document.xml": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
    })
    result = sanitize(bad, "x.docx")
    assert result.is_notice and "document type" in result.notice


def test_utf16_parts_are_refused_not_skipped():
    doc = ('<?xml version="1.0" encoding="UTF-16"?><w:document xmlns:w="%s"><w:body><w:p><w:fldSimple '
           'w:instr="DDEAUTO c:\\\\x.exe"/></w:p></w:body></w:document>' % builders.W).encode("utf-16")
    data = builders.zip_of({
        "[Content_Types].xml": builders._types(("word/document.xml",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"), vba_default=False),
        "_rels/.rels": builders._rels(("rId1", f"{builders.RT}/officeDocument", "word/document.xml", False)),
        "word/document.xml": doc,
    })
    result = sanitize(data, "w.docx")
    assert result.is_notice and "UTF-16" in result.notice
    flat = ('<?xml version="1.0" encoding="UTF-16"?><?mso-application progid="Word.Document"?>'
            '<w:wordDocument xmlns:w="http://schemas.microsoft.com/office/word/2003/wordml"/>').encode("utf-16")
    assert sanitize(flat, "f.xml").is_notice


def test_vba_project_under_a_harmless_name_is_found_by_its_relationship():
    z = zipfile.ZipFile(io.BytesIO(builders.docm()))
    parts = {n: z.read(n) for n in z.namelist()}
    parts["word/media/image1.png"] = parts.pop("word/vbaProject.bin")
    parts["word/_rels/image1.png.rels"] = parts.pop("word/_rels/vbaProject.bin.rels")
    parts["word/_rels/document.xml.rels"] = parts["word/_rels/document.xml.rels"].replace(
        b'Target="vbaProject.bin"', b'Target="media/image1.png"')
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
        b"</Types>", b'<Override PartName="/word/media/image1.png" ContentType="image/png"/></Types>')
    result = sanitize(builders.zip_of(parts), "d.docm")
    assert any(a.kind is ActionKind.REMOVED_VBA_PROJECT and a.target == "word/media/image1.png" for a in result.actions)
    assert "word/media/image1.png" not in zipfile.ZipFile(io.BytesIO(result.data)).namelist()


def test_content_types_in_another_case_is_refused():
    z = zipfile.ZipFile(io.BytesIO(builders.docm()))
    parts = {("[content_types].xml" if n == "[Content_Types].xml" else n): z.read(n) for n in z.namelist()}
    result = sanitize(builders.zip_of(parts), "d.docm")
    assert result.kind.value == "ooxml" and result.is_notice


def test_external_workbook_link_goes_whole():
    z = zipfile.ZipFile(io.BytesIO(builders.xlsm()))
    parts = {n: z.read(n) for n in z.namelist()}
    parts["xl/externalLinks/externalLink1.xml"] = (builders.HEAD + f'<externalLink xmlns="{builders.S}" '
        f'xmlns:r="{builders.R}"><externalBook r:id="rId1"/></externalLink>').encode()
    parts["xl/externalLinks/_rels/externalLink1.xml.rels"] = builders._rels(
        ("rId1", f"{builders.RT}/externalLinkPath", "http://attacker.example/book.xlsx", True)).encode()
    result = sanitize(builders.zip_of(parts), "b.xlsm")
    out = _parts(result.data)
    assert not [n for n in out if "externalLink" in n]
    assert "externalReference " not in out["xl/workbook.xml"].decode()
    assert any("attacker.example" in a.detail for a in result.actions)
