"""`utm run` (the live data path: NFQUEUE workers under a supervisor) and `utm reload`.

The netfilter ruleset that queues traffic is not written here: see docs/live.md
for the rule shapes the workers expect (queue numbers, marks, --queue-bypass).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from firmware.base.atomic import write_atomic
from firmware.cli.definitions import add_definitions_options
from inspection.config import EngineConfig, parse_size
from inspection.errors import ConfigError
from inspection.policy.dnsblock import DnsBlockConfig
from inspection.policy.verdict import FailMode, PolicyConfig

PIDFILE = "utm-run.pid"
QUEUESFILE = "utm-run.queues"      # the queues of the running `utm run`, one per line: whose reload to wait for
MAX_WORKERS = 64


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the live inspection data path (NFQUEUE workers, root)",
                       description="Bind NFQUEUE queues, inspect queued packets inline and give verdicts: "
                                   "one worker process per queue, restarted when it dies or hangs. "
                                   "SIGHUP or `utm reload` reloads the rules; SIGTERM stops.")
    p.add_argument("--queue", type=int, default=None, metavar="N", help="queue number (default 0)")
    p.add_argument("--queues", default=None, metavar="A:B",
                   help="a range of queues, one worker each (for iptables --queue-balance A:B)")
    rules = p.add_mutually_exclusive_group()
    rules.add_argument("-S", dest="rules", action="append", default=[], metavar="RULES",
                       help="signature file; repeat for several")
    rules.add_argument("--bundle", default=None, metavar="BUNDLE", help="compiled rule bundle")
    p.add_argument("-l", dest="logdir", default=".", metavar="LOGDIR",
                   help="output folder: eve.qN.json per worker, the pid file (default: .)")
    p.add_argument("--net-config", default=None, metavar="FILE",
                   help="take the queues, fail mode, depth and per-class modes from the box's network "
                        "config (`utm net apply`), so the workers and the ruleset agree")
    p.add_argument("--fail", choices=[m.value for m in FailMode], default=None,
                   help="open (default): a full queue passes traffic; closed: it drops. The ruleset's "
                        "--queue-bypass decides what happens when no worker is bound")
    p.add_argument("--bypass-mark", default="0x1", metavar="MARK", help="verdict mark for handed-back flows")
    p.add_argument("--block-mark", default="0x2", metavar="MARK", help="verdict mark on blocked flows' packets")
    p.add_argument("--depth", default=None, metavar="SIZE",
                   help="bytes per flow (both ways) inspected before it is handed back (default 1mb)")
    p.add_argument("--detect-only", action="append", default=[], metavar="CLASS",
                   help="class that alerts without blocking: a rule classtype, 'rules' (every rule), "
                        "'category', 'file'; '*' for all")
    p.add_argument("--no-resets", action="store_true",
                   help="drop blocked flows without answering them (TCP resets, ICMP port unreachable to UDP)")
    p.add_argument("--dns-block-answer", action="append", default=[], metavar="ADDR",
                   help="answer DNS queries for blocked names with this IPv4 and/or IPv6 address "
                        "(where the block page is reached; off by default, docs/live.md)")
    p.add_argument("--stats-every", type=float, default=30.0, metavar="S", help="seconds between stats events")
    p.add_argument("--memory-max", default="auto", metavar="SIZE",
                   help="resident memory a worker may use before it is replaced (auto: three quarters of "
                        "the box's memory shared by the workers; off: no limit)")
    p.add_argument("-c", "--config", default=None, metavar="FILE", type=Path,
                   help="Suricata YAML config, as for `utm inspect -c` (keys not honoured are named once on "
                        "stderr); re-read at each reload; --set wins over it. Checksums stay unchecked and the "
                        "stream inline whatever it says")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="engine setting, as for `utm inspect`")
    p.add_argument("--categories", default=None, metavar="DB",
                   help="URL category database: blocked categories get the block page (HTTP) or resets (TLS)")
    p.add_argument("--apps", nargs="?", const="", default=None, metavar="APPS_TOML",
                   help="record application types (default data: signatures/apps/apps.toml)")
    p.add_argument("--yara", action="append", default=[], metavar="DIR|FILE",
                   help="scan downloaded files with these YARA rules; repeatable")
    p.add_argument("--hashes", action="append", default=[], metavar="FILE",
                   help="scan downloaded files against this SHA-256 list or ClamAV .hdb; repeatable")
    p.add_argument("--scan-bundle", default=None, metavar="BUNDLE",
                   help="scan files with a bundle from `utm scan --write-bundle`")
    add_definitions_options(p)
    p.set_defaults(run=run)

    r = sub.add_parser("reload", help="reload the rules of a running `utm run` (SIGHUP)",
                       description="Ask a running `utm run` to reload: rules, definitions package (opened afresh) "
                                   "and the modes of its --net-config. With --wait, exit 0 only when every worker "
                                   "took the new sources, 1 when one refused them (it keeps the old ones).")
    r.add_argument("-l", dest="logdir", default=".", metavar="LOGDIR", help="the LOGDIR of `utm run`")
    r.add_argument("--wait", type=float, nargs="?", const=120.0, default=None, metavar="S",
                   help="wait up to S seconds (default 120) for every worker's outcome")
    r.set_defaults(run=reload)


def _fail(msg: str) -> int:
    print(f"utm run: {msg}", file=sys.stderr)
    return 2


def _queues(args: argparse.Namespace) -> list[int]:
    if args.queues:
        a, sep, b = args.queues.partition(":")
        if not sep or not a.isdigit() or not b.isdigit() or int(a) > int(b):
            raise ConfigError("--queues", f"expected A:B with A <= B, got {args.queues!r}")
        qs = list(range(int(a), int(b) + 1))
    else:
        qs = [0 if args.queue is None else args.queue]
    if any(not 0 <= q <= 65535 for q in qs) or len(qs) > MAX_WORKERS:
        raise ConfigError("--queue", f"queue numbers are 0-65535, at most {MAX_WORKERS} workers")
    return qs


def from_net_config(args: argparse.Namespace) -> None:
    """Fill queues, fail mode, depth and detect-only classes from `--net-config`; an option given
    on the command line that disagrees with the file is refused (raises ConfigError). The command
    line's own --detect-only and --depth are kept apart so a reload can re-read the file."""
    args.cli_detect_only = tuple(args.detect_only)
    args.cli_depth = args.depth
    if args.net_config is None:
        args.fail = args.fail or "open"
        args.depth = args.depth or "1mb"
        return
    from firmware.live.sources import net_settings

    net = net_settings(args.net_config)
    args.cli_queues = _queues(args) if (args.queue is not None or args.queues) else None
    args.cli_fail = args.fail
    first, last = net_queues(args, net)
    args.queue, args.queues = None, f"{first}:{last}"
    args.fail = net.fail.value
    args.depth = args.depth or str(net.depth)
    args.detect_only = [*args.detect_only, *net.detect_only]
    if net.dns_block_answer:
        if args.dns_block_answer and DnsBlockConfig.parse(args.dns_block_answer) != DnsBlockConfig.parse(
                list(net.dns_block_answer)):
            raise ConfigError("--dns-block-answer", "the network config says dns_block_answer = "
                              + ", ".join(net.dns_block_answer))
        args.dns_block_answer = list(net.dns_block_answer)


