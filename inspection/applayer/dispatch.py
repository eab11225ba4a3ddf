"""Application-protocol detection by content, and feeding the chosen parser.

TCP flows are recognised from their first bytes in either direction (HTTP
request or response, TLS handshake, SSH banner, DNS on its TCP ports,
SMTP/POP3/IMAP greetings and first commands), not from port numbers (a port only settles a
mail greeting another protocol could send too, such as FTP's 220); bytes seen
before a decision are kept (bounded) and replayed to the parser in arrival
order. UDP DNS is picked by port, as Suricata does.

Each direction is named too (Suricata's app_proto_ts/app_proto_tc): the first
data of the other direction is probed as well, and a protocol it clearly is
(an SSH banner answering an HTTP request) names that direction, while the
flow keeps the parser it chose. `pd_pending` marks a direction whose protocol
was just decided, for the next packet going that way (rules that test only
the protocol run on that packet, as in Suricata).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Literal

from inspection.applayer.dns import DnsTcpParser, DnsUdpParser, probe_dns_tcp
from inspection.applayer.http1 import Http1Parser, probe_http
from inspection.applayer.http2 import Http2Parser, is_h2c_upgrade, probe_http2
from inspection.applayer.imap import ImapParser, probe_imap
from inspection.applayer.pop3 import Pop3Parser, probe_pop3
from inspection.applayer.smtp import SmtpParser, probe_smtp
from inspection.applayer.ssh import SshParser, probe_ssh
from inspection.applayer.tls import TlsParser, probe_tls
from inspection.model import Anomaly, AnomalyKind, AppOutput, AppParser, BodyChunk, Direction

FAILED = "failed"
MISMATCH_EVENT = "APPLAYER_MISMATCH_PROTOCOL_BOTH_DIRECTIONS"   # Suricata's protocol-detection event
# parsers that keep bytes of unfinished messages between calls (model.HoldsBytes, the app-layer memcap);
# the others (SSH, IMAP, POP3) hold a line or a few KB at most
HOLDERS: frozenset[type] = frozenset({Http1Parser, Http2Parser, DnsTcpParser, TlsParser, SmtpParser})
_MAIL_PEEK = 16   # bytes of the other direction a mail probe looks at (a greeting, a first command)
# After detection nothing is buffered and no direction has failed: shared tuples stand in, typed as the
# lists they replace (nothing writes to them once detection is over)
_NOTHING_PENDING: list[tuple[Direction, bytes]] = ()   # type: ignore[assignment]
_NEITHER_FAILED: list[bool] = (False, False)   # type: ignore[assignment]


class AppState:
    """Per-flow application-layer state: detection, then one parser."""

    __slots__ = ("proto", "parser", "pending", "pending_len", "dir_failed", "done", "reversed", "orig",
                 "dir_proto", "pd_pending", "pd_now")

    def __init__(self) -> None:
        self.proto: str | None = None
        self.parser: AppParser | None = None
        self.pending: list[tuple[Direction, bytes]] = []
        self.pending_len = 0
        self.dir_failed = [False, False]
        self.done = False
        self.reversed = False   # set when detection found the flow's "client" is the server
        self.orig: str | None = None   # protocol before a tunnel (HTTP CONNECT) switched it
        self.dir_proto: list[str | None] = [None, None]   # per direction (to server, to client), once decided
        self.pd_pending = [False, False]   # a direction's protocol was decided; its next packet is told
        self.pd_now: Direction | None = None   # set by detection while it runs on such a packet

    def decided(self, d: Direction, proto: str) -> None:
        """Direction `d` is `proto` from now on (set once; the next packet that way is told)."""
        if self.dir_proto[d] is None:
            self.dir_proto[d] = proto
            self.pd_pending[d] = True


class TcpDetector:
    """Chooses a parser for a TCP flow from its first payload bytes."""

    def __init__(self, *, dns_ports: frozenset[int], limit: int, http_body_limit: int,
                 http_lzma: bool = False, http_layers: int = 3, http2: bool = True) -> None:
        self._dns_ports = dns_ports
        self._limit = limit
        self._http_body_limit = http_body_limit
        self._http_lzma = http_lzma
        self._http_layers = http_layers
        self._http2 = http2   # off (app-layer.protocols.http2.enabled: no): h2c is neither probed nor switched to

    def feed(self, app: AppState, d: Direction, data: bytes, ts: float, ports: tuple[int, int],
             may_reverse: bool = False) -> list[AppOutput]:
        """Feed stream data; with `may_reverse` (a flow picked up midstream), a
        server reply seen as the first client data marks the flow reversed
        (`app.reversed`) and the parser sees it in its true direction."""
        if app.parser is not None:
            mismatch = None
            if app.dir_proto[d] is None and app.proto is not None:
                mismatch = self._name_direction(app, d, data, ports)
            out = app.parser.feed(d, data, ts)
            if mismatch is not None:
                out.insert(0, mismatch)
            if app.proto == "http2" and getattr(app.parser, "doh", False):
                self._became_doh2(app, d)
            if getattr(app.parser, "tunnel", False):
                out.extend(self._open_tunnel(app, ts, ports))
            return out
        if app.proto is not None:  # failed
            return []
        app.pending.append((d, data))
        app.pending_len += len(data)
        buf = b"".join(b for dd, b in app.pending if dd == d)
        other = b"".join(b for dd, b in app.pending if dd != d)[:_MAIL_PEEK]   # mail greetings need both sides
        found = self._probe(d, buf, ports, other)
        if not found and may_reverse and d == Direction.TO_SERVER:
            reply = self._probe(d.other, buf, ports)
            if reply:
                found = reply
                app.reversed = True
                app.pending = [(dd.other, b) for dd, b in app.pending]
        if found is None and app.pending_len <= self._limit:
            return []
        if not found:
            app.dir_failed[d] = True
            if app.dir_failed[d.other] or app.pending_len > self._limit:
                app.proto = FAILED
                app.decided(Direction.TO_SERVER, FAILED)
                app.decided(Direction.TO_CLIENT, FAILED)
                app.pending = _NOTHING_PENDING
                app.done = True
            return []
        proto, factory = found
        app.proto = proto
        app.parser = factory()
        decided_dir = d.other if app.reversed and d == Direction.TO_SERVER else d
        app.decided(decided_dir, proto)
        out = []
        for dd, chunk in app.pending:
            if app.dir_proto[dd] is None:
                mismatch = self._name_direction(app, dd, chunk, ports)
                if mismatch is not None:
                    out.append(mismatch)
            out.extend(app.parser.feed(dd, chunk, ts))
        app.pending = _NOTHING_PENDING
        app.pending_len = 0
        app.dir_failed = _NEITHER_FAILED
        if proto == "http2" and getattr(app.parser, "doh", False):
            self._became_doh2(app, d)
        return out

    @staticmethod
    def _became_doh2(app: AppState, d: Direction) -> None:
        """A stream carried DNS: the flow is DNS over HTTP/2 from now on (Suricata's
        ``doh2``), told once, to the direction that showed it."""
        app.proto = "doh2"
        app.dir_proto = ["doh2", "doh2"]
        app.pd_pending = [False, False]   # http2 is not announced any more, doh2 once
        app.pd_pending[d] = True

    def _name_direction(self, app: AppState, d: Direction, first: bytes, ports: tuple[int, int]) -> Anomaly | None:
        """The first data of the direction that did not decide the protocol: a different
        protocol it clearly is names this direction and is Suricata's
        ``APPLAYER_MISMATCH_PROTOCOL_BOTH_DIRECTIONS``; anything else (the same protocol,
        unknown, too short to say) takes the flow's."""
        found = self._probe(d, first, ports)
        if isinstance(found, tuple) and found[0] != app.proto:
            app.decided(d, found[0])
            return Anomaly(AnomalyKind.APPLAYER, MISMATCH_EVENT, None, d)
        app.decided(d, app.proto)  # type: ignore[arg-type]
        return None

    def _open_tunnel(self, app: AppState, ts: float, ports: tuple[int, int]) -> list[AppOutput]:
        """HTTP CONNECT (or Upgrade) succeeded: detect what runs inside, afresh. An
        ``Upgrade: h2c`` answered by 101 is HTTP/2 at once, its request stream 1."""
        old = app.parser
        leftover = getattr(old, "tunnel_data", [])
        up = getattr(old, "tunnel_tx", None)
        app.orig, app.proto, app.parser = app.proto, None, None
        app.dir_proto = [None, None]
        app.pending, app.pending_len, app.dir_failed = [], 0, [False, False]  # detection starts again
        out: list[AppOutput] = []
        if self._http2 and is_h2c_upgrade(up):
            app.proto = "http2"
            app.parser = Http2Parser(body_limit=self._http_body_limit, max_encoding_layers=self._http_layers,
                                     upgrade=up, first_tx_id=up.tx_id + 1)  # type: ignore[union-attr]
            app.decided(Direction.TO_SERVER, "http2")
            app.decided(Direction.TO_CLIENT, "http2")
            for d, chunk in leftover:
                out.extend(app.parser.feed(d, chunk, ts))
            return out
        for d, chunk in leftover:
            out.extend(self.feed(app, d, chunk, ts, ports))
        return out

    def _probe(self, d: Direction, buf: bytes, ports: tuple[int, int], other: bytes = b""
               ) -> tuple[str, Callable[[], AppParser]] | None | Literal[False]:
        undecided = False
        for proto, probe, factory in self._candidates(ports, other):
            r = probe(buf, d)
            if r:
                return proto, factory
            if r is None:
                undecided = True
        return None if undecided else False

    def _candidates(self, ports: tuple[int, int], other: bytes = b""):
        yield "tls", probe_tls, TlsParser
        if self._http2:
            yield "http2", probe_http2, lambda: Http2Parser(body_limit=self._http_body_limit,
                                                            max_encoding_layers=self._http_layers)
        yield "http", probe_http, lambda: Http1Parser(body_limit=self._http_body_limit, lzma=self._http_lzma,
                                                      max_encoding_layers=self._http_layers)
        yield "ssh", probe_ssh, SshParser
        if ports[0] in self._dns_ports or ports[1] in self._dns_ports:
            yield "dns", lambda b, d: probe_dns_tcp(b), DnsTcpParser
        # mail last: their probes only say yes to their own greetings and first commands
        yield "smtp", lambda b, d: probe_smtp(b, d, ports, other), SmtpParser
        yield "pop3", lambda b, d: probe_pop3(b, d, ports, other), Pop3Parser
        yield "imap", lambda b, d: probe_imap(b, d, ports), ImapParser

    @staticmethod
    def gap(app: AppState, d: Direction, length: int, ts: float) -> list[AppOutput]:
        if app.parser is not None:
            return app.parser.gap(d, length, ts)
        if app.proto is None:
            # a hole before detection: what was kept for this direction is useless
            app.pending = [(dd, b) for dd, b in app.pending if dd != d]
            app.dir_failed[d] = True
            if app.dir_failed[d.other]:
                app.proto = FAILED
                app.decided(Direction.TO_SERVER, FAILED)
                app.decided(Direction.TO_CLIENT, FAILED)
                app.done = True
        return []


