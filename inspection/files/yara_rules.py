"""YARA rule sources -> one compiled rule set, cached on disk; the `Matcher`.

Each ``.yar``/``.yara`` file is one namespace, named by its path relative
to the root it was given (``utils/domain.yar``), so a match reads
``yara:utils/domain.yar:domain``. Files are first compiled one by one: a
file that fails (unknown module, syntax error, an ``include``: includes are
disabled, since index files only repeat the rules they include and could
read any file) is skipped with its reason; the rest are compiled together.
The externals filename, filepath, extension, filetype and owner are
declared (empty by default) so rules that test them compile, and are set
per scanned object.

Compiling large collections takes seconds, so the compiled set is saved
under the cache directory, keyed by a digest of every source file's path
and bytes, the externals and the YARA version, and loaded from there next
time (well under a second).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yara

from firmware.base.atomic import write_atomic
from inspection.files.scanner import FileMeta, MatchTimeout

__all__ = ["RuleSourceError", "YaraRules", "YaraSkip", "default_cache_dir", "load_yara", "yara_from_bytes"]

EXTERNALS = {"filename": "", "filepath": "", "extension": "", "filetype": "", "owner": ""}
_SUFFIXES = (".yar", ".yara")
_CACHE_FORMAT = 1


class RuleSourceError(Exception):
    """A rule source that does not exist or cannot be read (the CLI exits 2)."""


@dataclass(frozen=True, slots=True)
class YaraSkip:
    namespace: str
    reason: str


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "utm" / "yara"


def _sources(roots: list[Path]) -> dict[str, Path]:
    """namespace -> file. A file root is its own namespace (its name)."""
    out: dict[str, Path] = {}
    for root in roots:
        if root.is_file():
            out[root.name] = root
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.suffix.lower() in _SUFFIXES and p.is_file():
                    out[p.relative_to(root).as_posix()] = p
        else:
            raise RuleSourceError(f"{root}: no such rule file or folder")
    return out


def _digest(sources: dict[str, Path]) -> str:
    h = hashlib.sha256(f"{_CACHE_FORMAT}|{yara.__version__}|{sorted(EXTERNALS)}".encode())
    for ns, p in sorted(sources.items()):
        try:
            data = p.read_bytes()
        except OSError as e:
            raise RuleSourceError(f"{p}: cannot read: {e.strerror or e}") from None
        h.update(ns.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


class YaraRules:
    """The compiled set as a `Matcher`."""

    def __init__(self, rules: yara.Rules | None, loaded: list[str], skipped: list[YaraSkip],
                 cached: bool, seconds: float) -> None:
        self.rules = rules
        self.loaded = loaded            # namespaces compiled
        self.skipped = skipped          # files skipped and why
        self.cached = cached            # loaded ready-compiled (cache or bundle)
        self.origin = "cache" if cached else "compiled"
        self.seconds = seconds          # compile or load time
        self.too_many_matches = 0       # strings that hit YARA's per-string match cap

    def _warn(self, kind: int, data: object) -> int:
        self.too_many_matches += 1
        return yara.CALLBACK_CONTINUE

    def match(self, data: bytes, meta: FileMeta, timeout: float) -> list[str]:
        if self.rules is None:
            return []
        ext = {"filename": meta.filename, "filepath": meta.filepath, "extension": meta.extension,
               "filetype": meta.filetype}
        try:
            hits = self.rules.match(data=data, externals=ext, timeout=max(1, int(timeout)),
                                    warnings_callback=self._warn)
        except yara.TimeoutError:
            raise MatchTimeout() from None
        except yara.Error:
            return []
        return [f"yara:{m.namespace}:{m.rule}" for m in hits]


def yara_from_bytes(data: bytes, loaded: list[str], skipped: list[YaraSkip]) -> YaraRules:
    """Compiled rules from a scan definitions bundle."""
    import io
    import time
    started = time.perf_counter()
    try:
        rules = yara.load(file=io.BytesIO(data))
    except yara.Error as e:
        raise RuleSourceError(f"compiled YARA rules in the bundle do not load: {e}") from None
    out = YaraRules(rules, loaded, skipped, True, time.perf_counter() - started)
    out.origin = "bundle"
    return out


def load_yara(roots: list[Path], cache_dir: Path | None = None, clock=None) -> YaraRules:
    """Compile (or load from the cache) every rule file under `roots`."""
    import time
    now = clock or time.perf_counter
    started = now()
    sources = _sources(roots)
    digest = _digest(sources)
    if cache_dir is not None:
        cached = _load_cache(cache_dir, digest)
        if cached is not None:
            return YaraRules(*cached, True, now() - started)
    good: dict[str, str] = {}
    skipped: list[YaraSkip] = []
    for ns, p in sources.items():
        try:
            yara.compile(filepath=str(p), externals=EXTERNALS, includes=False)
            good[ns] = str(p)
        except yara.SyntaxError as e:
            skipped.append(YaraSkip(ns, str(e).replace(str(p), ns)))
        except yara.Error as e:
            skipped.append(YaraSkip(ns, f"{type(e).__name__}: {e}"))
    rules = None
    if good:
        try:
            rules = yara.compile(filepaths=good, externals=EXTERNALS, includes=False)
        except yara.Error as e:   # rules clash across files (should not: one namespace each)
            raise RuleSourceError(f"rule files compile alone but not together: {e}") from None
    if cache_dir is not None and rules is not None:
        _save_cache(cache_dir, digest, rules, list(good), skipped)
    return YaraRules(rules, list(good), skipped, False, now() - started)


def _load_cache(cache_dir: Path, digest: str) -> tuple[yara.Rules, list[str], list[YaraSkip]] | None:
    meta_p, rules_p = cache_dir / f"{digest}.json", cache_dir / f"{digest}.yarc"
    try:
        meta = json.loads(meta_p.read_text())
        rules = yara.load(str(rules_p))
        return rules, list(meta["loaded"]), [YaraSkip(ns, r) for ns, r in meta["skipped"]]
    except (OSError, ValueError, KeyError, TypeError, yara.Error):
        return None


def _save_cache(cache_dir: Path, digest: str, rules: yara.Rules, loaded: list[str], skipped: list[YaraSkip]) -> None:
    """Best effort: a cache that cannot be written only costs time next run."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".{digest}.{os.getpid()}.tmp"
        rules.save(str(tmp))
        os.replace(tmp, cache_dir / f"{digest}.yarc")
        meta = {"loaded": loaded, "skipped": [[s.namespace, s.reason] for s in skipped]}
        write_atomic(str(cache_dir / f"{digest}.json"), json.dumps(meta).encode())
    except (OSError, yara.Error):
        pass
