"""The entry point: recognise the input, run its disarmer, turn every refusal
into a notice. Hostile input never raises out of here."""
from __future__ import annotations

import hashlib
import io
import zipfile
from typing import Callable

from inspection.files.sanitize.archive import sanitize_gzip, sanitize_tar, sanitize_zip
from inspection.files.sanitize.common import Budget, Context, LimitExceeded, Outcome, Unsafe, notice_text
from inspection.files.sanitize.model import Action, ActionKind, InputKind, LimitKind, SanitizeLimits, SanitizeResult
from inspection.files.sanitize.ole import OLE_MAGIC, sanitize_ole
from inspection.files.sanitize.ooxml import CONTENT_TYPES, sanitize_ooxml
from inspection.files.sanitize.pdf import sanitize_pdf
from inspection.files.sanitize.rtf import sanitize_rtf
from inspection.files.sanitize.textformats import CSV_EXTENSIONS, is_office_xml, sanitize_csv, sanitize_office_xml

__all__ = ["detect_kind", "sanitize"]

_Handler = Callable[[bytes, str, Context], Outcome]
HANDLERS: dict[InputKind, _Handler] = {
    InputKind.OOXML: sanitize_ooxml,
    InputKind.OLE: sanitize_ole,
    InputKind.PDF: sanitize_pdf,
    InputKind.RTF: sanitize_rtf,
    InputKind.OFFICE_XML: sanitize_office_xml,
    InputKind.CSV: sanitize_csv,
    InputKind.ZIP: sanitize_zip,
    InputKind.GZIP: sanitize_gzip,
    InputKind.TAR: sanitize_tar,
}


def detect_kind(data: bytes, filename: str = "") -> InputKind:
    """From the bytes (Office reads by content, not by name); only CSV goes by name."""
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except Exception:  # a damaged zip is still a zip: the zip disarmer refuses it
            return InputKind.ZIP
        return InputKind.OOXML if CONTENT_TYPES.lower() in {n.lower() for n in names} else InputKind.ZIP
    if data[:8] == OLE_MAGIC:
        return InputKind.OLE
    if b"%PDF-" in data[:1024]:
        return InputKind.PDF
    if data[:4] == b"{\\rt":
        return InputKind.RTF
    if data[:2] == b"\x1f\x8b":
        return InputKind.GZIP
    if data[257:262] == b"ustar":
        return InputKind.TAR
    if is_office_xml(data):
        return InputKind.OFFICE_XML
    if filename.lower().endswith(CSV_EXTENSIONS):
        return InputKind.CSV
    return InputKind.OTHER


def sanitize(data: bytes, filename: str = "", limits: SanitizeLimits | None = None) -> SanitizeResult:
    """Disarm one file. Pure: no I/O, no clock; never raises on any input bytes."""
    limits = limits or SanitizeLimits()
    ctx = Context(limits, Budget(limits.max_expanded_bytes), 0, _recurse)
    return _run(bytes(data), filename, ctx)


def _recurse(data: bytes, name: str, ctx: Context) -> SanitizeResult:
    return _run(data, name, Context(ctx.limits, ctx.budget, ctx.depth + 1, ctx.recurse))


def _run(data: bytes, name: str, ctx: Context) -> SanitizeResult:
    sha = hashlib.sha256(data).hexdigest()
    kind = detect_kind(data, name)
    if kind is InputKind.OTHER:
        return SanitizeResult(data, kind, input_sha256=sha, limits=ctx.limits)
    if len(data) > ctx.limits.max_input_bytes:
        e = LimitExceeded(LimitKind.INPUT_BYTES, f"{len(data)} bytes")
        return _notice(data, name, kind, sha, ctx, e.reason, e.limit)
    try:
        outcome = HANDLERS[kind](data, name, ctx)
    except LimitExceeded as e:
        return _notice(data, name, kind, sha, ctx, e.reason, e.limit)
    except Unsafe as e:
        return _notice(data, name, kind, sha, ctx, e.reason)
    except RecursionError:
        return _notice(data, name, kind, sha, ctx, "nested too deeply to process")
    except Exception as e:  # fail closed: a bug or an unforeseen input must not forward the original
        return _notice(data, name, kind, sha, ctx, f"could not be processed ({type(e).__name__})")
    if not outcome.actions:
        return SanitizeResult(data, kind, input_sha256=sha, limits=ctx.limits)
    return SanitizeResult(outcome.data, kind, outcome.actions, True, None, outcome.suggested_name, sha, ctx.limits)


def _notice(data: bytes, name: str, kind: InputKind, sha: str, ctx: Context, reason: str,
            limit: LimitKind | None = None) -> SanitizeResult:
    base = name.rpartition("/")[2] or "file"
    text = notice_text(name=base, sha256=sha, reason=reason, removed=f"the whole {kind.value} file")
    action = Action(ActionKind.REPLACED_WITH_NOTICE, base, reason)
    return SanitizeResult(text, kind, (action,), True, reason, f"{base}.removed.txt", sha, ctx.limits, limit)
