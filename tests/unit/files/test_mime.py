"""The MIME walker: attachments out of mail messages, decoded, however the input is cut."""
from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from inspection.files.mime import MimeLimits, MimeWalker, PartData, PartEnd, PartStart
from inspection.files.mime_fields import decode_words, split_addresses


def walk(raw: bytes, cuts: list[int] | None = None, limits: MimeLimits | None = None):
    """(files [(name, data, complete)], walker) with the input cut at `cuts`."""
    w = MimeWalker(limits)
    events = []
    pos = 0
    for c in sorted(set(cuts or [])) + [len(raw)]:
        events += w.feed(raw[pos:c])
        pos = c
    events += w.finish()
    files, cur = [], None
    for e in events:
        if isinstance(e, PartStart):
            assert cur is None
            cur = [e.filename, b""]
        elif isinstance(e, PartData):
            cur[1] += e.data
        elif isinstance(e, PartEnd):
            files.append((cur[0], cur[1], e.complete))
            cur = None
    assert cur is None
    return files, w


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


PAYLOAD = bytes(range(256)) * 3

NESTED = (b"From: a@b\r\nSubject: nested\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"
          b"--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
          b"--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>\r\n"
          b"--inner--\r\n"
          b"--outer\r\nContent-Type: application/zip; name=\"a.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
          + b64(PAYLOAD) +
          b"--outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner mail\r\n"
          b"Content-Type: multipart/mixed; boundary=deep\r\n\r\n--deep\r\n"
          b"Content-Disposition: attachment; filename=deep.txt\r\n\r\nline1\r\nline2\r\n--deep--\r\n"
          b"--outer--\r\nepilogue\r\n")


def test_nested_multiparts_and_an_enclosed_message():
    files, w = walk(NESTED)
    assert files == [("a.zip", PAYLOAD, True), ("deep.txt", b"line1\r\nline2", True)]
    assert w.headers[b"subject"] == b"nested" and w.anomalies == []
    assert w.attachments == ["a.zip", "deep.txt"] and w.status == "PARSE_DONE"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(NESTED)), max_size=12))
def test_result_does_not_depend_on_how_input_is_cut(cuts):
    assert walk(NESTED, cuts)[0] == walk(NESTED)[0]


def test_one_byte_at_a_time():
    assert walk(NESTED, list(range(len(NESTED))))[0] == walk(NESTED)[0]


def single(headers: bytes, body: bytes) -> bytes:
    return (b"Content-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n" + headers + b"\r\n" + body
            + b"\r\n--X--\r\n")


def test_base64_with_whitespace_and_garbage_is_decoded_and_counted():
    enc = base64.b64encode(PAYLOAD)
    messy = b"  " + enc[:10] + b"\t" + enc[10:50] + b"\r\n" + enc[50:100] + b"!!*" + enc[100:] + b"\r\n"
    files, w = walk(single(b"Content-Transfer-Encoding: BASE64\r\nContent-Disposition: attachment; filename=f\r\n",
                           messy))
    assert files == [("f", PAYLOAD, True)]
    assert w.counters.base64_errors == 3 and "MIME_INVALID_BASE64" in w.anomalies


def test_base64_without_padding_and_concatenated_padded_runs():
    body = base64.b64encode(b"ab") + b"\r\n" + base64.b64encode(b"cdef").rstrip(b"=")
    files, _ = walk(single(b"Content-Transfer-Encoding: base64\r\nContent-Type: x/y; name=g\r\n", body))
    assert files == [("g", b"abcdef", True)]


def test_quoted_printable_soft_breaks_escapes_and_bad_escapes():
    body = b"caf=C3=A9 au =\r\nlait   \r\nnext=3Dline\r\nbad=ZZ end"
    files, w = walk(single(b"Content-Transfer-Encoding: quoted-printable\r\n"
                           b"Content-Disposition: attachment; filename=q.txt\r\n", body))
    assert files == [("q.txt", "café au lait\r\nnext=line\r\nbad=ZZ end".encode(), True)]
    assert w.counters.qp_errors == 1 and "MIME_INVALID_QP" in w.anomalies


def test_identity_part_keeps_its_bytes_and_the_delimiter_line_end_is_not_content():
    files, _ = walk(single(b"Content-Disposition: attachment; filename=raw.bin\r\n", b"a\r\n\r\nb\x00\xff"))
    assert files == [("raw.bin", b"a\r\n\r\nb\x00\xff", True)]


def test_rfc2231_filenames():
    names = [
        b"Content-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20rates.pdf\r\n",
        b"Content-Disposition: attachment;\r\n filename*0*=UTF-8''long%20;\r\n filename*1=\"name.doc\"\r\n",
        b"Content-Type: application/pdf; name=\"=?UTF-8?Q?r=C3=A9sum=C3=A9.pdf?=\"\r\n",
        b"Content-Disposition: attachment; filename=\"quoted \\\"x\\\".txt\"\r\n",
        b"Content-Type(comment): text/plain; name=c.txt\r\n",
    ]
    got = [walk(single(h, b"x"))[0][0][0] for h in names]
    assert got == ["\u20ac rates.pdf", "long name.doc", "r\u00e9sum\u00e9.pdf", 'quoted "x".txt', "c.txt"]


