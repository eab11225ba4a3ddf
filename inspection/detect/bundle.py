"""Compiled rule bundles: the parsed rules and the Hyperscan prefilter, ready in well under a second.

Parsing ET Open takes ~2 s, planning it ~0.6 s and compiling its prefilter
~0.6 s; a worker that restarts, or the live engine picking up new rules,
should not pay that. `compile_bundle` does the work once; `encode_bundle`
turns the result into bytes and `decode_bundle` back into a ready `Detector`.

Layout (all integers big-endian)::

    magic "UTMRULES"  (8)
    header length     (4)
    SHA-256 of header (32)
    header            JSON: format, engine, python, hyperscan, payload_bytes, payload_sha256, rules, sources
    payload           pickle of `BundleContent`

Every check runs before anything is unpickled, in the order that gives the
most useful message: magic, header hash, versions (a bundle from another
engine, Python or Hyperscan is refused by name, since pickled rule classes,
the pcre translation and Hyperscan's serialised databases all depend on
them), payload length, payload hash. Only then is the payload unpickled, by
an unpickler that can build nothing but the rule model's dataclasses and
enums: a bundle cannot run code. The hashes detect corruption, not forgery;
authenticity is the job of the signed update that delivers the file.

The payload carries the typed `Rule`s (loading does not re-parse), the rules
the parser and the detector skipped with their reasons (for the summary),
and the prefilter image. Rules are planned lazily (`Detector.prepared`).
"""
from __future__ import annotations

import dataclasses
import enum
import gc
import hashlib
import io
import json
import pickle
import struct
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence, TypeGuard

from signatures.model import Rule
from signatures.parser import SkippedRule as ParseSkipped

from inspection.detect.engine import Detector, SkippedRule
from inspection.detect.errors import (
    BundleFormatError, BundleIntegrityError, BundleVersionError, PrefilterError,
)
from inspection.detect.prefilter import PrefilterImage, compile_database
from inspection.detect.verify import DEFAULT_BUDGET

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

MAGIC = b"UTMRULES"
FORMAT_VERSION = 2   # 2: pcre captures (PcreMatch.captures)
_PREFIX = struct.Struct(">8sI32s")
HEADER_LIMIT = 1 << 16          # a header is a few hundred bytes; refuse to parse megabytes of "header"
_PICKLE_PROTOCOL = 5
# Where the payload's classes may come from; only dataclasses and enums of these modules are built.
_ALLOWED_MODULES = frozenset({
    "signatures.model", "signatures.matches", "signatures.netspec", "signatures.buffers", "signatures.parser",
    "inspection.detect.prefilter", "inspection.detect.engine", "inspection.detect.bundle",
})


