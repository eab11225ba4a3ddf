"""The base config file plus the desired state remote commands set: one merged config, rendered as TOML.

Pure. The overlay (isolated MACs, modes per threat class, exclusions; the
agent records them in `desired.json`) is applied on top of the base file and
never removes what the file declares: isolated devices and exclusions are
unions, a release or an un-exclusion can only take back what the overlay
added. Modes are the one thing the overlay overrides: a `set-mode` is a
decision about the base's mode (a threat class in `[modes]`, a rule classtype
in `[classtypes]`, `*` for all of them). The merged config is rendered as TOML so the
committed file (`committed.toml`) is exactly what was applied and what
`utm run --net-config` reads. Entries this build cannot apply are returned
in words (`not_applied`), never dropped silently.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Mapping

from netconfig.errors import ConfigError
from netconfig.schema import RESERVED_CLASSES, THREAT_CLASSES, NetConfig, from_dict, loads

SECTION_ORDER = ("ports", "management", "inspection", "modes", "classtypes", "isolation", "exclusions")
ALL_CLASSES = "*"


@dataclass(frozen=True, slots=True)
class Overlay:
    """The desired state as netconfig sees it (values already normalised by the agent)."""

    isolated: tuple[str, ...] = ()                      # MACs
    modes: tuple[tuple[str, str], ...] = ()             # (class or '*', block|detect)
    exclusions: tuple[tuple[str, str], ...] = ()        # (mac|ip|rule|domain, value)
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Merged:
    config: NetConfig
    text: bytes                          # TOML of the merged config; loads back to `config`
    not_applied: tuple[str, ...] = ()    # overlay entries this build does not apply, in words


def merge(base_doc: Mapping[str, Any], overlay: Overlay, *, source: str = "") -> Merged:
    """Base (a parsed TOML document) + overlay -> the merged, validated config. A conflict (a device
    both isolated and excluded) or an invalid value raises ConfigError naming the key."""
    base = from_dict(base_doc)
    doc: dict[str, Any] = copy.deepcopy(dict(base_doc))
    notes: list[str] = []
    isolated = list(base.isolated)
    for mac in overlay.isolated:
        m = mac.lower()
        if m in base.exclusions.devices:
            raise ConfigError("isolation.devices", f"{m} is excluded by the base config; it cannot be isolated")
        if m not in isolated:
            isolated.append(m)
    ex = base.exclusions
    devices, rules, domains, addresses = list(ex.devices), list(ex.rules), list(ex.domains), list(ex.addresses)
    for kind, value in overlay.exclusions:
        if kind == "mac":
            if value.lower() in isolated:
                raise ConfigError("exclusions.devices", f"{value} is isolated; a device is either isolated or excluded")
            devices += [value.lower()] if value.lower() not in devices else []
        elif kind == "rule":
            rid = _rule_id(value)
            rules += [rid] if rid not in rules else []
        elif kind == "domain":
            domains += [value] if value not in domains else []
        elif kind == "ip":
            addresses += [value] if value not in addresses else []
        else:
            notes.append(f"exclusion {kind} {value}: not supported yet (netconfig has no {kind} exclusions)")
    modes = {c: a.value for c, a in base.modes}
    classtypes = {c: a.value for c, a in base.classtypes}
    wanted = dict(overlay.modes)
    if ALL_CLASSES in wanted:
        modes = {c: wanted[ALL_CLASSES] for c in THREAT_CLASSES}
        classtypes = {c: wanted[ALL_CLASSES] for c in classtypes}
    for cls, mode in sorted(wanted.items()):
        if cls in modes:
            modes[cls] = mode
        elif cls in RESERVED_CLASSES:
            if cls != ALL_CLASSES:
                notes.append(f"mode of class {cls}: not a threat class or rule classtype "
                             f"(use {', '.join(THREAT_CLASSES)}, a classtype or *)")
        else:
            classtypes[cls] = mode          # a rule classtype: its own mode wins over modes.intrusion
    doc["modes"] = {c: modes[c] for c in THREAT_CLASSES}
    if classtypes:
        doc["classtypes"] = classtypes
    if isolated:
        doc["isolation"] = {"devices": isolated}
    excl = dict(doc.get("exclusions", {}))
    for key, values in (("devices", devices), ("rules", rules), ("domains", domains), ("addresses", addresses)):
        if values:
            excl[key] = values
    if excl:
        doc["exclusions"] = excl
    origin = "".join(c if c.isprintable() else "?" for c in source or "the base config")
    head = f"# written by `utm net apply --desired`: {origin} + desired state revision {overlay.revision}\n"
    text = (head + render(doc)).encode()
    cfg = loads(text)
    if cfg != from_dict(doc):   # pragma: no cover - render and loads disagree: a bug, refuse rather than apply
        raise ConfigError("", "the merged config does not read back the same")
    return Merged(cfg, text, tuple(notes))


def _rule_id(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 1 << 32:
        raise ConfigError("exclusions.rules", f"{value!r} is not a signature id")
    return int(value)


def render(doc: Mapping[str, Any]) -> str:
    """A document of one level of tables with strings, integers, booleans and lists of them, as TOML."""
    out: list[str] = []
    for section in sorted(doc, key=lambda s: (SECTION_ORDER.index(s) if s in SECTION_ORDER else 99, s)):
        table = doc[section]
        if not isinstance(table, Mapping):
            raise ConfigError(section, "must be a table")
        out.append(f"[{section}]")
        out += [f"{_key(k)} = {_value(v, f'{section}.{k}')}" for k, v in table.items()]
        out.append("")
    return "\n".join(out)


def _key(k: str) -> str:
    if k and all(c.isascii() and (c.isalnum() or c in "-_") for c in k):
        return k
    return _string(k)


def _string(s: str) -> str:
    # JSON's escapes are TOML's basic-string escapes; DEL must be escaped in TOML but not in JSON
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(v: Any, key: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x, key) for x in v) + "]"
    raise ConfigError(key, f"cannot write a {type(v).__name__} value")
