"""The URL category benchmark: compile, load, memory, lookups per second.

Uses the UT1 lists from ../shared/corpus when present, else a generated tree of
similar size (same layout, same mix of names, IPs and URLs). The lookup mix is
half listed names (as listed, under ``www.`` or under two more labels) and half
unlisted names of 2-5 labels; the URL mix does the same with paths. Lookups are
timed in a fresh process (so the compile's memory does not count), one core,
after a warm-up, best of three rounds, counted per CPU second of this process
(time.process_time: what one core does, whatever else the machine runs; the
wall-clock rate is printed too); RSS is that process's VmRSS before and after loading, taken
before the lookup mixes are built.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from signatures.categories.compile import compile_lists, find_root
from signatures.categories.db import encode, write_db
from signatures.categories.lookup import CategoryDB

CORPUS_LISTS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "ut1-blacklists"
GENERATED_DOMAINS = 850_000
GENERATED_URLS = 43_000
ROUNDS = 3
DUPLICATE_SHARE = 0.35   # UT1: ~856k list lines, ~557k distinct names
_TLDS = ("com", "net", "org", "de", "fr", "jp", "co.uk", "xyz", "info", "ru", "io", "co.jp")


@dataclass(frozen=True, slots=True)
class CategoryBench:
    source: str
    compile_seconds: float
    db_bytes: int
    domains: int
    urls: int
    load_seconds: float
    rss_before_mb: float
    rss_after_mb: float
    host_lookups_per_s: float
    host_hit_share: float
    url_lookups_per_s: float
    url_hit_share: float
    lookups: int
    host_lookups_per_wall_s: float = 0.0
    url_lookups_per_wall_s: float = 0.0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    def format(self) -> str:
        return "\n".join([
            f"lists: {self.source}",
            f"compile: {self.compile_seconds:.2f} s, {self.domains:,} domains, {self.urls:,} URLs, "
            f"database {self.db_bytes / 1e6:.1f} MB",
            f"load: {self.load_seconds:.3f} s",
            f"RSS: {self.rss_before_mb:.0f} MB before load (interpreter and modules), "
            f"{self.rss_after_mb:.0f} MB after "
            f"({self.rss_after_mb - self.rss_before_mb:.0f} MB for the database)",
            f"host lookups: {self.host_lookups_per_s:,.0f} per CPU second "
            f"({self.host_lookups_per_wall_s:,.0f}/s wall; best of {ROUNDS} rounds of {self.lookups:,}, "
            f"{self.host_hit_share:.0%} hits)",
            f"URL lookups: {self.url_lookups_per_s:,.0f} per CPU second "
            f"({self.url_lookups_per_wall_s:,.0f}/s wall; best of {ROUNDS} rounds of {self.lookups:,}, "
            f"{self.url_hit_share:.0%} hits)",
            f"load average at the end: {_loadavg()}",
        ])


def _loadavg() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "unknown"


def rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def generate_lists(root: Path, seed: int = 1, domains: int = GENERATED_DOMAINS, urls: int = GENERATED_URLS) -> None:
    """A UT1-layout tree of `domains` names and `urls` URLs over a few categories (block and record)."""
    rnd = random.Random(seed)
    cats = {"malware": 0.35, "phishing": 0.05, "redirector": 0.2, "games": 0.15, "shopping": 0.15, "vpn": 0.1}
    files: dict[str, tuple[list[str], list[str]]] = {c: ([], []) for c in cats}
    names = list(cats)
    weights = list(cats.values())
    # shaped like UT1: ~8% IPs, ~75% registrable names, the rest under shared hosting parents
    # (pages.dev, webflow.io...: a few thousand parents with many subdomains each)
    parents = [f"{_label(rnd)}.{rnd.choice(_TLDS)}" for _ in range(3000)]
    made: list[str] = []
    for i in range(domains):
        c = rnd.choices(names, weights)[0]
        r = rnd.random()
        if made and r < DUPLICATE_SHARE:     # UT1 lists one name in several categories (phishing+malware...)
            files[c][0].append(rnd.choice(made))
            continue
        r = rnd.random()
        if i % 12 == 0:
            files[c][0].append(f"{rnd.randrange(1, 224)}.{rnd.randrange(256)}.{rnd.randrange(256)}.{i % 256}")
        elif r < 0.8:
            files[c][0].append(f"{_label(rnd)}.{rnd.choice(_TLDS)}")
        elif r < 0.97:
            files[c][0].append(f"{_label(rnd)}.{rnd.choice(parents)}")
        else:
            files[c][0].append(f"{_label(rnd)}.{_label(rnd)}.{rnd.choice(parents)}")
        made.append(files[c][0][-1])
    for _ in range(urls):
        c = rnd.choices(names, weights)[0]
        files[c][1].append(f"{_label(rnd)}.{rnd.choice(_TLDS)}/{_label(rnd)}/{_label(rnd)}")
    for c, (doms, us) in files.items():
        d = root / c
        d.mkdir(parents=True, exist_ok=True)
        (d / "domains").write_text("\n".join(doms) + "\n")
        (d / "urls").write_text("\n".join(us) + "\n")
        (d / "usage").write_text("black\n")


def _label(rnd: random.Random) -> str:
    return "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rnd.randrange(4, 14)))


def _mixes(lists_root: Path, n: int, seed: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Host and URL mixes: half taken from the lists (with subdomains), half unlisted, 2-5 labels."""
    rnd = random.Random(seed)
    listed: list[str] = []
    paths: list[str] = []
    for d in sorted(p for p in lists_root.iterdir() if p.is_dir()):
        f = d / "domains"
        if f.is_file():
            with open(f, encoding="utf-8", errors="replace") as fh:
                listed.extend(line.strip() for _, line in zip(range(20000), fh) if line.strip())
        u = d / "urls"
        if u.is_file():
            with open(u, encoding="utf-8", errors="replace") as fh:
                paths.extend(line.strip() for _, line in zip(range(2000), fh) if "/" in line)
    listed = [h for h in listed if not h[-1].isdigit()] or ["example.com"]
    hosts: list[str] = []
    for i in range(n):
        if i % 2:
            hosts.append(rnd.choice(("", "www.", "cdn.img.")) + rnd.choice(listed))
        else:
            k = rnd.randrange(1, 4)
            hosts.append(".".join(_label(rnd) for _ in range(k)) + "." + rnd.choice(("com", "net", "org", "jp")))
    urls: list[tuple[str, str]] = []
    for i in range(n):
        if i % 2 and paths:
            host, _, path = rnd.choice(paths).partition("/")
            urls.append((host, "/" + path + rnd.choice(("", "/index.html", "?id=3"))))
        else:
            urls.append((hosts[i], "/" + _label(rnd) + "/" + _label(rnd) + ".html"))
    return hosts, urls


