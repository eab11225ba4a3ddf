"""Suricata's EVE ``ssh`` object: each side's identification string, split."""
from __future__ import annotations

from inspection.applayer.ssh import SshBanner, SshRecord


def _side(b: SshBanner) -> dict:
    return {"proto_version": b.proto_version, "software_version": b.software_version}


def ssh_to_eve(rec: SshRecord) -> dict:
    out: dict = {}
    if rec.client is not None:
        out["client"] = _side(rec.client)
    if rec.server is not None:
        out["server"] = _side(rec.server)
    return out
