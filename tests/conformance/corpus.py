"""Conformance against outside expectations in ../shared/corpus.

Runs the engine in-process (a worker pool, one case per task) on
suricata-verify cases, tshark's oracle and Zeek's baselines, and scores the
agreement the way ../shared/tools/ does, so a developer sees the same numbers
quickly. Every disagreement comes back with a reason.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("UTM_CORPUS", ROOT.parent / "shared" / "corpus"))

# The parser-output event types this engine is responsible for.
NON_ALERT_TYPES = {"tls", "dns", "http", "flow", "anomaly"}


@dataclass
class CaseResult:
    name: str
    ok: bool
    applicable: bool = True
    reason: str = ""
    checks: int = 0


@dataclass
class Score:
    results: list[CaseResult] = field(default_factory=list)

    @property
    def evaluated(self) -> list[CaseResult]:
        return [r for r in self.results if r.applicable]

    @property
    def passed(self) -> int:
        return sum(r.ok for r in self.evaluated)

    @property
    def percent(self) -> float:
        ev = self.evaluated
        return 100.0 * self.passed / len(ev) if ev else 0.0

    def failures(self) -> list[CaseResult]:
        return [r for r in self.evaluated if not r.ok]


def run_engine(pcaps: list[Path], args: list[str], rules: list[Path] | None = None,
               config: Path | None = None) -> list[dict]:
    """Inspect `pcaps` with Suricata-style args (and `rules` and a suricata.yaml `config`,
    if any; as ``utm inspect -c``) and return the EVE events."""
    from inspection.config import ChecksumMode, EngineConfig
    from inspection.config_file import apply_config_file
    from inspection.io.offline import inspect_files

    checksum, sets, i = "auto", [], 0
    while i < len(args):
        if args[i] == "-k":
            checksum, i = args[i + 1], i + 2
        elif args[i] == "--set":
            sets.append(args[i + 1])
            i += 2
        else:
            i += 1
    base = EngineConfig(checksum=ChecksumMode(checksum))
    if config is not None:
        cfg, _cf = apply_config_file(config, base, sets)
    else:
        cfg, _unknown = EngineConfig.from_sets(sets, base)
    with tempfile.TemporaryDirectory() as out:
        inspect_files(pcaps, cfg, Path(out), rule_files=rules or None)
        events = []
        for line in (Path(out) / "eve.json").read_bytes().splitlines():
            events.append(json.loads(line))
        return events


# -- suricata-verify ---------------------------------------------------------------------------
def _get(ev, key):
    cur = ev
    for part in key.split("."):
        m = re.fullmatch(r"([^\[]+)((?:\[\d+\])*)", part)
        if not m:
            return KeyError
        name, idx = m.group(1), re.findall(r"\[(\d+)\]", m.group(2))
        if not isinstance(cur, dict) or name not in cur:
            return KeyError
        cur = cur[name]
        for i in idx:
            if not isinstance(cur, list) or int(i) >= len(cur):
                return KeyError
            cur = cur[int(i)]
    return cur


def _matches(ev, match) -> bool:
    for k, v in match.items():
        if k in ("has-key", "not-has-key"):
            for kk in (v if isinstance(v, list) else [v]):
                if (_get(ev, kk) is KeyError) == (k == "has-key"):
                    return False
            continue
        got = _get(ev, k)
        if got is KeyError:
            return False
        if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(got, (int, float)):
            if got != v:
                return False
        elif str(got) != str(v) and got != v:
            return False
    return True


def case_rules(d: Path, y: dict) -> list[Path]:
    """The rules a case runs with: ``test.rules``, else the file its test.yaml names,
    else the one ``*.rules`` file beside it (several cases keep theirs under another name)."""
    if (d / "test.rules").exists():
        return [d / "test.rules"]
    named = y.get("rules")
    if isinstance(named, str) and (d / named).exists():
        return [d / named]
    found = sorted(d.glob("*.rules"))
    return found if len(found) == 1 else []


def sv_case(name: str, only_types: frozenset[str] | None = None, alerts: bool = False) -> CaseResult:
    """One case: its parser-output checks (`only_types`), all its checks, or with
    `alerts` only its alert checks, run with the case's rules."""
    import yaml

    d = CORPUS / "suricata-verify" / "tests" / name
    y = yaml.safe_load((d / "test.yaml").read_text()) or {}
    req = y.get("requires") or {}
    if "lt-version" in req or req.get("features") or req.get("script") or "command" in y:
        return CaseResult(name, False, applicable=False, reason="needs features outside the engine")
    checks = []
    for c in y.get("checks") or []:
        f = c.get("filter") if isinstance(c, dict) else None
        if not f or (f.get("requires") or {}).get("lt-version") or (f.get("requires") or {}).get("features"):
            continue
        et = (f.get("match") or {}).get("event_type")
        if only_types is not None and et not in only_types:
            continue
        if alerts and et != "alert":
            continue
        checks.append(f)
    if not checks:
        return CaseResult(name, False, applicable=False, reason="no applicable checks")
    if only_types is not None:
        why = _not_for_the_core(d, y, checks)
        if why:
            return CaseResult(name, False, applicable=False, reason=why)
        checks, set_aside = _core_checks(checks)
        if not checks:
            return CaseResult(name, False, applicable=False, reason="; ".join(sorted(set(set_aside))))
    args: list[str] = []
    for s in y.get("args") or []:
        args += shlex.split(str(s))
    if any(a not in ("-k", "--set") and not (i and args[i - 1] in ("-k", "--set")) for i, a in enumerate(args)):
        return CaseResult(name, False, applicable=False, reason="unsupported command-line arguments")
    pcap = y.get("pcap")
    pcaps = [d / pcap] if pcap else ([d / "input.pcap"] if (d / "input.pcap").exists() else sorted(d.glob("*.pcap*")))
    if not pcaps or not all(p.exists() for p in pcaps):
        return CaseResult(name, False, applicable=False, reason="no capture")
    rules = case_rules(d, y)
    if alerts and not rules:
        return CaseResult(name, False, applicable=False, reason="no rule file")
    try:
        conf = d / "suricata.yaml"
        events = run_engine(pcaps, args, rules, conf if conf.is_file() else None)
    except Exception as e:  # a crash is a failure with its reason, not a crashed report
        return CaseResult(name, False, reason=f"engine raised {type(e).__name__}: {e}", checks=len(checks))
    bad = []
    for f in checks:
        n = sum(1 for e in events if _matches(e, f.get("match") or {}))
        if f.get("count") is not None and n != f["count"]:
            bad.append(f"{f.get('match')} want {f['count']} got {n}")
    return CaseResult(name, not bad, reason="; ".join(bad)[:400], checks=len(checks))


