"""Inspection buffers and transforms, and the keyword spellings that select them.

A rule's content/pcre/byte_* items each inspect one buffer. Suricata offers two
spellings: a *sticky buffer* (``http.uri; content:"x";``) selects the buffer
for every following item, and a legacy *content modifier*
(``content:"x"; http_uri;``) moves the content just before it. Several
underscore names (``dns_query``, ``tls_sni``, ``file_data``) are sticky
aliases, not modifiers; the tables below keep the two kinds apart because
using a modifier while a sticky buffer is active is an error.

Suricata 7 inspects ``http.response_body``, ``http_server_body`` and pcre
``/Q`` as the file-data buffer itself (one list, so relative chains and
sticky checks span both spellings); the tables map them to `Buffer.FILE_DATA`.
"""
from __future__ import annotations

import enum
from types import MappingProxyType


class Buffer(enum.Enum):
    """A buffer a match inspects; the value is Suricata's canonical keyword."""

    PAYLOAD = "pkt_data"          # packet payload; for TCP rules also the reassembled stream
    STREAM = "stream"             # reassembled stream only (rule protocol tcp-stream)
    HTTP_URI = "http.uri"
    HTTP_URI_RAW = "http.uri.raw"
    HTTP_HOST = "http.host"
    HTTP_HOST_RAW = "http.host.raw"
    HTTP_METHOD = "http.method"
    HTTP_USER_AGENT = "http.user_agent"
    HTTP_HEADER = "http.header"
    HTTP_HEADER_RAW = "http.header.raw"
    HTTP_HEADER_NAMES = "http.header_names"
    HTTP_COOKIE = "http.cookie"
    HTTP_REQUEST_BODY = "http.request_body"
    HTTP_RESPONSE_BODY = "http.response_body"  # never produced by the parser, see below
    HTTP_STAT_CODE = "http.stat_code"
    HTTP_STAT_MSG = "http.stat_msg"
    HTTP_CONTENT_TYPE = "http.content_type"
    HTTP_CONTENT_LEN = "http.content_len"
    HTTP_ACCEPT = "http.accept"
    HTTP_ACCEPT_ENC = "http.accept_enc"
    HTTP_ACCEPT_LANG = "http.accept_lang"
    HTTP_REFERER = "http.referer"
    HTTP_CONNECTION = "http.connection"
    HTTP_REQUEST_LINE = "http.request_line"
    HTTP_RESPONSE_LINE = "http.response_line"
    HTTP_START = "http.start"
    HTTP_PROTOCOL = "http.protocol"
    HTTP_SERVER = "http.server"
    HTTP_LOCATION = "http.location"
    HTTP_REQUEST_HEADER = "http.request_header"
    HTTP_RESPONSE_HEADER = "http.response_header"
    HTTP2_HEADER_NAME = "http2.header_name"   # HTTP/2 only: each header name of the message (multi-buffer)
    HTTP2_HEADER = "http2.header"             # HTTP/2 only: each "name: value", pseudo-headers included
    FILE_DATA = "file.data"
    FILE_NAME = "file.name"
    TLS_SNI = "tls.sni"
    TLS_CERT_SUBJECT = "tls.cert_subject"
    TLS_CERT_ISSUER = "tls.cert_issuer"
    TLS_CERT_SERIAL = "tls.cert_serial"
    TLS_CERT_FINGERPRINT = "tls.cert_fingerprint"
    TLS_CERTS = "tls.certs"
    TLS_SUBJECTALTNAME = "tls.subjectaltname"
    TLS_ALPN = "tls.alpn"
    TLS_RANDOM = "tls.random"
    JA3_HASH = "ja3.hash"
    JA3_STRING = "ja3.string"
    JA3S_HASH = "ja3s.hash"
    JA3S_STRING = "ja3s.string"
    JA4_HASH = "ja4.hash"
    DNS_QUERY = "dns.query"
    SSH_PROTO = "ssh.proto"
    SSH_SOFTWARE = "ssh.software"
    SSH_HASSH = "ssh.hassh"
    SSH_HASSH_STRING = "ssh.hassh.string"
    SSH_HASSH_SERVER = "ssh.hassh.server"
    SSH_HASSH_SERVER_STRING = "ssh.hassh.server.string"
    SMB_NAMED_PIPE = "smb.named_pipe"
    SMB_SHARE = "smb.share"
    DCE_STUB_DATA = "dce_stub_data"
    KRB5_CNAME = "krb5.cname"
    KRB5_SNAME = "krb5.sname"
    SNMP_COMMUNITY = "snmp.community"
    SIP_METHOD = "sip.method"
    SIP_URI = "sip.uri"
    QUIC_SNI = "quic.sni"
    BASE64_DATA = "base64_data"

    # Buffers key the detector's dicts on every packet: hash by identity in C
    # (members are singletons) instead of Enum's Python-level hash of the name.
    __hash__ = object.__hash__

    @property
    def app_proto(self) -> str | None:
        """The application protocol the buffer belongs to (None: packet level or several)."""
        return _APP_PROTO.get(self)

    @property
    def is_sticky_only(self) -> bool:
        return self not in (Buffer.PAYLOAD, Buffer.STREAM)


