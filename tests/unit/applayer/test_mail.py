"""SMTP, POP3 and IMAP parsers: fed whole, one byte at a time, truncated and garbled."""
from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.applayer.imap import ImapParser, ImapTransaction, probe_imap
from inspection.applayer.mail_message import DotBlock
from inspection.applayer.pop3 import Pop3Parser, Pop3Transaction, probe_pop3
from inspection.applayer.smtp import SmtpParser, SmtpTransaction, probe_smtp
from inspection.model import Anomaly, BodyChunk, Direction

TS, TC = Direction.TO_SERVER, Direction.TO_CLIENT
DOC = b"%PDF-1.5\n" + bytes(range(256)) * 4


def message(name: bytes = b"doc.pdf", data: bytes = DOC) -> bytes:
    return (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hello\r\n"
            b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain\r\n\r\n"
            b".starts with a dot\r\n--zz\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=" + name + b"\r\n\r\n"
            + base64.encodebytes(data).replace(b"\n", b"\r\n") + b"--zz--\r\n")


def stuffed(msg: bytes) -> bytes:
    return (b"\r\n" + msg).replace(b"\r\n.", b"\r\n..")[2:] + b".\r\n"


SMTP = [
    (TC, b"220 mx ESMTP\r\n"), (TS, b"EHLO c.example.org\r\n"), (TC, b"250-mx\r\n250-CHUNKING\r\n250 PIPELINING\r\n"),
    (TS, b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"),
    (TC, b"250 ok\r\n250 ok\r\n354 go\r\n"), (TS, stuffed(message())), (TC, b"250 queued\r\n"),
    (TS, b"MAIL FROM:<x@example.org>\r\nRCPT TO:<nobody@example.net>\r\nDATA\r\n"),
    (TC, b"250 ok\r\n550 no such user\r\n554 no valid recipients\r\n"),
    (TS, b"RSET\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.net>\r\n"),
    (TC, b"250 ok\r\n250 ok\r\n250 ok\r\n"),
    (TS, b"BDAT 20\r\n" + message(b"chunked.pdf")[:20]),
    (TS, b"BDAT " + str(len(message(b"chunked.pdf")) - 20).encode() + b" LAST\r\n" + message(b"chunked.pdf")[20:]),
    (TC, b"250 ok\r\n250 ok\r\n"), (TS, b"QUIT\r\n"), (TC, b"221 bye\r\n"),
]

POP3 = [
    (TC, b"+OK ready\r\n"), (TS, b"CAPA\r\n"), (TC, b"+OK\r\nTOP\r\nUIDL\r\n.\r\n"), (TS, b"USER u\r\nPASS p\r\n"),
    (TC, b"+OK\r\n+OK\r\n"), (TS, b"LIST\r\nRETR 1\r\n"),
    (TC, b"+OK 1 msg\r\n1 900\r\n.\r\n+OK\r\n" + stuffed(message())),
    (TS, b"RETR 9\r\n"), (TC, b"-ERR no such message\r\n"), (TS, b"QUIT\r\n"), (TC, b"+OK bye\r\n"),
]

FETCHED = message(b"fetched.pdf")
IMAP = [
    (TC, b"* OK [CAPABILITY IMAP4rev1] ready\r\n"), (TS, b"a1 LOGIN u {1}\r\np\r\n"), (TC, b"a1 OK\r\n"),
    (TS, b"a2 FETCH 1:2 (BODY[HEADER] BODY[])\r\n"),
    (TC, b"* 1 FETCH (BODY[HEADER] {14}\r\nSubject: x\r\n\r\n BODY[] {" + str(len(FETCHED)).encode() + b"}\r\n"
     + FETCHED + b")\r\n* 2 FETCH (BODY[] {0}\r\n)\r\na2 OK done\r\n"),
    (TS, b"a3 LOGOUT\r\n"), (TC, b"* BYE\r\na3 OK\r\n"),
]


def run(parser_cls, talk, step: int | None = None):
    p = parser_cls()
    out = []
    for d, data in talk:
        n = step or len(data) or 1
        for i in range(0, len(data), n):
            out += p.feed(d, data[i:i + n], 0.0)
    return out + p.close(0.0)


def files(out):
    """{(tx_id, name): (data, truncated)} from the BodyChunks."""
    got: dict = {}
    for o in out:
        if isinstance(o, BodyChunk):
            key = (o.tx_id, o.filename)
            data, _ = got.get(key, (b"", False))
            got[key] = (data + o.data, o.truncated)
    return got


def records(out, cls):
    return [o for o in out if isinstance(o, cls)]


@pytest.mark.parametrize("step", [None, 1, 7])
def test_smtp_mails_envelopes_and_files(step):
    out = run(SmtpParser, SMTP, step)
    txs = records(out, SmtpTransaction)
    assert [(t.tx_id, t.mail_from, t.rcpt_to) for t in txs] == [
        (0, "<a@example.org>", ("<b@example.net>",)), (1, "<x@example.org>", ("<nobody@example.net>",)),
        (2, "<c@example.org>", ("<d@example.net>",))]
    assert all(t.helo == "c.example.org" for t in txs)
    assert txs[0].email.attachments == ("doc.pdf",) and txs[0].email.subject == "hello"
    assert txs[1].email is None                    # DATA refused: no message
    assert txs[2].email.attachments == ("chunked.pdf",) and txs[2].email.status == "PARSE_DONE"
    assert files(out) == {(0, "doc.pdf"): (DOC, False), (2, "chunked.pdf"): (DOC, False)}
    assert records(out, Anomaly) == []


def test_smtp_starttls_opens_a_tunnel_with_the_rest():
    p = SmtpParser()
    p.feed(TC, b"220 x\r\n", 0)
    p.feed(TS, b"EHLO a\r\nSTARTTLS\r\n", 0)
    p.feed(TC, b"250 x\r\n220 ready\r\n\x16\x03\x01", 0)
    assert p.tunnel and p.tunnel_data == [(TC, b"\x16\x03\x01")]
    p.feed(TS, b"\x16\x03\x01\x00", 0)
    assert p.tunnel_data[-1] == (TS, b"\x16\x03\x01\x00")


def test_smtp_one_sided_capture_takes_data_as_accepted():
    talk = [(d, b) for d, b in SMTP[:6] if d is TS]
    out = run(SmtpParser, talk)
    assert files(out) == {(0, "doc.pdf"): (DOC, False)}


def test_smtp_gap_in_message_truncates_the_attachment_and_resyncs_on_the_end():
    p = SmtpParser()
    msg = stuffed(message())
    out = []
    for d, b in SMTP[:5]:
        out += p.feed(d, b, 0)
    cut = msg.index(b"--zz--") - 30
    out += p.feed(TS, msg[:cut - 200], 0)
    out += p.gap(TS, 200, 0)
    out += p.feed(TS, msg[cut:], 0)
    out += p.feed(TS, b"QUIT\r\n", 0) + p.close(0)
    (got,) = files(out).values()
    assert got[1] is True
    assert [t.tx_id for t in records(out, SmtpTransaction)] == [0]


def test_smtp_limits_and_bad_replies_are_anomalies():
    p = SmtpParser()
    out = p.feed(TS, b"EHLO " + b"a" * 5000 + b"\r\nNOOP\r\n", 0)
    out += p.feed(TC, b"220 x\r\nxyz\r\n250 ok\r\n250 ok\r\n250 extra\r\n", 0)
    names = [a.event for a in records(out, Anomaly)]
    assert names == ["MAX_COMMAND_LINE_LEN_EXCEEDED", "INVALID_REPLY", "UNABLE_TO_MATCH_REPLY_WITH_REQUEST"]


@pytest.mark.parametrize("step", [None, 1, 5])
def test_pop3_retr_and_multiline_replies(step):
    out = run(Pop3Parser, POP3, step)
    txs = records(out, Pop3Transaction)
    assert [(t.command, t.args, t.status) for t in txs] == [
        ("CAPA", (), "+OK"), ("USER", ("u",), "+OK"), ("PASS", (), "+OK"), ("LIST", (), "+OK"),
        ("RETR", ("1",), "+OK"), ("RETR", ("9",), "-ERR"), ("QUIT", (), "+OK")]
    retr = txs[4]
    assert retr.email.attachments == ("doc.pdf",)
    assert files(out) == {(retr.tx_id, "doc.pdf"): (DOC, False)}
    assert records(out, Anomaly) == []


def test_pop3_stls_tunnel_and_cut_message():
    p = Pop3Parser()
    p.feed(TC, b"+OK\r\n", 0)
    p.feed(TS, b"STLS\r\n", 0)
    p.feed(TC, b"+OK begin\r\n", 0)
    assert p.tunnel
    out = run(Pop3Parser, [(TC, b"+OK\r\n"), (TS, b"RETR 1\r\n"), (TC, b"+OK\r\n" + stuffed(message())[:-200])])
    (got,) = files(out).values()
    assert got[1] is True and records(out, Pop3Transaction)[0].email.status == "BODY_STARTED"


@pytest.mark.parametrize("step", [None, 1, 9])
def test_imap_fetch_literals(step):
    out = run(ImapParser, IMAP, step)
    txs = records(out, ImapTransaction)
    assert [(t.tag, t.command, t.status, t.messages) for t in txs] == [
        ("a1", "LOGIN", "OK", 0), ("a2", "FETCH", "OK", 1), ("a3", "LOGOUT", "OK", 0)]
    assert files(out) == {(1, "fetched.pdf"): (DOC, False)}
    assert txs[1].email.attachments == ("fetched.pdf",)
    assert records(out, Anomaly) == []


def test_imap_literal_cut_short_is_truncated_and_huge_length_is_refused():
    out = run(ImapParser, [(TS, b"a FETCH 1 RFC822\r\n"),
                           (TC, b"* 1 FETCH (RFC822 {99999}\r\n" + FETCHED[:-300])])
    (got,) = files(out).values()
    assert got[1] is True and DOC.startswith(got[0]) and len(got[0]) < len(DOC)
    out = run(ImapParser, [(TC, b"* 1 FETCH (BODY[] {99999999999999999999}\r\n"), (TC, b"a OK\r\n")])
    assert [a.event for a in records(out, Anomaly)][0] == "INVALID_LITERAL"


def test_imap_starttls():
    p = ImapParser()
    p.feed(TS, b"s STARTTLS\r\n", 0)
    p.feed(TC, b"s OK go\r\n\x16\x03", 0)
    assert p.tunnel and p.tunnel_data == [(TC, b"\x16\x03")]


def test_dot_block_handles_bare_lf_and_waits_on_a_possible_end():
    d = DotBlock()
    buf = bytearray(b"a\n..b\n.")
    assert d.feed(buf) == (b"a\n.b\n", False) and buf == b"."
    buf += b"\r"
    assert d.feed(buf) == (b"", False)
    buf += b"\nrest"
    assert d.feed(buf) == (b"", True) and buf == b"rest"


def test_probes():
    assert probe_smtp(b"EHLO x", TS) and probe_smtp(b"helo x", TS)
    assert probe_smtp(b"EH", TS) is None and probe_smtp(b"GET /", TS) is False
    assert probe_smtp(b"220 x", TC, (1, 25)) is True and probe_smtp(b"220 x", TC, (1, 21)) is None
    assert probe_smtp(b"HTTP/1.1 200", TC, (1, 25)) is False
    assert probe_pop3(b"+OK hi", TC, (1, 110)) is True and probe_pop3(b"+OK hi", TC, (1, 6379)) is None
    assert probe_pop3(b"CAPA\r\n", TS) is True and probe_pop3(b"USER x", TS, (1, 21)) is None
    assert probe_pop3(b"USER x", TS, (1, 110)) is True and probe_pop3(b"GET /", TS) is False
    assert probe_imap(b"* OK hi", TC) is True and probe_imap(b"* O", TC) is None and probe_imap(b"* OK", TS) is False
    assert probe_imap(b"+OK", TC) is False
    # off their ports the other side settles a greeting or an ambiguous first command
    assert probe_smtp(b"220 ftp", TC, (1, 21), b"USER anonymous") is False
    assert probe_smtp(b"220 mx", TC, (1, 2526), b"EHLO a") is True
    assert probe_pop3(b"USER x", TS, (1, 21), b"220 ProFTPD") is False
    assert probe_pop3(b"USER x", TS, (1, 1110), b"+OK ready") is True
    assert probe_pop3(b"+OK\r\n", TC, (1, 6379), b"*1\r\n$4\r\nPING") is False
    assert probe_pop3(b"+OK hi", TC, (1, 1110), b"CAPA\r\n") is True


PARSERS = [(SmtpParser, SMTP), (Pop3Parser, POP3), (ImapParser, IMAP)]


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(PARSERS), st.data())
def test_truncated_and_garbled_conversations_never_raise(case, data):
    cls, talk = case
    talk = list(talk)
    n = data.draw(st.integers(1, len(talk)))
    talk = talk[:n]
    d, last = talk[-1]
    talk[-1] = (d, last[: data.draw(st.integers(0, len(last)))])
    garbled = []
    for d, b in talk:
        b = bytearray(b)
        for _ in range(data.draw(st.integers(0, 3))):
            if b:
                b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
        garbled.append((d, bytes(b)))
    p = cls()
    for d, b in garbled:
        if data.draw(st.booleans()):
            p.gap(d, data.draw(st.integers(1, 5000)), 0)
        p.feed(d, b, 0)
    p.close(0)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([SmtpParser, Pop3Parser, ImapParser]),
       st.lists(st.tuples(st.sampled_from([TS, TC]), st.binary(max_size=200)), max_size=8))
