"""`utm categories` exit codes and output, and `utm inspect --categories/--apps` end to end."""
from __future__ import annotations

import json
import random
from pathlib import Path

from firmware.bench.frames import TcpConversation, udp_packet
from firmware.bench.synth import dns_query, tls_client_hello
from firmware.cli.main import main
from inspection.policy.urlcat import CATEGORY_GID, category_sid
from tests.unit.engine.test_inspect_cli import CLI, SRV, of, run


def compile_db(tree: Path, tmp_path: Path, capsys) -> Path:
    db = tmp_path / "cat.db"
    assert main(["categories", "compile", str(tree), "-o", str(db)]) == 0
    out = capsys.readouterr().out
    assert "malware" in out and "expression does not compile" in out and "brandnew" in out
    return db


def test_compile_and_lookup_cli(tree, tmp_path, capsys):
    db = compile_db(tree, tmp_path, capsys)
    assert main(["categories", "lookup", "--db", str(db), "www.bad.test", "http://host.test/drop/payload/x",
                 "clean.test", "youtube.com"]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [c["name"] for c in lines[0]["categories"]] == ["malware", "phishing", "shopping"]
    assert lines[0]["blocked"] is True and lines[0]["categories"][0]["stars"] == 3
    assert [c["name"] for c in lines[1]["categories"]] == ["malware"] and lines[1]["path"] == "/drop/payload/x"
    assert lines[2]["categories"] == [] and lines[2]["blocked"] is False
    assert lines[3]["app"] == {"name": "YouTube", "type": "streaming"}


def test_cli_bad_input_exits_2(tree, tmp_path, capsys):
    assert main(["categories", "compile", str(tmp_path / "none"), "-o", str(tmp_path / "x.db")]) == 2
    assert main(["categories", "compile", str(tree), "-o", str(tmp_path / "no" / "x.db")]) == 2
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage")
    assert main(["categories", "lookup", "--db", str(bad), "x.test"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and "Traceback" not in err and "truncated" in err
    pcap_dir = tmp_path / "p"
    pcap_dir.mkdir()
    rc, _ = run(pcap_dir, [], "--categories", str(bad))
    assert rc == 2


def conversations():
    http = TcpConversation(CLI, SRV, 40001, 80, start=1_700_000_000.0)
    req = b"GET /drop/payload/run.exe HTTP/1.1\r\nHost: host.test\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    pkts = [*http.handshake(), *http.send(req), *http.send(resp, from_client=False), *http.close()]
    shop = TcpConversation(CLI, SRV, 40002, 80, start=1_700_000_001.0)
    req2 = b"GET /cart HTTP/1.1\r\nHost: www.shop.test\r\n\r\n"
    pkts += [*shop.handshake(), *shop.send(req2), *shop.send(resp, from_client=False), *shop.close()]
    tls = TcpConversation(CLI, SRV, 40003, 443, start=1_700_000_002.0)
    pkts += [*tls.handshake(), *tls.send(tls_client_hello(random.Random(1), "cdn.login.bank.test")), *tls.close()]
    yt = TcpConversation(CLI, SRV, 40004, 443, start=1_700_000_003.0)
    pkts += [*yt.handshake(), *yt.send(tls_client_hello(random.Random(2), "r1.googlevideo.com")), *yt.close()]
    pkts.append((1_700_000_004.0, udp_packet(CLI, "192.0.2.53", 5353, 53, dns_query(7, "ads.test", 1))))
    pkts.append((1_700_000_005.0, udp_packet(CLI, "192.0.2.53", 5354, 53, dns_query(8, "clean.test", 1))))
    return pkts


def test_inspect_with_categories_and_apps(tree, tmp_path, capsys):
    db = compile_db(tree, tmp_path, capsys)
    rc, ev = run(tmp_path, conversations(), "--categories", str(db), "--apps")
    assert rc == 0
    http = {e["http"]["hostname"]: e for e in of(ev, "http")}
    assert http["host.test"]["category"] == ["malware"]
    assert http["www.shop.test"]["category"] == ["shopping"]
    tls = {e["tls"]["sni"]: e for e in of(ev, "tls")}
    assert tls["cdn.login.bank.test"]["category"] == ["phishing"]
    assert tls["r1.googlevideo.com"]["app"] == {"name": "YouTube", "type": "streaming"}
    assert "category" not in tls["r1.googlevideo.com"]
    dns = {e["dns"]["queries"][0]["rrname"]: e for e in of(ev, "dns")}
    assert dns["ads.test"]["category"] == ["publicite"] and "category" not in dns["clean.test"]
    alerts = of(ev, "alert")
    got = sorted((a["alert"]["category"], a["alert"]["signature"]) for a in alerts)
    assert got == [("malware", "URL category malware: host.test/drop/payload/run.exe"),
                   ("phishing", "URL category phishing: cdn.login.bank.test")]
    for a in alerts:
        assert a["alert"]["action"] == "blocked" and a["alert"]["stars"] == 3
        assert a["alert"]["gid"] == CATEGORY_GID and a["alert"]["signature_id"] == category_sid(a["alert"]["category"])
        assert a["src_ip"] == CLI


def test_inspect_without_categories_adds_nothing(tmp_path):
    rc, ev = run(tmp_path, conversations())
    assert rc == 0 and not of(ev, "alert")
    assert all("category" not in e and "app" not in e for e in ev)


def test_inspect_summary_counts_lookups(tree, tmp_path, capsys):
    from tests.unit.engine.test_inspect_cli import write_pcap

    db = compile_db(tree, tmp_path, capsys)
    pcap = write_pcap(tmp_path / "c.pcap", conversations())
    assert main(["inspect", "-r", str(pcap), "-l", str(tmp_path / "o"), "--categories", str(db)]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("categories:"))
    assert "2 blocked" in line and "malware=1" in line and "phishing=1" in line and "apps recognised: 0" in line


def test_bench_on_a_small_tree(tree, tmp_path, capsys):
    db = tmp_path / "bench.db"
    assert main(["categories", "bench", "--lists", str(tree), "--db", str(db), "--lookups", "1000", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["domains"] == 8 and report["host_lookups_per_s"] > 0 and report["rss_after_mb"] > 0
    assert 0 < report["host_hit_share"] < 1 and db.is_file()
    assert main(["categories", "bench", "--lists", str(tree), "--generate"]) == 2


def test_generated_lists_look_like_ut1(tmp_path):
    from firmware.bench.categories import generate_lists
    from signatures.categories.compile import compile_lists

    generate_lists(tmp_path / "g", seed=3, domains=3000, urls=200)
    c = compile_lists(tmp_path / "g")
    lines = sum(r.domains + r.duplicates for r in c.reports.values())
    assert lines == 3000 and 0.55 < len(c.domains) / lines < 0.8     # names repeated across categories
    assert any(k[-1].isdigit() for k in c.domains) and len(c.urls) > 150