def run_category_bench(lists: Path | None, db_path: Path | None, *, lookups: int = 200_000,
                       seed: int = 1, generate: bool = False, progress=lambda msg: None) -> CategoryBench:
    """Compile (unless `db_path` exists and no `lists` were given), load, measure."""
    with tempfile.TemporaryDirectory(prefix="utm-catbench-") as tmp:
        if lists is None and CORPUS_LISTS.is_dir() and not generate:
            lists = CORPUS_LISTS
        if lists is None:
            progress(f"{'no UT1 corpus at ' + str(CORPUS_LISTS) if not generate else 'asked to generate'}: "
                     f"generating {GENERATED_DOMAINS:,} domains")
            lists = Path(tmp) / "lists"
            generate_lists(lists, seed)
            source = (f"generated ({GENERATED_DOMAINS:,} domain lines, {DUPLICATE_SHARE:.0%} of them repeated in "
                      f"a second category as in UT1, {GENERATED_URLS:,} URLs, seed {seed})")
        else:
            source = str(lists)
        db = db_path or Path(tmp) / "categories.db"
        progress(f"compiling {lists}")
        t0 = time.perf_counter()
        compiled = compile_lists(lists)
        data = encode(compiled, source=source)
        write_db(db, data)
        compile_s = time.perf_counter() - t0
        n_domains, n_urls, size = len(compiled.domains), len(compiled.urls), len(data)
        del compiled, data
        root, _ = find_root(lists)
        progress("loading and timing lookups in a fresh process")
        cmd = [sys.executable, "-m", "firmware.bench.categories", str(db), str(root), str(lookups), str(seed)]
        try:
            # run from the folder holding this package, so the child imports this very code
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600,
                                 cwd=Path(__file__).resolve().parents[2])
            m = json.loads(out.stdout)
        except (subprocess.SubprocessError, OSError, ValueError) as e:
            err = getattr(e, "stderr", "") or ""
            raise CategoryBenchError(f"measuring process failed: {e} {err.strip()[-300:]}") from None
    return CategoryBench(source, compile_s, size, n_domains, n_urls, m["load_seconds"], m["rss_before_mb"],
                         m["rss_after_mb"], m["host_lookups_per_s"], m["host_hit_share"],
                         m["url_lookups_per_s"], m["url_hit_share"], lookups,
                         m["host_lookups_per_wall_s"], m["url_lookups_per_wall_s"])


def measure(db: Path, lists_root: Path, lookups: int, seed: int) -> dict:
    """Load `db` in this (fresh) process and time lookups; run as ``python -m firmware.bench.categories``."""
    before = rss_mb()
    t0 = time.perf_counter()
    cdb = CategoryDB.load(db)
    load_s = time.perf_counter() - t0
    after = rss_mb()          # before the lookup mixes exist: the database alone
    hosts, urls = _mixes(lists_root, lookups, seed)
    lookup = cdb.lookup
    for h in hosts[:10000]:
        lookup(h)
    host_rate = url_rate = host_wall = url_wall = 0.0
    clock, wall = time.process_time, time.perf_counter
    for _ in range(ROUNDS):      # best of ROUNDS: other processes on a shared core only ever slow a round
        t0, w0 = clock(), wall()
        for h in hosts:
            lookup(h)
        host_rate = max(host_rate, len(hosts) / max(clock() - t0, 1e-9))
        host_wall = max(host_wall, len(hosts) / (wall() - w0))
        t0, w0 = clock(), wall()
        for h, p in urls:
            lookup(h, p)
        url_rate = max(url_rate, len(urls) / max(clock() - t0, 1e-9))
        url_wall = max(url_wall, len(urls) / (wall() - w0))
    host_hits = sum(1 for h in hosts if lookup(h)) / len(hosts)
    url_hits = sum(1 for h, p in urls if lookup(h, p)) / len(urls)
    return {"load_seconds": load_s, "rss_before_mb": before, "rss_after_mb": after,
            "host_lookups_per_s": host_rate, "host_hit_share": host_hits, "host_lookups_per_wall_s": host_wall,
            "url_lookups_per_s": url_rate, "url_hit_share": url_hits, "url_lookups_per_wall_s": url_wall}


class CategoryBenchError(Exception):
    """The benchmark could not run (the measuring process failed)."""


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
