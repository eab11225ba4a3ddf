"""Rule text -> `Rule`, and rule files -> `LoadResult`.

`parse_rule` raises a `RuleError` naming the keyword at fault. `load_rules`
never raises for rule content: each rule that cannot be honoured becomes a
`SkippedRule` (file, line, sid, keyword, reason), because one odd rule in a
30,000-rule feed must not cost the other 29,999. Only a file that cannot be
read at all raises (`RuleFileError`).

`RuleLoader` is the sans-IO core (feed it lines, ask for the result);
`load_rules` is the thin driver that reads files.
"""
from __future__ import annotations

import enum
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from signatures.builder import OptionBuilder
from signatures.classification import ClassificationTable, default_classifications
from signatures.errors import DuplicateRule, MalformedRule, RuleError, RuleFileError, UnsupportedRule
from signatures.lexer import split_rule
from signatures.model import Action, Protocol, Rule
from signatures.netspec import SpecError, Variables

_SID = re.compile(r"(?:^|[;(\s])sid\s*:\s*(\d{1,10})\s*;")
_DEFAULT = object()
# Shared so that its memo of resolved header specs serves every parse that uses the defaults.
_DEFAULT_VARIABLES = Variables.default()


def parse_rule(text: str, *, variables: Variables | None = None,
               classifications: ClassificationTable | None | object = _DEFAULT, require_msg: bool = True) -> Rule:
    """Parse one rule (one logical line, no continuation backslashes).

    `variables` defaults to Suricata's; `classifications` defaults to the shipped
    table, and None accepts any classtype (priority 3 unless given). Suricata
    itself accepts rules without ``msg`` (suricata-verify has many);
    ``require_msg=False`` loads them with an empty message.
    """
    variables = variables or _DEFAULT_VARIABLES
    table = default_classifications() if classifications is _DEFAULT else classifications
    if not isinstance(text, str):
        raise MalformedRule("rule", "rule text must be str")
    header, options = split_rule(text.strip())
    action_s, proto_s, src_s, sport_s, dir_s, dst_s, dport_s = header
    try:
        action = Action(action_s.lower())
    except ValueError:
        raise MalformedRule("action", f"unknown action {action_s[:20]!r}") from None
    try:
        protocol = Protocol(proto_s.lower())
    except ValueError:
        raise UnsupportedRule("protocol", f"unknown protocol {proto_s[:20]!r}") from None
    if dir_s not in ("->", "<>", "=>"):
        raise MalformedRule("direction", f"expected ->, <> or =>, got {dir_s[:10]!r}")
    src, dst = _address(variables, src_s), _address(variables, dst_s)
    sport, dport = _port(variables, sport_s), _port(variables, dport_s)
    builder = OptionBuilder(protocol, table, require_msg)  # type: ignore[arg-type]
    for name, value in options:
        builder.apply(name, value)
    return builder.finish(action, src, sport, dst, dport, bidirectional=dir_s == "<>", transactional=dir_s == "=>")


def _address(variables: Variables, text: str):
    try:
        return variables.address(text)
    except SpecError as e:
        raise MalformedRule("variable" if "variable" in str(e) else "address", f"{text[:60]}: {e}") from None


def _port(variables: Variables, text: str):
    try:
        return variables.port(text)
    except SpecError as e:
        raise MalformedRule("variable" if "variable" in str(e) else "port", f"{text[:60]}: {e}") from None


