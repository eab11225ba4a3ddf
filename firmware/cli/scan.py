"""`utm scan PATH...`: scan files offline, one JSON line per file.

Each line: path, sha256, type, size, verdict, reasons and, for containers,
members with their own verdicts. Folders are walked recursively (symbolic
links are not followed). Rule sources: ``--yara DIR|FILE`` (repeatable;
compiled once and cached, see `inspection.files.yara_rules`) and
``--hashes FILE`` (plain SHA-256 list or ClamAV ``.hdb``/``.hsb``), or both compiled
into one definitions bundle (``--write-bundle OUT``, then ``--bundle``; see
`inspection.files.scan_bundle`). Exit status as
clamscan: 0 nothing malicious, 1 something malicious, 2 bad arguments or
unreadable rule sources. A summary (files, verdicts, limits hit, rules
skipped) goes to stderr unless ``-q``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from firmware.cli.definitions import add_definitions_options, with_definitions
from inspection.files.hashlist import HashList, parse_hash_list
from inspection.files.model import VerdictKind
from inspection.files.scanner import ContentScanner, Matcher
from inspection.files.scanner_model import ScanLimits, ScanResult

if TYPE_CHECKING:
    from inspection.files.yara_rules import YaraRules

_MB = 1 << 20


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="scan files or folders for malware (hash list, YARA, unpacking)",
                       description="Scan files or folders offline and print one JSON line per file. "
                                   "Exit 0: nothing malicious; 1: something malicious; 2: bad arguments.")
    p.add_argument("paths", nargs="*", metavar="PATH", help="file or folder (walked recursively)")
    p.add_argument("--yara", action="append", default=[], metavar="DIR|FILE",
                   help="YARA rule file or folder of .yar/.yara files; repeat for several")
    p.add_argument("--hashes", action="append", default=[], metavar="FILE",
                   help="SHA-256 block list (one hash per line) or ClamAV .hdb; repeat for several")
    p.add_argument("--bundle", default=None, metavar="BUNDLE",
                   help="scan definitions bundle from --write-bundle (YARA rules and hash lists); "
                        "--yara/--hashes add to it")
    p.add_argument("--write-bundle", default=None, metavar="OUT",
                   help="compile --yara and --hashes into a definitions bundle and exit (no PATH needed)")
    p.add_argument("--yara-cache", default=None, metavar="DIR",
                   help="compiled-rules cache (default: $XDG_CACHE_HOME/utm/yara); 'none' to disable")
    lim = ScanLimits()
    p.add_argument("--max-filesize", type=float, default=lim.max_file_size / _MB, metavar="MB",
                   help=f"largest file or member scanned (default {lim.max_file_size // _MB})")
    p.add_argument("--max-scansize", type=float, default=lim.max_scan_size / _MB, metavar="MB",
                   help=f"bytes scanned per file, members included (default {lim.max_scan_size // _MB})")
    p.add_argument("--max-recursion", type=int, default=lim.max_depth, metavar="N",
                   help=f"container nesting (default {lim.max_depth})")
    p.add_argument("--max-files", type=int, default=lim.max_members, metavar="N",
                   help=f"members unpacked per file (default {lim.max_members})")
    p.add_argument("--max-scantime", type=float, default=lim.max_seconds, metavar="SECONDS",
                   help=f"time per file (default {lim.max_seconds:g})")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")
    add_definitions_options(p)
    p.set_defaults(run=run)


def _fail(msg: str) -> int:
    print(f"utm scan: {msg}", file=sys.stderr)
    return 2


def _walk(paths: list[Path]) -> Iterator[Path]:
    for p in paths:
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    yield Path(root) / f
        else:
            yield p


class SourceError(Exception):
    """A hash list or rule source that cannot be used (exit 2)."""


_SOURCE_MARK = "# utm-hash-source: "


def load_sources(hash_files: list[str], yara_sources: list[str], yara_cache: str | None = None,
                 bundle: str | None = None) -> tuple[HashList, list[Matcher], YaraRules | None]:
    """Hash lists and YARA rules named on a command line (`utm scan`, `utm inspect`),
    from files and folders and/or a scan definitions bundle."""
    hashes = HashList()
    matchers: list[Matcher] = []
    rules = None
    if bundle is not None:
        b_hashes, b_rules = _load_bundle(bundle)
        hashes.merge(b_hashes)
        if b_rules is not None:
            matchers.append(b_rules)
            rules = b_rules
    for h in hash_files:
        try:
            text = Path(h).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise SourceError(f"{h}: cannot read hash list: {e.strerror or e}") from None
        hashes.merge(parse_hash_list(text, Path(h).name))
    if not yara_sources:
        return hashes, matchers, rules
    from inspection.files.yara_rules import RuleSourceError, default_cache_dir, load_yara
    cache = None if yara_cache == "none" else Path(yara_cache) if yara_cache else default_cache_dir()
    try:
        rules = load_yara([Path(y) for y in yara_sources], cache)
    except RuleSourceError as e:
        raise SourceError(str(e)) from None
    return hashes, [*matchers, rules], rules


def _load_bundle(path: str) -> tuple[HashList, YaraRules | None]:
    import yara

    from inspection.files.scan_bundle import ScanBundleError, decode_scan_bundle
    from inspection.files.yara_rules import RuleSourceError, YaraSkip, yara_from_bytes
    try:
        b = decode_scan_bundle(Path(path).read_bytes(), yara.__version__)
    except OSError as e:
        raise SourceError(f"{path}: cannot read bundle: {e.strerror or e}") from None
    except ScanBundleError as e:
        raise SourceError(f"{path}: bundle refused: {e}") from None
    hashes = HashList()
    for section in b.hash_text.split(_SOURCE_MARK)[1:]:
        name, _, text = section.partition("\n")
        hashes.merge(parse_hash_list(text, name))
    rules = None
    if b.yara_rules:
        try:
            rules = yara_from_bytes(b.yara_rules, list(b.yara_files), [YaraSkip(n, r) for n, r in b.yara_skipped])
        except RuleSourceError as e:
            raise SourceError(f"{path}: {e}") from None
    return hashes, rules


def write_bundle(out: str, hash_files: list[str], yara_sources: list[str], yara_cache: str | None) -> int:
    """`--write-bundle`: compile the sources once into one checked file."""
    import yara

    from firmware.base.atomic import write_atomic
    from inspection.files.scan_bundle import ScanBundle, encode_scan_bundle, rules_to_bytes
    try:
        _, _, rules = load_sources([], yara_sources, yara_cache)
        parts = []
        for h in hash_files:
            try:
                parts.append(_SOURCE_MARK + Path(h).name + "\n" + Path(h).read_text(encoding="utf-8", errors="replace"))
            except OSError as e:
                raise SourceError(f"{h}: cannot read hash list: {e.strerror or e}") from None
    except SourceError as e:
        return _fail(str(e))
    content = ScanBundle(rules_to_bytes(rules.rules) if rules is not None and rules.rules is not None else b"",
                         "\n".join(parts), tuple(rules.loaded) if rules else (),
                         tuple((s.namespace, s.reason) for s in rules.skipped) if rules else (),
                         tuple(Path(h).name for h in hash_files))
    data = encode_scan_bundle(content, yara.__version__)
    try:
        write_atomic(out, data)
    except OSError as e:
        return _fail(f"{out}: cannot write bundle: {e.strerror or e}")
    entries = HashList()
    for h in parts:
        name, _, text = h[len(_SOURCE_MARK):].partition("\n")
        entries.merge(parse_hash_list(text, name))
    print(f"bundle: {out}, {len(data) / _MB:.1f} MB: {len(content.yara_files)} YARA rule files "
          f"({len(content.yara_skipped)} skipped), {len(entries)} hashes from {len(hash_files)} lists")
    return 0


def run(args: argparse.Namespace) -> int:
    return with_definitions(args, "scan", _run)


def _run(args: argparse.Namespace) -> int:
    if args.write_bundle is not None:
        if args.bundle is not None or args.paths:
            return _fail("--write-bundle takes only --yara and --hashes")
        return write_bundle(args.write_bundle, args.hashes, args.yara, args.yara_cache)
    if not args.paths:
        return _fail("no PATH to scan")
    try:
        limits = ScanLimits(max_file_size=int(args.max_filesize * _MB), max_scan_size=int(args.max_scansize * _MB),
                            max_depth=args.max_recursion, max_members=args.max_files,
                            max_seconds=args.max_scantime)
    except ValueError as e:
        return _fail(str(e))
    paths = [Path(p) for p in args.paths]
    for p in paths:
        if not p.exists():
            return _fail(f"{p}: no such file or folder")
    try:
        hashes, matchers, yara_rules = load_sources(args.hashes, args.yara, args.yara_cache, args.bundle)
    except SourceError as e:
        return _fail(str(e))
    scanner = ContentScanner(hashes, matchers, limits)
    verdicts: Counter[str] = Counter()
    started = time.perf_counter()
    out = sys.stdout.buffer
    for f in _walk(paths):
        res = _scan_path(scanner, f)
        verdicts[res.verdict.value] += 1
        out.write(orjson.dumps(res.to_json()) + b"\n")
    out.flush()
    if not args.quiet:
        _summary(scanner, verdicts, hashes, yara_rules, time.perf_counter() - started)
    return 1 if verdicts[VerdictKind.MALICIOUS.value] else 0


def _scan_path(scanner: ContentScanner, f: Path) -> ScanResult:
    """Read one file (only its hash when it is past the size limit)."""
    try:
        st = f.stat()
        if not stat.S_ISREG(st.st_mode):      # a FIFO or device would block or never end
            return ScanResult(str(f), "data", 0, None, VerdictKind.UNSCANNED, ("unscanned: not a regular file",))
        size = st.st_size
        if size > scanner.limits.max_file_size:
            sha, md5, sha1 = hashlib.sha256(), hashlib.md5(), hashlib.sha1()
            with f.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    sha.update(chunk)
                    md5.update(chunk)
                    sha1.update(chunk)
            return scanner.oversized(str(f), size, sha.hexdigest(), md5.hexdigest(), sha1.hexdigest())
        data = f.read_bytes()
    except OSError as e:
        return ScanResult(str(f), "data", 0, None, VerdictKind.UNSCANNED,
                          (f"unscanned: unreadable: {e.strerror or e}",))
    return scanner.scan(data, str(f))


def _summary(scanner: ContentScanner, verdicts: Counter[str], hashes: HashList, yara_rules, seconds: float) -> None:
    c = scanner.counters
    sys.stderr.write(f"scanned: {c.files} files, {c.members} members, {c.bytes_scanned / _MB:.1f} MB in "
                     f"{seconds:.2f} s; " + ", ".join(f"{k}={v}" for k, v in sorted(verdicts.items())) + "\n")
    print_scan_notes(scanner, hashes, yara_rules, sys.stderr)


def print_scan_notes(scanner: ContentScanner, hashes: HashList, yara_rules, out) -> None:
    """Limits hit, malformed list lines, rule files compiled and skipped."""
    w = out.write
    c = scanner.counters
    limits = {k: getattr(c, k) for k in ("too_large", "too_deep", "too_many_members", "scan_size_limit",
                                         "time_budget", "encrypted", "unsupported", "corrupt")}
    hit = ", ".join(f"{k}={v}" for k, v in limits.items() if v)
    if hit:
        w(f"not scanned completely: {hit}\n")
    if hashes.malformed:
        w(f"hash lists: {len(hashes)} entries, {hashes.malformed} malformed lines skipped\n")
    if yara_rules is not None:
        how = {"cache": "loaded from cache", "bundle": "loaded from bundle"}.get(yara_rules.origin, "compiled")
        w(f"yara: {len(yara_rules.loaded)} rule files {how} in {yara_rules.seconds:.2f} s, "
          f"{len(yara_rules.skipped)} skipped\n")
        if yara_rules.skipped:
            reasons = Counter(_short(s.reason) for s in yara_rules.skipped)
            w("yara skipped: " + "; ".join(f"{r} ({n})" for r, n in reasons.most_common(5)) + "\n")


def _short(reason: str) -> str:
    """The error without its file and line, so skips group by cause."""
    parts = reason.split("): ", 1)
    return parts[1] if len(parts) == 2 else reason
