"""TLS/SSL handshake parser: SNI, version, ALPN, JA3/JA3S/JA4, certificates.

Sans-IO and incremental: `TlsParser.feed` takes in-order stream bytes of one
direction in any chunking and returns what completed. Records are framed per
direction; handshake messages are reassembled across records in a bounded
buffer; application data is skipped without buffering. The parser follows
Suricata's app-layer-ssl.c where it matters for the EVE ``tls`` event (version
rules, TLS 1.3 draft handling, session resumption, event names) and emits
exactly one `TlsRecord` per flow, at message boundaries only, so any chunking
of the same bytes gives the same outputs:

* TLS <= 1.2: when the server's first flight is complete (ServerHelloDone),
  or, when the server asked for a client certificate, once the client's
  certificate flight arrived;
* TLS 1.3 (and drafts): after the ServerHello - everything later is encrypted;
* abbreviated (resumed) handshakes: at the first ChangeCipherSpec or
  application data record after the ServerHello;
* SSLv2: after the SSLv2 ServerHello; a fatal alert or a fatal parse error:
  at once; otherwise (only a ClientHello, a cut capture) at `close`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from inspection.applayer import tls_fingerprint as fp
from inspection.applayer.tls_cert import CertSummary, parse_certificate_list, summarize_certificate
from inspection.applayer.tls_fingerprint import (
    ClientHello, ServerHello, parse_client_hello, parse_server_hello,
)
from inspection.model import Anomaly, AnomalyKind, AppOutput, Direction

APP_PROTO = "tls"

CT_CHANGE_CIPHER_SPEC, CT_ALERT, CT_HANDSHAKE, CT_APPLICATION_DATA, CT_HEARTBEAT = 20, 21, 22, 23, 24
HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_CERTIFICATE = 1, 2, 11
HS_CERTIFICATE_REQUEST, HS_SERVER_HELLO_DONE, HS_CLIENT_KEY_EXCHANGE = 13, 14, 16
# Handshake types Suricata accepts in clear text; anything else is an event.
_KNOWN_HANDSHAKE = frozenset({0, 1, 2, 4, 11, 12, 13, 14, 15, 16, 20, 21, 22})

MAX_RECORD_LEN = (1 << 14) + 1024          # RFC 5246 6.2.3 upper bound
MAX_CHAIN_CERTS = 64
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
SSL_VERSION_2, SSL_VERSION_3, TLS_VERSION_12, TLS_VERSION_13 = 0x0002, 0x0300, 0x0303, 0x0304
TLS_VERSION_13_PRE_DRAFT16 = 0x7F01

# Suricata TLS event names, lower case.
EV_INVALID_SSLV2_HEADER = "invalid_sslv2_header"
EV_INVALID_RECORD_VERSION = "invalid_record_version"
EV_INVALID_RECORD_TYPE = "invalid_record_type"
EV_INVALID_RECORD_LENGTH = "invalid_record_length"
EV_INVALID_HANDSHAKE_MESSAGE = "invalid_handshake_message"
EV_INVALID_HEARTBEAT = "invalid_heartbeat_message"
EV_OVERFLOW_HEARTBEAT = "overflow_heartbeat_message"
EV_DATALEAK_HEARTBEAT = "dataleak_heartbeat_mismatch"
EV_INVALID_ALERT = "invalid_alert_message"
EV_INVALID_CERTIFICATE = "invalid_certificate"
EV_ERROR_MESSAGE = "error_message_encountered"
EV_INVALID_SSL_RECORD = "invalid_ssl_record"
EV_RECORD_OVERFLOW = "record_overflow"      # ours: a message larger than max_record_buffer

_FB_DRAFTS = {0xFB14: 20, 0xFB15: 21, 0xFB16: 22, 0xFB17: 23, 0xFB1A: 26}
_NAMED_VERSIONS = {
    0: "UNDETERMINED", SSL_VERSION_2: "SSLv2", SSL_VERSION_3: "SSLv3", 0x0301: "TLSv1",
    0x0302: "TLS 1.1", TLS_VERSION_12: "TLS 1.2", TLS_VERSION_13: "TLS 1.3",
}


def version_string(version: int) -> str:
    """Suricata's SSLVersionToString."""
    name = _NAMED_VERSIONS.get(version)
    if name is not None:
        return name
    if 0x7F10 <= version <= 0x7F1C:
        return f"TLS 1.3 draft-{version & 0xFF}"
    if 0x7F01 <= version < 0x7F10:
        return "TLS 1.3 draft-<16"
    if version in _FB_DRAFTS:
        return f"TLS 1.3 draft-{_FB_DRAFTS[version]}-fb"
    return f"0x{version:04x}"