def test_random_bytes_never_raise(cls, talk):
    p = cls()
    for d, b in talk:
        p.feed(d, b, 0)
    p.close(0)


def test_whole_and_bytewise_give_the_same_hashes():
    whole = files(run(SmtpParser, SMTP))
    bytewise = files(run(SmtpParser, SMTP, 1))
    assert {k: hashlib.sha256(v[0]).hexdigest() for k, v in whole.items()} == {
        k: hashlib.sha256(v[0]).hexdigest() for k, v in bytewise.items()}


def test_smtp_reply_during_data_means_client_bytes_were_lost():
    """At the stream depth the client's bytes stop; the server's 250 to the
    whole message still comes: the mail ends cut short, without noise."""
    p = SmtpParser()
    out = []
    for d, b in SMTP[:5]:
        out += p.feed(d, b, 0)
    out += p.feed(TS, stuffed(message())[:600], 0)
    out += p.feed(TC, b"250 queued\r\n221 bye\r\n", 0)
    (tx,) = records(out, SmtpTransaction)
    assert tx.email.status == "BODY_STARTED"
    (got,) = files(out).values()
    assert got[1] is True
    assert records(out + p.close(0), Anomaly) == []


def test_sasl_exchanges_are_not_commands_and_not_logged():
    out = run(Pop3Parser, [(TC, b"+OK\r\n"), (TS, b"AUTH PLAIN\r\n"), (TC, b"+ \r\n"), (TS, b"AGJvYgBzZWNyZXQ=\r\n"),
                           (TC, b"+OK welcome\r\n"), (TS, b"STAT\r\n"), (TC, b"+OK 1 10\r\n")])
    assert [(t.command, t.args, t.status) for t in records(out, Pop3Transaction)] == [
        ("AUTH", ("PLAIN",), "+OK"), ("STAT", (), "+OK")]
    out = run(ImapParser, [(TC, b"* OK\r\n"), (TS, b"a AUTHENTICATE PLAIN\r\n"), (TC, b"+ \r\n"),
                           (TS, b"AGJvYgBzZWNyZXQ=\r\n"), (TC, b"a OK\r\n"), (TS, b"b IDLE\r\n"), (TC, b"+ idling\r\n"),
                           (TS, b"DONE\r\n"), (TC, b"b OK\r\n")])
    assert [(t.tag, t.command, t.status) for t in records(out, ImapTransaction)] == [
        ("a", "AUTHENTICATE", "OK"), ("b", "IDLE", "OK")]
    assert records(out, Anomaly) == [] and "AGJv" not in repr(out)
