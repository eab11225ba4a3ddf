"""One error tree for URL categories, split by origin: the lists, the policy, the database file."""
from __future__ import annotations


class CategoryError(Exception):
    """Base of every error in `signatures.categories`."""


class ListsError(CategoryError):
    """The lists folder cannot be compiled (missing, unreadable, no category in it)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class PolicyError(CategoryError):
    """The category policy file is malformed."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"policy {where}: {reason}")
        self.where = where
        self.reason = reason


class DatabaseError(CategoryError):
    """A compiled database is refused: truncated, wrong magic or version, checksum mismatch, bad section."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
