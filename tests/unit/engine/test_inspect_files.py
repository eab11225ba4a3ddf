"""`utm inspect` end to end: files carried over HTTP become EVE fileinfo events."""
from __future__ import annotations

import gzip
import hashlib

from firmware.bench.frames import TcpConversation
from tests.unit.engine.test_inspect_cli import CLI, SRV, of, run

EXE = b"MZ\x90\x00" + bytes(range(256)) * 50


def _download_and_upload():
    c = TcpConversation(CLI, SRV, 40100, 80, start=1_700_000_000.0)
    get = b"GET /dl/setup.exe?v=2 HTTP/1.1\r\nHost: files.example.com\r\n\r\n"
    body = gzip.compress(EXE)
    resp = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Encoding: gzip\r\n"
            b"Content-Disposition: attachment; filename=\"setup.exe\"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)
    form = (b"--b0\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
            b"--b0\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"report.pdf\"\r\n"
            b"Content-Type: application/pdf\r\n\r\n%PDF-1.4 fake\r\n--b0--\r\n")
    post = (b"POST /upload HTTP/1.1\r\nHost: files.example.com\r\nContent-Type: multipart/form-data; boundary=b0\r\n"
            b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form)
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    return (list(c.handshake()) + list(c.send(get)) + list(c.send(resp, from_client=False))
            + list(c.send(post)) + list(c.send(ok, from_client=False)) + list(c.close()))


def test_download_and_multipart_upload_are_logged_as_files(tmp_path):
    rc, ev = run(tmp_path, _download_and_upload())
    assert rc == 0
    files = {e["fileinfo"]["filename"]: e for e in of(ev, "fileinfo")}
    assert sorted(files) == ["report.pdf", "setup.exe"]

    dl = files["setup.exe"]
    assert (dl["src_ip"], dl["dest_ip"], dl["app_proto"]) == (SRV, CLI, "http")
    assert dl["http"]["url"] == "/dl/setup.exe?v=2" and dl["http"]["status"] == 200
    fi = dl["fileinfo"]
    assert fi["size"] == len(EXE) and fi["state"] == "CLOSED" and fi["gaps"] is False
    assert fi["md5"] == hashlib.md5(EXE).hexdigest() and fi["sha256"] == hashlib.sha256(EXE).hexdigest()
    assert fi["mime_type"] == "application/x-dosexec" and fi["stored"] is False and fi["tx_id"] == 0
    assert fi["verdict"] == {"verdict": "unscanned", "reason": "no scanner configured"}

    up = files["report.pdf"]
    assert (up["src_ip"], up["http"]["http_method"], up["fileinfo"]["tx_id"]) == (CLI, "POST", 1)
    assert up["fileinfo"]["sha1"] == hashlib.sha1(b"%PDF-1.4 fake").hexdigest()
    assert up["fileinfo"]["magic"] == "PDF document"


def test_download_cut_short_is_truncated_and_size_limit_counted(tmp_path):
    c = TcpConversation(CLI, SRV, 40101, 80, start=1_700_000_000.0)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    pkts = (list(c.handshake()) + list(c.send(b"GET /big.bin HTTP/1.1\r\nHost: h\r\n\r\n"))
            + list(c.send(head + b"x" * 5000, from_client=False)) + list(c.close()))
    rc, ev = run(tmp_path, pkts, "--set", "files.max-size=1kb")
    (f,) = of(ev, "fileinfo")
    fi = f["fileinfo"]
    assert (fi["filename"], fi["state"], fi["size"]) == ("/big.bin", "TRUNCATED", 5000)
    assert "md5" not in fi and fi["sha256"] == hashlib.sha256(b"x" * 1024).hexdigest()


def test_a_rule_on_the_body_makes_its_file_malicious_by_signature(tmp_path):
    rules = tmp_path / "r.rules"
    rules.write_text('alert http any any -> any any (msg:"exe"; file.data; content:"MZ|90 00|"; startswith; sid:7;)\n'
                     'alert http any any -> any any (msg:"uri"; http.uri; content:"/dl/"; sid:8;)\n')
    rc, ev = run(tmp_path, _download_and_upload(), "-S", str(rules))
    files = {e["fileinfo"]["filename"]: e["fileinfo"]["verdict"] for e in of(ev, "fileinfo")}
    assert files["setup.exe"] == {"verdict": "malicious", "reason": "signature:1:7", "reasons": ["signature:1:7"]}
    assert files["report.pdf"]["verdict"] == "unscanned"     # a URI rule says nothing about a file
