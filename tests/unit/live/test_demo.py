"""`./build.sh demo`'s Python side without root: the fallback decision and the EVE summary."""
from __future__ import annotations

from tests.sim import demo


def test_without_root_the_demo_falls_back_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)
    assert demo.main() == demo.FALLBACK
    out = capsys.readouterr().out
    assert "not root" in out and "offline demo" in out and out.count("\n") == 1


def test_the_summary_says_what_was_seen_recorded_and_blocked():
    evs = [
        {"event_type": "http", "http": {"hostname": "www.example.test", "url": "/eicar.com"}},
        {"event_type": "tls", "tls": {"sni": "phish.example.test"}},
        {"event_type": "fileinfo", "fileinfo": {"filename": "/eicar.com", "size": 68,
                                                "verdict": {"verdict": "malicious", "reason": "hash:l:eicar"}}},
        {"event_type": "alert", "alert": {"action": "blocked", "signature": "Malicious file /eicar.com: hash:l:eicar"}},
        {"event_type": "alert", "dns": {}, "alert": {"action": "allowed", "signature": "URL category phishing: p"}},
        {"event_type": "stats", "stats": {"live": {"packets": 10, "flows_bypassed": 1, "flows_blocked": 2,
                                                   "resets_sent": 2, "block_pages_sent": 1, "files_blocked": 1,
                                                   "file_hold_us_max": 1500}}},
    ]
    text = "\n".join(demo.summary(evs))
    assert "www.example.test/eicar.com" in text and "phish.example.test" in text
    assert "/eicar.com 68 bytes -> malicious" in text
    assert "alert [blocked] Malicious file /eicar.com" in text and "(DNS query)" in text
    assert "1 block pages" in text and "1.5 ms" in text


def test_outcomes_read_like_what_the_user_saw():
    from tests.sim.livebox import Fetch
    assert demo.outcome(Fetch(56, 200, 0, "", b"", 0.1)).startswith("STOPPED: connection reset")
    assert demo.outcome(Fetch(0, 403, 500, "", b"... blocked ...", 0.1)).startswith("BLOCK PAGE")
    assert demo.outcome(Fetch(0, 200, 92, "", b"x", 0.1)).startswith("ok: HTTP 200")
