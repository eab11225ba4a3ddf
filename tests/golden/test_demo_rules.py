"""`./build.sh demo` runs the bundled capture with tests/golden/demo/demo.rules: each rule must
keep firing, with the stars its classtype or metadata gives, so the demo shows alerts."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from firmware.cli.main import main

HERE = Path(__file__).parent / "demo"


def test_demo_rules_fire_with_their_stars(tmp_path):
    rc = main(["inspect", "-q", "-r", str(HERE / "input.pcap"), "-S", str(HERE / "demo.rules"), "-l", str(tmp_path)])
    assert rc == 0
    alerts = [json.loads(l) for l in (tmp_path / "eve.json").read_text().splitlines() if '"event_type":"alert"' in l]
    seen = Counter((a["alert"]["signature_id"], a["alert"]["stars"]) for a in alerts)
    assert seen == {(9000001, 1): 1, (9000002, 3): 1, (9000003, 0): 6, (9000004, 1): 3}
