"""What each remote command's arguments mean, checked the same way by the cloud (when it signs) and the agent.

Sans-IO and shared, like the protocol: `utm cloud command` refuses a bad MAC
before signing, and the agent refuses it again (it trusts the signature, not
the cloud's typing). Names on the command line: `check-definitions`,
`set-mode`, `exclude`/`unexclude` are aliases of the protocol's kinds.
"""
from __future__ import annotations

import ipaddress
import re

from cloudlink import fields as F
from cloudlink.errors import FieldError
from cloudlink.protocol import CommandKind

ALIASES = {"check-definitions": CommandKind.CHECK_DEFINITIONS, "set-mode": CommandKind.SET_MODE,
           "exclude": CommandKind.ADD_EXCLUSION, "unexclude": CommandKind.REMOVE_EXCLUSION,
           "add-exclusion": CommandKind.ADD_EXCLUSION, "remove-exclusion": CommandKind.REMOVE_EXCLUSION}
MODES = ("block", "detect")
EXCLUSION_KINDS = ("mac", "ip", "rule", "domain")
# names the live engine uses for something else: refused rather than recorded as a classtype
_NOT_CLASSES = {"rules": "use intrusion for every rule", "file": "use malware for files"}
_CLASS_RE = re.compile(r"(\*|[a-z0-9][a-z0-9_-]{0,63})\Z")      # a rule classtype, or '*' for all
_DOMAIN_RE = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


def kind_from_name(name: str) -> CommandKind:
    if name in ALIASES:
        return ALIASES[name]
    try:
        return CommandKind(name)
    except ValueError:
        raise FieldError(f"unknown command {name!r}", "kind") from None


def exclusion_value(kind: str, value: str) -> str:
    """The normalised value of an exclusion, or a FieldError."""
    if kind == "mac":
        return F.mac(value, "args") or ""
    if kind == "ip":
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise FieldError(f"not an IP address or network: {value!r}", "args") from None
    if kind == "rule":
        if not value.isdigit() or not 0 < int(value) < 2**32:
            raise FieldError(f"not a rule id: {value!r}", "args")
        return str(int(value))
    if kind == "domain":
        v = value.lower().rstrip(".")
        if not _DOMAIN_RE.match(v):
            raise FieldError(f"not a domain name: {value!r}", "args")
        return v
    raise FieldError(f"exclusions are by {', '.join(EXCLUSION_KINDS)}, not {kind!r}", "args")


def normalise(kind: CommandKind, args: tuple[str, ...]) -> tuple[str, ...]:
    """Check and normalise `args` for `kind`; a FieldError names what is wrong."""
    if kind in (CommandKind.ISOLATE, CommandKind.RELEASE):
        if len(args) != 1:
            raise FieldError(f"{kind.value} takes one MAC address", "args")
        return (F.mac(args[0], "args") or "",)
    if kind is CommandKind.SET_MODE:
        if len(args) != 2:
            raise FieldError("set_mode takes a threat class ('*' for all) and block|detect", "args")
        cls, mode = args[0].lower(), args[1].lower()
        if not _CLASS_RE.match(cls):
            raise FieldError(f"not a threat class: {args[0]!r}", "args")
        if cls in _NOT_CLASSES:
            raise FieldError(f"not a threat class: {args[0]!r} ({_NOT_CLASSES[cls]})", "args")
        if mode not in MODES:
            raise FieldError(f"the mode is block or detect, not {args[1]!r}", "args")
        return (cls, mode)
    if kind in (CommandKind.ADD_EXCLUSION, CommandKind.REMOVE_EXCLUSION):
        if len(args) != 2:
            raise FieldError(f"{kind.value} takes a kind ({', '.join(EXCLUSION_KINDS)}) and a value", "args")
        return (args[0].lower(), exclusion_value(args[0].lower(), args[1]))
    if args:
        raise FieldError(f"{kind.value} takes no arguments", "args")
    return ()
