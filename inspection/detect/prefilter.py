"""The Hyperscan prefilter: one literal per rule, one block-mode database per inspected buffer.

Verifying every rule on every buffer would cost tens of thousands of Python
calls per packet; like Suricata's MPM stage, each rule contributes one
literal (its fast pattern) and a rule is verified only when its literal
occurs in the buffer its block inspects. A rule whose every match needs that
content cannot match without it, so the candidates are a superset of the
matches. Rules without a usable literal (only negated contents, only pcre,
only byte_* or size checks) are `always` candidates.

Fast pattern choice, as Suricata's ``RetrieveFPForSig``: the content marked
``fast_pattern`` (with its ``offset,length`` chop); otherwise among the
non-negated contents those of application-layer buffers before payload/stream
ones, then the longest, then the "strongest" (Suricata's ``PatternStrength``:
rare bytes score more), then the first. Contents in the ``base64_data`` block
or after a ``base64_decode`` (which Suricata never reaches) are never chosen.

The databases are keyed by (buffer, transforms): a ``dotprefix`` block looks
for its literal in the transformed buffer. Patterns are compiled as escaped
regular expressions (``\\xHH``), not with Hyperscan's literal API, because the
Python binding passes expressions as C strings and would cut a pattern at its
first NUL byte. Each pattern id maps to every rule that shares the literal.

`Prefilter.to_image`/`from_image` split a compiled prefilter into plain parts
(Hyperscan's serialized databases via ``dumpb``) so a signed bundle can carry
it and a worker can load it in milliseconds instead of recompiling.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import hyperscan

from signatures.buffers import Buffer
from signatures.matches import Base64Decode, BufferBlock, ContentMatch, Transform
from signatures.model import Rule

from inspection.detect.errors import PrefilterError
from inspection.detect.transforms import compile_transforms, run_compiled

BlockKey = tuple[Buffer, tuple[Transform, ...]]
_PACKET_BUFFERS = frozenset({Buffer.PAYLOAD, Buffer.STREAM})
_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_PRINT = frozenset(range(0x20, 0x7F))


@dataclass(frozen=True, slots=True)
class FastPatternChoice:
    """The literal a rule contributes to the prefilter, and where it is looked for."""

    key: BlockKey
    pattern: bytes
    nocase: bool
    explicit: bool      # chosen by the rule writer (fast_pattern), not by length


@dataclass(frozen=True, slots=True)
class PrefilterDatabase:
    """One serialized database: `patterns[i]` lists the rules whose literal is pattern id i."""

    key: BlockKey
    blob: bytes
    patterns: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class PrefilterImage:
    """A compiled prefilter in plain parts; `rules_digest` ties it to the exact ruleset it was built for."""

    rules_digest: str
    rule_count: int
    databases: tuple[PrefilterDatabase, ...]
    always: tuple[int, ...]


def pattern_strength(pattern: bytes) -> int:
    """Suricata's PatternStrength: letters 3, other printable or 00/01/FF 4, the rest 6; repeats 1."""
    seen: set[int] = set()
    score = 0
    for b in pattern:
        if b in seen:
            score += 1
            continue
        seen.add(b)
        if b in _ALNUM and not 0x30 <= b <= 0x39:
            score += 3
        elif b in _PRINT or b in (0x00, 0x01, 0xFF):
            score += 4
        else:
            score += 6
    return score


def _reachable_contents(block: BufferBlock) -> Iterable[ContentMatch]:
    for m in block.matches:
        if isinstance(m, Base64Decode):
            return
        if isinstance(m, ContentMatch):
            yield m


def choose_fast_pattern(rule: Rule) -> FastPatternChoice | None:
    """The rule's prefilter literal, or None: the rule must always be verified.

    The rule writer's ``fast_pattern`` wins, except when it sits in the packet
    payload of a rule that also has an application-buffer content: such a rule
    is only ever inspected on transactions, and a transaction's payload scan
    would otherwise run the whole packet-rule database again (any non-negated
    content is a correct prefilter)."""
    best: tuple[tuple[int, int, int, int], FastPatternChoice] | None = None
    explicit: FastPatternChoice | None = None
    order = 0
    for block in rule.buffers:
        if block.buffer is Buffer.BASE64_DATA:
            continue
        key = (block.buffer, block.transforms)
        for c in _reachable_contents(block):
            order += 1
            if c.negated:
                continue
            fp = c.fast_pattern
            if fp is not None and explicit is None:
                off, length = fp.offset, fp.length   # a chop has both or neither (FastPattern checks it)
                pattern = c.pattern if off is None or length is None else c.pattern[off:off + length]
                explicit = FastPatternChoice(key, pattern, c.nocase, True)
            rank = (0 if block.buffer in _PACKET_BUFFERS else 1, len(c.pattern), pattern_strength(c.pattern),
                    -order)
            if best is None or rank > best[0]:
                best = (rank, FastPatternChoice(key, c.pattern, c.nocase, False))
    if explicit is not None and (explicit.key[0] not in _PACKET_BUFFERS or best is None
                                 or best[1].key[0] in _PACKET_BUFFERS):
        return explicit
    return None if best is None else best[1]


