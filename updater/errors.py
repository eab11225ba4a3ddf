"""One error tree for the updater, split by origin.

FetchError:   the repository could not be reached (retry later).
RefusedError: what was fetched did not verify (TUF metadata, target hash,
              vendor signature, rollback): `reason` is a stable word for reports.
StageError:   the local store could not be written or read.
"""
from __future__ import annotations


class UpdaterError(Exception):
    """Root of every error raised by updater."""


class FetchError(UpdaterError):
    """No answer from the repository (connection, timeout, 5xx): try again later."""


class RefusedError(UpdaterError):
    """An update that failed verification; nothing of it is used."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class StageError(UpdaterError):
    """The local definitions store cannot be used (disk full, unreadable)."""
