"""Office Open XML: rewrite the package without macros, ActiveX, external
relationships and DDE, so it becomes the macro-free document type.

What goes: VBA projects (vbaProject.bin, vbaData.xml, signatures) and Word's
macro key bindings and toolbars (keyMapCustomizations, attachedToolbars), Excel 4
and international macro sheets (with their ``<sheet>`` entries and the
defined names that start or point at them), ActiveX parts, externalLink
parts carrying a ``ddeLink``, every relationship with TargetMode="External"
except hyperlinks (remote templates, linked OLE objects, linked images and
frames are fetched without a click; a hyperlink needs one), every element
that referred to a removed relationship, and DDE field instructions.
[Content_Types].xml loses the removed parts and macro-enabled main types
become their macro-free twins (docm -> docx, ...). Add-ins (xlam, ppam) and
binary workbooks whose macro sheets live in workbook.bin have no macro-free
form we can write, nor binary workbooks with DDE/OLE links (the SupBook
records sit in binary parts): they raise `Unsafe` and become a notice.
"""
from __future__ import annotations

import io
import posixpath
import re
import zipfile
from dataclasses import dataclass

from inspection.files.sanitize.common import Context, LimitExceeded, Outcome, Unsafe, read_zip_member
from inspection.files.sanitize.model import Action, ActionKind, LimitKind
from inspection.files.sanitize.wordfields import blank_dde_fields
from inspection.files.sanitize.xmltext import (Tag, attr_value, check_xml, element_end, iter_tags, namespaces,
                                               remove_elements)

__all__ = ["is_ooxml", "sanitize_ooxml", "read_members"]

CONTENT_TYPES = "[Content_Types].xml"
_REL_NS = {"http://schemas.openxmlformats.org/officeDocument/2006/relationships",
           "http://purl.oclc.org/ooxml/officeDocument/relationships"}
_HYPERLINK = "/hyperlink"

# macro-enabled main part type -> (macro-free type, old extension -> new extension)
MAIN_TYPES: dict[str, str] = {
    "application/vnd.ms-word.document.macroenabled.main+xml":
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    "application/vnd.ms-word.template.macroenabledtemplate.main+xml":
        "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
    "application/vnd.ms-excel.sheet.macroenabled.main+xml":
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
    "application/vnd.ms-excel.template.macroenabled.main+xml":
        "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml",
    "application/vnd.ms-powerpoint.presentation.macroenabled.main+xml":
        "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
    "application/vnd.ms-powerpoint.template.macroenabled.main+xml":
        "application/vnd.openxmlformats-officedocument.presentationml.template.main+xml",
    "application/vnd.ms-powerpoint.slideshow.macroenabled.main+xml":
        "application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml",
}
ADDIN_TYPES = {"application/vnd.ms-excel.addin.macroenabled.main+xml",
               "application/vnd.ms-powerpoint.addin.macroenabled.main+xml"}
BINARY_WORKBOOK = "application/vnd.ms-excel.sheet.binary.macroenabled.main"
EXTENSIONS = {"docm": "docx", "dotm": "dotx", "xlsm": "xlsx", "xltm": "xltx",
              "pptm": "pptx", "potm": "potx", "ppsm": "ppsx", "sldm": "sldx"}

_MACRO_TYPES: dict[str, ActionKind] = {
    "application/vnd.ms-office.vbaproject": ActionKind.REMOVED_VBA_PROJECT,
    "application/vnd.ms-word.vbadata+xml": ActionKind.REMOVED_VBA_PROJECT,
    "application/vnd.ms-office.vbaprojectsignature": ActionKind.REMOVED_VBA_PROJECT,
    "application/vnd.ms-office.vbaprojectsignatureagile": ActionKind.REMOVED_VBA_PROJECT,
    "application/vnd.ms-office.vbaprojectsignaturev3": ActionKind.REMOVED_VBA_PROJECT,
    "application/vnd.ms-excel.macrosheet+xml": ActionKind.REMOVED_MACRO_SHEET,
    "application/vnd.ms-excel.intlmacrosheet+xml": ActionKind.REMOVED_MACRO_SHEET,
    "application/vnd.ms-excel.macrosheet": ActionKind.REMOVED_MACRO_SHEET,
    "application/vnd.ms-excel.intlmacrosheet": ActionKind.REMOVED_MACRO_SHEET,
    "application/vnd.ms-office.activex+xml": ActionKind.REMOVED_ACTIVEX,
    "application/vnd.ms-office.activex": ActionKind.REMOVED_ACTIVEX,
    # macro-only parts of Word: a macro-free document may not have them ([MS-OFFMACRO])
    "application/vnd.ms-word.keymapcustomizations+xml": ActionKind.REMOVED_MACRO_CUSTOMIZATION,
    "application/vnd.ms-word.attachedtoolbars": ActionKind.REMOVED_MACRO_CUSTOMIZATION,
}
_AUTO_NAMES = ("auto_open", "auto_close", "auto_activate", "auto_deactivate",
               "_xlnm.auto_open", "_xlnm.auto_close", "_xlnm.auto_activate", "_xlnm.auto_deactivate")