def rules_digest(rules: Sequence[Rule]) -> str:
    h = hashlib.sha256()
    for r in rules:
        h.update(f"{r.gid}:{r.sid}:{r.rev};".encode())
    return h.hexdigest()


def _expression(pattern: bytes) -> bytes:
    return b"".join(bytes((b,)) if b in _ALNUM else b"\\x%02x" % b for b in pattern)


def compile_database(patterns: Sequence[tuple[bytes, bool]], key: str = "?") -> hyperscan.Database:
    """A block-mode database reporting pattern id i (once per scan) for literal `patterns[i]`."""
    flags = [hyperscan.HS_FLAG_SINGLEMATCH | (hyperscan.HS_FLAG_CASELESS if nocase else 0) for _, nocase in patterns]
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        db.compile(expressions=[_expression(p) for p, _ in patterns], ids=list(range(len(patterns))),
                   elements=len(patterns), flags=flags)
    except hyperscan.error as e:
        raise PrefilterError(key, f"hyperscan compile failed: {e}") from None
    db.scratch = hyperscan.Scratch(db)
    return db


def dump_database(db: hyperscan.Database) -> bytes:
    """Hyperscan's serialized form of a database (portable across processes of the same CPU family)."""
    return hyperscan.dumpb(db)


def load_database(blob: bytes, key: str = "?") -> hyperscan.Database:
    """A database from `dump_database`, with its scratch allocated (the binding does not do it on load)."""
    try:
        db = hyperscan.loadb(bytes(blob), hyperscan.HS_MODE_BLOCK)
        db.scratch = hyperscan.Scratch(db)
    except hyperscan.error as e:
        raise PrefilterError(key, f"cannot load database: {e}") from None
    return db


def _collect(pid: int, start: int, end: int, flags: int, hits: Any) -> None:
    """Hyperscan's match callback: one module-level function, not a closure made per scan.

    `hits` is the scan's `context`, the list[int] `Prefilter.scan` passes; the binding types it `object`."""
    hits.append(pid)


def _key_name(key: BlockKey) -> str:
    buf, transforms = key
    return buf.value + "".join("|" + t.kind.value for t in transforms)


class _Table:
    """One buffer key: its database, the rules per pattern id, and the transforms to apply."""

    __slots__ = ("key", "db", "patterns", "transforms")

    def __init__(self, key: BlockKey, db: hyperscan.Database, patterns: tuple[tuple[int, ...], ...]) -> None:
        self.key = key
        self.db = db
        self.patterns = patterns
        self.transforms: tuple[Callable[[bytes], bytes], ...] = compile_transforms(key[1])