@dataclass(frozen=True, slots=True)
class TlsRecord:
    """The one EVE ``tls`` event of a flow (server certificate fields flat)."""

    version: str
    sni: str | None = None
    client_alpns: tuple[str, ...] = ()
    server_alpns: tuple[str, ...] = ()
    ja3: str | None = None
    ja3_hash: str | None = None
    ja3s: str | None = None
    ja3s_hash: str | None = None
    ja4: str | None = None
    subject: str | None = None
    issuerdn: str | None = None
    serial: str | None = None
    fingerprint: str | None = None
    notbefore: str | None = None
    notafter: str | None = None
    subjectaltname: tuple[str, ...] = ()
    session_resumed: bool = False
    client_cert: CertSummary | None = None
    server_chain: tuple[bytes, ...] = ()
    client_chain: tuple[bytes, ...] = ()
    cipher_suite: int | None = None
    event_type: str = "tls"
    tx_id: int = 0
    direction: Direction = Direction.TO_SERVER

    def __post_init__(self) -> None:
        if not self.version or self.event_type != "tls":
            raise ValueError("a TLS record needs a version and event_type 'tls'")


def probe_tls(data: bytes, direction: Direction) -> bool | None:
    """True: starts like a TLS/SSL handshake; False: not TLS; None: need more bytes."""
    if len(data) < 3:
        return None if (not data or data[0] in (0x15, 0x16, 0x17) or data[0] & 0x80) else False
    first = data[0]
    if first & 0x80:  # SSLv2 record, 2-byte header: msg type 1 = ClientHello, 4 = ServerHello
        wanted = 1 if direction is Direction.TO_SERVER else 4
        return data[2] == wanted
    if data[1] != 3 or data[2] > 4:
        return False
    if first == CT_HANDSHAKE:
        if len(data) < 6:
            return None
        return data[5] == (HS_CLIENT_HELLO if direction is Direction.TO_SERVER else HS_SERVER_HELLO)
    return direction is Direction.TO_CLIENT and first in (CT_ALERT, CT_APPLICATION_DATA)


@dataclass(slots=True)
class _Side:
    """Framing state of one direction."""

    buf: bytearray = field(default_factory=bytearray)
    hs: bytearray = field(default_factory=bytearray)
    skip: int = 0            # bytes of the current record to discard
    hs_skip: int = 0         # bytes of the current handshake message to discard
    record_version: int = 0
    encrypted: bool = False  # ChangeCipherSpec/application data seen: handshake now opaque
    app_data: bool = False
    resync: bool = False     # after a gap: the next bytes must start a plausible record
    dead: bool = False       # lost sync: nothing more is parsed in this direction


