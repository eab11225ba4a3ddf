"""Suricata's ``suricata.yaml`` read as ``--set`` overrides.

Users bring the YAML file they already have (suricata-verify cases ship one
too); we read the keys `EngineConfig` honours, named as ``--set`` names them
(``outputs.eve.alert.xff.mode``, ``stream.midstream``...), and hand back the
rest so the caller can say once which keys were ignored. An ``include:`` of a
file that is not there is a warning, as the shipped configs include files a
box does not have; a file that is not YAML, or a bad value, is a `ConfigError`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from inspection.config import EngineConfig
from inspection.errors import ConfigError

MAX_INCLUDE_DEPTH = 8
MAX_CONFIG_BYTES = 4 << 20
# Output types whose settings we read; the keys under any other output are ignored (and named).
_EVE_OUTPUTS = ("eve-log",)


@dataclass(slots=True)
class ConfigFile:
    """What a config file said: the settings as ``KEY=VALUE`` strings (in file order, an
    included file first), the keys we do not honour, and warnings for the operator."""

    sets: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_config_file(path: Path) -> ConfigFile:
    """Flatten `path` (and what it includes) into settings; raises `ConfigError`."""
    out = ConfigFile()
    _read(Path(path), out, 0)
    return out


def apply_config_file(path: Path, base: EngineConfig, sets: Sequence[str] = ()) -> tuple[EngineConfig, ConfigFile]:
    """`base` with the file's settings, then `sets` (the command line wins); the
    returned `ConfigFile.ignored` also holds unknown ``--set`` keys."""
    cf = read_config_file(path)
    cfg, unknown = EngineConfig.from_sets(cf.sets + list(sets), base)
    known_ignored = set(cf.ignored)
    cf.ignored.extend(k for k in unknown if k not in known_ignored)
    return cfg, cf


def engine_config(path: Path | None, base: EngineConfig, sets: Sequence[str] = ()) -> tuple[EngineConfig, ConfigFile]:
    """What `utm inspect -c` and `utm run -c` run with: `base`, the file's settings if there is a
    file, then `sets`. `ConfigFile.ignored` names what is not honoured (the file's keys and unknown
    `sets` keys) for the caller to say once; raises `ConfigError`."""
    if path is None:
        cfg, unknown = EngineConfig.from_sets(list(sets), base)
        return cfg, ConfigFile(ignored=unknown)
    return apply_config_file(path, base, list(sets))


def _read(path: Path, out: ConfigFile, depth: int) -> None:
    import yaml

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(str(path), f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), f"larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = yaml.safe_load(raw.decode("utf-8", "replace"))
    except yaml.YAMLError as e:
        raise ConfigError(str(path), f"not valid YAML: {str(e).splitlines()[0]}") from None
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise ConfigError(str(path), "expected a mapping at the top level")
    includes = doc.get("include")
    for inc in ([includes] if isinstance(includes, str) else includes or []):
        target = (path.parent / str(inc)) if not Path(str(inc)).is_absolute() else Path(str(inc))
        if depth >= MAX_INCLUDE_DEPTH:
            out.warnings.append(f"{path}: include {inc}: more than {MAX_INCLUDE_DEPTH} levels, not read")
        elif not target.is_file():
            out.warnings.append(f"{path}: include {inc}: no such file, not read")
        else:
            _read(target, out, depth + 1)
    for key, value in doc.items():
        if key == "include":
            continue
        if key == "outputs" and isinstance(value, list):
            _outputs(value, out)
        else:
            _flatten(str(key), value, out)


def _outputs(items: list, out: ConfigFile) -> None:
    """``outputs`` is a list of one-key mappings; only eve-log's settings are ours, named
    ``outputs.eve.*``, with its ``types`` list giving ``outputs.eve.<type>.*``."""
    for item in items:
        if not isinstance(item, dict):
            continue
        for name, body in item.items():
            if name not in _EVE_OUTPUTS:
                out.ignored.append(f"outputs.{name}")
                continue
            if not isinstance(body, dict):
                continue
            for k, v in body.items():
                if k == "types" and isinstance(v, list):
                    for t in v:
                        if isinstance(t, dict):
                            for tname, tbody in t.items():
                                if isinstance(tbody, dict):
                                    _flatten(f"outputs.eve.{tname}", tbody, out)
                elif k != "enabled":   # eve is always written
                    _flatten(f"outputs.eve.{k}", v, out)


def _flatten(prefix: str, value: object, out: ConfigFile) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(value, list):
        if all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            out.sets.append(f"{prefix}=[{','.join(str(v) for v in value)}]")
        else:
            out.ignored.append(prefix)
    elif isinstance(value, bool):
        out.sets.append(f"{prefix}={'yes' if value else 'no'}")
    elif value is None:
        out.ignored.append(prefix)
    else:
        out.sets.append(f"{prefix}={value}")
