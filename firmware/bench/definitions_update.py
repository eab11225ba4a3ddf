"""Figures for definitions updates, as separate processes on loopback (`python -m firmware.bench.definitions_update`).

`utm cloud serve` and `utm cloudlink run` run as processes; a byte-counting TCP
proxy (the one bench-cloud uses) sits between agent and cloud. Measured:
the time `utm cloud publish` takes (process and the publish itself), the time
from `utm cloud command DEV check-definitions` to the result stored at the
cloud (the agent picked up, verified, staged and switched), and the bytes on
the wire (TLS included) of `utm cloudlink check-definitions` when nothing new
is published.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.bench.cloud import CloudBenchError, _CountingProxy, _rss_mb, _run, _utm, _wait_until
from signatures.definitions import ComponentKind, build_package


def _package(version: str, size: int, key: Ed25519PrivateKey) -> bytes:
    lines = b"".join(os.urandom(32).hex().encode() + b"\n" for _ in range(max(1, size // 65)))
    return build_package([(ComponentKind.HASHES, "block.txt", lines)], version=version,
                         created="2026-11-22T00:00:00Z", key=key)


def _result(cloud: Path, command_id: str) -> tuple[dict, float] | None:
    """The stored result and when the cloud stored it (read-only look at its SQLite, no process start)."""
    con = sqlite3.connect(f"file:{cloud / 'cloud.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute("SELECT result, result_at FROM commands WHERE id = ?", (command_id,)).fetchone()
    finally:
        con.close()
    return None if row is None or row[0] is None else (json.loads(row[0]), row[1])


def run(size: int, rounds: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="utm-tuf-bench-"))
    cloud, agent = tmp / "cloud", tmp / "agent"
    key = Ed25519PrivateKey.generate()
    pub = tmp / "vendor.pub"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    code = _run("cloud", "enroll-code", "--state", str(cloud)).strip()
    serve = subprocess.Popen(_utm("cloud", "serve", "--state", str(cloud), "--listen", "127.0.0.1:0"),
                             stdout=subprocess.PIPE, text=True)
    procs: list[subprocess.Popen] = [serve]
    proxy = None
    try:
        line = serve.stdout.readline() if serve.stdout else ""
        if "listening on" not in line:
            raise CloudBenchError(f"cloud did not start: {line!r}")
        proxy = _CountingProxy(int(line.rsplit(":", 1)[1])).start()
        _run("cloudlink", "enroll", "--server", f"https://127.0.0.1:{proxy.port}", "--code", code,
             "--state", str(agent))
        device = json.loads(_run("cloudlink", "status", "--state", str(agent), "--json"))["device_id"]
        publish_wall, publish_inner, pickup = [], [], []
        ag = subprocess.Popen(_utm("cloudlink", "run", "--state", str(agent), "--trusted-key", str(pub),
                                   "--definitions-interval", "86400", "--reboot-hook", ""),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(ag)
        for i in range(rounds):
            version = f"2026.11.22.{i + 1}"
            pkg = tmp / f"{version}.pkg"
            pkg.write_bytes(_package(version, size, key))
            t0 = time.perf_counter()
            out = json.loads(_run("cloud", "publish", "--state", str(cloud), str(pkg)))
            publish_wall.append(time.perf_counter() - t0)
            publish_inner.append(out["seconds"])
            cid = _run("cloud", "command", "--state", str(cloud), device, "check-definitions").strip()
            issued = time.time()          # the command is stored: the agent's long poll sees it within 0.5 s
            _wait_until(lambda: _result(cloud, cid) is not None, 60, "the check-definitions result")
            got = _result(cloud, cid)
            assert got is not None
            res, stored_at = got
            pickup.append(stored_at - issued)
            if not res or res["status"] != "done" or version not in res["detail"]:
                raise CloudBenchError(f"round {i}: {res}")
        rss = _rss_mb(ag.pid)
        ag.terminate()
        ag.wait(15)
        before = proxy.bytes
        out = json.loads(_run("cloudlink", "check-definitions", "--state", str(agent), "--trusted-key", str(pub)))
        wire = proxy.bytes - before
        if not out["result"].startswith("up_to_date"):
            raise CloudBenchError(f"expected nothing new: {out}")
        return {"package_bytes": pkg.stat().st_size, "rounds": rounds,
                "publish_process_s": [round(x, 3) for x in publish_wall],
                "publish_s": publish_inner,
                "pickup_command_stored_to_result_stored_s": [round(x, 3) for x in pickup],
                "no_update_check_wire_bytes": wire, "no_update_check_payload_bytes": out["fetched_bytes"],
                "no_update_check_s": out["seconds"], "agent_rss_mb_after_updates": rss}
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        if proxy is not None:
            proxy.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m firmware.bench.definitions_update")
    ap.add_argument("--package-kb", type=int, default=1024, help="size of each synthetic package (default 1024)")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    try:
        print(json.dumps(run(a.package_kb * 1024, a.rounds), indent=1))
    except CloudBenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