_APP_PROTO = MappingProxyType({
    **{b: "http" for b in Buffer if b.value.startswith(("http.", "http2."))},
    **{b: "tls" for b in Buffer if b.value.startswith(("tls.", "ja3.", "ja3s.", "ja4."))},
    Buffer.DNS_QUERY: "dns",
    **{b: "ssh" for b in Buffer if b.value.startswith("ssh.")},
    Buffer.SMB_NAMED_PIPE: "smb", Buffer.SMB_SHARE: "smb",
    Buffer.DCE_STUB_DATA: "dcerpc",
    Buffer.KRB5_CNAME: "krb5", Buffer.KRB5_SNAME: "krb5",
    Buffer.SNMP_COMMUNITY: "snmp",
    Buffer.SIP_METHOD: "sip", Buffer.SIP_URI: "sip",
    Buffer.QUIC_SNI: "quic",
})

# Keywords that make a buffer sticky. Canonical dotted names plus Suricata's aliases.
STICKY_KEYWORDS = MappingProxyType({
    **{b.value: b for b in Buffer if b is not Buffer.STREAM},
    "pkt_data": Buffer.PAYLOAD,
    "file_data": Buffer.FILE_DATA,
    "http.request_body": Buffer.HTTP_REQUEST_BODY,
    "http.response_body": Buffer.FILE_DATA,
    "http_request_line": Buffer.HTTP_REQUEST_LINE,
    "http_response_line": Buffer.HTTP_RESPONSE_LINE,
    "http_accept": Buffer.HTTP_ACCEPT,
    "http_accept_enc": Buffer.HTTP_ACCEPT_ENC,
    "http_accept_lang": Buffer.HTTP_ACCEPT_LANG,
    "http_referer": Buffer.HTTP_REFERER,
    "http_connection": Buffer.HTTP_CONNECTION,
    "http_content_type": Buffer.HTTP_CONTENT_TYPE,
    "http_content_len": Buffer.HTTP_CONTENT_LEN,
    "http_start": Buffer.HTTP_START,
    "http_protocol": Buffer.HTTP_PROTOCOL,
    "http_header_names": Buffer.HTTP_HEADER_NAMES,
    "dns_query": Buffer.DNS_QUERY,
    "tls_sni": Buffer.TLS_SNI,
    "tls_cert_subject": Buffer.TLS_CERT_SUBJECT,
    "tls_cert_issuer": Buffer.TLS_CERT_ISSUER,
    "tls_cert_serial": Buffer.TLS_CERT_SERIAL,
    "tls_cert_fingerprint": Buffer.TLS_CERT_FINGERPRINT,
    "ja3_hash": Buffer.JA3_HASH,
    "ja3_string": Buffer.JA3_STRING,
    "ja3s_hash": Buffer.JA3S_HASH,
    "ja3s_string": Buffer.JA3S_STRING,
    "ssh_proto": Buffer.SSH_PROTO,
    "ssh_software": Buffer.SSH_SOFTWARE,
    "ssh.protoversion": Buffer.SSH_PROTO,
    "ssh.softwareversion": Buffer.SSH_SOFTWARE,
    "smb_named_pipe": Buffer.SMB_NAMED_PIPE,
    "smb_share": Buffer.SMB_SHARE,
    "krb5_cname": Buffer.KRB5_CNAME,
    "krb5_sname": Buffer.KRB5_SNAME,
    "filename": Buffer.FILE_NAME,
    "http.request_header": Buffer.HTTP_REQUEST_HEADER,
    "http.response_header": Buffer.HTTP_RESPONSE_HEADER,
})