def net_queues(args: argparse.Namespace, net) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """The network config's queue range, if the command line's --queue(s) and --fail (if given) agree
    with it and it is not more than `utm run` runs (raises ConfigError): at start and at each reload."""
    first, last = net.queues
    pinned = getattr(args, "cli_queues", None)
    if pinned is not None and pinned != list(range(first, last + 1)):
        raise ConfigError("--queues", f"the network config queues to {first}:{last}")
    fail = getattr(args, "cli_fail", None)
    if fail is not None and fail != net.fail.value:
        raise ConfigError("--fail", f"the network config says fail_mode = {net.fail.value}")
    if last - first + 1 > MAX_WORKERS:
        raise ConfigError("--net-config", f"queues {first}:{last}: at most {MAX_WORKERS} workers")
    return first, last


def net_reload(args: argparse.Namespace, logdir: Path,
               say: Callable[[str], None]) -> Callable[[], list[int] | None]:
    """The supervisor's `on_reload`: the queues of `--net-config` as the file is now, written to
    LOGDIR/utm-run.queues for `utm reload --wait`; None (everything kept) when the file cannot be used
    (`say` tells why; the workers refuse it too, so the reload fails). The fail mode is each worker's
    to take (it binds its queue again, firmware.live.worker.rebind)."""
    from firmware.live.sources import net_settings

    def reread() -> list[int] | None:
        try:
            first, last = net_queues(args, net_settings(args.net_config))
        except ConfigError as e:
            say(f"reload: {e}; queues, fail mode and the rest kept as they were")
            return None
        queues = list(range(first, last + 1))
        write_atomic(logdir / QUEUESFILE, "".join(f"{q}\n" for q in queues).encode())
        return queues
    return reread