SSDP_PORT = 1900   # HTTP-formatted discovery (M-SEARCH, NOTIFY) over UDP


def udp_parser_for(ports: tuple[int, int], dns_ports: frozenset[int]) -> tuple[str, AppParser] | None:
    if ports[0] in dns_ports or ports[1] in dns_ports:
        return "dns", DnsUdpParser()
    if SSDP_PORT in ports:
        return "http", HttpDatagramParser()
    return None


class HttpDatagramParser:
    """HTTP messages that are one UDP datagram each (SSDP): every datagram is
    parsed on its own, transactions numbered across the flow."""

    app_proto = "http"

    def __init__(self) -> None:
        self._next_tx = 0

    def feed(self, direction: Direction, data: bytes, ts: float) -> list[AppOutput]:
        p = Http1Parser(body_limit=0)
        base = self._next_tx
        out: list[AppOutput] = []
        for o in p.feed(direction, data, ts) + p.close(ts):
            if isinstance(o, BodyChunk):
                continue   # SSDP carries no bodies worth keeping
            tx_id = o.tx_id
            if tx_id is not None:   # AppRecord does not say it, but Http1Parser's records are dataclasses
                o = replace(o, tx_id=base + tx_id)  # type: ignore[type-var]
                self._next_tx = max(self._next_tx, base + tx_id + 1)
            out.append(o)
        return out

    def gap(self, direction: Direction, length: int, ts: float) -> list[AppOutput]:
        return []

    def close(self, ts: float) -> list[AppOutput]:
        return []
