"""`./build.sh demo`: the appliance at work in the testbed, or the offline demo when that cannot run.

Live (root, network namespaces, dnsmasq and curl): bring the testbed up, run the
box with `utm run` (URL categories, a hash list and a YARA rule for EICAR), drive
the office devices through a clean download, an EICAR download, a zipped EICAR,
a phishing visit over HTTP and HTTPS and some ordinary browsing, print what each
device got and what the box saw, recorded and blocked (from its EVE log), and
take the testbed down again, also on Ctrl-C or failure.

Exit status: 0 done; 1 the live demo failed; 3 the live demo cannot run here
(one line says why) and build.sh runs the offline demo instead. When a testbed
is already up it belongs to someone: the demo does not touch it (exit 3).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

FALLBACK = 3

STEPS = [   # (device, what, url, curl options)
    ("utmtb-lan", "ordinary browsing", "https://www.example.test/", ()),
    ("utmtb-ssid2", "ordinary browsing", "http://www.example.test/", ()),
    ("utmtb-lan", "clean download (10 MB)", "http://www.example.test/clean.bin", ()),
    ("utmtb-ssid1", "EICAR download", "http://www.example.test/eicar.com", ()),
    ("utmtb-ssid2", "zipped EICAR (IPv4)", "http://files.example.test/eicar.zip", ("-4",)),
    ("utmtb-lan", "EICAR, no length (FIN ends)", "http://www.example.test/eicar-close.com", ()),
    ("utmtb-ssid2", "EICAR, chunked", "http://www.example.test/eicar-chunked.com", ()),
    ("utmtb-lan", "phishing visit (HTTP)", "http://phish.example.test/", ()),
    ("utmtb-ssid1", "phishing visit (HTTPS)", "https://phish.example.test/", ()),
    ("utmtb-lan", "document download", "http://files.example.test/macro.docm", ()),
]


def why_not_live() -> str | None:
    """None when the live demo can run here, else the reason in a few words."""
    if os.geteuid() != 0:
        return "not root"
    for tool in ("ip", "dnsmasq", "curl", "iptables-nft-restore"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    from tests.sim import testbed
    if testbed.namespaces() & set(testbed.NAMESPACES):
        return "a testbed is already up (not touching it)"
    probe = f"utmdemo-probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        return "this kernel does not allow network namespaces here"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


def outcome(f) -> str:   # f: livebox.Fetch
    if f.exit == 0 and f.status == 403 and b"blocked" in f.body:
        return f"BLOCK PAGE (403, {f.size} bytes)"
    if f.exit == 0:
        return f"ok: HTTP {f.status}, {f.size:,} bytes in {f.seconds:.2f} s"
    kinds = {56: "connection reset while receiving", 35: "TLS handshake reset", 18: "short read",
             52: "empty reply", 28: "timed out", 7: "could not connect"}
    return f"STOPPED: {kinds.get(f.exit, f'curl exit {f.exit}')}" + (f" after HTTP {f.status}" if f.status else "")


def summary(events: list[dict]) -> list[str]:
    """A short account of the box's EVE log."""
    lines = []
    types = Counter(e.get("event_type") for e in events)
    lines.append("events: " + ", ".join(f"{k}={v}" for k, v in sorted(types.items())))
    https = [e["http"] for e in events if e.get("event_type") == "http"]
    seen = sorted({f"{h.get('hostname')}{h.get('url')}" for h in https})
    tls = sorted({e["tls"].get("sni") for e in events if e.get("event_type") == "tls" and e["tls"].get("sni")})
    lines.append("saw: HTTP " + (", ".join(seen) or "-") + "; TLS " + (", ".join(tls) or "-"))
    for e in events:
        if e.get("event_type") == "fileinfo":
            fi = e["fileinfo"]
            lines.append(f"recorded file: {fi.get('filename')} {fi.get('size'):,} bytes -> "
                         f"{fi['verdict']['verdict']} ({fi['verdict']['reason']})")
    alerts = Counter((e["alert"]["action"], e["alert"]["signature"] + (" (DNS query)" if "dns" in e else ""))
                     for e in events if e.get("event_type") == "alert")
    for (action, sig), n in sorted(alerts.items()):
        lines.append(f"alert [{action}] {sig}" + (f" (x{n})" if n > 1 else ""))
    stats = [e["stats"]["live"] for e in events if e.get("event_type") == "stats" and "live" in e.get("stats", {})]
    if stats:
        s = stats[-1]
        lines.append(f"box: {s['packets']} packets queued, {s['flows_bypassed']} flows handed back, "
                     f"{s['flows_blocked']} blocked ({s['resets_sent']} resets, {s['block_pages_sent']} block pages, "
                     f"{s['files_blocked']} files stopped at their last segment, longest hold "
                     f"{s['file_hold_us_max'] / 1000:.1f} ms)")
    return lines


def live() -> int:
    from tests.sim import livebox as lb
    from tests.sim import testbed

    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    box = None
    with tempfile.TemporaryDirectory(prefix="utm-demo-") as tmp:
        try:
            print("demo: bringing the testbed up (namespaces utmtb-*) ...", flush=True)
            testbed.up()
            args = lb.make_judges(Path(tmp))
            print("demo: starting `utm run` in utmtb-box with a category database (phish.example.test = "
                  "phishing), a hash list and a YARA rule for EICAR", flush=True)
            box = lb.LiveBox(Path(tmp) / "eve", args).start()
            print()
            for ns, what, url, opts in STEPS:
                f = lb.fetch(ns, url, *opts, timeout=15)
                print(f"  {ns[6:]:6} {what:26} {url:40} {outcome(f)}", flush=True)
            box.stop()
            print("\nWhat the box saw, recorded and blocked (EVE log):")
            for line in summary(box.events()):
                print("  " + line)
            return 0
        except KeyboardInterrupt:
            print("demo: interrupted", file=sys.stderr)
            return 1
        except Exception as e:   # noqa: BLE001 - one line, then clean up
            print(f"demo: failed: {e}", file=sys.stderr)
            return 1
        finally:
            if box is not None:
                box.stop()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            print("demo: taking the testbed down", flush=True)
            testbed.down()


def main() -> int:
    reason = why_not_live()
    if reason is not None:
        print(f"demo: the live demo needs root and network namespaces ({reason}); showing the offline demo")
        return FALLBACK
    return live()


if __name__ == "__main__":
    sys.exit(main())
