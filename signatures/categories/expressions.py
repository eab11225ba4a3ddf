"""UT1 ``expressions``: regular expressions over ``host/path?query`` (lowercased, no scheme, no port).

squidGuard compiles them as POSIX extended regexes, case-insensitive. Here they
go into one Hyperscan block database (one scan per URL, whatever the number of
expressions); an expression Hyperscan will not compile is skipped and counted,
never fatal. Only URL lookups (HTTP) run them: a host alone is not a URL.
"""
from __future__ import annotations

import hyperscan

_FLAGS = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY


def check_expression(pattern: str) -> str | None:
    """None when `pattern` compiles, else why not (one line)."""
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        db.compile(expressions=[pattern.encode("utf-8", "surrogateescape")], ids=[0], flags=[_FLAGS])
    except hyperscan.error as e:
        return str(e).splitlines()[0] if str(e) else "does not compile"
    return None


class ExpressionMatcher:
    """All expressions in one database; `match(url)` -> the category indexes whose expression matched."""

    __slots__ = ("_db", "_scratch", "_cats", "_hits", "_on_match")

    def __init__(self, expressions: list[tuple[int, str]]) -> None:
        self._cats = [c for c, _ in expressions]
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._db.compile(expressions=[p.encode("utf-8", "surrogateescape") for _, p in expressions],
                         ids=list(range(len(expressions))), flags=[_FLAGS] * len(expressions))
        self._scratch = hyperscan.Scratch(self._db)
        hits: set[int] = set()
        cats = self._cats

        def on_match(eid: int, start: int, end: int, flags: int, ctx: object) -> None:
            hits.add(cats[eid])

        self._hits = hits
        self._on_match = on_match      # made once: a closure per scan costs as much as a dict probe

    def match(self, url: str) -> frozenset[int]:
        hits = self._hits
        self._db.scan(url.encode("utf-8", "surrogateescape"), match_event_handler=self._on_match,
                      scratch=self._scratch)
        if not hits:
            return _NOTHING
        found = frozenset(hits)
        hits.clear()
        return found


_NOTHING: frozenset[int] = frozenset()
