"""The testbed's pure parts: the DHCP client's packets and the files the testbed internet serves."""
from __future__ import annotations

import io
import socket
import struct
import zipfile

import pytest
from hypothesis import given, settings, strategies as st

from tests.sim import dhcp_client as dc
from tests.sim import testbed_files as tf

MAC = bytes.fromhex("02000000bb01")


def server_reply(msg_type: int, xid: int, yiaddr: str, opts: bytes) -> bytes:
    head = bytearray(dc.build(dc.DISCOVER, xid, MAC)[:236])
    head[0] = 2
    head[16:20] = socket.inet_aton(yiaddr)
    return bytes(head) + dc.MAGIC + bytes([dc.OPT_MSGTYPE, 1, msg_type]) + opts + bytes([dc.OPT_END])


def test_discover_layout():
    p = dc.build(dc.DISCOVER, 0x01020304, MAC, requested="192.0.2.9")
    assert p[0] == 1 and struct.unpack("!I", p[4:8])[0] == 0x01020304
    assert struct.unpack("!H", p[10:12])[0] == 0x8000          # broadcast flag: replies reach an unaddressed client
    assert p[28:34] == MAC and p[236:240] == dc.MAGIC
    assert bytes([dc.OPT_REQIP, 4]) + socket.inet_aton("192.0.2.9") in p[240:]


def test_parse_ack():
    opts = (bytes([dc.OPT_SUBNET, 4]) + socket.inet_aton("255.255.255.0")
            + bytes([dc.OPT_ROUTER, 4]) + socket.inet_aton("192.0.2.1")
            + bytes([dc.OPT_DNS, 8]) + socket.inet_aton("192.0.2.1") + socket.inet_aton("192.0.2.53"))
    r = dc.parse(server_reply(dc.ACK, 7, "192.0.2.118", opts))
    assert (r.xid, r.msg_type, r.yiaddr, r.prefix) == (7, dc.ACK, "192.0.2.118", 24)
    assert r.addrs(dc.OPT_DNS) == ["192.0.2.1", "192.0.2.53"]


@pytest.mark.parametrize("data", [b"", b"\x02" * 239, dc.build(dc.DISCOVER, 1, MAC)])
def test_parse_rejects_non_replies(data):
    with pytest.raises(dc.DhcpError):
        dc.parse(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_parse_garbage_gives_reply_or_typed_error(tail):
    data = server_reply(dc.OFFER, 1, "192.0.2.5", b"")[:240] + tail
    try:
        dc.parse(data)
    except dc.DhcpError:
        pass


def test_served_files():
    assert tf.EICAR.startswith(b"X5O!P%@AP") and len(tf.EICAR) == 68
    with zipfile.ZipFile(io.BytesIO(tf.eicar_zip())) as z:
        assert z.read("eicar.com") == tf.EICAR
    with zipfile.ZipFile(io.BytesIO(tf.macro_docm())) as z:
        names = set(z.namelist())
        assert {"[Content_Types].xml", "word/document.xml", "word/vbaProject.bin"} <= names
        assert z.read("word/vbaProject.bin").startswith(b"\xd0\xcf\x11\xe0")
        assert b"macroEnabled" in z.read("[Content_Types].xml")


def test_site_and_certificate(tmp_path):
    tf.write_site(tmp_path)
    assert (tmp_path / "www.example.test" / "clean.bin").stat().st_size == tf.CLEAN_SIZE
    for path in ("www.example.test/eicar.com", "files.example.test/eicar.zip", "files.example.test/macro.docm",
                 "phish.example.test/index.html"):
        assert (tmp_path / path).is_file()
    pytest.importorskip("cryptography")
    from cryptography import x509
    tf.self_signed(tmp_path / "c.pem", tmp_path / "k.pem")
    cert = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == set(tf.HOSTS)