def test_missing_end_boundary_leaves_the_attachment_truncated():
    raw = single(b"Content-Disposition: attachment; filename=cut.bin\r\n", b"partial data")
    files, w = walk(raw[: raw.index(b"\r\n--X--")])
    assert files == [("cut.bin", b"partial data", False)]
    assert "MIME_MALFORMED_MSG" in w.anomalies


def test_single_part_message_that_is_an_attachment():
    raw = (b"Subject: s\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename=\"one.pdf\"\r\n\r\n" + b64(b"%PDF-1.7 x"))
    assert walk(raw)[0] == [("one.pdf", b"%PDF-1.7 x", True)]


def test_depth_limit_is_counted_and_deeper_parts_are_not_walked():
    raw = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for i in range(1, 6):
        raw += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i)
    raw += b"--b5\r\nContent-Disposition: attachment; filename=deep\r\n\r\nx\r\n"
    files, w = walk(raw, limits=MimeLimits(max_depth=3))
    assert files == [] and w.counters.limits == {"MIME_DEPTH_LIMIT": 1}
    files, _ = walk(raw, limits=MimeLimits(max_depth=8))
    assert [f[0] for f in files] == ["deep"]


def test_parts_limit_header_limit_and_long_lines_are_counted():
    many = b"Content-Type: multipart/mixed; boundary=m\r\n\r\n" + b"".join(
        b"--m\r\nContent-Disposition: attachment; filename=f%d\r\n\r\nx\r\n" % i for i in range(10)) + b"--m--\r\n"
    files, w = walk(many, limits=MimeLimits(max_parts=5))
    assert len(files) == 4 and w.counters.limits == {"MIME_PARTS_LIMIT": 1}   # the top entity is a part too

    big_header = b"X-Filler: " + b"a" * 300 + b"\r\n"
    files, w = walk(single(big_header * 4 + b"Content-Disposition: attachment; filename=late\r\n", b"x"),
                    limits=MimeLimits(max_header=512))
    assert files == [] and w.counters.limits == {"MIME_LONG_HEADER": 1}

    long_body = b"A" * 1000 + b"\r\nB"
    files, w = walk(single(b"Content-Disposition: attachment; filename=l\r\n", long_body),
                    list(range(0, 1200, 50)), limits=MimeLimits(max_line=100))
    assert files == [("l", long_body, True)]
    files, w = walk(single(b"Subject: " + b"s" * 500 + b"\r\nContent-Disposition: attachment; filename=h\r\n", b"x"),
                    list(range(0, 700, 50)), limits=MimeLimits(max_line=100))   # buffered, not handed in whole
    assert files == [("h", b"x", True)] and w.counters.limits == {"MIME_LONG_LINE": 1}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_garbage_never_raises(data, cuts):
    walk(data, [c for c in cuts if c <= len(data)], limits=MimeLimits(max_line=80, max_header=256, max_depth=2,
                                                                       max_parts=3))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_garbled_messages_never_raise(data):
    raw = bytearray(NESTED)
    for _ in range(data.draw(st.integers(0, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    n = data.draw(st.integers(0, len(raw)))
    walk(bytes(raw[:n]))


def test_address_lists_and_encoded_words():
    assert split_addresses(b'"Doe, J." <j@d>, x@y ,, <z@w>') == ('"Doe, J." <j@d>', "x@y", "<z@w>")
    assert decode_words(b"=?utf-8?q?a_b?= =?utf-8?b?Yw==?= d") == "a bc d"
    assert decode_words(b"=?bogus-charset?q?ok?=") == "ok"
    assert decode_words(b"=?utf-8?b?!!!?=") == "=?utf-8?b?!!!?="


def test_urls_of_text_parts_are_collected_bounded_and_across_cuts():
    text = (b"see http://a.example/x?y=1, and <https://b.example/p>.\r\nagain http://a.example/x?y=1\r\n"
            b"long =\r\nhttp://c.exam=\r\nple/q end\r\n")
    raw = (b"Content-Type: multipart/alternative; boundary=X\r\n\r\n--X\r\nContent-Type: text/plain\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + text + b"--X\r\nContent-Type: text/html\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(b'<a href="http://d.example/">x</a>')
           + b"--X\r\nContent-Disposition: attachment; filename=f.txt\r\n\r\nhttp://not.collected/\r\n--X--\r\n")
    want = ["http://a.example/x?y=1", "https://b.example/p", "http://c.example/q", "http://d.example/"]
    assert walk(raw)[1].urls.urls == want
    assert walk(raw, list(range(len(raw))))[1].urls.urls == want
    many = single(b"Content-Type: text/plain\r\n", b" ".join(b"http://h%d.example/" % i for i in range(40)))
    w = walk(many)[1]
    assert len(w.urls.urls) == 32 and w.urls.dropped == 8
