"""HTTP/2 in cleartext (h2c): streams become HTTP transactions.

Sans-IO, like `http1`: bytes in, `HttpTransaction` records, `BodyChunk`s and
`Anomaly` values out. A stream's request and response become one
`HttpTransaction` (``protocol`` "HTTP/2", `http2` set) so the rules written
for ``http`` and the EVE ``http`` logger see it, as in Suricata; DATA frames
feed the body stream the HTTP/1 parser uses (content codings, file
extraction, ``file.data``). Headers are HPACK-decoded with the `hpack`
package, one decoder per direction (a failed block leaves the table out of
step, so later blocks may fail too: each failure is counted).

Limits are explicit and become Suricata's HTTP/2 app-layer events (named in
lowercase as Suricata logs them): a frame over `frame_cap` is
``long_frame_data`` (a DATA frame is still streamed, anything else skipped),
more than `max_streams` live streams is ``too_many_streams``, a header block
over `header_cap` or an HPACK error is ``invalid_header``. A gap ends the
parsing of that direction: frame boundaries cannot be found again.
"""
from __future__ import annotations

import base64
import binascii

import hpack
from hpack.exceptions import HPACKError

from inspection.applayer.dns import DnsMessage, message_outputs
from inspection.applayer.http_decode import BodyStream, parse_content_encoding
from inspection.applayer.http_headers import normalize_uri
from inspection.applayer.http_tx import Http2Info, HttpTransaction
from inspection.applayer.http2_frames import (CONNECTION_FRAMES, ERROR_NAMES, FIXED_LENGTH, PREFACE, SETTING_NAMES,
                                              STREAM_FRAMES, Flag, FrameHeader, FrameReader, FrameType,
                                              parse_settings)
from inspection.model import Anomaly, AnomalyKind, AppOutput, Direction

__all__ = ["Http2Parser", "probe_http2", "is_h2c_upgrade", "PREFACE"]

APP = "http2"
FRAME_CAP = 65536          # largest non-DATA frame payload held (Suricata's max handled frame size)
HEADER_CAP = 65536         # largest header block (HEADERS + CONTINUATIONs)
MAX_STREAMS = 4096         # streams open at once
MAX_HEADERS = 512          # header fields kept per message
HELD_CAP = 1 << 20         # header and DNS-message bytes held across all open streams of a flow
DOH_CAP = 65535            # a DNS message is at most this long (RFC 8484 bodies, ``?dns=`` values)
DOH_TYPE = b"application/dns-message"
_TS, _TC = Direction.TO_SERVER, Direction.TO_CLIENT


def probe_http2(data: bytes, direction: Direction) -> bool | None:
    """A client stream starting with the HTTP/2 connection preface (prior knowledge)."""
    if direction is not Direction.TO_SERVER:
        return False
    if data.startswith(PREFACE):
        return True
    return None if PREFACE.startswith(data) else False


def is_h2c_upgrade(tx: HttpTransaction | None) -> bool:
    """An HTTP/1.1 request with ``Upgrade: h2c`` answered by 101 (RFC 7540 3.2)."""
    if tx is None or tx.status != 101:
        return False
    return any(n.lower() == "upgrade" and "h2c" in v.lower() for n, v in tx.request_headers)


class _Stream:
    __slots__ = ("sid", "tx_id", "req", "resp", "bodies", "body_len", "ended", "error", "priority", "seen",
                 "upgrade", "doh", "held")

    def __init__(self, sid: int, tx_id: int) -> None:
        self.sid, self.tx_id = sid, tx_id
        self.req: list[tuple[bytes, bytes]] | None = None
        self.resp: list[tuple[bytes, bytes]] | None = None
        self.bodies: list[BodyStream | None] = [None, None]
        self.body_len = [0, 0]
        self.ended = [False, False]
        self.error: list[str | None] = [None, None]   # RST_STREAM code sent by each side
        self.priority: int | None = None
        self.seen = [False, False]
        self.upgrade: HttpTransaction | None = None
        self.doh: list[bytearray | None] = [None, None]   # a DNS message body being collected
        self.held = 0   # bytes of this stream counted in the parser's `_held`


