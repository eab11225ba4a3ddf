"""Legacy Office (OLE compound files): find what we cannot leave in, and
answer with a notice when there is any.

Why no in-place disarm: olefile can overwrite a stream only with the same
number of bytes and cannot delete one, so "removing" a VBA project means
leaving an empty project behind that Office may repair, reject or, worse,
half-load; and an Excel 4 macro sheet lives inside the Workbook stream
among the cell records. Replacing the file with a notice is always correct;
a broken half-disarmed document is not. So this module only decides.

Looked for: VBA projects (``VBA`` storages, ``_VBA_PROJECT`` streams, a
PowerPoint VBAInfo atom that points at one), Excel 4 macro sheets and VBA module sheets
(BOUNDSHEET type), external/DDE links (SUPBOOK), Word DDE fields (field
instructions in any stream, as msodde reads them), and encryption (which
hides all of the above).
"""
from __future__ import annotations

import io
import re
import struct

import olefile

from inspection.files.sanitize.common import Context, Outcome, Unsafe
from inspection.files.sanitize.wordfields import is_dde

try:  # a second opinion on encryption; the structural checks below work without it
    import msoffcrypto
except ImportError:  # pragma: no cover - optional
    msoffcrypto = None

__all__ = ["OLE_MAGIC", "findings", "sanitize_ole"]

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_FIELD = re.compile(rb"\x13([^\x13\x14\x15]{1,2000})[\x14\x15]")
_BOUNDSHEET, _FILEPASS, _SUPBOOK = 0x0085, 0x002F, 0x01AE
_SHEET_TYPES = {1: "Excel 4 macro sheet", 6: "VBA module sheet"}
_ENCRYPTED = "encryption"
_PPT_VBAINFO_ATOM = 0x0400   # inside the VBAInfo container: persistIdRef, fHasMacros, version


def sanitize_ole(data: bytes, name: str, ctx: Context) -> Outcome:
    found = findings(data, ctx)
    if _ENCRYPTED in found:
        raise Unsafe("encrypted document (its content cannot be inspected)")
    if found:
        raise Unsafe("legacy Office document with " + ", ".join(found))
    return Outcome(data)


def findings(data: bytes, ctx: Context) -> list[str]:
    """What makes this compound file unsafe to pass (empty: nothing found)."""
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception as e:  # olefile raises many types on hostile input
        raise Unsafe(f"OLE container cannot be parsed ({type(e).__name__})") from None
    try:
        return _inspect(ole, data, ctx)
    except Unsafe:
        raise
    except Exception as e:
        raise Unsafe(f"OLE container cannot be parsed ({type(e).__name__})") from None
    finally:
        ole.close()


def _inspect(ole: olefile.OleFileIO, data: bytes, ctx: Context) -> list[str]:
    entries = ole.listdir(streams=True, storages=True)
    lower = {"/".join(p).lower() for p in entries}
    tops = {p[0].lower() for p in entries}
    found: list[str] = []
    if {"encryptioninfo", "encryptedpackage"} & tops or "encryptedsummary" in tops or _msoffcrypto_says(data):
        return [_ENCRYPTED]
    if any(p[-1].lower() in ("_vba_project", "dir") and any(c.lower() == "vba" for c in p[:-1]) for p in entries) \
            or any(p[-1].lower() == "_vba_project" for p in entries):
        found.append("VBA macros")
    for book in ("workbook", "book"):
        if book in lower:
            found += _biff(_read(ole, [book], ctx))
    if "powerpoint document" in lower:
        found += _ppt(_read(ole, ["PowerPoint Document"], ctx))
    if "worddocument" in lower:
        word = _read(ole, ["WordDocument"], ctx)
        if len(word) >= 12 and struct.unpack_from("<H", word, 10)[0] & 0x0100:
            return [_ENCRYPTED]
        if any(_dde_fields(_read(ole, p, ctx)) for p in ole.listdir(streams=True, storages=False)):
            found.append("DDE fields")
    return sorted(set(found))


def _read(ole: olefile.OleFileIO, path: list[str], ctx: Context) -> bytes:
    size = ole.get_size(path)
    ctx.budget.take(size, "/".join(path))
    return ole.openstream(path).read()


def _msoffcrypto_says(data: bytes) -> bool:
    if msoffcrypto is None:
        return False
    try:
        return bool(msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted())
    except Exception:  # unknown layouts (e.g. Excel 5 "Book"): the structural checks decide
        return False


def _biff(stream: bytes) -> list[str]:
    found = []
    pos = 0
    while pos + 4 <= len(stream):
        rtype, rlen = struct.unpack_from("<HH", stream, pos)
        body = stream[pos + 4:pos + 4 + rlen]
        pos += 4 + rlen
        if rtype == _FILEPASS:
            return [_ENCRYPTED]
        if rtype == _BOUNDSHEET and len(body) >= 6 and body[5] in _SHEET_TYPES:
            found.append(_SHEET_TYPES[body[5]])
        elif rtype == _SUPBOOK and len(body) >= 4 and struct.unpack_from("<H", body, 2)[0] not in (0x0401, 0x3A01):
            found.append("external or DDE link")
    return found


def _ppt(stream: bytes) -> list[str]:
    """Walk the record tree linearly: a container's children follow its header."""
    pos = 0
    while pos + 8 <= len(stream):
        ver_inst, rtype, rlen = struct.unpack_from("<HHI", stream, pos)
        if rtype == _PPT_VBAINFO_ATOM and rlen >= 8 and pos + 16 <= len(stream):
            persist_ref, has_macros = struct.unpack_from("<II", stream, pos + 8)
            if persist_ref or has_macros:      # a VBA project is stored (and maybe run)
                return ["VBA macros"]
        pos += 8 if ver_inst & 0xF == 0xF else 8 + rlen
    return []


def _dde_fields(stream: bytes) -> bool:
    for m in _FIELD.finditer(stream):
        if is_dde(m.group(1).replace(b"\x00", b"").decode("latin-1")):
            return True
    return False
