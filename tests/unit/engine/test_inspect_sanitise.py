"""`utm inspect --sanitize-dir`: suspicious files carried over HTTP and SMTP become `sanitised`,
with the disarmed copy (what `sanitize()` gives) stored under its sha256. Captures and files
are built in the test; oletools checks the stored copy."""
from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from firmware.bench.frames import TcpConversation
from inspection.files.sanitize import sanitize
from tests.unit.engine.test_inspect_cli import CLI, SRV, of, run, write_pcap
from tests.unit.engine.test_inspect_mail import dot_stuff, message, smtp_capture
from tests.unit.files.sanitize import builders
from tests.unit.files.sanitize.oletools_helpers import vba

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
DOCM = builders.docm()
# PDF JavaScript as names only (the sanitiser renames names outside stream data; text that reads
# "/JavaScript" inside a content stream would keep the scanner's verdict, see test_pdf_text_*)
PDF = builders.pdf([
    b"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R /Names << /JavaScript 5 0 R >> >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    b"<< /S /JavaScript /JS (app.alert\\(1\\)) >>",
    b"<< /Names [(x) 4 0 R] >>",
])


def downloads(*files: tuple[str, bytes], cut: int = 0, port: int = 40200) -> list:
    """One keep-alive connection downloading each (name, body); the last body loses `cut` bytes."""
    c = TcpConversation(CLI, SRV, port, 80, start=1_700_000_000.0)
    pkts = list(c.handshake())
    for i, (name, body) in enumerate(files):
        pkts += list(c.send(f"GET /get/{name} HTTP/1.1\r\nHost: files.example.com\r\n\r\n".encode()))
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
                b"filename=\"" + name.encode() + b"\"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        last = i == len(files) - 1
        pkts += list(c.send(head + (body[: len(body) - cut] if last and cut else body), from_client=False))
    return pkts + list(c.close())


def fileinfos(events) -> dict[str, dict]:
    return {e["fileinfo"]["filename"]: e["fileinfo"] for e in of(events, "fileinfo")}


