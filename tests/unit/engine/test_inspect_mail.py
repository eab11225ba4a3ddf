"""`utm inspect` end to end: mail over SMTP, POP3 and IMAP; attachments become fileinfo events."""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from firmware.bench.frames import TcpConversation
from tests.unit.engine.test_inspect_cli import CLI, SRV, of, run

EXE = b"MZ\x90\x00" + bytes(range(256)) * 20
CORPUS = Path(os.environ.get("UTM_CORPUS", Path(__file__).resolve().parents[3].parent / "shared" / "corpus"))
CLAMAV = CORPUS / "clamav-testfiles"
CLAM_SHA256 = "71e7b604d18aefd839e51a39c88df8383bb4c071dc31f87f00a2b5df580d4495"   # clamav.hdb: clam.exe


def message(attachment: bytes = EXE, name: str = "setup.exe") -> bytes:
    b64 = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    return (b"From: \"Alice\" <alice@example.org>\r\nTo: bob@example.net, \"Carol, C.\" <carol@example.net>\r\n"
            b"Cc: dave@example.net\r\nSubject: =?UTF-8?B?UmVwb3J0IOKckw==?=\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\n"
            b"Content-Type: text/plain\r\n\r\n.hi, see https://files.example.org/get?id=7\r\n"
            b"--b1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\""
            + name.encode() + b"\"\r\n\r\n" + b64 + b"--b1--\r\n")


def dot_stuff(msg: bytes) -> bytes:
    return (b"\r\n" + msg).replace(b"\r\n.", b"\r\n..")[2:] + b".\r\n"


