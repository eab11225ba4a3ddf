"""Payload match items, in rule order, grouped by the buffer they inspect.

This is what the Hyperscan compiler and the verifier consume: for each buffer
a `BufferBlock` with its transforms and the ordered items, where a relative
item (``distance``/``within``, pcre ``R``, ``isdataat:..,relative``,
``byte_*:..,relative``) anchors at the end of the previous item in the same
block (or at the start of the buffer when it is the first).

Positions and sizes are `int`, or `str` naming a ``byte_extract`` variable set
by an earlier item of the rule (Suricata allows both).
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Union

from signatures.buffers import Buffer, TransformKind

ValueRef = Union[int, str]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _check_ref(name: str, v: object, *, allow_negative: bool = False, optional: bool = True) -> None:
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise TypeError(f"{name} must be int or a byte_extract variable name")
    if isinstance(v, str) and not _IDENT.match(v):
        raise ValueError(f"{name}: {v!r} is not a variable name")
    if isinstance(v, int) and v < 0 and not allow_negative:
        raise ValueError(f"{name} must not be negative")


class SizeOp(enum.Enum):
    """Comparison of a size check (``dsize``, ``bsize``, ``urilen``, ``itype``, ...)."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    RANGE = "<>"  # exclusive on both ends, as in Suricata: ``3<>6`` is 4 or 5


@dataclass(frozen=True, slots=True)
class SizeCheck:
    """``N``, ``<N``, ``>N``, ``<=N``, ``>=N``, ``!N``, ``N<>M``: an unsigned size or number."""

    op: SizeOp
    value: int
    high: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.op, SizeOp) or isinstance(self.value, bool) or self.value < 0:
            raise ValueError("size check needs an operator and a non-negative value")
        if (self.op is SizeOp.RANGE) != (self.high is not None):
            raise ValueError("only a range has a high bound")
        if self.high is not None and self.high <= self.value:
            raise ValueError(f"bad range {self.value}<>{self.high}")

    def matches(self, n: int) -> bool:
        op, v = self.op, self.value
        if op is SizeOp.EQ:
            return n == v
        if op is SizeOp.NE:
            return n != v
        if op is SizeOp.LT:
            return n < v
        if op is SizeOp.LE:
            return n <= v
        if op is SizeOp.GT:
            return n > v
        if op is SizeOp.GE:
            return n >= v
        return v < n < self.high  # type: ignore[operator]

    @property
    def maximum(self) -> int | None:
        """The largest size that can match (None: unbounded)."""
        if self.op in (SizeOp.EQ, SizeOp.LE):
            return self.value
        if self.op is SizeOp.LT:
            return self.value - 1
        if self.op is SizeOp.RANGE:
            return self.high - 1  # type: ignore[operator]
        return None


@dataclass(frozen=True, slots=True)
class FastPattern:
    """``fast_pattern`` (plain), ``fast_pattern:only`` or ``fast_pattern:offset,length`` (a chop)."""

    only: bool = False
    offset: int | None = None
    length: int | None = None

    def __post_init__(self) -> None:
        if (self.offset is None) != (self.length is None):
            raise ValueError("a fast_pattern chop needs both offset and length")
        if self.only and self.offset is not None:
            raise ValueError("fast_pattern:only takes no chop")
        if self.offset is not None and (self.offset < 0 or self.length < 1):  # type: ignore[operator]
            raise ValueError("bad fast_pattern chop")


@dataclass(frozen=True, slots=True)
class ContentMatch:
    """A literal byte pattern and its position constraints (Suricata ``content`` semantics).

    `depth` counts from `offset`; `within` counts from the end of the previous
    match plus `distance`. `startswith`/`endswith` anchor at the buffer edges.
    """

    pattern: bytes
    negated: bool = False
    nocase: bool = False
    depth: ValueRef | None = None
    offset: ValueRef | None = None
    distance: ValueRef | None = None
    within: ValueRef | None = None
    startswith: bool = False
    endswith: bool = False
    fast_pattern: FastPattern | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, bytes) or not self.pattern:
            raise ValueError("content pattern must be non-empty bytes")
        _check_ref("depth", self.depth)
        _check_ref("offset", self.offset)
        _check_ref("distance", self.distance, allow_negative=True)
        _check_ref("within", self.within, allow_negative=True)
        if (self.depth is not None or self.offset is not None) and self.relative:
            raise ValueError("depth/offset cannot be mixed with distance/within")
        if self.startswith and (self.depth is not None or self.offset is not None or self.relative):
            raise ValueError("startswith cannot be mixed with depth, offset, distance, within")
        if self.fast_pattern is not None and not isinstance(self.fast_pattern, FastPattern):
            raise TypeError("fast_pattern must be FastPattern")

    @property
    def relative(self) -> bool:
        return self.distance is not None or self.within is not None