class TlsParser:
    """One flow's TLS handshake state; see the module docstring for when it emits."""

    app_proto = APP_PROTO

    def __init__(self, *, max_record_buffer: int = 256 << 10) -> None:
        self._max = max(16, max_record_buffer)
        self._sides = (_Side(), _Side())
        self._out: list[AppOutput] = []
        self._seen_events: set[tuple[str, Direction]] = set()
        self._ch: ClientHello | None = None
        self._sh: ServerHello | None = None
        self._ja3s: str | None = None
        self._server_version = 0
        self._sslv2_server = False
        self._log_without_cert = False
        self._resumed = False
        self._need_client_cert = False
        self._server_hello_done = False
        self._client_key_exchange = False
        self._fatal_alert = False
        self._hb_inflight: tuple[Direction, int] | None = None
        self._certs: dict[Direction, tuple[CertSummary | None, tuple[bytes, ...]]] = {}
        self._emitted = False
        self._fatal = False
        self._closed = False

    # -- public API -----------------------------------------------------

    @property
    def client_hello(self) -> ClientHello | None:
        """The client hello once parsed (the live path checks its SNI before any answer)."""
        return self._ch

    @property
    def done(self) -> bool:
        if self._fatal or self._closed:
            return True
        return self._emitted and all(s.encrypted or s.dead for s in self._sides)

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]:
        out: list[AppOutput] = []
        side = self._sides[direction]
        if not data or self._fatal or self._closed or side.dead:
            return out
        self._out = out
        try:
            self._consume(direction, side, data)
            self._maybe_emit()
        except Exception:  # noqa: BLE001 - last-resort guard: hostile input must not raise
            self._fail(direction, EV_INVALID_SSL_RECORD)
        return out

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]:
        out: list[AppOutput] = []
        side = self._sides[direction]
        if self._fatal or self._closed or side.dead:
            return out
        self._out = out
        if not side.buf and side.skip >= length:
            side.skip -= length       # the hole is inside skipped application data
            return out
        side.buf.clear()
        side.hs.clear()
        side.skip = side.hs_skip = 0
        if side.encrypted:
            side.dead = True          # nothing left to learn from this direction
        else:
            side.resync = True
        self._maybe_emit()
        return out

    def held(self) -> int:
        """Bytes kept: partial records and handshake messages, both directions."""
        a, b = self._sides
        return len(a.buf) + len(a.hs) + len(b.buf) + len(b.hs)

    def shed(self, ts: float) -> list[AppOutput]:
        """Forget what `held` counts (the app-layer memcap), as after a gap of that many bytes."""
        out: list[AppOutput] = []
        for d in (Direction.TO_SERVER, Direction.TO_CLIENT):
            side = self._sides[d]
            n = len(side.buf) + len(side.hs)
            if n:
                out += self.gap(d, n, ts)
                side.buf, side.hs = bytearray(), bytearray()   # freed (clear() keeps the memory)
        return out

    def close(self, ts: float) -> list[AppOutput]:
        out: list[AppOutput] = []
        if self._closed:
            return out
        self._out = out
        if not self._emitted and self._anything_parsed():
            self._emit()
        self._closed = True
        return out

    # -- framing --------------------------------------------------------

    def _consume(self, d: Direction, side: _Side, data: bytes) -> None:
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end and not side.dead and not self._fatal:
            if side.skip:
                step = min(side.skip, end - pos)
                side.skip -= step
                pos += step
                continue
            side.buf += view[pos:]
            pos = end
            self._drain(d, side)

    def _drain(self, d: Direction, side: _Side) -> None:
        buf = side.buf
        off, size = 0, len(buf)
        while off < size and not self._fatal and not side.dead:
            if side.resync:
                if size - off < 5:
                    break
                side.resync = False
                side.dead = not _plausible_header(buf, off)
                continue
            if buf[off] & 0xC0:
                used = self._sslv2_record(d, side, buf, off)
            else:
                used = self._tls_record(d, side, buf, off)
            if not used:
                break
            off += used
        del buf[:off]

    def _skip_record(self, side: _Side, buf: bytearray, off: int, header: int, length: int) -> int:
        avail = min(length, len(buf) - off - header)
        side.skip = length - avail
        return header + avail

    def _tls_record(self, d: Direction, side: _Side, buf: bytearray, off: int) -> int:
        if len(buf) - off < 5:
            return 0
        ctype, version = buf[off], (buf[off + 1] << 8) | buf[off + 2]
        length = (buf[off + 3] << 8) | buf[off + 4]
        if not CT_CHANGE_CIPHER_SPEC <= ctype <= CT_HEARTBEAT:
            self._event(d, EV_INVALID_RECORD_TYPE)
            if side.record_version in (0x0301, 0x0302):   # tolerated before TLS 1.2
                return self._skip_record(side, buf, off, 5, length)
            return self._fail(d)
        if length == 0 or length > MAX_RECORD_LEN:
            return self._fail(d, EV_INVALID_RECORD_LENGTH)
        if version >> 8 != 3 or (version & 0xFF) > 4:
            return self._fail(d, EV_INVALID_RECORD_VERSION)
        side.record_version = version
        if d is Direction.TO_CLIENT and self._sh is None and not self._sslv2_server:
            self._server_version = version
        wants_body = ctype in (CT_ALERT, CT_HEARTBEAT) or (ctype == CT_HANDSHAKE and not side.encrypted)
        if wants_body and length > self._max:
            self._event(d, EV_RECORD_OVERFLOW)
            wants_body = False
            if ctype == CT_HANDSHAKE:      # the handshake stream lost bytes: stop decoding it
                side.encrypted = True
                side.hs.clear()
        if not wants_body:
            self._record(d, side, ctype, None, length)
            return self._skip_record(side, buf, off, 5, length)
        if len(buf) - off - 5 < length:
            return 0
        self._record(d, side, ctype, bytes(buf[off + 5:off + 5 + length]), length)
        return 5 + length

    def _sslv2_record(self, d: Direction, side: _Side, buf: bytearray, off: int) -> int:
        header = 2 if buf[off] & 0x80 else 3
        if len(buf) - off < header + 1:
            return 0
        mask = 0x7F if header == 2 else 0x3F
        length = ((buf[off] & mask) << 8) | buf[off + 1]
        msg_type = buf[off + header]
        if length == 0 or msg_type > 8:
            return self._fail(d, EV_INVALID_SSLV2_HEADER)
        if d is Direction.TO_CLIENT:
            self._server_version = SSL_VERSION_2
        if length > self._max:
            self._event(d, EV_RECORD_OVERFLOW)
            return self._skip_record(side, buf, off, header, length)
        if len(buf) - off - header < length:
            return 0
        body = bytes(buf[off + header:off + header + length])
        if msg_type == 0:
            self._event(d, EV_ERROR_MESSAGE)
        elif msg_type == 1 and d is Direction.TO_SERVER and self._ch is None:
            if len(body) < 9:
                return self._fail(d, EV_INVALID_SSL_RECORD)
            version, spec_len = (body[1] << 8) | body[2], (body[3] << 8) | body[4]
            specs = body[9:9 + spec_len]
            ciphers = tuple(int.from_bytes(specs[i:i + 3], "big") for i in range(0, len(specs) - 2, 3))
            self._ch = ClientHello(legacy_version=version, ciphers=ciphers, sslv2=True)
        elif msg_type == 4 and d is Direction.TO_CLIENT:
            self._sslv2_server = True
        self._maybe_emit()
        return header + length

    def _record(self, d: Direction, side: _Side, ctype: int, body: bytes | None, length: int) -> None:
        if ctype == CT_CHANGE_CIPHER_SPEC:
            side.encrypted = True
        elif ctype == CT_APPLICATION_DATA:
            early = self._ch is not None and self._ch.early_data and self._sh is None
            if not early:
                side.app_data = side.encrypted = True
        elif ctype == CT_HANDSHAKE and body is not None:
            self._handshake_bytes(d, side, body)
        elif ctype == CT_ALERT and body is not None:
            if len(body) < 2:
                self._fail(d, EV_INVALID_ALERT)
            elif len(body) == 2 and body[0] == 2:
                self._fatal_alert = True
        elif ctype == CT_HEARTBEAT and body is not None:
            self._heartbeat(d, body, length)
        self._maybe_emit()

    def _heartbeat(self, d: Direction, body: bytes, length: int) -> None:
        if len(body) < 3:
            return
        encrypted = any(s.encrypted for s in self._sides)
        if self._hb_inflight is None:
            self._hb_inflight = (d, length)
            if encrypted:
                return
            payload = (body[1] << 8) | body[2]
            if body[0] not in (1, 2):
                self._fail(d, EV_INVALID_HEARTBEAT)
            elif payload + 3 > length:
                self._fail(d, EV_OVERFLOW_HEARTBEAT)     # CVE-2014-0160 request
            elif length - payload - 3 < 16:
                self._fail(d, EV_INVALID_HEARTBEAT)      # padding must be >= 16 bytes
        elif self._hb_inflight[0] == d:
            self._fail(d, EV_INVALID_HEARTBEAT)
        else:
            request_len = self._hb_inflight[1]
            self._hb_inflight = None
            if encrypted and request_len < length:
                self._fail(d, EV_DATALEAK_HEARTBEAT)

    # -- handshake messages ---------------------------------------------

    def _handshake_bytes(self, d: Direction, side: _Side, body: bytes) -> None:
        hs = side.hs
        hs += body
        while not self._fatal:
            if side.hs_skip:
                step = min(side.hs_skip, len(hs))
                del hs[:step]
                side.hs_skip -= step
                if side.hs_skip:
                    return
            if len(hs) < 4:
                return
            msg_type, msg_len = hs[0], int.from_bytes(hs[1:4], "big")
            if msg_type not in _KNOWN_HANDSHAKE or msg_len > self._max:
                known = msg_type in _KNOWN_HANDSHAKE
                self._event(d, EV_RECORD_OVERFLOW if known else EV_INVALID_HANDSHAKE_MESSAGE)
                side.hs_skip = 4 + msg_len
                continue
            if len(hs) < 4 + msg_len:
                return
            message = bytes(hs[4:4 + msg_len])
            del hs[:4 + msg_len]
            self._handshake_message(d, msg_type, message)

    def _handshake_message(self, d: Direction, msg_type: int, body: bytes) -> None:
        to_server = d is Direction.TO_SERVER
        if msg_type == HS_CLIENT_HELLO and to_server and self._ch is None:
            hello, events = parse_client_hello(body)
            self._events(d, events)
            if hello is not None:
                self._ch = hello
                self._resumed = self._resumed or hello.session_ticket
        elif msg_type == HS_SERVER_HELLO and not to_server:
            sh, events = parse_server_hello(body)
            self._events(d, events)
            if sh is not None:
                self._server_hello(sh)
        elif msg_type == HS_CERTIFICATE:
            self._certificate(d, body)
        elif msg_type == HS_CERTIFICATE_REQUEST and not to_server:
            self._need_client_cert = True
        elif msg_type == HS_SERVER_HELLO_DONE and not to_server:
            self._server_hello_done = True
        elif msg_type == HS_CLIENT_KEY_EXCHANGE and to_server:
            self._client_key_exchange = True
        self._maybe_emit()

    def _server_hello(self, hello: ServerHello) -> None:
        legacy = hello.legacy_version
        without_cert = legacy == TLS_VERSION_13 or (legacy >> 8) == 0x7F
        version = TLS_VERSION_13_PRE_DRAFT16 if without_cert and legacy < 0x7F10 else legacy
        if hello.selected_version is not None:
            client_versions = self._ch is not None and self._ch.supported_versions is not None
            if client_versions and hello.selected_version > TLS_VERSION_12:
                without_cert = True
            version = hello.selected_version
        self._server_version = version
        self._log_without_cert = self._log_without_cert or without_cert
        if self._sh is None:
            self._ja3s = fp.server_ja3s(hello)
        self._sh = hello
        client_sid = self._ch.session_id if self._ch is not None else b""
        if hello.session_id and hello.session_id == client_sid:
            self._resumed = True
        if without_cert and hello.random != HRR_RANDOM:
            self._sides[Direction.TO_CLIENT].encrypted = True

    def _certificate(self, d: Direction, body: bytes) -> None:
        if d in self._certs:
            return                          # one certificate message per side
        chain, well_formed = parse_certificate_list(body, MAX_CHAIN_CERTS)
        if not well_formed:
            self._event(d, EV_INVALID_CERTIFICATE)
        summary = None
        for der in chain:
            summary, error = summarize_certificate(der)
            if summary is not None:
                break
            self._event(d, error or EV_INVALID_CERTIFICATE)
        self._certs[d] = (summary, chain)

    # -- anomalies, emission ----------------------------------------------

    def _event(self, d: Direction, name: str) -> None:
        if (name, d) in self._seen_events:
            return
        self._seen_events.add((name, d))
        self._out.append(Anomaly(kind=AnomalyKind.APPLAYER, event=name, app_proto=APP_PROTO, direction=d))

    def _events(self, d: Direction, names: list[str]) -> None:
        for name in names:
            self._event(d, name)

    def _fail(self, d: Direction, name: str | None = None) -> int:
        """A fatal parse error: report, emit what we have, stop parsing the flow."""
        if name:
            self._event(d, name)
        self._fatal = True
        if not self._emitted and self._anything_parsed():
            self._emit()
        return 0

    def _anything_parsed(self) -> bool:
        return self._ch is not None or self._sh is not None or self._sslv2_server or bool(self._certs)

    def _ready(self) -> bool:
        client, server = self._sides
        if self._fatal_alert or self._sslv2_server:
            return self._anything_parsed()
        if self._sh is not None:
            if self._log_without_cert and self._sh.random != HRR_RANDOM:
                return True
            if self._need_client_cert:
                if Direction.TO_SERVER in self._certs or self._client_key_exchange or client.encrypted:
                    return True
            elif self._server_hello_done:
                return True
            if server.encrypted or server.app_data or client.app_data:
                return True
        ended = all(s.encrypted or s.dead for s in self._sides)
        return ended and self._anything_parsed()

    def _maybe_emit(self) -> None:
        if not self._emitted and self._ready():
            self._emit()
            if self._fatal_alert or self._sslv2_server:
                for side in self._sides:
                    side.encrypted = True

    def _emit(self) -> None:
        self._emitted = True
        self._out.append(self._build_record())

    def _build_record(self) -> TlsRecord:
        ch, sh = self._ch, self._sh
        server_cert, server_chain = self._certs.get(Direction.TO_CLIENT, (None, ()))
        client_cert, client_chain = self._certs.get(Direction.TO_SERVER, (None, ()))
        version = self._server_version
        text = "SSLv2" if version == 0 and ch is not None and ch.sslv2 else version_string(version)
        f: dict = {}
        if ch is not None and not ch.sslv2:
            ja3 = fp.client_ja3(ch)
            f.update(ja3=ja3, ja3_hash=fp.md5_hex(ja3), ja4=fp.client_ja4(ch))
            f["client_alpns"] = tuple(_text(a) for a in ch.alpns if a)
            if ch.sni is not None:
                f["sni"] = _text(ch.sni)
        if self._ja3s is not None:
            f.update(ja3s=self._ja3s, ja3s_hash=fp.md5_hex(self._ja3s))
        if sh is not None:
            f["server_alpns"] = tuple(_text(a) for a in sh.alpns if a)
            f["cipher_suite"] = sh.cipher
        if server_cert is not None:
            f.update(
                subject=server_cert.subject, issuerdn=server_cert.issuerdn, serial=server_cert.serial,
                fingerprint=server_cert.fingerprint, notbefore=server_cert.notbefore,
                notafter=server_cert.notafter, subjectaltname=server_cert.subjectaltname,
            )
        resumed = self._resumed and server_cert is None and sh is not None and not self._log_without_cert
        return TlsRecord(
            version=text, session_resumed=resumed, client_cert=client_cert,
            server_chain=server_chain, client_chain=client_chain, **f,
        )


def _plausible_header(buf: bytearray, off: int) -> bool:
    length = (buf[off + 3] << 8) | buf[off + 4]
    return (
        CT_CHANGE_CIPHER_SPEC <= buf[off] <= CT_HEARTBEAT and buf[off + 1] == 3
        and buf[off + 2] <= 4 and 0 < length <= MAX_RECORD_LEN
    )


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")