class Prefilter:
    """Per-buffer Hyperscan databases of fast patterns, and the rules to verify regardless.

    Rule numbers are positions in the `rules` sequence given at construction.
    Not thread-safe: each database owns one scratch; use one prefilter per
    worker process (which is how the appliance scales anyway).
    """

    def __init__(self, rules: Sequence[Rule], *, skip: Iterable[int] = (), _image: PrefilterImage | None = None):
        started = time.perf_counter()
        self.rule_count = len(rules)
        self.digest = rules_digest(rules)
        self._rules = rules
        self._choices: tuple[FastPatternChoice | None, ...] | None = None
        if _image is not None:
            self._load(_image)
        else:
            self._build(frozenset(skip))
        self._index()
        self.compile_seconds = time.perf_counter() - started

    @classmethod
    def from_image(cls, image: PrefilterImage, rules: Sequence[Rule]) -> "Prefilter":
        """Rebuild from `to_image`; raises `PrefilterError` if `rules` is not the ruleset it was built for."""
        if image.rule_count != len(rules) or image.rules_digest != rules_digest(rules):
            raise PrefilterError("image", "built for a different ruleset (gid:sid:rev sequence differs)")
        return cls(rules, _image=image)

    @property
    def choices(self) -> tuple[FastPatternChoice | None, ...]:
        """Each rule's fast pattern (None: always verified), computed on first use after a load."""
        if self._choices is None:
            self._choices = tuple(choose_fast_pattern(r) for r in self._rules)
        return self._choices

    def _build(self, skip: frozenset[int]) -> None:
        groups: dict[BlockKey, dict[tuple[bytes, bool], list[int]]] = {}
        always = []
        for i, choice in enumerate(self.choices):
            if i in skip:
                continue
            if choice is None:
                always.append(i)
                continue
            groups.setdefault(choice.key, {}).setdefault((choice.pattern, choice.nocase), []).append(i)
        self.always: frozenset[int] = frozenset(always)
        self._tables: dict[BlockKey, _Table] = {}
        for key, pats in groups.items():
            literals = list(pats)
            db = compile_database(literals, _key_name(key))
            self._tables[key] = _Table(key, db, tuple(tuple(pats[p]) for p in literals))

    def _load(self, image: PrefilterImage) -> None:
        self.always = frozenset(image.always)
        self._tables = {d.key: _Table(d.key, load_database(d.blob, _key_name(d.key)), d.patterns)
                        for d in image.databases}

    def to_image(self) -> PrefilterImage:
        dbs = tuple(PrefilterDatabase(t.key, dump_database(t.db), t.patterns) for t in self._tables.values())
        return PrefilterImage(self.digest, self.rule_count, dbs, tuple(sorted(self.always)))

    def rules_by_table(self) -> Iterator[tuple[BlockKey, set[int]]]:
        """Each table's key with the rules that have their fast pattern in it."""
        for key, t in self._tables.items():
            yield key, {i for ids in t.patterns for i in ids}

    @property
    def keys(self) -> tuple[BlockKey, ...]:
        return tuple(self._tables)

    @property
    def pattern_count(self) -> int:
        return sum(len(t.patterns) for t in self._tables.values())

    @property
    def database_bytes(self) -> int:
        return sum(t.db.size() for t in self._tables.values())

    def transform(self, key: BlockKey, raw: bytes) -> bytes:
        t = self._tables.get(key)
        return run_compiled(raw, t.transforms) if t is not None and t.transforms else raw

    def scan(self, key: BlockKey, data: bytes) -> set[int]:
        """Rules whose literal for `key` occurs in `data` (the buffer after the key's transforms)."""
        t = self._tables.get(key)
        if t is None or not data:
            return set()
        hits: list[int] = []
        t.db.scan(data, match_event_handler=_collect, context=hits)
        out: set[int] = set()
        patterns = t.patterns
        for pid in hits:
            out.update(patterns[pid])
        return out

    def candidates(self, buffer: Buffer, data: bytes, transforms: tuple[Transform, ...] = ()) -> set[int]:
        """Rules whose fast pattern is in this raw buffer (transforms applied here). `always` is not included."""
        key = (buffer, transforms)
        return self.scan(key, self.transform(key, data))

    def candidates_for(self, buffers: Mapping[Buffer, bytes],
                       view: Callable[[BlockKey], bytes | None] | None = None, *, always: bool = True,
                       keys: "frozenset[BlockKey] | None" = None) -> set[int]:
        """Every rule to verify for a set of raw buffers: the `always` rules (unless
        `always` is False) and every literal hit (only in the tables `keys` names, if given)."""
        out = set(self.always) if always else set()
        by_buffer = self._by_buffer
        for buf, raw in buffers.items():
            tables = by_buffer.get(buf)
            if not tables or not raw:
                continue
            for table in tables:
                if keys is not None and table.key not in keys:
                    continue
                if view is not None:
                    data = view(table.key)
                else:
                    data = run_compiled(raw, table.transforms) if table.transforms else raw
                if data:
                    out |= self.scan(table.key, data)
        return out

    def _index(self) -> None:
        by_buffer: dict[Buffer, list[_Table]] = {}
        for t in self._tables.values():
            by_buffer.setdefault(t.key[0], []).append(t)
        self._by_buffer = {b: tuple(ts) for b, ts in by_buffer.items()}
