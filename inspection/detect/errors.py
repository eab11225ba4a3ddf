"""The detect sub-package's errors, under the inspection tree.

Split by when they happen: a rule item this engine cannot evaluate is found
while a rule is prepared (`UnsupportedPattern`, `UnsupportedItem`; the
`Detector` turns them into a skip record, the rule never runs), a prefilter
database that cannot be built or loaded is an operator/bundle problem
(`PrefilterError`). Running out of work budget on hostile data is not an error
at all: it is a result, counted and reported (see `verify.MatchContext`).
"""
from __future__ import annotations

from inspection.errors import InspectionError


class DetectError(InspectionError):
    """Base of every error raised by `inspection.detect`."""


class UnsupportedRule(DetectError):
    """A rule uses something the verifier cannot evaluate with Suricata's meaning.

    `keyword` is the rule keyword at fault (``pcre``, ``byte_test``...), so the
    skip records can be grouped the way the loader groups its own.
    """

    def __init__(self, keyword: str, reason: str) -> None:
        super().__init__(f"{keyword}: {reason}")
        self.keyword = keyword
        self.reason = reason


class UnsupportedPattern(UnsupportedRule):
    """A PCRE construct Python's `re` cannot express (recursion, \\G, \\p{..}, verbs...).

    `construct` names it; `pattern` is the expression as written in the rule.
    """

    def __init__(self, pattern: str, construct: str) -> None:
        super().__init__("pcre", f"{construct} in /{pattern[:80]}/")
        self.pattern = pattern
        self.construct = construct


class UnsupportedItem(UnsupportedRule):
    """A payload item form that is not implemented (``dce`` byte options, ...)."""


class PrefilterError(DetectError):
    """A prefilter database cannot be compiled or loaded; `key` names the buffer."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class BundleError(DetectError):
    """A compiled rule bundle cannot be used; `source` names it, `reason` says what is wrong.

    Split by what the operator should do: `BundleFormatError` (not a bundle,
    or cut short: copy it again), `BundleVersionError` (made by another engine,
    Python or Hyperscan: compile it again with this one), `BundleIntegrityError`
    (the bytes changed after it was written: corrupted).
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class BundleFormatError(BundleError):
    """Wrong magic, unreadable or truncated header, payload shorter or longer than declared."""


class BundleVersionError(BundleError):
    """Made by another bundle format, engine, Python or Hyperscan version.

    `component` names which (``engine``...), `made` what the bundle says, `running` what this is.
    """

    def __init__(self, source: str, component: str, made: str, running: str) -> None:
        super().__init__(source, f"made by {component} {made}, this is {running}; "
                                 "compile it again with `utm rules compile`")
        self.component = component
        self.made = made
        self.running = running


class BundleIntegrityError(BundleError):
    """A hash does not match, or the content does not decode into what the header promises."""