def is_ooxml(names: list[str]) -> bool:
    return CONTENT_TYPES in names


def read_members(data: bytes, ctx: Context) -> tuple[list[zipfile.ZipInfo], dict[str, bytes]]:
    """All members of a zip, within the member and expansion limits; encrypted members are unsafe."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
        raise Unsafe(f"zip cannot be read ({e})") from None
    if len(infos) > ctx.limits.max_members:
        raise LimitExceeded(LimitKind.MEMBERS, f"{len(infos)} members")
    out: dict[str, bytes] = {}
    for info in infos:
        if info.flag_bits & 0x1:
            raise Unsafe(f"encrypted zip member {info.filename!r}")
        if info.filename in out:
            raise Unsafe(f"duplicate zip member {info.filename!r}")
        body = read_zip_member(zf, info, ctx.budget)
        out[info.filename] = body
    return infos, out


@dataclass(frozen=True, slots=True)
class _Rel:
    rid: str
    type: str
    target: str
    external: bool


def _rels_source(rels_name: str) -> str:
    """word/_rels/document.xml.rels -> word/document.xml; _rels/.rels -> '' (the package)."""
    folder, _, base = rels_name.rpartition("/")
    parent = folder[: -len("_rels")].rstrip("/") if folder.endswith("_rels") else folder
    src = base[: -len(".rels")]
    return f"{parent}/{src}" if parent else src


def _resolve(source: str, target: str) -> str:
    if target.startswith("/"):
        return posixpath.normpath(target.lstrip("/"))
    base = posixpath.dirname(source)
    return posixpath.normpath(posixpath.join(base, target)) if base else posixpath.normpath(target)


def _parse_rels(data: bytes) -> list[_Rel]:
    rels = []
    for tag in iter_tags(data):
        if tag.local != b"Relationship":
            continue
        a = {k.decode("ascii", "replace"): attr_value(v) for k, v in tag.attrs}
        rels.append(_Rel(a.get("Id", ""), a.get("Type", ""), a.get("Target", ""),
                         a.get("TargetMode", "").lower() == "external"))
    return rels


def _content_types(data: bytes) -> tuple[dict[str, str], dict[str, str]]:
    overrides: dict[str, str] = {}
    defaults: dict[str, str] = {}
    for tag in iter_tags(data):
        a = {k.decode("ascii", "replace"): attr_value(v) for k, v in tag.attrs}
        if tag.local == b"Override":
            overrides[a.get("PartName", "").lstrip("/").lower()] = a.get("ContentType", "").lower()
        elif tag.local == b"Default":
            defaults[a.get("Extension", "").lower()] = a.get("ContentType", "").lower()
    return overrides, defaults


class _Package:
    """The parts of one package and what has been done to them."""

    def __init__(self, infos: list[zipfile.ZipInfo], parts: dict[str, bytes]) -> None:
        self.infos = infos
        self.parts = parts
        self.lower = {n.lower(): n for n in parts}
        self.overrides, self.defaults = _content_types(parts[CONTENT_TYPES])
        self.removed: dict[str, ActionKind] = {}
        self.edited: set[str] = set()
        self.actions: list[Action] = []
        self.sheets_removed: list[Tag] = []   # <sheet> entries dropped from workbook.xml

    def ctype(self, name: str) -> str:
        n = name.lower()
        if n in self.overrides:
            return self.overrides[n]
        return self.defaults.get(n.rpartition(".")[2], "") if "." in n else ""

    def set(self, name: str, data: bytes) -> None:
        self.parts[name] = data
        self.edited.add(name)

    def act(self, kind: ActionKind, target: str, detail: str = "") -> None:
        self.actions.append(Action(kind, target, detail))


def _macro_kind(name: str, ctype: str) -> ActionKind | None:
    kind = _MACRO_TYPES.get(ctype)
    if kind is not None:
        return kind
    low = name.lower()
    base = low.rpartition("/")[2]
    if base in ("vbaproject.bin", "vbadata.xml") or base.startswith("vbaprojectsignature"):
        return ActionKind.REMOVED_VBA_PROJECT
    if "/macrosheets/" in f"/{low}":
        return ActionKind.REMOVED_MACRO_SHEET
    if "/activex/" in f"/{low}":
        return ActionKind.REMOVED_ACTIVEX
    return None


def _main_part(pkg: _Package) -> str:
    """The main document part; '' for OPC packages that are not Office documents (XPS)."""
    for rel in _parse_rels(pkg.parts.get("_rels/.rels", b"")):
        if rel.type.endswith("/officeDocument") and not rel.external:
            return _resolve("", rel.target)
    return ""


def sanitize_ooxml(data: bytes, name: str, ctx: Context) -> Outcome:
    infos, parts = read_members(data, ctx)
    if CONTENT_TYPES not in parts:      # e.g. [content_types].xml: Office may still read it; we do not
        raise Unsafe("OOXML package without an exactly named [Content_Types].xml")
    for part, body in parts.items():
        if part.endswith((".xml", ".rels")):
            check_xml(body, part)
    pkg = _Package(infos, parts)
    main = _main_part(pkg)
    main_type = pkg.ctype(main)
    if main_type in ADDIN_TYPES:
        raise Unsafe(f"macro-enabled add-in ({main_type}) has no macro-free form")
    _choose_removals(pkg, ctx)
    if main_type == BINARY_WORKBOOK and any(k is ActionKind.REMOVED_MACRO_SHEET for k in pkg.removed.values()):
        raise Unsafe("binary workbook (xlsb) with Excel 4 macro sheets")
    _drop_relationships(pkg)
    _fix_workbook(pkg)
    _blank_fields(pkg)
    renamed = _fix_content_types(pkg, main, main_type)
    if not pkg.actions:
        return Outcome(data)
    out = _write(pkg)
    suggested = None
    if renamed:
        stem, dot, ext = name.rpartition(".")
        if dot and ext.lower() in EXTENSIONS:
            suggested = f"{stem}.{EXTENSIONS[ext.lower()]}"
    return Outcome(out, tuple(pkg.actions), suggested)


_MACRO_RELS: dict[str, ActionKind] = {
    "vbaproject": ActionKind.REMOVED_VBA_PROJECT, "wordvbadata": ActionKind.REMOVED_VBA_PROJECT,
    "vbaprojectsignature": ActionKind.REMOVED_VBA_PROJECT, "vbaprojectsignatureagile": ActionKind.REMOVED_VBA_PROJECT,
    "vbaprojectsignaturev3": ActionKind.REMOVED_VBA_PROJECT,
    "xlmacrosheet": ActionKind.REMOVED_MACRO_SHEET, "xlintlmacrosheet": ActionKind.REMOVED_MACRO_SHEET,
    "control": ActionKind.REMOVED_ACTIVEX, "activexcontrolbinary": ActionKind.REMOVED_ACTIVEX,
    "keymapcustomizations": ActionKind.REMOVED_MACRO_CUSTOMIZATION,
    "attachedtoolbars": ActionKind.REMOVED_MACRO_CUSTOMIZATION,
}


def _targets_by_type(pkg: _Package) -> dict[str, set[str]]:
    """lower-case part name -> the (lower-case, last path segment) types of internal relationships to it."""
    out: dict[str, set[str]] = {}
    for rels_name in (n for n in pkg.parts if n.endswith(".rels")):
        source = _rels_source(rels_name)
        for rel in _parse_rels(pkg.parts[rels_name]):
            if not rel.external:
                out.setdefault(_resolve(source, rel.target).lower(), set()).add(rel.type.rpartition("/")[2].lower())
    return out


def _external_targets(pkg: _Package, part: str) -> list[str]:
    folder, _, base = part.rpartition("/")
    rels = pkg.parts.get(f"{folder}/_rels/{base}.rels" if folder else f"_rels/{base}.rels", b"")
    return [rel.target for rel in _parse_rels(rels) if rel.external]


def _choose_removals(pkg: _Package, ctx: Context) -> None:
    """Parts go by content type, by name, or by the type of relationship that loads them:
    a VBA project renamed to image1.png is still loaded as one if a vbaProject relationship points at it."""
    rel_types = _targets_by_type(pkg)
    for part in list(pkg.parts):
        if part == CONTENT_TYPES or part.endswith(".rels"):
            continue
        types = rel_types.get(part.lower(), set())
        kind = _macro_kind(part, pkg.ctype(part))
        if kind is None:
            kind = next((_MACRO_RELS[t] for t in sorted(types) if t in _MACRO_RELS), None)
        body = pkg.parts[part]
        external_link = "externallink" in types or part.lower().startswith("xl/externallinks/")
        if kind is None and external_link and b"ddeLink" in body:
            if any(tag.local == b"ddeLink" for tag in iter_tags(body, (b"ddeLink",))):
                kind = ActionKind.REMOVED_DDE_LINK
        if external_link and not part.lower().endswith(".xml") and _xlsb_link(body):
            raise Unsafe(f"binary workbook with a DDE or OLE link ({part})")
        if kind is None and external_link:
            outside = _external_targets(pkg, part)
            if outside:       # a link to another file: without its target the part is an empty shell
                pkg.removed[part] = ActionKind.REMOVED_EXTERNAL_RELATIONSHIP
                pkg.act(ActionKind.REMOVED_EXTERNAL_RELATIONSHIP, part, "externalLink -> " + ", ".join(outside))
                continue
        if kind is None and "/embeddings/" in f"/{part.lower()}":
            _sanitize_embedding(pkg, part, ctx)
            continue
        if kind is not None:
            pkg.removed[part] = kind
            pkg.act(kind, part)


_BRT_BEGIN_SUPBOOK = 360


def _xlsb_link(body: bytes) -> bool:
    """A BIFF12 BrtBeginSupBook of type DDE (1) or OLE (2): what Excel auto-updates from an .xlsb."""
    pos = 0
    n = len(body)
    while pos < n:
        rtype = body[pos] & 0x7F
        if body[pos] & 0x80:
            if pos + 1 >= n:
                return False
            rtype |= (body[pos + 1] & 0x7F) << 7
            pos += 1
        pos += 1
        size = 0
        for shift in (0, 7, 14, 21):
            if pos >= n:
                return False
            size |= (body[pos] & 0x7F) << shift
            pos += 1
            if not body[pos - 1] & 0x80:
                break
        if rtype == _BRT_BEGIN_SUPBOOK and size >= 2 and body[pos:pos + 2] in (b"\x01\x00", b"\x02\x00"):
            return True
        pos += size
    return False


def _sanitize_embedding(pkg: _Package, part: str, ctx: Context) -> None:
    """An embedded package or OLE object is a file of its own: disarm it, or give up on the whole document."""
    if ctx.recurse is None:
        return
    if ctx.depth + 1 > ctx.limits.max_depth:
        raise LimitExceeded(LimitKind.DEPTH, f"embedded {part}")
    result = ctx.recurse(pkg.parts[part], part, ctx)
    if result.limit_hit is not None:
        raise LimitExceeded(result.limit_hit, f"in embedded {part}")
    if not result.changed:
        return
    if result.notice is not None:
        raise Unsafe(f"embedded object {part}: {result.notice}")
    pkg.set(part, result.data)
    for a in result.actions:
        pkg.act(a.kind, f"{part}!{a.target}" if a.target else part, a.detail)


def _drop_relationships(pkg: _Package) -> None:
    """Remove relationships to removed parts and external ones, then the elements that used them."""
    for rels_name in sorted(n for n in pkg.parts if n.endswith(".rels")):
        source = _rels_source(rels_name)
        if source in pkg.removed:
            pkg.removed[rels_name] = ActionKind.REMOVED_REFERENCE
            continue
        body = pkg.parts[rels_name]
        gone: dict[str, _Rel] = {}
        for rel in _parse_rels(body):
            if rel.external and not rel.type.endswith(_HYPERLINK):
                gone[rel.rid] = rel
                pkg.act(ActionKind.REMOVED_EXTERNAL_RELATIONSHIP, source or "/", f"{rel.type.rpartition('/')[2]} -> {rel.target}")
            elif not rel.external and _resolve(source, rel.target).lower() in {p.lower() for p in pkg.removed}:
                gone[rel.rid] = rel
        if not gone:
            continue
        new, _ = remove_elements(body, lambda t: _rid(t) in gone, names=(b"Relationship",))
        pkg.set(rels_name, new)
        _drop_references(pkg, source, set(gone))


def _rid(tag: Tag) -> str:
    for k, v in tag.attrs:
        if k == b"Id":
            return attr_value(v)
    return ""


def _drop_references(pkg: _Package, source: str, rids: set[str]) -> None:
    real = pkg.lower.get(source.lower())
    if real is None or real in pkg.removed or not real.lower().endswith(".xml"):
        return
    body = pkg.parts[real]
    rel_prefixes = {p for p, uri in namespaces(body).items() if uri in _REL_NS}

    def refers(tag: Tag) -> bool:
        return any(k.partition(b":")[0] in rel_prefixes and b":" in k and attr_value(v) in rids
                   for k, v in tag.attrs)

    near = re.compile(rb"=\s*[\"'](?:" + b"|".join(re.escape(r.encode()) for r in rids) + rb")[\"']")
    new, removed = remove_elements(body, refers, near=near)
    if removed:
        pkg.set(real, new)
        if real.lower().endswith("workbook.xml"):
            pkg.sheets_removed += [t for t in removed if t.local == b"sheet"]
        for tag in removed:
            pkg.act(ActionKind.REMOVED_REFERENCE, real, tag.qname.decode("ascii", "replace"))


def _fix_workbook(pkg: _Package) -> None:
    """Defined names that auto-run macros or point at removed sheets go too."""
    sheets = pkg.sheets_removed
    names = set()
    for tag in sheets:
        for k, v in tag.attrs:
            if k == b"name":
                names.add(attr_value(v).lower())
    for part in list(pkg.parts):
        if not part.lower().endswith("workbook.xml") or part in pkg.removed:
            continue
        body = pkg.parts[part]

        def drop(tag: Tag) -> bool:
            if tag.local != b"definedName":
                return False
            name = next((attr_value(v) for k, v in tag.attrs if k == b"name"), "").lower()
            if name.startswith(_AUTO_NAMES):
                return True
            if not names or tag.empty:
                return False
            formula = attr_value(body[tag.end:element_end(body, tag)]).lower()
            return any(f"{n}!" in formula or f"'{n}'!" in formula for n in names)

        new, removed = remove_elements(body, drop, names=(b"definedName",))
        if removed:
            pkg.set(part, new)
            for tag in removed:
                label = next((attr_value(v) for k, v in tag.attrs if k == b"name"), "")
                pkg.act(ActionKind.REMOVED_DEFINED_NAME, part, label)


def _blank_fields(pkg: _Package) -> None:
    for part in list(pkg.parts):
        if part in pkg.removed or not part.lower().endswith(".xml") or not part.lower().startswith("word/"):
            continue
        new, count = blank_dde_fields(pkg.parts[part])
        if count:
            pkg.set(part, new)
            pkg.act(ActionKind.REMOVED_DDE_FIELD, part, f"{count} field(s)")


def _fix_content_types(pkg: _Package, main: str, main_type: str) -> bool:
    body = pkg.parts[CONTENT_TYPES]
    removed = {p.lower() for p in pkg.removed}

    def drop(tag: Tag) -> bool:
        a = {k: attr_value(v) for k, v in tag.attrs}
        if tag.local == b"Override":
            return a.get(b"PartName", "").lstrip("/").lower() in removed
        if tag.local == b"Default":
            return a.get(b"ContentType", "").lower() in _MACRO_TYPES
        return False

    new, dropped = remove_elements(body, drop)
    for tag in dropped:
        detail = next((attr_value(v) for k, v in tag.attrs if k in (b"PartName", b"Extension")), "")
        pkg.act(ActionKind.REMOVED_CONTENT_TYPE, CONTENT_TYPES, detail)
    renamed = False
    if main_type in MAIN_TYPES and pkg.actions:
        new, renamed = _rename_main(new, main, MAIN_TYPES[main_type])
        if renamed:
            pkg.act(ActionKind.RENAMED_CONTENT_TYPE, main, f"{main_type} -> {MAIN_TYPES[main_type]}")
    if new != body:
        pkg.set(CONTENT_TYPES, new)
    return renamed


def _rename_main(body: bytes, main: str, new_type: str) -> tuple[bytes, bool]:
    for tag in iter_tags(body):
        if tag.local != b"Override":
            continue
        a = {k: attr_value(v) for k, v in tag.attrs}
        if a.get(b"PartName", "").lstrip("/").lower() != main.lower():
            continue
        raw = body[tag.start:tag.end]
        fixed = re.sub(rb"(ContentType\s*=\s*)(\"[^\"]*\"|'[^']*')", lambda m: m.group(1) + b'"' + new_type.encode() + b'"', raw)
        return body[:tag.start] + fixed + body[tag.end:], True
    return body, False


def _write(pkg: _Package) -> bytes:
    for part in pkg.edited:
        if part not in pkg.removed and part.endswith((".xml", ".rels")):
            check_xml(pkg.parts[part], part)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for info in pkg.infos:
            if info.filename in pkg.removed:
                continue
            new = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            new.compress_type = zipfile.ZIP_DEFLATED if info.compress_type != zipfile.ZIP_STORED else zipfile.ZIP_STORED
            new.external_attr = info.external_attr
            out.writestr(new, pkg.parts[info.filename])
    return buf.getvalue()