# Legacy content modifiers: move the preceding content into the buffer.
CONTENT_MODIFIERS = MappingProxyType({
    "http_uri": Buffer.HTTP_URI,
    "http_raw_uri": Buffer.HTTP_URI_RAW,
    "http_header": Buffer.HTTP_HEADER,
    "http_raw_header": Buffer.HTTP_HEADER_RAW,
    "http_cookie": Buffer.HTTP_COOKIE,
    "http_method": Buffer.HTTP_METHOD,
    "http_client_body": Buffer.HTTP_REQUEST_BODY,
    "http_server_body": Buffer.FILE_DATA,
    "http_stat_code": Buffer.HTTP_STAT_CODE,
    "http_stat_msg": Buffer.HTTP_STAT_MSG,
    "http_user_agent": Buffer.HTTP_USER_AGENT,
    "http_host": Buffer.HTTP_HOST,
    "http_raw_host": Buffer.HTTP_HOST_RAW,
})

# pcre modifier letters that select a buffer (Suricata's detect-pcre.c).
PCRE_BUFFER_FLAGS = MappingProxyType({
    "U": Buffer.HTTP_URI,
    "I": Buffer.HTTP_URI_RAW,
    "H": Buffer.HTTP_HEADER,
    "D": Buffer.HTTP_HEADER_RAW,
    "M": Buffer.HTTP_METHOD,
    "C": Buffer.HTTP_COOKIE,
    "P": Buffer.HTTP_REQUEST_BODY,
    "Q": Buffer.FILE_DATA,
    "S": Buffer.HTTP_STAT_CODE,
    "Y": Buffer.HTTP_STAT_MSG,
    "V": Buffer.HTTP_USER_AGENT,
    "W": Buffer.HTTP_HOST,
    "Z": Buffer.HTTP_HOST_RAW,
})


class TransformKind(enum.Enum):
    """A transform applied to a sticky buffer before matching (value: the keyword)."""

    DOTPREFIX = "dotprefix"
    STRIP_WHITESPACE = "strip_whitespace"
    COMPRESS_WHITESPACE = "compress_whitespace"
    TO_LOWERCASE = "to_lowercase"
    TO_UPPERCASE = "to_uppercase"
    TO_MD5 = "to_md5"
    TO_SHA1 = "to_sha1"
    TO_SHA256 = "to_sha256"
    URL_DECODE = "url_decode"
    HEADER_LOWERCASE = "header_lowercase"
    STRIP_PSEUDO_HEADERS = "strip_pseudo_headers"
    XOR = "xor"                   # argument: the key, hex
    PCREXFORM = "pcrexform"       # argument: a regex with one capture group

    @property
    def takes_argument(self) -> bool:
        return self in (TransformKind.XOR, TransformKind.PCREXFORM)


TRANSFORM_KEYWORDS = MappingProxyType({t.value: t for t in TransformKind})
