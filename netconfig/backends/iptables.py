"""FilterBackend on iptables-nft-restore / ip6tables-nft-restore: the ruleset on stdin, argument lists only.

Never --noflush: each restore replaces the tables it names (filter, mangle) in
one kernel transaction. Always the nft variants: the legacy and nft backends
must never be mixed on one box (PLATFORM.md).
"""
from __future__ import annotations

import subprocess

from netconfig import ruleset as rs
from netconfig.errors import BackendError

TIMEOUT = 20.0
_TOOLS = {rs.Family.IPV4: ("iptables-nft-save", "iptables-nft-restore"),
          rs.Family.IPV6: ("ip6tables-nft-save", "ip6tables-nft-restore")}


class IptablesBackend:
    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def _argv(self, *argv: str) -> list[str]:
        return (["ip", "netns", "exec", self.netns] if self.netns else []) + list(argv)

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        try:
            r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=TIMEOUT)
        except (OSError, subprocess.SubprocessError) as e:
            raise BackendError(argv[-1] if not stdin else argv[-2], str(e)) from None
        if r.returncode != 0:
            raise BackendError(" ".join(a for a in argv if a != "ip"), (r.stderr.strip() or f"exit {r.returncode}"))
        return r.stdout

    def save(self, family: rs.Family) -> str:
        tool = _TOOLS[family][0]
        return "".join(self._run(self._argv(tool, "-t", t)) for t in rs.OWNED_TABLES)

    def restore(self, family: rs.Family, text: str) -> None:
        self._run(self._argv(_TOOLS[family][1]), stdin=text)
