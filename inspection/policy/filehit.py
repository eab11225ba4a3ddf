"""The alert for a file judged malicious on the live path (its transfer is stopped).

Offline, a malicious file is a `fileinfo` verdict only. Live, the packet that
would complete the file is held until the verdict and then dropped, and this
alert says so (`action: blocked`, or `allowed` in detect-only for the 'file'
class), next to the file's own `fileinfo` event.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

from inspection.files.model import FileRecord
from inspection.model import Direction

FILE_GID = 3                    # not a rule's gid: alerts from the file verdict
FILE_SID_BASE = 5_000_000       # + a stable number per verdict reason


@dataclass(frozen=True, slots=True)
class FileBlockHit:
    """A malicious file on a live flow; the EVE writer asks it for its alert object."""

    file: FileRecord
    direction: Direction
    record: object | None = None     # the transaction that carried it (HTTP), for the alert's context
    blocked: bool = True

    def alert_fields(self) -> dict:
        f = self.file
        reason = f.verdict.reason
        return {
            "action": "blocked" if self.blocked else "allowed",
            "gid": FILE_GID, "signature_id": FILE_SID_BASE + zlib.crc32(reason.encode("utf-8")) % 1_000_000,
            "rev": 1, "signature": f"Malicious file {f.filename or '?'}: {reason}",
            "category": "malware", "severity": 1, "stars": 3,
            "metadata": {"file_verdict": list(f.verdict.reasons or (reason,)),
                         **({"sha256": [f.sha256]} if f.sha256 else {})},
        }
