"""The signatures package's error tree.

Split by origin: a single rule that cannot be honoured (`RuleError`, which the
loader turns into a skip record, never a crash), an operator input such as a
``--var`` or a classification file (`VariableError`, `ClassificationError`),
and a rule file that cannot be read at all (`RuleFileError`, the only error
`load_rules` lets out).
"""
from __future__ import annotations


class SignatureError(Exception):
    """Base of every error raised by `signatures`."""


class RuleError(SignatureError):
    """A rule cannot be loaded; `keyword` names the option (or header part) at fault.

    The loader groups skips by `keyword`, so it is the option name as written in
    rules (``pcre``, ``byte_math``) or a header part (``protocol``, ``address``).
    """

    def __init__(self, keyword: str, reason: str) -> None:
        super().__init__(f"{keyword}: {reason}")
        self.keyword = keyword
        self.reason = reason


class MalformedRule(RuleError):
    """The rule is wrong: Suricata would refuse it too (bad syntax, impossible constraints)."""


class UnsupportedRule(RuleError):
    """The rule may be valid, but uses something this engine cannot honour yet."""


class DuplicateRule(RuleError):
    """A rule with the same gid:sid was already loaded; the later one is skipped."""


class VariableError(SignatureError):
    """An address or port variable (``HOME_NET``, ``HTTP_PORTS``) has a bad name or value."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class ClassificationError(SignatureError):
    """A classification.config line is malformed; `line` is 1-based."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


class RuleFileError(SignatureError):
    """A rule file cannot be read (missing, unreadable, a directory)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