def copies(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.exists() else {}


def test_docm_and_pdf_download_are_sanitised_and_the_copies_are_what_sanitize_gives(tmp_path):
    out = tmp_path / "clean"
    rc, ev = run(tmp_path, downloads(("invoice.docm", DOCM), ("form.pdf", PDF)), "--sanitize-dir", str(out))
    assert rc == 0
    files = fileinfos(ev)
    stored = copies(out)
    for name, data, new_name, found in [("invoice.docm", DOCM, "invoice.docx", "suspicious: macro with auto-exec"),
                                         ("form.pdf", PDF, "form.pdf", "suspicious: pdf javascript")]:
        fi = files[name]
        expect = sanitize(data, name)
        assert fi["state"] == "CLOSED" and fi["sha256"] == hashlib.sha256(data).hexdigest()
        v = fi["verdict"]
        assert v["verdict"] == "sanitised" and v["reason"] == found and v["reasons"][0] == found
        removed = [r for r in v["reasons"] if r.startswith("sanitised: ")]
        assert removed == list(dict.fromkeys(f"sanitised: {a.kind.value} {a.target}" for a in expect.actions))
        sha = hashlib.sha256(expect.data).hexdigest()
        assert fi["sanitised"] == {"sha256": sha, "size": len(expect.data), "filename": new_name}
        assert stored[sha] == expect.data
    assert len(stored) == 2
    docx = stored[files["invoice.docm"]["sanitised"]["sha256"]]
    assert vba(DOCM, "invoice.docm") and not vba(docx, "invoice.docx")
    assert "sanitised: removed-vba-project word/vbaProject.bin" in files["invoice.docm"]["verdict"]["reasons"]
    assert "vbaProject" not in " ".join(zipfile.ZipFile(io.BytesIO(docx)).namelist())
    assert b"/JavaScript" not in stored[files["form.pdf"]["sanitised"]["sha256"]]


def test_same_file_twice_is_written_once_and_a_second_run_finds_it(tmp_path, capsys):
    out = tmp_path / "clean"
    pcap = write_pcap(tmp_path / "in.pcap", downloads(("a.docm", DOCM), ("b.docm", DOCM)))
    from firmware.cli.main import main
    assert main(["inspect", "-r", str(pcap), "-l", str(tmp_path / "o1"), "--sanitize-dir", str(out)]) == 0
    assert "files sanitised: 2 (1 copies written to" in capsys.readouterr().out
    assert len(copies(out)) == 1
    assert main(["inspect", "-r", str(pcap), "-l", str(tmp_path / "o2"), "--sanitize-dir", str(out)]) == 0
    assert "files sanitised: 2 (0 copies written to" in capsys.readouterr().out
    assert len(copies(out)) == 1


def test_without_the_option_suspicious_stays_suspicious(tmp_path):
    hashes = tmp_path / "none.txt"
    hashes.write_text("")
    rc, ev = run(tmp_path, downloads(("invoice.docm", DOCM)), "--hashes", str(hashes))
    (fi,) = fileinfos(ev).values()
    assert fi["verdict"] == {"verdict": "suspicious", "reason": "suspicious: macro with auto-exec",
                             "reasons": ["suspicious: macro with auto-exec"]}
    assert "sanitised" not in fi


def test_hash_listed_member_keeps_the_file_malicious(tmp_path):
    listed = zipfile.ZipFile(io.BytesIO(DOCM))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n in listed.namelist():
            z.writestr(n, listed.read(n))
        z.writestr("word/media/eicar.com", EICAR)
    bad = buf.getvalue()
    hashes = tmp_path / "block.txt"
    hashes.write_text(f"{hashlib.sha256(EICAR).hexdigest()} EICAR-Test-File\n")
    out = tmp_path / "clean"
    rc, ev = run(tmp_path, downloads(("bad.docm", bad)), "--hashes", str(hashes), "--sanitize-dir", str(out))
    (fi,) = fileinfos(ev).values()
    assert fi["verdict"]["verdict"] == "malicious" and "hash:block.txt:EICAR-Test-File" in fi["verdict"]["reasons"]
    assert not any(r.startswith(("sanitised", "sanitise_failed")) for r in fi["verdict"]["reasons"])
    assert "sanitised" not in fi and copies(out) == {}


def test_a_rule_on_the_body_overrules_sanitising_and_nothing_is_stored(tmp_path, capsys):
    rules = tmp_path / "r.rules"
    rules.write_text('alert http any any -> any any (msg:"vba in a download"; file.data; '
                     'content:"vbaProject.bin"; sid:9001; rev:1;)\n')
    out = tmp_path / "clean"
    pcap = write_pcap(tmp_path / "in.pcap", downloads(("invoice.docm", DOCM)))
    from firmware.cli.main import main
    assert main(["inspect", "-r", str(pcap), "-l", str(tmp_path / "o"), "-S", str(rules),
                 "--sanitize-dir", str(out)]) == 0
    assert "not sanitised: found malicious=1" in capsys.readouterr().out
    import json
    ev = [json.loads(line) for line in (tmp_path / "o" / "eve.json").read_text().splitlines()]
    (fi,) = fileinfos(ev).values()
    assert fi["verdict"]["verdict"] == "malicious"
    assert fi["verdict"]["reasons"] == ["signature:1:9001", "suspicious: macro with auto-exec"]
    assert "sanitised" not in fi and copies(out) == {}


def test_truncated_download_is_not_sanitised(tmp_path):
    out = tmp_path / "clean"
    rc, ev = run(tmp_path, downloads(("form.pdf", PDF), cut=40), "--sanitize-dir", str(out))
    (fi,) = fileinfos(ev).values()
    assert fi["state"] == "TRUNCATED"
    assert fi["verdict"]["verdict"] == "suspicious"
    assert fi["verdict"]["reasons"] == ["suspicious: pdf javascript", "unscanned: truncated",
                                        "sanitise_failed: not whole (truncated)"]
    assert "sanitised" not in fi and copies(out) == {}


def test_file_over_the_size_cap_is_not_sanitised(tmp_path):
    out = tmp_path / "clean"
    rc, ev = run(tmp_path, downloads(("form.pdf", PDF)), "--set", f"files.max-size={len(PDF) - 100}",
                 "--sanitize-dir", str(out))
    (fi,) = fileinfos(ev).values()
    assert fi["state"] == "TRUNCATED" and fi["verdict"]["verdict"] == "suspicious"
    assert "sanitise_failed: not whole (truncated)" in fi["verdict"]["reasons"]
    assert copies(out) == {}


def test_smtp_attachment_is_sanitised(tmp_path):
    out = tmp_path / "clean"
    rc, ev = run(tmp_path, smtp_capture(message(DOCM, "invoice.docm")), "--sanitize-dir", str(out))
    (f,) = of(ev, "fileinfo")
    assert f["app_proto"] == "smtp"
    fi = f["fileinfo"]
    assert fi["verdict"]["verdict"] == "sanitised"
    expect = sanitize(DOCM, "invoice.docm").data
    assert fi["sanitised"]["filename"] == "invoice.docx" and copies(out) == {hashlib.sha256(expect).hexdigest(): expect}


def _talk(port: int, lines) -> list:
    c = TcpConversation(CLI, SRV, 41100 + port % 100, port, start=1_700_000_000.0)
    pkts = list(c.handshake())
    for from_client, data in lines:
        pkts += list(c.send(data, from_client=from_client))
    return pkts + list(c.close())


def test_pop3_and_imap_attachments_are_sanitised_both_ways(tmp_path):
    out = tmp_path / "clean"
    pop = _talk(110, [(False, b"+OK POP3 ready\r\n"), (True, b"USER bob\r\n"), (False, b"+OK\r\n"),
                      (True, b"PASS secret\r\n"), (False, b"+OK in\r\n"), (True, b"RETR 1\r\n"),
                      (False, b"+OK\r\n" + dot_stuff(message(DOCM, "popped.docm"))), (True, b"QUIT\r\n"),
                      (False, b"+OK bye\r\n")])
    msg, up = message(PDF, "fetched.pdf"), message(DOCM, "draft.docm")
    fetch = b"* 1 FETCH (UID 7 BODY[] {" + str(len(msg)).encode() + b"}\r\n" + msg + b" FLAGS (\\Seen))\r\n"
    imap = _talk(143, [(False, b"* OK IMAP4rev1 ready\r\n"), (True, b"a1 LOGIN bob secret\r\n"),
                       (False, b"a1 OK done\r\n"), (True, b"a2 UID FETCH 7 (BODY.PEEK[])\r\n"),
                       (False, fetch + b"a2 OK done\r\n"),
                       (True, b"a3 APPEND Drafts {" + str(len(up)).encode() + b"}\r\n"), (False, b"+ ready\r\n"),
                       (True, up + b"\r\n"), (False, b"a3 OK appended\r\n")])
    rc, ev = run(tmp_path, pop + imap, "--sanitize-dir", str(out))
    files = {e["fileinfo"]["filename"]: e for e in of(ev, "fileinfo")}
    assert sorted(files) == ["draft.docm", "fetched.pdf", "popped.docm"]
    assert {n: (e["app_proto"], e["fileinfo"]["verdict"]["verdict"]) for n, e in files.items()} == {
        "popped.docm": ("pop3", "sanitised"), "fetched.pdf": ("imap", "sanitised"), "draft.docm": ("imap", "sanitised")}
    assert files["draft.docm"]["src_ip"] == CLI      # an upload (APPEND) is sanitised as a download is
    want = {hashlib.sha256(d).hexdigest(): d for d in (sanitize(DOCM, "x.docm").data, sanitize(PDF, "x.pdf").data)}
    assert copies(out) == want


def test_multipart_upload_is_sanitised(tmp_path):
    out = tmp_path / "clean"
    form = (b"--b0\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"upload.docm\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + DOCM + b"\r\n--b0--\r\n")
    c = TcpConversation(CLI, SRV, 40300, 80, start=1_700_000_000.0)
    post = (b"POST /upload HTTP/1.1\r\nHost: files.example.com\r\nContent-Type: multipart/form-data; boundary=b0"
            b"\r\nContent-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form)
    pkts = (list(c.handshake()) + list(c.send(post))
            + list(c.send(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", from_client=False)) + list(c.close()))
    rc, ev = run(tmp_path, pkts, "--sanitize-dir", str(out))
    (f,) = of(ev, "fileinfo")
    assert f["src_ip"] == CLI and f["http"]["url"] == "/upload"
    fi = f["fileinfo"]
    assert fi["verdict"]["verdict"] == "sanitised" and fi["sanitised"]["filename"] == "upload.docx"
    assert list(copies(out).values()) == [sanitize(DOCM, "upload.docm").data]


def test_folder_file_limit_is_counted_and_the_file_stays_suspicious(tmp_path, capsys):
    out = tmp_path / "clean"
    pcap = write_pcap(tmp_path / "in.pcap", downloads(("invoice.docm", DOCM), ("form.pdf", PDF)))
    from firmware.cli.main import main
    assert main(["inspect", "-r", str(pcap), "-l", str(tmp_path / "o"), "--sanitize-dir", str(out),
                 "--sanitize-max-files", "1"]) == 0
    printed = capsys.readouterr().out
    assert "not sanitised: folder file limit=1" in printed and "sanitise.files_limit=1" in printed
    import json
    ev = [json.loads(line) for line in (tmp_path / "o" / "eve.json").read_text().splitlines()]
    files = fileinfos(ev)
    assert files["invoice.docm"]["verdict"]["verdict"] == "sanitised"
    assert files["form.pdf"]["verdict"] == {
        "verdict": "suspicious", "reason": "suspicious: pdf javascript",
        "reasons": ["suspicious: pdf javascript", "sanitise_failed: sanitise folder full (1 files)"]}
    assert len(copies(out)) == 1


def test_copies_of_earlier_runs_count_against_the_size_limit(tmp_path):
    out = tmp_path / "clean"
    out.mkdir()
    (out / ("0" * 64)).write_bytes(b"x" * (1 << 20))     # an earlier run's copy: the 1 MB folder is full
    (out / "README").write_bytes(b"not a copy, not counted")
    rc, ev = run(tmp_path, downloads(("form.pdf", PDF)), "--sanitize-dir", str(out), "--sanitize-max-mb", "1")
    (fi,) = fileinfos(ev).values()
    assert fi["verdict"]["reasons"][-1] == f"sanitise_failed: sanitise folder full ({1 << 20} bytes)"
    assert sorted(p.name for p in out.iterdir()) == ["0" * 64, "README"]


def test_pdf_text_that_reads_javascript_keeps_the_scanner_verdict(tmp_path):
    """The scanner flags "/JavaScript" anywhere in the PDF; the sanitiser does not touch stream data.
    The copy must scan clean to be called sanitised, so this one stays suspicious (fail closed)."""
    out = tmp_path / "clean"
    rc, ev = run(tmp_path, downloads(("x.pdf", builders.pdf_with_javascript())), "--sanitize-dir", str(out))
    (fi,) = fileinfos(ev).values()
    assert fi["verdict"]["verdict"] == "suspicious"
    assert fi["verdict"]["reasons"][-1] == "sanitise_failed: copy still suspicious (suspicious: pdf javascript)"
    assert copies(out) == {}


@pytest.mark.parametrize("bad", [["--sanitize-max-files", "0"], ["--sanitize-max-mb", "x"]])
def test_bad_limits_exit_2(tmp_path, bad, capsys):
    with pytest.raises(SystemExit) as e:
        run(tmp_path, downloads(("a.docm", DOCM)), "--sanitize-dir", str(tmp_path / "c"), *bad)
    assert e.value.code == 2


def test_sanitize_dir_that_is_a_file_exits_2_with_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, _ = run(tmp_path, downloads(("a.docm", DOCM)), "--sanitize-dir", str(blocker / "sub"))
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("utm inspect: --sanitize-dir ") and err.count("\n") == 1
    rc, _ = run(tmp_path, downloads(("a.docm", DOCM)), "--sanitize-dir", str(blocker))
    assert rc == 2 and capsys.readouterr().err == f"utm inspect: --sanitize-dir {blocker}: not a folder\n"
