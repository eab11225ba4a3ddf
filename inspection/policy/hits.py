"""What the verdict policy needs from an alert body, and its detect-only twin.

An alert's body is a rule hit, a blocked category or a malicious file;
`hit_view` reduces each to a `HitView`. In detect-only mode the same hit is
logged with ``action: allowed`` (`allowed`).
"""
from __future__ import annotations

import dataclasses

from inspection.policy.filehit import FileBlockHit
from inspection.policy.urlcat import CategoryHit
from inspection.policy.verdict import HitKind, HitView


class AllowedHit:
    """A blocking rule's hit in detect-only mode: logged the same, with ``action: allowed``."""

    __slots__ = ("_hit",)

    def __init__(self, hit: object) -> None:
        self._hit = hit

    def __getattr__(self, name: str) -> object:
        return getattr(self._hit, name)

    @property
    def blocked(self) -> bool:
        return False


def hit_view(hit: object, http_request: bool = False) -> HitView:
    """What the policy needs from an alert body: a rule hit, a blocked category, a malicious file."""
    if isinstance(hit, CategoryHit):
        return HitView(hit.blocked, None, HitKind.CATEGORY, http_request, (hit.category.name, *hit.others))
    if isinstance(hit, FileBlockHit):
        return HitView(hit.blocked, None, HitKind.FILE)
    return HitView(hit.blocked, hit.rule.classtype)  # type: ignore[attr-defined]


def allowed(hit: object) -> object:
    """The same hit logged with ``action: allowed`` (detect-only)."""
    if isinstance(hit, (CategoryHit, FileBlockHit)):
        return dataclasses.replace(hit, blocked=False)
    return AllowedHit(hit)
