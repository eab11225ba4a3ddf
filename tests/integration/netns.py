"""Throwaway network namespaces for tests: unique names, always removed, argument lists only."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess

import pytest


def need_root_netns() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    for tool in ("ip", "iptables-nft-restore", "ip6tables-nft-restore"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


def run(*argv: str, check: bool = True, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout)


class Namespaces:
    """Creates namespaces with a shared random suffix; `close` deletes exactly those."""

    def __init__(self) -> None:
        self.suffix = secrets.token_hex(3)
        self.made: list[str] = []

    def add(self, role: str) -> str:
        name = f"utmt-{self.suffix}-{role}"
        r = run("ip", "netns", "add", name, check=False)
        if r.returncode != 0:
            self.close()
            pytest.skip(f"cannot create a network namespace: {r.stderr.strip()}")
        self.made.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def close(self) -> None:
        for name in reversed(self.made):
            run("ip", "netns", "del", name, check=False)
        self.made.clear()
