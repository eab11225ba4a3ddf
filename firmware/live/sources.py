"""What a live worker judges with, and how it is (re)built: at start, at a restart and at every reload.

Rules, categories and file scanners come from the command line and, with
`--definitions PKG`, from a signed package. The package path is opened
afresh each time (the agent switches `STATE/definitions/current.pkg`, a
symlink, and then asks for a reload), verified again with the trusted keys
and unpacked into a new private folder; the folder of the definitions in use
is removed once they are replaced. The policy's modes and depth are re-read
from `--net-config FILE` the same way, so a reload takes what `utm net apply`
committed. A restarted worker builds from the same sources, so it never
falls back to what the box started with.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from inspection.config import ChecksumMode, EngineConfig
from inspection.config_file import ConfigFile, engine_config
from inspection.errors import ConfigError
from inspection.io.offline import RunSummary, load_bundle_inspector, load_inspector
from inspection.policy.dnsblock import DnsBlockConfig
from inspection.policy.exclusions import Exclusions
from inspection.policy.verdict import CATEGORY_PREFIX, FailMode, PolicyConfig

if TYPE_CHECKING:
    from firmware.live.worker import WorkerSpec
    from inspection.detect.inspector import RuleInspector

# netconfig's threat classes -> the live policy's detect-only classes: every rule, every malicious
# file, every blocked URL category, the URL category "phishing"
MODE_CLASSES = {"intrusion": "rules", "malware": "file", "category": "category",
                "phishing": CATEGORY_PREFIX + "phishing"}

# no checksum validation: locally sent and veth/GSO packets arrive with checksums left to the NIC
# (NFQA_SKB_INFO "not ready"), and a bad one on the wire is the receiver's to refuse; inline: data is
# inspected when it arrives, before it is acknowledged (a verdict must come before the peer has it).
# fileinfo carries sha256 and md5 (what the cloud keeps); sha1 on request (`--set files.hashes=...`):
# every digest runs over each queued file byte while the download waits
LIVE_BASE = EngineConfig(checksum=ChecksumMode.NONE, stream_inline=True, file_hashes=("md5", "sha256"))
CHECKSUM_KEY = "stream.checksum-validation"      # Suricata's; `utm inspect` uses -k instead
_TRUE = ("1", "yes", "true", "on")
# what a reload of the -c file changes in a running worker; the rest of EngineConfig is the engine's
# own (stream, flow, defrag, app-layer) and is taken by a worker that starts (or restarts)
OUTPUT_FIELDS = ("alert_packet", "alert_payload", "alert_metadata", "ipv6_compress", "xff", "http_log_headers")
RULE_FIELDS = ("address_vars", "port_vars")


class SourceLoadError(Exception):
    """A definitions package or network config that cannot be used (one line: `reason`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Judges:
    """Everything a worker judges traffic with; loaded together, swapped together on reload."""

    inspector: "RuleInspector | None"
    urlcat: Any = None          # UrlCategorizer | None
    scanner: Any = None         # StreamScanner | None


@dataclass(frozen=True, slots=True)
class Loaded:
    """Judges, policy and engine config built from the sources, the definitions version and its unpack folder."""

    judges: Judges
    policy: PolicyConfig
    definitions_version: str | None = None
    folder: Path | None = None      # private unpack folder of the package; `discard` removes it
    package: Path | None = None     # the file the package path resolved to when it was verified
    exclusions: Exclusions = Exclusions()   # the network config's engine-side exclusions
    engine: EngineConfig | None = None      # from `-c FILE` as it is now (None: the spec's, no file)
    queue_range: tuple[int, int] | None = None   # the network config's queues as it is now (None: no file)
    restart_needed: tuple[str, ...] = ()    # engine settings of the file a reload kept as they were


@dataclass(frozen=True, slots=True)
class NetSettings:
    """What `utm run` takes from a netconfig file."""

    queues: tuple[int, int]
    fail: FailMode
    depth: int
    detect_only: tuple[str, ...]
    enforce: tuple[str, ...] = ()           # narrower classes in block mode under a detect-only broader one
    exclusions: Exclusions = Exclusions()
    dns_block_answer: tuple[str, ...] = ()   # `[inspection] dns_block_answer`; () = not set there


def net_settings(path: Path | str) -> NetSettings:
    """Read the network config's queues, fail mode, depth and modes (raises ConfigError)."""
    from netconfig.errors import ConfigError as NetConfigError
    from netconfig.schema import Action, load

    try:
        net = load(path)
    except NetConfigError as e:
        raise ConfigError("--net-config", f"{path}: {e}") from None
    detect = {c for c, action in net.modes if action is Action.DETECT}
    classes = [MODE_CLASSES[c] for c in sorted(detect)]
    enforce = []
    if "category" in detect and "phishing" not in detect:
        enforce.append(MODE_CLASSES["phishing"])     # phishing keeps blocking under category = detect
    for ct, action in net.classtypes:
        if action is Action.DETECT:
            classes.append(ct)
        elif "intrusion" in detect:
            enforce.append(ct)                       # this classtype keeps blocking under intrusion = detect
    ex = net.exclusions
    try:
        exclusions = Exclusions.build(rules=ex.rules, hashes=ex.hashes, domains=ex.domains, urls=ex.urls,
                                      addresses=ex.addresses)
    except ConfigError as e:
        raise ConfigError("--net-config", f"{path}: {e}") from None
    insp = net.inspection
    return NetSettings(insp.queues, FailMode(insp.fail_mode.value), insp.depth, tuple(classes), tuple(enforce),
                       exclusions, insp.dns_block_answer)


def live_engine(config: Path | None, sets: Sequence[str]) -> tuple[EngineConfig, ConfigFile]:
    """The engine config of `utm run`: the -c file, then --set, over the live defaults, with what the
    live path cannot do without put back (checksums unchecked, inline stream; said in the returned
    warnings) and the reassembly depth raised to the file size limit unless a key sets it: a file is
    judged whole up to that limit, and flows without one are handed back at --depth long before.
    Raises ConfigError."""
    cfg, cf = engine_config(config, LIVE_BASE, sets)
    given = dict(item.partition("=")[::2] for item in (*cf.sets, *sets))
    given = {k.strip(): v.strip() for k, v in given.items()}
    if not cfg.stream_inline:
        cf.warnings.append("stream.inline: kept on: the live path inspects data when it arrives, "
                           "before the receiver acknowledges it")
    if given.get(CHECKSUM_KEY, "").lower() in _TRUE:
        cf.warnings.append(f"{CHECKSUM_KEY}: kept off: queued packets carry checksums the NIC fills in later")
    cf.ignored = [k for k in cf.ignored if k != CHECKSUM_KEY]
    cfg = replace(cfg, checksum=ChecksumMode.NONE, stream_inline=True)
    if "stream.reassembly.depth" not in given:
        cfg = replace(cfg, stream_depth=max(cfg.stream_depth, cfg.file_size_limit))
    return cfg, cf


def restart_needed(running: EngineConfig, new: EngineConfig) -> tuple[str, ...]:
    """The EngineConfig fields `new` changes that a running worker cannot take (not output, not rules)."""
    live = (*OUTPUT_FIELDS, *RULE_FIELDS)
    return tuple(f.name for f in fields(EngineConfig)
                 if f.name not in live and getattr(running, f.name) != getattr(new, f.name))


def reloaded_engine(running: EngineConfig, new: EngineConfig) -> EngineConfig:
    """What a running worker runs with after a reload: its engine's own settings, `new`'s output and rules."""
    return replace(running, **{k: getattr(new, k) for k in (*OUTPUT_FIELDS, *RULE_FIELDS)})


def _engine(spec: "WorkerSpec", starting: bool = False) -> EngineConfig:
    """The spec's engine config, re-read from its -c file if it has one (raises SourceLoadError). A
    worker that starts (a restart, a new queue) while the file is broken takes the config `utm run`
    checked at its start instead: refusing would leave its queue without a worker until the file is
    mended (bypassed, or dropped when fail-closed); a reload refuses it and keeps what it has."""
    if spec.config_file is None:
        return spec.engine
    try:
        return live_engine(spec.config_file, spec.sets)[0]
    except ConfigError as e:
        err = config_error(spec.config_file, e)
        if not starting:
            raise SourceLoadError(str(err)) from None
    print(f"utm run: worker {spec.queue}: {err}; starting with the settings `utm run` started with", file=sys.stderr)
    return spec.engine


def config_error(config: Path, e: ConfigError) -> ConfigError:
    """The error as one line naming the -c file once: ``-c FILE: KEY: what is wrong`` (``-c FILE: cannot read...``)."""
    text, head = str(e), f"{config}: "
    return ConfigError(f"-c {config}", text[len(head):] if text.startswith(head) else text)


def load_all(spec: "WorkerSpec", starting: bool = False) -> Loaded:
    """Build judges, policy and engine config from the spec's sources. Raises SourceLoadError for the
    package, the network config or the -c file (not when `starting`: see `_engine`), and the loaders'
    errors (RuleFileError, BundleError, CategoryError, SourceError)."""
    policy, exclusions, queues = reload_policy(spec)
    engine = _engine(spec, starting)
    spec = replace(spec, engine=engine)      # rule variables and body limit of the file as it is now
    if spec.definitions is None:
        return Loaded(load_judges(spec), policy, exclusions=exclusions, engine=engine, queue_range=queues)
    folder = Path(tempfile.mkdtemp(prefix="utm-definitions-", dir=unpack_dir(spec)))   # 0700
    try:
        resolved = Path(spec.definitions).resolve()     # the symlink as it is now, once
        version, spec = _with_package(spec, resolved, folder)
        return Loaded(load_judges(spec), policy, version, folder, resolved, exclusions, engine, queues)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def unpack_dir(spec: "WorkerSpec", fresh: bool = False) -> Path | None:
    """This queue's folder under the run's unpack root (None: the system's temp folder). `fresh`
    empties it first: what a killed predecessor left behind is no longer anyone's."""
    if spec.unpack_root is None:
        return None
    d = Path(spec.unpack_root) / f"q{spec.queue}"
    if fresh:
        shutil.rmtree(d, ignore_errors=True)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def discard(loaded: Loaded | None) -> None:
    """Remove the unpack folder of definitions that are no longer in use."""
    if loaded is not None and loaded.folder is not None:
        shutil.rmtree(loaded.folder, ignore_errors=True)


def reload_policy(spec: "WorkerSpec") -> tuple[PolicyConfig, Exclusions, tuple[int, int] | None]:
    """The policy with fail mode, modes and depth, the exclusions and the queue range from the network
    config as it is now (command-line --detect-only classes and --depth still apply). A worker whose
    queue the file no longer lists refuses it: the supervisor stops that worker (firmware.live.supervisor)."""
    if spec.net_config is None:
        return spec.policy, Exclusions(), None
    try:
        net = net_settings(spec.net_config)
    except ConfigError as e:
        raise SourceLoadError(str(e)) from None
    first, last = net.queues
    if spec.cli_queues is not None and net.queues != spec.cli_queues:
        raise SourceLoadError(f"{spec.net_config}: queues {first}:{last}, but `utm run` was given "
                              f"--queues {spec.cli_queues[0]}:{spec.cli_queues[1]}")
    if spec.cli_fail is not None and net.fail is not spec.cli_fail:
        raise SourceLoadError(f"{spec.net_config}: fail_mode = {net.fail.value}, but `utm run` was given "
                              f"--fail {spec.cli_fail.value}")
    if spec.queue >= 0 and not first <= spec.queue <= last:
        raise SourceLoadError(f"{spec.net_config}: queue {spec.queue} is not in the queues {first}:{last} any more")
    depth = spec.cli_depth if spec.cli_depth is not None else net.depth
    # the file's block address when it names one (re-read at each reload), else the command line's
    dns = DnsBlockConfig.parse(list(net.dns_block_answer)) if net.dns_block_answer else spec.policy.dns_block
    return replace(spec.policy, inspect_depth=depth, detect_only=frozenset((*spec.cli_detect_only, *net.detect_only)),
                   enforce=frozenset(net.enforce), dns_block=dns, fail=net.fail), net.exclusions, net.queues


def _with_package(spec: "WorkerSpec", resolved: Path, folder: Path) -> tuple[str, "WorkerSpec"]:
    """Verify and unpack the package file `resolved`; the spec with its components added."""
    from firmware.cli.definitions import unpack_definitions
    from signatures.definitions import DefinitionsError

    pkg = f"definitions {resolved.name}"     # short: the reason must survive the hook's one-line report
    try:
        files = unpack_definitions(str(resolved), list(spec.trusted_keys), folder)
    except DefinitionsError as e:
        raise SourceLoadError(f"{pkg}: {e.reason}") from None
    except OSError as e:
        raise SourceLoadError(f"{pkg}: {e.strerror or e}") from None
    if files.categories is not None and spec.categories is not None:
        raise SourceLoadError(f"{pkg}: give either --categories or a package with categories")
    if files.rules is not None and (spec.rule_files or spec.bundle is not None):
        raise SourceLoadError(f"{pkg}: give either -S/--bundle or a package with rules")
    return files.version, replace(
        spec, bundle=files.rules if files.rules is not None else spec.bundle,
        categories=files.categories if files.categories is not None else spec.categories,
        yara=(*spec.yara, *(str(p) for p in files.yara)), hashes=(*spec.hashes, *(str(p) for p in files.hashes)))


def load_judges(spec: "WorkerSpec") -> Judges:
    """Rules, URL categories and the file scanner for the spec's own files (raises on a bad source:
    RuleFileError, BundleError, CategoryError, SourceError)."""
    inspector = load_rules(spec)
    urlcat = scanner = None
    if spec.categories is not None or spec.apps is not None:
        from inspection.policy.urlcat import UrlCategorizer
        from signatures.apps import load_apps
        from signatures.categories.lookup import CategoryDB
        db = CategoryDB.load(spec.categories) if spec.categories is not None else None
        apps = load_apps(Path(spec.apps) if spec.apps else None) if spec.apps is not None else None
        urlcat = UrlCategorizer(db, apps)
    if spec.hashes or spec.yara or spec.scan_bundle:
        from firmware.cli.scan import load_sources
        from inspection.files.scanner import ContentScanner
        from inspection.files.scanner_stream import StreamScanner
        hashes, matchers, _ = load_sources(list(spec.hashes), list(spec.yara), bundle=spec.scan_bundle)
        scanner = StreamScanner(ContentScanner(hashes, matchers), max_held=spec.engine.file_scan_memcap)
    return Judges(inspector, urlcat, scanner)


def load_rules(spec: "WorkerSpec") -> "RuleInspector | None":
    """The inspector for the spec's rules (raises RuleFileError / BundleError)."""
    summary = RunSummary()
    if spec.rule_files:
        return load_inspector(list(spec.rule_files), summary, spec.engine.http_body_limit, spec.engine)
    if spec.bundle is not None:
        return load_bundle_inspector(spec.bundle, summary, spec.engine.http_body_limit)
    return None
