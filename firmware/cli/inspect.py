"""`utm inspect`: read captures, write EVE events, print a summary.

Flags mean what they mean to Suricata users: -r, -S, -l, -k, --set.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, TextIO

from firmware.cli.definitions import add_definitions_options, with_definitions
from inspection.config import ChecksumMode, EngineConfig
from inspection.config_file import engine_config
from inspection.errors import ConfigError
from inspection.io.offline import RunSummary, inspect_files


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="inspect pcap/pcapng files offline and write eve.json",
                       description="Inspect captures (one flow table across all of them, in order) "
                                   "and write LOGDIR/eve.json.")
    p.add_argument("-r", dest="pcaps", action="append", required=True, metavar="PCAP",
                   help="capture file (pcap or pcapng); repeat for several")
    rules = p.add_mutually_exclusive_group()
    rules.add_argument("-S", dest="rules", action="append", default=[], metavar="RULES",
                       help="signature file (Suricata rule language); repeat for several")
    rules.add_argument("--bundle", default=None, metavar="BUNDLE",
                       help="compiled rule bundle from `utm rules compile` (instead of -S)")
    p.add_argument("-l", dest="logdir", default=".", metavar="LOGDIR", help="output folder (default: .)")
    p.add_argument("-k", dest="checksum", choices=[m.value for m in ChecksumMode], default="auto",
                   help="checksum validation: auto (default), all, none")
    p.add_argument("-c", "--config", default=None, metavar="FILE", type=Path,
                   help="Suricata YAML config: the keys we honour are read (eve-log ipv6-compress, "
                        "alert xff/metadata/payload, vars, stream/flow settings); the others are named "
                        "once on stderr and ignored; --set wins over it")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. stream.midstream=true")
    p.add_argument("--http-headers", action="store_true", help="log all HTTP request/response headers")
    p.add_argument("--categories", default=None, metavar="DB",
                   help="URL category database from `utm categories compile`: http/tls/dns events get "
                        "`category`, block categories raise alerts")
    p.add_argument("--apps", nargs="?", const="", default=None, metavar="APPS_TOML",
                   help="record application types (`app` on http/tls/dns events); "
                        "default data: signatures/apps/apps.toml")
    p.add_argument("--yara", action="append", default=[], metavar="DIR|FILE",
                   help="scan extracted files with these YARA rules (as `utm scan --yara`); repeatable")
    p.add_argument("--hashes", action="append", default=[], metavar="FILE",
                   help="scan extracted files against this SHA-256 list or ClamAV .hdb; repeatable")
    p.add_argument("--scan-bundle", default=None, metavar="BUNDLE",
                   help="scan extracted files with a definitions bundle from `utm scan --write-bundle`")
    p.add_argument("--sanitize-dir", default=None, metavar="DIR", type=Path,
                   help="disarm suspicious extracted files (as `utm sanitize`): the fileinfo verdict becomes "
                        "`sanitised` and the copy is written to DIR/<sha256>; implies scanning")
    p.add_argument("--sanitize-max-files", type=_positive, default=10_000, metavar="N",
                   help="copies DIR may hold in all, earlier runs' included (default: 10000)")
    p.add_argument("--sanitize-max-mb", type=_positive, default=1024, metavar="MB",
                   help="megabytes DIR may hold in all, earlier runs' included (default: 1024)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    add_definitions_options(p)
    p.add_argument("--export-to", default=None, metavar="DIR", type=Path,
                   help="also queue the alerts for the cloud in the agent state folder DIR "
                        "(sent by `utm cloudlink run --state DIR`)")
    p.set_defaults(run=run)


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def run(args: argparse.Namespace) -> int:
    return with_definitions(args, "inspect", _run)


def _run(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.pcaps]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        for p in missing:
            print(f"utm inspect: {p}: no such capture file", file=sys.stderr)
        return 2
    for r in args.rules:
        if not Path(r).is_file():
            print(f"utm inspect: {r}: no such rule file", file=sys.stderr)
            return 2
    if args.bundle is not None and not Path(args.bundle).is_file():
        print(f"utm inspect: {args.bundle}: no such bundle file", file=sys.stderr)
        return 2
    base = EngineConfig(checksum=ChecksumMode(args.checksum))
    try:
        cfg, cf = engine_config(args.config, base, args.sets)
        for w in cf.warnings:
            print(f"utm inspect: warning: {w}", file=sys.stderr)
        unknown = cf.ignored
    except ConfigError as e:
        print(f"utm inspect: {'-c ' if args.config is not None else '--set '}{e}", file=sys.stderr)
        return 2
    if unknown:
        names = sorted(set(unknown))
        print(f"utm inspect: warning: {len(names)} unknown setting(s) ignored: " + ", ".join(names[:20])
              + (" ..." if len(names) > 20 else ""), file=sys.stderr)
    if args.http_headers:
        from dataclasses import replace
        cfg = replace(cfg, http_log_headers=True)
    from inspection.detect.errors import BundleError  # the detector loads only with -S or --bundle
    from signatures.errors import RuleFileError, VariableError

    on_engine: Callable[[object], None] | None = None
    file_scanner = None
    disarmer = None
    # a content scanner gives fileinfo verdicts (`utm scan`); sanitising needs its `suspicious`
    if args.yara or args.hashes or args.scan_bundle or args.sanitize_dir is not None:
        from firmware.cli.scan import SourceError, load_sources
        from inspection.files.scanner import ContentScanner
        from inspection.files.scanner_stream import StreamScanner
        try:
            hashes, matchers, _ = load_sources(args.hashes, args.yara, bundle=args.scan_bundle)
        except SourceError as e:
            print(f"utm inspect: {e}", file=sys.stderr)
            return 2
        content = ContentScanner(hashes, matchers)
        if args.sanitize_dir is not None:
            if args.sanitize_dir.exists() and not args.sanitize_dir.is_dir():
                print(f"utm inspect: --sanitize-dir {args.sanitize_dir}: not a folder", file=sys.stderr)
                return 2
            try:
                disarmer = _disarmer(args, content)
            except OSError as e:
                print(f"utm inspect: --sanitize-dir {args.sanitize_dir}: {e.strerror or e}", file=sys.stderr)
                return 2
        file_scanner = StreamScanner(content, disarmer, max_held=cfg.file_scan_memcap)

        def use_scanner(engine) -> None:
            engine.files.scanner = file_scanner
            engine.files.disarmer = disarmer
        on_engine = use_scanner
    try:
        urlcat = _urlcat(args)
    except ValueError as e:
        print(f"utm inspect: {e}", file=sys.stderr)
        return 2
    try:
        summary = inspect_files(paths, cfg, Path(args.logdir), rule_files=[Path(r) for r in args.rules],
                                bundle=Path(args.bundle) if args.bundle is not None else None, urlcat=urlcat,
                                on_engine=on_engine)
    except (RuleFileError, VariableError) as e:
        print(f"utm inspect: {e}", file=sys.stderr)
        return 2
    except BundleError as e:
        print(f"utm inspect: bundle refused: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # the captures' own read errors are in the summary: this is the log side
        print(f"utm inspect: cannot write the logs to {e.filename or args.logdir}: {e.strerror or e} "
              "(what is there is incomplete)", file=sys.stderr)
        return 2
    for err in summary.capture_errors:
        print(f"utm inspect: error: {err}", file=sys.stderr)
    if not args.quiet:
        print_summary(summary, Path(args.logdir) / "eve.json")
        if file_scanner is not None:
            c = file_scanner.content.counters
            print("files scanned: " + (", ".join(f"{k}={v}" for k, v in sorted(file_scanner.verdicts.items()))
                                       or "none") + f" ({c.members} members unpacked)")
        if disarmer is not None:
            print(_sanitise_summary(disarmer, args.sanitize_dir))
    if args.export_to is not None and not _export(Path(args.logdir) / "eve.json", args.export_to, args.quiet):
        return 2
    return 1 if summary.capture_errors else 0


def _disarmer(args: argparse.Namespace, content):  # -> Disarmer; raises OSError
    """Sanitising for the run: copies in --sanitize-dir, rescanned by a scanner with the same
    definitions (its own counters, so copies do not count as scanned files)."""
    from inspection.files.disarm import Disarmer, DisarmLimits
    from inspection.files.scanner import ContentScanner
    from inspection.io.copydir import DirCopyStore

    store = DirCopyStore(args.sanitize_dir)
    again = ContentScanner(content.hashes, content.matchers, content.limits)
    limits = DisarmLimits(max_files=args.sanitize_max_files, max_bytes=args.sanitize_max_mb << 20)
    return Disarmer(store, limits, rescan=again.scan)


def _sanitise_summary(d, folder: Path) -> str:
    """One line: what became of the suspicious files, and every limit hit."""
    c = d.counters
    line = (f"files sanitised: {c.sanitised} ({c.written} copies written to {folder}, {c.bytes_written} bytes; "
            f"{c.already_stored} already there)")
    kept = {"not whole": c.not_whole, "sanitiser refused": c.failed, "folder file limit": c.files_limit,
            "folder size limit": c.bytes_limit, "copies waiting limit": c.pending_limit,
            "write errors": c.store_errors, "found malicious": c.undone}
    hit = [f"{k}={v}" for k, v in kept.items() if v]
    return line + ("; not sanitised: " + ", ".join(hit) if hit else "")


def _urlcat(args: argparse.Namespace):  # -> UrlCategorizer | None
    """The categorizer for --categories/--apps, or None (then the engine does no lookups at all)."""
    if args.categories is None and args.apps is None:
        return None
    from inspection.policy.urlcat import UrlCategorizer
    from signatures.apps import load_apps
    from signatures.categories.errors import CategoryError
    from signatures.categories.lookup import CategoryDB

    try:
        db = CategoryDB.load(Path(args.categories)) if args.categories is not None else None
        apps = load_apps(Path(args.apps) if args.apps else None) if args.apps is not None else None
    except CategoryError as e:
        raise ValueError(f"categories refused: {e}") from None
    return UrlCategorizer(db, apps)


def _export(eve: Path, folder: Path, quiet: bool) -> bool:
    """Queue the run's alerts for the cloud link (the engine itself never imports cloudlink)."""
    from cloudlink.errors import CloudlinkError
    from cloudlink.export import export_eve
    try:
        r = export_eve(eve, folder)
    except (CloudlinkError, OSError) as e:
        print(f"utm inspect: --export-to {folder}: {e}", file=sys.stderr)
        return False
    if not quiet:
        refused = sum(r.refused.values())
        print(f"exported to {folder}: {r.alerts} alerts, {r.queued} queued, {r.duplicates} already queued"
              + (f", {r.dropped} dropped by the queue cap" if r.dropped else "")
              + (f", {r.lost_disk_full} lost (disk full)" if r.lost_disk_full else "")
              + (f", {refused} refused (" + ", ".join(f"{k}={v}" for k, v in sorted(r.refused.items())) + ")"
                 if refused else ""))
    return True


