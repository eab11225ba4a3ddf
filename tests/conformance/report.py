"""`./build.sh conformance`: print the corpus scores and every failure with its reason.

usage: python -m tests.conformance.report [sv|alerts|oracle|zeek ...] [--all-checks]

`alerts` runs the signature engine on the simple, extended and http-evader
groups with each case's rules and scores their alert checks (counts per sid).
"""
from __future__ import annotations

import sys

from tests.conformance import corpus


def main(argv: list[str]) -> int:
    if not corpus.CORPUS.is_dir():
        print(f"conformance: no corpus at {corpus.CORPUS}; nothing to measure")
        return 0
    which = [a for a in argv if not a.startswith("-")] or ["sv", "alerts", "oracle", "zeek"]
    only = None if "--all-checks" in argv else frozenset(corpus.NON_ALERT_TYPES)
    scores = []
    if "sv" in which:
        scores.append(("suricata-verify topical (non-alert checks)", corpus.suricata_verify({"topical"}, only)))
    if "alerts" in which:
        for group in ("simple", "extended", "http-evader"):
            scores.append((f"suricata-verify {group} (alert checks, with the case's rules)",
                           corpus.suricata_verify({group}, alerts=True)))
    if "oracle" in which:
        scores.append(("tshark oracle (SNI, DNS, HTTP per capture)", corpus.tshark_oracle()))
    if "zeek" in which:
        scores.append(("Zeek baselines (http.log, ssl.log)", corpus.zeek_baselines()))
    for title, score in scores:
        print(f"\n== {title}: {score.passed}/{len(score.evaluated)} ({score.percent:.1f}%)")
        for r in score.failures():
            print(f"FAIL {r.name}: {r.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