def smtp_capture(msg: bytes, port: int = 25) -> list:
    c = TcpConversation(CLI, SRV, 41000, port, start=1_700_000_000.0)
    talk = [
        (False, b"220 mx.example.net ESMTP\r\n"), (True, b"EHLO client.example.org\r\n"),
        (False, b"250-mx.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
        (True, b"MAIL FROM:<alice@example.org> SIZE=900\r\nRCPT TO:<bob@example.net>\r\n"
               b"RCPT TO:<carol@example.net>\r\nDATA\r\n"),
        (False, b"250 ok\r\n250 ok\r\n250 ok\r\n354 go ahead\r\n"), (True, dot_stuff(msg)),
        (False, b"250 queued\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n"),
    ]
    pkts = list(c.handshake())
    for from_client, data in talk:
        pkts += list(c.send(data, from_client=from_client))
    return pkts + list(c.close())


def test_smtp_mail_with_attachment(tmp_path):
    rc, ev = run(tmp_path, smtp_capture(message()))
    assert rc == 0
    (smtp,) = of(ev, "smtp")
    assert smtp["app_proto"] == "smtp" and smtp["tx_id"] == 0
    assert smtp["smtp"] == {"helo": "client.example.org", "mail_from": "<alice@example.org>",
                            "rcpt_to": ["<bob@example.net>", "<carol@example.net>"]}
    email = smtp["email"]
    assert email["status"] == "PARSE_DONE" and email["from"] == "\"Alice\" <alice@example.org>"
    assert email["to"] == ["bob@example.net", "\"Carol, C.\" <carol@example.net>"]
    assert email["cc"] == ["dave@example.net"] and email["attachment"] == ["setup.exe"]
    assert email["subject"] == "Report \u2713" and email["url"] == ["https://files.example.org/get?id=7"]
    (f,) = of(ev, "fileinfo")
    assert (f["app_proto"], f["src_ip"], f["dest_port"]) == ("smtp", CLI, 25)
    fi = f["fileinfo"]
    assert fi["filename"] == "setup.exe" and fi["state"] == "CLOSED" and fi["size"] == len(EXE)
    assert fi["sha256"] == hashlib.sha256(EXE).hexdigest() and fi["md5"] == hashlib.md5(EXE).hexdigest()
    assert fi["mime_type"] == "application/x-dosexec"
    assert f["smtp"]["mail_from"] == "<alice@example.org>" and f["email"]["attachment"] == ["setup.exe"]
    assert not [a for a in of(ev, "anomaly") if a["anomaly"].get("app_proto") == "smtp"]


def test_smtp_on_another_port_is_found_by_ehlo_and_cut_mail_is_truncated(tmp_path):
    msg = message()
    # the capture ends 400 bytes before the message does: the attachment never closes
    c = TcpConversation(CLI, SRV, 41001, 2526, start=1_700_000_000.0)
    cut = list(c.handshake())
    for from_client, data in [(False, b"220 x\r\n"), (True, b"EHLO a\r\n"), (False, b"250 x\r\n"),
                              (True, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
                              (False, b"250 ok\r\n250 ok\r\n354 go\r\n"), (True, msg[: len(msg) - 400])]:
        cut += list(c.send(data, from_client=from_client))
    cut += list(c.close())
    rc, ev = run(tmp_path, cut)
    (smtp,) = of(ev, "smtp")
    assert smtp["app_proto"] == "smtp" and smtp["email"]["status"] == "BODY_STARTED"
    (f,) = of(ev, "fileinfo")
    assert f["fileinfo"]["state"] == "TRUNCATED" and "md5" not in f["fileinfo"]


def test_starttls_hands_the_flow_to_tls(tmp_path):
    import random

    from firmware.bench.synth import tls_client_hello
    c = TcpConversation(CLI, SRV, 41002, 587, start=1_700_000_000.0)
    pkts = list(c.handshake())
    for from_client, data in [(False, b"220 x ESMTP\r\n"), (True, b"EHLO a\r\n"), (False, b"250 STARTTLS\r\n"),
                              (True, b"STARTTLS\r\n"), (False, b"220 go ahead\r\n"),
                              (True, tls_client_hello(random.Random(1), "mail.example.net"))]:
        pkts += list(c.send(data, from_client=from_client))
    rc, ev = run(tmp_path, pkts + list(c.close()))
    (tls,) = of(ev, "tls")
    assert tls["tls"]["sni"] == "mail.example.net"
    (smtp,) = of(ev, "smtp")         # the session before TLS, as Suricata logs it
    assert smtp["smtp"] == {"helo": "a"} and "email" not in smtp
    (flow,) = of(ev, "flow")
    assert flow["app_proto"] == "tls" and flow["app_proto_orig"] == "smtp"


def test_pop3_retr_attachment(tmp_path):
    c = TcpConversation(CLI, SRV, 41003, 110, start=1_700_000_000.0)
    msg = message(name="invoice.exe")
    pkts = list(c.handshake())
    for from_client, data in [(False, b"+OK POP3 ready\r\n"), (True, b"USER bob\r\n"), (False, b"+OK\r\n"),
                              (True, b"PASS secret\r\n"), (False, b"+OK logged in\r\n"), (True, b"RETR 1\r\n"),
                              (False, b"+OK 900 octets\r\n" + dot_stuff(msg)), (True, b"QUIT\r\n"),
                              (False, b"+OK bye\r\n")]:
        pkts += list(c.send(data, from_client=from_client))
    rc, ev = run(tmp_path, pkts + list(c.close()))
    pop = of(ev, "pop3")
    assert [p["pop3"]["request"]["command"] for p in pop] == ["USER", "PASS", "RETR", "QUIT"]
    assert pop[1]["pop3"]["request"]["args"] == []          # the password is not logged
    retr = pop[2]
    assert retr["pop3"]["response"] == {"success": True, "status": "+OK", "header": "900 octets"}
    assert retr["email"]["attachment"] == ["invoice.exe"]
    (f,) = of(ev, "fileinfo")
    assert (f["app_proto"], f["src_ip"], f["fileinfo"]["tx_id"]) == ("pop3", SRV, retr["tx_id"])
    assert f["fileinfo"]["sha256"] == hashlib.sha256(EXE).hexdigest()


def test_imap_fetch_literal_and_append(tmp_path):
    c = TcpConversation(CLI, SRV, 41004, 143, start=1_700_000_000.0)
    msg = message(name="fetched.exe")
    up = message(attachment=b"%PDF-1.4 uploaded", name="draft.pdf")
    fetch = b"* 1 FETCH (UID 7 BODY[] {" + str(len(msg)).encode() + b"}\r\n" + msg + b" FLAGS (\\Seen))\r\n"
    pkts = list(c.handshake())
    for from_client, data in [(False, b"* OK IMAP4rev1 ready\r\n"), (True, b"a1 LOGIN bob {6}\r\n"),
                              (False, b"+ go\r\n"), (True, b"secret\r\n"), (False, b"a1 OK done\r\n"),
                              (True, b"a2 UID FETCH 7 (BODY.PEEK[])\r\n"), (False, fetch + b"a2 OK done\r\n"),
                              (True, b"a3 APPEND Drafts {" + str(len(up)).encode() + b"}\r\n"),
                              (False, b"+ ready\r\n"), (True, up + b"\r\n"), (False, b"a3 OK appended\r\n")]:
        pkts += list(c.send(data, from_client=from_client))
    rc, ev = run(tmp_path, pkts + list(c.close()))
    imap = of(ev, "imap")
    assert [(i["imap"]["command"], i["imap"]["status"]) for i in imap] == [
        ("LOGIN", "OK"), ("UID FETCH", "OK"), ("APPEND", "OK")]
    assert imap[1]["imap"]["messages"] == 1 and imap[1]["email"]["attachment"] == ["fetched.exe"]
    files = {f["fileinfo"]["filename"]: f for f in of(ev, "fileinfo")}
    assert sorted(files) == ["draft.pdf", "fetched.exe"]
    assert files["fetched.exe"]["src_ip"] == SRV and files["draft.pdf"]["src_ip"] == CLI
    assert files["fetched.exe"]["fileinfo"]["sha256"] == hashlib.sha256(EXE).hexdigest()
    assert files["draft.pdf"]["fileinfo"]["magic"] == "PDF document"
    assert {f["app_proto"] for f in files.values()} == {"imap"}


def test_ftp_greeting_is_not_taken_for_smtp(tmp_path):
    c = TcpConversation(CLI, SRV, 41005, 21, start=1_700_000_000.0)
    pkts = list(c.handshake())
    for from_client, data in [(False, b"220 ProFTPD ready\r\n"), (True, b"USER anonymous\r\n"),
                              (False, b"331 password\r\n")]:
        pkts += list(c.send(data, from_client=from_client))
    rc, ev = run(tmp_path, pkts + list(c.close()))
    (flow,) = of(ev, "flow")
    assert "app_proto" not in flow or flow["app_proto"] == "failed"
    assert not of(ev, "smtp") and not of(ev, "pop3")


def test_rules_on_mail_flows(tmp_path):
    """Rule headers naming smtp, app-layer-protocol and SMTP parser events match."""
    rules = tmp_path / "mail.rules"
    rules.write_text(
        'alert smtp any any -> any any (msg:"rcpt"; flow:to_server; content:"RCPT TO"; sid:1;)\n'
        'alert tcp any any -> any any (msg:"proto"; app-layer-protocol:smtp; content:"EHLO"; sid:2;)\n'
        'alert pop3 any any -> any any (msg:"not pop3"; content:"EHLO"; sid:3;)\n'
        'alert smtp any any -> any any (msg:"event"; app-layer-event:smtp.unable_to_match_reply_with_request; '
        'sid:4;)\n')
    pkts = smtp_capture(message())
    c = TcpConversation(CLI, SRV, 41006, 25, start=1_700_000_500.0)
    pkts += list(c.handshake())
    for from_client, data in [(False, b"220 x\r\n"), (True, b"EHLO a\r\n"), (False, b"250 ok\r\n250 unasked\r\n")]:
        pkts += list(c.send(data, from_client=from_client))
    rc, ev = run(tmp_path, pkts + list(c.close()), "-S", str(rules))
    sids = sorted(a["alert"]["signature_id"] for a in of(ev, "alert"))
    assert sids == [1, 2, 2, 4]


CLAM_MAILS = ["clam.mail", "clam.mail-boundary-content-disposition.eml", "clam.mail-comment-header-name.eml",
              "clam.mail-disposition-rfc2231-boundary.eml", "clam.mail-nested-comment-header-name.eml",
              "clam.exe.mbox.base64"]


@pytest.mark.corpus
@pytest.mark.parametrize("name", CLAM_MAILS)
def test_clamav_mails_in_smtp_give_the_known_hash(tmp_path, name):
    """ClamAV's mail containers (some built to slip a boundary or a header past
    a scanner) sent over SMTP: the attachment logged is the known test file."""
    src = CLAMAV / "clamav_hdb_scanfiles" / name
    if not src.exists():
        pytest.skip(f"corpus not present: {src}")
    assert CLAM_SHA256 in (CLAMAV / "clamav.hdb").read_text()
    msg = src.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    rc, ev = run(tmp_path, smtp_capture(msg))
    (f,) = of(ev, "fileinfo")
    assert (f["fileinfo"]["filename"], f["fileinfo"]["sha256"]) == ("clam.exe", CLAM_SHA256)
    assert f["fileinfo"]["state"] == "CLOSED" and f["email"]["attachment"] == ["clam.exe"]


# Zeek's own test traces of mail sessions (their btests name the protocol each one exercises)
ZEEK_MAIL = [
    ("smtp-attachment-msg.pcap", "smtp", None),
    ("tls/smtp-starttls.pcap", "tls", "smtp"),
    ("tls/pop3-starttls.pcap", "tls", "pop3"),
    ("tls/imap-starttls.pcap", "tls", "imap"),
    ("http/connect-with-smtp.pcap", "smtp", "http"),
]


@pytest.mark.corpus
@pytest.mark.parametrize("trace,proto,orig", ZEEK_MAIL)
def test_zeek_mail_traces_are_recognised(tmp_path, trace, proto, orig):
    src = CORPUS / "zeek-traces" / "Traces" / trace
    if not src.exists():
        pytest.skip(f"corpus not present: {src}")
    rc, ev = run(tmp_path, None, "-k", "none", pcaps=[src])
    assert rc == 0
    flows = [f for f in of(ev, "flow") if f.get("app_proto") == proto]
    assert len(flows) == 1 and flows[0].get("app_proto_orig") == orig
    if trace == "smtp-attachment-msg.pcap":
        (f,) = of(ev, "fileinfo")
        assert (f["fileinfo"]["filename"], f["fileinfo"]["state"]) == ("test.msg", "CLOSED")
        assert f["email"]["attachment"] == ["test.msg"]
