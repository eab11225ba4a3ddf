"""Golden cases: tests/golden/<case>/{input.pcap, expect.yaml}.

expect.yaml holds what the engine must report for the capture (event counts by
type, the set of HTTP requests, TLS server names and DNS query names, anomaly
counts, the files seen). `pytest --regen-golden` rewrites it on purpose after a reviewed change.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from inspection.config import ChecksumMode, EngineConfig
from inspection.io.offline import inspect_files

HERE = Path(__file__).parent
CASES = sorted(p.parent.name for p in HERE.glob("*/input.pcap"))


def observe(case: str, tmp: Path) -> dict:
    inspect_files([HERE / case / "input.pcap"], EngineConfig(checksum=ChecksumMode.ALL), tmp)
    events = [json.loads(l) for l in (tmp / "eve.json").read_text().splitlines()]
    http = sorted(f"{e['http'].get('http_method')} {e['http'].get('hostname')}{e['http'].get('url')} "
                  f"{e['http'].get('status')}" for e in events if e["event_type"] == "http")
    sni = sorted({e["tls"]["sni"] for e in events if e["event_type"] == "tls" and "sni" in e["tls"]})
    dns = sorted({q["rrname"] for e in events if e["event_type"] == "dns" and e["dns"]["type"] == "request"
                  for q in e["dns"].get("queries", [])})
    files = sorted(f"{e['fileinfo']['filename']} {e['fileinfo']['size']} {e['fileinfo']['state']} "
                   f"{e['fileinfo'].get('md5')}" for e in events if e["event_type"] == "fileinfo")
    flow_ids = {e["flow_id"] for e in events if "flow_id" in e}
    return {
        "events": dict(sorted(Counter(e["event_type"] for e in events).items())),
        "anomalies": dict(sorted(Counter(e["anomaly"]["event"] for e in events if e["event_type"] == "anomaly").items())),
        "flows_with_events": len(flow_ids),
        "http": http,
        "tls_sni": sni,
        "dns_queries": dns,
        "files": files,
    }


@pytest.mark.parametrize("case", CASES)
def test_golden(case, tmp_path, request):
    got = observe(case, tmp_path)
    expect = HERE / case / "expect.yaml"
    if request.config.getoption("--regen-golden") or not expect.exists():
        expect.write_text(yaml.safe_dump(got, sort_keys=False))
        if not request.config.getoption("--regen-golden"):
            pytest.fail(f"{expect} did not exist; written from the current output - review and commit it")
        return
    assert got == yaml.safe_load(expect.read_text())
