"""Single-file Office XML (Word 2003 XML, Word/Excel "flat" XML) and CSV.

Flat Office XML can carry a whole VBA project (``w:binData`` named
editdata.mso, an embedded vbaProject part) or ActiveX: that makes the file a
notice. DDE fields are blanked as in .docx, and Excel 2003 XML cells lose a
DDE ``ss:Formula`` (their cached value stays). CSV cannot hold macros,
but Excel evaluates ``=cmd|' /c calc'!A0`` style DDE formulas on open: such
a cell becomes the quoted text ``"'=cmd|...!A0"`` (already quoted cells just
get the apostrophe), which Excel shows as text. The quotes matter: tools that
guess the CSV dialect may take the apostrophe itself for a quote character.
"""
from __future__ import annotations

import re

from inspection.files.sanitize.common import Context, Outcome, Unsafe
from inspection.files.sanitize.model import Action, ActionKind
from inspection.files.sanitize.wordfields import blank_dde_fields
from inspection.files.sanitize.xmltext import attr_value, check_xml, iter_tags

__all__ = ["is_office_xml", "sanitize_office_xml", "sanitize_csv", "CSV_EXTENSIONS"]

CSV_EXTENSIONS = (".csv", ".tsv")
_MARKERS = (b"<?mso-application", b"schemas.microsoft.com/office/word/2003/wordml",
            b"urn:schemas-microsoft-com:office:spreadsheet", b"schemas.microsoft.com/office/2006/xmlPackage")
_MACRO_MARKERS = re.compile(rb"editdata\.mso|vbaProject|macrosPresent\s*=\s*[\"']yes|vnd\.ms-office\.activeX"
                            rb"|vbaData|macrosheet", re.I)
# a cell that starts (after blanks) with a formula sign and has the DDE shape app|topic!item;
# unquoted, it ends at the next comma, semicolon, tab or line end (Excel does not quote with ')
_CSV_QUOTED = re.compile(rb'(?m)(^|[,;\t])([ \t]*")([=+\-@])(?=[^"\r\n]*\|[^"\r\n]*!)')
_CSV_BARE = re.compile(rb"(?m)(^|[,;\t])([ \t]*)([=+\-@][^,;\t\r\n\"]*\|[^,;\t\r\n]*![^,;\t\r\n]*)")
_DDE_FORMULA = re.compile(r"^\s*\"?[=+\-@].*\|.*!", re.S)


def is_office_xml(data: bytes) -> bool:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):       # UTF-16: recognised here, refused by check_xml
        data = data[:131072].decode("utf-16", "replace").encode("utf-8", "replace")
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<?xml") and any(m in head or m in data[:65536] for m in _MARKERS)


def sanitize_office_xml(data: bytes, name: str, ctx: Context) -> Outcome:
    """Macros or ActiveX: notice. DDE fields are blanked and DDE formulas dropped in place
    (the cached field results and cell values stay), then the file must still parse."""
    if _MACRO_MARKERS.search(data):
        raise Unsafe("Office XML document with macros or ActiveX")
    check_xml(data, name or "document")
    out, fields = blank_dde_fields(data)
    actions: list[Action] = []
    if fields:
        actions.append(Action(ActionKind.REMOVED_DDE_FIELD, name, f"{fields} field(s)"))
    out, formulas = _drop_dde_formulas(out)
    if formulas:
        actions.append(Action(ActionKind.REMOVED_DDE_LINK, name, f"{formulas} DDE formula(s)"))
    if not actions:
        return Outcome(data)
    check_xml(out, name or "document")
    return Outcome(out, tuple(actions))


def _drop_dde_formulas(data: bytes) -> tuple[bytes, int]:
    edits: list[tuple[int, int, bytes]] = []
    for tag in iter_tags(data, (b"Cell", b"cell")):
        for k, v in tag.attrs:
            if k.rpartition(b":")[2].lower() == b"formula" and _DDE_FORMULA.match(attr_value(v)):
                raw = data[tag.start:tag.end]
                pattern = re.compile(rb"\s" + re.escape(k) + rb"\s*=\s*(?:\"[^\"]*\"|'[^']*')")
                edits.append((tag.start, tag.end, pattern.sub(b"", raw, count=1)))
                break
    if not edits:
        return data, 0
    out = bytearray()
    pos = 0
    for start, end, repl in edits:
        out += data[pos:start] + repl
        pos = end
    out += data[pos:]
    return bytes(out), len(edits)


def sanitize_csv(data: bytes, name: str, ctx: Context) -> Outcome:
    count = 0

    def quoted(m: re.Match[bytes]) -> bytes:
        nonlocal count
        count += 1
        return m.group(1) + m.group(2) + b"'" + m.group(3)

    def bare(m: re.Match[bytes]) -> bytes:
        nonlocal count
        count += 1
        return m.group(1) + m.group(2) + b"\"'" + m.group(3).replace(b'"', b'""') + b'"'

    out = _CSV_BARE.sub(bare, _CSV_QUOTED.sub(quoted, data))
    if not count:
        return Outcome(data)
    return Outcome(out, (Action(ActionKind.NEUTRALISED_CSV_FORMULA, name, f"{count} cell(s)"),))