def print_summary(s: RunSummary, eve: Path, out: TextIO | None = None) -> None:
    w = (out or sys.stdout).write
    w(f"eve: {eve}\n")
    w(f"packets: {s.packets}\n")
    w(f"bytes: {s.bytes}\n")
    w(f"flows: {s.flows}\n")
    if s.rules_loaded or s.rules_skipped:
        skipped = sum(s.rules_skipped.values())
        w(f"rules: {s.rules_loaded} loaded, {skipped} skipped"
          + (" (" + ", ".join(f"{k}={v}" for k, v in sorted(s.rules_skipped.items())) + ")" if skipped else "")
          + f"; alerts: {s.alerts}"
          + (f" ({s.alerts_thresholded} more held back by threshold/detection_filter)"
             if s.alerts_thresholded else "") + "\n")
        w(f"rules load: {s.rules_load_seconds:.3f} s "
          f"({'compiled bundle' if s.rules_source == 'bundle' else 'parsed and compiled'})\n")
    if s.categories is not None:
        c = s.categories
        per = ", ".join(f"{k[9:]}={v}" for k, v in c.items() if k.startswith("category."))
        w(f"categories: {c['lookups']} lookups, {c['categorised']} categorised, {c['blocked']} blocked"
          + (f" ({per})" if per else "") + f"; apps recognised: {c['apps']}\n")
    w("events: " + (", ".join(f"{k}={v}" for k, v in sorted(s.events.items())) or "none") + "\n")
    if s.anomalies:
        w("anomalies:\n")
        for name, n in sorted(s.anomalies.items(), key=lambda kv: (-kv[1], kv[0])):
            w(f"  {name}: {n}\n")
    else:
        w("anomalies: none\n")
    hit = {k: v for k, v in s.limits.items() if v and not k.endswith(("timeouts", "gaps"))}
    if hit:
        w("limits hit: " + ", ".join(f"{k}={v}" for k, v in sorted(hit.items())) + "\n")
    if s.bad_checksums:
        w(f"bad checksums: {s.bad_checksums} (TCP segments with one are not reassembled; -k all logs each)\n")
    if s.checksum_auto_disabled:
        w("note: most checksums were wrong (offloaded capture?); validation turned off, as with -k none\n")
    w(f"elapsed: {s.elapsed:.3f} s\n")
    w(f"Mbit/s: {s.mbit_per_s:.1f}\n")
    w(f"packets/s: {s.packets_per_s:.0f}\n")
