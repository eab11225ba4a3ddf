"""oletools' verdict on bytes (olevba, msodde, rtfobj), for the sanitiser tests."""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import tempfile

from oletools import msodde, olevba, rtfobj

logging.disable(logging.CRITICAL)


def vba(data: bytes, name: str = "f.docm") -> bool:
    vp = olevba.VBA_Parser(name, data=data)
    try:
        return bool(vp.detect_vba_macros()) and vp.type != olevba.TYPE_TEXT
    finally:
        vp.close()


def dde(data: bytes, name: str = "f.docx") -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                return msodde.process_maybe_encrypted(path, field_filter_mode=msodde.FIELD_FILTER_DDE).strip()
        except csv.Error:   # plain prose: msodde's CSV fallback cannot even guess a delimiter
            return ""


def rtf_objects(data: bytes) -> int:
    parser = rtfobj.RtfObjParser(data)
    parser.parse()
    return len(parser.objects)