class _Side:
    __slots__ = ("d", "preface", "reader", "decoder", "block", "settings", "dead")

    def __init__(self, d: Direction, preface: bool) -> None:
        self.d = d
        self.preface = PREFACE if preface else b""   # still expected from the client
        self.reader = FrameReader(FRAME_CAP)
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 65536
        self.block: tuple[int, int, bytearray, bool] | None = None   # (sid, promised sid, bytes, end_stream)
        self.settings: dict[str, int] = {}   # in effect: the latest value of each setting sent
        self.dead = False


class Http2Parser:
    """One h2c connection. `upgrade` is the HTTP/1.1 request (with its 101) that
    switched the flow: it is stream 1's request, and the client's preface
    follows it. `first_tx_id` continues the flow's transaction numbering."""

    app_proto = APP

    doh = False   # set once a stream carried DNS (DNS over HTTP/2): the flow is then ``doh2``

    def __init__(self, *, body_limit: int = 1 << 20, decompress_limit: int = 1 << 22, max_encoding_layers: int = 3,
                 upgrade: HttpTransaction | None = None, first_tx_id: int = 0) -> None:
        self._body_limit, self._dlimit, self._layers = body_limit, decompress_limit, max_encoding_layers
        self._sides = (_Side(_TS, True), _Side(_TC, False))
        self._streams: dict[int, _Stream] = {}
        self._closed_max = [0, 0]   # highest stream id ended per parity, for stream_id_reuse
        self._next_tx = first_tx_id
        self._events: set[str] = set()
        self._held = 0   # header and DNS bytes held by open streams (bounded by HELD_CAP)
        self._out: list[AppOutput] = []
        if upgrade is not None:
            st = self._open(1)
            if st is not None:
                st.upgrade = upgrade
                st.req = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in upgrade.request_headers]
                st.ended[_TS] = True
            self._upgrade_settings(upgrade)

    # -- AppParser ------------------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]:
        side = self._sides[direction]
        if side.dead or not data:
            return []
        if side.preface:
            n = min(len(side.preface), len(data))
            if data[:n] != side.preface[:n]:
                self._event("invalid_client_magic", direction)
                side.dead = True
                return self._take()
            side.preface, data = side.preface[n:], data[n:]
        for item in side.reader.feed(data):
            self._item(side, item)
        return self._take()

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]:
        side = self._sides[direction]
        if not side.dead:
            side.dead = True
            for st in self._streams.values():
                body = st.bodies[direction]
                if body is not None:
                    body.gap(self._out, length)
        return self._take()

    def close(self, ts: float) -> list[AppOutput]:
        for sid in list(self._streams):
            self._finish(self._streams[sid], complete=False)
        return self._take()

    def held(self) -> int:
        """Bytes kept: partial frames and header blocks, and the open streams' headers."""
        n = self._held
        for side in self._sides:
            r = side.reader
            n += len(r.buf) + len(r.payload) + (len(side.block[2]) if side.block is not None else 0)
        return n

    def shed(self, ts: float) -> list[AppOutput]:
        """Forget what `held` counts (the app-layer memcap). The framing cannot be found again
        (as after a gap): both directions stop and the open streams end incomplete."""
        out: list[AppOutput] = []
        for d in (_TS, _TC):
            out += self.gap(d, 1, ts)
            side = self._sides[d]
            side.reader.buf, side.reader.payload = bytearray(), bytearray()   # freed (clear() keeps the memory)
            side.block = None
        return out + self.close(ts)

    def heads(self, direction: Direction) -> list["_Head"]:
        """Open streams whose headers in `direction` are known: detection inspects a
        request or response then, not only when the stream ends (as for HTTP/1)."""
        if not self._streams:
            return []
        req = direction is _TS
        return [_Head(self, st) for st in self._streams.values() if (st.req if req else st.resp) is not None]

    def body_complete(self, direction: Direction, tx_id: int) -> bool:
        """Whether the message of `tx_id` in `direction` has ended (END_STREAM seen)."""
        for st in self._streams.values():
            if st.tx_id == tx_id:
                return st.ended[direction]
        return True

    # -- frames ---------------------------------------------------------------------------------

    def _item(self, side: _Side, item: tuple) -> None:
        kind, h = item[0], item[1]
        d = side.d
        if kind == "long":
            self._event("long_frame_data", d)
            if h.type in (FrameType.HEADERS, FrameType.CONTINUATION, FrameType.PUSH_PROMISE):
                side.block = None   # the block is lost; HPACK state may be out of step now
                self._event("invalid_header", d)
            return
        if kind == "bad_padding":
            self._event("invalid_frame_data", d)
            return
        if side.block is not None and h.type != FrameType.CONTINUATION:
            self._event("invalid_frame_header", d)   # a header block must go on with CONTINUATION
            side.block = None
        if h.type in STREAM_FRAMES and h.stream_id == 0 or h.type in CONNECTION_FRAMES and h.stream_id != 0:
            self._event("invalid_frame_header", d)
            return
        if kind == "data":
            self._data(side, h, item[2], item[3])
            return
        payload: bytes = item[2]
        fixed = FIXED_LENGTH.get(h.type)
        if fixed is not None and len(payload) != fixed:
            self._event("invalid_frame_length", d)
            return
        handler = _HANDLERS.get(h.type)
        if handler is not None:
            handler(self, side, h, payload)   # unknown frame types are ignored (RFC 7540 4.1)

    def _headers(self, side: _Side, h: FrameHeader, p: bytes) -> None:
        body = self._unpad(side, h, p)
        if body is None:
            return
        if h.flags & Flag.PRIORITY:
            if len(body) < 5:
                self._event("invalid_frame_data", side.d)
                return
            st = self._stream(side.d, h.stream_id)
            if st is not None:
                st.priority = body[4]
            body = body[5:]
        self._block(side, h.stream_id, 0, body, h.flags)

    def _push_promise(self, side: _Side, h: FrameHeader, p: bytes) -> None:
        body = self._unpad(side, h, p)
        if body is None or len(body) < 4:
            self._event("invalid_frame_data", side.d)
            return
        promised = int.from_bytes(body[:4], "big") & 0x7FFFFFFF
        self._block(side, h.stream_id, promised, body[4:], h.flags & ~Flag.END_STREAM)

    def _continuation(self, side: _Side, h: FrameHeader, p: bytes) -> None:
        blk = side.block
        if blk is None or blk[0] != h.stream_id:
            self._event("invalid_frame_header", side.d)
            side.block = None
            return
        if len(blk[2]) + len(p) > HEADER_CAP:
            self._event("invalid_header", side.d)
            side.block = None
            return
        blk[2].extend(p)
        if h.flags & Flag.END_HEADERS:
            side.block = None
            self._decode(side, blk[0], blk[1], bytes(blk[2]), blk[3])

    def _block(self, side: _Side, sid: int, promised: int, frag: bytes, flags: int) -> None:
        end_stream = bool(flags & Flag.END_STREAM)
        if flags & Flag.END_HEADERS:
            self._decode(side, sid, promised, frag, end_stream)
        else:
            side.block = (sid, promised, bytearray(frag), end_stream)

    def _decode(self, side: _Side, sid: int, promised: int, block: bytes, end_stream: bool) -> None:
        d = side.d
        fields: list[hpack.HeaderTuple] | None   # hpack's decode returns a list, annotated only as Iterable
        try:
            fields = side.decoder.decode(block, raw=True)  # type: ignore[assignment]
        except (HPACKError, ValueError, IndexError, UnicodeDecodeError):
            self._event("invalid_header", d)
            fields = None
        if promised:   # PUSH_PROMISE: the promised stream's request, sent by the server
            st = self._stream(_TS, promised)
            if st is not None and fields is not None:
                st.req = [(bytes(n), bytes(v)) for n, v in fields[:MAX_HEADERS]]
                st.ended[_TS] = True
            return
        st = self._stream(d, sid)
        if st is None:
            return
        st.seen[d] = True
        if fields is not None:
            pairs = [(bytes(n), bytes(v)) for n, v in fields[:MAX_HEADERS]]
            if not self._hold(st, sum(len(n) + len(v) + 32 for n, v in pairs)):
                pairs = []   # over the flow's budget: the message is kept without its fields
            if len(fields) > MAX_HEADERS:
                self._event("invalid_header", d)
            if d is _TS:
                if st.req is None:
                    st.req = pairs
                    self._doh_request(st)
                else:   # trailers
                    st.req.extend(pairs[:MAX_HEADERS - len(st.req)])
            else:
                status = _get(pairs, b":status")
                if st.resp is None or (st.resp and (_get(st.resp, b":status") or b"").startswith(b"1")):
                    if status is None or not status.startswith(b"1") or st.resp is None:
                        st.resp = pairs   # the final response replaces an interim 1xx
                        if _get(pairs, b"content-type") == DOH_TYPE:
                            st.doh[_TC] = bytearray()
                else:
                    st.resp.extend(pairs[:MAX_HEADERS - len(st.resp)])
        if end_stream:
            self._end(st, d)

    def _data(self, side: _Side, h: FrameHeader, piece: bytes, last: bool) -> None:
        d = side.d
        st = self._streams.get(h.stream_id)
        if st is None:
            self._event("invalid_frame_data", d)   # DATA on a stream never opened (or already closed)
            return
        st.seen[d] = True
        if piece:
            st.body_len[d] += len(piece)
            doh = st.doh[d]
            if doh is not None and len(doh) < DOH_CAP:
                keep = piece[:DOH_CAP - len(doh)]
                if self._hold(st, len(keep)):
                    doh += keep
            body = st.bodies[d]
            if body is None:
                body = st.bodies[d] = self._body(st, d)
            body.data(piece, self._out)
        if last and h.flags & Flag.END_STREAM:
            self._end(st, d)

    def _settings(self, side: _Side, h: FrameHeader, p: bytes) -> None:
        if h.flags & Flag.END_STREAM:   # ACK
            if p:
                self._event("invalid_frame_length", side.d)
            return
        pairs = parse_settings(p)
        if pairs is None:
            self._event("invalid_frame_length", side.d)
            return
        self._apply_settings(side, pairs)

    def _apply_settings(self, side: _Side, pairs: list[tuple[int, int]]) -> None:
        for ident, value in pairs:
            name = SETTING_NAMES.get(ident, str(ident))
            if name in side.settings or len(side.settings) < 64:
                side.settings[name] = value
            if ident == 1:   # the peer's HPACK decoder (the other direction's) may use this table size
                self._sides[side.d.other].decoder.max_allowed_table_size = min(value, 1 << 20)

    def _rst_stream(self, side: _Side, h: FrameHeader, p: bytes) -> None:
        st = self._streams.get(h.stream_id)
        if st is not None:
            code = int.from_bytes(p, "big")
            st.error[side.d] = ERROR_NAMES.get(code, str(code))
            self._finish(st, complete=False)

    def _goaway(self, side: _Side, h: FrameHeader, p: bytes) -> None:
        if len(p) < 8:
            self._event("invalid_frame_length", side.d)

    def _priority(self, side: _Side, h: FrameHeader, p: bytes) -> None:
        st = self._streams.get(h.stream_id)
        if st is not None:
            st.priority = p[4]

    def _ignore(self, side: _Side, h: FrameHeader, p: bytes) -> None:
        """PING and WINDOW_UPDATE change nothing a transaction shows."""

    # -- streams --------------------------------------------------------------------------------

    def _stream(self, d: Direction, sid: int) -> _Stream | None:
        st = self._streams.get(sid)
        if st is not None:
            return st
        if sid <= self._closed_max[sid & 1]:
            self._event("stream_id_reuse", d)
            return None
        return self._open(sid)

    def _open(self, sid: int) -> _Stream | None:
        if len(self._streams) >= MAX_STREAMS:
            self._event("too_many_streams", None)
            return None
        st = self._streams[sid] = _Stream(sid, self._next_tx)
        self._next_tx += 1
        return st

    def _end(self, st: _Stream, d: Direction) -> None:
        st.ended[d] = True
        doh = st.doh[d]
        if doh is not None:
            st.doh[d] = None
            self._dns(d, bytes(doh), st.tx_id)
        body = st.bodies[d]
        if body is not None:
            body.finish(self._out)
            st.bodies[d] = None
        if st.ended[_TS] and st.ended[_TC]:
            self._finish(st, complete=True)

    def _finish(self, st: _Stream, complete: bool) -> None:
        for d in (_TS, _TC):
            body = st.bodies[d]
            if body is not None:
                body.finish(self._out, truncated=not st.ended[d])
                st.bodies[d] = None
        self._streams.pop(st.sid, None)
        self._held -= st.held
        st.held = 0
        self._closed_max[st.sid & 1] = max(self._closed_max[st.sid & 1], st.sid)
        if st.req is not None or st.resp is not None:
            self._out.append(self._record(st, complete))

    def _doh_request(self, st: _Stream) -> None:
        """RFC 8484: a POST of ``application/dns-message``, or a GET whose ``dns``
        parameter is the message in base64url."""
        req = st.req or []
        if _get(req, b"content-type") == DOH_TYPE:
            st.doh[_TS] = bytearray()
            return
        path = _get(req, b":path") or b""
        if _get(req, b":method") != b"GET" or b"?" not in path:
            return
        for param in path.partition(b"?")[2].split(b"&"):
            if param.startswith(b"dns=") and len(param) - 4 <= DOH_CAP * 4 // 3 + 4:
                v = param[4:]
                try:
                    raw = base64.b64decode(v + b"=" * (-len(v) % 4), altchars=b"-_", validate=True)
                except (binascii.Error, ValueError):
                    return   # not base64url: an ordinary parameter, not DNS
                self._dns(_TS, raw, st.tx_id)
                return

    def _dns(self, d: Direction, data: bytes, tx_id: int) -> None:
        out = message_outputs(d, data, tx_id)
        if any(isinstance(o, DnsMessage) for o in out):
            self.doh = True
        self._out.extend(out)

    def _hold(self, st: _Stream, n: int) -> bool:
        """Count `n` more bytes held for `st`; False (and ``too_many_streams``, the
        resource Suricata bounds per flow) when the flow's budget is spent."""
        if self._held + n > HELD_CAP:
            self._event("too_many_streams", None)
            return False
        self._held += n
        st.held += n
        return True

    def _body(self, st: _Stream, d: Direction) -> BodyStream:
        msg = (st.req if d is _TS else st.resp) or []
        codings, events = parse_content_encoding(_get(msg, b"content-encoding"), self._layers)
        for name in events:
            self._event(name.lower(), d)
        up = st.upgrade
        path = _get(st.req or [], b":path")
        method = _get(st.req or [], b":method") if up is None else _b(up.method)
        ctype = _get(msg, b"content-type")
        norm = _b(up.normalized_uri) if up is not None else (normalize_uri(path)[0] if path else None)
        filename = norm.partition(b"?")[0].decode("latin-1") or None if norm else None
        return BodyStream(st.tx_id, d, filename, self._body_limit, codings, dlimit=self._dlimit, lzma_ok=False,
                          on_event=lambda n: self._event(n.lower(), d),
                          method=method.decode("latin-1") if method else None,
                          content_type=ctype.decode("latin-1") if ctype else None, app_proto=APP)

    def _record(self, st: _Stream, complete: bool) -> HttpTransaction:
        req, resp = st.req or [], st.resp or []
        up = st.upgrade
        path = _get(req, b":path")
        uri = up.uri if up is not None else _s(path)
        norm = up.normalized_uri if up is not None else (_s(normalize_uri(path)[0]) if path else None)
        method = up.method if up is not None else _s(_get(req, b":method"))
        authority = _get(req, b":authority") or _get(req, b"host")
        host = _s(authority.rsplit(b":", 1)[0] if authority and authority.count(b":") == 1 else authority)
        status = _get(resp, b":status")
        ctype = _get(resp, b"content-type")
        loc = _get(resp, b"location")
        info = Http2Info(stream_id=st.sid, request_settings=tuple(self._sides[_TS].settings.items()),
                         response_settings=tuple(self._sides[_TC].settings.items()),
                         request_error=st.error[_TS], response_error=st.error[_TC],
                         priority=st.priority, request_fields=_fields(req), response_fields=_fields(resp))
        return HttpTransaction(
            tx_id=st.tx_id, method=method, uri=uri, normalized_uri=norm, protocol="HTTP/2",
            host=host.lower() if host else None,
            user_agent=_s(_get(req, b"user-agent")), referer=_s(_get(req, b"referer")),
            xff=_s(_get(req, b"x-forwarded-for")),
            request_headers=_plain(req), request_body_len=st.body_len[_TS],
            status=int(status) if status and status.isdigit() else None,
            response_protocol="HTTP/2" if st.resp is not None else None,
            content_type=_s(ctype.split(b";", 1)[0].strip()) if ctype else None, redirect=_s(loc),
            response_headers=_plain(resp), response_body_len=st.body_len[_TC], response_length=st.body_len[_TC],
            request_seen=st.req is not None, response_seen=st.resp is not None,
            complete=complete, http2=info)

    def _upgrade_settings(self, up: HttpTransaction) -> None:
        """``HTTP2-Settings`` of the upgrade request: the client's first SETTINGS, base64url."""
        for n, v in up.request_headers:
            if n.lower() != "http2-settings":
                continue
            try:
                v = v.strip()
                raw = base64.b64decode(v + "=" * (-len(v) % 4), altchars=b"-_", validate=True)
            except (binascii.Error, ValueError):
                raw = None
            pairs = parse_settings(raw) if raw is not None else None
            if pairs is None:
                self._event("invalid_http1_settings", _TS)
            else:
                self._apply_settings(self._sides[_TS], pairs)

    # -- helpers --------------------------------------------------------------------------------

    def _unpad(self, side: _Side, h: FrameHeader, p: bytes) -> bytes | None:
        if not h.flags & Flag.PADDED:
            return p
        if not p or p[0] >= len(p):
            self._event("invalid_frame_data", side.d)
            return None
        return p[1:len(p) - p[0]]

    def _event(self, name: str, d: Direction | None) -> None:
        """Each event once per connection, as Suricata's http2 event rules fire."""
        if name in self._events:
            return
        self._events.add(name)
        self._out.append(Anomaly(AnomalyKind.APPLAYER, name, APP, d))

    def _take(self) -> list[AppOutput]:
        out, self._out = self._out, []
        return out


