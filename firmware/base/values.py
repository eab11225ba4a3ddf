"""`value`: a record that is frozen to the type checker and a plain slotted dataclass at run time.

A frozen dataclass sets each field through `object.__setattr__`: one with eight
fields takes 1.3 us to build against 0.5 us, and the live path builds several
per packet (the queued packet, its verdict, the flow's facts, a body chunk)
and, per connection, an HTTP transaction's record (29 fields) more than once
and a file's: together about 6% of the worker's time per packet. The whole
project is type-checked (`./build.sh test` runs mypy), which refuses an
assignment to a field of a `value` as it would to a frozen dataclass's;
`unsafe_hash` keeps them hashable by their fields, as frozen ones are. Use it only where the construction cost
shows; elsewhere `@dataclass(frozen=True, slots=True)` also stops a mutation at
run time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

__all__ = ["value"]

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def value(cls: type[T]) -> type[T]:
    return dataclass(slots=True, unsafe_hash=True)(cls)
