"""Categories as the rest of the system sees them: a name, what to do, how bad, how to say it."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class CategoryAction(enum.Enum):
    """`block`: an alert with stars (and a block verdict inline); `record`: a field on the event."""

    BLOCK = "block"
    RECORD = "record"


@dataclass(frozen=True, slots=True)
class Category:
    """One list's category. `rank` orders results: blocked ones first, more stars first, then by name."""

    name: str
    action: CategoryAction
    stars: int = 0
    label_en: str = ""
    label_ja: str = ""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.action, CategoryAction):
            raise ValueError("a category needs a name and an action")
        if not 0 <= self.stars <= 3:
            raise ValueError(f"category {self.name}: stars must be 0-3")

    @property
    def blocked(self) -> bool:
        return self.action is CategoryAction.BLOCK

    @property
    def rank(self) -> tuple[int, int, str]:
        return (0 if self.blocked else 1, -self.stars, self.name)

    def to_json(self) -> dict:
        return {"name": self.name, "action": self.action.value, "stars": self.stars,
                "label_en": self.label_en, "label_ja": self.label_ja}

    @classmethod
    def from_json(cls, d: dict) -> "Category":
        return cls(name=str(d["name"]), action=CategoryAction(d["action"]), stars=int(d.get("stars", 0)),
                   label_en=str(d.get("label_en", "")), label_ja=str(d.get("label_ja", "")))