class _Head:
    """An open stream as detection sees it: its id and the transaction so far."""

    __slots__ = ("_parser", "_st", "tx_id")

    def __init__(self, parser: Http2Parser, st: _Stream) -> None:
        self._parser, self._st, self.tx_id = parser, st, st.tx_id

    def record(self) -> HttpTransaction:
        return self._parser._record(self._st, complete=False)


_HANDLERS = {FrameType.HEADERS: Http2Parser._headers, FrameType.PUSH_PROMISE: Http2Parser._push_promise,
             FrameType.CONTINUATION: Http2Parser._continuation, FrameType.SETTINGS: Http2Parser._settings,
             FrameType.RST_STREAM: Http2Parser._rst_stream, FrameType.GOAWAY: Http2Parser._goaway,
             FrameType.PRIORITY: Http2Parser._priority, FrameType.PING: Http2Parser._ignore,
             FrameType.WINDOW_UPDATE: Http2Parser._ignore}


def _get(pairs: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for n, v in pairs:
        if n == name:
            return v
    return None


def _plain(pairs: list[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """Header fields without the pseudo-headers (``:path``...), as ``http.header`` sees them."""
    return tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in pairs if not n.startswith(b":"))


def _b(s: str | None) -> bytes | None:
    return None if s is None else s.encode("latin-1")


def _fields(pairs: list[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in pairs)


def _s(b: bytes | None) -> str | None:
    return None if b is None else b.decode("latin-1")
