"""Content disarm: `sanitize(data, filename, limits) -> SanitizeResult`.

One pure call (bytes in, bytes out, no file or network I/O) for the engine
and `utm sanitize`. Office Open XML loses macros, ActiveX, external
relationships and DDE and becomes the macro-free type; PDFs get their
auto-acting names renamed in place; RTF loses objects and DDE fields; CSV
DDE formulas become text; archives are rebuilt member by member; legacy
Office documents with active content, encrypted documents and anything we
cannot disarm safely become a short text notice. Everything else passes
through unchanged with no actions. See docs/sanitising.md.
"""
from __future__ import annotations

from inspection.files.sanitize.core import detect_kind, sanitize
from inspection.files.sanitize.model import (Action, ActionKind, InputKind, LimitKind, SanitizeLimits,
                                             SanitizeResult)

__all__ = ["Action", "ActionKind", "InputKind", "LimitKind", "SanitizeLimits", "SanitizeResult", "detect_kind",
           "sanitize"]