class PcreFlag(enum.Enum):
    """pcre modifier letters: PCRE options, Suricata's ``R``/``B``/``O`` and buffer letters."""

    CASELESS = "i"
    DOTALL = "s"
    MULTILINE = "m"
    EXTENDED = "x"
    ANCHORED = "A"
    DOLLAR_ENDONLY = "E"
    UNGREEDY = "G"
    RELATIVE = "R"
    RAWBYTES = "B"
    MATCH_LIMIT = "O"
    URI = "U"
    URI_RAW = "I"
    HEADER = "H"
    HEADER_RAW = "D"
    METHOD = "M"
    COOKIE = "C"
    REQUEST_BODY = "P"
    RESPONSE_BODY = "Q"
    STAT_CODE = "S"
    STAT_MSG = "Y"
    USER_AGENT = "V"
    HOST = "W"
    HOST_RAW = "Z"


PCRE_COMPILE_FLAGS = frozenset({PcreFlag.CASELESS, PcreFlag.DOTALL, PcreFlag.MULTILINE, PcreFlag.EXTENDED,
                                PcreFlag.ANCHORED, PcreFlag.DOLLAR_ENDONLY, PcreFlag.UNGREEDY})


# Where a pcre capture is kept: on the packet, the flow, or the alert (Suricata's pktvar/flowvar/alert var).
CAPTURE_KINDS = ("pkt", "flow", "alert")
_VAR_NAME = re.compile(r"[A-Za-z0-9_.\-/]{1,64}")


@dataclass(frozen=True, slots=True)
class PcreMatch:
    """A regular expression (PCRE syntax, without delimiters) and its modifiers.

    `captures` is Suricata's trailing ``,flow:NAME, pkt:NAME, alert:NAME`` list: capture
    group 1, 2... are kept under those names when the rule matches (named groups
    ``(?P<flow_NAME>..)`` do the same from inside the pattern)."""

    pattern: str
    flags: frozenset[PcreFlag] = frozenset()
    negated: bool = False
    captures: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str) or not self.pattern:
            raise ValueError("pcre pattern must be a non-empty string")
        if not all(isinstance(f, PcreFlag) for f in self.flags):
            raise TypeError("flags must be PcreFlag")
        for cap in self.captures:
            if not (isinstance(cap, tuple) and len(cap) == 2 and cap[0] in CAPTURE_KINDS
                    and isinstance(cap[1], str) and _VAR_NAME.fullmatch(cap[1])):
                raise ValueError(f"bad pcre capture {cap!r}: expected (pkt|flow|alert, name)")
        if self.captures and self.negated:
            raise ValueError("a negated pcre captures nothing")

    @property
    def relative(self) -> bool:
        return PcreFlag.RELATIVE in self.flags

    @property
    def caseless(self) -> bool:
        return PcreFlag.CASELESS in self.flags

    @property
    def compile_flags(self) -> frozenset[PcreFlag]:
        """The flags that change how the expression compiles (i s m x A E G)."""
        return self.flags & PCRE_COMPILE_FLAGS


@dataclass(frozen=True, slots=True)
class IsDataAt:
    """``isdataat:[!]N[,relative]``: at least N+1 bytes exist at N (or after the previous match)."""

    size: ValueRef
    negated: bool = False
    relative: bool = False

    def __post_init__(self) -> None:
        _check_ref("isdataat", self.size, optional=False)


class Endian(enum.Enum):
    BIG = "big"
    LITTLE = "little"


class NumBase(enum.Enum):
    """The textual base of a ``string`` byte_* conversion."""

    HEX = "hex"
    DEC = "dec"
    OCT = "oct"


class ByteOp(enum.Enum):
    LT = "<"
    GT = ">"
    EQ = "="
    LE = "<="
    GE = ">="
    AND = "&"
    XOR = "^"


