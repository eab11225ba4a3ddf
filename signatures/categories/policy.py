"""The category policy (policy.toml next to this module): block or record, stars, labels, aliases."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from signatures.categories.errors import PolicyError
from signatures.categories.model import Category, CategoryAction

DEFAULT_POLICY = Path(__file__).with_name("policy.toml")


@dataclass(frozen=True, slots=True)
class Policy:
    categories: Mapping[str, Category] = field(default_factory=lambda: MappingProxyType({}))
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def category(self, name: str) -> tuple[Category, bool]:
        """The policy for `name` (an alias resolves to its target); unknown names are `record`, flagged False."""
        known = self.categories.get(self.aliases.get(name, name))
        if known is not None:
            return Category(name, known.action, known.stars, known.label_en, known.label_ja), True
        return Category(name, CategoryAction.RECORD, 0, name.replace("_", " "), ""), False


def load_policy(path: Path | None = None) -> Policy:
    p = path or DEFAULT_POLICY
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise PolicyError(str(p), e.strerror or str(e)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PolicyError(str(p), str(e)) from None
    return parse_policy(data, str(p))


def parse_policy(data: dict, where: str = "policy") -> Policy:
    cats: dict[str, Category] = {}
    table = data.get("categories", {})
    if not isinstance(table, dict):
        raise PolicyError(where, "[categories] must be a table")
    for name, entry in table.items():
        if not isinstance(entry, dict):
            raise PolicyError(f"{where} [categories.{name}]", "must be a table")
        try:
            action = CategoryAction(entry.get("action", "record"))
            stars = entry.get("stars", 0)
            if not isinstance(stars, int):
                raise ValueError("stars must be a whole number")
            cats[name] = Category(name, action, stars, str(entry.get("en", "")), str(entry.get("ja", "")))
        except ValueError as e:
            raise PolicyError(f"{where} [categories.{name}]", str(e)) from None
    aliases = data.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise PolicyError(where, "[aliases] must map names to category names")
    return Policy(MappingProxyType(cats), MappingProxyType(dict(aliases)))