def _not_for_the_core(d: Path, y: dict, checks: list[dict]) -> str:
    """Why a case cannot measure the parser output of the inspection core ('' if it can)."""
    if _dns_v2_layout(y, checks):
        return "expects the DNS v2 layout; the engine logs Suricata 8's v3 layout"
    conf = d / "suricata.yaml"
    if conf.exists() and _OUTPUT_FILTER.search(conf.read_text(errors="replace")):
        return "depends on the case's suricata.yaml DNS output filters, which the checker does not pass"
    return ""


# Settings that change which events are written (custom field lists do not matter:
# the checks only look at the fields they name).
_OUTPUT_FILTER = re.compile(r"^\s*(requests|responses):\s*no\b|^\s*types:\s*\[", re.M)


def _core_checks(checks: list[dict]) -> tuple[list[dict], list[str]]:
    """Checks of a case that the inspection core answers for, and why others were set aside."""
    kept, why = [], []
    for f in checks:
        m = f.get("match") or {}
        if m.get("flow.alerted") is True:
            why.append("flow.alerted needs the signature engine")
        elif any(k.endswith(".__len") for k in m):
            why.append("the __len operator is not evaluated by the shared checker")
        else:
            kept.append(f)
    return kept, why


def _dns_v2_layout(y: dict, checks: list[dict]) -> bool:
    if str((y.get("env") or {}).get("SURICATA_EVE_DNS_VERSION", "")) == "2":
        return True
    return any((f.get("match") or {}).get("dns.type") in ("query", "answer") for f in checks)


def suricata_verify(groups: set[str], only_types: frozenset[str] | None = None, workers: int = 2,
                    alerts: bool = False) -> Score:
    manifest = json.loads((CORPUS / "suricata-verify" / "MANIFEST.json").read_text())
    names = [t["test"] for t in manifest if t["group"] in groups
             and (CORPUS / "suricata-verify" / "tests" / t["test"] / "test.yaml").exists()]
    with ProcessPoolExecutor(workers) as ex:
        return Score(list(ex.map(sv_case, names, [only_types] * len(names), [alerts] * len(names))))