def _check_nbytes(nbytes: int, base: NumBase | None) -> None:
    # A string conversion of 0 bytes means "the whole buffer" (Suricata 7, used on http.content_len).
    low, limit = (0, 32) if base is not None else (1, 8)
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or not low <= nbytes <= limit:
        raise ValueError(f"bytes must be {low}..{limit}{' with string' if base else ' without string'}")


@dataclass(frozen=True, slots=True)
class ByteTest:
    """``byte_test``: read `nbytes` at `offset`, compare with `value` (negated: ``!op``)."""

    nbytes: int
    op: ByteOp
    value: ValueRef
    offset: ValueRef
    negated: bool = False
    relative: bool = False
    endian: Endian = Endian.BIG
    base: NumBase | None = None
    dce: bool = False
    bitmask: int | None = None

    def __post_init__(self) -> None:
        _check_nbytes(self.nbytes, self.base)
        _check_ref("value", self.value, optional=False)
        _check_ref("offset", self.offset, allow_negative=True, optional=False)


class JumpFrom(enum.Enum):
    CURRENT = "current"        # from the previous match (relative) or the buffer start
    BEGINNING = "from_beginning"
    END = "from_end"


@dataclass(frozen=True, slots=True)
class ByteJump:
    """``byte_jump``: read a length at `offset` and move the cursor by it."""

    nbytes: int
    offset: ValueRef
    relative: bool = False
    multiplier: int = 1
    endian: Endian = Endian.BIG
    base: NumBase | None = None
    align: bool = False
    jump_from: JumpFrom = JumpFrom.CURRENT
    post_offset: int = 0
    dce: bool = False
    bitmask: int | None = None

    def __post_init__(self) -> None:
        _check_nbytes(self.nbytes, self.base)
        _check_ref("offset", self.offset, allow_negative=True, optional=False)
        if self.multiplier < 1:
            raise ValueError("multiplier must be positive")


@dataclass(frozen=True, slots=True)
class ByteExtract:
    """``byte_extract``: read a number into variable `name` for later items of the rule."""

    nbytes: int
    offset: int
    name: str
    relative: bool = False
    multiplier: int = 1
    endian: Endian = Endian.BIG
    base: NumBase | None = None
    align: int = 0
    dce: bool = False
    bitmask: int | None = None

    def __post_init__(self) -> None:
        _check_nbytes(self.nbytes, self.base)
        if not _IDENT.match(self.name):
            raise ValueError(f"bad byte_extract variable name {self.name!r}")
        if self.align not in (0, 2, 4) or self.multiplier < 1:
            raise ValueError("align must be 2 or 4; multiplier positive")


@dataclass(frozen=True, slots=True)
class Base64Decode:
    """``base64_decode``: decode from here into the ``base64_data`` buffer."""

    nbytes: int | None = None
    offset: int = 0
    relative: bool = False

    def __post_init__(self) -> None:
        if (self.nbytes is not None and self.nbytes < 1) or self.offset < 0:
            raise ValueError("base64_decode bytes must be positive, offset non-negative")


Match = Union[ContentMatch, PcreMatch, IsDataAt, ByteTest, ByteJump, ByteExtract, Base64Decode]
MATCH_TYPES = (ContentMatch, PcreMatch, IsDataAt, ByteTest, ByteJump, ByteExtract, Base64Decode)


@dataclass(frozen=True, slots=True)
class Transform:
    """A buffer transform; `argument` is set only for ``xor`` (hex key) and ``pcrexform``."""

    kind: TransformKind
    argument: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, TransformKind):
            raise TypeError("kind must be TransformKind")
        if self.kind.takes_argument != (self.argument is not None):
            raise ValueError(f"{self.kind.value}: argument {'required' if self.kind.takes_argument else 'not allowed'}")


@dataclass(frozen=True, slots=True)
class BufferBlock:
    """All items of a rule that inspect one (possibly transformed) buffer, in rule order."""

    buffer: Buffer
    transforms: tuple[Transform, ...] = ()
    matches: tuple[Match, ...] = ()
    bsize: SizeCheck | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.buffer, Buffer):
            raise TypeError("buffer must be Buffer")
        if not all(isinstance(m, MATCH_TYPES) for m in self.matches):
            raise TypeError("matches must be match items")
        if not all(isinstance(t, Transform) for t in self.transforms):
            raise TypeError("transforms must be Transform")