@dataclass(frozen=True, slots=True)
class BundleHeader:
    """What a bundle says about itself, readable without unpickling anything."""

    format: int
    engine: str
    python: str
    hyperscan: str
    payload_bytes: int
    payload_sha256: str
    rules: int
    sources: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        return json.dumps({**dataclasses.asdict(self), "sources": list(self.sources)}, sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class BundleContent:
    """The payload: rules in load order, every skip with its reason, and the compiled prefilter."""

    rules: tuple[Rule, ...]
    parse_skipped: tuple[ParseSkipped, ...]
    detect_skipped: tuple[SkippedRule, ...]
    prefilter: PrefilterImage


@dataclass(frozen=True, slots=True)
class LoadedBundle:
    header: BundleHeader
    content: BundleContent
    detector: Detector


# ---------------------------------------------------------------- versions

@lru_cache(maxsize=1)
def engine_version() -> str:
    """The package version plus a digest of the rule model's and the detector's source.

    A bundle is only trusted by the engine that made it, and the package
    version does not move with every change to the rule classes or to what the
    planner accepts: the digest does (``0.1.0+3f2a...``). Reading the ~30
    source files costs a few milliseconds.
    """
    try:
        version = metadata.version("utm-appliance")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    h = hashlib.sha256()
    for package in ("signatures", "inspection.detect"):
        folder = Path(sys.modules[package].__file__ or "").parent
        for path in sorted(folder.glob("*.py")):
            try:
                h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
            except OSError:
                return version
    return f"{version}+{h.hexdigest()[:12]}"


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@lru_cache(maxsize=1)
def hyperscan_version() -> str:
    """The Hyperscan library's version, as its databases report it (the binding does not expose it)."""
    db = compile_database([(b"version", False)], "version")
    info = db.info().decode(errors="replace")  # type: ignore[attr-defined]  # typed str, but returns bytes
    for part in info.split("Features:")[0].split():
        if part[:1].isdigit():
            return part
    return info.strip()


# ---------------------------------------------------------------- compile / encode

def compile_bundle(rules: Sequence[Rule], parse_skipped: Sequence[ParseSkipped] = (), *,
                   budget: int = DEFAULT_BUDGET) -> tuple[BundleContent, Detector]:
    """Plan every rule and compile the prefilter, as `Detector(rules)` does, and keep the result."""
    detector = Detector(rules, budget=budget)
    content = BundleContent(detector.rules, tuple(parse_skipped), detector.skipped, detector.prefilter.to_image())
    return content, detector


def encode_bundle(content: BundleContent, *, sources: Sequence[str] = (), engine: str | None = None,
                  python: str | None = None, hyperscan: str | None = None, fmt: int = FORMAT_VERSION) -> bytes:
    """The bundle file's bytes. The version overrides exist to test refusals, not for production use."""
    buf = io.BytesIO()
    _ModelPickler(buf, protocol=_PICKLE_PROTOCOL).dump(content)
    payload = buf.getvalue()
    header = BundleHeader(fmt, engine or engine_version(), python or python_version(),
                          hyperscan or hyperscan_version(), len(payload), hashlib.sha256(payload).hexdigest(),
                          len(content.rules), tuple(sources)).to_json()
    return _PREFIX.pack(MAGIC, len(header), hashlib.sha256(header).digest()) + header + payload


# ---------------------------------------------------------------- decode

def read_header(data: bytes, source: str = "bundle") -> tuple[BundleHeader, int]:
    """The verified header and the payload's offset; raises a `BundleError` subclass naming the fault."""
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        if MAGIC.startswith(data[:len(MAGIC)]) and len(data) < len(MAGIC):
            raise BundleFormatError(source, f"truncated: {len(data)} bytes, not even the magic")
        raise BundleFormatError(source, "not a rule bundle (wrong magic; compile one with `utm rules compile`)")
    if len(data) < _PREFIX.size:
        raise BundleFormatError(source, f"truncated: {len(data)} bytes, the header prefix needs {_PREFIX.size}")
    _, size, digest = _PREFIX.unpack_from(data)
    if size > HEADER_LIMIT:
        raise BundleFormatError(source, f"header length {size} is over the {HEADER_LIMIT} byte limit: corrupted")
    end = _PREFIX.size + size
    if len(data) < end:
        raise BundleFormatError(source, f"truncated: the header needs {end} bytes, the file has {len(data)}")
    raw = data[_PREFIX.size:end]
    if hashlib.sha256(raw).digest() != digest:
        raise BundleIntegrityError(source, "header hash mismatch: corrupted")
    return _parse_header(raw, source), end


def _parse_header(raw: bytes, source: str) -> BundleHeader:
    try:
        fields = json.loads(raw)
        header = BundleHeader(
            format=int(fields["format"]), engine=str(fields["engine"]), python=str(fields["python"]),
            hyperscan=str(fields["hyperscan"]), payload_bytes=int(fields["payload_bytes"]),
            payload_sha256=str(fields["payload_sha256"]), rules=int(fields["rules"]),
            sources=tuple(str(s) for s in fields.get("sources", ())))
    except (ValueError, KeyError, TypeError) as e:
        raise BundleFormatError(source, f"unreadable header ({type(e).__name__}: {e})") from None
    return header


def check_versions(header: BundleHeader, source: str = "bundle") -> None:
    """Refuse a bundle made by another format, engine, Python or Hyperscan, naming which."""
    if header.format != FORMAT_VERSION:
        raise BundleVersionError(source, "bundle format", str(header.format), str(FORMAT_VERSION))
    for component, made, running in (("engine", header.engine, engine_version()),
                                      ("Python", header.python, python_version()),
                                      ("Hyperscan", header.hyperscan, hyperscan_version())):
        if made != running:
            raise BundleVersionError(source, component, made, running)


def decode_bundle(data: bytes, source: str = "bundle", *, budget: int = DEFAULT_BUDGET) -> LoadedBundle:
    """Verify and load a bundle into a ready `Detector`; raises a `BundleError` subclass, never anything else."""
    header, offset = read_header(data, source)
    check_versions(header, source)
    payload = memoryview(data)[offset:]
    if len(payload) != header.payload_bytes:
        what = "truncated" if len(payload) < header.payload_bytes else "trailing bytes"
        raise BundleFormatError(source, f"{what}: payload is {len(payload)} bytes, the header says "
                                        f"{header.payload_bytes}")
    if hashlib.sha256(payload).hexdigest() != header.payload_sha256:
        raise BundleIntegrityError(source, "content hash mismatch: corrupted")
    content = _unpickle(payload, source)
    if len(content.rules) != header.rules:
        raise BundleIntegrityError(source, f"holds {len(content.rules)} rules, the header says {header.rules}")
    try:
        detector = Detector.prepared(content.rules, content.detect_skipped, content.prefilter, budget=budget)
    except PrefilterError as e:
        raise BundleIntegrityError(source, f"prefilter does not load: {e}") from None
    except (IndexError, TypeError, AttributeError) as e:
        raise BundleIntegrityError(source, f"inconsistent content ({type(e).__name__}: {e})") from None
    return LoadedBundle(header, content, detector)


@lru_cache(maxsize=None)
def _setters(cls: type) -> tuple:
    """The slot descriptors' setters of a frozen dataclass, in field order (they bypass the frozen
    ``__setattr__`` the way the dataclass's own ``__setstate__`` does, minus its per-object
    ``fields()`` call, which was two thirds of the load time)."""
    if not _is_model_class(cls):
        raise pickle.UnpicklingError(f"refused class {cls!r}")
    return tuple(cls.__dict__[f.name].__set__ for f in dataclasses.fields(cls))


def _restore(cls: type, values: tuple) -> object:
    """Rebuild one model object from `_ModelPickler`'s reduction (`cls` came through `find_class`)."""
    setters = _setters(cls)
    if len(values) != len(setters):
        raise pickle.UnpicklingError(f"{cls.__name__}: {len(values)} values for {len(setters)} fields")
    obj: object = object.__new__(cls)
    for put, value in zip(setters, values):
        put(obj, value)
    return obj


def _is_model_class(cls: object) -> TypeGuard[type[DataclassInstance]]:
    return isinstance(cls, type) and cls.__module__ in _ALLOWED_MODULES and dataclasses.is_dataclass(cls) \
        and "__slots__" in cls.__dict__


_SCALARS = (int, float, bool, type(None))
_MISSING = object()


class _ModelPickler(pickle.Pickler):
    """Pickles slotted model dataclasses as `_restore(cls, values)`, each distinct value once.

    Pickle's memo shares only identical objects; the parser makes equal ones
    per rule (the same ``flow``, metadata pairs, references, address specs in
    thousands of rules). Replacing every value by the first equal one seen
    (equal including the type at every level, so ``True`` never stands for
    ``1``) cuts ET Open from ~640,000 objects to ~230,000 and the load time
    with them. Values stay equal, so nothing that compares them can tell.
    """

    def __init__(self, file: io.BytesIO, protocol: int) -> None:
        super().__init__(file, protocol=protocol)
        self._canon: dict[object, object] = {}
        self._keys: dict[int, object] = {}

    def reducer_override(self, obj: object) -> tuple[Callable[..., object], tuple[object, ...]]:
        cls = type(obj)
        if _is_model_class(cls):
            return _restore, (cls, tuple(self._canonical(getattr(obj, f.name)) for f in dataclasses.fields(cls)))
        return NotImplemented

    def _canonical(self, value: object) -> object:
        if isinstance(value, _SCALARS) or isinstance(value, enum.Enum):
            return value
        key = self._key(value)
        if key is None:
            return value
        found = self._canon.get(key, _MISSING)
        if found is not _MISSING:
            return found
        if type(value) is tuple:
            value = tuple(self._canonical(v) for v in value)          # type: ignore[attr-defined]
        elif type(value) is frozenset:
            value = frozenset(self._canonical(v) for v in value)      # type: ignore[attr-defined]
        self._canon[key] = value
        self._keys[id(value)] = key
        return value

    def _key(self, value: object) -> object:
        """A hashable, type-exact description of `value` (None: leave it alone)."""
        known = self._keys.get(id(value))
        if known is not None:
            return known
        cls = type(value)
        if cls in (str, bytes) or isinstance(value, _SCALARS) or isinstance(value, enum.Enum):
            key: object = (cls, value)
        elif cls is tuple or cls is frozenset:
            parts = [self._key(v) for v in value]   # type: ignore[attr-defined]
            if any(p is None for p in parts):
                return None
            key = (cls, tuple(parts) if cls is tuple else frozenset(parts))
        elif _is_model_class(cls):
            parts = [self._key(getattr(value, f.name)) for f in dataclasses.fields(cls)]
            if any(p is None for p in parts):
                return None
            key = (cls, tuple(parts))
        else:
            return None
        self._keys[id(value)] = key
        return key


class _ModelUnpickler(pickle.Unpickler):
    """Builds only the rule model's dataclasses and enums; any other global is refused."""

    def find_class(self, module: str, name: str) -> object:
        if module == __name__ and name == "_restore":
            return _restore
        if module in _ALLOWED_MODULES and "." not in name and not name.startswith("__"):
            obj = getattr(sys.modules.get(module), name, None)
            if isinstance(obj, type) and (dataclasses.is_dataclass(obj) or issubclass(obj, enum.Enum)):
                return obj
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _unpickle(payload: memoryview, source: str) -> BundleContent:
    try:
        with _no_gc():
            content = _ModelUnpickler(io.BytesIO(payload)).load()
    except Exception as e:  # noqa: BLE001 - any decoding failure is the bundle's fault, reported as such
        raise BundleIntegrityError(source, f"payload does not decode ({type(e).__name__}: {e})") from None
    if not _well_formed(content):
        raise BundleIntegrityError(source, "payload is not a rule bundle's content")
    return content  # type: ignore[return-value]


def _well_formed(content: object) -> bool:
    """The shape `Detector.prepared` relies on (field values were not validated by constructors)."""
    if not isinstance(content, BundleContent):
        return False
    rules, parsed, skipped = content.rules, content.parse_skipped, content.detect_skipped
    if not (isinstance(rules, tuple) and isinstance(parsed, tuple) and isinstance(skipped, tuple)):
        return False
    return (all(isinstance(r, Rule) for r in rules) and all(isinstance(s, ParseSkipped) for s in parsed)
            and all(isinstance(s, SkippedRule) and isinstance(s.index, int) and 0 <= s.index < len(rules)
                    for s in skipped)
            and isinstance(content.prefilter, PrefilterImage))


@contextmanager
def _no_gc() -> Iterator[None]:
    """Unpickling ~700,000 objects with the cyclic collector on costs 4x (2.0 s instead of 0.5 s on
    ET Open): every allocation batch triggers a scan of the growing, entirely acyclic heap."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