def _mark(key: str, value: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise ConfigError(key, f"expected a number like 0x1, got {value!r}") from None


def engine_settings(args: argparse.Namespace, say: Callable[[str], None] | None = None) -> EngineConfig:
    """The engine config from `-c FILE` and `--set` (firmware.live.sources.live_engine). An unknown
    --set key is refused (a typo on the command line of a box); the file's keys that are not honoured,
    and what the live path keeps whatever the file says, are told to `say`, once. Raises ConfigError."""
    from firmware.live.sources import config_error, live_engine

    config = getattr(args, "config", None)
    given = {s.partition("=")[0].strip() for s in args.sets}
    try:
        cfg, cf = live_engine(config, args.sets)
    except ConfigError as e:   # one line, naming where the bad value came from
        if config is None or e.key in given or e.key in args.sets:
            raise ConfigError("--set", str(e)) from None
        raise config_error(config, e) from None
    unknown = [k for k in cf.ignored if k in given]
    if unknown:
        raise ConfigError(unknown[0], "unknown setting")
    if say is not None:
        for w in cf.warnings:
            say(f"warning: {w}")
        if cf.ignored:
            names = sorted(set(cf.ignored))
            say(f"warning: {config}: {len(names)} setting(s) not honoured, ignored: " + ", ".join(names[:20])
                + (" ..." if len(names) > 20 else ""))
    return cfg


def build_spec(args: argparse.Namespace, say: Callable[[str], None] | None = None):  # type: ignore[no-untyped-def]
    """Validated worker spec from the arguments (raises ConfigError); `say` hears the config file's warnings."""
    from inspection.config import parse_size
    from firmware.live.bypass import INSPECT_CHAIN
    from firmware.live.worker import WorkerSpec

    cfg = engine_settings(args, say)
    policy = PolicyConfig(bypass_mark=_mark("--bypass-mark", args.bypass_mark),
                          block_mark=_mark("--block-mark", args.block_mark),
                          inspect_depth=parse_size("--depth", args.depth or "1mb"),
                          detect_only=frozenset(args.detect_only), fail=FailMode(args.fail or "open"),
                          resets=not args.no_resets, dns_block=DnsBlockConfig.parse(args.dns_block_answer))
    if args.stats_every <= 0:
        raise ConfigError("--stats-every", "must be positive")
    cli_depth = getattr(args, "cli_depth", None)
    return WorkerSpec(queue=0, logdir=Path(args.logdir), rule_files=tuple(Path(r) for r in args.rules),
                      bundle=Path(args.bundle) if args.bundle else None, engine=cfg, policy=policy,
                      stats_every=args.stats_every, resets=not args.no_resets,
                      categories=Path(args.categories) if args.categories else None, apps=args.apps,
                      hashes=tuple(args.hashes), yara=tuple(args.yara), scan_bundle=args.scan_bundle,
                      definitions=Path(args.definitions) if args.definitions else None,
                      trusted_keys=tuple(args.trusted_key),
                      net_config=Path(args.net_config) if args.net_config else None,
                      cli_detect_only=tuple(getattr(args, "cli_detect_only", ())),
                      cli_depth=parse_size("--depth", cli_depth) if cli_depth else None,
                      bypass_chain=INSPECT_CHAIN if args.net_config else None,
                      queue_range=(qs[0], qs[-1]) if args.net_config and (qs := _queues(args)) else None,
                      config_file=getattr(args, "config", None), sets=tuple(args.sets),
                      cli_fail=FailMode(cf) if args.net_config and (cf := getattr(args, "cli_fail", None)) else None,
                      cli_queues=(cq[0], cq[-1]) if args.net_config and (cq := getattr(args, "cli_queues", None)) else None)


def run(args: argparse.Namespace) -> int:
    """The package of `--definitions` is not unpacked here: each worker opens, verifies and unpacks
    it itself, at start and at every reload (firmware.live.sources)."""
    from firmware.live.sources import SourceLoadError, discard, load_all
    from firmware.live.supervisor import Supervisor, Watchdog
    from firmware.live.worker import run_worker, with_queue

    try:
        from_net_config(args)
        queues = _queues(args)
        spec = build_spec(args, say=lambda m: print(f"utm run: {m}", file=sys.stderr))
        memory_max = worker_memory_max(args.memory_max, len(queues))
    except ConfigError as e:
        return _fail(str(e))
    for r in args.rules:
        if not Path(r).is_file():
            return _fail(f"{r}: no such rule file")
    if args.bundle is not None and not Path(args.bundle).is_file():
        return _fail(f"{args.bundle}: no such bundle file")
    for what, path in (("category database", args.categories), ("scan bundle", args.scan_bundle),
                       *(("hash list", h) for h in args.hashes)):
        if path and not Path(path).is_file():
            return _fail(f"{path}: no such {what}")
    for y in args.yara:
        if not Path(y).exists():
            return _fail(f"{y}: no such YARA file or folder")
    if args.definitions is not None and not Path(args.definitions).is_file():
        return _fail(f"{args.definitions}: no such definitions package")
    try:   # fail here, once, rather than in every worker
        discard(load_all(with_queue(spec, queues[0])))
    except SourceLoadError as e:
        return _fail(e.reason)
    except Exception as e:   # noqa: BLE001 - RuleFileError, BundleError, CategoryError, SourceError: one line
        return _fail(f"definitions: {e}")
    if os.geteuid() != 0:
        return _fail("needs root (NFQUEUE netlink socket and AF_PACKET resets)")
    logdir = Path(args.logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    pidfile = logdir / PIDFILE
    if args.definitions is not None:   # the workers unpack under it; removed when the run ends, with
        import shutil                  # whatever a killed worker left there
        import tempfile
        spec = replace(spec, unpack_root=Path(tempfile.mkdtemp(prefix="utm-run-")))

    def target(queue: int, beat: object, restarts: int) -> int:
        # forked: `sup.announcing` is as it was when this worker was started (a queue a reload added)
        return run_worker(replace(with_queue(spec, queue), announce=queue in sup.announcing), beat, restarts)

    say = lambda m: print(f"utm run: {m}", file=sys.stderr, flush=True)   # noqa: E731
    sup = Supervisor(queues, target, Watchdog(memory_max=memory_max), log=say,
                     on_reload=net_reload(args, logdir, say) if args.net_config is not None else None)
    print(f"utm run: queues {queues[0]}" + (f"-{queues[-1]}" if len(queues) > 1 else "")
          + f", eve in {logdir}/eve.qN.json, pid {os.getpid()}", file=sys.stderr, flush=True)
    def started() -> None:
        write_atomic(logdir / QUEUESFILE, "".join(f"{q}\n" for q in queues).encode())
        write_atomic(pidfile, f"{os.getpid()}\n".encode())

    try:
        return sup.run(started=started)
    finally:
        for f in (pidfile, logdir / QUEUESFILE):
            try:
                f.unlink()
            except FileNotFoundError:
                pass
        if spec.unpack_root is not None:
            shutil.rmtree(spec.unpack_root, ignore_errors=True)


def worker_memory_max(value: str, workers: int, meminfo: str = "/proc/meminfo") -> int | None:
    """`--memory-max`: bytes, None for "off"; "auto" is three quarters of MemTotal shared by the
    workers (the rest is the kernel's, dnsmasq's, the agent's and the web page's): a guard against
    a worker running away, above what a reload (old and new rules side by side) needs on a box
    sized for its rules. Raises ConfigError."""
    if value == "off":
        return None
    if value != "auto":
        n = parse_size("--memory-max", value)
        if n < 1 << 20:
            raise ConfigError("--memory-max", f"{value} is less than 1 MB: no worker would start")
        return n
    try:
        with open(meminfo) as f:
            total_kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError, IndexError):
        raise ConfigError("--memory-max", f"auto: cannot read MemTotal from {meminfo}; give a size or off") from None
    return (total_kb << 10) * 3 // 4 // max(1, workers)


def running_pid(logdir: Path) -> tuple[int | None, str]:
    """The pid of the `utm run` recorded in LOGDIR if it is running, else None and why."""
    pidfile = Path(logdir) / PIDFILE
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None, f"{pidfile}: no running `utm run` recorded there"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None, f"process {pid} from {pidfile} is not running"
    except PermissionError:
        return None, f"not allowed to signal process {pid}"
    return pid, ""


def signal_reload(logdir: Path) -> tuple[bool, str]:
    """SIGHUP the `utm run` of LOGDIR: (True, its pid) or (False, why not)."""
    pid, why = running_pid(logdir)
    if pid is None:
        return False, why
    try:
        os.kill(pid, signal.SIGHUP)
    except (ProcessLookupError, PermissionError) as e:
        return False, f"cannot signal process {pid}: {e.strerror or e}"
    return True, str(pid)


def reload(args: argparse.Namespace) -> int:
    logdir = Path(args.logdir)
    asked = time.time()
    ok, msg = signal_reload(logdir)
    if not ok:
        print(f"utm reload: {msg}", file=sys.stderr)
        return 2
    if args.wait is None:
        print(f"utm reload: asked process {msg} to reload its rules")
        return 0
    rc, msg = wait_reload(logdir, asked, args.wait)
    print(f"utm reload: {msg}", file=sys.stderr if rc else sys.stdout)
    return rc


def wait_reload(logdir: Path, asked: float, timeout: float) -> tuple[int, str]:
    """Wait for each worker's reload record newer than `asked`: (0, what) all took it; (1, why) one
    refused or none came in time; (2, why) the run's queues are unknown."""
    from firmware.live.worker import RELOAD_RECORD
    try:
        queues = [int(x) for x in (logdir / QUEUESFILE).read_text().split()]
    except (OSError, ValueError):
        return 2, f"{logdir / QUEUESFILE}: unreadable; cannot wait for the workers"
    deadline = time.monotonic() + timeout
    done: dict[int, dict] = {}
    while len(done) < len(queues):
        try:   # a reload may change the queues (--net-config): read again; workers answer after the change
            queues = [int(x) for x in (logdir / QUEUESFILE).read_text().split()] or queues
        except (OSError, ValueError):
            pass
        done = {q: r for q, r in done.items() if q in queues}
        for q in queues:
            try:
                rec = json.loads((logdir / RELOAD_RECORD.format(q)).read_bytes())
            except (OSError, ValueError):
                continue
            if isinstance(rec, dict) and isinstance(rec.get("started_at"), (int, float)) and rec["started_at"] >= asked:
                done[q] = rec
        if len(done) < len(queues):
            if time.monotonic() > deadline:
                left = ", ".join(str(q) for q in queues if q not in done)
                return 1, f"no outcome from worker(s) {left} within {timeout:g} s"
            time.sleep(0.1)
    refused = [(q, r) for q, r in sorted(done.items()) if not r.get("ok")]
    if refused:
        q, r = refused[0]
        return 1, f"worker {q} refused the reload and kept what it had: {r.get('error')}"
    versions = sorted({str(r.get("definitions_version")) for r in done.values() if r.get("definitions_version")})
    kept = sorted({k for r in done.values() for k in (r.get("restart_needed") or ()) if isinstance(k, str)})
    return 0, (f"{len(done)} worker(s) reloaded" + (f", definitions {', '.join(versions)}" if versions else "")
               + (f"; -c settings kept until `utm run` restarts: {', '.join(kept)}" if kept else ""))
