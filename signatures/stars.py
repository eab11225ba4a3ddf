"""The customer-facing level of a detection: 0-3 stars (SPEC section 6).

Customers read stars, not Suricata priorities: 3 stars means a device is
probably infected (run a full antivirus scan), 2 possibly infected, 1 take
care, 0 under investigation. A rule's level is decided in this order:

1. ``metadata: stars N`` in the rule (0-3): the definitions team's word wins;
2. the classtype, from `CLASSTYPE_STARS` (what the rule's author says the
   traffic *is*: command-and-control traffic means an infected device, an
   attempted exploit means a possibly compromised one, a policy finding is
   a caution);
3. else the resolved priority: 1 -> 2 stars, 2 and 3 -> 1 star, 4+ -> 0;
4. then ET's ``signature_severity`` metadata nudges the result: an
   ``Informational`` rule gets at most 1 star, a ``Critical`` one at least 2.
"""
from __future__ import annotations

from types import MappingProxyType

from signatures.model import Rule

_GROUPS = {
    3: ("trojan-activity", "command-and-control", "domain-c2", "exploit-kit", "successful-admin", "successful-user",
        "targeted-activity", "coin-mining", "credential-theft"),
    2: ("attempted-admin", "attempted-user", "web-application-attack", "shellcode-detect", "social-engineering",
        "successful-recon-largescale", "attempted-dos", "successful-dos", "kickass-porn", "denial-of-service"),
    1: ("policy-violation", "bad-unknown", "attempted-recon", "misc-attack", "suspicious-filename-detect",
        "suspicious-login", "system-call-detect", "unusual-client-port-connection", "non-standard-protocol",
        "protocol-command-decode", "web-application-activity", "default-login-attempt", "rpc-portmap-decode",
        "successful-recon-limited", "string-detect", "network-scan", "external-ip-check", "pup-activity",
        "inappropriate-content"),
    0: ("not-suspicious", "misc-activity", "icmp-event", "tcp-connection", "unknown"),
}
CLASSTYPE_STARS = MappingProxyType({name: stars for stars, names in _GROUPS.items() for name in names})
_PRIORITY_STARS = {1: 2, 2: 1, 3: 1}


def stars_for(rule: Rule) -> int:
    """The rule's level, 0-3 (see the module docstring for the order of decisions)."""
    severity = None
    for key, value in rule.metadata:
        if key == "stars" and value.strip() in ("0", "1", "2", "3"):
            return int(value)
        if key == "signature_severity":
            severity = value.strip().lower()
    stars = CLASSTYPE_STARS.get(rule.classtype) if rule.classtype else None
    if stars is None:
        stars = _PRIORITY_STARS.get(rule.priority, 0)
    if severity == "informational":
        stars = min(stars, 1)
    elif severity == "critical":
        stars = max(stars, 2)
    return stars
