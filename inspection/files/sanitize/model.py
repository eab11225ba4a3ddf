"""Vocabulary of content disarm: what came in, what was done to it, what went out.

A `SanitizeResult` is the whole answer of one `sanitize()` call: the bytes to
forward (the disarmed file, the original when nothing needed doing, or a short
text notice when the file could not be made safe), the kind of input, every
action taken as a typed `Action`, and the limits that applied. Records are
frozen so the engine can log and forward them without copying.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Action", "ActionKind", "InputKind", "LimitKind", "SanitizeLimits", "SanitizeResult"]


class InputKind(enum.Enum):
    """What the input was recognised as (from its bytes, the name only for CSV)."""

    OOXML = "ooxml"            # Office Open XML zip: docx/docm/xlsx/xlsm/pptx/pptm/...
    OLE = "ole"                # legacy Office (doc/xls/ppt) and encrypted Office files
    PDF = "pdf"
    RTF = "rtf"
    OFFICE_XML = "office-xml"  # single-file Word 2003/2007 XML, Excel 2003 XML
    CSV = "csv"
    ZIP = "zip"
    GZIP = "gzip"
    TAR = "tar"
    OTHER = "other"            # passed through unchanged


class ActionKind(enum.Enum):
    REMOVED_VBA_PROJECT = "removed-vba-project"          # vbaProject.bin, vbaData.xml, signatures
    REMOVED_MACRO_SHEET = "removed-macro-sheet"          # xl/macrosheets/*, Excel 4 / international macro sheets
    REMOVED_ACTIVEX = "removed-activex"                  # activeX/* parts
    REMOVED_MACRO_CUSTOMIZATION = "removed-macro-customization"  # Word key bindings / toolbars that call macros
    REMOVED_EXTERNAL_RELATIONSHIP = "removed-external-relationship"  # TargetMode="External", detail = target
    REMOVED_REFERENCE = "removed-reference"              # an element pointing at a removed relationship
    REMOVED_DEFINED_NAME = "removed-defined-name"        # Auto_Open & co., names on removed sheets
    REMOVED_DDE_FIELD = "removed-dde-field"              # Word DDE/DDEAUTO field instruction blanked
    REMOVED_DDE_LINK = "removed-dde-link"                # Excel externalLink with ddeLink
    RENAMED_CONTENT_TYPE = "renamed-content-type"        # macro-enabled main type -> macro-free type
    REMOVED_CONTENT_TYPE = "removed-content-type"        # Override/Default for removed parts
    NEUTRALISED_PDF_NAME = "neutralised-pdf-name"        # /JavaScript -> /javaScript, in place
    REMOVED_RTF_OBJECT = "removed-rtf-object"            # {\object ...} / {\*\objdata ...} groups
    REMOVED_RTF_DDE_FIELD = "removed-rtf-dde-field"      # {\field{\*\fldinst DDEAUTO ...}}
    NEUTRALISED_CSV_FORMULA = "neutralised-csv-formula"  # =cmd|'...'!A0 -> '=cmd|'...'!A0
    REPLACED_WITH_NOTICE = "replaced-with-notice"        # detail = reason


class LimitKind(enum.Enum):
    INPUT_BYTES = "max_input_bytes"
    MEMBERS = "max_members"
    EXPANDED_BYTES = "max_expanded_bytes"
    DEPTH = "max_depth"


@dataclass(frozen=True, slots=True)
class Action:
    """One thing done to the input. `target` names the part, member or offset
    it was done to (archive members as ``outer/inner!part``); `detail` says
    more (the external target, the notice reason, the old->new content type)."""

    kind: ActionKind
    target: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind.value, "target": self.target, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class SanitizeLimits:
    """Bounds on the work one call may do; a file that needs more becomes a notice
    (fail closed) and the limit is named in the result.

    `max_input_bytes`: largest input of a kind we disarm (others pass through at any size).
    `max_members`: zip/tar members (and OOXML parts) per container.
    `max_expanded_bytes`: decompressed bytes over the whole call, nested containers included.
    `max_depth`: containers inside containers."""

    max_input_bytes: int = 64 << 20
    max_members: int = 2000
    max_expanded_bytes: int = 256 << 20
    max_depth: int = 4

    def __post_init__(self) -> None:
        for name in ("max_input_bytes", "max_members", "max_expanded_bytes", "max_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def as_dict(self) -> dict[str, int]:
        return {"max_input_bytes": self.max_input_bytes, "max_members": self.max_members,
                "max_expanded_bytes": self.max_expanded_bytes, "max_depth": self.max_depth}


@dataclass(frozen=True, slots=True)
class SanitizeResult:
    """`data` is what to forward. `notice` is the reason when `data` is a text
    notice instead of the file. `changed` is False exactly when `data` is the
    input unchanged. `suggested_name` is the name to forward under (docm ->
    docx, notices get ``.txt``); None keeps the original name. `limit_hit`
    names the limit that forced a notice, if one did."""

    data: bytes
    kind: InputKind
    actions: tuple[Action, ...] = ()
    changed: bool = False
    notice: str | None = None
    suggested_name: str | None = None
    input_sha256: str = ""
    limits: SanitizeLimits = field(default_factory=SanitizeLimits)
    limit_hit: LimitKind | None = None

    def __post_init__(self) -> None:
        if self.changed != bool(self.actions):
            raise ValueError("a result is changed exactly when it lists actions")
        if self.notice is not None and not any(a.kind is ActionKind.REPLACED_WITH_NOTICE for a in self.actions):
            raise ValueError("a notice result must list the replaced-with-notice action")

    @property
    def is_notice(self) -> bool:
        return self.notice is not None

    def summary(self) -> dict:
        """One JSON-ready dict for logs and the CLI."""
        return {
            "kind": self.kind.value,
            "changed": self.changed,
            "notice": self.notice,
            "suggested_name": self.suggested_name,
            "input_sha256": self.input_sha256,
            "output_bytes": len(self.data),
            "limit_hit": self.limit_hit.value if self.limit_hit else None,
            "limits": self.limits.as_dict(),
            "actions": [a.as_dict() for a in self.actions],
        }
