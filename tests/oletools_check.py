"""What oletools (olevba, msodde) find in a file: the outside check for the sanitiser.

olevba reads any plain-text file as VBA *source code* (its "Text" type: it
reports VBA for every text file, the corpus's harmless ``basic/text``
included), so that is recorded as ``text`` and not as a macro finding; a
notice is plain text. Archives (zip, gzip) that are not Office documents are
opened one level and their members checked, since oletools does not unpack them.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import tempfile
import zipfile

from oletools import msodde, olevba

logging.disable(logging.CRITICAL)   # oletools logs loudly on odd files


def findings(data: bytes, name: str = "file") -> set[str]:
    """{'vba', 'xlm', 'dde'} as oletools sees them; members of archives as 'member:kind'."""
    found: set[str] = set()
    if data[:4] == b"PK\x03\x04":
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
            if "[Content_Types].xml" not in zf.namelist():
                for info in zf.infolist():
                    if not info.is_dir() and not info.flag_bits & 1:
                        found |= {f"{info.filename}:{k}" for k in findings(zf.read(info), info.filename)}
                return found
        except zipfile.BadZipFile:
            pass
    if data[:2] == b"\x1f\x8b":
        try:
            return {f"gz:{k}" for k in findings(gzip.decompress(data), name[:-3])}
        except (OSError, EOFError):
            return found
    base = os.path.basename(name) or "file"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, base)
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            vp = olevba.VBA_Parser(path, data=data)
            try:
                if vp.detect_vba_macros():
                    found.add("text" if vp.type == olevba.TYPE_TEXT else "vba")
                if vp.detect_xlm_macros():
                    found.add("xlm")
            finally:
                vp.close()
        except Exception:  # olevba refuses files it cannot open (FileOpenError); not a finding
            pass
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                links = msodde.process_maybe_encrypted(path, field_filter_mode=msodde.FIELD_FILTER_DDE)
            if links and links.strip():
                found.add("dde")
        except Exception:  # msodde raises on files it cannot read as any Office format
            pass
    return found


def flagged(found: set[str]) -> set[str]:
    """The findings that count as active content (not olevba's 'text')."""
    return {f for f in found if f.rpartition(":")[2] in ("vba", "xlm", "dde")}