# -- tshark oracle -----------------------------------------------------------------------------
def engine_view(events: list[dict]) -> dict[str, set]:
    sni, dns, http = set(), set(), set()
    for e in events:
        t = e.get("event_type")
        if t == "tls" and e.get("tls", {}).get("sni"):
            sni.add(e["tls"]["sni"].lower())
        elif t == "dns":
            d = e.get("dns", {})
            if d.get("type") == "query" and d.get("rrname"):
                dns.add(d["rrname"].lower().rstrip("."))
            for q in d.get("queries", []) or []:
                if q.get("rrname"):
                    dns.add(q["rrname"].lower().rstrip("."))
        elif t == "http":
            h = e.get("http", {})
            http.add((h.get("http_method"), (h.get("hostname") or "").lower(), h.get("url")))
    return {"sni": sni, "dns": dns, "http": http}


def oracle_case(line: str) -> list[CaseResult]:
    o = json.loads(line)
    pcap = CORPUS / o["pcap"]
    want = {"sni": {s.lower() for s in o["tls_client_hello_sni"]},
            "dns": {s.lower().rstrip(".") for s in o["dns_query_names"]},
            "http": {(m, (h or "").lower(), u) for m, h, u in o["http_requests"]}}
    if not pcap.exists() or not any(want.values()):
        return []
    try:
        got = engine_view(run_engine([pcap], ["-k", "none"]))
    except Exception as e:
        return [CaseResult(f"{o['pcap']}:{k}", False, reason=f"engine raised {e!r}") for k, w in want.items() if w]
    out = []
    for k, w in want.items():
        if w:
            miss = sorted(map(str, w - got[k]))[:3]
            out.append(CaseResult(f"{o['pcap']}:{k}", not miss, reason=f"missing {miss}" if miss else ""))
    return out


def tshark_oracle(workers: int = 2) -> Score:
    lines = [l for l in (CORPUS / "ORACLE_tshark.jsonl").read_text().splitlines() if '"pcap"' in l]
    with ProcessPoolExecutor(workers) as ex:
        return Score([r for rs in ex.map(oracle_case, lines, chunksize=8) for r in rs])


# -- Zeek baselines ----------------------------------------------------------------------------
def _zeek_rows(log: Path) -> list[dict]:
    fields, rows = None, []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#") and fields:
            rows.append(dict(zip(fields, line.split("\t"))))
    return rows


def zeek_case(item: tuple[str, list[str]]) -> list[CaseResult]:
    trace, logs = item
    root = CORPUS / "zeek-traces"
    try:
        events = run_engine([root / "Traces" / trace], ["-k", "none"])
    except Exception as e:
        return [CaseResult(trace, False, reason=f"engine raised {e!r}")]
    http = {((e["http"].get("http_method") or ""), (e["http"].get("hostname") or "").lower(), e["http"].get("url") or "")
            for e in events if e.get("event_type") == "http"}
    sni = {e["tls"]["sni"].lower() for e in events if e.get("event_type") == "tls" and e["tls"].get("sni")}
    out = []
    for log in map(Path, logs):
        rows = _zeek_rows(log)
        if log.name == "http.log":
            want = {((r.get("method") or "-").replace("-", ""), (r.get("host") or "-").replace("-", "").lower(),
                     r.get("uri", "-")) for r in rows if r.get("uri", "-") != "-"}
            want = {w for w in want if w[0]}
            miss = want - http
        else:
            want = {r["server_name"].lower() for r in rows if r.get("server_name", "-") != "-"}
            miss = want - sni
        if want:
            out.append(CaseResult(f"{trace} {log.parent.name}/{log.name}", not miss,
                                  reason=f"missing {sorted(map(str, miss))[:3]}" if miss else ""))
    return out


def zeek_baselines(workers: int = 2) -> Score:
    root = CORPUS / "zeek-traces"
    index = json.loads((root / "trace_index.json").read_text())
    items = []
    for trace, info in sorted(index.items()):
        if not (root / "Traces" / trace).exists():
            continue
        logs = [str(root / l) for b in info["btests"] for l in b["baseline_logs"] if l.endswith(("http.log", "ssl.log"))]
        logs = [l for l in logs if Path(l).exists()]
        if logs:
            items.append((trace, logs))
    with ProcessPoolExecutor(workers) as ex:
        return Score([r for rs in ex.map(zeek_case, items) for r in rs])
