"""The inspection package's error tree.

Hostile traffic never raises (it becomes an `Anomaly`); these errors are for
the operator's inputs: capture files, configuration, limits that cannot be met.
"""
from __future__ import annotations


class InspectionError(Exception):
    """Base of every error raised by `inspection`."""


class ConfigError(InspectionError):
    """A configuration value is invalid; `key` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


class CaptureError(InspectionError):
    """A capture file cannot be opened or is corrupt at `offset`."""

    def __init__(self, path: str, offset: int, reason: str, *, missing: bool = False) -> None:
        super().__init__(f"{path}: offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason
        self.missing = missing
