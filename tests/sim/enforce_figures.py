"""Enforcement figures in the testbed (root): time to block and the hold of a clean file's last segment.

    python -m tests.sim.enforce_figures [--runs 5]

Brings the testbed up (refuses when one is already up), runs `utm run` in the box,
and measures
- time to block: from the blocking alert in the worker to its last injected frame
  (reset or block page) handed to the kernel, over EICAR downloads, phishing visits
  over HTTP and HTTPS (the worker's `block_us_*` counters), plus what the client sees
  (curl's total time for the stopped request, connection set-up included);
- the hold of a clean 10 MB file's last segment (with a length, without one: the
  server's FIN is held, and chunked: the last chunk is held): the worker's time on the packet that
  completed the file (hashing the last bytes, scanning the whole file with the hash
  list and YARA rule, the verdict), i.e. the extra latency of that one segment
  (`file_hold_us_*`), and the download time next to the same download with
  no scanner (`utm run` with the categories only).
Then takes the testbed down.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path


def _live(box) -> dict:   # the last stats event's live branch
    stats = [e["stats"]["live"] for e in box.events() if e.get("event_type") == "stats" and "live" in e["stats"]]
    return stats[-1]


def main(argv: list[str] | None = None) -> int:
    from tests.sim import livebox as lb
    from tests.sim import testbed

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args(argv)
    if testbed.namespaces() & set(testbed.NAMESPACES):
        print("enforce_figures: a testbed is already up; not touching it", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="utm-figures-") as tmp:
        try:
            testbed.up()
            args = lb.make_judges(Path(tmp))
            results: dict[str, list[float]] = {}
            for label, extra in (("scanned", args), ("scanned, no length", args), ("scanned, chunked", args),
                                 ("blocks", args), ("categories only", args[:2])):
                box = lb.LiveBox(Path(tmp) / label.replace(" ", "-").replace(",", ""), extra).start()
                name = {"scanned, no length": "clean-close.bin", "scanned, chunked": "clean-chunked.bin"}.get(
                    label, "clean.bin")
                try:
                    for _ in range(a.runs if label != "blocks" else 0):
                        f = lb.fetch("utmtb-lan", f"http://www.example.test/{name}", "-4")
                        assert f.exit == 0 and f.size == 10 * 1024 * 1024, f
                        results.setdefault(f"clean 10 MB download ({label})", []).append(f.seconds)
                    if label == "blocks":
                        for _ in range(a.runs):
                            for name, url in (("eicar", "http://www.example.test/eicar.com"),
                                              ("phish http", "http://phish.example.test/"),
                                              ("phish https", "https://phish.example.test/")):
                                f = lb.fetch("utmtb-lan", url, "-4")
                                results.setdefault(f"client: {name} stopped after", []).append(f.seconds)
                finally:
                    box.stop()
                live = _live(box)
                if label.startswith("scanned"):
                    n = max(1, live["files_judged_live"])
                    print(f"held last segment of a clean 10 MB file ({label}): "
                          f"mean {live['file_hold_us_total'] / n / 1000:.1f} ms, "
                          f"max {live['file_hold_us_max'] / 1000:.1f} ms over {live['files_judged_live']} files")
                if label == "blocks":
                    b = max(1, live["blocks_timed"])
                    print(f"time to block (alert -> last reset/page frame sent): mean {live['block_us_total'] / b:.0f} us, "
                          f"max {live['block_us_max']} us over {live['blocks_timed']} blocks")
            for k, v in results.items():
                print(f"{k}: median {statistics.median(v) * 1000:.1f} ms, max {max(v) * 1000:.1f} ms (n={len(v)})")
            return 0
        finally:
            testbed.down()


if __name__ == "__main__":
    sys.exit(main())
