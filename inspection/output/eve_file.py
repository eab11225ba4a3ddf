"""EVE ``fileinfo`` object of a finished file, in Suricata's field order.

As Suricata: md5 and sha1 only for a CLOSED file, sha256 whenever no bytes
are missing, ``stored`` always (false: nothing is written to disk yet).
Ours besides: ``mime_type`` next to ``magic``, and ``verdict`` (what content
scanning concluded; "unscanned" until a scanner is configured; ``reasons``
lists every reason when a scanner gave more than the summary), and
``sanitised`` (the stored disarmed copy) when the verdict is ``sanitised``.
"""
from __future__ import annotations

from inspection.files.model import FileRecord


def fileinfo_to_eve(f: FileRecord) -> dict:
    eve: dict = {"filename": f.filename}
    if f.magic is not None:
        eve["magic"] = f.magic
        eve["mime_type"] = f.mime_type
    eve["gaps"] = f.gaps
    eve["state"] = f.state.value
    if f.md5 is not None:
        eve["md5"] = f.md5
    if f.sha1 is not None:
        eve["sha1"] = f.sha1
    if f.sha256 is not None:
        eve["sha256"] = f.sha256
    eve["stored"] = f.stored
    eve["size"] = f.size
    eve["tx_id"] = f.tx_id
    verdict: dict = {"verdict": f.verdict.kind.value, "reason": f.verdict.reason}
    if f.verdict.reasons:
        verdict["reasons"] = list(f.verdict.reasons)
    eve["verdict"] = verdict
    copy = f.verdict.sanitised
    if copy is not None:   # the disarmed copy that was stored in the file's place
        eve["sanitised"] = {"sha256": copy.sha256, "size": copy.size, "filename": copy.filename}
    return eve