class SkipKind(enum.Enum):
    MALFORMED = "malformed"
    UNSUPPORTED = "unsupported"
    DUPLICATE = "duplicate"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class SkippedRule:
    """An active rule that did not load, where it is, and why."""

    file: str
    line: int
    sid: int | None
    keyword: str
    reason: str
    kind: SkipKind


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Loaded rules in file order and the active rules that were skipped.

    Commented-out rules (``# alert ...``) are neither: they are not active.
    """

    rules: tuple[Rule, ...]
    skipped: tuple[SkippedRule, ...]

    @property
    def active(self) -> int:
        return len(self.rules) + len(self.skipped)

    @property
    def loaded_ratio(self) -> float:
        return len(self.rules) / self.active if self.active else 1.0

    def skipped_by_keyword(self) -> list[tuple[str, int, SkippedRule]]:
        """(keyword, count, first example) for each keyword, most frequent first."""
        counts = Counter(s.keyword for s in self.skipped)
        first: dict[str, SkippedRule] = {}
        for s in self.skipped:
            first.setdefault(s.keyword, s)
        return [(k, n, first[k]) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def iter_rule_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each active rule: comments and blanks dropped,
    lines ending in a backslash joined with the next."""
    pending: list[str] = []
    start = 0
    for no, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not pending:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            start = no
        body = line.rstrip()
        if body.endswith("\\"):
            pending.append(body[:-1])
            continue
        pending.append(line)
        yield start, "".join(pending).strip()
        pending = []
    if pending:
        yield start, "".join(pending).strip()


class RuleLoader:
    """Accumulates rules from several sources; duplicates (same gid:sid) are detected across all."""

    def __init__(self, *, variables: Variables | None = None,
                 classifications: ClassificationTable | None | object = _DEFAULT, require_msg: bool = True) -> None:
        self.require_msg = require_msg
        self.variables = variables or _DEFAULT_VARIABLES
        self.classifications = default_classifications() if classifications is _DEFAULT else classifications
        self._rules: list[Rule] = []
        self._skipped: list[SkippedRule] = []
        self._seen: dict[tuple[int, int], tuple[str, int]] = {}

    def feed_lines(self, lines: Iterable[str], source: str = "<lines>") -> None:
        for line_no, text in iter_rule_lines(lines):
            self.feed_rule(text, source, line_no)

    def feed_rule(self, text: str, source: str = "<rule>", line_no: int = 1) -> Rule | None:
        try:
            rule = parse_rule(text, variables=self.variables, classifications=self.classifications,
                              require_msg=self.require_msg)
            where = self._seen.get(rule.key)
            if where is not None:
                raise DuplicateRule("sid", f"duplicate of gid {rule.gid} sid {rule.sid} at {where[0]}:{where[1]}")
        except RuleError as e:
            self._skip(text, source, line_no, e.keyword, e.reason, _kind(e))
            return None
        except Exception as e:  # noqa: BLE001 - a rule file never crashes the loader
            self._skip(text, source, line_no, "internal", f"{type(e).__name__}: {e}", SkipKind.INTERNAL)
            return None
        self._seen[rule.key] = (source, line_no)
        self._rules.append(rule)
        return rule

    def _skip(self, text: str, source: str, line_no: int, keyword: str, reason: str, kind: SkipKind) -> None:
        m = _SID.search(text)
        self._skipped.append(SkippedRule(source, line_no, int(m.group(1)) if m else None, keyword, reason, kind))

    def result(self) -> LoadResult:
        return LoadResult(tuple(self._rules), tuple(self._skipped))


def _kind(e: RuleError) -> SkipKind:
    if isinstance(e, DuplicateRule):
        return SkipKind.DUPLICATE
    if isinstance(e, UnsupportedRule):
        return SkipKind.UNSUPPORTED
    return SkipKind.MALFORMED


def read_rule_file(path: str | os.PathLike) -> list[str]:
    """The lines of a rule file; bytes that are not UTF-8 survive (surrogateescape)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise RuleFileError(str(p), e.strerror or str(e)) from None
    return data.decode("utf-8", "surrogateescape").split("\n")


def load_rules(paths: Iterable[str | os.PathLike] = (), *, lines: Iterable[str] | None = None,
               source: str = "<lines>", variables: Variables | None = None,
               classifications: ClassificationTable | None | object = _DEFAULT,
               require_msg: bool = True) -> LoadResult:
    """Load rule files in order (and/or in-memory `lines`, named `source` in skip records).

    Raises `RuleFileError` when a file cannot be read; never for what it contains.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    loader = RuleLoader(variables=variables, classifications=classifications, require_msg=require_msg)
    for path in paths:
        loader.feed_lines(read_rule_file(path), str(path))
    if lines is not None:
        loader.feed_lines(lines, source)
    return loader.result()
